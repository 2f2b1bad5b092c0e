// Internal: the per-ISA tables behind the element-wise / row ops and attention in
// kernels.h. ops.cc and attention.cc pick a table with one switch on
// internal::CurrentIsa(); each table is built in its own file (ops_avx512.cc, ...) from
// the templates in ops-inl.h / attention-inl.h.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace vlserve::kernels::internal {

struct RowOps {
  void (*rms_norm)(const float* x, const float* weight, float eps, int64_t n, float* y);
  void (*layer_norm)(const float* x, const float* weight, const float* bias, float eps,
                     int64_t n, float* y);
  void (*softmax)(float* x, int64_t n);
  void (*silu)(float* x, int64_t n);
  void (*gelu_tanh)(float* x, int64_t n);
  void (*gelu_erf)(float* x, int64_t n);
  void (*quick_gelu)(float* x, int64_t n);
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t n);
  void (*add)(const float* a, const float* b, float* out, int64_t n);
};

const RowOps& RowOpsScalar();  // ops.cc
const RowOps& RowOpsAvx2();    // ops_avx2.cc
const RowOps& RowOpsAvx512();  // ops_avx512.cc

// One unit of attention work: `row_count` consecutive rows of kv head `kv_head`, where
// row r stands for query r / group and head kv_head * group + r % group (the query
// heads sharing that kv head, so one pass over K/V serves all of them).
struct AttentionTile {
  const float* q;  // [n_q, num_heads, head_dim]
  float* out;      // [n_q, num_heads, head_dim]
  const KvView* kv;
  const int32_t* q_positions;  // [n_q] or nullptr (bidirectional)
  int64_t num_heads;
  int64_t num_kv_heads;
  int64_t head_dim;
  int64_t group;  // num_heads / num_kv_heads
  int64_t kv_head;
  int64_t row_begin;
  int64_t row_count;  // <= AttentionKernel::tile_rows
  float scale;
};

struct AttentionKernel {
  int64_t tile_rows;                              // rows per tile (a multiple of lanes)
  int64_t (*scratch_floats)(int64_t head_dim);    // per-thread scratch the tile needs
  void (*run)(const AttentionTile& tile, float* scratch);  // scratch: 64-byte aligned
  // Decode with row_count <= 4 over keys [k_begin, k_end) only (k_begin a multiple of 64):
  // row r's unnormalised output [head_dim], running max and running sum go to
  // part[r * (head_dim + 2) ...]. Attention() combines the key ranges.
  void (*run_keys)(const AttentionTile& tile, int64_t k_begin, int64_t k_end, float* part,
                   float* scratch);
};

const AttentionKernel& AttentionKernelScalar();  // attention.cc
const AttentionKernel& AttentionKernelAvx2();    // attention_avx2.cc
const AttentionKernel& AttentionKernelAvx512();  // attention_avx512.cc

}  // namespace vlserve::kernels::internal
