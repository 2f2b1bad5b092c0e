#!/usr/bin/python3
"""PyTorch reference for vlserve's Qwen3-VL family (qwen3vl text + qwen3vl_merger mmproj).

Written from the Hugging Face semantics (transformers' models/qwen3_vl/modeling_qwen3_vl.py;
the image processor is Qwen2-VL's, image_processing_qwen2_vl.py / _pil_, with Qwen3-VL's
preprocessor config: patch 16, merge 2, temporal 2, mean = std = 0.5), float64 throughout.
The GGUFs are read with gguf_min.py in llama.cpp's layout (conversion/qwen3vl.py): the
converter renames tensors only (Qwen3's Q/K rows are not permuted: HF and ggml both rotate
NeoX halves), so nothing has to be undone.
  * Preprocessing (Qwen2VLImageProcessor, PIL path, current form): smart_resize(h, w,
    factor = 32, min_pixels, max_pixels): aspect ratio > 200 is an error; Python round() to
    multiples of 32 (ties to even); above max_pixels floor after scaling down (at least 32),
    below min_pixels ceil after scaling up; PIL BICUBIC, x/255, (x - 0.5) / 0.5.
  * Vision tower (Qwen3VLVisionModel.forward):
      - patch_embed: Conv3d [d, 3, 2, 16, 16] WITH bias over the processor's flattened
        patches (a still image repeated twice in time, rows grouped by 2x2 merge windows);
        GGUF v.patch_embd.weight / .weight.1 (temporal slices) and v.patch_embd.bias;
      - fast_pos_embed_interpolate: the learned n x n table (v.position_embd.weight, rows
        y * n + x; n = 48 in the real model) sampled bilinearly at linspace(0, n - 1, gh) x
        linspace(0, n - 1, gw) (align-corners: the grid's corners hit the table's corners;
        floor index, ceil clipped to n - 1), permuted to the merge-window order, added;
      - 2-D rotary (Qwen3VLVisionRotaryEmbedding(head_dim / 2), theta 10000, row freqs then
        col freqs, emb = cat(f, f), rotate_half) on q and k;
      - blocks: x + proj(attn(norm1(x))); x + fc2(gelu_tanh(fc1(norm2(x)))); nn.LayerNorm
        eps 1e-6 (v.blk.i.ln1 / ln2); fused qkv with bias (v.blk.i.attn_qkv, rows q, k, v),
        full bidirectional attention over one image, scale head_dim^-0.5, proj with bias
        (attn_out); MLP linear_fc1 / linear_fc2 = ffn_up / ffn_down with biases, act
        gelu_pytorch_tanh (Qwen3-VL's vision hidden_act);
      - deepstack: after block L in deepstack_visual_indexes (GGUF clip.vision.
        is_deepstack_layers), Qwen3VLVisionPatchMerger(use_postshuffle_norm=True): view
        (-1, 4d) -> LayerNorm(4d, eps 1e-6) (v.deepstack.L.norm) -> linear_fc1 (fc1) ->
        nn.GELU() (erf) -> linear_fc2 (fc2);
      - merger (use_postshuffle_norm=False): LayerNorm(d, eps 1e-6) (v.post_ln) -> view
        (-1, 4d) -> linear_fc1 (mm.0) -> erf GELU -> linear_fc2 (mm.2).
    The output row of a merged token is [main | deepstack 0 | deepstack 1 | ...] (llama.cpp's
    mmproj layout: (1 + n_deepstack) x text hidden), rows in merged-grid row-major order.
  * get_rope_index (Qwen3VLModel, images only): a text run takes st..st+len-1 on all axes,
    an image (0, row, col) + st over the merged grid (st = previous max + 1); the text after
    it resumes at max + 1. Generated token j takes max + 1 + j on all axes (rope_deltas).
  * Language model (Qwen3VLTextModel): embeddings (image main rows replace the
    <|image_pad|> tokens in order, masked_scatter); per layer: r = x; x = r + o_proj(attn(
    input_layernorm(x))); x = x + mlp(post_attention_layernorm(x)); q/k/v/o without bias,
    explicit head_dim (qwen3vl.attention.key_length); q_norm / k_norm (RMSNorm over
    head_dim, blk.i.attn_q_norm / attn_k_norm) on every head before the rotary; rotary:
    Qwen3VLTextRotaryEmbedding: inv_freq over head_dim, freqs per axis [3, T, head_dim / 2],
    apply_interleaved_mrope(freqs, mrope_section): pair i takes axis H if i % 3 == 1 and
    i < 3 * sec_h, W if i % 3 == 2 and i < 3 * sec_w, else T (every other pair, including
    the ones past the sections); emb = cat(f, f), rotate_half. After layer k <
    len(deepstack), deepstack slice k is added to the image tokens' hidden states
    (_deepstack_process); final norm, lm_head (output.weight or tied token_embd).
  * Prompt: Qwen3-VL's chat template (no default system turn) for one user turn with two
    images, <|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>Describe this.
    <|vision_start|><|image_pad|><|vision_end|>Compare both.<|im_end|>\\n<|im_start|>
    assistant\\n, each <|image_pad|> repeated (H/32)*(W/32) times, tokenized with the qwen2
    pre-tokenizer (ASCII form).

The images fed to the tower are closed-form normalized pixels (qwen2vl_reference.
image_values; the C++ test computes the same formula), so preprocessing is checked
separately (--preprocess).

usage: qwen3vl_reference.py TEXT.gguf MMPROJ.gguf OUT_PREFIX --images 64x96,96x64
           [--steps 16] [--command "how the models were made"]
       writes OUT_PREFIX.json, OUT_PREFIX.embd.bin (float32 [image tokens, (1 + n_deepstack)
       * text_hidden], images in order) and OUT_PREFIX.logits.bin (float32 [prompt_len,
       vocab]). --image-files a.png[,b.png] [--min-pixels N --max-pixels N] instead of
       --images runs real images through the preprocessing too; --prompt another prompt.
usage: qwen3vl_reference.py --preprocess IMAGE OUT_PREFIX [--min-pixels N] [--max-pixels N]
usage: qwen3vl_reference.py --smart-resize-table OUT.json
usage: qwen3vl_reference.py --self-test TEXT.gguf MMPROJ.gguf
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import qwen2vl_reference as q2
from gguf_min import Reader
from text_reference import fnv1a64

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
PROMPT = ("<|im_start|>user\n" + IMAGE + "Describe this." + IMAGE + "Compare both."
          "<|im_end|>\n<|im_start|>assistant\n")
PAD = "<|image_pad|>"

# Qwen3-VL's preprocessor_config.json: size.shortest_edge / longest_edge.
DEFAULT_MIN_PIXELS = 65536
DEFAULT_MAX_PIXELS = 16777216
MEAN = STD = [0.5, 0.5, 0.5]
LN_EPS = 1e-6  # every vision LayerNorm in HF (hard-coded, not read from the config)


# ----------------------------------------------------------------- preprocessing (HF)

def smart_resize(height, width, factor=32, min_pixels=DEFAULT_MIN_PIXELS,
                 max_pixels=DEFAULT_MAX_PIXELS):
    """transformers' qwen2_vl smart_resize, current form (no side-below-factor error; the
    scaled-down sides are at least `factor`). round() is Python's: halves go to even."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got "
                         f"{max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def preprocess(rgb8, min_pixels, max_pixels, mean=MEAN, std=STD, factor=32):
    """[H, W, 3] uint8 -> (float32 [3, h_bar, w_bar], (h_bar, w_bar))."""
    from PIL import Image
    from media_fixtures import hf_normalize  # rescale (float64 * 1/255 -> f32), normalize
    h, w = rgb8.shape[:2]
    hb, wb = smart_resize(h, w, factor, min_pixels, max_pixels)
    img = np.asarray(Image.fromarray(rgb8).resize((wb, hb), Image.Resampling.BICUBIC))
    return hf_normalize(img, mean, std), (hb, wb)


# ----------------------------------------------------------------- vision tower (HF)

def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class Vision(q2.Vision):
    """Qwen3-VL's tower. Reuses qwen2vl_reference.Vision's flatten_patches (same processor
    layout), rot_pos_ids (Qwen3VLVisionModel.rot_pos_emb's coords), rotary and
    rotate_half (same rotary embedding)."""

    def __init__(self, path):  # pylint: disable=super-init-not-called
        r = Reader(path)
        m = r.meta
        assert m["general.architecture"] == "clip"
        self.proj = m["clip.projector_type"]
        if self.proj != "qwen3vl_merger":
            raise ValueError(f"projector {self.proj} is not qwen3vl_merger")
        v = "clip.vision."
        self.patch = m[v + "patch_size"]
        self.d = m[v + "embedding_length"]
        self.n_layers = m[v + "block_count"]
        self.heads = m[v + "attention.head_count"]
        self.file_eps = m[v + "attention.layer_norm_epsilon"]
        self.merge = m.get(v + "spatial_merge_size", 2)
        self.mean = [float(x) for x in m[v + "image_mean"]]
        self.std = [float(x) for x in m[v + "image_std"]]
        flags = m.get(v + "is_deepstack_layers", [])
        self.ds_layers = [i for i, f in enumerate(flags) if f]
        self.reader = r

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.t = t
        w0, w1 = t("v.patch_embd.weight"), t("v.patch_embd.weight.1")  # [d, 3, p, p] each
        self.conv3d = torch.stack([w0, w1], dim=2)  # HF PatchEmbed.proj.weight [d, 3, 2, p, p]
        self.conv3d_bias = t("v.patch_embd.bias")
        assert self.conv3d_bias is not None, "qwen3vl's patch embedding has a bias"
        pos = t("v.position_embd.weight")  # [n * n, d]
        self.pos_side = int(round(math.sqrt(pos.shape[0])))
        assert self.pos_side ** 2 == pos.shape[0], pos.shape
        self.pos_table = pos
        self.text_hidden = t("mm.2.weight").shape[0]
        for L in self.ds_layers:
            assert t(f"v.deepstack.{L}.fc2.weight").shape[0] == self.text_hidden

    def fixture_meta(self):
        return {"position_table_side": self.pos_side, "deepstack_layers": self.ds_layers,
                "vision_eps": self.file_eps}

    def lin(self, x, name):
        w, b = self.t(name + ".weight"), self.t(name + ".bias")
        y = x @ w.T
        return y if b is None else y + b

    def ln(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.t(name + ".weight"), self.t(name + ".bias"),
                            LN_EPS)

    def pos_grid(self, gh, gw):
        """fast_pos_embed_interpolate for one image, before the merge permutation:
        [gh, gw, d] (row-major)."""
        n, d = self.pos_side, self.d
        tab = self.pos_table
        h_idx = torch.linspace(0, n - 1, gh, dtype=torch.float64)
        w_idx = torch.linspace(0, n - 1, gw, dtype=torch.float64)
        hf, wf = h_idx.long(), w_idx.long()  # .int(): truncation (values >= 0)
        hc, wc = (hf + 1).clamp(max=n - 1), (wf + 1).clamp(max=n - 1)
        dh, dw = h_idx - hf, w_idx - wf
        out = ((1 - dh)[:, None, None] * (1 - dw)[None, :, None] * tab[hf[:, None] * n + wf[None, :]]
               + (1 - dh)[:, None, None] * dw[None, :, None] * tab[hf[:, None] * n + wc[None, :]]
               + dh[:, None, None] * (1 - dw)[None, :, None] * tab[hc[:, None] * n + wf[None, :]]
               + dh[:, None, None] * dw[None, :, None] * tab[hc[:, None] * n + wc[None, :]])
        return out  # [gh, gw, d]

    def pos_embed(self, gh, gw):
        """HF's order: view(h/m, m, w/m, m, d).permute(0, 2, 1, 3, 4)."""
        m = self.merge
        g = self.pos_grid(gh, gw)
        return g.view(gh // m, m, gw // m, m, self.d).permute(0, 2, 1, 3, 4).reshape(-1, self.d)

    def pos_grid_by_hand(self, gh, gw):
        """Self-test: bilinear align-corners resize written as scalar loops."""
        n, tab = self.pos_side, self.pos_table.view(self.pos_side, self.pos_side, self.d)
        out = torch.zeros(gh, gw, self.d, dtype=torch.float64)

        def src(i, size):
            s = i * (n - 1) / (size - 1) if size > 1 else 0.0
            i0 = min(int(math.floor(s)), n - 1)
            return i0, min(i0 + 1, n - 1), s - i0
        for y in range(gh):
            y0, y1, fy = src(y, gh)
            for x in range(gw):
                x0, x1, fx = src(x, gw)
                out[y, x] = ((1 - fy) * ((1 - fx) * tab[y0, x0] + fx * tab[y0, x1])
                             + fy * ((1 - fx) * tab[y1, x0] + fx * tab[y1, x1]))
        return out

    def qkv(self, p, h):
        N = h.shape[0]
        if p + "attn_qkv.weight" in self.reader.tensors:
            q, k, v = self.lin(h, p + "attn_qkv").view(N, 3, self.d).unbind(1)
        else:
            q, k, v = (self.lin(h, p + n) for n in ("attn_q", "attn_k", "attn_v"))
        hd = self.d // self.heads
        return (z.reshape(N, self.heads, hd) for z in (q, k, v))

    def merger_ds(self, x, L):
        """Qwen3VLVisionPatchMerger(use_postshuffle_norm=True) of deepstack layer L."""
        p = f"v.deepstack.{L}."
        h = self.ln(x.reshape(-1, self.merge ** 2 * self.d), p + "norm")
        return self.lin(F.gelu(self.lin(h, p + "fc1")), p + "fc2")

    def merger(self, x):
        h = self.ln(x, "v.post_ln").reshape(-1, self.merge ** 2 * self.d)
        return self.lin(F.gelu(self.lin(h, "mm.0")), "mm.2")

    def blocks(self, x, cos, sin):
        """x [N, d] in merge-window order -> (x, [deepstack outputs])."""
        N, hd = x.shape[0], self.d // self.heads
        feats = []
        for i in range(self.n_layers):
            p = f"v.blk.{i}."
            q, k, v = self.qkv(p, self.ln(x, p + "ln1"))
            q = q * cos[:, None] + self.rotate_half(q) * sin[:, None]
            k = k * cos[:, None] + self.rotate_half(k) * sin[:, None]
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, N, hd]
            a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1) @ v
            x = x + self.lin(a.transpose(0, 1).reshape(N, self.d), p + "attn_out")
            x = x + self.lin(gelu_tanh(self.lin(self.ln(x, p + "ln2"), p + "ffn_up")),
                             p + "ffn_down")
            if i in self.ds_layers:
                feats.append(self.merger_ds(x, i))
        return x, feats

    def encode(self, pixels):
        """pixels [3, H, W] (normalized) -> [(H / 32) * (W / 32), (1 + n_ds) * text_hidden]:
        [main | deepstack...] per merged token, merged-grid row-major order."""
        flat, (_, gh, gw) = self.flatten_patches(pixels)
        x = flat @ self.conv3d.reshape(self.d, -1).T + self.conv3d_bias
        x = x + self.pos_embed(gh, gw)
        cos, sin = self.rotary(self.rot_pos_ids(gh, gw))
        x, feats = self.blocks(x, cos, sin)
        return torch.cat([self.merger(x)] + feats, dim=-1)

    def encode_row_major(self, pixels):
        """The same tower another way (self-test): conv2d with W0 + W1 over row-major
        patches, the scalar-loop bilinear table, (y, x) rotary, then an explicit 2x2 gather
        of the row-major outputs for every merger."""
        t, p, m, d = self.t, self.patch, self.merge, self.d
        w = t("v.patch_embd.weight") + t("v.patch_embd.weight.1")
        x = F.conv2d(pixels[None], w, self.conv3d_bias, stride=p)[0]  # [d, gh, gw]
        gh, gw = x.shape[1:]
        x = x.flatten(1).T + self.pos_grid_by_hand(gh, gw).reshape(gh * gw, d)
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        cos, sin = self.rotary(torch.stack([yy.flatten(), xx.flatten()], dim=-1))
        outs = []
        orig_ds = self.merger_ds
        # The mergers see rows in row-major order here: gather each 2x2 window first.

        def gather(z):
            z = z.reshape(gh, gw, -1)
            return torch.stack([torch.cat([z[m * Y + dy, m * X + dx] for dy in range(m)
                                           for dx in range(m)])
                                for Y in range(gh // m) for X in range(gw // m)])
        self.merger_ds = lambda z, L: orig_ds(gather(z), L)
        try:
            x, feats = self.blocks(x, cos, sin)
        finally:
            self.merger_ds = orig_ds
        h = self.ln(x, "v.post_ln")
        main = self.lin(F.gelu(self.lin(gather(h), "mm.0")), "mm.2")
        outs = [main] + feats
        return torch.cat(outs, dim=-1)


# ----------------------------------------------------------------- language model (HF)

class Text:
    """Qwen3VLTextModel + lm_head from a qwen3vl GGUF."""

    def __init__(self, path):
        r = Reader(path)
        self.reader = r
        m = r.meta
        a = m["general.architecture"]
        if a != "qwen3vl":
            raise ValueError(f"architecture {a} is not qwen3vl")
        self.hidden = m[f"{a}.embedding_length"]
        self.n_layers = m[f"{a}.block_count"]
        self.n_heads = m[f"{a}.attention.head_count"]
        self.n_kv = m.get(f"{a}.attention.head_count_kv", self.n_heads)
        self.hd = m.get(f"{a}.attention.key_length", self.hidden // self.n_heads)
        self.eps = m[f"{a}.attention.layer_norm_rms_epsilon"]
        self.base = m.get(f"{a}.rope.freq_base", 10000.0)
        rot = m.get(f"{a}.rope.dimension_count", self.hd)
        assert rot == self.hd, "Qwen3-VL rotates the whole head"
        secs = m.get(f"{a}.rope.dimension_sections")
        if secs is None:
            raise ValueError("qwen3vl.rope.dimension_sections is missing")
        self.mrope_sections = list(secs)
        self.sections = self.mrope_sections[:3]  # HF mrope_section
        assert sum(self.sections) <= self.hd // 2, (self.sections, self.hd)
        self.n_deepstack = m.get(f"{a}.n_deepstack_layers", 0)

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
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm",
                "attn_k_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")}
            for k, v in L.items():
                assert v is not None, p + k
            self.layers.append(L)

    def inv_freq(self):
        return 1.0 / (self.base ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))

    def axis_of_pair(self):
        """apply_interleaved_mrope's axis for each of the head_dim / 2 frequency pairs."""
        sec = self.sections
        axes = []
        for i in range(self.hd // 2):
            if i % 3 == 1 and i < 3 * sec[1]:
                axes.append(1)
            elif i % 3 == 2 and i < 3 * sec[2]:
                axes.append(2)
            else:
                axes.append(0)
        return axes

    def cos_sin(self, positions):
        """Qwen3VLTextRotaryEmbedding.forward: positions [T, 3] -> (cos, sin) [T, hd]."""
        pos = positions.T.to(torch.float64)  # [3, T]
        freqs = pos[:, :, None] * self.inv_freq()[None, None, :]  # [3, T, hd / 2]
        freqs_t = freqs[0].clone()  # apply_interleaved_mrope
        for dim, offset in ((1, 1), (2, 2)):
            length = self.sections[dim] * 3
            freqs_t[..., offset:length:3] = freqs[dim, ..., offset:length:3]
        emb = torch.cat((freqs_t, freqs_t), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def forward(self, tokens, image_rows=None, positions=None, cos_sin=None):
        """image_rows: {position: [(1 + n_ds) * hidden] row}: the main slice replaces the
        token embedding, slice k + 1 is added after layer k (deepstack). positions [T, 3]
        (default 0..T-1 on all axes); cos_sin overrides the rotary tables (self-test)."""
        T, H = len(tokens), self.hidden
        x = self.embd[torch.tensor(tokens)].clone()
        rows = image_rows or {}
        for pos, row in rows.items():
            x[pos] = row[:H]
        if positions is None:
            positions = torch.arange(T)[:, None].expand(-1, 3)
        cos, sin = cos_sin if cos_sin is not None else self.cos_sin(positions)
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        rep = self.n_heads // self.n_kv
        for li, L in enumerate(self.layers):
            h = self.rms(x, L["attn_norm"])
            q = self.rms((h @ L["attn_q"].T).view(T, self.n_heads, self.hd), L["attn_q_norm"])
            k = self.rms((h @ L["attn_k"].T).view(T, self.n_kv, self.hd), L["attn_k_norm"])
            v = (h @ L["attn_v"].T).view(T, self.n_kv, self.hd)
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
            s = q @ k.transpose(1, 2) * self.hd ** -0.5 + mask
            o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, self.n_heads * self.hd)
            x = x + o @ L["attn_output"].T
            h = self.rms(x, L["ffn_norm"])
            x = x + (F.silu(h @ L["ffn_gate"].T) * (h @ L["ffn_up"].T)) @ L["ffn_down"].T
            if li < self.n_deepstack:  # _deepstack_process
                for pos, row in rows.items():
                    x[pos] = x[pos] + row[(li + 1) * H:(li + 2) * H]
        return self.rms(x, self.out_norm) @ self.out.T  # [T, vocab]


def build_prompt(bpe, counts, prompt=PROMPT):
    """Expands each <|image_pad|> to its image's token count (Qwen3VLProcessor)."""
    pieces = prompt.split(PAD)
    assert len(pieces) == len(counts) + 1, (len(pieces), counts)
    text = pieces[0]
    for n, rest in zip(counts, pieces[1:]):
        text += PAD * n + rest
    return bpe.encode(text)


def run_model(args):
    vis = Vision(args.mmproj)
    text = Text(args.text)
    if len(vis.ds_layers) != text.n_deepstack:
        raise ValueError(f"mmproj has {len(vis.ds_layers)} deepstack layers, the text model "
                         f"{text.n_deepstack}")
    factor = vis.patch * vis.merge
    if args.image_files:  # end to end: real images through the HF preprocessing
        from PIL import Image
        pixels = []
        for path in args.image_files.split(","):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            px, _ = preprocess(rgb, args.min_pixels, args.max_pixels, vis.mean, vis.std, factor)
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
    assert embds[0].shape[1] == text.hidden * (1 + text.n_deepstack), embds[0].shape
    counts = [e.shape[0] for e in embds]
    flat = torch.cat(embds)
    bpe = q2.Qwen2Bpe(text.reader)
    tokens = build_prompt(bpe, counts, args.prompt)
    pad, vstart = bpe.ids[PAD], bpe.ids["<|vision_start|>"]
    where = [i for i, tk in enumerate(tokens) if tk == pad]
    assert len(where) == flat.shape[0], (len(where), flat.shape)
    rows_at = {p: flat[j] for j, p in enumerate(where)}  # masked_scatter: in order
    spans = []
    for j, p in enumerate(where):
        if j == 0 or where[j - 1] != p - 1:
            spans.append([p, 0])
        spans[-1][1] += 1
    positions = q2.get_rope_index(tokens, grids, pad, vstart, vis.merge)
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
    if args.out_prefix == "-":  # print only (the llama.cpp comparison)
        print("prompt ids:", " ".join(map(str, tokens)))
        print("greedy:", " ".join(map(str, greedy)))
        print("margins:", margins)
        return
    flat.numpy().astype("<f4").tofile(args.out_prefix + ".embd.bin")
    logits.numpy().astype("<f4").tofile(args.out_prefix + ".logits.bin")
    digests = {}
    for key, path in (("text_fnv1a64", args.text), ("mmproj_fnv1a64", args.mmproj)):
        with open(path, "rb") as f:
            digests[key] = f"{fnv1a64(f.read()):016x}"
    base = os.path.basename(args.out_prefix)
    H = text.hidden
    meta = {
        "command": args.command,
        **digests,
        "projector": vis.proj,
        **vis.fixture_meta(),
        "n_deepstack": text.n_deepstack,
        "mrope_sections": list(text.mrope_sections),
        "head_dim": text.hd,
        "images": [list(s) for s in sizes],
        "grids_thw": [list(g) for g in grids],
        "tokens_per_image": counts,
        "prompt": args.prompt,
        "prompt_tokens": tokens,
        "spans": spans,
        "positions": positions.tolist(),
        "greedy": greedy,
        "greedy_margins": margins,
        "max_abs_embd": float(flat[:, :H].abs().max()),
        "max_abs_deepstack": float(flat[:, H:].abs().max()) if text.n_deepstack else 0.0,
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
    px, (hb, wb) = preprocess(rgb, args.min_pixels, args.max_pixels)
    px.astype("<f4").tofile(args.out_prefix + ".pixels.bin")
    h, w = rgb.shape[:2]
    gh, gw = hb // 16, wb // 16
    meta = {
        "image": q2.image_name(args.image),
        "image_fnv1a64": f"{fnv1a64(data):016x}",
        "input_hw": [h, w],
        "mean": MEAN,
        "std": STD,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "patch_size": 16,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "resized_hw": [hb, wb],
        "grid_thw": [1, gh, gw],
        "num_tokens": (gh // 2) * (gw // 2),
        "resample": "PIL BICUBIC",
        "pixels_file": os.path.basename(args.out_prefix) + ".pixels.bin",
    }
    q2.write_json(args.out_prefix + ".json", meta)


U = 32 * 32  # pixels per merged token
SMART_RESIZE_CASES = [  # (height, width, min_pixels, max_pixels), factor 32
    (150, 200, 4 * U, 16384 * U),       # plain rounding: 160 x 192
    (80, 112, 4 * U, 16384 * U),        # 2.5 -> 2, 3.5 -> 4 (ties to even)
    (150, 200, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),  # below HF's 64-token minimum
    (64, 64, 4 * U, 16384 * U),         # 4 tokens: kept
    (40, 40, 8 * U, 16384 * U),         # 1 token < 8: scaled up
    (300, 40, 4 * U, 16384 * U),        # tall: 1.25 -> 1
    (10, 100, 4 * U, 16384 * U),        # a side rounds to 0: scaled up by min_pixels
    (150, 200, 4 * U, 16 * U),          # max_pixels: floor after scaling
    (2000, 3000, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS),
    (1080, 1920, 4 * U, 1280 * U),
    (6432, 32, 4 * U, 16384 * U),       # aspect 201 > 200: error
    (6400, 32, 4 * U, 16384 * U),       # aspect exactly 200: allowed
]


def run_smart_resize_table(path):
    import json
    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        c = {"height": h, "width": w, "factor": 32, "min_pixels": lo, "max_pixels": hi}
        try:
            c["resized_hw"] = list(smart_resize(h, w, 32, lo, hi))
        except ValueError as e:
            c["error"] = str(e)
        cases.append(c)
    with open(path, "w") as f:
        rows = ",\n".join("  " + json.dumps(c) for c in cases)
        f.write("{\n \"cases\": [\n" + rows + "\n ]\n}\n")


# ----------------------------------------------------------------- self-test

def self_test(text_path, mmproj_path):
    """Checks the reference against itself, computed other ways:
    1. tower in HF patch order (vectorized bilinear table, merge-window mergers) == tower in
       row-major order (conv2d with W0 + W1, scalar-loop bilinear, (y, x) rotary, explicit
       2x2 gathers), at sizes below, at and above the table's side;
    2. interleaved M-RoPE with t = h = w = p == plain 1-D NeoX RoPE at p;
    3. the pair -> axis map of apply_interleaved_mrope written as a list, and moving the
       tokens along h or w alone changes the logits;
    4. deepstack: zeroing the deepstack slices changes the logits; image rows at text
       positions with all-zero deepstack slices == the embedding-only forward;
    5. nn.Conv3d PatchEmbed literally == the matmul."""
    vis = Vision(mmproj_path)
    text = Text(text_path)
    ok = True
    n = vis.pos_side * vis.patch
    with torch.no_grad():
        for k, (H, W) in enumerate([(64, 96), (96, 64), (128, 32), (n, n), (n + 32, n - 32)]):
            if H < 32 or W < 32:
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
        f = torch.arange(T, dtype=torch.float64)[:, None] * text.inv_freq()[None, :]
        emb = torch.cat((f, f), dim=-1)
        b = text.forward(toks, None, pos, cos_sin=(emb.cos(), emb.sin()))
        err = float((a - b).abs().max())
        print(f"M-RoPE with equal axes vs 1-D NeoX RoPE: max |diff| = {err:.3g}")
        ok &= err < 1e-10
        axes = text.axis_of_pair()
        pos3 = torch.stack([torch.arange(T) * 1, torch.arange(T) * 2 + 1, torch.arange(T) * 3 + 2],
                           dim=-1)
        cos, _ = text.cos_sin(pos3)
        want = torch.stack([pos3[:, ax].to(torch.float64) * text.inv_freq()[i]
                            for i, ax in enumerate(axes)], dim=-1)
        err = float((cos[:, :text.hd // 2] - want.cos()).abs().max())
        print(f"interleaved pair -> axis map {axes}: max |diff| = {err:.3g}")
        ok &= err < 1e-12
        for axis in (1, 2):
            pos2 = pos.clone()
            pos2[10:, axis] += 3
            err = float((text.forward(toks, None, pos2) - a).abs().max())
            print(f"M-RoPE with axis {axis} shifted changes logits by {err:.3g}")
            ok &= err > 1e-6
        if text.n_deepstack:
            H = text.hidden
            gen = torch.Generator().manual_seed(3)
            rows = {p: torch.randn((1 + text.n_deepstack) * H, generator=gen,
                                   dtype=torch.float64) for p in (4, 5, 6)}
            zero = {p: torch.cat([r[:H], torch.zeros(text.n_deepstack * H, dtype=torch.float64)])
                    for p, r in rows.items()}
            la, lz = text.forward(toks, rows, pos), text.forward(toks, zero, pos)
            err = float((la - lz).abs().max())
            print(f"deepstack slices change logits by {err:.3g}")
            ok &= err > 1e-6
            saved = text.n_deepstack
            text.n_deepstack = 0
            l0 = text.forward(toks, zero, pos)
            text.n_deepstack = saved
            err = float((lz - l0).abs().max())
            print(f"zero deepstack slices vs no deepstack: max |diff| = {err:.3g}")
            ok &= err < 1e-12
        flat, _ = vis.flatten_patches(torch.tensor(q2.image_values(0, 64, 96),
                                                   dtype=torch.float64))
        conv = torch.nn.Conv3d(3, vis.d, (2, vis.patch, vis.patch), (2, vis.patch, vis.patch)
                               ).double()
        conv.weight.copy_(vis.conv3d)
        conv.bias.copy_(vis.conv3d_bias)
        a = conv(flat.view(-1, 3, 2, vis.patch, vis.patch)).view(-1, vis.d)
        err = float((a - (flat @ vis.conv3d.reshape(vis.d, -1).T + vis.conv3d_bias)).abs().max())
        print(f"nn.Conv3d PatchEmbed vs matmul: max |diff| = {err:.3g}")
        ok &= err < 1e-12
    assert smart_resize(80, 112, 32, 4 * U, 16384 * U) == (64, 128)
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
        ap.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
        ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
        run_preprocess(ap.parse_args())
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("mmproj")
    ap.add_argument("out_prefix", help="'-' prints prompt ids and greedy tokens only")
    ap.add_argument("--images", default="64x96,96x64")
    ap.add_argument("--image-files", default="",
                    help="comma-separated image files, preprocessed as HF does, instead of "
                         "the closed-form --images (an end-to-end check; no fixture uses it)")
    ap.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    ap.add_argument("--prompt", default=PROMPT,
                    help="another prompt, one <|image_pad|> per image (the llama.cpp check)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--command", default="")
    run_model(ap.parse_args())


if __name__ == "__main__":
    main()
