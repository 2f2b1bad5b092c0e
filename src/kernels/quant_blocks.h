// Block layouts of the GGUF weight types (identical to ggml-common.h) and the scalar
// half/bfloat16 conversions. Internal to src/kernels.
//
// Every quantized type stores `block_size` values in one packed struct; a row of `cols`
// values is cols / block_size consecutive blocks. All scales are IEEE half (f16) except
// Q8_K's, which is float. Structs are packed to their ggml sizes (static_asserts below).
#pragma once

#include <cstdint>
#include <cstring>

namespace vlserve::kernels {

constexpr int kQK = 32;    // values per block of the *_0 / *_1 types
constexpr int kQKK = 256;  // values per super-block of the K-quants

// x = d * (q - 8), q = 4-bit; qs[j] holds value j (low nibble) and j + 16 (high nibble).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// x = d * q + m.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// x = d * (q - 16), q = 5-bit: low 4 bits as Q4_0, bit 4 of value j in bit j of qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q + m, q = 5-bit packed as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q, q = int8.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// 8 sub-blocks of 32: x = d * sc[j] * q - dmin * m[j]; sc/m are 6-bit, packed in
// scales[12] (see GetScaleMinK4); qs: 64-value groups, low nibbles first then high.
struct BlockQ4K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// As Q4_K plus a fifth bit: bit (2*g) / (2*g+1) of qh[l] for group g's low / high half.
struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 sub-blocks of 16: x = d * scales[j] * (q - 32), q = 6-bit (4 in ql, 2 in qh).
struct BlockQ6K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4K) == 144);
static_assert(sizeof(BlockQ5K) == 176);
static_assert(sizeof(BlockQ6K) == 210);

// Activations quantized once per MatMul call for the integer dot products.
// 32-value blocks (for Q4_0..Q8_0 weights): x ≈ d * qs, sum = Σ qs.
struct ActQ8 {
  int8_t qs[kQK];
  float d;
  int32_t sum;
};
// 256-value blocks (for K-quant weights): bsums[j] = Σ qs[16j .. 16j+15].
struct ActQ8K {
  int8_t qs[kQKK];
  float d;
  int16_t bsums[kQKK / 16];
  int32_t pad[3];  // keeps the struct a multiple of 32 bytes
};

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32, exact (subnormals, inf and NaN included).
inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000 | (man << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: man * 2^-24, exact in float.
    const float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return BitsFloat(sign | ((exp + 112) << 23) | (man << 13));
}

// binary32 -> binary16 rounding to nearest, ties to even; overflow gives inf, NaN stays
// NaN (quiet). Matches F16C's vcvtps2ph with rounding mode 0.
inline uint16_t F32ToF16(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | static_cast<uint16_t>((abs >> 13) & 0x3ff);
  if (abs >= 0x477ff000) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000) {
    // Result is subnormal (or zero): round abs * 2^24 to an integer, ties to even.
    // Adding 0.5 (as a float with the right exponent) does exactly that in hardware.
    const float v = BitsFloat(abs) + 0.5f;
    return sign | static_cast<uint16_t>(FloatBits(v) - FloatBits(0.5f));
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
  const uint32_t mant_odd = (abs >> 13) & 1;
  const uint32_t rounded = abs + 0xfff + mant_odd;
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

inline float Bf16ToF32(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }

// As ggml_compute_fp32_to_bf16: round to nearest even; NaN kept quiet.
inline uint16_t F32ToBf16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
inline void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace vlserve::kernels
