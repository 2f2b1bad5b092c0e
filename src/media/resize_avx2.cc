// AVX2 resize passes (built with -mavx2; run only when the CPU has AVX2). Pillow-exact:
// the int16 hi/lo weight split and why vpmaddwd reproduces Pillow's int32 sums are in
// resize_internal.h.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "media/resize_internal.h"

namespace vlserve::media::internal {
namespace {

// (H << 11) + L, >> 22, saturated to uint8; 4 accumulators cover 32 bytes in order.
inline __m256i Finish(__m256i h0, __m256i h1, __m256i h2, __m256i h3, __m256i l0, __m256i l1,
                      __m256i l2, __m256i l3) {
  auto f = [](__m256i h, __m256i l) {
    return _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h, kSplitBits), l),
                             kPrecisionBits);
  };
  return _mm256_packus_epi16(_mm256_packs_epi32(f(h0, l0), f(h1, l1)),
                             _mm256_packs_epi32(f(h2, l2), f(h3, l3)));
}

}  // namespace

void VerticalPassAvx2(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                      uint8_t* dst) {
  if (!PackWeightsFit(w)) return VerticalPassSse41(src, row_bytes, w, dst);
  const int out_h = static_cast<int>(w.first.size());
  const size_t wide_end = row_bytes / 32 * 32;
  std::vector<int32_t> hi((w.taps + 1) / 2), lo((w.taps + 1) / 2);
  const __m256i zero = _mm256_setzero_si256();
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* base = src + static_cast<size_t>(w.first[y]) * row_bytes;
    const int32_t* k = &w.weights[static_cast<size_t>(y) * w.taps];
    const int count = w.count[y];
    const int pairs = SplitTapPairs(k, count, hi.data(), lo.data());
    uint8_t* out = dst + static_cast<size_t>(y) * row_bytes;
    for (size_t x = 0; x < wide_end; x += 32) {
      __m256i h0 = zero, h1 = zero, h2 = zero, h3 = zero;
      __m256i l0 = _mm256_set1_epi32(kHalf), l1 = l0, l2 = l0, l3 = l0;
      for (int p = 0; p < pairs; ++p) {
        const uint8_t* ra = base + static_cast<size_t>(2 * p) * row_bytes + x;
        // An odd count pairs the last row with itself under weight 0.
        const uint8_t* rb = 2 * p + 1 < count ? ra + row_bytes : ra;
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rb));
        const __m256i ab_lo = _mm256_unpacklo_epi8(a, b), ab_hi = _mm256_unpackhi_epi8(a, b);
        // int16 words [a_i, b_i] per int32 lane: bytes 0-3, 4-7, 8-11, 12-15 of each lane.
        const __m256i p0 = _mm256_unpacklo_epi8(ab_lo, zero);
        const __m256i p1 = _mm256_unpackhi_epi8(ab_lo, zero);
        const __m256i p2 = _mm256_unpacklo_epi8(ab_hi, zero);
        const __m256i p3 = _mm256_unpackhi_epi8(ab_hi, zero);
        const __m256i wh = _mm256_set1_epi32(hi[p]), wl = _mm256_set1_epi32(lo[p]);
        h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(p0, wh));
        h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(p1, wh));
        h2 = _mm256_add_epi32(h2, _mm256_madd_epi16(p2, wh));
        h3 = _mm256_add_epi32(h3, _mm256_madd_epi16(p3, wh));
        l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(p0, wl));
        l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(p1, wl));
        l2 = _mm256_add_epi32(l2, _mm256_madd_epi16(p2, wl));
        l3 = _mm256_add_epi32(l3, _mm256_madd_epi16(p3, wl));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + x),
                          Finish(h0, h1, h2, h3, l0, l1, l2, l3));
    }
  }
  if (wide_end < row_bytes) VerticalColumnsSse41(src, row_bytes, wide_end, w, dst);
}

void HorizontalPassAvx2(const uint8_t* src, int in_w, int row_begin, int row_end,
                        const ResampleWeights& w, uint8_t* dst) {
  if (!PackWeightsFit(w)) return HorizontalPassSse41(src, in_w, row_begin, row_end, w, dst);
  PackedHorizontal pk;
  PackHorizontalWeights(w, 2, &pk);
  const int out_w = static_cast<int>(w.first.size());
  const size_t in_stride = static_cast<size_t>(in_w) * 3;
  const size_t over_read = HorizontalOverRead(pk);
  std::vector<uint8_t> padded(in_stride + over_read, 0);
  // Pixel bytes of taps {0, 1} and {2, 3} from 12 loaded bytes, as words
  // [r_a, r_b, g_a, g_b, b_a, b_b, 0, 0] (see PackedHorizontal).
  const __m256i shuf01 = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1,
                                          -1, 0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1,
                                          -1, -1);
  const __m256i shuf23 = _mm256_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1,
                                          -1, -1, 6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1,
                                          -1, -1, -1);
  const __m128i compact = _mm_setr_epi8(0, 1, 2, 4, 5, 6, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* row = src + y * in_stride;
    if (static_cast<size_t>(row_end - 1 - y) * in_stride < over_read) {
      std::memcpy(padded.data(), row, in_stride);
      row = padded.data();
    }
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * out_w * 3;
    const int16_t* wt = pk.weights.data();
    for (int g = 0; g < pk.groups; ++g) {
      const uint8_t* pa = row + pk.first[2 * g] * 3;
      const uint8_t* pb = row + pk.first[2 * g + 1] * 3;
      __m256i h = _mm256_setzero_si256(), l = _mm256_set1_epi32(kHalf);
      for (int s = 0; s < pk.steps; ++s, wt += 64, pa += 12, pb += 12) {
        const __m256i v = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pa))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(pb)), 1);
        const __m256i t01 = _mm256_shuffle_epi8(v, shuf01);
        const __m256i t23 = _mm256_shuffle_epi8(v, shuf23);
        const __m256i* wv = reinterpret_cast<const __m256i*>(wt);
        h = _mm256_add_epi32(h, _mm256_madd_epi16(t01, _mm256_loadu_si256(wv)));
        l = _mm256_add_epi32(l, _mm256_madd_epi16(t01, _mm256_loadu_si256(wv + 1)));
        h = _mm256_add_epi32(h, _mm256_madd_epi16(t23, _mm256_loadu_si256(wv + 2)));
        l = _mm256_add_epi32(l, _mm256_madd_epi16(t23, _mm256_loadu_si256(wv + 3)));
      }
      __m256i acc = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h, kSplitBits), l),
                                      kPrecisionBits);
      acc = _mm256_packus_epi16(_mm256_packs_epi32(acc, acc), acc);  // lane: [r g b 0 ...]
      __m128i px = _mm_unpacklo_epi32(_mm256_castsi256_si128(acc),
                                      _mm256_extracti128_si256(acc, 1));
      px = _mm_shuffle_epi8(px, compact);
      uint8_t* o = out + 6 * g;
      if (2 * g + 3 <= out_w) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o), px);  // 2 bytes spill into group g+1
      } else {
        uint8_t tmp[16];
        _mm_storeu_si128(reinterpret_cast<__m128i*>(tmp), px);
        std::memcpy(o, tmp, 3 * static_cast<size_t>(std::min(2, out_w - 2 * g)));
      }
    }
  }
}

}  // namespace vlserve::media::internal
