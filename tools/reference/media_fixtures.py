#!/usr/bin/python3
"""Regenerates tests/golden/media/: small test images and Pillow's results for them.

Run from the repository root with Debian's python3 (Pillow + numpy; no torch):
    /usr/bin/python3 tools/reference/media_fixtures.py

Everything is deterministic (fixed seeds, Pillow's own encoders). The C++ tests in
tests/unit/media/ decode the images with vlserve and compare against the .npy files:
  *_rgb.npy          Pillow: Image.open -> ImageOps.exif_transpose -> convert("RGB")
  resize_*.npy       Pillow: Image.resize of photo_rgb with BILINEAR/BICUBIC/LANCZOS
  smolvlm_*.npy      Idefics3ImageProcessor's steps (transformers), re-implemented below
                     with PIL + numpy, float32 [tiles, 3, tile, tile]
  llava_*.npy        LLaVA-1.5 expand2square + CLIPImageProcessor, float32 [3, s, s]
"""
import io
import math
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "media")


def photo(width=200, height=150, seed=1):
    """Smooth gradients + blobs + an edge + mild noise: JPEG/resize behave as on photos."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * x / width * 0.7 + 40 * np.cos((x + y) / 11.0)
    b = 255 * y / height * 0.8 + 30 * np.sin(x * y / 900.0)
    img = np.stack([r, g, b], axis=-1)
    img[(x - width * 0.6) ** 2 + (y - height * 0.4) ** 2 < (height * 0.2) ** 2] = [250, 240, 30]
    img[:, : width // 8] *= 0.3  # a hard vertical edge
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(samples, bit_depth, color_type):
    """PNG writer for layouts Pillow cannot save (16-bit RGB, 2-bit grey)."""
    h = samples.shape[0]
    rows = []
    for yy in range(h):
        row = samples[yy].reshape(-1)
        if bit_depth == 16:
            data = row.astype(">u2").tobytes()
        elif bit_depth == 8:
            data = row.astype(np.uint8).tobytes()
        else:
            data = np.packbits(np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth:]
                               .reshape(-1)).tobytes()
        rows.append(b"\x00" + data)
    ihdr = struct.pack(">IIBBBBB", samples.shape[1], h, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + png_chunk(b"IEND", b""))


def exif_bytes(orientation, big_endian):
    """APP1 payload: 'Exif\\0\\0' + TIFF header + IFD0 with one other tag + orientation."""
    e = ">" if big_endian else "<"
    tiff = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    entries = [struct.pack(e + "HHI", 0x010F, 2, 4) + b"ACM\x00",  # Make = "ACM"
               struct.pack(e + "HHIH", 0x0112, 3, 1, orientation) + b"\x00\x00"]
    tiff += struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)
    return b"Exif\x00\x00" + tiff


def pillow_rgb(data):
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    return np.asarray(im.convert("RGB"))


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# ----- transformers' processors, step by step (PIL does every resize, as in HF) -----

def hf_normalize(arr, mean, std):
    x = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)  # image_transforms.rescale
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return np.transpose(x, (2, 0, 1)).astype(np.float32)  # CHW


def smolvlm(arr, longest_edge, tile, mean=(0.5,) * 3, std=(0.5,) * 3, upper=4096):
    lanczos = Image.Resampling.LANCZOS
    h, w = arr.shape[:2]
    # _resize_output_size_rescale_to_max_len + _resize_output_size_scale_below_upper_bound
    aspect = w / h
    if w >= h:
        w = longest_edge
        h = int(w / aspect)
        h += h % 2
    else:
        h = longest_edge
        w = int(h * aspect)
        w += w % 2
    h, w = max(h, 1), max(w, 1)
    aspect = w / h
    if w >= h and w > upper:
        w, h = upper, int(upper / aspect)
    elif h > w and h > upper:
        h, w = upper, int(upper * aspect)
    img = Image.fromarray(arr).resize((w, h), lanczos)
    # resize_for_vision_encoder
    aspect = w / h
    if w >= h:
        w = math.ceil(w / tile) * tile
        h = math.ceil(int(w / aspect) / tile) * tile
    else:
        h = math.ceil(h / tile) * tile
        w = math.ceil(int(h * aspect) / tile) * tile
    img = np.asarray(img.resize((w, h), lanczos))
    # split_image
    frames = []
    if h > tile or w > tile:
        nh, nw = math.ceil(h / tile), math.ceil(w / tile)
        oh, ow = math.ceil(h / nh), math.ceil(w / nw)
        for r in range(nh):
            for c in range(nw):
                frames.append(img[r * oh:min(r * oh + oh, h), c * ow:min(c * ow + ow, w)])
        img = np.asarray(Image.fromarray(img).resize((tile, tile), lanczos))
    frames.append(img)
    return np.stack([hf_normalize(f, mean, std) for f in frames])


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def llava(arr, size, pad=True):
    img = Image.fromarray(arr)
    if pad and img.width != img.height:  # llava/mm_utils.py expand2square
        side = max(img.size)
        bg = tuple(int(x * 255) for x in CLIP_MEAN)
        canvas = Image.new("RGB", (side, side), bg)
        canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
        img = canvas
    w, h = img.size  # CLIPImageProcessor: shortest_edge resize, bicubic
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    out = np.asarray(img.resize((nw, nh), Image.Resampling.BICUBIC))
    top, left = (nh - size) // 2, (nw - size) // 2  # center_crop
    return hf_normalize(out[top:top + size, left:left + size], CLIP_MEAN, CLIP_STD)


def main():
    os.makedirs(OUT, exist_ok=True)
    arr = photo()
    pil = Image.fromarray(arr)
    rng = np.random.default_rng(7)

    aux_arr = photo(100, 75, seed=2)  # format variants use a smaller image
    aux = Image.fromarray(aux_arr)
    files = {
        "photo.png": encode(pil, "PNG"),
        "photo.jpg": encode(pil, "JPEG", quality=90),
        "aux.bmp": encode(aux, "BMP"),
        "photo_lossless.webp": encode(pil, "WEBP", lossless=True),
        "aux.png": encode(aux, "PNG"),
        "aux_444.jpg": encode(aux, "JPEG", quality=90, subsampling=0),
        "aux_progressive.jpg": encode(aux, "JPEG", quality=85, progressive=True),
        "grey.jpg": encode(aux.convert("L"), "JPEG", quality=90),
        "aux_lossy.webp": encode(aux, "WEBP", quality=80),
        "grey.png": encode(aux.convert("L"), "PNG"),
        "palette.png": encode(aux.quantize(200), "PNG"),
        "palette4.png": encode(aux.quantize(16), "PNG", bits=4),
        "palette.bmp": encode(aux.quantize(200), "BMP"),
    }
    alpha = rng.integers(0, 256, aux_arr.shape[:2], dtype=np.uint8)
    files["rgba.png"] = encode(Image.fromarray(np.dstack([aux_arr, alpha])), "PNG")
    files["la.png"] = encode(Image.fromarray(np.dstack([aux_arr[..., 1], alpha]), "LA"), "PNG")
    files["rgba_lossless.webp"] = encode(Image.fromarray(np.dstack([aux_arr, alpha])), "WEBP",
                                         lossless=True)
    wide = aux_arr.astype(np.uint16) * 257 + rng.integers(0, 257, aux_arr.shape, dtype=np.uint16)
    files["rgb16.png"] = raw_png(wide, 16, 2)
    files["rgba16.png"] = raw_png(np.dstack([wide, wide[..., :1]]), 16, 6)
    files["grey16.png"] = raw_png((np.arange(75 * 100) * 3 % 65536).reshape(75, 100, 1)
                                  .astype(np.uint16), 16, 0)
    files["grey2.png"] = raw_png((aux_arr[..., :1] >> 6), 2, 0)
    files["grey1.png"] = raw_png((aux_arr[..., :1] >> 7), 1, 0)
    small = Image.fromarray(photo(24, 16, seed=3))  # asymmetric, to see every rotation
    for o in range(1, 9):
        files[f"exif_{o}.jpg"] = encode(small, "JPEG", quality=95,
                                        exif=exif_bytes(o, big_endian=o % 2 == 0))
    # Each decode case names the .npy holding Pillow's RGB; identical results share one.
    known = {"photo_rgb.npy": arr, "aux_rgb.npy": aux_arr}
    for name in known:
        np.save(os.path.join(OUT, name), known[name])
    manifest = []
    for name, data in files.items():
        save(name, data)
        rgb = pillow_rgb(data)
        ref = next((k for k, v in known.items() if v.shape == rgb.shape and (v == rgb).all()), None)
        if ref is None:
            ref = name.replace(".", "_") + "_rgb.npy"
            np.save(os.path.join(OUT, ref), rgb)
        manifest.append(f"{name} {ref}\n")
    with open(os.path.join(OUT, "decode_cases.txt"), "w") as f:
        f.writelines(manifest)

    # DCT-scaled JPEG decode as Pillow's draft() does it (same libjpeg scale_denom).
    for denom in (2, 4, 8):
        im = Image.open(io.BytesIO(files["photo.jpg"]))
        im.draft("RGB", (200 // denom, 150 // denom))  # Pillow picks scale from floor ratios
        np.save(os.path.join(OUT, f"photo_jpg_draft{denom}_rgb.npy"), np.asarray(im.convert("RGB")))

    filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "lanczos": Image.Resampling.LANCZOS}
    sizes = [(77, 58), (37, 150), (200, 61), (211, 157), (9, 5)]
    for fname, f in filters.items():
        for w, h in sizes:
            np.save(os.path.join(OUT, f"resize_{fname}_{w}x{h}.npy"),
                    np.asarray(pil.resize((w, h), f)))

    # Sizes are scaled down from the real configs (2048/512, 336) to keep fixtures small;
    # the rules exercised are the same.
    np.save(os.path.join(OUT, "smolvlm_128_32.npy"), smolvlm(arr, 128, 32))
    np.save(os.path.join(OUT, "smolvlm_portrait_96_32.npy"),
            smolvlm(np.ascontiguousarray(arr.transpose(1, 0, 2)), 96, 32))
    np.save(os.path.join(OUT, "smolvlm_single_48_48.npy"), smolvlm(arr, 48, 48))
    np.save(os.path.join(OUT, "llava_64.npy"), llava(arr, 64))
    np.save(os.path.join(OUT, "llava_portrait_64.npy"),
            llava(np.ascontiguousarray(arr.transpose(1, 0, 2)), 64))
    np.save(os.path.join(OUT, "llava_nopad_48.npy"), llava(arr, 48, pad=False))
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
