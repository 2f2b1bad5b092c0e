// Scalar reference quantizers and dequantizers. Layouts and formulas follow ggml
// (ggml-common.h, ggml-quants.c); the K-quant quantizers use the same weighted
// scale/min searches as ggml's *_ref functions, so their error matches llama.cpp's.
#include "kernels/ref/quant_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"

namespace vlserve::kernels::ref {
namespace {

// Round to nearest, ties to even (the magic-number trick ggml uses), |f| < 2^22.
inline int NearestInt(float f) {
  const float v = f + 12582912.f;
  return static_cast<int>(FloatBits(v) & 0x007fffff) - 0x00400000;
}

// --- 32-value block types -------------------------------------------------------------

void QuantizeQ4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;  // max keeps its sign: it maps to -8 exactly
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const uint8_t q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[i].qs[j] = q0 | (q1 << 4);
    }
  }
}

void QuantizeQ4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = x[0], max = x[0];
    for (int j = 1; j < kQK; ++j) { min = std::min(min, x[j]); max = std::max(max, x[j]); }
    const float d = (max - min) / 15;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    y[i].m = F32ToF16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
      const uint8_t q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - min) * id + 0.5f)));
      y[i].qs[j] = q0 | (q1 << 4);
    }
  }
}

// Packs 32 5-bit values (q[j] for j < 32) into qs/qh.
void Pack5(const uint8_t* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4);
    qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q[j + 16] >> 4) & 1) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

void QuantizeQ5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    }
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) {
      q[j] = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
    }
    Pack5(q, y[i].qs, y[i].qh);
  }
}

void QuantizeQ5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = x[0], max = x[0];
    for (int j = 1; j < kQK; ++j) { min = std::min(min, x[j]); max = std::max(max, x[j]); }
    const float d = (max - min) / 31;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    y[i].m = F32ToF16(min);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) {
      q[j] = std::min(31, static_cast<int>((x[j] - min) * id + 0.5f));
    }
    Pack5(q, y[i].qs, y[i].qh);
  }
}

void QuantizeQ8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = F32ToF16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void DequantizeQ4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = F16ToF32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = ((x[i].qs[j] & 0xf) - 8) * d;
      y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void DequantizeQ4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = F16ToF32(x[i].d), m = F16ToF32(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = (x[i].qs[j] & 0xf) * d + m;
      y[j + 16] = (x[i].qs[j] >> 4) * d + m;
    }
  }
}

// 5-bit value j of a Q5 block.
inline int Q5Value(const uint8_t* qs, const uint8_t* qh_bytes, int j) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const int low = j < 16 ? (qs[j] & 0xf) : (qs[j - 16] >> 4);
  return low | static_cast<int>(((qh >> j) & 1) << 4);
}

void DequantizeQ5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = F16ToF32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = (Q5Value(x[i].qs, x[i].qh, j) - 16) * d;
  }
}

void DequantizeQ5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = F16ToF32(x[i].d), m = F16ToF32(x[i].m);
    for (int j = 0; j < kQK; ++j) y[j] = Q5Value(x[i].qs, x[i].qh, j) * d + m;
  }
}

void DequantizeQ8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = F16ToF32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = x[i].qs[j] * d;
  }
}

}  // namespace

// Defined in quant_k_ref.cc.
void QuantizeQ4K(const float* x, BlockQ4K* y, int64_t nb);
void QuantizeQ5K(const float* x, BlockQ5K* y, int64_t nb);
void QuantizeQ6K(const float* x, BlockQ6K* y, int64_t nb);
void DequantizeQ4K(const BlockQ4K* x, float* y, int64_t nb);
void DequantizeQ5K(const BlockQ5K* x, float* y, int64_t nb);
void DequantizeQ6K(const BlockQ6K* x, float* y, int64_t nb);

bool IsSupportedWeightType(DType type) {
  switch (type) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ4_0:
    case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1: case DType::kQ8_0:
    case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void Dequantize(DType type, const void* src, float* dst, int64_t n) {
  CHECK(IsSupportedWeightType(type)) << "Dequantize: unsupported type " << Info(type).name;
  CHECK_EQ(n % Info(type).block_size, 0);
  const int64_t nb = n / Info(type).block_size;
  switch (type) {
    case DType::kF32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(h[i]);
      return;
    }
    case DType::kQ4_0: return DequantizeQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::kQ4_1: return DequantizeQ4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case DType::kQ5_0: return DequantizeQ5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case DType::kQ5_1: return DequantizeQ5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case DType::kQ8_0: return DequantizeQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::kQ4_K: return DequantizeQ4K(static_cast<const BlockQ4K*>(src), dst, nb);
    case DType::kQ5_K: return DequantizeQ5K(static_cast<const BlockQ5K*>(src), dst, nb);
    case DType::kQ6_K: return DequantizeQ6K(static_cast<const BlockQ6K*>(src), dst, nb);
    default: return;
  }
}

void Quantize(DType type, const float* src, void* dst, int64_t n) {
  CHECK(IsSupportedWeightType(type)) << "Quantize: unsupported type " << Info(type).name;
  CHECK_EQ(n % Info(type).block_size, 0);
  const int64_t nb = n / Info(type).block_size;
  switch (type) {
    case DType::kF32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToF16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToBf16(src[i]);
      return;
    }
    case DType::kQ4_0: return QuantizeQ4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::kQ4_1: return QuantizeQ4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case DType::kQ5_0: return QuantizeQ5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case DType::kQ5_1: return QuantizeQ5_1(src, static_cast<BlockQ5_1*>(dst), nb);
    case DType::kQ8_0: return QuantizeQ8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::kQ4_K: return QuantizeQ4K(src, static_cast<BlockQ4K*>(dst), nb);
    case DType::kQ5_K: return QuantizeQ5K(src, static_cast<BlockQ5K*>(dst), nb);
    case DType::kQ6_K: return QuantizeQ6K(src, static_cast<BlockQ6K*>(dst), nb);
    default: return;
  }
}

void QuantizeActQ8(const float* x, ActQ8* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < kQK; ++j) {
      const int q = NearestInt(x[j] * id);
      dst[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    dst[b].d = d;
    dst[b].sum = sum;
  }
}

void QuantizeActQ8K(const float* x, ActQ8K* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQKK; ++b, x += kQKK) {
    ActQ8K& y = dst[b];
    std::memset(&y, 0, sizeof(y));
    float amax = 0, max = 0;
    for (int j = 0; j < kQKK; ++j) {
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    }
    if (amax == 0) continue;
    const float iscale = -127.f / max;
    for (int j = 0; j < kQKK; ++j) {
      y.qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    }
    for (int j = 0; j < kQKK / 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y.qs[16 * j + i];
      y.bsums[j] = static_cast<int16_t>(sum);
    }
    y.d = 1 / iscale;
  }
}

}  // namespace vlserve::kernels::ref
