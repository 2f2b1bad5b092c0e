#!/usr/bin/python3
"""PyTorch reference for vlserve's Qwen2-VL family (qwen2vl text + qwen2vl_merger mmproj).

Written from the Hugging Face semantics (transformers' models/qwen2_vl:
image_processing_qwen2_vl.py and modeling_qwen2_vl.py), float64 throughout:
  * Preprocessing (Qwen2VLImageProcessor): smart_resize(h, w, factor = patch * merge,
    min_pixels, max_pixels) with Python's round() (ties to even), PIL BICUBIC resize of the
    RGB8 image to (w_bar, h_bar), x/255 in float64 -> float32, (x - mean) / std in float32.
  * Vision tower (Qwen2VisionTransformerPretrainedModel): the processor's flatten_patches
    (a still image repeated twice in time, rows grouped by merge x merge windows) through
    the Conv3d patch embedding (no bias; the GGUF stores its two temporal slices as
    v.patch_embd.weight and v.patch_embd.weight.1), 2-D rotary embedding (rot_pos_emb:
    VisionRotaryEmbedding(head_dim / 2), h positions then w positions, emb = cat(f, f),
    rotate_half), blocks (LayerNorm -> q/k/v with biases (HF's fused qkv split in q, k, v
    order) -> full bidirectional attention, scale head_dim^-0.5 -> proj -> residual;
    LayerNorm -> fc1 -> quick_gelu -> fc2 -> residual), PatchMerger (LayerNorm ln_q eps
    1e-6 -> view(-1, merge^2 * hidden) -> Linear -> GELU (erf) -> Linear).
  * Language model: qwen2 decoder (text_reference.Model) with M-RoPE
    (Qwen2VLRotaryEmbedding + apply_multimodal_rotary_pos_emb: cos/sin per axis t, h, w;
    head_dim split into mrope_section * 2 chunks, chunk i from axis i % 3) and positions
    from get_rope_index; image embeddings replace the <|image_pad|> tokens in order
    (masked_scatter). Generated tokens take positions max + 1, max + 2, ... on all axes.
  * Prompt: the Qwen2-VL ChatML template, each <|image_pad|> repeated (H/28)*(W/28) times
    (Qwen2VLProcessor), tokenized with vision_reference.Bpe using the qwen2 pre-tokenizer
    regex (ASCII form).

The images fed to the tower are closed-form normalized pixels (image_values below; the C++
test computes the same formula), so preprocessing is checked separately (--preprocess).

usage: qwen2vl_reference.py TEXT.gguf MMPROJ.gguf OUT_PREFIX --images 56x84,84x56
           [--steps 16] [--command "how the models were made"]
       writes OUT_PREFIX.json, OUT_PREFIX.embd.bin (float32 [image tokens, text_hidden],
       images in order) and OUT_PREFIX.logits.bin (float32 [prompt_len, vocab]).
       --image-files a.png,b.png [--min-pixels N --max-pixels N] instead of --images runs
       real images through the preprocessing too (an end-to-end check against
       `vlserve generate --image a.png --image b.png -p "<image>Describe this.<image>Compare
       both." --temp 0 --logits-out F`; no fixture uses it).
usage: qwen2vl_reference.py --preprocess IMAGE OUT_PREFIX --mean a,b,c --std a,b,c
           [--min-pixels N] [--max-pixels N] [--patch 14] [--merge 2]
       writes OUT_PREFIX.json and OUT_PREFIX.pixels.bin (float32 [3, H, W]).
usage: qwen2vl_reference.py --make-inputs DIR
       writes the preprocessing test images of INPUTS (PNG) to DIR.
usage: qwen2vl_reference.py --smart-resize-table OUT.json
       writes smart_resize results (or the error) for a fixed list of cases.
usage: qwen2vl_reference.py --self-test TEXT.gguf MMPROJ.gguf [QWEN2.gguf]
       internal consistency checks (see self_test).
"""
import argparse
import json
import math
import os
import re
import sys

import numpy as np
import torch

from gguf_min import Reader
from text_reference import Model as TextModel, fnv1a64
from vision_reference import Bpe

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
PROMPT = (SYSTEM + "<|im_start|>user\n" + IMAGE + "Describe this." + IMAGE + "Compare both."
          "<|im_end|>\n<|im_start|>assistant\n")

# Qwen2's pre-tokenizer (tokenizer.json "Split" pattern), with \p{L} -> [A-Za-z] and
# \p{N} -> [0-9]: exact for ASCII text, which is all this script accepts.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]"
               r"| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# ----------------------------------------------------------------- preprocessing (HF)

def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280):
    """transformers' qwen2_vl smart_resize (v4.4x-v4.5x form). round() is Python's:
    halves go to the even neighbour (70 / 28 = 2.5 -> 2)."""
    if height < factor or width < factor:
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got "
                         f"{max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
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

def image_values(k, height, width):
    """[3, H, W]: 1.5 sin(0.37 x + 0.23 y + 1.1 c + 0.71 k), float32 (image k of the prompt)."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(height), np.arange(width), indexing="ij")
    return (1.5 * np.sin(0.37 * x + 0.23 * y + 1.1 * c + 0.71 * k)).astype(np.float32)


class Vision:
    def __init__(self, path):
        r = Reader(path)
        m = r.meta
        assert m["general.architecture"] == "clip"
        self.proj = m["clip.projector_type"]
        if self.proj != "qwen2vl_merger":
            raise ValueError(f"projector {self.proj} is not qwen2vl_merger")
        if m.get("clip.use_gelu", False) or m.get("clip.use_silu", False):
            raise ValueError("Qwen2-VL's vision MLP is quick_gelu (no use_gelu / use_silu)")
        v = "clip.vision."
        self.patch = m[v + "patch_size"]
        self.d = m[v + "embedding_length"]
        self.n_layers = m[v + "block_count"]
        self.heads = m[v + "attention.head_count"]
        self.eps = m[v + "attention.layer_norm_epsilon"]
        self.merge = m.get(v + "spatial_merge_size", 2)
        self.mean = [float(x) for x in m[v + "image_mean"]]
        self.std = [float(x) for x in m[v + "image_std"]]
        self.reader = r

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.t = t
        # clip.vision.feed_forward_length is the LM width in real Qwen2-VL GGUFs (the
        # converter copies config.hidden_size there); the tensor has the real one.
        self.ffn = self.t("v.blk.0.ffn_up.weight").shape[0]
        w0, w1 = t("v.patch_embd.weight"), t("v.patch_embd.weight.1")  # [d, 3, p, p] each
        assert t("v.patch_embd.bias") is None
        self.conv3d = torch.stack([w0, w1], dim=2)  # HF PatchEmbed.proj.weight [d, 3, 2, p, p]
        self.out_dim = t("mm.2.weight").shape[0]

    # The processor's patch layout (Qwen2VLImageProcessor._preprocess).
    def flatten_patches(self, pixels):
        """pixels [3, H, W] -> [grid_h * grid_w, 3 * 2 * p * p] rows in HF order."""
        p, m, tps = self.patch, self.merge, 2
        patches = pixels[None].expand(tps, -1, -1, -1)  # one image -> temporal_patch_size frames
        c, H, W = pixels.shape
        gh, gw = H // p, W // p
        x = patches.reshape(1, tps, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gh * gw, c * tps * p * p), (1, gh, gw)

    def rot_pos_ids(self, gh, gw):
        """rot_pos_emb's pos_ids: [gh * gw, 2] (h, w) in HF patch order."""
        m = self.merge
        hpos = torch.arange(gh)[:, None].expand(-1, gw)
        hpos = hpos.reshape(gh // m, m, gw // m, m).permute(0, 2, 1, 3).flatten()
        wpos = torch.arange(gw)[None, :].expand(gh, -1)
        wpos = wpos.reshape(gh // m, m, gw // m, m).permute(0, 2, 1, 3).flatten()
        return torch.stack([hpos, wpos], dim=-1)

    def rotary(self, pos_ids):
        """VisionRotaryEmbedding(head_dim / 2) at (h, w) -> (cos, sin) [N, head_dim]."""
        hd = self.d // self.heads
        dim = hd // 2
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        seq = torch.arange(int(pos_ids.max()) + 1, dtype=torch.float64)
        full = torch.outer(seq, inv_freq)
        rpe = full[pos_ids].flatten(1)  # [N, hd / 2]: h freqs then w freqs
        emb = torch.cat((rpe, rpe), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def ln(self, x, prefix, eps):
        return torch.nn.functional.layer_norm(x, (self.d,), self.t(prefix + ".weight"),
                                              self.t(prefix + ".bias"), eps)

    def blocks(self, x, cos, sin):
        """x [N, d] -> [N, d]; full attention over the N patches of one image."""
        t = self.t
        N, hd = x.shape[0], self.d // self.heads
        for i in range(self.n_layers):
            p = f"v.blk.{i}."

            def lin(h, n):
                return h @ t(p + n + ".weight").T + t(p + n + ".bias")

            h = self.ln(x, p + "ln1", self.eps)
            q, k, v = (lin(h, n).view(N, self.heads, hd) for n in ("attn_q", "attn_k", "attn_v"))
            q = q * cos[:, None] + self.rotate_half(q) * sin[:, None]  # apply_rotary_pos_emb_vision
            k = k * cos[:, None] + self.rotate_half(k) * sin[:, None]
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, N, hd]
            a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1) @ v
            x = x + lin(a.transpose(0, 1).reshape(N, self.d), "attn_out")
            h = lin(self.ln(x, p + "ln2", self.eps), "ffn_up")
            h = h * torch.sigmoid(1.702 * h)  # quick_gelu
            x = x + lin(h, "ffn_down")
        return x

    def merger(self, x):
        """PatchMerger: ln_q (eps 1e-6), merge^2 consecutive rows -> one, MLP with erf GELU."""
        t = self.t
        h = self.ln(x, "v.post_ln", 1e-6).reshape(-1, self.merge ** 2 * self.d)
        h = torch.nn.functional.gelu(h @ t("mm.0.weight").T + t("mm.0.bias"))
        return h @ t("mm.2.weight").T + t("mm.2.bias")

    def encode(self, pixels):
        """pixels [3, H, W] (normalized) -> [(H / p / m) * (W / p / m), text_hidden], rows in
        merged-grid row-major order."""
        flat, (_, gh, gw) = self.flatten_patches(pixels)
        x = flat @ self.conv3d.reshape(self.d, -1).T  # Conv3d with kernel == stride, no bias
        cos, sin = self.rotary(self.rot_pos_ids(gh, gw))
        return self.merger(self.blocks(x, cos, sin))

    def encode_row_major(self, pixels):
        """The same tower computed another way (self-test): conv2d with W0 + W1 over plain
        row-major patches, (y, x) rotary positions, then an explicit m x m window gather."""
        t, p, m = self.t, self.patch, self.merge
        w = t("v.patch_embd.weight") + t("v.patch_embd.weight.1")
        x = torch.nn.functional.conv2d(pixels[None], w, stride=p)[0]  # [d, gh, gw]
        gh, gw = x.shape[1:]
        x = x.flatten(1).T  # [gh * gw, d], row-major
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        cos, sin = self.rotary(torch.stack([yy.flatten(), xx.flatten()], dim=-1))
        x = self.ln(self.blocks(x, cos, sin), "v.post_ln", 1e-6).reshape(gh, gw, self.d)
        rows = []
        for Y in range(gh // m):
            for X in range(gw // m):
                rows.append(torch.cat([x[m * Y + dy, m * X + dx] for dy in range(m)
                                       for dx in range(m)]))
        h = torch.stack(rows)
        h = torch.nn.functional.gelu(h @ t("mm.0.weight").T + t("mm.0.bias"))
        return h @ t("mm.2.weight").T + t("mm.2.bias")


# ----------------------------------------------------------------- language model (HF)

class Qwen2Bpe(Bpe):
    def encode(self, text):
        assert text.isascii(), "the reference's qwen2 split is exact for ASCII only"
        out = []
        pattern = "(" + "|".join(re.escape(s) for s in self.specials) + ")"
        for piece in re.split(pattern, text):
            if piece in self.specials:
                out.append(self.ids[piece])
                continue
            for w in re.findall(QWEN2_SPLIT, piece):
                out.extend(self._word(w))
        return out


def get_rope_index(tokens, grids, image_pad, vision_start, merge=2):
    """Qwen2VLModel.get_rope_index for one sequence of text and images (no video).
    grids: per image (t, h, w) in patches. Returns [T, 3] (t, h, w) positions."""
    starts = [i for i, tk in enumerate(tokens[:-1]) if tk == vision_start]
    image_nums = sum(1 for i in starts if tokens[i + 1] == image_pad)
    assert image_nums == len(grids), (image_nums, len(grids))
    parts, st = [], 0
    for k in range(image_nums):
        ed = tokens.index(image_pad, st)
        gt, gh, gw = grids[k][0], grids[k][1] // merge, grids[k][2] // merge
        text_len = ed - st
        st_idx = int(parts[-1].max()) + 1 if parts else 0
        parts.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
        t_index = torch.arange(gt).view(-1, 1).expand(-1, gh * gw).flatten()
        h_index = torch.arange(gh).view(1, -1, 1).expand(gt, -1, gw).flatten()
        w_index = torch.arange(gw).view(1, 1, -1).expand(gt, gh, -1).flatten()
        parts.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
        st = ed + gt * gh * gw
    if st < len(tokens):
        st_idx = int(parts[-1].max()) + 1 if parts else 0
        parts.append(torch.arange(len(tokens) - st).view(1, -1).expand(3, -1) + st_idx)
    return torch.cat(parts, dim=1).T.contiguous()  # [T, 3]


def mrope_cos_sin(text, positions):
    """Qwen2VLRotaryEmbedding + apply_multimodal_rotary_pos_emb's cos/sin assembly:
    positions [T, 3] -> (cos, sin) [T, head_dim]."""
    sections = list(text.mrope_sections[:3])
    assert sum(sections) * 2 == text.hd, (sections, text.hd)
    assert all(s == 0 for s in text.mrope_sections[3:])
    pos = positions.T.to(torch.float64)  # [3, T]
    freqs = pos[:, :, None] * text.inv_freq()[None, None, :]  # [3, T, hd / 2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    split = sections * 2
    cos = torch.cat([c[i % 3] for i, c in enumerate(cos.split(split, dim=-1))], dim=-1)
    sin = torch.cat([s[i % 3] for i, s in enumerate(sin.split(split, dim=-1))], dim=-1)
    return cos, sin


def build_prompt(bpe, counts):
    """Expands each <|image_pad|> to its image's token count (Qwen2VLProcessor)."""
    pieces = PROMPT.split("<|image_pad|>")
    assert len(pieces) == len(counts) + 1
    text = pieces[0]
    for n, rest in zip(counts, pieces[1:]):
        text += "<|image_pad|>" * n + rest
    return bpe.encode(text)


def forward_all(text, tokens, rows_at, positions):
    return text.forward(tokens, rows_at, mrope_cos_sin(text, positions))


def run_model(args, vision_cls=None):
    """vision_cls: the tower class (default Vision; qwen25vl_reference passes its own). Its
    optional fixture_meta() adds keys after "projector" in the JSON."""
    vis = (vision_cls or Vision)(args.mmproj)
    text = TextModel(args.text)
    if text.arch != "qwen2vl" or text.mrope_sections is None:
        raise ValueError("the text model must be general.architecture = qwen2vl with "
                         "qwen2vl.rope.dimension_sections")
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
        pixels = [image_values(k, H, W) for k, (H, W) in enumerate(sizes)]
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
    bpe = Qwen2Bpe(text.reader)
    tokens = build_prompt(bpe, counts)
    pad, vstart = bpe.ids["<|image_pad|>"], bpe.ids["<|vision_start|>"]
    where = [i for i, tk in enumerate(tokens) if tk == pad]
    assert len(where) == flat.shape[0], (len(where), flat.shape)
    rows_at = {p: flat[j] for j, p in enumerate(where)}  # masked_scatter: in order
    spans = []
    for j, p in enumerate(where):
        if j == 0 or where[j - 1] != p - 1:
            spans.append([p, 0])
        spans[-1][1] += 1
    positions = get_rope_index(tokens, grids, pad, vstart, vis.merge)
    with torch.no_grad():
        logits = forward_all(text, tokens, rows_at, positions)
        seq, pos, greedy, margins = list(tokens), positions.clone(), [], []
        for _ in range(args.steps):
            last = forward_all(text, seq, rows_at, pos)[-1]
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
        **(vis.fixture_meta() if hasattr(vis, "fixture_meta") else {}),
        "mrope_sections": list(text.mrope_sections),
        "images": [list(s) for s in sizes],
        "grids_thw": [list(g) for g in grids],
        "tokens_per_image": counts,
        "prompt": PROMPT,
        "prompt_tokens": tokens,
        "spans": spans,
        "positions": positions.tolist(),
        "greedy": greedy,
        # top-1 minus top-2 reference logit at each greedy step.
        "greedy_margins": margins,
        "max_abs_embd": float(flat.abs().max()),
        "max_abs_logit": float(logits.abs().max()),
        "embd_file": base + ".embd.bin",
        "logits_file": base + ".logits.bin",
    }
    write_json(args.out_prefix + ".json", meta)


def write_json(path, meta):
    with open(path, "w") as f:
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()]
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def floats(s):
    v = [float(x) for x in s.split(",")]
    assert len(v) == 3
    return v


def image_name(path):
    """The image's path from the repository root when it is inside the repository."""
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    rel = os.path.relpath(os.path.abspath(path), root)
    return os.path.basename(path) if rel.startswith("..") else rel


def run_preprocess(args):
    from PIL import Image
    with open(args.image, "rb") as f:
        data = f.read()
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    mean, std = floats(args.mean), floats(args.std)
    px, (hb, wb) = preprocess(rgb, mean, std, args.min_pixels, args.max_pixels, args.patch,
                              args.merge)
    px.astype("<f4").tofile(args.out_prefix + ".pixels.bin")
    h, w = rgb.shape[:2]
    gh, gw = hb // args.patch, wb // args.patch
    meta = {
        "image": image_name(args.image),
        "image_fnv1a64": f"{fnv1a64(data):016x}",
        "input_hw": [h, w],
        "mean": mean,
        "std": std,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "patch_size": args.patch,
        "merge_size": args.merge,
        "resized_hw": [hb, wb],
        "grid_thw": [1, gh, gw],
        "num_tokens": (gh // args.merge) * (gw // args.merge),
        "resample": "PIL BICUBIC",
        "pixels_file": os.path.basename(args.out_prefix) + ".pixels.bin",
    }
    write_json(args.out_prefix + ".json", meta)


# Preprocessing inputs made here (media_fixtures.photo: gradients, blobs, an edge, noise).
INPUTS = {  # file -> (width, height, seed)
    "qwen2vl_tall.png": (40, 300, 4),   # 300 / 28 = 10.7 -> 11, 40 / 28 = 1.43 -> 1
    "qwen2vl_ties.png": (70, 98, 5),    # 98 / 28 = 3.5 -> 4, 70 / 28 = 2.5 -> 2 (ties to even)
}


def make_inputs(out_dir):
    from PIL import Image
    from media_fixtures import photo
    for name, (w, h, seed) in INPUTS.items():
        Image.fromarray(photo(w, h, seed)).save(os.path.join(out_dir, name), "PNG")


SMART_RESIZE_CASES = [  # (height, width, min_pixels, max_pixels), factor 28
    (150, 200, 56 * 56, 28 * 28 * 1280),     # plain rounding
    (98, 70, 56 * 56, 28 * 28 * 1280),       # 3.5 -> 4 and 2.5 -> 2: ties to even
    (42, 126, 56 * 56, 28 * 28 * 1280),      # 1.5 -> 2, 4.5 -> 4
    (300, 40, 56 * 56, 28 * 28 * 1280),      # tall: 1.43 -> 1
    (150, 200, 56 * 56, 28 * 28 * 16),       # max_pixels: floor after scaling down
    (150, 200, 28 * 28 * 64, 28 * 28 * 1280),  # min_pixels: ceil after scaling up
    (28, 28, 56 * 56, 28 * 28 * 1280),       # 28x28 < min_pixels -> 56x56
    (2000, 3000, 56 * 56, 28 * 28 * 1280),   # a photo, default limits
    (1080, 1920, 56 * 56, 28 * 28 * 1280),
    (5601, 28, 56 * 56, 28 * 28 * 1280),    # aspect 200.04 > 200: error
    (5600, 28, 56 * 56, 28 * 28 * 1280),    # aspect exactly 200: allowed
]  # (sides < 28 are left out: transformers versions disagree on them)


def run_smart_resize_table(path):
    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        c = {"height": h, "width": w, "factor": 28, "min_pixels": lo, "max_pixels": hi}
        try:
            c["resized_hw"] = list(smart_resize(h, w, 28, lo, hi))
        except ValueError as e:
            c["error"] = str(e)
        cases.append(c)
    with open(path, "w") as f:
        rows = ",\n".join("  " + json.dumps(c) for c in cases)
        f.write("{\n \"cases\": [\n" + rows + "\n ]\n}\n")


# ----------------------------------------------------------------- self-test

def self_test(text_path, mmproj_path, qwen2_path=None):
    """Checks the reference against itself, computed other ways:
    1. tower in HF patch order == tower in plain row-major order (conv2d with W0 + W1,
       (y, x) rotary positions, explicit 2x2 window gather);
    2. M-RoPE with t = h = w = position == text_reference's 1-D RoPE (same weights);
    3. the vision rotary equals a hand-written per-pair rotation;
    4. HF PatchEmbed literally (nn.Conv3d over the flattened patches' view) == the matmul;
    5. HF smart_resize properties and rounding.
    With QWEN2.gguf (a qwen2 text model with the same weights), also: M-RoPE with equal
    axes on TEXT == text_reference's qwen2 forward on QWEN2."""
    vis = Vision(mmproj_path)
    text = TextModel(text_path)
    ok = True
    with torch.no_grad():
        for k, (H, W) in enumerate([(56, 84), (84, 56), (112, 56)]):
            px = torch.tensor(image_values(k, H, W), dtype=torch.float64)
            a, b = vis.encode(px), vis.encode_row_major(px)
            err = float((a - b).abs().max())
            print(f"tower HF order vs row-major {H}x{W}: max |diff| = {err:.3g}")
            ok &= err < 1e-10
        toks = [(i * 37 + 11) % min(text.vocab, 300) for i in range(23)]
        pos = torch.arange(len(toks))[:, None].expand(-1, 3)
        a = text.forward(toks, None, mrope_cos_sin(text, pos))
        b = text.forward(toks)
        err = float((a - b).abs().max())
        print(f"M-RoPE with equal axes vs 1-D RoPE: max |diff| = {err:.3g}")
        ok &= err < 1e-10
        # Sections matter: moving later tokens along h alone must change the logits (a
        # shift of every token would not: RoPE sees relative positions only).
        pos2 = pos.clone()
        pos2[10:, 1] += 3
        err = float((text.forward(toks, None, mrope_cos_sin(text, pos2)) - b).abs().max())
        print(f"M-RoPE with h shifted changes logits by {err:.3g}")
        ok &= err > 1e-6
        # Vision rotary by hand: pair (i, i + hd/2) rotates by pos_h * f_i (i < hd/4) or
        # pos_w * f_(i - hd/4) (hd/4 <= i < hd/2), f_j = 10000^(-4j/hd).
        hd = vis.d // vis.heads
        ids = vis.rot_pos_ids(4, 6)
        cos, _ = vis.rotary(ids)
        f = 10000.0 ** (-4.0 * torch.arange(hd // 4, dtype=torch.float64) / hd)
        ang = torch.cat([ids[:, :1] * f, ids[:, 1:] * f], dim=1)
        err = float((cos - torch.cat([ang, ang], dim=1).cos()).abs().max())
        print(f"vision rotary vs hand-written: max |diff| = {err:.3g}")
        ok &= err < 1e-12
        flat, _ = vis.flatten_patches(torch.tensor(image_values(0, 56, 84), dtype=torch.float64))
        conv = torch.nn.Conv3d(3, vis.d, (2, vis.patch, vis.patch), (2, vis.patch, vis.patch),
                               bias=False).double()
        conv.weight.copy_(vis.conv3d)
        a = conv(flat.view(-1, 3, 2, vis.patch, vis.patch)).view(-1, vis.d)
        err = float((a - flat @ vis.conv3d.reshape(vis.d, -1).T).abs().max())
        print(f"nn.Conv3d PatchEmbed vs matmul: max |diff| = {err:.3g}")
        ok &= err < 1e-12
        if qwen2_path:
            q2 = TextModel(qwen2_path)
            assert q2.arch == "qwen2"
            err = float((text.forward(toks, None, mrope_cos_sin(text, pos)) -
                         q2.forward(toks)).abs().max())
            print(f"qwen2vl M-RoPE (equal axes) vs qwen2 model, same weights: {err:.3g}")
            ok &= err < 1e-10
    assert smart_resize(98, 70) == (112, 56)
    assert smart_resize(150, 200) == (140, 196)
    for h, w, lo, hi in SMART_RESIZE_CASES:
        try:
            hb, wb = smart_resize(h, w, 28, lo, hi)
            assert hb % 28 == 0 and wb % 28 == 0 and lo <= hb * wb <= hi, (h, w, hb, wb)
        except ValueError:
            pass
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main():
    if "--smart-resize-table" in sys.argv:
        run_smart_resize_table(sys.argv[sys.argv.index("--smart-resize-table") + 1])
        return
    if "--make-inputs" in sys.argv:
        make_inputs(sys.argv[sys.argv.index("--make-inputs") + 1])
        return
    if "--self-test" in sys.argv:
        i = sys.argv.index("--self-test")
        sys.exit(0 if self_test(*sys.argv[i + 1:i + 4]) else 1)
    if "--preprocess" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--preprocess", dest="image", required=True)
        ap.add_argument("out_prefix")
        ap.add_argument("--mean", required=True)
        ap.add_argument("--std", required=True)
        ap.add_argument("--min-pixels", type=int, default=56 * 56)
        ap.add_argument("--max-pixels", type=int, default=28 * 28 * 1280)
        ap.add_argument("--patch", type=int, default=14)
        ap.add_argument("--merge", type=int, default=2)
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
    ap.add_argument("--min-pixels", type=int, default=56 * 56)
    ap.add_argument("--max-pixels", type=int, default=28 * 28 * 16384)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--command", default="")
    run_model(ap.parse_args())


if __name__ == "__main__":
    main()
