// AVX-512 helpers shared by the Q4_K / Q5_K decode kernels (matmul_k_avx512.cc) and the
// prepacked Q4_K kernel (matmul_k4pack_avx512.cc). Include only from *_avx512.cc files.
#pragma once

#include <immintrin.h>

namespace vlserve::kernels::internal::avx512 {

// The 12 packed 6-bit scales / mins of 4 super-blocks at once: `hdr` holds each block's
// first 16 bytes (f16 d, f16 dmin, 12 scale bytes) in 128-bit lane i; returns per lane
// the bytes [sc0..sc7, m0..m7] (llama.cpp's get_scale_min_k4).
inline __m512i UnpackScalesK4x4(__m512i hdr) {  // per lane: [sc0..sc7, m0..m7]
  const __m512i a = _mm512_shuffle_epi8(
      hdr, _mm512_broadcast_i32x4(_mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12,
                                                13, 14, 15)));
  const __m512i h = _mm512_shuffle_epi8(
      hdr, _mm512_broadcast_i32x4(_mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8,
                                                9, 10, 11)));
  const __m512i lo = _mm512_mask_blend_epi8(
      0xF000F000F000F000ull,
      _mm512_and_si512(a, _mm512_broadcast_i32x4(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15,
                                                               63, 63, 63, 63, 15, 15, 15, 15))),
      _mm512_and_si512(_mm512_srli_epi16(a, 4), _mm512_set1_epi8(15)));
  return _mm512_or_si512(lo, _mm512_srli_epi16(_mm512_and_si512(h, _mm512_set1_epi8(char(0xC0))), 2));
}

}  // namespace vlserve::kernels::internal::avx512
