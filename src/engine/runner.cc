#include "engine/runner.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/check.h"

namespace vlserve::engine {

Runner::Runner(std::shared_ptr<const models::TextModel> model, int64_t num_blocks,
               DType kv_type, ThreadPool* pool)
    : model_(std::move(model)), kv_(model_->config(), num_blocks, kv_type), pool_(pool) {}

void Runner::PrepareItem(size_t i, const ScheduledItem& item) {
  const Sequence& seq = *item.seq;
  const int64_t begin = item.start_pos, end = item.start_pos + item.num_tokens;
  feed_[i].assign(seq.tokens.begin() + begin, seq.tokens.begin() + end);
  embeds_[i].clear();
  // Floats per embedding row: hidden, or (1 + n) x hidden with n deepstack layers.
  const int64_t hidden = model_->config().embedding_width();
  for (const ImageSpan& span : seq.request.images) {
    const int64_t lo = std::max(begin, span.position);
    const int64_t hi = std::min(end, span.position + span.num_tokens);
    if (lo >= hi) continue;
    // Submit checked the row range; the engine ran the encode job before this step.
    const std::vector<float>* rows =
        span.embeddings != nullptr ? span.embeddings.get() : span.encode->embeddings.get();
    CHECK(rows != nullptr);
    if (embeds_[i].empty()) embeds_[i].assign(item.num_tokens * hidden, 0.0f);
    for (int64_t p = lo; p < hi; ++p) {
      feed_[i][p - begin] = -1;
      std::memcpy(embeds_[i].data() + (p - begin) * hidden,
                  rows->data() + (span.first_row + p - span.position) * hidden,
                  hidden * sizeof(float));
    }
  }
}

StepOutput Runner::Execute(const StepPlan& plan) {
  StepOutput out;
  const int64_t vocab = model_->config().vocab;
  out.vocab = vocab;
  if (plan.items.empty()) return out;
  const size_t n = plan.items.size();
  feed_.resize(std::max(feed_.size(), n));
  embeds_.resize(std::max(embeds_.size(), n));
  rope_.resize(std::max(rope_.size(), n));
  std::vector<models::BatchItem> batch(n);
  for (size_t i = 0; i < n; ++i) {
    const ScheduledItem& item = plan.items[i];
    PrepareItem(i, item);
    models::BatchItem& b = batch[i];
    b.block_table = item.seq->table.blocks.data();
    b.num_blocks = static_cast<int64_t>(item.seq->table.blocks.size());
    b.start_pos = item.start_pos;
    b.tokens = feed_[i];
    b.embeddings = embeds_[i].empty() ? nullptr : embeds_[i].data();
    if (item.seq->has_rope_positions()) {
      item.seq->RopePositions(item.start_pos, item.num_tokens, &rope_[i]);
      b.rope_positions = rope_[i].data();
    }
    b.logits_for_all = false;
  }
  logits_.resize(n * vocab);
  out.status = model_->Forward(batch, kv_, scratch_, logits_.data(),
                               pool_ != nullptr ? pool_ : &DefaultThreadPool());
  out.logits = std::span<float>(logits_.data(), logits_.size());
  return out;
}

}  // namespace vlserve::engine
