// Attention driver (kernels.h): splits the work into tiles of rows that share a kv head,
// hands tiles to threads, and runs the tile kernel of the active ISA (attention-inl.h).
#include <algorithm>
#include <atomic>
#include <cmath>
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

// Runs fn(item, scratch) for items [0, count), claimed by the pool's threads from one
// counter (items differ in cost); scratch is each thread's kernel scratch.
template <class Fn>
void ForEachItem(const internal::AttentionKernel& kernel, int64_t head_dim, int64_t count,
                 ThreadPool& pool, const Fn& fn) {
  std::atomic<int64_t> next{0};
  auto work = [&](int, int) {
    thread_local AlignedBuffer<float> scratch;
    scratch.Resize(kernel.scratch_floats(head_dim));
    for (int64_t item = next.fetch_add(1); item < count; item = next.fetch_add(1)) {
      fn(item, scratch.data());
    }
  };
  if (count == 1 || pool.num_threads() == 1) {
    work(0, 1);
  } else {
    pool.Run(work);
  }
}

// Decode rows (<= 4 per kv head) over a long history: the keys are split into chunks of
// this many positions, each chunk a work item with partial results that are combined in
// chunk order afterwards (flash-decoding). Without it a decode step has only
// num_kv_heads items (3 for SmolLM-135M) for the threads to share, and a long context is
// mostly one thread's work. The split depends only on the shapes, never on the thread
// count, so results stay thread-independent.
// Measured (bench -d 1200 -n 32, smolvlm-256m Q8_0, 2 threads): see docs/kernels.md.
constexpr int64_t kSplitKeys = 256;  // a multiple of attnimpl::kKeyBlock

bool UseSplitKeys(int64_t n_q, int64_t group, int64_t length) {
  return n_q * group <= 4 && length >= 2 * kSplitKeys;
}

void SplitKeyAttention(const internal::AttentionKernel& kernel, internal::AttentionTile base,
                       int64_t rows, float* out, ThreadPool& pool) {
  const KvView& kv = *base.kv;
  const int64_t hd = base.head_dim, chunks = (kv.length + kSplitKeys - 1) / kSplitKeys;
  const int64_t per_part = rows * (hd + 2);
  const int64_t num_items = base.num_kv_heads * chunks;
  thread_local AlignedBuffer<float> parts_buf;  // the caller's; workers use the pointer
  parts_buf.Resize(num_items * per_part);
  float* const parts = parts_buf.data();
  // Items are claimed chunk-major (every kv head of chunk 0, then of chunk 1, ...): the
  // heads of one position share its K/V rows' pages and neighbouring cache lines, which
  // the hardware prefetchers fetch together. Each item's arithmetic and the combination
  // order below do not depend on the claim order.
  ForEachItem(kernel, hd, num_items, pool, [&](int64_t item, float* scratch) {
    internal::AttentionTile t = base;
    t.kv_head = item % base.num_kv_heads;
    const int64_t c = item / base.num_kv_heads;
    kernel.run_keys(t, c * kSplitKeys, std::min(kv.length, (c + 1) * kSplitKeys),
                    parts + (t.kv_head * chunks + c) * per_part, scratch);
  });
  // out = Σ_c e^(m_c - m) o_c / Σ_c e^(m_c - m) l_c with m = max_c m_c, in chunk order.
  for (int64_t kvh = 0; kvh < base.num_kv_heads; ++kvh) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* first = parts + (kvh * chunks) * per_part + r * (hd + 2);
      float m = -__builtin_inff();
      for (int64_t c = 0; c < chunks; ++c) m = std::max(m, first[c * per_part + hd]);
      const int64_t i = r / base.group, h = kvh * base.group + r % base.group;
      float* orow = out + (i * base.num_heads + h) * hd;
      for (int64_t d = 0; d < hd; ++d) orow[d] = 0.0f;
      float l = 0.0f;
      for (int64_t c = 0; c < chunks; ++c) {
        const float* pc = first + c * per_part;
        if (pc[hd] == -__builtin_inff()) continue;  // every key of the chunk masked
        const float w = std::exp(pc[hd] - m);
        for (int64_t d = 0; d < hd; ++d) orow[d] += w * pc[d];
        l += w * pc[hd + 1];
      }
      const float inv = 1.0f / l;
      for (int64_t d = 0; d < hd; ++d) orow[d] *= inv;
    }
  }
}

}  // namespace

void Attention(const float* q, int64_t n_q, int64_t num_heads, int64_t num_kv_heads,
               int64_t head_dim, const KvView& kv, const int32_t* q_positions, float scale,
               float* out, ThreadPool* pool) {
  CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0)
      << "num_heads " << num_heads << ", num_kv_heads " << num_kv_heads;
  CHECK(kv.block_size > 0 && kv.length > 0) << "empty kv";
  CHECK(IsKvType(kv.type)) << "kv type " << Info(kv.type).name;
  if (n_q <= 0) return;
  for (int64_t i = 0; q_positions != nullptr && i < n_q; ++i) {
    CHECK(q_positions[i] >= 0 && q_positions[i] < kv.length)
        << "query " << i << " at position " << q_positions[i] << ", kv length " << kv.length;
  }
  const internal::AttentionKernel& kernel = Kernel();
  const int64_t group = num_heads / num_kv_heads;
  ThreadPool& p = pool != nullptr ? *pool : DefaultThreadPool();
  // What every tile shares; each item sets kv_head and its rows.
  internal::AttentionTile base{};
  base.q = q;
  base.out = out;
  base.kv = &kv;
  base.q_positions = q_positions;
  base.num_heads = num_heads;
  base.num_kv_heads = num_kv_heads;
  base.head_dim = head_dim;
  base.group = group;
  base.scale = scale;
  if (UseSplitKeys(n_q, group, kv.length)) {
    base.row_begin = 0;
    base.row_count = n_q * group;
    return SplitKeyAttention(kernel, base, n_q * group, out, p);
  }
  const int64_t tiles_per_head = (n_q * group + kernel.tile_rows - 1) / kernel.tile_rows;
  const int64_t num_items = num_kv_heads * tiles_per_head;

  // Items are claimed dynamically (causal prefill tiles differ in cost); each item's
  // arithmetic is fixed, so results do not depend on which thread ran it.
  ForEachItem(kernel, head_dim, num_items, p, [&](int64_t item, float* scratch) {
    internal::AttentionTile t = base;
    t.kv_head = item / tiles_per_head;
    t.row_begin = (item % tiles_per_head) * kernel.tile_rows;
    const int64_t rows_left = n_q * group - t.row_begin;
    t.row_count = rows_left < kernel.tile_rows ? rows_left : kernel.tile_rows;
    kernel.run(t, scratch);
  });
}

}  // namespace vlserve::kernels
