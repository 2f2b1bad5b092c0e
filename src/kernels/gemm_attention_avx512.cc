// AVX-512 bidirectional attention as two GEMMs per head (design: attention_bidir.h).
#include <immintrin.h>

#include <atomic>

#include "base/aligned.h"
#include "kernels/gemm_float.h"
#include "kernels/simd_avx512.h"
#include "kernels/vec_math-inl.h"

namespace vlserve::kernels::internal {
namespace {

using S = simd::Avx512;

// Row i of s [n][n] becomes softmax(scale · s_i) in place.
void SoftmaxRows(float* s, int64_t n, float scale) {
  const int64_t full = n / 16 * 16, tail = n - full;
  for (int64_t i = 0; i < n; ++i) {
    float* row = s + i * n;
    S::V mx = S::Set(-__builtin_inff());
    for (int64_t j = 0; j < full; j += 16) mx = S::Max(mx, S::Load(row + j));
    if (tail) mx = S::Max(mx, S::LoadNFill(row + full, tail, -__builtin_inff()));
    // exp(scale·(s - max)): the scaled maximum is subtracted after scaling.
    const S::V sc = S::Set(scale), m = S::Set(scale * S::MaxLanes(mx));
    S::V sum = S::Zero();
    for (int64_t j = 0; j < full; j += 16) {
      const S::V e = vmath::Exp<S>(S::Fms(S::Load(row + j), sc, m));
      S::Store(row + j, e);
      sum = S::Add(sum, e);
    }
    if (tail) {
      const S::V e = vmath::Exp<S>(S::Fms(S::LoadN(row + full, tail), sc, m));
      const S::V e_masked = S::Select(S::Tail(tail), e, S::Zero());
      S::StoreN(row + full, e_masked, tail);
      sum = S::Add(sum, e_masked);
    }
    const S::V inv = S::Set(1.0f / S::SumLanes(sum));
    for (int64_t j = 0; j < full; j += 16) S::Store(row + j, S::Mul(S::Load(row + j), inv));
    if (tail) S::StoreN(row + full, S::Mul(S::LoadN(row + full, tail), inv), tail);
  }
}

}  // namespace

void AttentionBidirAvx512(const float* q, const float* k, const float* v, int64_t n,
                          int64_t num_heads, int64_t head_dim, int64_t ld, float scale,
                          bool bf16, float* out, ThreadPool* pool) {
  std::atomic<int64_t> next{0};
  auto work = [&](int, int) {
    thread_local AlignedBuffer<float> scores;
    scores.Resize(n * n);
    for (int64_t h = next.fetch_add(1); h < num_heads; h = next.fetch_add(1)) {
      const int64_t off = h * head_dim;
      // S = Q_h · K_hᵀ: the keys are the "weight rows" (row-major, ld floats apart).
      RunGemmAvx512(GemmSpec{bf16 ? GemmLayout::kF32AsBf16 : GemmLayout::kF32, k + off,
                             ld * 4, n, head_dim, q + off, ld, n, scores.data(), n},
                    nullptr);
      SoftmaxRows(scores.data(), n, scale);
      // O_h = P · V_h: W(r = dim, c = key) = v[key * ld + off + dim], column-major.
      RunGemmAvx512(GemmSpec{bf16 ? GemmLayout::kF32ColMajorAsBf16 : GemmLayout::kF32ColMajor,
                             v + off, ld, head_dim, n, scores.data(), n, n, out + off, ld},
                    nullptr);
    }
  };
  if (pool->num_threads() == 1 || num_heads == 1) {
    work(0, 1);
  } else {
    pool->Run(work);
  }
}

}  // namespace vlserve::kernels::internal
