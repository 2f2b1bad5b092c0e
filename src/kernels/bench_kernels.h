// `vlserve bench-kernels`: measured machine limits (memory read bandwidth, F32 FMA and
// GEMM peak) and per-weight-type MatMul throughput at small-model shapes.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "kernels/types.h"

namespace vlserve::kernels {

struct BenchKernelsOptions {
  int threads = 2;
  bool json = false;
  std::vector<DType> types;  // empty: every supported weight type
  int64_t matmul_tokens = 64;  // n for the GEMM (prefill-like) measurement
  int64_t stream_bytes = int64_t{1} << 30;  // memory bandwidth buffer
  int64_t matvec_bytes = int64_t{256} << 20;  // weights cycled through per matvec shape
  double seconds = 0.25;  // minimum time per measurement
};

// This machine's limits, measured on `threads` threads (a private pool):
//   mem_read_gbps: AVX-512 loads streaming a `stream_bytes` buffer (best of runs);
//   fma_gflops:    12 independent zmm FMA chains per thread (0 without AVX-512);
//   f32_gemm_gflops: F32 MatMul (packed GEMM) 1536x1536 weights x 1536 tokens, best of runs.
// Each takes max(seconds, a few repetitions); `vlserve bench` reports model throughput as
// a fraction of these, measured in the same run.
struct MachineLimits {
  double mem_read_gbps = 0, fma_gflops = 0, f32_gemm_gflops = 0;
};
MachineLimits MeasureMachineLimits(int threads, double seconds = 0.25,
                                   int64_t stream_bytes = int64_t{1} << 30);

// Runs the benchmark and returns the report (a table, or JSON with options.json).
StatusOr<std::string> BenchKernels(const BenchKernelsOptions& options);

}  // namespace vlserve::kernels
