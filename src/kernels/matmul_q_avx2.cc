// AVX2 MatMul kernels for quantized weights, using vpmaddubsw (u8 x s8 -> int16 pair
// sums) and vpmaddwd. One ymm holds one 32-value block.
//   Q4_0 / Q5_0 / Q8_0: weights made signed (q - 8, q - 16, as is); the product uses
//     |w| as the unsigned operand and a·sign(w) as the signed one (llama.cpp's trick;
//     |w| <= 128 and |a| <= 127 keep the int16 pair sums from saturating).
//   Q4_1 / Q5_1: unsigned levels times a, plus m·da·Σa.
//   K-quants: per 32 values, int16 pair sums times the int16 sub-block scale (vpmaddwd)
//     into int32; mins / the Q6_K offset come from the activation's 16-value sums.
#include <immintrin.h>

#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {
namespace {

inline float Hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float LoadF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16 packed bytes -> 32 levels: low nibbles (values 0..15) then high nibbles.
inline __m256i Nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

// Bit j of the 32-bit little-endian word at p -> byte j = 0x10 or 0.
inline __m256i HighBits(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                         0x0101010101010101, 0x0000000000000000);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  bytes = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
  return _mm256_and_si256(bytes, _mm256_set1_epi8(0x10));
}

struct DecQ4_0 {
  static constexpr int kBytes = 18;
  static constexpr bool kMin = false;
  static __m256i Load(const uint8_t* b) {
    return _mm256_sub_epi8(Nibbles(b + 2), _mm256_set1_epi8(8));
  }
  static float M(const uint8_t*) { return 0; }
};
struct DecQ5_0 {
  static constexpr int kBytes = 22;
  static constexpr bool kMin = false;
  static __m256i Load(const uint8_t* b) {
    return _mm256_sub_epi8(_mm256_or_si256(Nibbles(b + 6), HighBits(b + 2)),
                           _mm256_set1_epi8(16));
  }
  static float M(const uint8_t*) { return 0; }
};
struct DecQ8_0 {
  static constexpr int kBytes = 34;
  static constexpr bool kMin = false;
  static __m256i Load(const uint8_t* b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
  }
  static float M(const uint8_t*) { return 0; }
};
struct DecQ4_1 {
  static constexpr int kBytes = 20;
  static constexpr bool kMin = true;
  static __m256i Load(const uint8_t* b) { return Nibbles(b + 4); }
  static float M(const uint8_t* b) { return LoadF16(b + 2); }
};
struct DecQ5_1 {
  static constexpr int kBytes = 24;
  static constexpr bool kMin = true;
  static __m256i Load(const uint8_t* b) {
    return _mm256_or_si256(Nibbles(b + 8), HighBits(b + 4));
  }
  static float M(const uint8_t* b) { return LoadF16(b + 2); }
};

template <class Dec>
struct Q32Tile {
  const uint8_t* w;
  int64_t w_stride;
  const uint8_t* act;
  int64_t act_stride, ld, nb;
  float* y;
  int64_t rows;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
      __m256i wq[R], wabs[R];
      float dw[R], mw[R];
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const uint8_t* blk = w + (r + i) * w_stride + b * Dec::kBytes;
        wq[i] = Dec::Load(blk);
        if constexpr (!Dec::kMin) wabs[i] = _mm256_sign_epi8(wq[i], wq[i]);
        dw[i] = LoadF16(blk);
        mw[i] = Dec::M(blk);
      }
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) {
        const uint8_t* row = act + (t + j) * act_stride;
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * kQK));
        const float da = reinterpret_cast<const float*>(row + ld)[b];
        __m256 asum = _mm256_setzero_ps();
        if constexpr (Dec::kMin) {
          asum = _mm256_cvtepi32_ps(
              _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), a), ones16));
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; ++i) {
          __m256i p16;
          if constexpr (Dec::kMin) {
            p16 = _mm256_maddubs_epi16(wq[i], a);
          } else {
            p16 = _mm256_maddubs_epi16(wabs[i], _mm256_sign_epi8(a, wq[i]));
          }
          const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones16));
          acc[i][j] = _mm256_fmadd_ps(dot, _mm256_set1_ps(dw[i] * da), acc[i][j]);
          if constexpr (Dec::kMin) {
            acc[i][j] = _mm256_fmadd_ps(asum, _mm256_set1_ps(mw[i] * da), acc[i][j]);
          }
        }
      }
    }
    for (int j = 0; j < T; ++j)
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = Hsum8(acc[i][j]);
  }
};

template <class Dec>
void Q32Kernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const Q32Tile<Dec> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                          static_cast<const uint8_t*>(a.act.data), a.act.stride, a.act.ld,
                          w.cols / kQK, a.y, w.rows};
  if (a.n == 1) return DriveTiles<2, 1>(tile, r0, r1, 1, 1);
  DriveTiles<2, 2>(tile, r0, r1, a.n, TokenTile(a.act.stride, 2));
}

}  // namespace

KernelChoice Avx2KQuantKernel(DType type);  // matmul_k_avx2.cc

KernelChoice Avx2QuantKernel(DType type) {
  switch (type) {
    case DType::kQ4_0: return {ActKind::kQ8, Q32Kernel<DecQ4_0>};
    case DType::kQ4_1: return {ActKind::kQ8, Q32Kernel<DecQ4_1>};
    case DType::kQ5_0: return {ActKind::kQ8, Q32Kernel<DecQ5_0>};
    case DType::kQ5_1: return {ActKind::kQ8, Q32Kernel<DecQ5_1>};
    case DType::kQ8_0: return {ActKind::kQ8, Q32Kernel<DecQ8_0>};
    default: return Avx2KQuantKernel(type);
  }
}

}  // namespace vlserve::kernels::internal
