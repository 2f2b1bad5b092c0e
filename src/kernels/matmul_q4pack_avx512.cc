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
//
// Q5_0 (22-byte blocks: f16 d, 32 fifth bits qh, 16 qs bytes) uses the same layout with
// each row's levels preceded by its fifth bits as byte masks of the vpdpbusd operands
// (4·G bytes: for G = 8 the 64-bit masks of low nibbles of the two halves, then of high
// nibbles; for G <= 4 the 16·G-bit masks of the low and the high nibbles): one masked
// add of 16 per operand. Row i of a group then starts at 8·G + 20·G·i.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/pack_avx512-inl.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {

void QuantizeActRowQ8Avx512(const float* x, int64_t cols, int64_t ld, uint8_t* dst);

namespace {

constexpr int kGroupRows = 4;

// What differs between the two formats.
struct Q4_0Format {
  static constexpr int64_t kBlockBytes = 18;  // f16 d, 16 qs bytes
  static constexpr int kQsOffset = 2, kMaskBytes = 0, kOffsetShift = 3;  // levels - 8
};
struct Q5_0Format {
  static constexpr int64_t kBlockBytes = 22;  // f16 d, uint32 qh, 16 qs bytes
  static constexpr int kQsOffset = 6, kMaskBytes = 4, kOffsetShift = 4;  // levels - 16
};

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

// The levels of one row of an 8-block group (the 128 bytes after its Q5_0 masks) as
// nibble vectors, with Q5_0's fifth bits added (16 where a mask bit is set).
template <class Fmt>
inline avx512::Nibbles128 GroupRowLevels8(const uint8_t* masks) {
  avx512::Nibbles128 n = avx512::SplitNibbles128(masks + Fmt::kMaskBytes * 8);
  if constexpr (Fmt::kMaskBytes > 0) {
    const __m512i sixteen = _mm512_set1_epi8(16);
    uint64_t mk[4];
    std::memcpy(mk, masks, sizeof(mk));
    n.lo0 = _mm512_mask_add_epi8(n.lo0, _cvtu64_mask64(mk[0]), n.lo0, sixteen);
    n.lo1 = _mm512_mask_add_epi8(n.lo1, _cvtu64_mask64(mk[1]), n.lo1, sixteen);
    n.hi0 = _mm512_mask_add_epi8(n.hi0, _cvtu64_mask64(mk[2]), n.hi0, sixteen);
    n.hi1 = _mm512_mask_add_epi8(n.hi1, _cvtu64_mask64(mk[3]), n.hi1, sixteen);
  }
  return n;
}

template <class Fmt>
struct Q4Tile {
  static constexpr int64_t kRowBlockBytes = Fmt::kBlockBytes - 2;  // per row and block
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
      init[j] = _mm512_sub_epi32(
          _mm512_setzero_si512(),
          _mm512_slli_epi32(_mm512_maskz_loadu_epi32(kBlocks, s), Fmt::kOffsetShift));
      aq[j] = row + b0 * kQK;
      if constexpr (T <= 2 && G == 8) av[j] = avx512::LoadAct256(aq[j]);  // G < 8: masked loads
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
    const __m512i sixteen = _mm512_set1_epi8(16);
#pragma GCC unroll 4
    for (int i = 0; i < kGroupRows; ++i) {
      const uint8_t* masks = wg + 8 * G + i * kRowBlockBytes * G;
      const uint8_t* p = masks + Fmt::kMaskBytes * G;
      if constexpr (G == 8) {
        const avx512::Nibbles128 q = GroupRowLevels8<Fmt>(masks);
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
        __m512i lo = _mm512_and_si512(w0, m4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w0, 4), m4);
        if constexpr (Fmt::kMaskBytes > 0) {
          uint64_t mlo = 0, mhi = 0;
          std::memcpy(&mlo, masks, 2 * G);
          std::memcpy(&mhi, masks + 2 * G, 2 * G);
          lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(mlo), lo, sixteen);
          hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(mhi), hi, sixteen);
        }
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
    constexpr int64_t kGroupBlockBytes = kGroupRows * Fmt::kBlockBytes;  // per block
    const uint8_t* wg = w + r * row_bytes;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, wg += kGroupBlockBytes * 8) Group<8, T>(wg, b, t, acc);
    if (nb - b >= 4) Group<4, T>(wg, b, t, acc), b += 4, wg += kGroupBlockBytes * 4;
    if (nb - b >= 2) Group<2, T>(wg, b, t, acc), b += 2, wg += kGroupBlockBytes * 2;
    if (nb - b >= 1) Group<1, T>(wg, b, t, acc);
#pragma GCC unroll 4
    for (int j = 0; j < T; ++j) {
      const __m512 a[4] = {acc[0][j], acc[1][j], acc[2][j], acc[3][j]};
      _mm_storeu_ps(y + (t + j) * rows + r, avx512::Sum4(a));
    }
  }
};

template <class Fmt>
void Q4PackedKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const int64_t nb = w.cols / kQK;
  const Q4Tile<Fmt> tile{static_cast<const uint8_t*>(w.prepacked), nb * Fmt::kBlockBytes, nb,
                    static_cast<const uint8_t*>(a.act.data), a.act.stride, a.act.ld, a.y,
                    w.rows};
  avx512::RunRowGroupsInTokenTiles(tile, r0, r1, a.n);
}

}  // namespace

namespace {

inline bool Bit(const uint8_t* bits, int i) { return (bits[i / 8] >> (i % 8)) & 1; }

template <class Fmt>
void PrepackGrouped(const WeightView& w, uint8_t* dst) {
  constexpr int64_t kB = Fmt::kBlockBytes;
  const int64_t nb = w.cols / kQK, row_bytes = nb * kB;
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.rows; r += kGroupRows) {
    uint8_t* out = dst + r * row_bytes;
    ForGroups(nb, [&](int64_t b0, int g) {
      for (int i = 0; i < kGroupRows; ++i) {
        const uint8_t* row = src + (r + i) * row_bytes + b0 * kB;
        for (int b = 0; b < g; ++b) std::memcpy(out + 2 * (i * g + b), row + b * kB, 2);
        uint8_t* masks = out + 8 * g + i * (kB - 2) * g;
        uint8_t* levels = masks + Fmt::kMaskBytes * g;
        for (int f = 0; f < 4 * g; ++f) {
          std::memcpy(levels + 4 * f, row + (f % g) * kB + Fmt::kQsOffset + 4 * (f / g), 4);
        }
        if constexpr (Fmt::kMaskBytes > 0) {
          // Bit P of the low (high) mask: fifth bit of the low (high) nibble of level byte
          // P, i.e. of value 4·(F / g) + P % 4 (+ 16) of block F % g, F = P / 4.
          std::memset(masks, 0, Fmt::kMaskBytes * g);
          for (int pos = 0; pos < 16 * g; ++pos) {
            const int f = pos / 4, v = 4 * (f / g) + pos % 4;
            const uint8_t* qh = row + (f % g) * kB + 2;
            if (Bit(qh, v)) masks[pos / 8] |= static_cast<uint8_t>(1 << (pos % 8));
            if (Bit(qh, 16 + v)) masks[2 * g + pos / 8] |= static_cast<uint8_t>(1 << (pos % 8));
          }
        }
      }
      out += kGroupRows * kB * g;
    });
  }
}

// uint32 with 0x10 in byte j where bit j of the 4-bit value is set: 4 fifth bits as the
// +16 they add to 4 level bytes.
constexpr std::array<uint32_t, 16> kFifthBits = [] {
  std::array<uint32_t, 16> t{};
  for (uint32_t v = 0; v < 16; ++v) {
    for (int j = 0; j < 4; ++j) {
      if ((v >> j) & 1) t[v] |= uint32_t{0x10} << (8 * j);
    }
  }
  return t;
}();

// Row i of a 4-row group's block group (g blocks from block b0) as lane `lane` of an int8
// panel (the layout of matmul_qpack_avx512.cc: q[nb][8][64], d[nb][16]).
template <class Fmt>
void PackGroupRow(const uint8_t* group, int g, int64_t b0, int i, int lane, uint8_t* q,
                  float* d) {
  constexpr int64_t kB = Fmt::kBlockBytes;
  const uint8_t* masks = group + 8 * g + i * (kB - 2) * g;
  const uint8_t* levels = masks + Fmt::kMaskBytes * g;
  for (int k = 0; k < g; ++k) {
    uint16_t h;
    std::memcpy(&h, group + 2 * (i * g + k), 2);
    d[(b0 + k) * 16 + lane] = F16ToF32(h);
    // All loads first: `out` is uint8_t too, so a store there would force the compiler
    // to reload the level bytes after it (measured 1.2x on this function's callers).
    uint32_t lo[4], hi[4];
    for (int word = 0; word < 4; ++word) {  // values 4w..4w+3 and 16+4w..16+4w+3
      const int pos = 4 * (word * g + k);
      uint32_t v;
      std::memcpy(&v, levels + pos, 4);
      lo[word] = v & 0x0f0f0f0fu;
      hi[word] = (v >> 4) & 0x0f0f0f0fu;
      if constexpr (Fmt::kMaskBytes > 0) {  // bits pos..pos+3 of the low / high masks
        lo[word] |= kFifthBits[(masks[pos / 8] >> (pos % 8)) & 15];
        hi[word] |= kFifthBits[(masks[2 * g + pos / 8] >> (pos % 8)) & 15];
      }
    }
    uint8_t* out = q + (b0 + k) * 8 * 64 + lane * 4;
    for (int word = 0; word < 4; ++word) {
      std::memcpy(out + word * 64, &lo[word], 4);
      std::memcpy(out + (word + 4) * 64, &hi[word], 4);
    }
  }
}

// Stores the 16 words of v for 4 rows: 128-bit lane l holds the 4 rows' copies of word
// F = 16·half + 4l + J of the group order, which is level word F / G (+4 for high
// nibbles) of block F % G.
template <int G, int J>
inline void StoreWords4Rows(__m512i v, int half, int high, int64_t b0, uint8_t* q_lane) {
  const auto store = [&](int l, __m128i x) {
    const int f = 16 * half + 4 * l + J;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q_lane + (b0 + f % G) * 8 * 64 +
                                                 (f / G + 4 * high) * 64),
                     x);
  };
  store(0, _mm512_castsi512_si128(v));
  store(1, _mm512_extracti32x4_epi32(v, 1));
  store(2, _mm512_extracti32x4_epi32(v, 2));
  store(3, _mm512_extracti32x4_epi32(v, 3));
}

// a[0..3]: one vector of 16 level words for each of the 4 rows. A 4×4 transpose of
// 32-bit words per 128-bit lane puts the 4 rows' copies of a word side by side: 16
// contiguous panel bytes, since a panel's lanes are 4 bytes apart.
template <int G>
inline void StoreTransposed4Rows(const __m512i (&a)[kGroupRows], int half, int high,
                                 int64_t b0, uint8_t* q_lane) {
  const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);
  StoreWords4Rows<G, 0>(_mm512_unpacklo_epi64(t0, t2), half, high, b0, q_lane);
  StoreWords4Rows<G, 1>(_mm512_unpackhi_epi64(t0, t2), half, high, b0, q_lane);
  StoreWords4Rows<G, 2>(_mm512_unpacklo_epi64(t1, t3), half, high, b0, q_lane);
  StoreWords4Rows<G, 3>(_mm512_unpackhi_epi64(t1, t3), half, high, b0, q_lane);
}

// Rows r..r+3 (one 4-row group) as lanes lane..lane+3 of an int8 panel. 8- and 4-block
// groups are unpacked for the 4 rows at once (each row's levels as low / high nibble
// vectors, plus Q5_0's fifth bits by masked add, then StoreTransposed4Rows): one 16-byte
// store per level word and 4 rows, where the row-at-a-time unpack makes four 4-byte ones.
// The 2- and 1-block tail groups go row by row.
template <class Fmt>
void PackGroupedRows4(const uint8_t* packed, int64_t nb, int64_t r, int lane, uint8_t* q,
                      float* d) {
  constexpr int64_t kB = Fmt::kBlockBytes;
  const uint8_t* rows4 = packed + (r / kGroupRows) * kGroupRows * nb * kB;
  uint8_t* q_lane = q + lane * 4;
  const __m512i m4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
  ForGroups(nb, [&](int64_t b0, int g) {
    const uint8_t* group = rows4 + b0 * kGroupRows * kB;
    if (g < 4) {
      for (int i = 0; i < kGroupRows; ++i) PackGroupRow<Fmt>(group, g, b0, i, lane + i, q, d);
      return;
    }
    for (int i = 0; i < kGroupRows; ++i) {
      for (int k = 0; k < g; ++k) {
        uint16_t h;
        std::memcpy(&h, group + 2 * (i * g + k), 2);
        d[(b0 + k) * 16 + lane + i] = F16ToF32(h);
      }
    }
    if (g == 8) {
      __m512i v[4][kGroupRows];  // [lo0, lo1, hi0, hi1][row]
      for (int i = 0; i < kGroupRows; ++i) {
        const avx512::Nibbles128 n = GroupRowLevels8<Fmt>(group + 8 * 8 + i * (kB - 2) * 8);
        v[0][i] = n.lo0;
        v[1][i] = n.lo1;
        v[2][i] = n.hi0;
        v[3][i] = n.hi1;
      }
      for (int kind = 0; kind < 4; ++kind) {
        StoreTransposed4Rows<8>(v[kind], kind & 1, kind >> 1, b0, q_lane);
      }
      return;
    }
    __m512i v[2][kGroupRows];  // g == 4: [lo, hi][row]
    for (int i = 0; i < kGroupRows; ++i) {
      const uint8_t* masks = group + 8 * 4 + i * (kB - 2) * 4;
      const __m512i w = _mm512_loadu_si512(masks + Fmt::kMaskBytes * 4);
      __m512i lo = _mm512_and_si512(w, m4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), m4);
      if constexpr (Fmt::kMaskBytes > 0) {
        uint64_t mk[2];
        std::memcpy(mk, masks, sizeof(mk));
        lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(mk[0]), lo, sixteen);
        hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(mk[1]), hi, sixteen);
      }
      v[0][i] = lo;
      v[1][i] = hi;
    }
    StoreTransposed4Rows<4>(v[0], 0, 0, b0, q_lane);
    StoreTransposed4Rows<4>(v[1], 0, 1, b0, q_lane);
  });
}

}  // namespace

void PrepackQ4_0Avx512(const WeightView& w, uint8_t* dst) { PrepackGrouped<Q4_0Format>(w, dst); }
void PrepackQ5_0Avx512(const WeightView& w, uint8_t* dst) { PrepackGrouped<Q5_0Format>(w, dst); }

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

void PackPrepackedQ4_0Rows4(const uint8_t* packed, int64_t nb, int64_t row, int lane,
                            uint8_t* q, float* d) {
  PackGroupedRows4<Q4_0Format>(packed, nb, row, lane, q, d);
}
void PackPrepackedQ5_0Rows4(const uint8_t* packed, int64_t nb, int64_t row, int lane,
                            uint8_t* q, float* d) {
  PackGroupedRows4<Q5_0Format>(packed, nb, row, lane, q, d);
}

RowsKernel Avx512Q4PackedKernel(DType type) {
  return type == DType::kQ5_0 ? Q4PackedKernel<Q5_0Format> : Q4PackedKernel<Q4_0Format>;
}

}  // namespace vlserve::kernels::internal
