// The runner: turns a StepPlan into ONE batched TextModel::Forward over the paged KV
// cache it owns, and hands back one logits row per plan item.
//
// Image spans: prompt positions covered by a Request's ImageSpan are fed as negative ids
// with that span's embedding rows (TextModel's hook), chunk by chunk, so a prefill chunk
// may start or end inside an image.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/scheduler.h"
#include "models/text_model.h"

namespace vlserve::engine {

class Runner {
 public:
  // `pool` (may be null: DefaultThreadPool()) must outlive the runner.
  // `kv_type`: what the KV cache stores (models::KvBuffer).
  Runner(std::shared_ptr<const models::TextModel> model, int64_t num_blocks, DType kv_type,
         ThreadPool* pool);

  // The output's logits span points into the runner and stays valid until the next call.
  StepOutput Execute(const StepPlan& plan);

  const models::KvBuffer& kv() const { return kv_; }

 private:
  // Fills feed_[i] / embeds_[i] for item i (placeholder ids -> -1 + embedding rows).
  void PrepareItem(size_t i, const ScheduledItem& item);

  std::shared_ptr<const models::TextModel> model_;
  models::KvBuffer kv_;
  models::ForwardScratch scratch_;
  ThreadPool* pool_;
  std::vector<float> logits_;                 // [items, vocab]
  std::vector<std::vector<int32_t>> feed_;    // per item: token ids of the chunk
  std::vector<std::vector<float>> embeds_;    // per item: [chunk, embedding_width] or empty
  std::vector<std::vector<int32_t>> rope_;    // per item: [chunk, 4] M-RoPE positions
};

}  // namespace vlserve::engine
