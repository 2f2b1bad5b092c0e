#!/usr/bin/env python3
"""Regenerates tests/fuzz/corpus/gguf: tiny valid and broken GGUF files (seed inputs).

Written from the GGUF spec with struct, independent of vlserve's writer.
Run: python3 tests/fuzz/make_gguf_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, type_id, payload):
    return s(key) + struct.pack("<I", type_id) + payload


def header(n_tensors, n_kv, version=3):
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def pad(b, a=32):
    return b + b"\0" * (-len(b) % a)


def tensor_info(name, dims, ggml_type, offset):
    return (s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ggml_type, offset))


def every_kv():
    return [
        kv("u8", 0, struct.pack("<B", 200)), kv("i8", 1, struct.pack("<b", -5)),
        kv("u16", 2, struct.pack("<H", 60000)), kv("i16", 3, struct.pack("<h", -300)),
        kv("u32", 4, struct.pack("<I", 7)), kv("i32", 5, struct.pack("<i", -7)),
        kv("f32", 6, struct.pack("<f", 0.5)), kv("bool", 7, b"\x01"),
        kv("str", 8, s("hello")), kv("u64", 10, struct.pack("<Q", 2**63)),
        kv("i64", 11, struct.pack("<q", -2**40)), kv("f64", 12, struct.pack("<d", 1e-9)),
        kv("tokens", 9, struct.pack("<IQ", 8, 3) + s("<s>") + s("") + s("\u00e9")),
        kv("scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<ff", -1.0, 2.0)),
        kv("types", 9, struct.pack("<IQ", 5, 2) + struct.pack("<ii", 1, 3)),
    ]


def tensors_file(alignment=32):
    kvs = [kv("general.architecture", 8, s("llama"))]
    if alignment != 32:
        kvs.append(kv("general.alignment", 4, struct.pack("<I", alignment)))
    blobs = [("a", [4], 0, b"\x00\x00\x80\x3f" * 4),  # f32 [4]
             ("q", [32, 2], 8, bytes(range(68))),      # q8_0 [32, 2]
             ("h", [3], 1, b"\x00\x3c" * 3)]           # f16 [3]
    infos, data, offset = b"", b"", 0
    for name, dims, t, blob in blobs:
        infos += tensor_info(name, dims, t, offset)
        data += pad(blob, alignment)
        offset += len(pad(blob, alignment))
    return pad(header(len(blobs), len(kvs)) + b"".join(kvs) + infos, alignment) + data


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {
        "valid_empty.gguf": pad(header(0, 0)),
        "valid_v2_all_types.gguf": header(0, 15, version=2) + b"".join(every_kv()),
        "valid_tensors.gguf": tensors_file(),
        "valid_align64.gguf": tensors_file(64),
        "broken_truncated.gguf": tensors_file()[:150],
        "broken_magic.gguf": b"GGML" + tensors_file()[4:],
        "broken_v1.gguf": header(0, 0, version=1),
        "broken_nested_array.gguf": header(0, 1) + kv("n", 9, struct.pack("<IQ", 9, 1)
                                                      + struct.pack("<IQ", 4, 1) + b"\1\0\0\0"),
        "broken_overlap.gguf": pad(header(2, 0) + tensor_info("a", [16], 0, 0)
                                   + tensor_info("b", [8], 0, 32)) + b"\0" * 64,
        "broken_q4_0_ne0.gguf": pad(header(1, 0) + tensor_info("q", [16], 2, 0)) + b"\0" * 32,
    }
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
