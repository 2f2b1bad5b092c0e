// Packed GEMM for float weights (F32, F16, BF16) at prefill / vision-encoder sizes.
// Internal to src/kernels: MatMul (matmul.cc) routes here when n >= kGemmMinTokens.
//
// y[n, rows] = x[n, cols] · Wᵀ is computed as a classic blocked GEMM (Goto/BLIS style):
//  1. pack (once per call, in parallel): W into panels of kGemmNr = 32 rows stored
//     k-major ([cols][32] floats, F16/BF16 widened exactly; or [cols/2][32][2] bf16 pairs
//     for the vdpbf16ps path), and x into blocks of kGemmMr = 14 tokens, k-major
//     ([cols][14]), so the microkernel reads both with unit stride and constant offsets;
//  2. compute tiles of (kGemmMc tokens × kGemmNc rows) on the pool; inside a tile, k is
//     blocked by kc (a 14×kc activation sliver stays in L1 across the tile's panels, the
//     kc×kGemmNc weight block stays in L2 across its tokens), and the 14×32 register
//     microkernel does broadcast(x) × 2 zmm of W → 28 zmm accumulators.
// Each y element is one FMA chain over k in increasing order (kc blocks continue the
// chain by reloading y), computed by exactly one thread: results are bit-identical for
// any thread count and any tile schedule.
#pragma once

#include <cstdint>

#include "base/thread_pool.h"
#include "kernels/kernels.h"

namespace vlserve::kernels::internal {

// Below this many tokens the dot-product kernels (matmul_avx512.cc) are used: packing W
// costs about one pass over it, which only pays when each weight is reused many times.
// F32/F16 (measured on a quiet machine, 2 threads, bench-kernels -n: at n = 64 the two
// are equal within noise (~130 GFLOP/s), from n = 128 the GEMM wins: 128: 140 vs 115,
// 256: 156 vs 124, 512: 178 vs 115 GFLOP/s averaged over the 135M/1.7B shapes):
constexpr int64_t kGemmMinTokens = 96;
// BF16 with vdpbf16ps: the dot-product kernel needs no packing and is as fast up to
// n ≈ 128; the GEMM is ~20% faster at n = 1024 (vision towers).
constexpr int64_t kGemmMinTokensBf16 = 256;
// The threshold for `type`, or VLSERVE_GEMM_MIN_TOKENS when set (read once; for A/B
// measurements: a huge value keeps every float MatMul on the dot-product kernels).
int64_t GemmMinTokens(DType type);

// True when GemmFloat handles this weight type on this ISA.
bool GemmSupports(DType type, Isa isa);

// y[n, w.rows] = x[n, w.cols] · Wᵀ. BF16 weights use vdpbf16ps (activations rounded to
// bf16) when the CPU has AVX512_BF16, like the dot-product kernel.
void GemmFloat(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool);

// Defined in gemm_avx512.cc.
void GemmFloatAvx512(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool);

// The general form, with row strides for the weights, x and y.
// y[t * ldy + r] = Σ_c x[t * ldx + c] · W(r, c) for t < n, r < rows, c < cols.
enum class GemmLayout {
  kF32,                // W(r, c) = float at w + r * w_ld bytes, element c
  kF16,                // half at row r (w_ld bytes per row), widened exactly
  kBf16Wide,           // bf16 row-major, widened exactly (no AVX512_BF16)
  kBf16Pairs,          // bf16 row-major, vdpbf16ps (x rounded to bf16)
};
struct GemmSpec {
  GemmLayout layout;
  const void* w;
  int64_t w_ld;  // bytes per weight row
  int64_t rows, cols;
  const float* x;
  int64_t ldx, n;
  float* y;
  int64_t ldy;
};
bool GemmUsesBf16(GemmLayout layout);  // vdpbf16ps layouts (need HasAvx512Bf16())
// pool == nullptr runs on the calling thread.
void RunGemmAvx512(const GemmSpec& spec, ThreadPool* pool);

}  // namespace vlserve::kernels::internal
