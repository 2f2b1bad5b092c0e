// AVX2 + FMA normalisation of RGB8 rows into float planes (see NormalizeRowAvx2 in
// resize_internal.h). Exactness as in resize_normalize_avx512.cc: the Newton-corrected
// float quotient x / 255 is checked against the table's double arithmetic for all 256 x
// before use, and the reciprocal multiply only where MakeNormalizeConstants verified it.
#include <immintrin.h>

#include <cstddef>

#include "media/resize_internal.h"

namespace vlserve::media::internal {
namespace {

// float(x * (1.0 / 255.0)) for 8 int32 x in [0, 255] (see FastScaleIsExact).
inline __m256 Scale(__m256i v) {
  const __m256 x = _mm256_cvtepi32_ps(v);
  const __m256 r = _mm256_set1_ps(1.0f / 255.0f);
  const __m256 q = _mm256_mul_ps(x, r);
  return _mm256_fmadd_ps(_mm256_fnmadd_ps(q, _mm256_set1_ps(255.0f), x), r, q);
}

bool FastScaleIsExact() {
  alignas(32) float fast[8];
  for (int base = 0; base < 256; base += 8) {
    _mm256_store_ps(fast, Scale(_mm256_add_epi32(_mm256_set1_epi32(base),
                                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
    for (int i = 0; i < 8; ++i) {
      if (fast[i] != static_cast<float>((base + i) * (1.0 / 255.0))) return false;
    }
  }
  return true;
}

}  // namespace

bool NormalizeRowAvx2(const uint8_t* pixels, int width, const NormalizeConstants& k,
                      float* r, float* g, float* b) {
  static const bool fast = FastScaleIsExact();
  if (!fast) return false;
  float* planes[3] = {r, g, b};
  // Channel c of pixel i is byte 3i + c of the 24 bytes of 8 pixels: bytes 0-15 come from
  // one 16-byte load, 16-23 from an 8-byte load; two pshufb + or gather 8 of them.
  __m128i lo_idx[3], hi_idx[3];
  for (int c = 0; c < 3; ++c) {
    alignas(16) int8_t lo[16], hi[16];
    for (int i = 0; i < 16; ++i) {
      const int src = 3 * i + c;
      lo[i] = (i < 8 && src < 16) ? static_cast<int8_t>(src) : -1;
      hi[i] = (i < 8 && src >= 16) ? static_cast<int8_t>(src - 16) : -1;
    }
    lo_idx[c] = _mm_load_si128(reinterpret_cast<const __m128i*>(lo));
    hi_idx[c] = _mm_load_si128(reinterpret_cast<const __m128i*>(hi));
  }
  int x = 0;
  for (; x + 8 <= width; x += 8) {
    const uint8_t* p = pixels + 3 * static_cast<size_t>(x);
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 16));
    for (int c = 0; c < 3; ++c) {
      const __m128i bytes =
          _mm_or_si128(_mm_shuffle_epi8(lo, lo_idx[c]), _mm_shuffle_epi8(hi, hi_idx[c]));
      const __m256 f = _mm256_sub_ps(Scale(_mm256_cvtepu8_epi32(bytes)),
                                     _mm256_set1_ps(k.mean[c]));
      const __m256 d = _mm256_set1_ps(k.divisor[c]);
      _mm256_storeu_ps(planes[c] + x, k.reciprocal[c] ? _mm256_mul_ps(f, d) : _mm256_div_ps(f, d));
    }
  }
  for (; x < width; ++x) {
    for (int c = 0; c < 3; ++c) {
      const float s = static_cast<float>(pixels[3 * x + c] * (1.0 / 255.0)) - k.mean[c];
      planes[c][x] = k.reciprocal[c] ? s * k.divisor[c] : s / k.divisor[c];
    }
  }
  return true;
}

}  // namespace vlserve::media::internal
