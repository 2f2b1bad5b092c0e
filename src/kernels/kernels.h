// The public kernel API that models call. Every function here has a scalar reference in
// ref/ and may have AVX2 / AVX-512 variants; which one runs is chosen once at start-up
// (dispatch.cc), and VLSERVE_ISA=scalar|avx2|avx512 forces one.
//
// Conventions: weights are in GGUF layout — a matrix of `rows` rows, each row `cols` values
// stored contiguously in the weight's DType (RowBytes(type, cols) bytes per row). GGUF
// calls this shape [ne0 = cols, ne1 = rows]. Activations are float32, row-major.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "kernels/types.h"

namespace vlserve::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view IsaName(Isa isa);
bool IsaAvailable(Isa isa);  // does this CPU (and OS) support it
Isa ActiveIsa();             // the one in use; from VLSERVE_ISA or the best available
void ForceIsa(Isa isa);      // tests: run every path; CHECKs that it is available

// A weight matrix as it sits in the (memory-mapped) GGUF file.
struct WeightView {
  DType type;
  const void* data;
  int64_t rows;  // output features
  int64_t cols;  // input features (multiple of the type's block size)
  // Optional: the same matrix repacked by PrepackWeights (used on AVX-512 only; `data`
  // stays the source of truth on other ISAs).
  const void* prepacked = nullptr;
};

// Repacks a matrix once (at load) for the AVX-512 VNNI kernels; set
// `w.prepacked = buffer.data()`. The buffer must outlive the view.
//  - Q8_0: the int8 panel layout (16-row panels of unsigned bytes, 4 k-bytes of 16 rows
//    per zmm, plus per-block scales; matmul_qpack_avx512.cc), 36 bytes per 32 weights
//    against 34. MatMuls of 8 or more tokens (prefill, batched decode) skip the per-call
//    repack; fewer tokens keep reading `data`.
//  - Q4_0 with rows % 4 == 0: the file's bytes reordered into 4-row groups with the
//    levels of 8 blocks in vpdpbusd lane order (matmul_q4pack_avx512.cc), same size.
//    Every MatMul then reads only the copy: decode ~1.95x per core (in L2).
//  - Q5_0 with rows % 4 == 0: the same layout plus the fifth bits as byte masks, same
//    size; every MatMul then reads only the copy: decode ~1.6-2.1x per core (in L2).
//  - Q4_K with rows % 4 == 0: the file's bytes reordered into 4-row groups, levels
//    interleaved by sub-block (matmul_k4pack_avx512.cc), same size; every MatMul reads
//    only the copy: decode ~1.4x, prefill ~1.6x per core.
// Other types, other ISAs, or VLSERVE_PREPACK=0: returns an empty buffer.
AlignedBuffer<uint8_t> PrepackWeights(const WeightView& w);
// Whether PrepackWeights has a layout for `type` (on AVX-512, for suitable shapes).
bool HasPrepackedLayout(DType type);
// True when MatMul on `w` never reads w.data (its prepacked copy replaces it: Q4_0, Q5_0
// and Q4_K on AVX-512), so the file's pages behind it may be released.
bool ReadsOnlyPrepacked(const WeightView& w);

// y[n, rows] = x[n, cols] · Wᵀ. n == 1 is the matrix-vector (decode) case.
// Quantized weights may quantize x to int8 blocks internally, as llama.cpp does.
// Results do not depend on the number of threads. pool == nullptr: DefaultThreadPool().
void MatMul(const WeightView& w, const float* x, int64_t n, float* y,
            ThreadPool* pool = nullptr);

// n values (a multiple of the block size) between float and a GGUF type.
void Dequantize(DType type, const void* src, float* dst, int64_t n);
void Quantize(DType type, const float* src, void* dst, int64_t n);

// --- element-wise and row ops (in place where `x` and `y` may alias) ---
// y = x / sqrt(mean(x²) + eps) * weight                                   x, y: [n]
void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* y);
// y = (x - mean) / sqrt(var + eps) * weight + bias   (weight/bias may be null) x, y: [n]
void LayerNorm(const float* x, const float* weight, const float* bias, float eps, int64_t n,
               float* y);

enum class RopeStyle {
  kNormal,  // rotate adjacent pairs (x[2i], x[2i+1])      — llama after GGUF permutation
  kNeox,    // rotate (x[i], x[i + rope_dims/2])            — qwen2, neox
};
// x: [num_heads, head_dim] for one token at position `pos`. Only the first rope_dims
// values of each head rotate; theta_i = pos * freq_base^(-2i/rope_dims).
void Rope(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims, int64_t pos,
          float freq_base, RopeStyle style);

// Multi-axis RoPE (M-RoPE, docs/architecture.md "Positions"): a token has one position per
// axis (t, h, w, e) and each rotation pair i < rope_dims/2 takes its angle from one axis,
// theta_i = pos[axis(i)] * freq_base^(-2i/rope_dims). Contiguous sections (Qwen2-VL's
// "mrope"): sector = i % sum(pairs); the first pairs[0] sectors use t, the next pairs[1]
// h, then w, then e. Interleaved (Qwen3-VL's "imrope", HF apply_interleaved_mrope): pair
// i uses h when i % 3 == 1 and i < 3 * pairs[1], w when i % 3 == 2 and i < 3 * pairs[2],
// else t. With every axis equal both reduce to Rope.
struct RopeSections {
  std::array<int32_t, 4> pairs{};  // all zero: plain RoPE on axis 0
  bool interleaved = false;
  bool active() const { return pairs[0] + pairs[1] + pairs[2] + pairs[3] > 0; }
  int32_t AxisOfPair(int64_t i) const;
};
void RopeMulti(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims,
               const int32_t pos[4], float freq_base, RopeStyle style,
               const RopeSections& sections);

void Softmax(float* x, int64_t n);  // in place, numerically stable (max subtracted)
void Silu(float* x, int64_t n);
void GeluTanh(float* x, int64_t n);   // SigLIP, "gelu_pytorch_tanh"
void GeluErf(float* x, int64_t n);    // exact GELU
void QuickGelu(float* x, int64_t n);  // x * sigmoid(1.702 x), CLIP
// out = silu(gate) * up                                                    all: [n]
void SwiGlu(const float* gate, const float* up, float* out, int64_t n);
void Add(const float* a, const float* b, float* out, int64_t n);  // out = a + b

// Keys and values of one sequence, stored in fixed-size blocks (the paged KV cache).
// Block j holds positions [j*block_size, (j+1)*block_size), each position a row of
// [num_kv_heads, head_dim] values of `type`: kF32, or kF16 / kBF16 (uint16_t bits, widened
// to float exactly on load; the arithmetic is float either way). A contiguous buffer is
// the one-block case.
struct KvView {
  const void* const* k_blocks;
  const void* const* v_blocks;
  int64_t block_size;
  int64_t length;  // valid positions
  DType type = DType::kF32;
};

// Whether Attention reads K/V stored as `type` (kF32, kF16, kBF16).
inline bool IsKvType(DType type) {
  return type == DType::kF32 || type == DType::kF16 || type == DType::kBF16;
}

// Scaled dot-product attention with grouped-query heads (num_heads % num_kv_heads == 0).
// q: [n_q, num_heads, head_dim]; out: [n_q, num_heads, head_dim].
// Causal when q_positions != nullptr: query i sees kv positions <= q_positions[i].
// Bidirectional (vision towers) when q_positions == nullptr: every query sees all kv.
void Attention(const float* q, int64_t n_q, int64_t num_heads, int64_t num_kv_heads,
               int64_t head_dim, const KvView& kv, const int32_t* q_positions, float scale,
               float* out, ThreadPool* pool = nullptr);

}  // namespace vlserve::kernels
