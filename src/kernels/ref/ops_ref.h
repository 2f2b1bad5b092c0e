// Scalar reference implementations of the element-wise / row ops and attention in
// kernels.h: plain loops with double accumulation, written for clarity. They define the
// semantics and are the oracle the optimized kernels are tested against; nothing in the
// serving path calls them.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace vlserve::kernels::ref {

void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* y);
void LayerNorm(const float* x, const float* weight, const float* bias, float eps, int64_t n,
               float* y);
void Rope(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims, int64_t pos,
          float freq_base, RopeStyle style);
void RopeMulti(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims,
               const int32_t pos[4], float freq_base, RopeStyle style,
               const RopeSections& sections);
void Softmax(float* x, int64_t n);
void Silu(float* x, int64_t n);
void GeluTanh(float* x, int64_t n);
void GeluErf(float* x, int64_t n);
void QuickGelu(float* x, int64_t n);
void SwiGlu(const float* gate, const float* up, float* out, int64_t n);
void Add(const float* a, const float* b, float* out, int64_t n);

// Rope angle for pair i, computed in float exactly as Hugging Face's
// `inv_freq = 1 / base ** (arange(0, d, 2).float() / d)`, `freqs = pos * inv_freq` do.
float RopeTheta(int64_t pos, int64_t i, int64_t rope_dims, float freq_base);

// Full (non-online) softmax per query and head, in double; single-threaded.
void Attention(const float* q, int64_t n_q, int64_t num_heads, int64_t num_kv_heads,
               int64_t head_dim, const KvView& kv, const int32_t* q_positions, float scale,
               float* out);

}  // namespace vlserve::kernels::ref
