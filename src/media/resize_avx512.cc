// AVX-512 resize passes (built with AVX-512 F/BW/VL/VNNI/VBMI; run only when
// kernels::ActiveIsa() is kAvx512, which requires all of them). Both are Pillow-exact:
//  - vertical: 64 bytes per vector, rows paired into int16 words, vpdpwssd with the int16
//    hi/lo weight split (proof in resize_internal.h);
//  - horizontal: 4 output pixels per vector (one per 128-bit lane), 4 taps per step,
//    vpdpbusd with weights split into signed byte digits (proof at ByteWeights below);
//    one 64-byte load + vpermb gathers all 4 lanes' taps, two rows share index and
//    weight loads.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "media/resize_internal.h"

namespace vlserve::media::internal {
namespace {

inline __m512i Round(__m512i h, __m512i l) {
  return _mm512_srai_epi32(_mm512_add_epi32(_mm512_slli_epi32(h, kSplitBits), l),
                           kPrecisionBits);
}

// Bytes [x, x + n) of a row, n <= 64 (masked: nothing past n is touched).
inline __m512i LoadBytes(const uint8_t* p, __mmask64 mask) {
  return _mm512_maskz_loadu_epi8(mask, p);
}

}  // namespace

void VerticalPassAvx512(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                        uint8_t* dst) {
  if (!PackWeightsFit(w)) return VerticalPassSse41(src, row_bytes, w, dst);
  const int out_h = static_cast<int>(w.first.size());
  std::vector<int32_t> hi((w.taps + 1) / 2), lo((w.taps + 1) / 2);
  const __m512i zero = _mm512_setzero_si512();
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* base = src + static_cast<size_t>(w.first[y]) * row_bytes;
    const int32_t* k = &w.weights[static_cast<size_t>(y) * w.taps];
    const int count = w.count[y];
    const int pairs = SplitTapPairs(k, count, hi.data(), lo.data());
    uint8_t* out = dst + static_cast<size_t>(y) * row_bytes;
    for (size_t x = 0; x < row_bytes; x += 64) {
      const size_t n = std::min<size_t>(64, row_bytes - x);
      const __mmask64 mask = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      __m512i h0 = zero, h1 = zero, h2 = zero, h3 = zero;
      __m512i l0 = _mm512_set1_epi32(kHalf), l1 = l0, l2 = l0, l3 = l0;
      for (int p = 0; p < pairs; ++p) {
        const uint8_t* ra = base + static_cast<size_t>(2 * p) * row_bytes + x;
        // An odd count pairs the last row with itself under weight 0.
        const uint8_t* rb = 2 * p + 1 < count ? ra + row_bytes : ra;
        const __m512i a = LoadBytes(ra, mask), b = LoadBytes(rb, mask);
        const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
        // int16 words [a_i, b_i] per int32 lane: bytes 0-3, 4-7, 8-11, 12-15 of each lane.
        const __m512i p0 = _mm512_unpacklo_epi8(ab_lo, zero);
        const __m512i p1 = _mm512_unpackhi_epi8(ab_lo, zero);
        const __m512i p2 = _mm512_unpacklo_epi8(ab_hi, zero);
        const __m512i p3 = _mm512_unpackhi_epi8(ab_hi, zero);
        const __m512i wh = _mm512_set1_epi32(hi[p]), wl = _mm512_set1_epi32(lo[p]);
        h0 = _mm512_dpwssd_epi32(h0, p0, wh);
        h1 = _mm512_dpwssd_epi32(h1, p1, wh);
        h2 = _mm512_dpwssd_epi32(h2, p2, wh);
        h3 = _mm512_dpwssd_epi32(h3, p3, wh);
        l0 = _mm512_dpwssd_epi32(l0, p0, wl);
        l1 = _mm512_dpwssd_epi32(l1, p1, wl);
        l2 = _mm512_dpwssd_epi32(l2, p2, wl);
        l3 = _mm512_dpwssd_epi32(l3, p3, wl);
      }
      const __m512i r = _mm512_packus_epi16(_mm512_packs_epi32(Round(h0, l0), Round(h1, l1)),
                                            _mm512_packs_epi32(Round(h2, l2), Round(h3, l3)));
      _mm512_mask_storeu_epi8(out + x, mask, r);
    }
  }
}

namespace {

// Horizontal pass with vpdpbusd (4 uint8 x int8 products summed into int32, no
// saturation). Each weight is split into signed byte digits w = d2 * 2^16 + d1 * 2^8 + d0
// with d0, d1 in [-128, 127] (balanced base 256) and d2 = the rest, which is in
// [-128, 127] whenever |w| < 2^23 - 2^15 (checked; Pillow's weights are < 1.5 * 2^22).
// Three accumulators A_k = sum p * d_k (A_0 starting at 2^21) give
// (A_2 << 16) + (A_1 << 8) + A_0 = 2^21 + sum p * w = Pillow's S modulo 2^32, and S fits
// int32 (as in Pillow), so the result is exact; see resize_internal.h for the rest.
//
// Layout: 4 output pixels per group, one per 128-bit lane, 4 taps per step. Lane bytes
// are [r_t0..r_t3, g_t0..g_t3, b_t0..b_t3, 0 x 4] for the pixels and, per digit, the
// matching [w_t0..w_t3] x 3 channels, 0 x 4 (taps past a pixel's count are 0).
struct ByteWeights {
  int steps = 0;
  int groups = 0;
  std::vector<int> first;      // [groups * 4]; padding lanes repeat the last pixel
  std::vector<int8_t> digits;  // [groups][steps][3][64]
};

bool SplitDigits(int32_t w, int8_t d[3]) {
  d[0] = static_cast<int8_t>(w & 0xFF);
  const int32_t r = (w - d[0]) / 256;
  d[1] = static_cast<int8_t>(r & 0xFF);
  const int32_t d2 = (r - d[1]) / 256;
  d[2] = static_cast<int8_t>(d2);
  return d2 >= -128 && d2 <= 127;
}

bool PackByteWeights(const ResampleWeights& w, ByteWeights* out) {
  const int out_w = static_cast<int>(w.first.size());
  int max_count = 0;
  for (int c : w.count) max_count = std::max(max_count, c);
  out->steps = (max_count + 3) / 4;
  out->groups = (out_w + 3) / 4;
  out->first.resize(static_cast<size_t>(out->groups) * 4);
  out->digits.assign(static_cast<size_t>(out->groups) * out->steps * 3 * 64, 0);
  for (int x = 0; x < out->groups * 4; ++x) {
    out->first[x] = w.first[std::min(x, out_w - 1)];
    if (x >= out_w) continue;  // padding lane: digits stay 0
    const int g = x / 4, lane = x % 4;
    const int32_t* k = &w.weights[static_cast<size_t>(x) * w.taps];
    for (int t = 0; t < w.count[x]; ++t) {
      int8_t d[3];
      if (!SplitDigits(k[t], d)) return false;
      for (int digit = 0; digit < 3; ++digit) {
        int8_t* lane_bytes = &out->digits[((static_cast<size_t>(g) * out->steps + t / 4) * 3 +
                                           digit) * 64 + 16 * lane];
        for (int c = 0; c < 3; ++c) lane_bytes[4 * c + t % 4] = d[digit];
      }
    }
  }
  return true;
}

// Bytes a row load may reach past the row's end: windows start at 3 * first + 12 * step.
size_t OverRead(const ByteWeights& bw) { return static_cast<size_t>(bw.steps) * 12 + 64; }

constexpr __mmask64 kLaneLow12 = 0x0FFF0FFF0FFF0FFF;  // bytes 0-11 of each lane

// (A2 << 16) + (A1 << 8) + A0, >> 22, stored as `valid` RGB pixels (lane j -> 3j..3j+2).
inline void StoreGroup(__m512i a0, __m512i a1, __m512i a2, int valid, uint8_t* out) {
  __m512i acc = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(a2, 16),
                                                  _mm512_slli_epi32(a1, 8)), a0);
  acc = _mm512_srai_epi32(acc, kPrecisionBits);
  acc = _mm512_packus_epi16(_mm512_packs_epi32(acc, acc), acc);  // lane: [r g b 0 ...]
  // Bytes 0-2 of each lane (one pixel each) -> 12 contiguous bytes.
  const __m512i compact = _mm512_setr_epi32(0x10020100, 0x21201211, 0x32313022, 0, 0, 0, 0, 0,
                                            0, 0, 0, 0, 0, 0, 0, 0);
  const __m128i px = _mm512_castsi512_si128(_mm512_permutexvar_epi8(compact, acc));
  _mm_mask_storeu_epi8(out, static_cast<__mmask16>((1u << (3 * valid)) - 1), px);
}

// vpermb indices per group when its 4 tap windows lie within 64 bytes of the first one:
// lane j gathers [r, g, b] x taps 0-3 at byte offset 3 * (first[j] - first[0]). Empty when
// some group's windows are further apart (downscales beyond ~5x): the gather path runs.
std::vector<uint8_t> GroupPermutes(const ByteWeights& bw) {
  std::vector<uint8_t> idx(static_cast<size_t>(bw.groups) * 64, 0);
  const int pattern[12] = {0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11};
  for (int g = 0; g < bw.groups; ++g) {
    const int* f = &bw.first[4 * g];
    for (int j = 0; j < 4; ++j) {
      const int b = 3 * (f[j] - f[0]);
      if (b < 0 || b + 11 >= 64) return {};
      uint8_t* lane = &idx[static_cast<size_t>(g) * 64 + 16 * j];
      for (int i = 0; i < 12; ++i) lane[i] = static_cast<uint8_t>(b + pattern[i]);
    }
  }
  return idx;
}

// Two rows through the vpermb path (row1 may equal row0): one 64-byte load per 4-tap step
// and row feeds all 4 lanes; indices and digits are loaded once for both rows.
void HorizontalRowsPermute(const uint8_t* row0, const uint8_t* row1, const ByteWeights& bw,
                           const uint8_t* idx, int out_w, uint8_t* out0, uint8_t* out1) {
  const int8_t* wt = bw.digits.data();
  for (int g = 0; g < bw.groups; ++g) {
    const size_t first = static_cast<size_t>(bw.first[4 * g]) * 3;
    const uint8_t* p0 = row0 + first;
    const uint8_t* p1 = row1 + first;
    const __m512i ix = _mm512_loadu_si512(idx + 64 * static_cast<size_t>(g));
    __m512i a0 = _mm512_set1_epi32(kHalf), a1 = _mm512_setzero_si512(), a2 = a1;
    __m512i b0 = a0, b1 = a1, b2 = a1;
    for (int s = 0; s < bw.steps; ++s, wt += 192, p0 += 12, p1 += 12) {
      const __m512i d0 = _mm512_loadu_si512(wt), d1 = _mm512_loadu_si512(wt + 64);
      const __m512i d2 = _mm512_loadu_si512(wt + 128);
      const __m512i u = _mm512_maskz_permutexvar_epi8(kLaneLow12, ix, _mm512_loadu_si512(p0));
      const __m512i v = _mm512_maskz_permutexvar_epi8(kLaneLow12, ix, _mm512_loadu_si512(p1));
      a0 = _mm512_dpbusd_epi32(a0, u, d0);
      a1 = _mm512_dpbusd_epi32(a1, u, d1);
      a2 = _mm512_dpbusd_epi32(a2, u, d2);
      b0 = _mm512_dpbusd_epi32(b0, v, d0);
      b1 = _mm512_dpbusd_epi32(b1, v, d1);
      b2 = _mm512_dpbusd_epi32(b2, v, d2);
    }
    const int valid = std::min(4, out_w - 4 * g);
    StoreGroup(a0, a1, a2, valid, out0 + 12 * g);
    StoreGroup(b0, b1, b2, valid, out1 + 12 * g);
  }
}

// One row through the general path: each lane loads its own 16-byte window per step.
void HorizontalRowGather(const uint8_t* row, const ByteWeights& bw, int out_w, uint8_t* out) {
  const __m512i shuf = _mm512_broadcast_i32x4(
      _mm_setr_epi8(0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1));
  const int8_t* wt = bw.digits.data();
  for (int g = 0; g < bw.groups; ++g) {
    const int* f = &bw.first[4 * g];
    const uint8_t* p0 = row + f[0] * 3;
    const uint8_t* p1 = row + f[1] * 3;
    const uint8_t* p2 = row + f[2] * 3;
    const uint8_t* p3 = row + f[3] * 3;
    __m512i a0 = _mm512_set1_epi32(kHalf), a1 = _mm512_setzero_si512(), a2 = a1;
    for (int s = 0; s < bw.steps; ++s, wt += 192) {
      const size_t o = static_cast<size_t>(s) * 12;
      __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0 + o)));
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1 + o)), 1);
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p2 + o)), 2);
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p3 + o)), 3);
      const __m512i u = _mm512_shuffle_epi8(v, shuf);
      a0 = _mm512_dpbusd_epi32(a0, u, _mm512_loadu_si512(wt));
      a1 = _mm512_dpbusd_epi32(a1, u, _mm512_loadu_si512(wt + 64));
      a2 = _mm512_dpbusd_epi32(a2, u, _mm512_loadu_si512(wt + 128));
    }
    StoreGroup(a0, a1, a2, std::min(4, out_w - 4 * g), out + 12 * g);
  }
}

}  // namespace

void HorizontalPassAvx512(const uint8_t* src, int in_w, int row_begin, int row_end,
                          const ResampleWeights& w, uint8_t* dst) {
  ByteWeights bw;
  if (!PackByteWeights(w, &bw)) {
    return HorizontalPassSse41(src, in_w, row_begin, row_end, w, dst);
  }
  const std::vector<uint8_t> idx = GroupPermutes(bw);
  const int out_w = static_cast<int>(w.first.size());
  const size_t in_stride = static_cast<size_t>(in_w) * 3;
  const size_t over_read = OverRead(bw);
  // Rows near row_end are read from a zero-padded copy so no load passes row_end.
  auto row_ptr = [&](int y, std::vector<uint8_t>* pad) {
    const uint8_t* row = src + y * in_stride;
    if (static_cast<size_t>(row_end - 1 - y) * in_stride >= over_read) return row;
    pad->assign(in_stride + over_read, 0);
    std::memcpy(pad->data(), row, in_stride);
    return static_cast<const uint8_t*>(pad->data());
  };
  std::vector<uint8_t> padded0, padded1;
  const size_t out_stride = static_cast<size_t>(out_w) * 3;
  for (int y = row_begin; y < row_end;) {
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * out_stride;
    if (idx.empty()) {
      HorizontalRowGather(row_ptr(y, &padded0), bw, out_w, out);
      ++y;
      continue;
    }
    const bool pair = y + 1 < row_end;
    const uint8_t* r0 = row_ptr(y, &padded0);
    const uint8_t* r1 = pair ? row_ptr(y + 1, &padded1) : r0;
    uint8_t* out1 = pair ? out + out_stride : out;  // a lone last row is computed twice
    HorizontalRowsPermute(r0, r1, bw, idx.data(), out_w, out, out1);
    y += pair ? 2 : 1;
  }
}

}  // namespace vlserve::media::internal
