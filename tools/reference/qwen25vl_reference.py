#!/usr/bin/python3
"""PyTorch reference for vlserve's Qwen2.5-VL family (qwen2vl text + qwen2.5vl_merger mmproj).

Written from the Hugging Face semantics (transformers' models/qwen2_5_vl/
modeling_qwen2_5_vl.py), float64 throughout; everything Qwen2.5-VL shares with Qwen2-VL
comes from qwen2vl_reference.py (patch layout, Conv3d patch embedding, 2-D vision rotary,
prompt, tokenizer, get_rope_index, M-RoPE, the qwen2 decoder):
  * Vision tower (Qwen2_5_VisionTransformerPretrainedModel.forward):
      - patch_embed (Conv3d, no bias; v.patch_embd.weight / .weight.1 are its temporal
        slices), rot_pos_emb (pos_ids in the processor's merge-unit order);
      - get_window_index: the merged grid (gh/2 x gw/2 units) cut into windows of
        vit_merger_window_size = window_size // spatial_merge_size // patch_size units
        (112 // 2 // 14 = 4), padded with -100 up to whole windows, windows in row-major
        order, units row-major inside each window; cu_window_seqlens = cumulative window
        sizes * spatial_merge_unit (4), then torch.unique_consecutive (drops the empty
        windows the padding adds when a side is a multiple of 4);
      - hidden states and rotary rows permuted by window_index (in whole merge units);
      - blocks: layers in fullatt_block_indexes attend over the whole image (cu_seqlens),
        the others only within their window (cu_window_seqlens): the eager/sdpa path,
        attention per cu_seqlens chunk;
      - Qwen2_5_VLVisionBlock: x + attn(norm1(x)); x + mlp(norm2(x)); norm1/norm2 are
        Qwen2RMSNorm(eps 1e-6) (weight only); attention: fused qkv (GGUF: attn_q/k/v with
        biases), apply_rotary_pos_emb_vision, scale head_dim^-0.5, proj (attn_out, bias);
        Qwen2_5_VLMLP(bias=True, act silu): down(silu(gate(x)) * up(x));
      - Qwen2_5_VLPatchMerger: ln_q = Qwen2RMSNorm(eps 1e-6) (v.post_ln.weight), view(-1,
        4 d), Linear (mm.0) -> nn.GELU() (erf) -> Linear (mm.2);
      - merger output permuted back with reverse_indices = argsort(window_index), so the
        rows come out in merged-grid row-major order.
    fullatt_block_indexes come from clip.vision.n_wa_pattern the way llama.cpp's converter
    encoded them (n_wa_pattern = fullatt_block_indexes[0] + 1, evenly spaced): layer il is
    full when (il + 1) % n_wa_pattern == 0. window_size is clip.vision.window_size when the
    file has it, else HF's default 112.
  * Language model: exactly Qwen2-VL's (Qwen2_5_VLModel.get_rope_index differs only for
    video: t = frame * second_per_grid_t * tokens_per_second; an image has one frame, t = 0).
    The prompt is the same ChatML template with two images.

usage: qwen25vl_reference.py TEXT.gguf MMPROJ.gguf OUT_PREFIX --images 196x252,56x84
           [--steps 16] [--command "how the models were made"]
       writes OUT_PREFIX.json, OUT_PREFIX.embd.bin, OUT_PREFIX.logits.bin (the schema of
       tests/golden/qwen2vl, plus the window keys; see tests/golden/qwen25vl/README.md).
       --image-files a.png,b.png [--min-pixels N --max-pixels N]: real images through the
       Qwen2-VL preprocessing instead (end-to-end check; no fixture uses it).
usage: qwen25vl_reference.py --self-test TEXT.gguf MMPROJ.gguf
       internal consistency checks (see self_test).
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import qwen2vl_reference as q2
from gguf_min import Reader
from text_reference import Model as TextModel


class Vision25(q2.Vision):
    """Qwen2.5-VL's tower. Reuses Vision's flatten_patches, rot_pos_ids, rotary, rotate_half
    (identical in Qwen2.5-VL: Qwen2_5_VisionPatchEmbed, rot_pos_emb,
    Qwen2_5_VisionRotaryEmbedding, apply_rotary_pos_emb_vision)."""

    EPS = 1e-6  # Qwen2RMSNorm(hidden, eps=1e-6) for norm1, norm2 and ln_q (hard-coded in HF)

    def __init__(self, path):  # pylint: disable=super-init-not-called
        r = Reader(path)
        m = r.meta
        assert m["general.architecture"] == "clip"
        self.proj = m["clip.projector_type"]
        if self.proj != "qwen2.5vl_merger":
            raise ValueError(f"projector {self.proj} is not qwen2.5vl_merger")
        if not m.get("clip.use_silu", False) or m.get("clip.use_gelu", False):
            raise ValueError("Qwen2.5-VL's vision MLP is SiLU-gated: clip.use_silu must be true")
        v = "clip.vision."
        self.patch = m[v + "patch_size"]
        self.d = m[v + "embedding_length"]
        self.n_layers = m[v + "block_count"]
        self.heads = m[v + "attention.head_count"]
        self.eps = m[v + "attention.layer_norm_epsilon"]  # llama.cpp's; HF's is EPS
        self.merge = m.get(v + "spatial_merge_size", 2)
        self.mean = [float(x) for x in m[v + "image_mean"]]
        self.std = [float(x) for x in m[v + "image_std"]]
        self.n_wa_pattern = m[v + "n_wa_pattern"]
        self.window_size = m.get(v + "window_size", 112)  # HF vision_config.window_size
        self.fullatt = [i for i in range(self.n_layers) if (i + 1) % self.n_wa_pattern == 0]
        self.reader = r

        def t(name):
            return torch.tensor(r.tensor(name), dtype=torch.float64) if name in r.tensors else None

        self.t = t
        self.ffn = t("v.blk.0.ffn_up.weight").shape[0]
        assert t("v.blk.0.ffn_gate.weight").shape[0] == self.ffn
        w0, w1 = t("v.patch_embd.weight"), t("v.patch_embd.weight.1")  # [d, 3, p, p] each
        for name in ("v.patch_embd.bias", "v.position_embd.weight", "v.pre_ln.weight"):
            assert t(name) is None, f"{name}: Qwen2.5-VL has none"
        for i in range(self.n_layers):
            for n in ("ln1", "ln2"):
                assert t(f"v.blk.{i}.{n}.bias") is None, "Qwen2RMSNorm has no bias"
        assert t("v.post_ln.bias") is None, "ln_q is Qwen2RMSNorm: no bias"
        self.conv3d = torch.stack([w0, w1], dim=2)  # HF patch_embed.proj.weight [d, 3, 2, p, p]
        self.out_dim = t("mm.2.weight").shape[0]

    def fixture_meta(self):
        return {"n_wa_pattern": self.n_wa_pattern, "window_size": self.window_size,
                "fullatt_block_indexes": self.fullatt}

    def merger_window(self):
        """vit_merger_window_size: a window's side in merge units (112 // 2 // 14 = 4)."""
        return self.window_size // self.merge // self.patch

    # -- HF get_window_index over a batch of images (grid_t = 1 each)
    def get_window_index(self, grids):
        """grids: [(1, gh, gw), ...] in patches -> (window_index over all images' merge units,
        cu_window_seqlens after unique_consecutive)."""
        ws = self.merger_window()
        window_index, cu_window, offset = [], [0], 0
        for gt, gh, gw in grids:
            lh, lw = gh // self.merge, gw // self.merge
            index = torch.arange(gt * lh * lw).reshape(gt, lh, lw)
            pad_h = ws - lh % ws
            pad_w = ws - lw % ws
            nh, nw = (lh + pad_h) // ws, (lw + pad_w) // ws
            idx = F.pad(index, (0, pad_w, 0, pad_h), "constant", -100)
            idx = idx.reshape(gt, nh, ws, nw, ws).permute(0, 1, 3, 2, 4)
            idx = idx.reshape(gt, nh * nw, ws, ws)
            seqlens = (idx != -100).sum([2, 3]).reshape(-1)
            idx = idx.reshape(-1)
            window_index.append(idx[idx != -100] + offset)
            cu_window.extend((seqlens.cumsum(0) * self.merge ** 2 + cu_window[-1]).tolist())
            offset += gt * lh * lw
        return torch.cat(window_index), torch.unique_consecutive(torch.tensor(cu_window))

    def rms(self, x, name):
        """Qwen2RMSNorm (weight only)."""
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.EPS) * self.t(name)

    def attention(self, q, k, v, mask=None):
        """q, k, v [N, heads, hd] -> [N, d]; mask [N, N] bool (True = may attend) or None."""
        N, hd = q.shape[0], q.shape[2]
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        s = q @ k.transpose(-1, -2) * hd ** -0.5
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        return (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(N, self.d)

    def block(self, i, x, cos, sin, attend):
        """Qwen2_5_VLVisionBlock i. attend(q, k, v) -> [N, d] does the attention proper
        (chunked by cu_seqlens in HF order, or masked in row-major order)."""
        t = self.t
        p = f"v.blk.{i}."
        N, hd = x.shape[0], self.d // self.heads

        def lin(h, n):
            return h @ t(p + n + ".weight").T + t(p + n + ".bias")

        h = self.rms(x, p + "ln1.weight")
        q, k, v = (lin(h, n).view(N, self.heads, hd) for n in ("attn_q", "attn_k", "attn_v"))
        q = q * cos[:, None] + self.rotate_half(q) * sin[:, None]
        k = k * cos[:, None] + self.rotate_half(k) * sin[:, None]
        x = x + lin(attend(q, k, v), "attn_out")
        h = self.rms(x, p + "ln2.weight")
        h = F.silu(lin(h, "ffn_gate")) * lin(h, "ffn_up")  # Qwen2_5_VLMLP, act silu
        return x + lin(h, "ffn_down")

    def merger_mlp(self, h):
        t = self.t
        h = F.gelu(h @ t("mm.0.weight").T + t("mm.0.bias"))  # nn.GELU(): erf
        return h @ t("mm.2.weight").T + t("mm.2.bias")

    def encode(self, pixels, full_only=False):
        """One image: pixels [3, H, W] -> [(H/28) * (W/28), text_hidden], merged-grid
        row-major rows."""
        return self.encode_batch([pixels], full_only)

    def encode_batch(self, images, full_only=False):
        """HF forward (get_image_features) on several images at once: [3, H, W] each ->
        their merged rows concatenated. full_only: every layer full (self-test)."""
        flats, grids = [], []
        for px in images:
            flat, grid = self.flatten_patches(px)
            flats.append(flat)
            grids.append(grid)
        N, u = sum(g[1] * g[2] for g in grids), self.merge ** 2
        x = torch.cat(flats) @ self.conv3d.reshape(self.d, -1).T  # patch_embed
        pos = torch.cat([self.rot_pos_ids(gh, gw) for _, gh, gw in grids])  # rot_pos_emb
        window_index, cu_window = self.get_window_index(grids)
        x = x.reshape(N // u, u, -1)[window_index].reshape(N, -1)
        pos = pos.reshape(N // u, u, -1)[window_index].reshape(N, -1)
        cos, sin = self.rotary(pos)
        cu_full = F.pad(torch.tensor([gh * gw for _, gh, gw in grids]).cumsum(0), (1, 0))

        def chunked(cu):  # the eager / sdpa path: attention per cu_seqlens chunk
            def attend(q, k, v):
                lengths = (cu[1:] - cu[:-1]).tolist()
                outs = [self.attention(a, b, c) for a, b, c in
                        zip(q.split(lengths), k.split(lengths), v.split(lengths))]
                return torch.cat(outs)
            return attend

        for i in range(self.n_layers):
            full = full_only or i in self.fullatt
            x = self.block(i, x, cos, sin, chunked(cu_full if full else cu_window))
        h = self.rms(x, "v.post_ln.weight").reshape(-1, u * self.d)  # merger.ln_q, view
        h = self.merger_mlp(h)
        return h[torch.argsort(window_index)]  # reverse_indices

    def encode_row_major(self, pixels):
        """The same tower computed the way vlserve does (self-test): conv2d with W0 + W1 over
        row-major patches, (y, x) rotary positions, windowed layers masked so patch (y, x)
        attends only to patches of its (y // P, x // P) window, P = window_size // patch
        (8 patches), full layers unmasked; RMSNorm then an explicit 2x2 gather."""
        t, p, m = self.t, self.patch, self.merge
        w = t("v.patch_embd.weight") + t("v.patch_embd.weight.1")
        x = F.conv2d(pixels[None], w, stride=p)[0]  # [d, gh, gw]
        gh, gw = x.shape[1:]
        x = x.flatten(1).T  # [gh * gw, d], row-major
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        yy, xx = yy.flatten(), xx.flatten()
        cos, sin = self.rotary(torch.stack([yy, xx], dim=-1))
        P = self.window_size // p
        win = (yy // P) * ((gw + P - 1) // P) + xx // P
        mask = win[:, None] == win[None, :]
        for i in range(self.n_layers):
            layer_mask = None if i in self.fullatt else mask
            x = self.block(i, x, cos, sin,
                           lambda q, k, v, lm=layer_mask: self.attention(q, k, v, lm))
        x = self.rms(x, "v.post_ln.weight").reshape(gh, gw, self.d)
        rows = [torch.cat([x[m * Y + dy, m * X + dx] for dy in range(m) for dx in range(m)])
                for Y in range(gh // m) for X in range(gw // m)]
        return self.merger_mlp(torch.stack(rows))


def llama_cpp_window_index(lh, lw, ws):
    """clip.cpp's PROJECTOR_TYPE_QWEN25VL inv_idx (written independently of HF): windows of
    ws x ws merge units scanned row-major, clipped at the right/bottom edges, units row-major
    inside each window; inv_idx[dst] = src."""
    out = []
    for y in range(0, lh, ws):
        for x in range(0, lw, ws):
            for dy in range(min(ws, lh - y)):
                for dx in range(min(ws, lw - x)):
                    out.append((y + dy) * lw + x + dx)
    return torch.tensor(out)


# ----------------------------------------------------------------- self-test

def self_test(text_path, mmproj_path):
    """Checks the reference against itself, computed other ways:
    1. HF order (window_index permutation, cu_window_seqlens chunks, reverse_indices) ==
       row-major order with an 8x8-patch window mask on windowed layers, for images with
       edge windows, exact multiples of the window (HF's padding adds empty windows), and a
       single partial window;
    2. get_window_index == llama.cpp's window enumeration; cu_window_seqlens == 4 x window
       sizes, no empty windows after unique_consecutive;
    3. windows matter: an image larger than one window differs from an all-full-attention
       run, an image inside one window does not;
    4. several images in one HF call (window_index offsets, per-image cu_seqlens) == one
       image at a time;
    5. RMSNorm == torch's functional rms_norm when available; a block's SiLU MLP by hand;
    6. M-RoPE with equal axes == 1-D RoPE on the text model (as in qwen2vl's self-test)."""
    vis = Vision25(mmproj_path)
    text = TextModel(text_path)
    ok = True
    ws = vis.merger_window()
    print(f"n_wa_pattern {vis.n_wa_pattern}: full-attention layers {vis.fullatt} of "
          f"{vis.n_layers}; window {vis.window_size} px = {ws} merge units")
    ok &= 0 < len(vis.fullatt) < vis.n_layers
    with torch.no_grad():
        for k, (H, W) in enumerate([(196, 252), (168, 252), (56, 84), (224, 112), (252, 140), (112, 364),
                                    (28, 28)]):
            px = torch.tensor(q2.image_values(k, H, W), dtype=torch.float64)
            a, b = vis.encode(px), vis.encode_row_major(px)
            err = float((a - b).abs().max())
            print(f"tower HF windowed order vs row-major masked {H}x{W}: max |diff| = {err:.3g}")
            ok &= err < 1e-10
            gh, gw = H // vis.patch, W // vis.patch
            lh, lw = gh // vis.merge, gw // vis.merge
            wi, cu = vis.get_window_index([(1, gh, gw)])
            same = torch.equal(wi, llama_cpp_window_index(lh, lw, ws))
            sizes = [min(ws, lh - y) * min(ws, lw - x) * 4 for y in range(0, lh, ws)
                     for x in range(0, lw, ws)]
            cu_ok = cu.tolist() == [0] + torch.tensor(sizes).cumsum(0).tolist()
            print(f"  window_index == llama.cpp's: {same}; cu_window_seqlens {cu.tolist()} "
                  f"== 4 x window sizes: {cu_ok}")
            ok &= same and cu_ok
            c = vis.encode(px, full_only=True)
            diff = float((a - c).abs().max())
            one_window = lh <= ws and lw <= ws
            print(f"  windowed vs all-full attention: {diff:.3g} "
                  f"({'one window: must be 0' if one_window else 'several windows: must differ'})")
            ok &= diff < 1e-12 if one_window else diff > 1e-6
        imgs = [torch.tensor(q2.image_values(k, H, W), dtype=torch.float64)
                for k, (H, W) in enumerate([(168, 252), (56, 84), (224, 112)])]
        err = float((vis.encode_batch(imgs) - torch.cat([vis.encode(i) for i in imgs])).abs().max())
        print(f"three images in one HF call vs one at a time: {err:.3g}")
        ok &= err < 1e-10
        x = torch.randn(5, vis.d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        if hasattr(F, "rms_norm"):
            ref = F.rms_norm(x, (vis.d,), vis.t("v.post_ln.weight"), vis.EPS)
            err = float((vis.rms(x, "v.post_ln.weight") - ref).abs().max())
            print(f"RMSNorm vs F.rms_norm: {err:.3g}")
            ok &= err < 1e-12
        # Block with the attention replaced by zeros: x1 = x + attn_out.bias, then
        # x1 + down(silu(gate(n)) * up(n)), n = RMSNorm(x1), silu(g) = g / (1 + e^-g).
        t, hd = vis.t, vis.d // vis.heads
        blk = vis.block(0, x, torch.ones(5, hd, dtype=torch.float64),
                        torch.zeros(5, hd, dtype=torch.float64),
                        lambda q, k, v: torch.zeros(5, vis.d, dtype=torch.float64))
        x1 = x + t("v.blk.0.attn_out.bias")
        n = x1 / torch.sqrt((x1 * x1).mean(-1, keepdim=True) + 1e-6) * t("v.blk.0.ln2.weight")
        g = n @ t("v.blk.0.ffn_gate.weight").T + t("v.blk.0.ffn_gate.bias")
        u = n @ t("v.blk.0.ffn_up.weight").T + t("v.blk.0.ffn_up.bias")
        ref = x1 + (g / (1 + torch.exp(-g)) * u) @ t("v.blk.0.ffn_down.weight").T \
            + t("v.blk.0.ffn_down.bias")
        err = float((blk - ref).abs().max())
        print(f"block MLP path by hand: {err:.3g}")
        ok &= err < 1e-12
        toks = [(i * 37 + 11) % min(text.vocab, 300) for i in range(23)]
        pos = torch.arange(len(toks))[:, None].expand(-1, 3)
        err = float((text.forward(toks, None, q2.mrope_cos_sin(text, pos)) -
                     text.forward(toks)).abs().max())
        print(f"M-RoPE with equal axes vs 1-D RoPE: max |diff| = {err:.3g}")
        ok &= err < 1e-10
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main():
    if "--self-test" in sys.argv:
        i = sys.argv.index("--self-test")
        sys.exit(0 if self_test(*sys.argv[i + 1:i + 3]) else 1)
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("mmproj")
    ap.add_argument("out_prefix")
    ap.add_argument("--images", default="196x252,56x84")
    ap.add_argument("--image-files", default="",
                    help="comma-separated image files, preprocessed as HF does, instead of "
                         "the closed-form --images (an end-to-end check; no fixture uses it)")
    ap.add_argument("--min-pixels", type=int, default=56 * 56)
    ap.add_argument("--max-pixels", type=int, default=28 * 28 * 16384)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--command", default="")
    q2.run_model(ap.parse_args(), Vision25)


if __name__ == "__main__":
    main()
