// Bidirectional (non-causal) multi-head attention over one contiguous sequence, the
// vision-tower case: every token sees every token, no KV cache, no GQA.
//
// With bf16 = true on AVX512_BF16 it runs attention_bidir_avx512.cc: per head and panel of
// 32 queries, scores are computed transposed (queries in lanes) with vdpbf16ps, the
// softmax is vertical, the probabilities are written directly as the bf16 pairs the P·V
// product multiplies, and the division by the sums comes after P·V. Q, K, the
// probabilities and V are rounded to bf16; sums are f32. Each output element is computed
// by one thread, so results are bit-identical for any thread count. Otherwise (f32, or
// no AVX512_BF16) it is the blocked online-softmax kernel behind kernels::Attention.
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
