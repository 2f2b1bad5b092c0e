#!/usr/bin/python3
"""PyTorch reference for vlserve's InternVL family (qwen2 text + internvl mmproj).

Written from the Hugging Face semantics (OpenGVLab/InternVL3-1B's modeling_intern_vit.py,
modeling_internvl_chat.py and the model card's load_image / dynamic_preprocess), float64:
  * Preprocessing (load_image): dynamic_preprocess(image, min_num, max_num, image_size,
    use_thumbnail=True) with the model card's target_ratios (a set sorted by tile count)
    and find_closest_aspect_ratio, PIL resizes (Image.resize's default and torchvision's
    T.Resize(BICUBIC) on a PIL image are both PIL BICUBIC), crops row-major, the thumbnail
    last when there is more than one tile; T.ToTensor (uint8 -> float32 / 255) and
    T.Normalize (float32 (x - mean) / std), written out here (no torchvision needed).
  * Vision tower (InternVisionModel, norm_type layer_norm): Conv2d patch embedding with
    bias, [CLS] + patches, + position_embedding (row 0 = CLS, the rest through
    _get_pos_embed's bicubic interpolation, identity at the native size; done in float64
    here, HF does it in float32), InternVisionEncoderLayer: x + ls1 * attn(norm1(x)),
    x + ls2 * mlp(norm2(x)); attention = InternAttention._naive_attn with qkv = the GGUF's
    q, k, v stacked (llama.cpp splits HF's fused qkv in q, k, v order), scale hd^-0.5;
    mlp = fc1 -> GELU (hidden_act "gelu": erf) -> fc2. last_hidden_state (select_layer -1).
  * extract_feature: drop CLS, reshape to (h, w), pixel_shuffle(scale 0.5, ps_version v2),
    mlp1 = LayerNorm(4 d, eps 1e-5) -> Linear -> GELU (erf) -> Linear.
  * Language model: qwen2 decoder (text_reference.Model), image rows replace the
    <IMG_CONTEXT> tokens in order (InternVLChatModel.forward's input_embeds[selected]).
  * Prompt: the internvl2_5 conversation template (MPT style: system turn, user turn,
    "<|im_start|>assistant\\n"), each <image> replaced by "<img>" + "<IMG_CONTEXT>" *
    (num_image_token * num_patches) + "</img>" (InternVLChatModel.chat), tokenized with
    vision_reference.Bpe and the qwen2 split (qwen2vl_reference.Qwen2Bpe). The system
    message is English here (the real one is Chinese; the test vocabulary is ASCII).

The tiles fed to the tower are closed-form normalized pixels (vision_reference.tile_values;
the C++ test computes the same), so preprocessing is checked separately (--preprocess).

usage: internvl_reference.py TEXT.gguf MMPROJ.gguf OUT_PREFIX --grids 2x3,0x0
           [--steps 16] [--command "how the models were made"]
       grids: per image, rows x cols of its tile grid (0x0 = one tile, no thumbnail).
       writes OUT_PREFIX.json, OUT_PREFIX.embd.bin (float32 [image tokens, text_hidden],
       images in order) and OUT_PREFIX.logits.bin (float32 [prompt_len, vocab]).
usage: internvl_reference.py --preprocess IMAGE OUT_PREFIX --tile 56 --min-tiles 1
           --max-tiles 12 --mean a,b,c --std a,b,c
       writes OUT_PREFIX.json and OUT_PREFIX.pixels.bin (float32 [tiles, 3, tile, tile]).
usage: internvl_reference.py --make-inputs DIR
       writes the preprocessing test images of INPUTS (PNG) to DIR.
usage: internvl_reference.py --grid-table OUT.json
       writes the chosen tile grid for a fixed list of image sizes and tile ranges.
usage: internvl_reference.py --self-test MMPROJ.gguf
       internal consistency checks (see self_test).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

from gguf_min import Reader
from qwen2vl_reference import Qwen2Bpe, image_name, write_json, floats
from text_reference import Model as TextModel, fnv1a64
from vision_reference import tile_values

SYSTEM = "<|im_start|>system\nYou are InternVL, a multimodal assistant.<|im_end|>\n"
PROMPT = (SYSTEM + "<|im_start|>user\nImage-1: <image>\nImage-2: <image>\nCompare the two "
          "images.<|im_end|>\n<|im_start|>assistant\n")
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"


# ----------------------------------------------------------------- preprocessing (HF)

def target_ratios_model_card(min_num, max_num):
    """dynamic_preprocess's candidate grids (cols, rows): a set, sorted by tile count."""
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1)
        for j in range(1, n + 1) if i * j <= max_num and i * j >= min_num)
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def target_ratios_transformers(min_num, max_num):
    """transformers' get_all_supported_aspect_ratios (GotOcr2ImageProcessor): a list built
    width-major, sorted by tile count (stable: within a count, by width)."""
    ratios = [(w, h) for w in range(1, max_num + 1) for h in range(1, max_num + 1)
              if min_num <= w * h <= max_num]
    return sorted(ratios, key=lambda x: x[0] * x[1])


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def closest_grid(width, height, min_num, max_num, image_size, ratios=target_ratios_model_card):
    """(cols, rows) dynamic_preprocess picks for a width x height image."""
    return find_closest_aspect_ratio(width / height, ratios(min_num, max_num), width, height,
                                     image_size)


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):
    """The model card's function (PIL images in, PIL tiles out); resample written out:
    Image.resize's default for RGB images is BICUBIC (Pillow >= 7)."""
    from PIL import Image
    orig_width, orig_height = image.size
    target_aspect_ratio = closest_grid(orig_width, orig_height, min_num, max_num, image_size)
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]
    resized_img = image.resize((target_width, target_height), Image.Resampling.BICUBIC)
    processed_images = []
    for i in range(blocks):
        box = ((i % (target_width // image_size)) * image_size,
               (i // (target_width // image_size)) * image_size,
               ((i % (target_width // image_size)) + 1) * image_size,
               ((i // (target_width // image_size)) + 1) * image_size)
        processed_images.append(resized_img.crop(box))
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        processed_images.append(image.resize((image_size, image_size), Image.Resampling.BICUBIC))
    return processed_images, target_aspect_ratio


def to_tensor_normalize(tile, image_size, mean, std):
    """build_transform: T.Resize((s, s), BICUBIC) (the tiles already have that size: PIL
    returns a copy), T.ToTensor (float32 / 255), T.Normalize (float32)."""
    from PIL import Image
    if tile.size != (image_size, image_size):
        tile = tile.resize((image_size, image_size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(tile).copy()).permute(2, 0, 1).to(torch.float32).div(255)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - m) / s


def load_image(path, image_size, min_num, max_num, mean, std):
    """-> (float32 [tiles, 3, s, s], (cols, rows))."""
    from PIL import Image
    image = Image.open(path).convert("RGB")
    tiles, grid = dynamic_preprocess(image, min_num, max_num, image_size, use_thumbnail=True)
    return torch.stack([to_tensor_normalize(t, image_size, mean, std) for t in tiles]), grid


# ----------------------------------------------------------------- vision tower (HF)

class Vision:
    def __init__(self, path):
        r = Reader(path)
        m = r.meta
        assert m["general.architecture"] == "clip"
        self.proj = m["clip.projector_type"]
        if self.proj != "internvl":
            raise ValueError(f"projector {self.proj} is not internvl")
        if not m.get("clip.use_gelu", False) or m.get("clip.use_silu", False):
            raise ValueError("InternViT-300M's MLP is GELU (clip.use_gelu)")
        v = "clip.vision."
        self.image_size = m[v + "image_size"]
        self.patch = m[v + "patch_size"]
        self.d = m[v + "embedding_length"]
        self.n_layers = m[v + "block_count"]
        self.heads = m[v + "attention.head_count"]
        self.eps = m[v + "attention.layer_norm_epsilon"]
        self.downsample_ratio = 1.0 / m[v + "projector.scale_factor"]
        self.mean = [float(x) for x in m[v + "image_mean"]]
        self.std = [float(x) for x in m[v + "image_std"]]
        self.min_tiles = m.get(v + "preproc_min_tiles", 1)
        self.max_tiles = m.get(v + "preproc_max_tiles", 12)
        self.reader = r

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.t = t
        # HF shapes: class_embedding [1, 1, d], position_embedding [1, N + 1, d].
        self.class_embedding = t("v.class_embd").reshape(1, 1, self.d)
        self.position_embedding = t("v.position_embd.weight").reshape(1, -1, self.d)
        self.out_dim = t("mm.model.mlp.3.weight").shape[0]
        self.num_image_token = int((self.image_size // self.patch) ** 2 *
                                   self.downsample_ratio ** 2)

    # InternVisionEmbeddings
    def _get_pos_embed(self, pos_embed, H, W):
        side = self.image_size // self.patch
        pos_embed = pos_embed.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        pos_embed = torch.nn.functional.interpolate(pos_embed, size=(H, W), mode="bicubic",
                                                    align_corners=False)
        return pos_embed.reshape(1, -1, H * W).permute(0, 2, 1)

    def embeddings(self, pixel_values, cls_last=False):
        t = self.t
        patch_embeds = torch.nn.functional.conv2d(pixel_values, t("v.patch_embd.weight"),
                                                  t("v.patch_embd.bias"), stride=self.patch)
        batch_size, _, height, width = patch_embeds.shape
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = self.class_embedding.expand(batch_size, 1, -1)
        position_embedding = torch.cat([
            self.position_embedding[:, :1, :],
            self._get_pos_embed(self.position_embedding[:, 1:, :], height, width)], dim=1)
        if cls_last:  # llama.cpp's graph (self-test only): CLS appended, table rows in order
            return torch.cat([patch_embeds, class_embeds], dim=1) + self.position_embedding
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        return embeddings + position_embedding

    def ln(self, x, prefix, eps):
        n = x.shape[-1]
        return torch.nn.functional.layer_norm(x, (n,), self.t(prefix + ".weight"),
                                              self.t(prefix + ".bias"), eps)

    def attn(self, x, p):
        """InternAttention._naive_attn with qkv = [q; k; v] (the GGUF's split, re-stacked)."""
        t = self.t
        B, N, C = x.shape
        w = torch.cat([t(p + n + ".weight") for n in ("attn_q", "attn_k", "attn_v")])
        b = torch.cat([t(p + n + ".bias") for n in ("attn_q", "attn_k", "attn_v")])
        qkv = (x @ w.T + b).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scale = (C // self.heads) ** -0.5
        a = ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (a @ v).transpose(1, 2).reshape(B, N, C)
        return x @ t(p + "attn_out.weight").T + t(p + "attn_out.bias")

    def mlp(self, x, p):
        t = self.t
        h = x @ t(p + "ffn_up.weight").T + t(p + "ffn_up.bias")
        h = torch.nn.functional.gelu(h)  # ACT2FN["gelu"]: erf
        return h @ t(p + "ffn_down.weight").T + t(p + "ffn_down.bias")

    def tower(self, pixel_values, cls_last=False):
        """InternVisionModel(...).last_hidden_state: [B, N + 1, d]."""
        t = self.t
        x = self.embeddings(pixel_values, cls_last)
        for i in range(self.n_layers):
            p = f"v.blk.{i}."
            x = x + self.attn(self.ln(x, p + "ln1", self.eps), p) * t(p + "ls1.weight")
            x = x + self.mlp(self.ln(x, p + "ln2", self.eps), p) * t(p + "ls2.weight")
        return x

    @staticmethod
    def pixel_shuffle(x, scale_factor=0.5):
        """InternVLChatModel.pixel_shuffle, ps_version v2."""
        n, w, h, c = x.size()
        x = x.view(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.permute(0, 2, 1, 3).contiguous()
        x = x.view(n, int(h * scale_factor), int(w * scale_factor),
                   int(c / (scale_factor * scale_factor)))
        return x.permute(0, 2, 1, 3).contiguous()

    def mlp1(self, x):
        t = self.t
        h = self.ln(x, "mm.model.mlp.0", 1e-5)
        h = torch.nn.functional.gelu(h @ t("mm.model.mlp.1.weight").T + t("mm.model.mlp.1.bias"))
        return h @ t("mm.model.mlp.3.weight").T + t("mm.model.mlp.3.bias")

    def extract_feature(self, pixel_values):
        """[tiles, 3, s, s] -> [tiles, num_image_token, text_hidden]."""
        vit_embeds = self.tower(pixel_values)[:, 1:, :]
        h = w = int(vit_embeds.shape[1] ** 0.5)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], h, w, -1)
        vit_embeds = self.pixel_shuffle(vit_embeds, scale_factor=self.downsample_ratio)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], -1, vit_embeds.shape[-1])
        return self.mlp1(vit_embeds)

    def extract_feature_by_hand(self, pixel_values, cls_last=False):
        """The same features another way (self-test): an explicit s x s gather, merged token
        (X, Y) row-major = concat over dy (outer), dx of patch (sY + dy, sX + dx)."""
        x = self.tower(pixel_values, cls_last)
        x = x[:, :-1] if cls_last else x[:, 1:]
        B, N, d = x.shape
        side, s = int(round(N ** 0.5)), int(round(1 / self.downsample_ratio))
        g = x.reshape(B, side, side, d)
        rows = []
        for Y in range(side // s):
            for X in range(side // s):
                rows.append(torch.cat([g[:, s * Y + dy, s * X + dx] for dy in range(s)
                                       for dx in range(s)], dim=-1))
        return self.mlp1(torch.stack(rows, dim=1))


# ----------------------------------------------------------------- prompt (HF)

def build_prompt(bpe, tokens_per_image):
    """InternVLChatModel.chat: each <image> -> <img> + <IMG_CONTEXT> * n + </img>."""
    query = PROMPT
    for n in tokens_per_image:
        query = query.replace("<image>", IMG_START + IMG_CONTEXT * n + IMG_END, 1)
    assert "<image>" not in query
    return bpe.encode(query)


def parse_grids(s):
    return [tuple(int(v) for v in g.split("x")) for g in s.split(",")]


def tiles_of(grid):
    rows, cols = grid
    return rows * cols + 1 if rows * cols > 1 else 1


def run_model(args):
    vis = Vision(args.mmproj)
    text = TextModel(args.text)
    if text.arch != "qwen2":
        raise ValueError("InternVL3's language model is qwen2")
    grids = parse_grids(args.grids)
    counts = [tiles_of(g) for g in grids]
    pixels = torch.tensor(tile_values(sum(counts), vis.image_size), dtype=torch.float64)
    with torch.no_grad():
        embd = vis.extract_feature(pixels)  # [tiles, num_image_token, text_hidden]
    assert embd.shape[1] == vis.num_image_token and embd.shape[2] == text.hidden
    flat = embd.reshape(-1, embd.shape[-1])
    tokens_per_image = [c * vis.num_image_token for c in counts]
    bpe = Qwen2Bpe(text.reader)
    tokens = build_prompt(bpe, tokens_per_image)
    ctx = bpe.ids[IMG_CONTEXT]
    where = [i for i, tk in enumerate(tokens) if tk == ctx]
    assert len(where) == flat.shape[0], (len(where), flat.shape)
    rows_at = {p: flat[j] for j, p in enumerate(where)}  # input_embeds[selected]: in order
    spans = []
    for j, p in enumerate(where):
        if j == 0 or where[j - 1] != p - 1:
            spans.append([p, 0])
        spans[-1][1] += 1
    with torch.no_grad():
        logits = text.forward(tokens, rows_at)
        seq, greedy, margins = list(tokens), [], []
        for _ in range(args.steps):
            last = text.forward(seq, rows_at)[-1]
            top2 = torch.topk(last, 2).values
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            margins.append(round(float(top2[0] - top2[1]), 6))
            seq.append(nxt)
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
        "image_size": vis.image_size,
        "grids": [list(g) for g in grids],
        "tiles_per_image": counts,
        "tokens_per_tile": vis.num_image_token,
        "prompt": PROMPT,
        "prompt_tokens": tokens,
        "spans": spans,
        "greedy": greedy,
        "greedy_margins": margins,
        "max_abs_embd": float(flat.abs().max()),
        "max_abs_logit": float(logits.abs().max()),
        "embd_file": base + ".embd.bin",
        "logits_file": base + ".logits.bin",
    }
    write_json(args.out_prefix + ".json", meta)


def run_preprocess(args):
    with open(args.image, "rb") as f:
        data = f.read()
    mean, std = floats(args.mean), floats(args.std)
    px, (cols, rows) = load_image(args.image, args.tile, args.min_tiles, args.max_tiles, mean,
                                  std)
    px.numpy().astype("<f4").tofile(args.out_prefix + ".pixels.bin")
    from PIL import Image
    w, h = Image.open(args.image).size
    meta = {
        "image": image_name(args.image),
        "image_fnv1a64": f"{fnv1a64(data):016x}",
        "input_hw": [h, w],
        "tile": args.tile,
        "min_tiles": args.min_tiles,
        "max_tiles": args.max_tiles,
        "mean": mean,
        "std": std,
        "grid_rows_cols": [rows, cols],
        "num_tiles": int(px.shape[0]),
        "resample": "PIL BICUBIC",
        "pixels_file": os.path.basename(args.out_prefix) + ".pixels.bin",
    }
    write_json(args.out_prefix + ".json", meta)


# Preprocessing inputs made here (media_fixtures.photo: gradients, blobs, an edge, noise).
INPUTS = {  # file -> (width, height, seed)
    "internvl_tall.png": (60, 300, 6),     # aspect 0.2 = 1 x 5 exactly
    "internvl_square.png": (100, 100, 7),  # tile 56: 2 x 2 taken on the tie, 3 x 3 refused
    "internvl_small.png": (40, 44, 8),     # one tile, no thumbnail
}


def make_inputs(out_dir):
    from PIL import Image
    from media_fixtures import photo
    for name, (w, h, seed) in INPUTS.items():
        Image.fromarray(photo(w, h, seed)).save(os.path.join(out_dir, name), "PNG")


GRID_CASES = [  # (width, height, min_tiles, max_tiles, tile)
    (200, 150, 1, 12, 448),    # 4:3 -> 4 x 3
    (150, 200, 1, 12, 448),
    (1920, 1080, 1, 12, 448),  # 1.78: 2 x 1 and 4 x 2 tie at 0.22; area > 0.5 * 448² * 8
    (1280, 720, 1, 12, 448),   # the same tie, area 921600 > 802816 -> 4 x 2
    (1024, 576, 1, 12, 448),   # the same tie, area 589824 <= 802816 -> 2 x 1
    (1080, 1920, 1, 12, 448),
    (448, 448, 1, 12, 448),    # 1 x 1; 2 x 2 needs area > 401408
    (800, 800, 1, 12, 448),    # 2 x 2 taken, 3 x 3 (area > 903168) refused
    (1000, 1000, 1, 12, 448),  # 3 x 3
    (896, 448, 1, 12, 448),    # 2 x 1; 4 x 2 needs area > 802816
    (1792, 896, 1, 12, 448),   # 4 x 2
    (100, 100, 1, 12, 448),
    (3000, 2000, 1, 12, 448),  # 3 x 2
    (2000, 100, 1, 12, 448),   # 20:1 -> 12 x 1
    (100, 2000, 1, 12, 448),
    (1, 1, 1, 12, 448),
    (640, 480, 1, 12, 448),
    (500, 300, 1, 12, 448),
    (1000, 300, 1, 12, 448),   # 3 x 1 (6 x 2 ties; area too small)
    (4000, 1200, 1, 12, 448),  # 6 x 2 wins the same tie
    (200, 150, 1, 6, 448),     # fewer tiles allowed: 3 x 2
    (200, 150, 1, 1, 448),     # one tile only
    (448, 448, 2, 4, 448),     # min 2: 2 x 2
    (625, 1000, 4, 4, 448),    # 1 x 4 and 2 x 2 tie at 0.375 within one tile count
    (500, 200, 4, 4, 448),     # 4 x 1 and 2 x 2 tie at 1.5, area too small: the order decides
    (200, 150, 1, 6, 56),      # the preprocessing fixtures' settings
    (60, 300, 1, 12, 56),
    (100, 100, 1, 12, 56),
    (40, 44, 1, 12, 56),
]


def run_grid_table(path):
    cases = []
    for w, h, lo, hi, tile in GRID_CASES:
        cols, rows = closest_grid(w, h, lo, hi, tile)
        c = {"width": w, "height": h, "min_tiles": lo, "max_tiles": hi, "tile": tile,
             "grid_rows_cols": [rows, cols]}
        # Equal differences within one tile count: the model card's set order and
        # transformers' list order (by columns) can keep different grids.
        tc, tr = closest_grid(w, h, lo, hi, tile, target_ratios_transformers)
        if (tc, tr) != (cols, rows):
            c["transformers_rows_cols"] = [tr, tc]
        cases.append(c)
    with open(path, "w") as f:
        rows = ",\n".join("  " + json.dumps(c) for c in cases)
        f.write("{\n \"cases\": [\n" + rows + "\n ]\n}\n")


# ----------------------------------------------------------------- self-test

def self_test(mmproj_path):
    """Checks the reference against itself, computed other ways:
    1. HF pixel_shuffle (v2) + mlp1 == an explicit 2x2 gather, dy outer, dx inner;
    2. _get_pos_embed at the native size is the identity;
    3. llama.cpp's graph order (CLS appended after the patches, position rows in file
       order) gives materially different features: the fixture pins the HF order;
    4. the model card's set-ordered grids and transformers' list-ordered grids pick the same
       grid for every size 1..600 x 1..600 (step 7) and tile ranges 1..12, 1..6, 2..4;
    5. PIL's default resample for Image.resize on RGB is BICUBIC."""
    from PIL import Image
    vis = Vision(mmproj_path)
    ok = True
    with torch.no_grad():
        px = torch.tensor(tile_values(3, vis.image_size), dtype=torch.float64)
        a, b = vis.extract_feature(px), vis.extract_feature_by_hand(px)
        err = float((a - b).abs().max())
        print(f"pixel_shuffle v2 vs explicit gather: max |diff| = {err:.3g}")
        ok &= err < 1e-12
        side = vis.image_size // vis.patch
        pos = vis.position_embedding[:, 1:, :]
        err = float((vis._get_pos_embed(pos, side, side) - pos).abs().max())
        print(f"bicubic position interpolation at the native size: max |diff| = {err:.3g}")
        ok &= err < 1e-12
        c = vis.extract_feature_by_hand(px, cls_last=True)
        rel = float((a - c).abs().max() / a.abs().max())
        print(f"CLS-last (llama.cpp) vs CLS-first (HF): max |diff| / max |y| = {rel:.3g}")
        ok &= rel > 1e-2
    for lo, hi in ((1, 12), (1, 6), (2, 4)):
        for w in range(1, 600, 7):
            for h in range(1, 600, 7):
                for tile in (448, 56):
                    g1 = closest_grid(w, h, lo, hi, tile)
                    g2 = closest_grid(w, h, lo, hi, tile, target_ratios_transformers)
                    if g1 != g2:
                        print(f"grid order matters at {w}x{h} [{lo}, {hi}] tile {tile}: "
                              f"{g1} vs {g2}")
                        ok = False
    img = Image.fromarray(tile_values(1, 37)[0].transpose(1, 2, 0).astype(np.uint8))
    ok &= np.array_equal(np.asarray(img.resize((23, 51))),
                         np.asarray(img.resize((23, 51), Image.Resampling.BICUBIC)))
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main():
    if "--grid-table" in sys.argv:
        run_grid_table(sys.argv[sys.argv.index("--grid-table") + 1])
        return
    if "--make-inputs" in sys.argv:
        make_inputs(sys.argv[sys.argv.index("--make-inputs") + 1])
        return
    if "--self-test" in sys.argv:
        sys.exit(0 if self_test(sys.argv[sys.argv.index("--self-test") + 1]) else 1)
    if "--preprocess" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--preprocess", dest="image", required=True)
        ap.add_argument("out_prefix")
        ap.add_argument("--tile", type=int, default=448)
        ap.add_argument("--min-tiles", type=int, default=1)
        ap.add_argument("--max-tiles", type=int, default=12)
        ap.add_argument("--mean", default="0.485,0.456,0.406")
        ap.add_argument("--std", default="0.229,0.224,0.225")
        run_preprocess(ap.parse_args())
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("mmproj")
    ap.add_argument("out_prefix")
    ap.add_argument("--grids", default="2x3,0x0")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--command", default="")
    run_model(ap.parse_args())


if __name__ == "__main__":
    main()
