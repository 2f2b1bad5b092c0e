// Plumbing between MatMul (matmul.cc) and its per-ISA kernels. Internal to src/kernels.
//
// MatMul first converts the activations once per call into the form the chosen kernel
// consumes (ActKind), then splits output rows over threads in chunks of kRowGrain rows;
// each kernel computes y[t, r] for all n tokens and rows [r0, r1) of its chunk, tiling
// over tokens so that a few weight rows are reused from cache by many tokens. Every
// y[t, r] is one dot product whose arithmetic does not depend on how rows or tokens are
// grouped, so results are independent of the thread count.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {

constexpr int64_t kRowGrain = 16;

enum class ActKind {
  kF32,   // x as given: float [n][cols]
  kBf16,  // uint16 bf16 [n][ld] (ld = cols rounded up to 32, zero padded)
  kQ8,    // per token: int8 qs[ld], float d[ld/32], int32 sum[ld/32] (Σ qs per block);
          // ld = cols rounded up to 64
  kQ8K,   // per token: ActQ8K[cols/256]
  kQ8G,   // kQ8 with each block group's values reordered for prepacked Q4_0
          // (matmul_q4pack_avx512.cc)
  kQ8KG,  // kQ8K with each super-block's values reordered for prepacked Q4_K
          // (matmul_k4pack_avx512.cc)
};

struct PreparedAct {
  ActKind kind;
  const void* data;
  int64_t stride;  // bytes between consecutive tokens
  int64_t ld;      // values per token row as stored (see ActKind)
};

struct MatMulArgs {
  const WeightView* w;
  PreparedAct act;
  int64_t n;  // tokens
  float* y;   // [n][w->rows]
};

// Computes rows [r0, r1) of y for all tokens.
using RowsKernel = void (*)(const MatMulArgs& args, int64_t r0, int64_t r1);

struct KernelChoice {
  ActKind act;
  RowsKernel fn;  // nullptr: no kernel for this type on this ISA
};

KernelChoice Avx512Kernel(DType type);  // matmul_avx512.cc
// Prefill kernel with weights repacked per 16-row panel (matmul_qpack_avx512.cc), for
// n >= kPackedMinTokens; consumes ActKind::kQ8. nullptr for other types.
// Measured (bench -p N, smolvlm-256m Q8_0, 2 threads, same run): packed vs dot-product
// kernels at N = 4: 268 vs 284 tok/s, 8: 463 vs 408, 16: 822 vs 565, 32: 1306 vs 796.
// Batched decode of 8+ requests is such a call, so the threshold is low.
constexpr int64_t kPackedMinTokens = 8;
// kPackedMinTokens, or VLSERVE_QPACK_MIN_TOKENS when set (read once; for A/B runs).
int64_t PackedMinTokens();
RowsKernel Avx512PackedQuantKernel(DType type);
// The same kernel over weights prepacked once by PrepackWeights (WeightView::prepacked),
// for any n. nullptr for types that are not prepacked.
RowsKernel Avx512PrepackedKernel(DType type);
// Bytes of one prepacked 16-row panel of a row of `blocks_per_row` 32-blocks.
int64_t PrepackedPanelBytes(int64_t blocks_per_row);
// Fills dst (ceil(rows / 16) panels, 64-byte aligned) from a Q8_0 matrix.
void PrepackQ8_0Avx512(const WeightView& w, uint8_t* dst);
// Q4_0 / Q5_0 prepacked by PrepackQ4_0Avx512 / PrepackQ5_0Avx512 (rows % 4 == 0; same
// byte count as the file's). The dot-product kernel over it, for n <
// Q4PanelMinTokens(cols); consumes ActKind::kQ8G. Row ranges on multiples of 4.
RowsKernel Avx512Q4PackedKernel(DType type);
// From Q4PanelMinTokens(cols) on, the int8 panel kernel with per-call panels unpacked
// from the prepacked copy (so the file's pages stay unread); consumes ActKind::kQ8.
// Measured for Q4_0
// on one core with the weights in L2 (GOP/s, dot-product vs panel kernel), n = 16 / 32 /
// 48 / 64: 2048 columns 183 / 210 / 213 / 209 vs 112 / 169 / 206 / 217; 576 columns (18
// blocks: a 2-block tail group, whose fixed costs weigh more) 132 / 167 / 165 / 165 vs
// 138 / 198 / 232 / 248.
inline int64_t Q4PanelMinTokens(int64_t cols) { return cols % 256 == 0 ? 48 : 16; }
RowsKernel Avx512PackedFromPrepackedKernel(DType type);  // Q4_0 or Q5_0
void PrepackQ4_0Avx512(const WeightView& w, uint8_t* dst);
void PrepackQ5_0Avx512(const WeightView& w, uint8_t* dst);
// Writes the 4 rows row..row+3 of one 4-row group (row % 4 == 0) of a prepacked Q4_0
// (Q5_0) matrix as lanes lane..lane+3 of an int8 panel (levels 0..15 (0..31) into
// q[nb][8][64] at byte 4·lane of each 64, scales into d[nb][16]; the layout of
// matmul_qpack_avx512.cc).
void PackPrepackedQ4_0Rows4(const uint8_t* packed, int64_t nb, int64_t row, int lane,
                            uint8_t* q, float* d);
void PackPrepackedQ5_0Rows4(const uint8_t* packed, int64_t nb, int64_t row, int lane,
                            uint8_t* q, float* d);
void QuantizeActRowQ8GAvx512(const float* x, int64_t cols, int64_t ld, uint8_t* dst);
// Q4_K prepacked by PrepackQ4_KAvx512 (rows % 4 == 0; same byte count as the file's):
// the kernel for every n; consumes ActKind::kQ8KG. Row ranges on multiples of 4.
RowsKernel Avx512Q4KPackedKernel();
void PrepackQ4_KAvx512(const WeightView& w, uint8_t* dst);
void QuantizeActRowQ8KGAvx512(const float* x, int64_t cols, ActQ8K* dst);
KernelChoice Avx2Kernel(DType type);    // matmul_avx2.cc

}  // namespace vlserve::kernels::internal
