// Attention driver (kernels.h): splits the work into tiles of rows that share a kv head,
// hands tiles to threads, and runs the tile kernel of the active ISA (attention-inl.h).
#include <atomic>
#include <cstdint>

#include "base/aligned.h"
#include "base/check.h"
#include "kernels/attention-inl.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/ops_isa.h"
#include "kernels/simd_scalar.h"

namespace vlserve::kernels {
namespace internal {

const AttentionKernel& AttentionKernelScalar() {
  static constexpr AttentionKernel kKernel = attnimpl::MakeAttentionKernel<simd::Scalar, 8>();
  return kKernel;
}

}  // namespace internal

namespace {

const internal::AttentionKernel& Kernel() {
  switch (internal::CurrentIsa()) {
    case Isa::kAvx512: return internal::AttentionKernelAvx512();
    case Isa::kAvx2: return internal::AttentionKernelAvx2();
    default: return internal::AttentionKernelScalar();
  }
}

}  // namespace

void Attention(const float* q, int64_t n_q, int64_t num_heads, int64_t num_kv_heads,
               int64_t head_dim, const KvView& kv, const int32_t* q_positions, float scale,
               float* out, ThreadPool* pool) {
  CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0)
      << "num_heads " << num_heads << ", num_kv_heads " << num_kv_heads;
  CHECK(kv.block_size > 0 && kv.length > 0) << "empty kv";
  if (n_q <= 0) return;
  for (int64_t i = 0; q_positions != nullptr && i < n_q; ++i) {
    CHECK(q_positions[i] >= 0 && q_positions[i] < kv.length)
        << "query " << i << " at position " << q_positions[i] << ", kv length " << kv.length;
  }
  const internal::AttentionKernel& kernel = Kernel();
  const int64_t group = num_heads / num_kv_heads;
  const int64_t tiles_per_head = (n_q * group + kernel.tile_rows - 1) / kernel.tile_rows;
  const int64_t num_items = num_kv_heads * tiles_per_head;

  // Items are claimed dynamically (causal prefill tiles differ in cost); each item's
  // arithmetic is fixed, so results do not depend on which thread ran it.
  std::atomic<int64_t> next{0};
  auto work = [&](int, int) {
    thread_local AlignedBuffer<float> scratch;
    scratch.Resize(kernel.scratch_floats(head_dim));
    for (int64_t item = next.fetch_add(1); item < num_items; item = next.fetch_add(1)) {
      internal::AttentionTile t;
      t.q = q;
      t.out = out;
      t.kv = &kv;
      t.q_positions = q_positions;
      t.num_heads = num_heads;
      t.num_kv_heads = num_kv_heads;
      t.head_dim = head_dim;
      t.group = group;
      t.kv_head = item / tiles_per_head;
      t.row_begin = (item % tiles_per_head) * kernel.tile_rows;
      const int64_t rows_left = n_q * group - t.row_begin;
      t.row_count = rows_left < kernel.tile_rows ? rows_left : kernel.tile_rows;
      t.scale = scale;
      kernel.run(t, scratch.data());
    }
  };
  ThreadPool& p = pool != nullptr ? *pool : DefaultThreadPool();
  if (num_items == 1 || p.num_threads() == 1) {
    work(0, 1);
  } else {
    p.Run(work);
  }
}

}  // namespace vlserve::kernels
