// AVX-512 helpers shared by the packing code of the float GEMM (gemm_avx512.cc) and the
// bf16 attention (attention_bidir_avx512.cc): lane masks, exact bf16 rounding, bf16 pairs
// a 16×16 transpose of 32-bit elements, a dynamic work loop, and 4 horizontal sums at
// once (the prepacked Q4_0 / Q4_K kernels). Include only from
// *_avx512.cc files.
#pragma once

#include <immintrin.h>

#include <atomic>
#include <cstdint>

#include "base/thread_pool.h"

namespace vlserve::kernels::internal::avx512 {

// The first `count` lanes (count may be <= 0 or past the width).
inline __mmask16 Mask16(int64_t count) {
  if (count <= 0) return 0;
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
}
inline __mmask32 Mask32(int64_t count) {
  if (count <= 0) return 0;
  return count >= 32 ? ~0u : static_cast<__mmask32>((1u << count) - 1);
}

// bf16 round-to-nearest-even with quiet NaN, bit-identical to F32ToBf16 (quant_blocks.h).
inline __m512i ToBf16Bits(__m512 x) {
  const __m512i b = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  const __m512i nan = _mm512_or_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(64));
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_blend_epi32(is_nan, rounded, nan);
}

// 32 floats (the first `valid` of xr, rest zero) → 16 u32 bf16 pairs (even k low half).
inline __m512i PairsFromFloats(const float* xr, int64_t valid) {
  const __m512i lo = ToBf16Bits(_mm512_maskz_loadu_ps(Mask16(valid), xr));
  const __m512i hi = ToBf16Bits(_mm512_maskz_loadu_ps(Mask16(valid - 16), xr + 16));
  const __m256i l16 = _mm512_cvtepi32_epi16(lo), h16 = _mm512_cvtepi32_epi16(hi);
  return _mm512_inserti64x4(_mm512_castsi256_si512(l16), h16, 1);
}

// In-register transpose of a 16×16 block of 32-bit elements: r[i] lane j → r[j] lane i.
inline void Transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // interleave 32-bit pairs of rows i, i+1
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // then 64-bit pairs of rows i..i+3
    for (int j = 0; j < 2; ++j) {
      r[i + j] = _mm512_unpacklo_epi64(t[i + j], t[i + 2 + j]);
      r[i + 2 + j] = _mm512_unpackhi_epi64(t[i + j], t[i + 2 + j]);
    }
  }
  // Now row i holds, per 128-bit lane L, elements (rows 4⌊i/4⌋..+3) × column 4L + c(i),
  // with c(i) = [0, 2, 1, 3][i % 4]. Gather 128-bit lanes across row groups.
  const __m512i idx_lo = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i idx_hi = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int i = 0; i < 4; ++i) {
    // Rows i (group 0) and i + 4 (group 1); i + 8 (group 2) and i + 12 (group 3).
    t[i] = _mm512_permutex2var_epi64(r[i], idx_lo, r[i + 4]);
    t[i + 4] = _mm512_permutex2var_epi64(r[i], idx_hi, r[i + 4]);
    t[i + 8] = _mm512_permutex2var_epi64(r[i + 8], idx_lo, r[i + 12]);
    t[i + 12] = _mm512_permutex2var_epi64(r[i + 8], idx_hi, r[i + 12]);
  }
  constexpr int kCol[4] = {0, 2, 1, 3};
  for (int i = 0; i < 4; ++i) {
    for (int h = 0; h < 2; ++h) {
      // t[i + 4h] holds groups 0,1 for columns (4·2h + c, 4·(2h+1) + c) in its two halves
      // of 256 bits; combine with groups 2,3 from t[i + 8 + 4h].
      const __m512i a = t[i + 4 * h], b = t[i + 8 + 4 * h];
      r[8 * h + kCol[i]] = _mm512_shuffle_i64x2(a, b, 0x44);
      r[8 * h + 4 + kCol[i]] = _mm512_shuffle_i64x2(a, b, 0xEE);
    }
  }
}

// Runs fn(item) for items [0, count) claimed dynamically by the pool's threads; inline
// when pool is null.
template <class Fn>
void ForItems(ThreadPool* pool, int64_t count, const Fn& fn) {
  std::atomic<int64_t> next{0};
  auto work = [&](int, int) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < count;
         i = next.fetch_add(1, std::memory_order_relaxed)) {
      fn(i);
    }
  };
  if (pool == nullptr || count == 1 || pool->num_threads() == 1) {
    work(0, 1);
  } else {
    pool->Run(work);
  }
}

// The horizontal sums of a[0..3], in that order (13 shuffles and adds where four
// _mm512_reduce_add_ps take 32: at 576 columns a Q4_0 row's products are only ~40 ops).
inline __m128 Sum4(const __m512 (&a)[4]) {
  const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1]));
  const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3]));
  const __m512d p0 = _mm512_castps_pd(t0), p1 = _mm512_castps_pd(t1);
  const __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p0, p1)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p1)));
  const __m256 v = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
  return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

// 128 bytes of 4-bit levels (two 64-byte halves) as four vpdpbusd operands: the low and
// the high nibbles of each half.
struct Nibbles128 {
  __m512i lo0, lo1, hi0, hi1;
};
inline Nibbles128 SplitNibbles128(const uint8_t* p) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512i w0 = _mm512_loadu_si512(p), w1 = _mm512_loadu_si512(p + 64);
  // One load each: GCC otherwise folds the load into both the and and the shift, and
  // these kernels are load-port bound (measured: Q4_K matvec 36 -> see docs/kernels.md).
  asm("" : "+v"(w0), "+v"(w1));
  return {_mm512_and_si512(w0, m4), _mm512_and_si512(w1, m4),
          _mm512_and_si512(_mm512_srli_epi16(w0, 4), m4),
          _mm512_and_si512(_mm512_srli_epi16(w1, 4), m4)};
}
// init + the 4-byte products of q with the 256 int8 values at a, stored in operand order
// [lo0, lo1, hi0, hi1] (64 bytes each).
inline __m512i DotNibbles128(const Nibbles128& q, const uint8_t* a, __m512i init) {
  __m512i dot = _mm512_dpbusd_epi32(init, q.lo0, _mm512_loadu_si512(a));
  dot = _mm512_dpbusd_epi32(dot, q.lo1, _mm512_loadu_si512(a + 64));
  dot = _mm512_dpbusd_epi32(dot, q.hi0, _mm512_loadu_si512(a + 128));
  return _mm512_dpbusd_epi32(dot, q.hi1, _mm512_loadu_si512(a + 192));
}

// The 256 activation bytes of DotNibbles128 held in registers (for 1-2 tokens, where
// the registers are free: reloading them for every row costs load slots).
struct Act256 {
  __m512i v[4];
};
inline Act256 LoadAct256(const uint8_t* a) {
  Act256 r{{_mm512_loadu_si512(a), _mm512_loadu_si512(a + 64), _mm512_loadu_si512(a + 128),
            _mm512_loadu_si512(a + 192)}};
  asm("" : "+v"(r.v[0]), "+v"(r.v[1]), "+v"(r.v[2]), "+v"(r.v[3]));
  return r;
}
inline __m512i DotNibbles128(const Nibbles128& q, const Act256& a, __m512i init) {
  __m512i dot = _mm512_dpbusd_epi32(init, q.lo0, a.v[0]);
  dot = _mm512_dpbusd_epi32(dot, q.lo1, a.v[1]);
  dot = _mm512_dpbusd_epi32(dot, q.hi0, a.v[2]);
  return _mm512_dpbusd_epi32(dot, q.hi1, a.v[3]);
}

// Calls tile.template Run<T>(r, t) over 4-row groups r in [r0, r1) and tokens [0, n) in
// tiles of T = 4, the last one of 1..3 (the prepacked Q4_0 / Q4_K kernels).
template <class Tile>
void RunRowGroupsInTokenTiles(const Tile& tile, int64_t r0, int64_t r1, int64_t n) {
  for (int64_t r = r0; r < r1; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) tile.template Run<4>(r, t);
    switch (n - t) {
      case 3: tile.template Run<3>(r, t); break;
      case 2: tile.template Run<2>(r, t); break;
      case 1: tile.template Run<1>(r, t); break;
      default: break;
    }
  }
}

}  // namespace vlserve::kernels::internal::avx512
