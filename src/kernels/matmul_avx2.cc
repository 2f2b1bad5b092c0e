// AVX2 MatMul kernels. Float weights (F32, F16 via F16C, BF16 widened) use the same
// dot-product tiling as the AVX-512 kernels with ymm accumulators.
#include <immintrin.h>

#include <cmath>

#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"

namespace vlserve::kernels::internal {
namespace {

inline float Reduce8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct F32W {
  static __m256 Load(const uint8_t* row, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static float At(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};
struct F16W {
  static __m256 Load(const uint8_t* row, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  }
  static float At(const uint8_t* row, int64_t i) {
    uint16_t h;
    __builtin_memcpy(&h, row + 2 * i, 2);
    return _cvtsh_ss(h);
  }
};
struct Bf16W {
  static __m256 Load(const uint8_t* row, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float At(const uint8_t* row, int64_t i) {
    uint16_t h;
    __builtin_memcpy(&h, row + 2 * i, 2);
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
  }
};

template <class W>
struct FloatTile {
  const uint8_t* w;
  int64_t w_stride;
  const float* x;
  int64_t cols;
  float* y;
  int64_t rows;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m256 acc[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    const uint8_t* wr = w + r * w_stride;
    const float* xt = x + t * cols;
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
      __m256 wv[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) wv[i] = W::Load(wr + i * w_stride, k);
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const __m256 xv = _mm256_loadu_ps(xt + j * cols + k);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        float s = Reduce8(acc[i][j]);
        for (int64_t kk = k; kk < cols; ++kk) {
          s = std::fma(W::At(wr + i * w_stride, kk), xt[j * cols + kk], s);
        }
        y[(t + j) * rows + r + i] = s;
      }
    }
  }
};

template <class W>
void FloatKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const FloatTile<W> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                          static_cast<const float*>(a.act.data), w.cols, a.y, w.rows};
  if (a.n == 1) return DriveTiles<4, 1>(tile, r0, r1, 1, 1);
  DriveTiles<3, 4>(tile, r0, r1, a.n, TokenTile(w.cols * 4, 4));
}

}  // namespace

KernelChoice Avx2QuantKernel(DType type);  // matmul_q_avx2.cc

KernelChoice Avx2Kernel(DType type) {
  switch (type) {
    case DType::kF32: return {ActKind::kF32, FloatKernel<F32W>};
    case DType::kF16: return {ActKind::kF32, FloatKernel<F16W>};
    case DType::kBF16: return {ActKind::kF32, FloatKernel<Bf16W>};
    default: return Avx2QuantKernel(type);
  }
}

}  // namespace vlserve::kernels::internal
