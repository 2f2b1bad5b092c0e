#!/usr/bin/python3
"""PyTorch reference for vlserve's text decoders (llama, qwen2) -> golden fixtures.

Written from the Hugging Face semantics (LlamaForCausalLM / Qwen2ForCausalLM): RMSNorm,
rotary embeddings with rotate_half, grouped-query attention (query head h uses KV head
h // (n_heads / n_kv_heads)), SwiGLU MLP, causal softmax attention, tied output when
output.weight is absent. Runs in float64.

llama GGUFs hold Q/K rows permuted by llama.cpp's converter (adjacent-pair rope); we undo
that permutation and apply HF rotate_half, so the fixture independently checks vlserve's
"normal" rope on the stored weights. qwen2 is not permuted. qwen2vl (Qwen2-VL's language
model, a qwen2 decoder with M-RoPE) loads like qwen2; qwen2vl_reference.py supplies its
rotary tables through forward(cos_sin=...).

usage: text_reference.py MODEL.gguf OUT_PREFIX [--steps 32] [--command "how MODEL was made"]
writes OUT_PREFIX.json (prompt, greedy tokens, metadata) and OUT_PREFIX.logits.bin
(float32 little-endian, [prompt_len, vocab], logits at every prompt position).
The greedy continuation recomputes the whole sequence at every step (no KV cache).
"""
import argparse
import json
import math

import numpy as np
import torch

from gguf_min import Reader

PROMPT_LEN = 20


def fnv1a64(data):
    h = 0xcbf29ce484222325
    arr = np.frombuffer(data, dtype=np.uint8)
    # Chunked pure-Python would be slow for big files; the fixtures' models are small.
    for b in arr.tobytes():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class Model:
    def __init__(self, path):
        r = Reader(path)
        self.reader = r
        a = r.meta["general.architecture"]
        if a not in ("llama", "qwen2", "qwen2vl"):
            raise ValueError(f"architecture {a} not supported by the reference")
        self.arch = a
        m = r.meta
        self.hidden = m[f"{a}.embedding_length"]
        self.n_layers = m[f"{a}.block_count"]
        self.n_heads = m[f"{a}.attention.head_count"]
        self.n_kv = m.get(f"{a}.attention.head_count_kv", self.n_heads)
        self.hd = self.hidden // self.n_heads
        self.eps = m[f"{a}.attention.layer_norm_rms_epsilon"]
        self.base = m.get(f"{a}.rope.freq_base", 10000.0)
        # qwen2vl (Qwen2-VL's LM): a qwen2 decoder whose rotary angles come from 3-axis
        # positions; qwen2vl_reference.py computes those cos/sin and passes them to forward.
        self.mrope_sections = m.get(f"{a}.rope.dimension_sections")
        rope_dims = m.get(f"{a}.rope.dimension_count", self.hd)
        assert rope_dims == self.hd, "the reference implements full rotary only"

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64)

        self.embd = t("token_embd.weight")
        self.vocab = self.embd.shape[0]
        self.out = t("output.weight") if "output.weight" in r.tensors else self.embd
        self.out_norm = t("output_norm.weight")
        self.layers = []
        for i in range(self.n_layers):
            p = f"blk.{i}."
            L = {k: t(p + k + ".weight") for k in (
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                "ffn_gate", "ffn_up", "ffn_down")}
            if a == "llama":
                L["attn_q"] = self.unpermute(L["attn_q"], self.n_heads)
                L["attn_k"] = self.unpermute(L["attn_k"], self.n_kv)
            for b in ("attn_q", "attn_k", "attn_v"):
                name = p + b + ".bias"
                L[b + "_bias"] = t(name) if name in r.tensors else None
            self.layers.append(L)

    def unpermute(self, w, n_head):
        # llama.cpp: gguf = w_hf.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(...)
        rows, cols = w.shape
        return w.reshape(n_head, rows // n_head // 2, 2, cols).transpose(1, 2).reshape(rows, cols)

    def rms_norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def inv_freq(self):
        return 1.0 / (self.base ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))

    def rope_cos_sin(self, T):
        freqs = torch.arange(T, dtype=torch.float64)[:, None] * self.inv_freq()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()  # [T, hd]

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def forward(self, tokens, image_rows=None, cos_sin=None):
        """image_rows: optional {position: embedding row} replacing token embeddings
        (the vision path, tools/reference/vision_reference.py). cos_sin: optional
        ([T, hd], [T, hd]) rotary tables replacing the 1-D ones for positions 0..T-1
        (M-RoPE, tools/reference/qwen2vl_reference.py)."""
        T = len(tokens)
        x = self.embd[torch.tensor(tokens)].clone()
        for pos, row in (image_rows or {}).items():
            x[pos] = row
        if cos_sin is None:
            cos, sin = self.rope_cos_sin(T)
        else:
            cos, sin = cos_sin
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        rep = self.n_heads // self.n_kv
        for L in self.layers:
            h = self.rms_norm(x, L["attn_norm"])
            q, k, v = h @ L["attn_q"].T, h @ L["attn_k"].T, h @ L["attn_v"].T
            if L["attn_q_bias"] is not None:
                q, k, v = q + L["attn_q_bias"], k + L["attn_k_bias"], v + L["attn_v_bias"]
            q = q.view(T, self.n_heads, self.hd).transpose(0, 1)  # [H, T, hd]
            k = k.view(T, self.n_kv, self.hd).transpose(0, 1)
            v = v.view(T, self.n_kv, self.hd).transpose(0, 1)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
            s = q @ k.transpose(1, 2) / math.sqrt(self.hd) + mask
            o = torch.softmax(s, dim=-1) @ v  # [H, T, hd]
            x = x + o.transpose(0, 1).reshape(T, self.hidden) @ L["attn_output"].T
            h = self.rms_norm(x, L["ffn_norm"])
            g = torch.nn.functional.silu(h @ L["ffn_gate"].T) * (h @ L["ffn_up"].T)
            x = x + g @ L["ffn_down"].T
        return self.rms_norm(x, self.out_norm) @ self.out.T  # [T, vocab]


def prompt_tokens(vocab):
    # Fixed ids spread over the vocabulary; 20 tokens cross a 16-token KV block boundary.
    return [(i * 37 + 11) % min(vocab, 500) for i in range(PROMPT_LEN)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out_prefix")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--command", default="")
    args = ap.parse_args()
    m = Model(args.model)
    prompt = prompt_tokens(m.vocab)
    with torch.no_grad():
        logits = m.forward(prompt)
        seq = list(prompt)
        greedy, margins = [], []
        for _ in range(args.steps):
            last = m.forward(seq)[-1]
            top2 = torch.topk(last, 2).values
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            margins.append(round(float(top2[0] - top2[1]), 6))
            seq.append(nxt)
    logits.numpy().astype("<f4").tofile(args.out_prefix + ".logits.bin")
    with open(args.model, "rb") as f:
        digest = fnv1a64(f.read())
    meta = {
        "model_command": args.command,
        "model_fnv1a64": f"{digest:016x}",
        "arch": m.arch,
        "weight_type": m.reader.type_name("blk.0.attn_q.weight"),
        "vocab": m.vocab,
        "prompt": prompt,
        "greedy": greedy,
        # top-1 minus top-2 reference logit at each greedy step: a kernel whose error is
        # larger than the margin may legitimately pick the other token there.
        "greedy_margins": margins,
        "max_abs_logit": float(logits.abs().max()),
        "logits_file": args.out_prefix.split("/")[-1] + ".logits.bin",
    }
    with open(args.out_prefix + ".json", "w") as f:
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()]
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
