// AVX-512 normalisation of RGB8 rows into float planes (see NormalizeRowAvx512 in
// resize_internal.h). Exactness: every output must equal the scalar table entry
// (float(x * (1.0 / 255.0)) - mean) / std bit for bit. Only 256 inputs exist per channel,
// so each shortcut (the Newton-corrected float quotient, the reciprocal multiply) is
// verified exhaustively before use and otherwise replaced by the table's own IEEE
// operations (double multiply, round to float, float subtract and divide).
#include <immintrin.h>

#include <algorithm>

#include "media/resize_internal.h"

namespace vlserve::media::internal {
namespace {

// float(x * (1.0 / 255.0)) for 16 int32 x in [0, 255]. Fast form: q = x * r with
// r = float(1 / 255), then one Newton step q + fma(-q, 255, x) * r gives the correctly
// rounded x / 255, which (checked for all 256 x by FastScaleIsExact) equals the double
// product rounded to float. Slow form: the double arithmetic itself.
inline __m512 Scale(__m512i v, bool fast) {
  if (fast) {
    const __m512 x = _mm512_cvtepi32_ps(v);
    const __m512 r = _mm512_set1_ps(1.0f / 255.0f);
    const __m512 q = _mm512_mul_ps(x, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, _mm512_set1_ps(255.0f), x), r, q);
  }
  const __m512d scale = _mm512_set1_pd(1.0 / 255.0);
  const __m512d lo = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), scale);
  const __m512d hi = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), scale);
  return _mm512_castpd_ps(_mm512_insertf64x4(
      _mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
      _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
}

bool FastScaleIsExact() {
  alignas(64) float fast[16], slow[16];
  for (int base = 0; base < 256; base += 16) {
    const __m512i v = _mm512_add_epi32(_mm512_set1_epi32(base),
                                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                         12, 13, 14, 15));
    _mm512_store_ps(fast, Scale(v, true));
    _mm512_store_ps(slow, Scale(v, false));
    for (int i = 0; i < 16; ++i) {
      if (fast[i] != slow[i] || slow[i] != static_cast<float>((base + i) * (1.0 / 255.0))) {
        return false;
      }
    }
  }
  return true;
}

// 16 bytes -> 16 normalized floats; `reciprocal` multiplies by `std` (= 1 / std, only
// when the caller verified that it rounds like the division for all 256 inputs).
inline __m512 Normalize16(__m128i bytes, bool fast, __m512 mean, __m512 std, bool reciprocal) {
  const __m512 f = Scale(_mm512_cvtepu8_epi32(bytes), fast);
  return reciprocal ? _mm512_mul_ps(_mm512_sub_ps(f, mean), std)
                    : _mm512_div_ps(_mm512_sub_ps(f, mean), std);
}

}  // namespace

void NormalizeRowAvx512(const uint8_t* pixels, int width, const NormalizeConstants& k,
                        float* r, float* g, float* b) {
  const float* mean = k.mean;
  const float* std = k.divisor;
  // vpermb indices that gather channel c of 16 consecutive pixels (bytes 3i + c).
  alignas(64) uint8_t idx[3][64] = {};
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 16; ++i) idx[c][i] = static_cast<uint8_t>(3 * i + c);
  }
  const __m512i idx_r = _mm512_load_si512(idx[0]);
  const __m512i idx_g = _mm512_load_si512(idx[1]);
  const __m512i idx_b = _mm512_load_si512(idx[2]);
  static const bool fast = FastScaleIsExact();
  const __m512 mr = _mm512_set1_ps(mean[0]), mg = _mm512_set1_ps(mean[1]),
               mb = _mm512_set1_ps(mean[2]);
  const __m512 sr = _mm512_set1_ps(std[0]), sg = _mm512_set1_ps(std[1]),
               sb = _mm512_set1_ps(std[2]);
  float* planes[3] = {r, g, b};
  for (int x = 0; x < width; x += 16) {
    const int n = std::min(16, width - x);
    const __mmask64 load_mask = (n == 16) ? (__mmask64{1} << 48) - 1
                                          : (__mmask64{1} << (3 * n)) - 1;
    const __mmask16 store_mask = static_cast<__mmask16>((1u << n) - 1);
    const __m512i v = _mm512_maskz_loadu_epi8(load_mask, pixels + 3 * static_cast<size_t>(x));
    const __m512 fr = Normalize16(_mm512_castsi512_si128(_mm512_permutexvar_epi8(idx_r, v)),
                                  fast, mr, sr,
                                  k.reciprocal[0]);
    const __m512 fg = Normalize16(_mm512_castsi512_si128(_mm512_permutexvar_epi8(idx_g, v)),
                                  fast, mg, sg,
                                  k.reciprocal[1]);
    const __m512 fb = Normalize16(_mm512_castsi512_si128(_mm512_permutexvar_epi8(idx_b, v)),
                                  fast, mb, sb,
                                  k.reciprocal[2]);
    _mm512_mask_storeu_ps(planes[0] + x, store_mask, fr);
    _mm512_mask_storeu_ps(planes[1] + x, store_mask, fg);
    _mm512_mask_storeu_ps(planes[2] + x, store_mask, fb);
  }
}

}  // namespace vlserve::media::internal
