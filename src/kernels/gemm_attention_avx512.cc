// AVX-512 bidirectional attention as two GEMMs per head (design: attention_bidir.h).
#include <immintrin.h>

#include <algorithm>
#include <atomic>

#include "base/aligned.h"
#include "kernels/gemm_float.h"
#include "kernels/simd_avx512.h"
#include "kernels/vec_math-inl.h"

namespace vlserve::kernels::internal {
namespace {

using S = simd::Avx512;

// Row i < rows of s [rows][n] becomes softmax(scale · s_i) in place.
void SoftmaxRows(float* s, int64_t rows, int64_t n, float scale) {
  const int64_t full = n / 16 * 16, tail = n - full;
  for (int64_t i = 0; i < rows; ++i) {
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
  // Work unit: one head × a block of queries. The block's scores [qb][n] (448 KiB at
  // n = 1024) stay in the core's L2 from the first GEMM through the softmax to the
  // second, where a whole head's [n][n] (4 MiB per thread) went through L3 three times;
  // K_h and V_h are re-packed per block. Measured at the smolvlm-256m tower: no speed
  // change beyond noise on 1 or 2 threads, but a 9× smaller per-thread buffer and work
  // units small enough to balance 2 threads over 12 heads. Every output element is still
  // one FMA chain in the same order, so the results do not change.
  constexpr int64_t kQueryBlock = 112;  // 8 microkernel rows of 14
  const int64_t qb = std::min(kQueryBlock, n);
  const int64_t blocks = (n + qb - 1) / qb;
  std::atomic<int64_t> next{0};
  auto work = [&](int, int) {
    thread_local AlignedBuffer<float> scores;
    scores.Resize(qb * n);
    for (int64_t u = next.fetch_add(1); u < num_heads * blocks; u = next.fetch_add(1)) {
      const int64_t off = (u / blocks) * head_dim;
      const int64_t q0 = (u % blocks) * qb, rows = std::min(qb, n - q0);
      // S = Q_h · K_hᵀ: the keys are the "weight rows" (row-major, ld floats apart).
      RunGemmAvx512(GemmSpec{bf16 ? GemmLayout::kF32AsBf16 : GemmLayout::kF32, k + off,
                             ld * 4, n, head_dim, q + q0 * ld + off, ld, rows, scores.data(),
                             n},
                    nullptr);
      SoftmaxRows(scores.data(), rows, n, scale);
      // O_h = P · V_h: W(r = dim, c = key) = v[key * ld + off + dim], column-major.
      RunGemmAvx512(GemmSpec{bf16 ? GemmLayout::kF32ColMajorAsBf16 : GemmLayout::kF32ColMajor,
                             v + off, ld, head_dim, n, scores.data(), n, rows,
                             out + q0 * ld + off, ld},
                    nullptr);
    }
  };
  if (pool->num_threads() == 1 || num_heads * blocks == 1) {
    work(0, 1);
  } else {
    pool->Run(work);
  }
}

}  // namespace vlserve::kernels::internal
