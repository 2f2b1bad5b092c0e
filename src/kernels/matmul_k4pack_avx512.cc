// Q4_K matrices reordered once at load (PrepackWeights) for an AVX-512 VNNI kernel that
// serves every token count.
//
// Why: in the file's layout the two nibbles of a level byte belong to sub-blocks 2j and
// 2j+1, so a super-block's 4 vpdpbusd cover 8 sub-blocks in a fixed lane pattern, and
// applying the 8 sub-block scales costs int16 packs, pshufb'd scale vectors and vpdpwssd
// per row; the scales, d / dmin and the mins term are unpacked per row in xmm. That
// kernel ran at ~26-29 GB/s per core with the weights in L2: compute-bound.
//
// Layout (same bytes as the file, rows % 4 == 0): rows in groups of 4; per group and
// super-block, 576 bytes:
//   0..63     the 4 rows' 16-byte block heads (f16 d, f16 dmin, 12 scale bytes), row i
//             at 16·i: one load gives all four, unpacked together in zmm
//   64..575   row i's 128 level bytes at 64 + 128·i: byte (z, lane L, m) = 64·z + 4·L + m
//             holds value 8z + 4(L/8) + m of sub-block L % 8 in its low nibble and that
//             value + 16 in its high nibble
// so int32 lane L of all four vpdpbusd (low / high nibbles of the two 64-byte halves)
// belongs to sub-block L % 8: one int32 accumulator per row and super-block, one convert,
// and one FMA against a float vector of d·sc[L % 8]. The activations (ActKind::kQ8KG)
// are ActQ8K with each super-block's values reordered to match: the low-nibble operand
// of half z holds act value 32s + 8z + 4h + m at byte 4L + m (s = L % 8, h = L / 8), the
// high-nibble operand the same + 16; stored [low z=0, low z=1, high z=0, high z=1].
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kquant_avx512-inl.h"
#include "kernels/matmul_internal.h"
#include "kernels/pack_avx512-inl.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {

void QuantizeActRowQ8KAvx512(const float* x, int64_t cols, ActQ8K* dst);  // matmul_k_avx512

namespace {

constexpr int64_t kQ4KBytes = 144;
constexpr int kGroupRows = 4;
constexpr int64_t kGroupBytes = kGroupRows * kQ4KBytes;

// Byte index in the rows' packed scale bytes (UnpackScalesK4x4: row i's sc0..sc7 at
// 16·i..16·i+7) of int32 lane k of rows {first, first + 1}: lanes 0..7 row `first`,
// 8..15 the next; byte 4k of the index (the others are masked off).
struct alignas(64) ScaleIndex {
  uint8_t b[2][64];
};
constexpr ScaleIndex kScaleIndex = [] {
  ScaleIndex t{};
  for (int pair = 0; pair < 2; ++pair) {
    for (int k = 0; k < 16; ++k) t.b[pair][4 * k] = static_cast<uint8_t>(16 * (2 * pair + k / 8) + k % 8);
  }
  return t;
}();

struct Q4KTile {
  const uint8_t* w;  // prepacked
  int64_t row_bytes, nbk;
  const uint8_t* act;  // kQ8KG rows
  int64_t act_stride;
  float* y;
  int64_t rows;

  // Rows r..r+3 for tokens t..t+T-1; each token's arithmetic is the same whatever T is.
  template <int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[kGroupRows][T], macc[T];  // macc lanes 4i..4i+3: row i's mins terms
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      macc[j] = _mm512_setzero_ps();
#pragma GCC unroll 4
      for (int i = 0; i < kGroupRows; ++i) acc[i][j] = _mm512_setzero_ps();
    }
    const __m512i scale_idx0 = _mm512_load_si512(kScaleIndex.b[0]);
    const __m512i scale_idx1 = _mm512_load_si512(kScaleIndex.b[1]);
    const __m512i mins_ctrl = _mm512_broadcast_i32x4(
        _mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1));
    const __m512i head_words = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    const uint8_t* g = w + r * row_bytes;
    for (int64_t b = 0; b < nbk; ++b, g += kGroupBytes) {
      const __m512i head = _mm512_loadu_si512(g);
      const __m512i sb = avx512::UnpackScalesK4x4(head);  // lane i: row i's [sc0..7, m0..7]
      // [d0, dmin0, d1, dmin1, ..., d3, dmin3]
      const __m512 dd = _mm512_castps256_ps512(
          _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(head_words, head))));
      // Row i's sc_i[L % 8] in lane L: rows 0, 1 in sc01 (lanes 0..7, 8..15), 2, 3 in sc23.
      const __m512 sc01 = _mm512_cvtepi32_ps(
          _mm512_maskz_permutexvar_epi8(0x1111111111111111ull, scale_idx0, sb));
      const __m512 sc23 = _mm512_cvtepi32_ps(
          _mm512_maskz_permutexvar_epi8(0x1111111111111111ull, scale_idx1, sb));
      const __m512i m16 = _mm512_shuffle_epi8(sb, mins_ctrl);  // row i's mins in lane i
      // Per token: s01/s23 = sc · (d · da) per row, and the mins terms m_s · (sum of
      // sub-block s) · dmin · da of row i in lanes 4i..4i+3 of macc. The same operations
      // for every T, so a token's result does not depend on the batch.
      __m512 s01[T], s23[T];
      const uint8_t* aq[T];
      avx512::Act256 av[T];
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) {
        const ActQ8K& a = reinterpret_cast<const ActQ8K*>(act + (t + j) * act_stride)[b];
        const __m512 d = _mm512_mul_ps(dd, _mm512_set1_ps(a.d));
        s01[j] = _mm512_mul_ps(sc01, _mm512_permutexvar_ps(
            _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), d));
        s23[j] = _mm512_mul_ps(sc23, _mm512_permutexvar_ps(
            _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4), d));
        // kQ8KG: bsums[0..7] = bsums[8..15] = the sums of the 8 sub-blocks.
        const __m512i bs8 = _mm512_broadcast_i32x4(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums)));
        macc[j] = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(_mm512_madd_epi16(m16, bs8)),
            _mm512_permutexvar_ps(_mm512_set_epi32(7, 7, 7, 7, 5, 5, 5, 5, 3, 3, 3, 3, 1, 1, 1, 1), d),
            macc[j]);
        aq[j] = reinterpret_cast<const uint8_t*>(a.qs);
        if constexpr (T <= 2) av[j] = avx512::LoadAct256(aq[j]);
      }
#pragma GCC unroll 4
      for (int i = 0; i < kGroupRows; ++i) {
        const avx512::Nibbles128 q = avx512::SplitNibbles128(g + 64 + 128 * i);
#pragma GCC unroll 4
        for (int j = 0; j < T; ++j) {
          const __m512i dot = T <= 2 ? avx512::DotNibbles128(q, av[j], _mm512_setzero_si512())
                                    : avx512::DotNibbles128(q, aq[j], _mm512_setzero_si512());
          const __m512 pair = i < 2 ? s01[j] : s23[j];
          const __m512 scale = i % 2 == 0 ? _mm512_shuffle_f32x4(pair, pair, 0x44)
                                          : _mm512_shuffle_f32x4(pair, pair, 0xee);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[i][j]);
        }
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      const __m512 a[4] = {acc[0][j], acc[1][j], acc[2][j], acc[3][j]};
      // Row i's mins: the 4 lanes 4i..4i+3 of macc summed, into element i.
      const __m512 m = _mm512_add_ps(macc[j], _mm512_shuffle_ps(macc[j], macc[j], 0x4e));
      const __m512 m2 = _mm512_add_ps(m, _mm512_shuffle_ps(m, m, 0xb1));
      const __m128 mins = _mm512_castps512_ps128(_mm512_permutexvar_ps(head_words, m2));
      _mm_storeu_ps(y + (t + j) * rows + r, _mm_sub_ps(avx512::Sum4(a), mins));
    }
  }
};

void Q4KPackedKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const int64_t nbk = w.cols / kQKK;
  const Q4KTile tile{static_cast<const uint8_t*>(w.prepacked), nbk * kQ4KBytes, nbk,
                     static_cast<const uint8_t*>(a.act.data), a.act.stride, a.y, w.rows};
  avx512::RunRowGroupsInTokenTiles(tile, r0, r1, a.n);
}

// Level (0..15) of value v (0..31) of sub-block s in a file-layout Q4_K block's qs.
inline uint8_t FileLevel(const uint8_t* qs, int s, int v) {
  return static_cast<uint8_t>((qs[32 * (s / 2) + v] >> (4 * (s % 2))) & 0x0f);
}

}  // namespace

void PrepackQ4_KAvx512(const WeightView& w, uint8_t* dst) {
  const int64_t nbk = w.cols / kQKK, row_bytes = nbk * kQ4KBytes;
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.rows; r += kGroupRows) {
    for (int64_t b = 0; b < nbk; ++b) {
      uint8_t* out = dst + r * row_bytes + b * kGroupBytes;
      for (int i = 0; i < kGroupRows; ++i) {
        const uint8_t* blk = src + (r + i) * row_bytes + b * kQ4KBytes;
        std::memcpy(out + 16 * i, blk, 16);
        uint8_t* levels = out + 64 + 128 * i;
        for (int z = 0; z < 2; ++z) {
          for (int lane = 0; lane < 16; ++lane) {
            for (int m = 0; m < 4; ++m) {
              const int s = lane % 8, v = 8 * z + 4 * (lane / 8) + m;
              levels[64 * z + 4 * lane + m] = static_cast<uint8_t>(
                  FileLevel(blk + 16, s, v) | FileLevel(blk + 16, s, v + 16) << 4);
            }
          }
        }
      }
    }
  }
}

void QuantizeActRowQ8KGAvx512(const float* x, int64_t cols, ActQ8K* dst) {
  QuantizeActRowQ8KAvx512(x, cols, dst);
  for (int64_t b = 0; b < cols / kQKK; ++b) {
    int8_t tmp[kQKK];
    std::memcpy(tmp, dst[b].qs, kQKK);
    int16_t sums32[8];  // |Σ| <= 32 · 127 fits int16
    for (int s = 0; s < 8; ++s) {
      sums32[s] = static_cast<int16_t>(dst[b].bsums[2 * s] + dst[b].bsums[2 * s + 1]);
    }
    std::memcpy(dst[b].bsums, sums32, sizeof(sums32));  // twice: a 16-byte load gets all 8
    std::memcpy(dst[b].bsums + 8, sums32, sizeof(sums32));
    // Operand o = 2·half + z, lane L: act word 8s + 4·half + 2z + h (s = L % 8, h = L / 8).
    for (int o = 0; o < 4; ++o) {
      const int half = o / 2, z = o % 2;
      for (int lane = 0; lane < 16; ++lane) {
        const int word = 8 * (lane % 8) + 4 * half + 2 * z + lane / 8;
        std::memcpy(dst[b].qs + 64 * o + 4 * lane, tmp + 4 * word, 4);
      }
    }
  }
}

RowsKernel Avx512Q4KPackedKernel() { return Q4KPackedKernel; }

}  // namespace vlserve::kernels::internal
