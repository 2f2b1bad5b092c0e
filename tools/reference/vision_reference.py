#!/usr/bin/python3
"""PyTorch reference for vlserve's vision towers, projectors and image prompts -> fixtures.

Written from the Hugging Face semantics, float64 throughout:
  * SiglipVisionModel / Idefics3VisionTransformer (projector idefics3): Conv2d patch
    embedding (with bias) + learned positions, encoder layers (LayerNorm -> self-attention
    with q/k/v/out biases, scale head_dim^-0.5 -> residual; LayerNorm -> fc1 ->
    gelu_pytorch_tanh -> fc2 -> residual), post_layernorm on last_hidden_state.
    Idefics3Connector: pixel_shuffle (the view/permute/reshape sequence of
    transformers' Idefics3Connector.pixel_shuffle) then modality_projection (no bias).
  * CLIPVisionModel (projector mlp, LLaVA-1.5): Conv2d without bias, [CLS] + patches,
    + positions, pre_layrnorm, quick_gelu encoder; LLaVA takes hidden_states[-2] (the GGUF
    already lacks the last layer, so: the output of every stored layer), no post-LN, drops
    CLS (vision_feature_select_strategy "default"); LlavaMultiModalProjector: linear_1 ->
    GELU (erf) -> linear_2.
  * Prompt: Idefics3Processor's _prompt_split_image / _prompt_single_image strings, and
    LLaVA's one <image> -> N rows, tokenized with a small byte-level BPE written here from
    the GGUF vocabulary and merges (GPT-2 byte mapping; special tokens split first).

The tiles fed to both sides are a closed-form normalized tensor (tile_values below; the
C++ test computes the same formula), so preprocessing is not part of this check.

usage: vision_reference.py TEXT.gguf MMPROJ.gguf OUT_PREFIX --grid R C [--steps 16]
       [--command "how the models were made"]
writes OUT_PREFIX.json (prompt tokens, spans, greedy tokens, metadata) and
OUT_PREFIX.embd.bin (float32 [tiles * tokens_per_tile, text_hidden]).
"""
import argparse
import json
import math
import re

import numpy as np
import torch

from gguf_min import Reader
from text_reference import Model as TextModel, fnv1a64

PROMPT_SMOLVLM = "<|im_start|>User:<image>describe the picture<end_of_utterance>\nAssistant:"
PROMPT_LLAVA = "USER: <image>\ndescribe the picture ASSISTANT:"


def tile_values(num_tiles, size):
    """[num_tiles, 3, size, size]: 1.5 sin(0.37 x + 0.23 y + 1.1 c + 0.71 t), float32."""
    t, c, y, x = np.meshgrid(np.arange(num_tiles), np.arange(3), np.arange(size),
                             np.arange(size), indexing="ij")
    v = 1.5 * np.sin(0.37 * x + 0.23 * y + 1.1 * c + 0.71 * t)
    return v.astype(np.float32)


class Vision:
    def __init__(self, path):
        r = Reader(path)
        m = r.meta
        assert m["general.architecture"] == "clip"
        self.proj = m["clip.projector_type"]
        v = "clip.vision."
        self.image_size = m[v + "image_size"]
        self.patch = m[v + "patch_size"]
        self.d = m[v + "embedding_length"]
        self.n_layers = m[v + "block_count"]
        self.heads = m[v + "attention.head_count"]
        self.eps = m[v + "attention.layer_norm_epsilon"]
        self.scale = m.get(v + "projector.scale_factor", 1)
        self.use_gelu = m.get("clip.use_gelu", False)

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.t = t
        self.reader = r

    def ln(self, x, prefix):
        return torch.nn.functional.layer_norm(x, (self.d,), self.t(prefix + ".weight"),
                                              self.t(prefix + ".bias"), self.eps)

    def tower(self, pixels):
        """pixels [B, 3, H, W] -> features [B, num_patches, d] (the projector input)."""
        t = self.t
        x = torch.nn.functional.conv2d(pixels, t("v.patch_embd.weight"), t("v.patch_embd.bias"),
                                       stride=self.patch)
        x = x.flatten(2).transpose(1, 2)  # [B, patches, d], patches row-major
        B = x.shape[0]
        cls = t("v.class_embd")
        if cls is not None:
            x = torch.cat([cls.expand(B, 1, self.d), x], dim=1)
        x = x + t("v.position_embd.weight")[None]
        if t("v.pre_ln.weight") is not None:
            x = self.ln(x, "v.pre_ln")
        hd = self.d // self.heads
        for i in range(self.n_layers):
            p = f"v.blk.{i}."
            lin = lambda h, n: h @ t(p + n + ".weight").T + t(p + n + ".bias")
            h = self.ln(x, p + "ln1")
            T = h.shape[1]
            q, k, v = (lin(h, n).view(B, T, self.heads, hd).transpose(1, 2)
                       for n in ("attn_q", "attn_k", "attn_v"))
            a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1) @ v
            x = x + lin(a.transpose(1, 2).reshape(B, T, self.d), "attn_out")
            h = lin(self.ln(x, p + "ln2"), "ffn_up")
            if self.use_gelu:
                h = torch.nn.functional.gelu(h, approximate="tanh")
            else:
                h = h * torch.sigmoid(1.702 * h)  # quick_gelu
            x = x + lin(h, "ffn_down")
        if self.proj == "idefics3":
            return self.ln(x, "v.post_ln")  # SigLIP last_hidden_state
        return x[:, 1:]  # LLaVA: layer -2 (already the last stored), no post-LN, no CLS

    @staticmethod
    def pixel_shuffle(x, s):
        # Idefics3Connector.pixel_shuffle's shape sequence.
        bsz, seq, d = x.shape
        h = w = int(seq ** 0.5)
        x = x.view(bsz, h, w, d)
        x = x.view(bsz, h, w // s, d * s)
        x = x.permute(0, 2, 1, 3)
        x = x.reshape(bsz, w // s, h // s, d * s * s)
        x = x.permute(0, 2, 1, 3)
        return x.reshape(bsz, seq // (s * s), d * s * s)

    def project(self, f):
        t = self.t
        if self.proj == "idefics3":
            return self.pixel_shuffle(f, self.scale) @ t("mm.model.fc.weight").T
        h = f @ t("mm.0.weight").T + t("mm.0.bias")
        h = torch.nn.functional.gelu(h)  # erf
        return h @ t("mm.2.weight").T + t("mm.2.bias")

    def encode(self, pixels):
        return self.project(self.tower(pixels))  # [B, tokens, text_hidden]


class Bpe:
    """Byte-level BPE over the GGUF vocabulary (enough for ASCII prompts)."""

    def __init__(self, reader):
        m = reader.meta
        self.tokens = m["tokenizer.ggml.tokens"]
        self.types = m["tokenizer.ggml.token_type"]
        self.ids = {s: i for i, s in enumerate(self.tokens)}
        self.ranks = {tuple(mm.split(" ")): i for i, mm in enumerate(m["tokenizer.ggml.merges"])}
        self.specials = sorted((s for s, ty in zip(self.tokens, self.types) if ty == 3),
                               key=len, reverse=True)
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs, n = bs[:], 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.byte_map = {b: chr(c) for b, c in zip(bs, cs)}

    def _word(self, w):
        parts = [self.byte_map[b] for b in w.encode("utf-8")]
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i)
                     for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [self.ids[p] for p in parts]

    def encode(self, text):
        out = []
        pattern = "(" + "|".join(re.escape(s) for s in self.specials) + ")"
        for piece in re.split(pattern, text):
            if piece in self.ids and piece in self.specials:
                out.append(self.ids[piece])
                continue
            # GPT-2 pre-tokenizer, ASCII subset: letters, digits one at a time, punctuation,
            # whitespace runs (a run before non-space leaves its last space to the next word).
            for w in re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+", piece):
                out.extend(self._word(w))
        return out


def expand_prompt(proj, prompt, grid, n):
    """Returns (expanded text, list of (tile index) per <image> run) as HF writes it."""
    if proj == "mlp":
        return prompt.replace("<image>", "<image>" * n), [0]
    rows, cols = grid
    fake, img, glob = "<fake_token_around_image>", "<image>", "<global-img>"
    if rows == 0 and cols == 0:
        s = f"{fake}{glob}" + img * n + fake
    else:
        s = ""
        for r in range(rows):
            for c in range(cols):
                s += f"{fake}<row_{r + 1}_col_{c + 1}>" + img * n
            s += "\n"
        s += f"\n{fake}{glob}" + img * n + fake
    return prompt.replace("<image>", s), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("mmproj")
    ap.add_argument("out_prefix")
    ap.add_argument("--grid", type=int, nargs=2, default=[0, 0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--command", default="")
    args = ap.parse_args()
    vis = Vision(args.mmproj)
    text = TextModel(args.text)
    rows, cols = args.grid
    num_tiles = rows * cols + 1 if rows * cols > 0 else 1
    pixels = torch.tensor(tile_values(num_tiles, vis.image_size), dtype=torch.float64)
    with torch.no_grad():
        embd = vis.encode(pixels)  # [tiles, n, text_hidden]
    n = embd.shape[1]
    flat = embd.reshape(-1, embd.shape[-1])
    prompt = PROMPT_LLAVA if vis.proj == "mlp" else PROMPT_SMOLVLM
    expanded, _ = expand_prompt(vis.proj, prompt, args.grid, n)
    bpe = Bpe(text.reader)
    tokens = bpe.encode(expanded)
    image_id = bpe.ids["<image>"]
    positions = [i for i, tk in enumerate(tokens) if tk == image_id]
    assert len(positions) == flat.shape[0], (len(positions), flat.shape)
    rows_at = {p: flat[j] for j, p in enumerate(positions)}
    spans = []
    for j, p in enumerate(positions):
        if j == 0 or positions[j - 1] != p - 1:
            spans.append([p, 0])
        spans[-1][1] += 1
    with torch.no_grad():
        seq, greedy, margins = list(tokens), [], []
        for _ in range(args.steps):
            last = text.forward(seq, rows_at)[-1]
            top2 = torch.topk(last, 2).values
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            margins.append(round(float(top2[0] - top2[1]), 6))
            seq.append(nxt)
    flat.numpy().astype("<f4").tofile(args.out_prefix + ".embd.bin")
    digests = {}
    for key, path in (("text_fnv1a64", args.text), ("mmproj_fnv1a64", args.mmproj)):
        with open(path, "rb") as f:
            digests[key] = f"{fnv1a64(f.read()):016x}"
    meta = {
        "command": args.command,
        **digests,
        "projector": vis.proj,
        "grid": [rows, cols],
        "num_tiles": num_tiles,
        "tokens_per_tile": n,
        "prompt": prompt,
        "prompt_tokens": tokens,
        "spans": spans,
        "greedy": greedy,
        "greedy_margins": margins,
        "max_abs_embd": float(flat.abs().max()),
        "embd_file": args.out_prefix.split("/")[-1] + ".embd.bin",
    }
    with open(args.out_prefix + ".json", "w") as f:
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()]
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
