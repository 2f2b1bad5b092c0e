"""The demo VLM in PyTorch, in SmolVLM's layout, and its export to llama.cpp-style GGUF.

Vision (Idefics3VisionTransformer / SigLIP semantics): Conv2d patch embedding with bias,
learned positions, pre-LN encoder layers (q/k/v/out biases, scale head_dim^-0.5,
gelu_pytorch_tanh MLP), post LayerNorm; Idefics3Connector: pixel_shuffle by `scale`, then
one linear layer without bias. Text (LlamaForCausalLM): RMSNorm, rotate_half RoPE, GQA,
SwiGLU, tied output embedding.

Export follows llama.cpp's converters: text.gguf (arch llama, Q/K rows permuted for
adjacent-pair rope) and mmproj.gguf (arch clip, projector idefics3). Matrices are written
F16, norms, biases and positions F32.
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from vision_reference import Vision as ReferenceVision  # noqa: E402


class Config:
    image_size = 128
    patch = 8
    v_hidden = 128
    v_layers = 4
    v_heads = 4
    v_ffn = 384
    scale = 2
    hidden = 256
    layers = 4
    heads = 4
    kv_heads = 2
    ffn = 640
    vocab = 512
    context = 1024
    rope_base = 10000.0
    rms_eps = 1e-5
    ln_eps = 1e-6

    def __init__(self, **kw):
        for k, v in kw.items():
            assert hasattr(self, k), k
            setattr(self, k, v)

    def as_dict(self):
        return {k: getattr(self, k) for k in dir(Config)
                if not k.startswith("_") and not callable(getattr(Config, k))}

    @property
    def tokens_per_image(self):
        return (self.image_size // self.patch // self.scale) ** 2


class VisionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c.v_hidden
        self.heads = c.v_heads
        self.ln1 = nn.LayerNorm(d, eps=c.ln_eps)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d, eps=c.ln_eps)
        self.up = nn.Linear(d, c.v_ffn)
        self.down = nn.Linear(c.v_ffn, d)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.heads
        h = self.ln1(x)
        q, k, v = (m(h).view(B, T, self.heads, hd).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v) if hasattr(F, "scaled_dot_product_attention") \
            else torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, D))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class Vision(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        n = (c.image_size // c.patch) ** 2
        self.patch = nn.Conv2d(3, c.v_hidden, c.patch, stride=c.patch)
        self.pos = nn.Parameter(torch.randn(n, c.v_hidden) * 0.02)
        self.layers = nn.ModuleList(VisionLayer(c) for _ in range(c.v_layers))
        self.post_ln = nn.LayerNorm(c.v_hidden, eps=c.ln_eps)
        self.fc = nn.Linear(c.v_hidden * c.scale ** 2, c.hidden, bias=False)

    # transformers' Idefics3Connector.pixel_shuffle, as the fixtures' reference writes it.
    pixel_shuffle = staticmethod(ReferenceVision.pixel_shuffle)

    def features(self, pixels):  # [B, 3, S, S] normalized -> [B, patches, v_hidden]
        x = self.patch(pixels).flatten(2).transpose(1, 2) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.post_ln(x)

    def project(self, f):  # -> [B, tokens, hidden]
        return self.fc(self.pixel_shuffle(f, self.c.scale))

    def forward(self, pixels):
        return self.project(self.features(pixels))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class TextLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        hd = c.hidden // c.heads
        self.attn_norm = RMSNorm(c.hidden, c.rms_eps)
        self.q = nn.Linear(c.hidden, c.heads * hd, bias=False)
        self.k = nn.Linear(c.hidden, c.kv_heads * hd, bias=False)
        self.v = nn.Linear(c.hidden, c.kv_heads * hd, bias=False)
        self.o = nn.Linear(c.heads * hd, c.hidden, bias=False)
        self.ffn_norm = RMSNorm(c.hidden, c.rms_eps)
        self.gate = nn.Linear(c.hidden, c.ffn, bias=False)
        self.up = nn.Linear(c.hidden, c.ffn, bias=False)
        self.down = nn.Linear(c.ffn, c.hidden, bias=False)

    def forward(self, x, cos, sin, mask, probs_out=None):
        c = self.c
        B, T, D = x.shape
        hd = D // c.heads
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, c.heads, hd).transpose(1, 2)
        k = self.k(h).view(B, T, c.kv_heads, hd).transpose(1, 2)
        v = self.v(h).view(B, T, c.kv_heads, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c.heads // c.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        p = torch.softmax(s, -1)
        if probs_out is not None:
            probs_out.append(p[:, 0])  # head 0: [B, T, T]
        a = p @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, D))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Text(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embd = nn.Embedding(c.vocab, c.hidden)
        nn.init.normal_(self.embd.weight, std=0.02)
        self.layers = nn.ModuleList(TextLayer(c) for _ in range(c.layers))
        self.out_norm = RMSNorm(c.hidden, c.rms_eps)

    def rope(self, T, device=None):
        hd = self.c.hidden // self.c.heads
        inv = 1.0 / (self.c.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        f = torch.arange(T, dtype=torch.float32)[:, None] * inv[None]
        e = torch.cat((f, f), -1)
        return e.cos(), e.sin()

    def forward(self, x, probs_out=None):
        """x: [B, T, hidden] input embeddings -> logits [B, T, vocab]; probs_out (a list)
        receives every layer's head-0 attention probabilities [B, T, T], in layer order."""
        T = x.shape[1]
        cos, sin = self.rope(T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, probs_out)
        return self.out_norm(x) @ self.embd.weight.T


class DemoVlm(nn.Module):
    def __init__(self, c, aux_classes=0):
        super().__init__()
        self.c = c
        self.vision = Vision(c)
        self.text = Text(c)
        # Training only (not exported): predicts the characters of the left and the right
        # cell of each image token from its projected embedding.
        self.aux = nn.Linear(c.hidden, 2 * aux_classes) if aux_classes else None

    def forward(self, pixels, tokens, image_mask, with_aux=False):
        """tokens [B, T]; image_mask [B, T] bool, a whole number of images' worth of True per
        row (the <image> positions, in order; a row with k * tokens_per_image of them gets
        the picture k times, as llama.cpp's one-tile layout sends it) -> logits [B, T, vocab]
        (and, with_aux, the cell character logits [B, tokens, 2 * aux_classes] and the
        head-0 attention probabilities of every text layer)."""
        x = self.text.embd(tokens)
        img = self.vision(pixels)  # [B, n, hidden]
        x = x.clone()
        n = img.shape[1]
        reps = (image_mask.sum(1) // n).tolist()
        x[image_mask] = torch.cat([img[b].repeat(r, 1) for b, r in enumerate(reps)]).to(x.dtype)
        if with_aux:
            probs = []
            logits = self.text(x, probs)
            return logits, self.aux(img), probs
        return self.text(x)


# ---------------------------------------------------------------- GGUF export
GGUF_F32, GGUF_F16 = 0, 1
KV_U32, KV_I32, KV_F32, KV_BOOL, KV_STR, KV_ARR = 4, 5, 6, 7, 8, 9


class GgufWriter:
    """GGUF v3: header, key/values, tensor infos, 32-byte aligned data."""

    def __init__(self):
        self.kv = []
        self.tensors = []

    def add(self, key, kind, value, elem=None):
        self.kv.append((key, kind, value, elem))

    def tensor(self, name, array, f16=False):
        a = np.ascontiguousarray(array, dtype=np.float16 if f16 else np.float32)
        self.tensors.append((name, a, GGUF_F16 if f16 else GGUF_F32))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, kind, v, elem):
        if kind == KV_STR:
            return self._str(v)
        if kind == KV_ARR:
            body = b"".join(self._value(elem, x, None) for x in v)
            return struct.pack("<IQ", elem, len(v)) + body
        return struct.pack({KV_U32: "<I", KV_I32: "<i", KV_F32: "<f", KV_BOOL: "<?"}[kind], v)

    def write(self, path):
        out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
        for key, kind, value, elem in self.kv:
            out += self._str(key) + struct.pack("<I", kind) + self._value(kind, value, elem)
        offset = 0
        blobs = []
        for name, a, ty in self.tensors:
            out += self._str(name) + struct.pack("<I", a.ndim)
            out += b"".join(struct.pack("<Q", d) for d in reversed(a.shape))  # ne0 first
            out += struct.pack("<IQ", ty, offset)
            blob = a.tobytes()
            pad = (-len(blob)) % 32
            blobs.append(blob + b"\0" * pad)
            offset += len(blob) + pad
        out += b"\0" * ((-len(out)) % 32)
        with open(path, "wb") as f:
            f.write(out)
            for b in blobs:
                f.write(b)


def _np(t):
    return t.detach().to(torch.float32).cpu().numpy()


def permute_qk(w, n_head):
    """llama.cpp convert_hf_to_gguf LlamaModel.permute: HF rotate_half rows -> adjacent pairs."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def export(model, vocab, name, text_path, mmproj_path):
    """vocab: dict with tokens, token_type, merges, bos, eos, pad, pre, chat_template."""
    c = model.c
    t = model.text
    w = GgufWriter()
    a = "llama"
    w.add("general.architecture", KV_STR, a)
    w.add("general.name", KV_STR, name)
    w.add(f"{a}.context_length", KV_U32, c.context)
    w.add(f"{a}.embedding_length", KV_U32, c.hidden)
    w.add(f"{a}.block_count", KV_U32, c.layers)
    w.add(f"{a}.feed_forward_length", KV_U32, c.ffn)
    w.add(f"{a}.attention.head_count", KV_U32, c.heads)
    w.add(f"{a}.attention.head_count_kv", KV_U32, c.kv_heads)
    w.add(f"{a}.attention.layer_norm_rms_epsilon", KV_F32, c.rms_eps)
    w.add(f"{a}.rope.freq_base", KV_F32, c.rope_base)
    w.add(f"{a}.rope.dimension_count", KV_U32, c.hidden // c.heads)
    w.add(f"{a}.vocab_size", KV_U32, c.vocab)
    w.add("tokenizer.ggml.model", KV_STR, "gpt2")
    w.add("tokenizer.ggml.pre", KV_STR, vocab["pre"])
    w.add("tokenizer.ggml.tokens", KV_ARR, vocab["tokens"], KV_STR)
    w.add("tokenizer.ggml.token_type", KV_ARR, vocab["token_type"], KV_I32)
    w.add("tokenizer.ggml.merges", KV_ARR, vocab["merges"], KV_STR)
    w.add("tokenizer.ggml.bos_token_id", KV_U32, vocab["bos"])
    w.add("tokenizer.ggml.eos_token_id", KV_U32, vocab["eos"])
    w.add("tokenizer.ggml.padding_token_id", KV_U32, vocab["pad"])
    w.add("tokenizer.ggml.add_bos_token", KV_BOOL, False)
    w.add("tokenizer.chat_template", KV_STR, vocab["chat_template"])
    w.tensor("token_embd.weight", _np(t.embd.weight), f16=True)
    for i, L in enumerate(t.layers):
        p = f"blk.{i}."
        w.tensor(p + "attn_norm.weight", _np(L.attn_norm.weight))
        w.tensor(p + "attn_q.weight", permute_qk(_np(L.q.weight), c.heads), f16=True)
        w.tensor(p + "attn_k.weight", permute_qk(_np(L.k.weight), c.kv_heads), f16=True)
        w.tensor(p + "attn_v.weight", _np(L.v.weight), f16=True)
        w.tensor(p + "attn_output.weight", _np(L.o.weight), f16=True)
        w.tensor(p + "ffn_norm.weight", _np(L.ffn_norm.weight))
        w.tensor(p + "ffn_gate.weight", _np(L.gate.weight), f16=True)
        w.tensor(p + "ffn_up.weight", _np(L.up.weight), f16=True)
        w.tensor(p + "ffn_down.weight", _np(L.down.weight), f16=True)
    w.tensor("output_norm.weight", _np(t.out_norm.weight))
    w.write(text_path)

    v = model.vision
    m = GgufWriter()
    m.add("general.architecture", KV_STR, "clip")
    m.add("general.name", KV_STR, name + "-mmproj")
    m.add("clip.has_vision_encoder", KV_BOOL, True)
    m.add("clip.has_text_encoder", KV_BOOL, False)
    m.add("clip.projector_type", KV_STR, "idefics3")
    m.add("clip.use_gelu", KV_BOOL, True)
    p = "clip.vision."
    m.add(p + "image_size", KV_U32, c.image_size)
    m.add(p + "patch_size", KV_U32, c.patch)
    m.add(p + "embedding_length", KV_U32, c.v_hidden)
    m.add(p + "feed_forward_length", KV_U32, c.v_ffn)
    m.add(p + "block_count", KV_U32, c.v_layers)
    m.add(p + "attention.head_count", KV_U32, c.v_heads)
    m.add(p + "attention.layer_norm_epsilon", KV_F32, c.ln_eps)
    m.add(p + "projection_dim", KV_U32, c.hidden)
    m.add(p + "image_mean", KV_ARR, [0.5, 0.5, 0.5], KV_F32)
    m.add(p + "image_std", KV_ARR, [0.5, 0.5, 0.5], KV_F32)
    m.add(p + "projector.scale_factor", KV_U32, c.scale)
    # One tile: the longest edge goes to image_size, so every picture is one global image.
    m.add(p + "preproc_image_size", KV_U32, c.image_size)
    m.tensor("v.patch_embd.weight", _np(v.patch.weight), f16=True)
    m.tensor("v.patch_embd.bias", _np(v.patch.bias))
    m.tensor("v.position_embd.weight", _np(v.pos))
    for i, L in enumerate(v.layers):
        b = f"v.blk.{i}."
        for name_, mod in (("ln1", L.ln1), ("ln2", L.ln2)):
            m.tensor(b + name_ + ".weight", _np(mod.weight))
            m.tensor(b + name_ + ".bias", _np(mod.bias))
        for name_, mod in (("attn_q", L.q), ("attn_k", L.k), ("attn_v", L.v), ("attn_out", L.o),
                           ("ffn_up", L.up), ("ffn_down", L.down)):
            m.tensor(b + name_ + ".weight", _np(mod.weight), f16=True)
            m.tensor(b + name_ + ".bias", _np(mod.bias))
    m.tensor("v.post_ln.weight", _np(v.post_ln.weight))
    m.tensor("v.post_ln.bias", _np(v.post_ln.bias))
    m.tensor("mm.model.fc.weight", _np(v.fc.weight), f16=True)
    m.write(mmproj_path)
