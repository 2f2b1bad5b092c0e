// Bidirectional (non-causal) multi-head attention over one contiguous sequence, the
// vision-tower case: every token sees every token, no KV cache, no GQA.
//
// On AVX-512 it runs attention_bidir_avx512.cc: per head and panel of 32 queries, scores
// are computed transposed (queries in lanes), the softmax is vertical, the probabilities
// are written directly as the operand of P·V, and the division by the sums comes after
// P·V. With bf16 = true and AVX512_BF16, Q, K, the probabilities and V are rounded to
// bf16 and multiplied with vdpbf16ps (sums in f32); otherwise everything is f32 (FMA).
// Each output element is computed by one thread, so results are bit-identical for any
// thread count. Without AVX-512: the blocked online-softmax kernel behind
// kernels::Attention.
#pragma once

#include <cstdint>

#include "base/thread_pool.h"

namespace vlserve::kernels {

// q, k, v, out: [n, num_heads * head_dim], rows `ld` floats apart (ld >= num_heads *
// head_dim). bf16 = true (needs AVX-512 with AVX512_BF16, else ignored) rounds Q, K, the
// probabilities and V to bf16 and accumulates in f32 with vdpbf16ps.
void AttentionBidirectional(const float* q, const float* k, const float* v, int64_t n,
                            int64_t num_heads, int64_t head_dim, int64_t ld, float scale,
                            bool bf16, float* out, ThreadPool* pool = nullptr);

}  // namespace vlserve::kernels
