// One-lane "vector" traits: the portable (baseline x86-64-v2) instantiation of the
// templated kernels in ops-inl.h and attention-inl.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

namespace vlserve::kernels::simd {

struct Scalar {
  using V = float;
  using M = bool;
  static constexpr int kLanes = 1;

  static V Zero() { return 0.0f; }
  static V Set(float x) { return x; }
  static V Load(const float* p) { return *p; }
  static void Store(float* p, V v) { *p = v; }
  static V LoadN(const float* p, int64_t) { return *p; }  // never called: n < kLanes = 1
  static V LoadNFill(const float* p, int64_t, float) { return *p; }
  static void StoreN(float* p, V v, int64_t) { *p = v; }
  // 16-bit floats (IEEE half, bfloat16) widened to float, exactly.
  static V LoadF16(const uint16_t* p) { return F16ToF32(*p); }
  static V LoadNF16(const uint16_t* p, int64_t) { return F16ToF32(*p); }
  static V LoadBf16(const uint16_t* p) { return Bf16ToF32(*p); }
  static V LoadNBf16(const uint16_t* p, int64_t) { return Bf16ToF32(*p); }

  static V Add(V a, V b) { return a + b; }
  static V Sub(V a, V b) { return a - b; }
  static V Mul(V a, V b) { return a * b; }
  static V Div(V a, V b) { return a / b; }
  static V Fma(V a, V b, V c) { return a * b + c; }
  static V Fnma(V a, V b, V c) { return c - a * b; }
  // Fused (one rounding), as in the vector traits: Phi() relies on it for exact x*x residuals.
  static V Fms(V a, V b, V c) { return std::fma(a, b, -c); }
  // Like the SSE/AVX instructions: the second operand wins when either is NaN.
  static V Max(V a, V b) { return a > b ? a : b; }
  static V Min(V a, V b) { return a < b ? a : b; }
  static V Abs(V a) { return std::fabs(a); }
  static V Round(V a) { return std::nearbyint(a); }
  static V Pow2(V n) {
    uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  static V HalfFloor(V n) { return std::floor(n * 0.5f); }

  static M Lt(V a, V b) { return a < b; }
  static M Gt(V a, V b) { return a > b; }
  static M Eq(V a, V b) { return a == b; }
  static V Select(M m, V if_true, V if_false) { return m ? if_true : if_false; }

  // out[0..3] = SumLanes of a, b, c, d.
  static void SumLanes4(V a, V b, V c, V d, float* out) {
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = d;
  }
  static float SumLanes(V v) { return v; }
  static float MaxLanes(V v) { return v; }
};

}  // namespace vlserve::kernels::simd
