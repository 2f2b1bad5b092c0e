#!/usr/bin/env python3
"""Regenerates the seed corpora of the fuzz targets other than gguf (make_gguf_corpus.py):
tests/fuzz/corpus/{chat_request,image_decode,data_url,render_options,tokenizer}.

Seeds are small valid inputs covering each parser's branches plus a few refusals; the
fuzzer and the replay tests mutate them. Inputs of fixed findings are kept next to them as
regress_* files (checked in by hand, not written here). Images are made with Pillow, the BMP variants
Pillow does not write (32-bit bitfields, top-down) and the TIFF block by hand with struct.
Run: /usr/bin/python3 tests/fuzz/make_fuzz_corpus.py   (needs Pillow with WebP)
"""
import base64
import io
import json
import os
import struct

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, files):
    out = os.path.join(HERE, "corpus", target)
    os.makedirs(out, exist_ok=True)  # other files there (regress_*: fixed findings) stay
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)


def j(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def chat_request():
    user = {"role": "user", "content": "Hi"}
    parts = [{"type": "text", "text": "Compare "},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
             {"type": "image_url", "image_url": "file:///tmp/a.png"},
             {"type": "document", "text": "A page.", "render": {"dpi": 96, "page": "auto"}},
             {"type": "text", "text": " and <image> \ue000\ue0000\ue000"}]
    return {
        "chat_min.json": j({"messages": [user]}),
        "chat_all_options.json": j({
            "model": "m", "messages": [{"role": "developer", "content": "Be brief."}, user,
                                       {"role": "assistant"}, user],
            "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.7,
            "top_p": 0.9, "top_k": 40, "min_p": 0.05, "presence_penalty": 0.5,
            "frequency_penalty": -0.5, "repetition_penalty": 1.1, "max_tokens": 16,
            "seed": 18446744073709551615, "stop": ["\n\n", "END"], "logit_bias": {"42": -100},
            "logprobs": True, "top_logprobs": 5, "priority": -3, "timeout": 1e9,
            "image_min_tokens": 64, "image_max_tokens": 256, "n": 1,
            "response_format": {"type": "text"}, "tools": [], "cache_salt": "x"}),
        "chat_parts.json": j({"messages": [{"role": "system", "content": "<|im_start|>"},
                                           {"role": "user", "content": parts}],
                              "max_completion_tokens": 1, "stop": "x"}),
        "chat_refused.json": j({"messages": [user], "n": 2, "tools": [{"type": "function"}],
                                "response_format": {"type": "json_schema"}}),
        "completion_text.json": j({"prompt": "Once upon a time", "echo": True, "suffix": "",
                                   "best_of": 1, "max_tokens": 8}),
        "completion_ids.json": j({"prompt": [[1, 2, 2147483647]], "logprobs": 3}),
        "completion_list.json": j({"prompt": ["one", "two"], "logprobs": False}),
        "tokenize.json": j({"content": "<|im_start|>hi\u00e9", "add_special": True,
                            "parse_special": False, "with_pieces": True}),
        "detokenize.json": j({"tokens": [1, -2, 9223372036854775807]}),
        "escapes.json": '{"messages":[{"role":"user","content":"\\u0000\\ud83d\\ude00\\n"}],'
                        '"temperature":1e308,"top_k":-1}',
        "gguf_template.jinja": "{% for message in messages %}{{'<|im_start|>' + message['role']"
                               " + '\\n' + message['content'] + '<|im_end|>'}}{% endfor %}"
                               "You are a helpful assistant[gMASK]<sop>",
    }


def image_bytes(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(mode, w, h):
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 37) % 256, (y * 53) % 256, ((x + y) * 19) % 256)
                 for y in range(h) for x in range(w)])
    if mode == "P":  # a 6-entry palette, not Pillow's default 256
        return img.convert("P", palette=Image.ADAPTIVE, colors=6)
    return img.convert(mode)


def bmp32_bitfields_top_down(w, h):
    pixels = b"".join(struct.pack("<BBBB", x * 30 % 256, y * 40 % 256, 200, 0)
                      for y in range(h) for x in range(w))
    header = struct.pack("<IiiHHIIiiII", 40, w, -h, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xFF0000, 0xFF00, 0xFF)
    offset = 14 + len(header) + len(masks)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + masks + pixels


def tiff_orientation(value, little=True):
    e = "<" if little else ">"
    ifd = struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, value, 0)
    return (b"II*\0" if little else b"MM\0*") + struct.pack(e + "I", 8) + ifd + b"\0\0\0\0"


def image_decode():
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "png_rgb.png": image_bytes(gradient("RGB", 5, 3), "PNG"),
        "png_palette.png": image_bytes(gradient("P", 8, 8), "PNG"),
        "png_grey1_interlaced.png": image_bytes(gradient("1", 9, 5), "PNG", interlace=1),
        "png_grey16.png": image_bytes(gradient("L", 4, 4).convert("I;16"), "PNG"),
        "png_la.png": image_bytes(gradient("LA", 3, 3), "PNG"),
        "jpeg_420.jpg": image_bytes(gradient("RGB", 32, 24), "JPEG", quality=50),
        "jpeg_exif6_progressive.jpg": image_bytes(gradient("RGB", 24, 16), "JPEG", quality=30,
                                                  progressive=True, exif=exif.tobytes()),
        "jpeg_grey.jpg": image_bytes(gradient("L", 16, 16), "JPEG", quality=40),
        "webp_lossy.webp": image_bytes(gradient("RGB", 8, 8), "WEBP", quality=30),
        "webp_lossless_alpha.webp": image_bytes(gradient("RGBA", 6, 4), "WEBP", lossless=True),
        "bmp_24.bmp": image_bytes(gradient("RGB", 3, 2), "BMP"),
        "bmp_8_palette.bmp": image_bytes(gradient("P", 5, 3), "BMP"),
        "bmp_1.bmp": image_bytes(gradient("1", 10, 2), "BMP"),
        "bmp_32_bitfields_top_down.bmp": bmp32_bitfields_top_down(3, 2),
        "tiff_orientation_be.bin": tiff_orientation(8, little=False),
        "gif_header.gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    }


def data_url():
    png = image_bytes(gradient("RGB", 2, 2), "PNG")
    b64 = base64.b64encode(png).decode()
    return {
        "png.txt": "data:image/png;base64," + b64,
        "urlsafe_unpadded.txt": "data:;base64," + base64.urlsafe_b64encode(b"\xfb\xff\xfe?>").decode().rstrip("="),
        "not_base64.txt": "data:image/png,rawbytes",
        "bad_alphabet.txt": "data:image/jpeg;base64,/9j/4A==\n",
        "file.txt": "file:///etc/passwd",
        "http.txt": "https://example.com/cat.png",
        "other_scheme.txt": "ftp://example.com/cat.png",
        "bare_base64.txt": "aGVsbG8gd29ybGQ=",
    }


TEXT = ("Glyph renders long text into page images.\n\tA tab, a soft\u00adhyphen, "
        "a very-long-hyphenated-compound, and a URL https://example.com/a/b?c=d.\n\n"
        "\u4f60\u597d\uff0c\u4e16\u754c\u3002 \u00e9\u0301 \U0001F600 \u200b\u202e RTL\n")


def render_options():
    def case(options, text=TEXT):
        head = b"" if options is None else (options if isinstance(options, bytes)
                                             else j(options).encode())
        return head + b"\0" + (text.encode() if isinstance(text, str) else text)
    return {
        "default_text_only.txt": TEXT.encode(),
        "a4.bin": case({"page": "A4", "dpi": 72}),
        "auto_justify_marker.bin": case({"page": "auto", "dpi": 96, "align": "justify",
                                         "newline": "marker", "indent": 12,
                                         "paragraph_spacing": 4}),
        "preset_no_crop.bin": case({"preset": "glyph-96dpi", "auto_crop": False, "margin": 0},
                                   b"bytes \xff\xfe\xc3( \x01\x02\x1b[0m \xed\xa0\x80 end\r\n\x0b\x0c"),
        "tiny_page.bin": case({"page_width": 72, "page_height": 72, "font_size": 4,
                               "line_height": 4, "margin": 30},
                              "Supercalifragilisticexpialidocious" * 3),
        "right_big_font.bin": case({"align": "right", "font_size": 72, "line_height": 144,
                                    "page": "Letter"}),
        "center.bin": case({"align": "center", "dpi": 36}, "a\n\n\nb\n" * 20),
        "refused.bin": case({"dpi": 5000, "colour": "red"}),
        "not_object.bin": case(b"[1]"),
    }


def tokenizer():
    return {
        "ascii.txt": "hello world, hello hell! It's 12345 3.14 don't we'll",
        "specials.txt": "<|im_end|> <tool><x> <tool>hello<|im_end|><tool>",
        "cjk_emoji.txt": "\u4f60\u597d\u4e16\u754c \U0001F600\U0001F469\u200d\U0001F4BB e\u0301",
        "invalid_utf8.bin": b"\xff\xfe\xc3 ok \xe4\xbd \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf",
        "whitespace.txt": "  leading\t\ttabs\n\n\r\nnewlines   trailing  ",
        "space_marker.txt": "\u2581already \u2581marked\u2581",
        "repeats.txt": "a" * 300 + " " + "ab" * 100,
    }


def main():
    write("chat_request", chat_request())
    write("image_decode", image_decode())
    write("data_url", data_url())
    write("render_options", render_options())
    write("tokenizer", tokenizer())


if __name__ == "__main__":
    main()
