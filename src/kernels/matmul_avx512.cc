// AVX-512 MatMul kernels for float weights (F32, F16, BF16). Dot-product form: each
// (row, token) pair owns one zmm accumulator that runs along the columns, R rows × T
// tokens per register tile, reduced horizontally at the end. No packing is needed
// because both the weight row and the activation row are contiguous in k.
#include <immintrin.h>

#include "kernels/dispatch.h"
#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"

namespace vlserve::kernels::internal {
namespace {

struct F32Weights {
  static __m512 Load(const uint8_t* row, int64_t i) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static __m512 LoadMasked(const uint8_t* row, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
  }
};

struct F16Weights {
  static __m512 Load(const uint8_t* row, int64_t i) {
    return _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i)));
  }
  static __m512 LoadMasked(const uint8_t* row, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * i));
  }
};

// BF16 without vdpbf16ps: widen to f32 (exact) and FMA with the f32 activations.
struct Bf16Weights {
  static __m512 Load(const uint8_t* row, int64_t i) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 LoadMasked(const uint8_t* row, int64_t i, __mmask16 m) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

// Float activations × weights widened to float.
template <class W>
struct FloatTile {
  const uint8_t* w;
  int64_t w_stride;  // bytes per weight row
  const float* x;
  int64_t cols;
  float* y;
  int64_t rows;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    const uint8_t* wr = w + r * w_stride;
    const float* xt = x + t * cols;
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16) {
      __m512 wv[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) wv[i] = W::Load(wr + i * w_stride, k);
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const __m512 xv = _mm512_loadu_ps(xt + j * cols + k);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    }
    if (k < cols) {
      const __mmask16 m = static_cast<__mmask16>((1u << (cols - k)) - 1);
      __m512 wv[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) wv[i] = W::LoadMasked(wr + i * w_stride, k, m);
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, xt + j * cols + k);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

// BF16 weights · BF16 activations with vdpbf16ps (pairs of products summed in f32).
struct Bf16DpTile {
  const uint8_t* w;
  int64_t w_stride;
  const uint16_t* x;  // [n][ld], zero padded
  int64_t ld;
  int64_t cols;
  float* y;
  int64_t rows;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    const uint8_t* wr = w + r * w_stride;
    const uint16_t* xt = x + t * ld;
    for (int64_t k = 0; k < cols; k += 32) {
      const __mmask32 m = cols - k >= 32 ? ~0u : static_cast<__mmask32>((1u << (cols - k)) - 1);
      __m512bh wv[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        wv[i] = reinterpret_cast<__m512bh>(
            _mm512_maskz_loadu_epi16(m, wr + i * w_stride + 2 * k));
      }
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const __m512bh xv =
            reinterpret_cast<__m512bh>(_mm512_loadu_si512(xt + j * ld + k));
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[i], xv);
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

template <class W>
void FloatKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const FloatTile<W> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                          static_cast<const float*>(a.act.data), w.cols, a.y, w.rows};
  if (a.n == 1) return DriveTiles<8, 1>(tile, r0, r1, 1, 1);
  DriveTiles<6, 4>(tile, r0, r1, a.n, TokenTile(w.cols * 4, 4));
}

void Bf16DpKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const Bf16DpTile tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                        static_cast<const uint16_t*>(a.act.data), a.act.ld, w.cols, a.y,
                        w.rows};
  if (a.n == 1) return DriveTiles<8, 1>(tile, r0, r1, 1, 1);
  DriveTiles<4, 4>(tile, r0, r1, a.n, TokenTile(a.act.ld * 2, 4));
}

}  // namespace

// Quantized kernels live in matmul_q_avx512.cc.
KernelChoice Avx512QuantKernel(DType type);

KernelChoice Avx512Kernel(DType type) {
  switch (type) {
    case DType::kF32: return {ActKind::kF32, FloatKernel<F32Weights>};
    case DType::kF16: return {ActKind::kF32, FloatKernel<F16Weights>};
    case DType::kBF16:
      if (HasAvx512Bf16()) return {ActKind::kBf16, Bf16DpKernel};
      return {ActKind::kF32, FloatKernel<Bf16Weights>};
    default: return Avx512QuantKernel(type);
  }
}

}  // namespace vlserve::kernels::internal
