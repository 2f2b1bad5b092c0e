// Internal to src/media: the resize passes per ISA and the weight layouts they share.
//
// Exactness of the AVX2 / AVX-512 passes (they must equal Pillow bit for bit):
// Pillow computes S = 2^21 + sum_t p_t * w_t in int32 (p_t in [0, 255], w_t 22-bit fixed
// point) and clips S >> 22 to [0, 255]. The wide passes split every weight as
// w = hi * 2^11 + lo with lo = w & 2047 in [0, 2047] and hi = w >> 11 (arithmetic), both
// int16 as long as |w| < 2^26 (PackWeightsFit checks this; real weights are < 1.5 * 2^22).
// vpmaddwd / vpdpwssd multiply int16 pairs and add the two products into int32: each
// product is below 255 * 2^15 < 2^23 in magnitude, so a pair sum never overflows. The two
// accumulators H = sum p*hi and L = 2^21 + sum p*lo then give (H << 11) + L = S modulo 2^32
// (shifts and adds are exact ring operations modulo 2^32, whatever wraps in between), and
// S itself fits int32 exactly as in Pillow, so the result is S. The final arithmetic shift
// and the saturating packs (int32 -> int16 -> uint8) equal Pillow's clip8.
// The AVX-512 horizontal pass uses the same argument with signed byte digits and
// vpdpbusd instead (ByteWeights in resize_avx512.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "media/resize.h"

namespace vlserve::media::internal {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
constexpr int kSplitBits = 11;  // w = hi << 11 | lo

// rows [row_begin, row_end) of src (in_w RGB pixels per row, nothing after row_end may be
// read) -> dst rows [0, row_end - row_begin) of w.first.size() pixels.
using HorizontalPassFn = void (*)(const uint8_t* src, int in_w, int row_begin, int row_end,
                                  const ResampleWeights& w, uint8_t* dst);
// Vertical pass over rows of `row_bytes` bytes; w.first is relative to `src`.
using VerticalPassFn = void (*)(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                                uint8_t* dst);

// True when every weight splits into int16 hi/lo parts (|w| < 2^26).
bool PackWeightsFit(const ResampleWeights& w);

inline int16_t WeightHi(int32_t w) { return static_cast<int16_t>(w >> kSplitBits); }
inline int16_t WeightLo(int32_t w) { return static_cast<int16_t>(w & ((1 << kSplitBits) - 1)); }

// The int32 broadcast of an int16 weight pair: low half for row a, high half for row b.
inline int32_t PairWord(int16_t a, int16_t b) {
  return static_cast<int32_t>(static_cast<uint16_t>(a) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(b)) << 16));
}

// The vertical pass's taps k[0..count) as (count + 1) / 2 pairs of rows: hi[p] / lo[p]
// hold the hi / lo parts of taps 2p and 2p + 1 (0 past the end). Returns the pair count.
inline int SplitTapPairs(const int32_t* k, int count, int32_t* hi, int32_t* lo) {
  const int pairs = (count + 1) / 2;
  for (int p = 0; p < pairs; ++p) {
    const int32_t kb = 2 * p + 1 < count ? k[2 * p + 1] : 0;
    hi[p] = PairWord(WeightHi(k[2 * p]), WeightHi(kb));
    lo[p] = PairWord(WeightLo(k[2 * p]), WeightLo(kb));
  }
  return pairs;
}

// Horizontal weights for the wide passes: `group` output pixels are computed together,
// one per 128-bit lane, 4 taps per step. Per (group g, step s) there are 4 vectors of
// group * 8 int16: taps {4s, 4s+1} hi, the same lo, taps {4s+2, 4s+3} hi, lo. Within a
// lane the 8 int16 are [w_a, w_b, w_a, w_b, w_a, w_b, 0, 0], matching pixel words
// [r_a, r_b, g_a, g_b, b_a, b_b, 0, 0] so vpmaddwd yields the R, G, B partial sums.
// Taps past a pixel's count have weight 0.
struct PackedHorizontal {
  int group = 0;
  int steps = 0;             // 4-tap steps per output pixel (max count over all, / 4 up)
  int groups = 0;            // ceil(out_w / group)
  std::vector<int> first;    // [groups * group], padding lanes repeat the last pixel
  std::vector<int16_t> weights;  // [groups][steps][4][group][8]
};
void PackHorizontalWeights(const ResampleWeights& w, int group, PackedHorizontal* out);

// Bytes a wide horizontal pass may read past the start of a row's last tap window: the
// pass copies a row into a padded buffer when fewer than this follow it in `src`.
inline size_t HorizontalOverRead(const PackedHorizontal& p) {
  return static_cast<size_t>(p.steps) * 12 + 64;
}

void HorizontalPassSse41(const uint8_t* src, int in_w, int row_begin, int row_end,
                         const ResampleWeights& w, uint8_t* dst);
void VerticalPassSse41(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                       uint8_t* dst);
void HorizontalPassAvx2(const uint8_t* src, int in_w, int row_begin, int row_end,
                        const ResampleWeights& w, uint8_t* dst);
void VerticalPassAvx2(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                      uint8_t* dst);
void HorizontalPassAvx512(const uint8_t* src, int in_w, int row_begin, int row_end,
                          const ResampleWeights& w, uint8_t* dst);
void VerticalPassAvx512(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                        uint8_t* dst);

// Vertical-pass columns [x_begin, row_bytes) with the baseline code (tails of wide passes).
void VerticalColumnsSse41(const uint8_t* src, size_t row_bytes, size_t x_begin,
                          const ResampleWeights& w, uint8_t* dst);

}  // namespace vlserve::media::internal

namespace vlserve::media::internal {

// Per channel: v = float(x * (1.0 / 255.0)) (double multiply), then (v - mean) / std in
// float. Where (v - mean) * (1 / std) rounds identically for all 256 x (checked
// exhaustively by MakeNormalizeConstants; true for std = 0.5), divisor holds 1 / std and
// reciprocal is set, replacing the slow division by a multiply with the same result.
struct NormalizeConstants {
  float mean[3];
  float divisor[3];
  bool reciprocal[3];
};
NormalizeConstants MakeNormalizeConstants(const float mean[3], const float std[3]);

// One row of NormalizeTile: `width` RGB pixels -> three float planes (r, g, b), bit-identical
// to the scalar table (each shortcut is verified for all 256 inputs; see the .cc files).
void NormalizeRowAvx512(const uint8_t* pixels, int width, const NormalizeConstants& k,
                        float* r, float* g, float* b);
// The same with AVX2 + FMA; false (nothing written) if its fast x / 255 failed the
// start-up check, in which case the caller uses the table.
bool NormalizeRowAvx2(const uint8_t* pixels, int width, const NormalizeConstants& k,
                      float* r, float* g, float* b);

}  // namespace vlserve::media::internal
