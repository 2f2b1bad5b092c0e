// Q4_0 matrices repacked once at load (PrepackWeights) for the AVX-512 VNNI kernel that
// serves every token count, decode included.
//
// Why: in the file's layout a 4-block step of one row is 72 unaligned bytes; getting its
// levels and scales into lanes costs two two-source permutes per row and step, and each
// 64 products end in their own int->float conversion and FMA. That kernel ran at ~24 GB/s
// per core with the weights in L2: compute-bound, below what two cores can stream.
//
// Layout. Rows go in groups of 4 (rows % 4 == 0). A row's nb blocks are cut into block
// groups of G = 8 blocks, then at most one each of G = 4, 2, 1 (ForGroups). For each
// 4-row group and block group (72·G bytes, the file's bytes reordered, nothing added):
//   scales   4·G f16: row i, block b at i·G + b
//   levels   4 rows × 16·G bytes: word F (F = 0 .. 4G-1) of row i = qs word F / G of
//            block F % G (a qs word is 4 bytes: low nibbles = values 4w..4w+3, high
//            nibbles = values 16+4w..16+4w+3)
// so int32 lane L of a vpdpbusd over level words always belongs to block L % G, and one
// int32 accumulator takes all 4·G·8 products of a row and group (G = 8: four vpdpbusd)
// before a single conversion and FMA. Activations (ActKind::kQ8G) are the kQ8 layout
// with each block group's int8 values reordered to match: 4·G "low" words (word F = act
// word F / G of block F % G) then 4·G "high" words (act word 4 + F / G).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/pack_avx512-inl.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {

void QuantizeActRowQ8Avx512(const float* x, int64_t cols, int64_t ld, uint8_t* dst);

namespace {

constexpr int64_t kQ4Bytes = 18;  // f16 d, 16 qs bytes
constexpr int kGroupRows = 4;

// Calls fn(b0, g) for the block groups of a row of nb blocks, in order.
template <class F>
void ForGroups(int64_t nb, F&& fn) {
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) fn(b, 8);
  for (int g = 4; g >= 1; g /= 2) {
    if (nb - b >= g) {
      fn(b, g);
      b += g;
    }
  }
}

struct Q4Tile {
  const uint8_t* w;  // prepacked
  int64_t row_bytes, nb;
  const uint8_t* act;  // kQ8G rows
  int64_t act_stride, ld;
  float* y;
  int64_t rows;

  // Block group [b0, b0 + G) of rows r..r+3 (group bytes at wg) for tokens t..t+T-1.
  template <int G, int T>
  void Group(const uint8_t* wg, int64_t b0, int64_t t, __m512 (&acc)[kGroupRows][T]) const {
    constexpr __mmask16 kBlocks = (1u << G) - 1;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    // Per token: the scales of lanes (lane L = block L % G) and the accumulator start
    // -8·Σa of each block in one of its lanes (the levels are stored unsigned, 0..15).
    __m512 da[T];
    __m512i init[T];
    const uint8_t* aq[T];
    avx512::Act256 av[T];
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      const uint8_t* row = act + (t + j) * act_stride;
      const float* d = reinterpret_cast<const float*>(row + ld) + b0;
      const int32_t* s = reinterpret_cast<const int32_t*>(row + ld + ld / kQK * 4) + b0;
      if constexpr (G == 8) {
        da[j] = _mm512_broadcast_f32x8(_mm256_loadu_ps(d));
      } else {
        const __m512i mod = _mm512_and_si512(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(G - 1));
        da[j] = _mm512_permutexvar_ps(mod, _mm512_maskz_loadu_ps(kBlocks, d));
      }
      init[j] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                 _mm512_slli_epi32(_mm512_maskz_loadu_epi32(kBlocks, s), 3));
      aq[j] = row + b0 * kQK;
      if constexpr (T <= 2) av[j] = avx512::LoadAct256(aq[j]);
    }
    __m512 dw[kGroupRows];
    if constexpr (G == 8) {
      const __m512i h = _mm512_loadu_si512(wg);
      const __m512 s01 = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
      const __m512 s23 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
      dw[0] = _mm512_shuffle_f32x4(s01, s01, 0x44);
      dw[1] = _mm512_shuffle_f32x4(s01, s01, 0xee);
      dw[2] = _mm512_shuffle_f32x4(s23, s23, 0x44);
      dw[3] = _mm512_shuffle_f32x4(s23, s23, 0xee);
    } else {
      const __m512 s = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((1u << (4 * G)) - 1, wg));
      const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
      const __m512i mod = _mm512_and_si512(lane, _mm512_set1_epi32(G - 1));
#pragma GCC unroll 4
      for (int i = 0; i < kGroupRows; ++i) {
        dw[i] = _mm512_permutexvar_ps(_mm512_add_epi32(mod, _mm512_set1_epi32(i * G)), s);
      }
    }
    const uint8_t* levels = wg + 8 * G;
#pragma GCC unroll 4
    for (int i = 0; i < kGroupRows; ++i) {
      const uint8_t* p = levels + i * 16 * G;
      if constexpr (G == 8) {
        const avx512::Nibbles128 q = avx512::SplitNibbles128(p);
#pragma GCC unroll 4
        for (int j = 0; j < T; ++j) {
          const __m512i dot = T <= 2 ? avx512::DotNibbles128(q, av[j], init[j])
                                    : avx512::DotNibbles128(q, aq[j], init[j]);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], da[j]),
                                      acc[i][j]);
        }
      } else {
        constexpr __mmask64 kBytes = ~uint64_t{0} >> (64 - 16 * G);
        const __m512i w0 = G == 4 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(kBytes, p);
        const __m512i lo = _mm512_and_si512(w0, m4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w0, 4), m4);
#pragma GCC unroll 4
        for (int j = 0; j < T; ++j) {
          __m512i dot = _mm512_dpbusd_epi32(init[j], lo, _mm512_maskz_loadu_epi8(kBytes, aq[j]));
          dot = _mm512_dpbusd_epi32(dot, hi, _mm512_maskz_loadu_epi8(kBytes, aq[j] + 16 * G));
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], da[j]),
                                      acc[i][j]);
        }
      }
    }
  }

  // Rows r..r+3 for tokens t..t+T-1. Each token's arithmetic is the same whatever T is,
  // so a token's result does not depend on its place in the batch (or on n).
  template <int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[kGroupRows][T];
#pragma GCC unroll 4
    for (int i = 0; i < kGroupRows; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    const uint8_t* wg = w + r * row_bytes;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, wg += 72 * 8) Group<8, T>(wg, b, t, acc);
    if (nb - b >= 4) Group<4, T>(wg, b, t, acc), b += 4, wg += 72 * 4;
    if (nb - b >= 2) Group<2, T>(wg, b, t, acc), b += 2, wg += 72 * 2;
    if (nb - b >= 1) Group<1, T>(wg, b, t, acc);
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      const __m512 a[4] = {acc[0][j], acc[1][j], acc[2][j], acc[3][j]};
      _mm_storeu_ps(y + (t + j) * rows + r, avx512::Sum4(a));
    }
  }
};

void Q4PackedKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const int64_t nb = w.cols / kQK;
  const Q4Tile tile{static_cast<const uint8_t*>(w.prepacked), nb * kQ4Bytes, nb,
                    static_cast<const uint8_t*>(a.act.data), a.act.stride, a.act.ld, a.y,
                    w.rows};
  avx512::RunRowGroupsInTokenTiles(tile, r0, r1, a.n);
}

}  // namespace

void PrepackQ4_0Avx512(const WeightView& w, uint8_t* dst) {
  const int64_t nb = w.cols / kQK, row_bytes = nb * kQ4Bytes;
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.rows; r += kGroupRows) {
    uint8_t* out = dst + r * row_bytes;
    ForGroups(nb, [&](int64_t b0, int g) {
      for (int i = 0; i < kGroupRows; ++i) {
        const uint8_t* row = src + (r + i) * row_bytes + b0 * kQ4Bytes;
        for (int b = 0; b < g; ++b) std::memcpy(out + 2 * (i * g + b), row + b * kQ4Bytes, 2);
        uint8_t* levels = out + 8 * g + i * 16 * g;
        for (int f = 0; f < 4 * g; ++f) {
          std::memcpy(levels + 4 * f, row + (f % g) * kQ4Bytes + 2 + 4 * (f / g), 4);
        }
      }
      out += 72 * g;
    });
  }
}

void QuantizeActRowQ8GAvx512(const float* x, int64_t cols, int64_t ld, uint8_t* dst) {
  QuantizeActRowQ8Avx512(x, cols, ld, dst);
  ForGroups(cols / kQK, [&](int64_t b0, int g) {
    uint8_t tmp[8 * kQK];
    uint8_t* qs = dst + b0 * kQK;
    std::memcpy(tmp, qs, g * kQK);
    for (int f = 0; f < 4 * g; ++f) {
      const uint8_t* word = tmp + (f % g) * kQK + 4 * (f / g);
      std::memcpy(qs + 4 * f, word, 4);
      std::memcpy(qs + 16 * g + 4 * f, word + 16, 4);
    }
  });
}

void PackPrepackedQ4_0Row(const uint8_t* packed, int64_t nb, int64_t row, int lane,
                          uint8_t* q, float* d) {
  const uint8_t* rows4 = packed + (row / kGroupRows) * kGroupRows * nb * kQ4Bytes;
  const int i = static_cast<int>(row % kGroupRows);
  ForGroups(nb, [&](int64_t b0, int g) {
    const uint8_t* group = rows4 + b0 * 72;
    const uint8_t* levels = group + 8 * g + i * 16 * g;
    for (int k = 0; k < g; ++k) {
      uint16_t h;
      std::memcpy(&h, group + 2 * (i * g + k), 2);
      d[(b0 + k) * 16 + lane] = F16ToF32(h);
      uint8_t* out = q + (b0 + k) * 8 * 64 + lane * 4;
      for (int word = 0; word < 4; ++word) {  // values 4w..4w+3 and 16+4w..16+4w+3
        uint32_t v;
        std::memcpy(&v, levels + 4 * (word * g + k), 4);
        const uint32_t lo = v & 0x0f0f0f0fu, hi = (v >> 4) & 0x0f0f0f0fu;
        std::memcpy(out + word * 64, &lo, 4);
        std::memcpy(out + (word + 4) * 64, &hi, 4);
      }
    }
  });
}

RowsKernel Avx512Q4PackedKernel() { return Q4PackedKernel; }

}  // namespace vlserve::kernels::internal
