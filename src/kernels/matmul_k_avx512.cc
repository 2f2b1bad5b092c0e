// AVX-512 VNNI MatMul kernels for the K-quants (Q4_K, Q5_K, Q6_K) against activations
// quantized per 256 values (ActQ8K). Each 64-value group of a super-block is one zmm of
// unsigned levels, multiplied by the activation bytes and the lane's sub-block scale and
// summed in int32 over the super-block; the mins (Q4_K,
// Q5_K) and the -32 offset (Q6_K) are subtracted with the activation's 16-value sums.
// Per 64 values: vpmaddubsw (u8 x s8 -> int16 pairs) then vpdpwssd (x int16 scale,
// summed into int32), two instructions per row x token.
#include <immintrin.h>

#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {
namespace {

// Unpacks the 12 packed 6-bit scales/mins into 16 int32 lanes [sc0..sc7, m0..m7].
inline __m512i ScalesMinsK4(const uint8_t* packed) {
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
  u[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
  const uint32_t mins_lo = u[1] & kMask1;
  u[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
  u[2] = mins_lo;
  u[0] &= kMask1;
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(u)));
}

// Scales of group g as 32 int16 lanes (one per byte pair of the group's 64 values):
// lanes 0..15 = sc[2g], lanes 16..31 = sc[2g + 1]. sm holds [sc0..sc7, m0..m7] as int32.
inline __m512i K4GroupScale16(__m512i sm, int g) {
  const __m512i sc = _mm512_permutexvar_epi32(
      _mm512_add_epi32(_mm512_set1_epi32(2 * g),
                       _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
      sm);
  // Each int32 lane holds a value < 64: duplicate it into both of its int16 halves.
  return _mm512_or_si512(sc, _mm512_slli_epi32(sc, 16));
}

inline __m512i Nibbles32(const uint8_t* q) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  const __m256i m = _mm256_set1_epi8(0x0f);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(v, m)),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), m), 1);
}

struct DecQ4K {
  static constexpr int kBytes = 144;
  static constexpr bool kMins = true;
  static __m512i Scales(const uint8_t* b) { return ScalesMinsK4(b + 4); }
  static __m512i Group(const uint8_t* b, int g) { return Nibbles32(b + 16 + 32 * g); }
  static __m512i GroupScale(__m512i sm, int g) { return K4GroupScale16(sm, g); }
  static float D(const uint8_t* b) { uint16_t h; std::memcpy(&h, b, 2); return F16ToF32(h); }
  static float Dmin(const uint8_t* b) { uint16_t h; std::memcpy(&h, b + 2, 2); return F16ToF32(h); }
};

struct DecQ5K {
  static constexpr int kBytes = 176;
  static constexpr bool kMins = true;
  static __m512i Scales(const uint8_t* b) { return ScalesMinsK4(b + 4); }
  static __m512i Group(const uint8_t* b, int g) {
    const __m512i lo = Nibbles32(b + 48 + 32 * g);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    const __m512i qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
    const __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << (2 * g))),
                                           _mm256_set1_epi8(char(1 << (2 * g + 1))), 1);
    return _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh2, sel), lo, _mm512_set1_epi8(16));
  }
  static __m512i GroupScale(__m512i sm, int g) { return K4GroupScale16(sm, g); }
  static float D(const uint8_t* b) { return DecQ4K::D(b); }
  static float Dmin(const uint8_t* b) { return DecQ4K::Dmin(b); }
};

struct DecQ6K {
  static constexpr int kBytes = 210;
  static constexpr bool kMins = false;
  static __m512i Scales(const uint8_t* b) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
  }
  // Group g: values 64g..64g+63 = chunk g/2, half g%2 (see the Q6_K layout).
  static __m512i Group(const uint8_t* b, int g) {
    const int c = g / 2;
    const __m512i ql = _mm512_loadu_si512(b + 64 * c);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * c));
    const int s = (g & 1) ? 4 : 0;
    const __m512i lo = _mm512_and_si512(g & 1 ? _mm512_srli_epi16(ql, 4) : ql,
                                        _mm512_set1_epi8(0x0f));
    __m512i hi = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(s))),
        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(s + 2)), 1);
    hi = _mm512_and_si512(hi, _mm512_set1_epi8(3));
    return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
  }
  // int16 lane L (bytes 2L, 2L+1 of the group) uses scale 4g + L / 8.
  static __m512i GroupScale(__m512i sc, int g) {
    const __m512i idx = _mm512_add_epi32(
        _mm512_set1_epi32(4 * g),
        _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
    const __m512i s = _mm512_permutexvar_epi32(idx, sc);  // int32, may be negative
    return _mm512_or_si512(_mm512_and_si512(s, _mm512_set1_epi32(0xffff)),
                           _mm512_slli_epi32(s, 16));
  }
  static float D(const uint8_t* b) { uint16_t h; std::memcpy(&h, b + 208, 2); return F16ToF32(h); }
  static float Dmin(const uint8_t*) { return 0; }
};

template <class Dec>
struct KTile {
  const uint8_t* w;
  int64_t w_stride;
  const ActQ8K* act;
  int64_t nbk;  // super-blocks per row
  float* y;
  int64_t rows;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nbk; ++b) {
      const uint8_t* wb[R];
      __m512i sm[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        wb[i] = w + (r + i) * w_stride + b * Dec::kBytes;
        sm[i] = Dec::Scales(wb[i]);
      }
      __m512i isum[R][T];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < T; ++j) isum[i][j] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        __m512i wq[R], sc[R];
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          wq[i] = Dec::Group(wb[i], g);
          sc[i] = Dec::GroupScale(sm[i], g);
        }
#pragma GCC unroll 8
        for (int j = 0; j < T; ++j) {
          const __m512i a = _mm512_loadu_si512(act[(t + j) * nbk + b].qs + 64 * g);
#pragma GCC unroll 8
          for (int i = 0; i < R; ++i) {
            // u8 x s8 pair sums fit int16 (2 * 63 * 127 < 32767), then x scale into int32.
            isum[i][j] = _mm512_dpwssd_epi32(isum[i][j], _mm512_maddubs_epi16(wq[i], a), sc[i]);
          }
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const ActQ8K& ab = act[(t + j) * nbk + b];
        const __m512i bs = _mm512_cvtepi16_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums)));
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          if constexpr (Dec::kMins) {
            // Σ_k m[k/2] * bsums[k]: the mins sit in lanes 8..15 of sm.
            const __m512i mins = _mm512_permutexvar_epi32(
                _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), sm[i]);
            const __m512 mcorr = _mm512_cvtepi32_ps(_mm512_mullo_epi32(mins, bs));
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][j]),
                                        _mm512_set1_ps(Dec::D(wb[i]) * ab.d), acc[i][j]);
            acc[i][j] = _mm512_fnmadd_ps(mcorr, _mm512_set1_ps(Dec::Dmin(wb[i]) * ab.d), acc[i][j]);
          } else {
            const __m512i corr = _mm512_slli_epi32(_mm512_mullo_epi32(sm[i], bs), 5);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[i][j], corr)),
                                        _mm512_set1_ps(Dec::D(wb[i]) * ab.d), acc[i][j]);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

template <class Dec>
void KKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const KTile<Dec> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                        static_cast<const ActQ8K*>(a.act.data), w.cols / kQKK, a.y, w.rows};
  if (a.n == 1) return DriveTiles<4, 1>(tile, r0, r1, 1, 1);
  DriveTiles<2, 4>(tile, r0, r1, a.n, TokenTile(a.act.stride, 4));
}

}  // namespace

KernelChoice Avx512KQuantKernel(DType type) {
  switch (type) {
    case DType::kQ4_K: return {ActKind::kQ8K, KKernel<DecQ4K>};
    case DType::kQ5_K: return {ActKind::kQ8K, KKernel<DecQ5K>};
    case DType::kQ6_K: return {ActKind::kQ8K, KKernel<DecQ6K>};
    default: return {ActKind::kF32, nullptr};
  }
}

}  // namespace vlserve::kernels::internal
