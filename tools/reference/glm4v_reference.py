#!/usr/bin/python3
"""PyTorch reference for vlserve's GLM-4.1V family (glm4 text + glm4v mmproj).

Written from the Hugging Face semantics (transformers' models/glm4v: modeling_glm4v.py,
image_processing_glm4v.py / image_processing_pil_glm4v.py, processing_glm4v.py), float64
throughout. The GGUFs are read with gguf_min.py and llama.cpp's converter transformations
are undone so the maths follows HF's modules:
  * Preprocessing (Glm4vImageProcessor, PIL path): smart_resize(num_frames = 2, h, w,
    temporal_factor 2, factor = patch * merge = 28, min_pixels, max_pixels): sides < 28 are
    first scaled up (int()), round() to multiples of 28 (Python round: ties to even), then
    the pixel bounds apply to t_bar * h_bar * w_bar = 2 * h_bar * w_bar (floor after
    scaling down, at least 28; ceil after scaling up); PIL BICUBIC, x/255, CLIP mean/std.
  * Vision tower (Glm4vVisionModel.forward):
      - patch_embed: Conv3d [d, 3, 2, p, p] WITH bias over the processor's flattened patches
        (a still image repeated twice in time, rows grouped by 2x2 merge windows); the GGUF
        holds the two temporal slices as v.patch_embd.weight / .weight.1 and
        v.patch_embd.bias;
      - post_conv_layernorm: RMSNorm (v.norm_embd.weight, eps clip.vision.attention.
        layer_norm_epsilon = HF vision rms_norm_eps);
      - embeddings: the learned (image_size / patch)^2 table (v.position_embd.weight, rows
        y * n + x) viewed as [1, d, n, n] and sampled at every patch (h, w) with
        F.grid_sample(mode bicubic, align_corners False, padding_mode border) at
        ((w + 0.5) / grid_w * 2 - 1, (h + 0.5) / grid_h * 2 - 1), added to the patches;
      - 2-D rotary (Glm4vVisionRotaryEmbedding(head_dim / 2), theta 10000, h freqs then w
        freqs, emb = cat(f, f), rotate_half) on q and k;
      - blocks: x + proj(attn(norm1(x))); x + mlp(norm2(x)); norm1/norm2 RMSNorm; fused qkv
        (v.blk.i.attn_qkv: rows q, k, v; separate attn_q/k/v also accepted), full
        bidirectional attention over one image, scale head_dim^-0.5, proj (attn_out, no
        bias in HF); Glm4VisionMlp: down(act(gate(x)) * up(x)), act = hidden_act (silu:
        clip.use_silu);
      - post_layernorm: RMSNorm (v.post_ln.weight);
      - downsample: view(-1, 2, 2, d).permute(0, 3, 1, 2) -> Conv2d(d, out, 2, stride 2)
        with bias (mm.patch_merger.weight / .bias);
      - Glm4vVisionPatchMerger: proj (mm.model.fc, no bias) -> nn.LayerNorm (mm.post_norm,
        eps 1e-5, HF's default) -> nn.GELU() (erf) -> down(act(gate(h)) * up(h)) (mm.gate,
        mm.up, mm.down).
    Output rows come out in merged-grid row-major order (one row per 2x2 window).
  * get_rope_index (Glm4vModel): tokens grouped into runs of image / text; a text run takes
    st..st+len-1 on all axes, an image run (t, st + row, st + col) over the merged grid,
    st = previous max + 1. Generated token j takes max + 1 + j on all axes (rope_deltas).
  * Language model (Glm4vTextModel): embeddings (image rows replace the <|image|> tokens in
    order, masked_scatter); per layer: r = x; x = r + post_self_attn_layernorm(attn(
    input_layernorm(x))); r = x; x = r + post_mlp_layernorm(mlp(post_attention_layernorm(
    x))) (GGUF: attn_norm, post_attention_norm, ffn_norm, post_ffw_norm; RMSNorm); q/k/v
    with biases, o_proj without; M-RoPE (Glm4vTextRotaryEmbedding with partial_rotary_factor:
    inv_freq over rope dim n_rot = glm4.rope.dimension_count; apply_multimodal_rotary_pos_emb:
    cos/sin cat(f, f) split by mrope_section * 2 with chunk i from axis i % 3, then the
    first half repeat_interleave(2) and rotate_half_llm on interleaved pairs of the first
    n_rot dims; the rest pass through); MLP gate_up_proj fused (GGUF ffn_up [2 ff, hidden]:
    gate rows first) -> up * silu(gate) -> down; final norm, lm_head.
    llama.cpp's converter permutes the rotary part of each head's q/k rows (weights and
    biases) from interleaved to NeoX order (Glm4Model.normal_to_neox, done only when the
    config has mrope_section, because ggml's M-RoPE is NeoX-only); we undo it here and apply
    HF's interleaved rotation, so the fixtures check vlserve's rope on the stored rows.
  * Prompt: GLM-4.1V's chat template for one user turn with two images,
    [gMASK]<sop><|user|>\\n<|begin_of_image|><|image|><|end_of_image|>Describe this.
    <|begin_of_image|><|image|><|end_of_image|>Compare both.<|assistant|>\\n, each
    <|image|> repeated (H/28)*(W/28) times (Glm4vProcessor), tokenized with
    vision_reference.Bpe using the GLM-4 pre-tokenizer regex (ASCII form).

The images fed to the tower are closed-form normalized pixels (qwen2vl_reference.
image_values; the C++ test computes the same formula), so preprocessing is checked
separately (--preprocess).

usage: glm4v_reference.py TEXT.gguf MMPROJ.gguf OUT_PREFIX --images 56x84,84x56
           [--steps 16] [--command "how the models were made"]
       writes OUT_PREFIX.json, OUT_PREFIX.embd.bin (float32 [image tokens, text_hidden],
       images in order) and OUT_PREFIX.logits.bin (float32 [prompt_len, vocab]).
       --image-files a.png,b.png [--min-pixels N --max-pixels N] instead of --images runs
       real images through the preprocessing too (an end-to-end check; no fixture uses it).
usage: glm4v_reference.py --preprocess IMAGE OUT_PREFIX --mean a,b,c --std a,b,c
           [--min-pixels N] [--max-pixels N]
       writes OUT_PREFIX.json and OUT_PREFIX.pixels.bin (float32 [3, H, W]).
usage: glm4v_reference.py --smart-resize-table OUT.json
usage: glm4v_reference.py --self-test TEXT.gguf MMPROJ.gguf
       internal consistency checks (see self_test).
"""
import argparse
import itertools
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

import qwen2vl_reference as q2
from gguf_min import Reader
from text_reference import fnv1a64
from vision_reference import Bpe

PROMPT = ("[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>Describe this."
          "<|begin_of_image|><|image|><|end_of_image|>Compare both.<|assistant|>\n")
IMAGE_TOKEN = "<|image|>"

# GLM-4's pre-tokenizer (llama.cpp LLAMA_VOCAB_PRE_TYPE_CHATGLM4 = tokenizer.json's Split),
# with \p{L} -> [A-Za-z] and \p{N} -> [0-9]: exact for ASCII text only.
GLM4_SPLIT = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
              r"|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")

# Glm4vImageProcessor defaults (size.shortest_edge / longest_edge, compared with
# 2 * h_bar * w_bar).
DEFAULT_MIN_PIXELS = 112 * 112
DEFAULT_MAX_PIXELS = 28 * 28 * 15000


# ----------------------------------------------------------------- preprocessing (HF)

def smart_resize(height, width, factor=28, min_pixels=DEFAULT_MIN_PIXELS,
                 max_pixels=DEFAULT_MAX_PIXELS, num_frames=2, temporal_factor=2):
    """transformers' glm4v smart_resize (image path: num_frames = temporal_patch_size)."""
    if num_frames < temporal_factor:
        raise ValueError(f"t:{num_frames} must be larger than temporal_factor:{temporal_factor}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height = int(height * scale)
        width = int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got "
                         f"{max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def preprocess(rgb8, mean, std, min_pixels, max_pixels, patch=14, merge=2):
    """[H, W, 3] uint8 -> (float32 [3, h_bar, w_bar], (h_bar, w_bar))."""
    from PIL import Image
    from media_fixtures import hf_normalize  # rescale (float64 * 1/255 -> f32), normalize
    h, w = rgb8.shape[:2]
    hb, wb = smart_resize(h, w, patch * merge, min_pixels, max_pixels)
    img = np.asarray(Image.fromarray(rgb8).resize((wb, hb), Image.Resampling.BICUBIC))
    return hf_normalize(img, mean, std), (hb, wb)


# ----------------------------------------------------------------- vision tower (HF)

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def bicubic_weights(t, a=-0.75):
    """PyTorch's cubic convolution weights for the 4 taps at offsets -1, 0, 1, 2."""
    def w1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def w2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return [w2(t + 1), w1(t), w1(1 - t), w2(2 - t)]


class Vision(q2.Vision):
    """GLM-4.1V's tower. Reuses qwen2vl_reference.Vision's flatten_patches (same processor
    layout), rot_pos_ids, rotary and rotate_half (Glm4vVisionModel.rot_pos_emb and
    Glm4vVisionRotaryEmbedding are Qwen2-VL's)."""

    LN_EPS = 1e-5  # the merger's nn.LayerNorm(dim): PyTorch's default eps

    def __init__(self, path):  # pylint: disable=super-init-not-called
        r = Reader(path)
        m = r.meta
        assert m["general.architecture"] == "clip"
        self.proj = m["clip.projector_type"]
        if self.proj != "glm4v":
            raise ValueError(f"projector {self.proj} is not glm4v")
        v = "clip.vision."
        self.patch = m[v + "patch_size"]
        self.d = m[v + "embedding_length"]
        self.n_layers = m[v + "block_count"]
        self.heads = m[v + "attention.head_count"]
        self.eps = m[v + "attention.layer_norm_epsilon"]
        self.merge = m.get(v + "spatial_merge_size", 2)
        self.mean = [float(x) for x in m[v + "image_mean"]]
        self.std = [float(x) for x in m[v + "image_std"]]
        if m.get("clip.use_silu", False):
            self.act = F.silu
        elif m.get("clip.use_gelu", False):
            self.act = F.gelu  # HF ACT2FN["gelu"]: erf
        else:
            raise ValueError("GLM-4.1V's MLPs are gated: clip.use_silu (or use_gelu) must be set")
        self.reader = r

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.t = t
        w0, w1 = t("v.patch_embd.weight"), t("v.patch_embd.weight.1")  # [d, 3, p, p] each
        self.conv3d = torch.stack([w0, w1], dim=2)  # HF PatchEmbed.proj.weight [d, 3, 2, p, p]
        self.conv3d_bias = t("v.patch_embd.bias")
        assert self.conv3d_bias is not None, "glm4v's patch embedding has a bias"
        pos = t("v.position_embd.weight")  # [n * n, d]
        self.pos_side = int(round(math.sqrt(pos.shape[0])))
        assert self.pos_side ** 2 == pos.shape[0], pos.shape
        self.pos_table = pos
        self.out_dim = t("mm.down.weight").shape[0]

    def fixture_meta(self):
        return {"position_table_side": self.pos_side, "vision_eps": self.eps}

    def lin(self, x, name, need_bias=False):
        w, b = self.t(name + ".weight"), self.t(name + ".bias")
        assert b is not None or not need_bias, name
        y = x @ w.T
        return y if b is None else y + b

    def pos_embed(self, pos_ids, gh, gw):
        """Glm4vVisionEmbeddings: bicubic grid_sample of the table at each patch (h, w)."""
        n, d = self.pos_side, self.d
        table = self.pos_table.view(n, n, d).permute(2, 0, 1).unsqueeze(0)  # [1, d, n, n]
        h = pos_ids[:, 0].to(torch.float64)
        w = pos_ids[:, 1].to(torch.float64)
        norm_w = ((w + 0.5) / gw) * 2 - 1
        norm_h = ((h + 0.5) / gh) * 2 - 1
        grid = torch.stack((norm_w, norm_h), dim=-1).unsqueeze(0).unsqueeze(2)  # [1, N, 1, 2]
        out = F.grid_sample(table, grid, mode="bicubic", align_corners=False,
                            padding_mode="border")
        return out.squeeze(0).squeeze(-1).permute(1, 0)  # [N, d]

    def pos_embed_by_hand(self, gh, gw):
        """[gh, gw, d]: the same table resized by separable cubic convolution (a = -0.75,
        half-pixel centres, taps clamped to the border) — a self-test of pos_embed."""
        n, tab = self.pos_side, self.pos_table.view(self.pos_side, self.pos_side, self.d)

        def taps(i, size):
            src = (i + 0.5) * n / size - 0.5
            i0 = math.floor(src)
            ws = bicubic_weights(src - i0)
            return [(min(max(i0 - 1 + k, 0), n - 1), ws[k]) for k in range(4)]

        out = torch.zeros(gh, gw, self.d, dtype=torch.float64)
        for y in range(gh):
            for x in range(gw):
                for yy, wy in taps(y, gh):
                    for xx, wx in taps(x, gw):
                        out[y, x] += wy * wx * tab[yy, xx]
        return out

    def qkv(self, p, h):
        N = h.shape[0]
        if p + "attn_qkv.weight" in self.reader.tensors:
            q, k, v = self.lin(h, p + "attn_qkv").view(N, 3, self.d).unbind(1)
        else:
            q, k, v = (self.lin(h, p + n) for n in ("attn_q", "attn_k", "attn_v"))
        hd = self.d // self.heads
        return (z.reshape(N, self.heads, hd) for z in (q, k, v))

    def blocks(self, x, cos, sin):
        """x [N, d] -> [N, d]; full attention over the N patches of one image."""
        t = self.t
        N, hd = x.shape[0], self.d // self.heads
        for i in range(self.n_layers):
            p = f"v.blk.{i}."
            h = rms_norm(x, t(p + "ln1.weight"), self.eps)
            q, k, v = self.qkv(p, h)
            q = q * cos[:, None] + self.rotate_half(q) * sin[:, None]
            k = k * cos[:, None] + self.rotate_half(k) * sin[:, None]
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, N, hd]
            a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1) @ v
            x = x + self.lin(a.transpose(0, 1).reshape(N, self.d), p + "attn_out")
            h = rms_norm(x, t(p + "ln2.weight"), self.eps)
            x = x + self.lin(self.act(self.lin(h, p + "ffn_gate")) * self.lin(h, p + "ffn_up"),
                             p + "ffn_down")
        return x

    def merger(self, h):
        """Glm4vVisionPatchMerger on [T, out]."""
        t = self.t
        h = self.lin(h, "mm.model.fc")
        h = F.layer_norm(h, (h.shape[-1],), t("mm.post_norm.weight"), t("mm.post_norm.bias"),
                         self.LN_EPS)
        h = F.gelu(h)  # act1 = nn.GELU(): erf
        return self.lin(self.act(self.lin(h, "mm.gate")) * self.lin(h, "mm.up"), "mm.down")

    def embed(self, flat, gh, gw):
        """Patch embedding + post-conv norm + position table; flat in HF patch order."""
        x = flat @ self.conv3d.reshape(self.d, -1).T + self.conv3d_bias
        x = rms_norm(x, self.t("v.norm_embd.weight"), self.eps)
        pos_ids = self.rot_pos_ids(gh, gw)
        return x + self.pos_embed(pos_ids, gh, gw), pos_ids

    def encode(self, pixels):
        """pixels [3, H, W] (normalized) -> [(H / 28) * (W / 28), text_hidden], rows in
        merged-grid row-major order."""
        m = self.merge
        flat, (_, gh, gw) = self.flatten_patches(pixels)
        x, pos_ids = self.embed(flat, gh, gw)
        cos, sin = self.rotary(pos_ids)
        x = rms_norm(self.blocks(x, cos, sin), self.t("v.post_ln.weight"), self.eps)
        x = x.view(-1, m, m, self.d).permute(0, 3, 1, 2)  # [T, d, dy, dx]
        x = F.conv2d(x, self.t("mm.patch_merger.weight"), self.t("mm.patch_merger.bias"),
                     stride=m)
        return self.merger(x.reshape(x.shape[0], -1))

    def encode_row_major(self, pixels):
        """The same tower computed another way (self-test): conv2d with W0 + W1 over
        row-major patches, the hand-written bicubic table, (y, x) rotary positions, and the
        downsample as an explicit 2x2 gather + matmul."""
        t, p, m, d = self.t, self.patch, self.merge, self.d
        w = t("v.patch_embd.weight") + t("v.patch_embd.weight.1")
        x = F.conv2d(pixels[None], w, self.conv3d_bias, stride=p)[0]  # [d, gh, gw]
        gh, gw = x.shape[1:]
        x = rms_norm(x.flatten(1).T, t("v.norm_embd.weight"), self.eps)  # [gh * gw, d]
        x = x + self.pos_embed_by_hand(gh, gw).reshape(gh * gw, d)
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        cos, sin = self.rotary(torch.stack([yy.flatten(), xx.flatten()], dim=-1))
        x = rms_norm(self.blocks(x, cos, sin), t("v.post_ln.weight"), self.eps)
        x = x.reshape(gh, gw, d)
        wd = t("mm.patch_merger.weight")  # [out, d, dy, dx]
        rows = []
        for Y in range(gh // m):
            for X in range(gw // m):
                acc = t("mm.patch_merger.bias").clone()
                for dy in range(m):
                    for dx in range(m):
                        acc = acc + wd[:, :, dy, dx] @ x[m * Y + dy, m * X + dx]
                rows.append(acc)
        return self.merger(torch.stack(rows))


# ----------------------------------------------------------------- language model (HF)

class Text:
    """Glm4vTextModel + lm_head from a glm4 GGUF."""

    def __init__(self, path):
        r = Reader(path)
        self.reader = r
        m = r.meta
        a = m["general.architecture"]
        if a != "glm4":
            raise ValueError(f"architecture {a} is not glm4")
        self.arch = a
        self.hidden = m[f"{a}.embedding_length"]
        self.n_layers = m[f"{a}.block_count"]
        self.n_heads = m[f"{a}.attention.head_count"]
        self.n_kv = m.get(f"{a}.attention.head_count_kv", self.n_heads)
        self.hd = m.get(f"{a}.attention.key_length", self.hidden // self.n_heads)
        self.eps = m[f"{a}.attention.layer_norm_rms_epsilon"]
        self.base = m.get(f"{a}.rope.freq_base", 10000.0)
        self.n_rot = m.get(f"{a}.rope.dimension_count", self.hd)
        secs = m.get(f"{a}.rope.dimension_sections")
        # llama.cpp's use_mrope(): sections present (converter wrote mrope_section).
        self.mrope_sections = list(secs) if secs is not None and any(secs) else None
        # Without sections the converter left q/k alone (plain GLM-4: llama.cpp rope NORM =
        # HF's interleaved pairs) and equal t/h/w positions make any split the same.
        self.sections = self.mrope_sections[:3] if self.mrope_sections else [self.n_rot // 2, 0, 0]
        assert sum(self.sections) * 2 == self.n_rot, (self.sections, self.n_rot)

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.embd = t("token_embd.weight")
        self.vocab = self.embd.shape[0]
        self.out = t("output.weight") if "output.weight" in r.tensors else self.embd
        self.out_norm = t("output_norm.weight")
        self.layers = []
        for i in range(self.n_layers):
            p = f"blk.{i}."
            L = {k: t(p + k + ".weight") for k in (
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "post_attention_norm",
                "ffn_norm", "ffn_up", "ffn_gate", "ffn_down", "post_ffw_norm")}
            for b in ("attn_q", "attn_k", "attn_v", "attn_output"):
                L[b + "_bias"] = t(p + b + ".bias")
            if self.mrope_sections:
                for name, n in (("attn_q", self.n_heads), ("attn_k", self.n_kv)):
                    L[name] = self.neox_to_normal(L[name], n)
                    if L[name + "_bias"] is not None:
                        L[name + "_bias"] = self.neox_to_normal(L[name + "_bias"], n)
            self.layers.append(L)

    def neox_to_normal(self, w, n_head):
        """Undoes Glm4Model.normal_to_neox: per head, the first n_rot rows were stored as
        [even rows, odd rows] of HF's; the other head_dim - n_rot rows are untouched."""
        shape = w.shape
        x = w.reshape(n_head, self.hd, -1).clone()
        half = self.n_rot // 2
        rot = x[:, :self.n_rot].clone()
        x[:, 0:self.n_rot:2] = rot[:, :half]
        x[:, 1:self.n_rot:2] = rot[:, half:]
        return x.reshape(shape)

    def normal_to_neox(self, w, n_head):
        """The converter's permutation (self-test)."""
        shape = w.shape
        x = w.reshape(n_head, self.hd, -1)
        rot = x[:, :self.n_rot]
        return torch.cat((rot[:, 0::2], rot[:, 1::2], x[:, self.n_rot:]), dim=1).reshape(shape)

    def inv_freq(self):
        return 1.0 / (self.base ** (torch.arange(0, self.n_rot, 2, dtype=torch.float64)
                                    / self.n_rot))

    def cos_sin(self, positions):
        """Glm4vTextRotaryEmbedding + apply_multimodal_rotary_pos_emb's table assembly:
        positions [T, 3] -> (cos, sin) [T, n_rot], interleaved pairs."""
        pos = positions.T.to(torch.float64)  # [3, T]
        freqs = pos[:, :, None] * self.inv_freq()[None, None, :]  # [3, T, n_rot / 2]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        split = self.sections * 2
        cos = torch.cat([c[i % 3] for i, c in enumerate(cos.split(split, dim=-1))], dim=-1)
        sin = torch.cat([s[i % 3] for i, s in enumerate(sin.split(split, dim=-1))], dim=-1)
        half = cos.shape[-1] // 2
        return (cos[..., :half].repeat_interleave(2, dim=-1),
                sin[..., :half].repeat_interleave(2, dim=-1))

    @staticmethod
    def rotate_half_llm(x):
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((-x2, x1), dim=-1).flatten(-2)

    def rope(self, x, cos, sin):
        """x [H, T, hd]: rotate the first n_rot dims in interleaved pairs."""
        r, rest = x[..., :self.n_rot], x[..., self.n_rot:]
        return torch.cat([r * cos + self.rotate_half_llm(r) * sin, rest], dim=-1)

    def rms(self, x, w):
        return rms_norm(x, w, self.eps)

    def forward(self, tokens, image_rows=None, positions=None, rope=None):
        """image_rows: {position: embedding row}; positions [T, 3] (default 0..T-1 on all
        axes); rope: optional replacement of self.rope (self-test)."""
        T = len(tokens)
        x = self.embd[torch.tensor(tokens)].clone()
        for pos, row in (image_rows or {}).items():
            x[pos] = row
        if positions is None:
            positions = torch.arange(T)[:, None].expand(-1, 3)
        cos, sin = self.cos_sin(positions)
        rope = rope or (lambda z: self.rope(z, cos, sin))
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        rep = self.n_heads // self.n_kv

        def lin(h, L, name):
            y = h @ L[name].T
            return y if L[name + "_bias"] is None else y + L[name + "_bias"]

        for L in self.layers:
            h = self.rms(x, L["attn_norm"])
            q = lin(h, L, "attn_q").view(T, self.n_heads, self.hd).transpose(0, 1)
            k = lin(h, L, "attn_k").view(T, self.n_kv, self.hd).transpose(0, 1)
            v = lin(h, L, "attn_v").view(T, self.n_kv, self.hd).transpose(0, 1)
            q, k = rope(q), rope(k)
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
            s = q @ k.transpose(1, 2) * self.hd ** -0.5 + mask
            o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, self.n_heads * self.hd)
            x = x + self.rms(lin(o, L, "attn_output"), L["post_attention_norm"])
            h = self.rms(x, L["ffn_norm"])
            if L["ffn_gate"] is None:  # fused gate_up_proj: gate rows first
                gate, up = (h @ L["ffn_up"].T).chunk(2, dim=-1)
            else:
                gate, up = h @ L["ffn_gate"].T, h @ L["ffn_up"].T
            x = x + self.rms((up * F.silu(gate)) @ L["ffn_down"].T, L["post_ffw_norm"])
        return self.rms(x, self.out_norm) @ self.out.T  # [T, vocab]


class Glm4Bpe(Bpe):
    def encode(self, text):
        assert text.isascii(), "the reference's GLM-4 split is exact for ASCII only"
        out = []
        pattern = "(" + "|".join(re.escape(s) for s in self.specials) + ")"
        for piece in re.split(pattern, text):
            if piece in self.specials:
                out.append(self.ids[piece])
                continue
            for w in re.findall(GLM4_SPLIT, piece):
                out.extend(self._word(w))
        return out


def get_rope_index(tokens, grids, image_token, merge=2):
    """Glm4vModel.get_rope_index for one sequence of text and images (no video).
    grids: per image (t, h, w) in patches. Returns [T, 3] (t, h, w) positions."""
    types = ["image" if tk == image_token else "text" for tk in tokens]
    parts, image_index = [], 0
    for key, group in itertools.groupby(enumerate(types), lambda x: x[1]):
        group = list(group)
        start, end = group[0][0], group[-1][0] + 1
        st_idx = int(parts[-1].max()) + 1 if parts else 0
        if key == "image":
            gt, gh, gw = grids[image_index][0], grids[image_index][1] // merge, \
                grids[image_index][2] // merge
            assert gt * gh * gw == end - start, (gt, gh, gw, end - start)
            t_index = torch.arange(gt).view(-1, 1).expand(-1, gh * gw).flatten()
            h_index = torch.arange(gh).view(1, -1, 1).expand(gt, -1, gw).flatten()
            w_index = torch.arange(gw).view(1, 1, -1).expand(gt, gh, -1).flatten()
            parts.append(torch.stack([t_index, h_index, w_index]) + st_idx)
            image_index += 1
        else:
            parts.append(torch.arange(end - start).view(1, -1).expand(3, -1) + st_idx)
    assert image_index == len(grids), (image_index, len(grids))
    return torch.cat(parts, dim=1).T.contiguous()  # [T, 3]


def build_prompt(bpe, counts, prompt=PROMPT):
    """Expands each <|image|> to its image's token count (Glm4vProcessor)."""
    pieces = prompt.split(IMAGE_TOKEN)
    assert len(pieces) == len(counts) + 1
    text = pieces[0]
    for n, rest in zip(counts, pieces[1:]):
        text += IMAGE_TOKEN * n + rest
    return bpe.encode(text)


def run_model(args):
    vis = Vision(args.mmproj)
    text = Text(args.text)
    if text.mrope_sections is None:
        raise ValueError("the text model must be glm4 with glm4.rope.dimension_sections "
                         "(llama.cpp's converter writes them for GLM-4.1V)")
    factor = vis.patch * vis.merge
    if args.image_files:  # end to end: real images through the HF preprocessing
        from PIL import Image
        pixels = []
        for path in args.image_files.split(","):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            px, _ = preprocess(rgb, vis.mean, vis.std, args.min_pixels, args.max_pixels,
                               vis.patch, vis.merge)
            pixels.append(px)
    else:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.images.split(",")]
        pixels = [q2.image_values(k, H, W) for k, (H, W) in enumerate(sizes)]
    sizes = [tuple(px.shape[1:]) for px in pixels]
    embds, grids = [], []
    with torch.no_grad():
        for px in pixels:
            H, W = px.shape[1:]
            assert H % factor == 0 and W % factor == 0, f"{H}x{W}: not multiples of {factor}"
            embds.append(vis.encode(torch.tensor(px, dtype=torch.float64)))
            grids.append((1, H // vis.patch, W // vis.patch))
    assert embds[0].shape[1] == text.hidden, (embds[0].shape, text.hidden)
    counts = [e.shape[0] for e in embds]
    flat = torch.cat(embds)
    bpe = Glm4Bpe(text.reader)
    tokens = build_prompt(bpe, counts, args.prompt)
    img = bpe.ids[IMAGE_TOKEN]
    where = [i for i, tk in enumerate(tokens) if tk == img]
    assert len(where) == flat.shape[0], (len(where), flat.shape)
    rows_at = {p: flat[j] for j, p in enumerate(where)}  # masked_scatter: in order
    spans = []
    for j, p in enumerate(where):
        if j == 0 or where[j - 1] != p - 1:
            spans.append([p, 0])
        spans[-1][1] += 1
    positions = get_rope_index(tokens, grids, img, vis.merge)
    with torch.no_grad():
        logits = text.forward(tokens, rows_at, positions)
        seq, pos, greedy, margins = list(tokens), positions.clone(), [], []
        for _ in range(args.steps):
            last = text.forward(seq, rows_at, pos)[-1]
            top2 = torch.topk(last, 2).values
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            margins.append(round(float(top2[0] - top2[1]), 6))
            seq.append(nxt)
            pos = torch.cat([pos, (pos.max() + 1).view(1, 1).expand(1, 3)])  # rope_deltas
    flat.numpy().astype("<f4").tofile(args.out_prefix + ".embd.bin")
    logits.numpy().astype("<f4").tofile(args.out_prefix + ".logits.bin")
    digests = {}
    for key, path in (("text_fnv1a64", args.text), ("mmproj_fnv1a64", args.mmproj)):
        with open(path, "rb") as f:
            digests[key] = f"{fnv1a64(f.read()):016x}"
    base = os.path.basename(args.out_prefix)
    meta = {
        "command": args.command,
        **digests,
        "projector": vis.proj,
        **vis.fixture_meta(),
        "mrope_sections": list(text.mrope_sections),
        "rope_dims": text.n_rot,
        "images": [list(s) for s in sizes],
        "grids_thw": [list(g) for g in grids],
        "tokens_per_image": counts,
        "prompt": args.prompt,
        "prompt_tokens": tokens,
        "spans": spans,
        "positions": positions.tolist(),
        "greedy": greedy,
        "greedy_margins": margins,
        "max_abs_embd": float(flat.abs().max()),
        "max_abs_logit": float(logits.abs().max()),
        "embd_file": base + ".embd.bin",
        "logits_file": base + ".logits.bin",
    }
    q2.write_json(args.out_prefix + ".json", meta)


def run_preprocess(args):
    from PIL import Image
    with open(args.image, "rb") as f:
        data = f.read()
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    mean, std = q2.floats(args.mean), q2.floats(args.std)
    px, (hb, wb) = preprocess(rgb, mean, std, args.min_pixels, args.max_pixels)
    px.astype("<f4").tofile(args.out_prefix + ".pixels.bin")
    h, w = rgb.shape[:2]
    gh, gw = hb // 14, wb // 14
    meta = {
        "image": q2.image_name(args.image),
        "image_fnv1a64": f"{fnv1a64(data):016x}",
        "input_hw": [h, w],
        "mean": mean,
        "std": std,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "resized_hw": [hb, wb],
        "grid_thw": [1, gh, gw],
        "num_tokens": (gh // 2) * (gw // 2),
        "resample": "PIL BICUBIC",
        "pixels_file": os.path.basename(args.out_prefix) + ".pixels.bin",
    }
    q2.write_json(args.out_prefix + ".json", meta)


SMART_RESIZE_CASES = [  # (height, width, min_pixels, max_pixels), factor 28, t = 2
    (150, 200, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),  # plain rounding
    (98, 70, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),    # 3.5 -> 4, 2.5 -> 2 (ties to even)
    (56, 56, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),    # 2*56*56 < 112*112: scaled up
    (56, 84, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),    # 2*56*84 = 9408 < 12544: up
    (84, 84, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),    # 2*84*84 = 14112: kept
    (300, 40, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),   # tall: 1.43 -> 1
    (20, 100, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),   # a side < 28: scaled up first
    (150, 200, DEFAULT_MIN_PIXELS, 2 * 28 * 28 * 16),    # max_pixels: floor after scaling
    (2000, 3000, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),
    (1080, 1920, DEFAULT_MIN_PIXELS, 2 * 28 * 28 * 1280),
    (6000, 28, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),  # aspect 214 > 200: error
    (5600, 28, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),  # aspect exactly 200: allowed
]


def run_smart_resize_table(path):
    import json
    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        c = {"height": h, "width": w, "factor": 28, "temporal_factor": 2, "min_pixels": lo,
             "max_pixels": hi}
        try:
            c["resized_hw"] = list(smart_resize(h, w, 28, lo, hi))
        except ValueError as e:
            c["error"] = str(e)
        cases.append(c)
    with open(path, "w") as f:
        rows = ",\n".join("  " + json.dumps(c) for c in cases)
        f.write("{\n \"cases\": [\n" + rows + "\n ]\n}\n")


# ----------------------------------------------------------------- self-test

def self_test(text_path, mmproj_path):
    """Checks the reference against itself, computed other ways:
    1. tower in HF patch order (grid_sample table, Conv2d downsample) == tower in plain
       row-major order (conv2d with W0 + W1, hand-written bicubic, (y, x) rotary, explicit
       2x2 gather), at sizes below, at and above the table's side;
    2. M-RoPE with t = h = w = position == a hand-written interleaved partial 1-D RoPE;
    3. HF's rope on the un-permuted q/k == ggml's NeoX rotation of the stored (permuted)
       rows (checks the un-permutation against the converter's direction);
    4. moving later tokens along h alone changes the logits (sections are used);
    5. nn.Conv3d PatchEmbed literally == the matmul."""
    vis = Vision(mmproj_path)
    text = Text(text_path)
    ok = True
    n = vis.pos_side * vis.patch
    with torch.no_grad():
        for k, (H, W) in enumerate([(56, 84), (84, 56), (112, 56), (n, n), (n + 28, n - 28)]):
            if H < 28 or W < 28:
                continue
            px = torch.tensor(q2.image_values(k, H, W), dtype=torch.float64)
            a, b = vis.encode(px), vis.encode_row_major(px)
            err = float((a - b).abs().max())
            print(f"tower HF order vs row-major {H}x{W}: max |diff| = {err:.3g}")
            ok &= err < 1e-9
        toks = [(i * 37 + 11) % min(text.vocab, 300) for i in range(23)]
        T = len(toks)
        pos = torch.arange(T)[:, None].expand(-1, 3)
        a = text.forward(toks, None, pos)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * text.inv_freq()[None, :]

        def rope_1d(x):  # pairs (2i, 2i + 1) of the first n_rot dims rotate by p * f_i
            y = x.clone()
            c, s = ang.cos(), ang.sin()
            x0, x1 = x[..., 0:text.n_rot:2], x[..., 1:text.n_rot:2]
            y[..., 0:text.n_rot:2] = x0 * c - x1 * s
            y[..., 1:text.n_rot:2] = x0 * s + x1 * c
            return y
        b = text.forward(toks, None, pos, rope=rope_1d)
        err = float((a - b).abs().max())
        print(f"M-RoPE with equal axes vs hand-written 1-D partial RoPE: max |diff| = {err:.3g}")
        ok &= err < 1e-10
        # ggml NeoX on stored rows: pair (i, i + n_rot/2) rotates by p * f_i.
        L = text.layers[0]
        h = text.rms(text.embd[torch.tensor(toks)], L["attn_norm"])
        q_hf = (h @ L["attn_q"].T).view(T, text.n_heads, text.hd).transpose(0, 1)
        stored = text.normal_to_neox(L["attn_q"], text.n_heads)
        assert torch.equal(text.neox_to_normal(stored, text.n_heads), L["attn_q"])
        raw = text.reader.tensor("blk.0.attn_q.weight")
        ok &= bool(np.allclose(stored.numpy(), raw))
        q_st = (h @ stored.T).view(T, text.n_heads, text.hd).transpose(0, 1)
        half = text.n_rot // 2
        c, s = ang.cos(), ang.sin()
        x0, x1 = q_st[..., :half], q_st[..., half:text.n_rot]
        neox = torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)
        hf = rope_1d(q_hf)[..., :text.n_rot]
        hf_as_neox = torch.cat([hf[..., 0::2], hf[..., 1::2]], dim=-1)
        err = float((neox - hf_as_neox).abs().max())
        print(f"HF interleaved rope vs NeoX on the stored rows: max |diff| = {err:.3g}")
        ok &= err < 1e-12
        pos2 = pos.clone()
        pos2[10:, 1] += 3
        err = float((text.forward(toks, None, pos2) - a).abs().max())
        print(f"M-RoPE with h shifted changes logits by {err:.3g}")
        ok &= err > 1e-6
        flat, _ = vis.flatten_patches(torch.tensor(q2.image_values(0, 56, 84),
                                                   dtype=torch.float64))
        conv = torch.nn.Conv3d(3, vis.d, (2, vis.patch, vis.patch), (2, vis.patch, vis.patch)
                               ).double()
        conv.weight.copy_(vis.conv3d)
        conv.bias.copy_(vis.conv3d_bias)
        a = conv(flat.view(-1, 3, 2, vis.patch, vis.patch)).view(-1, vis.d)
        err = float((a - (flat @ vis.conv3d.reshape(vis.d, -1).T + vis.conv3d_bias)).abs().max())
        print(f"nn.Conv3d PatchEmbed vs matmul: max |diff| = {err:.3g}")
        ok &= err < 1e-12
    assert smart_resize(56, 56) == (84, 84)
    assert smart_resize(98, 70) == (112, 56)
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main():
    if "--smart-resize-table" in sys.argv:
        run_smart_resize_table(sys.argv[sys.argv.index("--smart-resize-table") + 1])
        return
    if "--self-test" in sys.argv:
        i = sys.argv.index("--self-test")
        sys.exit(0 if self_test(*sys.argv[i + 1:i + 3]) else 1)
    if "--preprocess" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--preprocess", dest="image", required=True)
        ap.add_argument("out_prefix")
        ap.add_argument("--mean", required=True)
        ap.add_argument("--std", required=True)
        ap.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
        ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
        run_preprocess(ap.parse_args())
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("mmproj")
    ap.add_argument("out_prefix")
    ap.add_argument("--images", default="56x84,84x56")
    ap.add_argument("--image-files", default="",
                    help="comma-separated image files, preprocessed as HF does, instead of "
                         "the closed-form --images (an end-to-end check; no fixture uses it)")
    ap.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    ap.add_argument("--prompt", default=PROMPT,
                    help="another prompt, one <|image|> per image (for the llama.cpp check)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--command", default="")
    run_model(ap.parse_args())


if __name__ == "__main__":
    main()
