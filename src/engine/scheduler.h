// The scheduler: which requests run in the next step and with how many tokens, and what
// their results mean. Plain data in and out, so it is tested without a model
// (tests/unit/engine/scheduler_test.cc feeds it hand-made logits).
//
// Policy (docs/engine.md):
//  - Order: priority (higher first), then arrival (FIFO). A preempted request keeps its
//    arrival number, so it returns to its old place in the queue.
//  - Budget: at most max_batch_tokens tokens per step. Running requests that decode
//    (1 token each) go first, then running requests in the middle of a prefill, then
//    waiting requests are started, each with a prefill chunk of whatever budget is left
//    (chunked prefill). New requests join between steps (continuous batching).
//  - KV: blocks are allocated per step for exactly the tokens scheduled. When the pool
//    is empty, the lowest-priority running request is preempted (blocks freed, request
//    requeued; its prompt + generated tokens are recomputed when it restarts).
//  - Cancelled and deadline-expired requests are finished at the start of the next
//    Schedule() and their blocks freed.
//  - Prefix reuse (when a PrefixIndex is given): a request that starts (or restarts
//    after preemption) shares the longest indexed run of full blocks of its known tokens,
//    leaving at least the last token to compute (so whole-block hits stop one block
//    short when the prompt ends on a block boundary: that block is recomputed privately).
//    Every block that becomes full and computed — prompt or generated — is registered,
//    so finished requests leave their KV for the next turn (docs/caching.md).
//
// Not thread-safe except through AdmissionQueue: the engine thread owns the scheduler.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "cache/block_pool.h"
#include "cache/prefix_index.h"
#include "engine/admission.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "engine/sampling.h"
#include "engine/stop.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::engine {

struct SchedulerConfig {
  int64_t max_batch_tokens = 512;
  // Vision-tower work one step may do, in tower token-layers (EngineConfig).
  int64_t encoder_budget = 8192;
  int max_running = 64;
  int64_t max_waiting_requests = 64;
  int64_t max_waiting_tokens = 32768;
  int64_t max_context = 2048;  // prompt + generated
};

// One request inside the engine. Owned by the scheduler; the plan points at it.
struct Sequence {
  // constraint_vocab: needed when request.sampling.json_grammar is set (outlives this).
  Sequence(Request request, std::shared_ptr<RequestStream> stream, uint64_t arrival_order,
           const tokenizer::Tokenizer& tokenizer,
           const ConstraintVocab* constraint_vocab = nullptr);

  Request request;                        // prompt_tokens, images, sampling, priority...
  std::shared_ptr<RequestStream> stream;
  uint64_t arrival_order;                 // FIFO tie-break
  TimePoint submit_time;
  std::vector<int32_t> tokens;            // prompt + generated
  int64_t num_prompt = 0;
  int64_t num_computed = 0;               // tokens whose K/V are in `table`
  BlockTable table;
  Sampler sampler;
  tokenizer::StreamingDetokenizer detokenizer;
  StopMatcher stop_matcher;
  bool started = false;                   // scheduled at least once (left the queue)
  bool prefill_done = false;              // the prompt was computed once
  std::optional<TimePoint> first_scheduled, prefill_end, first_token, last_token;
  RequestTimings timings;
  // --- prefix cache ---
  int64_t cached_tokens = 0;              // prompt tokens reused at the first start
  std::vector<ContentSpan> content_spans; // request.images as the index sees them
  std::vector<BlockHash> block_hashes;    // chain of tokens' full blocks, grown lazily
  bool hash_chain_stopped = false;        // an unnamed image span: no more hashes
  int64_t num_registered = 0;             // leading table blocks already offered to the index

  int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - num_prompt; }
  // M-RoPE requests: the RoPE positions [n, 4] of tokens [start, start + n) — the prompt's
  // from the request, generated tokens continuing from request.next_rope_position. A
  // recompute after preemption or a prefix-cache hit therefore sees the same positions.
  bool has_rope_positions() const { return !request.rope_positions.empty(); }
  // The end of the tokens that can run now: the first token at or after num_computed that
  // belongs to an image span whose embeddings are not ready (or tokens.size()).
  int64_t ComputableEnd() const;
  void RopePositions(int64_t start, int64_t n, std::vector<int32_t>* out) const;
  // Tokens still to run through the model before the next sample.
  int64_t num_uncomputed() const { return static_cast<int64_t>(tokens.size()) - num_computed; }
};

// One sequence's share of a step.
struct ScheduledItem {
  Sequence* seq = nullptr;
  int64_t start_pos = 0;   // == seq->num_computed when scheduled
  int64_t num_tokens = 0;  // tokens [start_pos, start_pos + num_tokens) of seq->tokens
  bool sample = false;     // the chunk reaches the end: sample a token from its logits
  bool decode = false;     // one token of a request already generating (not prefill)
};

// Vision work of a step: an image whose encode is (or may be) advanced this step, for the
// request that waits for it. The engine runs them in order until the step's encoder
// budget is spent (an image whose encode completes early takes less).
struct EncodeWork {
  EncodeJob* job = nullptr;
  Sequence* owner = nullptr;
};

struct StepPlan {
  std::vector<ScheduledItem> items;  // decodes first, then prefill chunks
  std::vector<EncodeWork> encode;    // in rank order of the waiting requests
  int64_t encoder_budget = 0;        // tower token-layers (0 = no limit)
  int64_t num_tokens = 0;            // sum of items' num_tokens (<= max_batch_tokens)
  int64_t num_decode = 0;
  int64_t num_preempted = 0;         // preemptions while building this plan
  bool empty() const { return items.empty() && encode.empty(); }
};

// The runner's result: one logits row per plan item, [items.size(), vocab]. Rows of
// items with sample == false are ignored. `status` not ok = the forward pass failed:
// every item of the plan ends with an error event.
struct StepOutput {
  Status status;
  std::span<float> logits;
  int64_t vocab = 0;
};

struct SchedulerCounters {
  int64_t finished = 0, cancelled = 0, deadline = 0, errored = 0, preemptions = 0;
  int64_t prompt_tokens_computed = 0, generated_tokens = 0;
  // Prefix cache: tokens of starting requests looked up / served from the index.
  int64_t prefix_queried_tokens = 0, prefix_hit_tokens = 0;
};

class Scheduler {
 public:
  using Clock = std::function<TimePoint()>;

  // `pool`, `tokenizer`, `admission` and `prefix_index` must outlive the scheduler.
  // `prefix_index` null = no prefix reuse.
  Scheduler(SchedulerConfig config, BlockPool* pool, const tokenizer::Tokenizer* tokenizer,
            AdmissionQueue* admission, PrefixIndex* prefix_index = nullptr);
  ~Scheduler();

  // Drains the admission queue, ends cancelled / expired requests, and plans one step.
  // Allocates the plan's KV blocks (preempting when the pool is empty).
  StepPlan Schedule();
  // Applies the runner's output: advances KV positions, samples, emits events, frees the
  // blocks of finished requests. `plan` must be the last Schedule() result.
  void Update(const StepPlan& plan, const StepOutput& output);
  // Ends every request (cancelled) and frees all blocks: shutdown.
  void AbortAll(FinishReason reason, const Status& error);

  // Requests running, waiting, or still in the admission inbox.
  bool HasWork() const {
    return !running_.empty() || !waiting_.empty() || admission_->waiting_requests() > 0;
  }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  // Waiting requests that had started before (preempted; not counted by admission).
  int64_t num_waiting_restart() const;
  const SchedulerCounters& counters() const { return counters_; }
  const SchedulerConfig& config() const { return config_; }
  // The earliest deadline among unfinished requests (to bound the engine's idle wait).
  std::optional<TimePoint> NextDeadline() const;

  void SetClockForTesting(Clock clock) { clock_ = std::move(clock); }

 private:
  using SeqPtr = std::unique_ptr<Sequence>;

  void AdmitNew();
  void ReapCancelledAndExpired();
  void ScheduleRunning(StepPlan& plan);
  void ScheduleWaiting(StepPlan& plan);
  // Lists the images that running and waiting requests still need, in rank order.
  void PlanEncodes(StepPlan& plan) const;
  // Grows `seq`'s table by `tokens`, preempting lower-ranked running requests (or `seq`
  // itself) while the pool is short. False if `seq` itself was preempted.
  bool AllocateOrPreempt(Sequence* seq, int64_t tokens, StepPlan& plan);
  void Preempt(Sequence* seq, StepPlan& plan);
  // Grows seq->block_hashes to cover min(blocks, full blocks of seq->tokens).
  void EnsureHashes(Sequence* seq, int64_t blocks);
  // Indexed blocks holding the longest prefix of seq's tokens that may be reused
  // (block-aligned, never the last token). No references are taken.
  std::vector<int32_t> MatchPrefix(Sequence* seq);
  // Offers seq's newly full, computed blocks to the index.
  void RegisterFullBlocks(Sequence* seq);
  void HandleSample(Sequence* seq, float* logits, int64_t vocab);
  void Emit(Sequence* seq, Event event);
  // Terminal event + free; removes seq from running_/waiting_ and destroys it.
  void Finish(Sequence* seq, FinishReason reason, std::string text,
              std::vector<int32_t> tokens, std::vector<TokenLogprob> logprobs = {});
  void Fail(Sequence* seq, const Status& error);
  void Remove(Sequence* seq);
  void FillTimings(Sequence* seq, TimePoint end);
  Usage UsageOf(const Sequence* seq) const;
  void SortByRank(std::vector<SeqPtr>& seqs) const;

  SchedulerConfig config_;
  BlockPool* pool_;
  const tokenizer::Tokenizer* tokenizer_;
  AdmissionQueue* admission_;
  PrefixIndex* prefix_;  // may be null
  Clock clock_;
  uint64_t next_arrival_ = 0;
  std::vector<SeqPtr> running_;  // hold KV; kept in rank order
  std::vector<SeqPtr> waiting_;  // rank order; includes preempted requests
  SchedulerCounters counters_;
  std::vector<float> raw_logits_;  // [vocab]: the row before sampling, for logprobs
  // The tokenizer's vocabulary for response_format, built for the first such request.
  std::unique_ptr<const ConstraintVocab> constraint_vocab_;
};

}  // namespace vlserve::engine
