// Bidirectional (non-causal) multi-head attention over one contiguous sequence, the
// vision-tower case: every token sees every token, no KV cache, no GQA.
//
// With bf16 = true on AVX512_BF16 it runs per head as two packed GEMMs (gemm_float.h)
// with the score matrix materialised: S = Q_h·K_hᵀ [n, n] (4 MiB at n = 1024, L2/L3), an
// in-place softmax of each row, then O_h = P·V_h, all operands rounded to bf16 and
// multiplied with vdpbf16ps. Heads are handed to threads whole (each GEMM runs on one
// thread), so results are bit-identical for any thread count. Otherwise (f32, or no
// AVX512_BF16) it is the blocked online-softmax kernel behind kernels::Attention, which
// in f32 beats the GEMM form.
#pragma once

#include <cstdint>

#include "base/thread_pool.h"

namespace vlserve::kernels {

// q, k, v, out: [n, num_heads * head_dim], rows `ld` floats apart (ld >= num_heads *
// head_dim). bf16 = true (needs AVX512_BF16, else ignored) rounds Q, K, the
// probabilities and V to bf16 and accumulates in f32 with vdpbf16ps.
void AttentionBidirectional(const float* q, const float* k, const float* v, int64_t n,
                            int64_t num_heads, int64_t head_dim, int64_t ld, float scale,
                            bool bf16, float* out, ThreadPool* pool = nullptr);

}  // namespace vlserve::kernels
