// AVX2 + FMA vector traits for the templated kernels in ops-inl.h and attention-inl.h.
// Include only from *_avx2.cc files (they are the only ones built with AVX2 flags).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace vlserve::kernels::simd {

struct Avx2 {
  using V = __m256;
  using M = __m256;  // all-ones / all-zeros lanes
  static constexpr int kLanes = 8;

  static V Zero() { return _mm256_setzero_ps(); }
  static V Set(float x) { return _mm256_set1_ps(x); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // Lanes [0, n) set, for 0 < n < kLanes.
  static __m256i Tail(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V LoadN(const float* p, int64_t n) { return _mm256_maskload_ps(p, Tail(n)); }
  static V LoadNFill(const float* p, int64_t n, float fill) {
    return _mm256_blendv_ps(_mm256_set1_ps(fill), LoadN(p, n), _mm256_castsi256_ps(Tail(n)));
  }
  static void StoreN(float* p, V v, int64_t n) { _mm256_maskstore_ps(p, Tail(n), v); }
  // 16-bit floats (IEEE half via F16C, bfloat16) widened to float, exactly; N: the first
  // n lanes (AVX2 has no 16-bit masked load: the tail goes through a zeroed copy).
  static V LoadF16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V LoadNF16(const uint16_t* p, int64_t n) {
    alignas(16) uint16_t tmp[8] = {};
    for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
    return LoadF16(tmp);
  }
  static V LoadBf16(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static V LoadNBf16(const uint16_t* p, int64_t n) {
    alignas(16) uint16_t tmp[8] = {};
    for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
    return LoadBf16(tmp);
  }

  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm256_div_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V Fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V Fms(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
  static V Min(V a, V b) { return _mm256_min_ps(a, b); }
  static V Abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static V Round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V Pow2(V n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static V HalfFloor(V n) {
    return _mm256_round_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)),
                           _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  }

  static M Lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M Gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M Eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static V Select(M m, V if_true, V if_false) { return _mm256_blendv_ps(if_false, if_true, m); }

  // out[0..3] = SumLanes of a, b, c, d.
  static void SumLanes4(V a, V b, V c, V d, float* out) {
    out[0] = SumLanes(a);
    out[1] = SumLanes(b);
    out[2] = SumLanes(c);
    out[3] = SumLanes(d);
  }
  static float SumLanes(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float MaxLanes(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace vlserve::kernels::simd
