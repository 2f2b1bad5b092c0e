// AVX-512 vector traits for the templated kernels in ops-inl.h and attention-inl.h.
// Include only from *_avx512.cc files (they are the only ones built with AVX-512 flags).
#pragma once

// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_*(), which it then
// reports as uninitialised (a known false positive, GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

namespace vlserve::kernels::simd {

struct Avx512 {
  using V = __m512;
  using M = __mmask16;
  static constexpr int kLanes = 16;

  static V Zero() { return _mm512_setzero_ps(); }
  static V Set(float x) { return _mm512_set1_ps(x); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  // First n (0 < n < kLanes) lanes; the rest read as zero / are not written.
  static M Tail(int64_t n) { return static_cast<M>((1u << n) - 1u); }
  static V LoadN(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(Tail(n), p); }
  static V LoadNFill(const float* p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), Tail(n), p);
  }
  static void StoreN(float* p, V v, int64_t n) { _mm512_mask_storeu_ps(p, Tail(n), v); }
  // 16-bit floats (IEEE half, bfloat16) widened to float, exactly; N: the first n lanes.
  static V LoadF16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V LoadNF16(const uint16_t* p, int64_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(Tail(n), p));
  }
  static V LoadBf16(const uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static V LoadNBf16(const uint16_t* p, int64_t n) {
    const __m256i h = _mm256_maskz_loadu_epi16(Tail(n), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }

  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm512_div_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a*b + c
  static V Fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a*b
  static V Fms(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }    // a*b - c
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }
  static V Min(V a, V b) { return _mm512_min_ps(a, b); }
  static V Abs(V a) { return _mm512_abs_ps(a); }
  static V Round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integral n in [-126, 127].
  static V Pow2(V n) {
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  // floor(n / 2) for integral n (exact).
  static V HalfFloor(V n) {
    return _mm512_roundscale_ps(_mm512_mul_ps(n, _mm512_set1_ps(0.5f)),
                                _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  }

  static M Lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M Gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M Eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static V Select(M m, V if_true, V if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }

  static float SumLanes(V v) { return _mm512_reduce_add_ps(v); }
  // out[0..3] = SumLanes of a, b, c, d (another addition order than SumLanes), in about a
  // third of the instructions of four SumLanes.
  static void SumLanes4(V a, V b, V c, V d, float* out) {
    const V t = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    const V u = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
    const V w = _mm512_add_ps(_mm512_shuffle_f32x4(t, u, 0x88), _mm512_shuffle_f32x4(t, u, 0xDD));
    const V p = _mm512_add_ps(w, _mm512_permute_ps(w, 0xB1));
    const V q = _mm512_add_ps(p, _mm512_permute_ps(p, 0x4E));
    _mm_storeu_ps(out, _mm512_castps512_ps128(_mm512_permutexvar_ps(
                           _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), q)));
  }
  static float MaxLanes(V v) { return _mm512_reduce_max_ps(v); }
};

}  // namespace vlserve::kernels::simd
