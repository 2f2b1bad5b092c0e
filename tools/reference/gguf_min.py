"""A small, independent GGUF reader (numpy) for the reference scripts.

Reads GGUF v2/v3 metadata and tensors and dequantizes F32, F16, BF16, Q8_0, Q4_0 and Q4_K
to float32 following ggml's block layouts. Written from the GGUF spec, not from vlserve's
C++ reader, so the golden fixtures check that reader too.
"""
import struct

import numpy as np

# ggml type id -> (name, values per block, bytes per block)
TYPES = {
    0: ("f32", 1, 4),
    1: ("f16", 1, 2),
    2: ("q4_0", 32, 18),
    8: ("q8_0", 32, 34),
    12: ("q4_k", 256, 144),
    30: ("bf16", 1, 2),
}

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic = self.buf[:4]
        if magic != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        self.pos = 4
        self.version = self._u("<I")
        n_tensors = self._u("<Q")
        n_kv = self._u("<Q")
        self.meta = {}
        for _ in range(n_kv):
            key = self._str()
            vtype = self._u("<I")
            self.meta[key] = self._value(vtype)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            n_dims = self._u("<I")
            shape = [self._u("<Q") for _ in range(n_dims)]
            ttype = self._u("<I")
            offset = self._u("<Q")
            infos.append((name, shape, ttype, offset))
        align = self.meta.get("general.alignment", 32)
        data_start = (self.pos + align - 1) // align * align
        self.tensors = {}
        for name, shape, ttype, offset in infos:
            self.tensors[name] = (shape, ttype, data_start + offset)

    def _u(self, fmt):
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _str(self):
        n = self._u("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _value(self, vtype):
        if vtype == 8:
            return self._str()
        if vtype == 9:
            etype = self._u("<I")
            n = self._u("<Q")
            return [self._value(etype) for _ in range(n)]
        return self._u(_SCALAR[vtype])

    def tensor(self, name):
        """float32 array of shape [ne1, ne0] (rows, cols) or [ne0]."""
        shape, ttype, start = self.tensors[name]
        n = int(np.prod(shape))
        tname, bs, ts = TYPES[ttype]
        raw = np.frombuffer(self.buf, dtype=np.uint8, count=n // bs * ts, offset=start)
        vals = dequantize(tname, raw, n)
        return vals.reshape(list(reversed(shape)))

    def type_name(self, name):
        return TYPES[self.tensors[name][1]][0]


def _f16(raw_u8):
    return raw_u8.view(np.float16).astype(np.float32)


def dequantize(tname, raw, n):
    if tname == "f32":
        return raw.view(np.float32).copy()
    if tname == "f16":
        return _f16(raw)
    if tname == "bf16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if tname == "q8_0":  # {f16 d; int8 qs[32]}: x = d * q
        b = raw.reshape(-1, 34)
        d = _f16(b[:, :2].copy().reshape(-1))
        q = b[:, 2:].view(np.int8).astype(np.float32)
        return (d[:, None] * q).reshape(-1)
    if tname == "q4_0":  # {f16 d; u8 qs[16]}: x[j] = d*(lo nibble - 8), x[j+16] = d*(hi - 8)
        b = raw.reshape(-1, 18)
        d = _f16(b[:, :2].copy().reshape(-1))
        qs = b[:, 2:]
        lo = (qs & 0x0F).astype(np.float32) - 8
        hi = (qs >> 4).astype(np.float32) - 8
        return (d[:, None] * np.concatenate([lo, hi], axis=1)).reshape(-1)
    if tname == "q4_k":
        return _dequant_q4_k(raw)
    raise ValueError(f"type {tname} not supported by the reference reader")


def _dequant_q4_k(raw):
    # block: f16 d, f16 dmin, u8 scales[12] (8 6-bit scales + 8 6-bit mins), u8 qs[128].
    b = raw.reshape(-1, 144)
    d = _f16(b[:, 0:2].copy().reshape(-1))
    dmin = _f16(b[:, 2:4].copy().reshape(-1))
    sc = b[:, 4:16].astype(np.int32)
    qs = b[:, 16:144]
    scales = np.zeros((b.shape[0], 8), np.float32)
    mins = np.zeros((b.shape[0], 8), np.float32)
    for j in range(8):
        if j < 4:
            s = sc[:, j] & 63
            m = sc[:, j + 4] & 63
        else:
            s = (sc[:, j + 4] & 0x0F) | ((sc[:, j - 4] >> 6) << 4)
            m = (sc[:, j + 4] >> 4) | ((sc[:, j] >> 6) << 4)
        scales[:, j] = s
        mins[:, j] = m
    out = np.zeros((b.shape[0], 256), np.float32)
    # 4 chunks of 64 values: 32 low nibbles (sub-block 2c) then 32 high (sub-block 2c+1).
    for c in range(4):
        q = qs[:, c * 32:(c + 1) * 32]
        for half, nib in ((0, q & 0x0F), (1, q >> 4)):
            j = 2 * c + half
            vals = (d * scales[:, j])[:, None] * nib.astype(np.float32) - (dmin * mins[:, j])[:, None]
            out[:, c * 64 + half * 32:c * 64 + half * 32 + 32] = vals
    return out.reshape(-1)
