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

// Matrix-vector products read R short rows side by side, too short for the hardware
// prefetcher to ramp up; prefetch (into L2) the rows this many rows ahead, one line per
// row per 64 bytes consumed, as the quantized kernels do (matmul_q_avx512.cc). A prefetch
// never faults, so running past the matrix end is harmless.
constexpr int64_t kPrefetchRows = 16;

inline void PrefetchAhead(const uint8_t* p, int64_t w_stride) {
  _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchRows * w_stride, _MM_HINT_T1);
}

// Horizontal sums with one fixed addition tree, so that a value reduced alone (edge
// tiles) and the same value reduced with three others are bit-identical: for lanes v[i],
// a[i] = v[i] + v[i+8] (i < 8), b[i] = a[i] + a[i+4] (i < 4), sum = (b0 + b1) + (b2 + b3).
inline float ReduceOne(__m512 v) {
  const __m512 a = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xEE));  // quads 0,1 += 2,3
  const __m128 b = _mm_add_ps(_mm512_castps512_ps128(a), _mm512_extractf32x4_ps(a, 1));
  const __m128 p = _mm_add_ps(b, _mm_shuffle_ps(b, b, 0xB1));  // [b0+b1, b1+b0, b2+b3, b3+b2]
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehl_ps(p, p)));
}

// The four sums of v0..v3 (same tree as ReduceOne) as one vector, ~3x fewer operations.
inline __m128 ReduceFour(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  // Per 128-bit lane k of t: a of v0 (k = 0, 1) and v1 (k = 2, 3); u likewise v2, v3.
  const __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x44),
                                 _mm512_shuffle_f32x4(v0, v1, 0xEE));
  const __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, 0x44),
                                 _mm512_shuffle_f32x4(v2, v3, 0xEE));
  // Lane k of b: b of vector k.
  const __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(t, u, 0x88),
                                 _mm512_shuffle_f32x4(t, u, 0xDD));
  const __m512 p = _mm512_add_ps(b, _mm512_permute_ps(b, 0xB1));
  const __m512 q = _mm512_add_ps(p, _mm512_permute_ps(p, 0x4E));  // (b0+b1) + (b2+b3)
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), q));
}

// Stores the R×T sums of acc to y[(t + j) * rows + r + i]: four rows of one token at a
// time with ReduceFour, the rest one by one.
template <int R, int T>
inline void StoreSums(const __m512 (&acc)[R][T], float* y, int64_t rows, int64_t r, int64_t t) {
#pragma GCC unroll 8
  for (int j = 0; j < T; ++j) {
    float* out = y + (t + j) * rows + r;
    int i = 0;
#pragma GCC unroll 8
    for (; i + 4 <= R; i += 4) {
      _mm_storeu_ps(out + i, ReduceFour(acc[i][j], acc[i + 1][j], acc[i + 2][j], acc[i + 3][j]));
    }
#pragma GCC unroll 8
    for (; i < R; ++i) out[i] = ReduceOne(acc[i][j]);
  }
}

struct F32Weights {
  static constexpr int kBytes = 4;
  static __m512 Load(const uint8_t* row, int64_t i) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static __m512 LoadMasked(const uint8_t* row, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
  }
};

struct F16Weights {
  static constexpr int kBytes = 2;
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
  static constexpr int kBytes = 2;
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
      if constexpr (T == 1) {
        // 16 values are 64 (f32) or 32 bytes: one prefetch per line.
        if (W::kBytes == 4 || (k & 31) == 0) {
#pragma GCC unroll 8
          for (int i = 0; i < R; ++i) PrefetchAhead(wr + i * w_stride + k * W::kBytes, w_stride);
        }
      }
      __m512 wv[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        wv[i] = W::Load(wr + i * w_stride, k);
        // One load per weight vector: for F32, GCC otherwise folds the load into each of
        // the T FMAs that use it (4 loads instead of 1 at T = 4), and the tile becomes
        // load-bound (measured: n = 64, 576×576 in cache, see docs/kernels.md).
        if constexpr (T > 1) asm("" : "+v"(wv[i]));
      }
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
    StoreSums<R, T>(acc, y, rows, r, t);
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
      if constexpr (T == 1) {
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) PrefetchAhead(wr + i * w_stride + 2 * k, w_stride);
      }
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
    StoreSums<R, T>(acc, y, rows, r, t);
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
