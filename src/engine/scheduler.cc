#include "engine/scheduler.h"

#include <algorithm>
#include <array>
#include <utility>

#include "base/check.h"

namespace vlserve::engine {
namespace {

double Ms(TimePoint from, TimePoint to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Strict weak order: higher priority first, then earlier arrival.
bool RanksBefore(const Sequence& a, const Sequence& b) {
  if (a.request.priority != b.request.priority) return a.request.priority > b.request.priority;
  return a.arrival_order < b.arrival_order;
}

}  // namespace

Sequence::Sequence(Request req, std::shared_ptr<RequestStream> s, uint64_t order,
                   const tokenizer::Tokenizer& tokenizer,
                   const ConstraintVocab* constraint_vocab)
    : request(std::move(req)),
      stream(std::move(s)),
      arrival_order(order),
      sampler(request.sampling, constraint_vocab),
      detokenizer(tokenizer),
      stop_matcher(request.sampling.stop) {
  tokens = request.prompt_tokens;
  num_prompt = static_cast<int64_t>(tokens.size());
  timings = request.timings;
  sampler.AcceptPrompt(tokens);
  // Views into request.images: the Sequence never moves (owned by unique_ptr).
  for (const ImageSpan& s : request.images) {
    content_spans.push_back(ContentSpan{s.position, s.num_tokens, s.content_hash});
  }
}

void Sequence::RopePositions(int64_t start, int64_t n, std::vector<int32_t>* out) const {
  out->resize(4 * n);
  const std::vector<int32_t>& prompt = request.rope_positions;
  const int64_t delta = request.next_rope_position - num_prompt;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = start + i;
    if (t < num_prompt) {
      std::copy_n(prompt.data() + 4 * t, 4, out->data() + 4 * i);
    } else {
      const auto p = static_cast<int32_t>(t + delta);
      std::copy_n(std::array<int32_t, 4>{p, p, p, 0}.data(), 4, out->data() + 4 * i);
    }
  }
}

Scheduler::Scheduler(SchedulerConfig config, BlockPool* pool,
                     const tokenizer::Tokenizer* tokenizer, AdmissionQueue* admission,
                     PrefixIndex* prefix_index)
    : config_(config),
      pool_(pool),
      tokenizer_(tokenizer),
      admission_(admission),
      prefix_(prefix_index),
      clock_([] { return SteadyClock::now(); }) {
  CHECK(pool_ != nullptr && tokenizer_ != nullptr && admission_ != nullptr);
  CHECK_GT(config_.max_batch_tokens, 0);
  CHECK_GT(config_.max_running, 0);
}

Scheduler::~Scheduler() {
  for (auto& s : running_) pool_->Release(s->table);
}

void Scheduler::SortByRank(std::vector<SeqPtr>& seqs) const {
  std::stable_sort(seqs.begin(), seqs.end(),
                   [](const SeqPtr& a, const SeqPtr& b) { return RanksBefore(*a, *b); });
}

int64_t Scheduler::num_waiting_restart() const {
  return std::count_if(waiting_.begin(), waiting_.end(),
                       [](const SeqPtr& s) { return s->started; });
}

std::optional<TimePoint> Scheduler::NextDeadline() const {
  std::optional<TimePoint> next;
  for (const auto* list : {&running_, &waiting_}) {
    for (const SeqPtr& s : *list) {
      if (s->request.deadline && (!next || *s->request.deadline < *next)) {
        next = s->request.deadline;
      }
    }
  }
  return next;
}

void Scheduler::AdmitNew() {
  std::vector<AdmissionQueue::Entry> entries = admission_->Drain();
  if (entries.empty()) return;
  for (AdmissionQueue::Entry& e : entries) {
    const ConstraintVocab* vocab = nullptr;
    if (e.request.sampling.json_grammar != nullptr) {
      if (constraint_vocab_ == nullptr) {
        constraint_vocab_ = ConstraintVocab::FromTokenizer(*tokenizer_);
      }
      vocab = constraint_vocab_.get();
    }
    auto seq = std::make_unique<Sequence>(std::move(e.request), std::move(e.stream),
                                          next_arrival_++, *tokenizer_, vocab);
    seq->submit_time = e.submit_time;
    waiting_.push_back(std::move(seq));
  }
  SortByRank(waiting_);
}

void Scheduler::ReapCancelledAndExpired() {
  const TimePoint now = clock_();
  std::vector<Sequence*> cancelled, expired;
  for (const auto* list : {&running_, &waiting_}) {
    for (const SeqPtr& s : *list) {
      if (s->stream->cancelled()) {
        cancelled.push_back(s.get());
      } else if (s->request.deadline && now >= *s->request.deadline) {
        expired.push_back(s.get());
      }
    }
  }
  for (Sequence* s : cancelled) Finish(s, FinishReason::kCancelled, "", {});
  for (Sequence* s : expired) {
    // Text held back for a possible stop string is real output: release it.
    std::string text = s->stop_matcher.Feed(s->detokenizer.Flush()).text;
    if (!s->stop_matcher.stopped()) text += s->stop_matcher.Flush();
    Finish(s, FinishReason::kDeadline, std::move(text), {});
  }
}

StepPlan Scheduler::Schedule() {
  AdmitNew();
  ReapCancelledAndExpired();
  StepPlan plan;
  ScheduleRunning(plan);
  ScheduleWaiting(plan);
  PlanEncodes(plan);
  return plan;
}

namespace {

bool Ready(const ImageSpan& span) {
  return span.embeddings != nullptr || span.encode == nullptr ||
         span.encode->embeddings != nullptr;
}

}  // namespace

int64_t Sequence::ComputableEnd() const {
  for (const ImageSpan& span : request.images) {
    if (span.position + span.num_tokens <= num_computed || Ready(span)) continue;
    return std::max(span.position, num_computed);
  }
  return static_cast<int64_t>(tokens.size());
}

void Scheduler::PlanEncodes(StepPlan& plan) const {
  plan.encoder_budget = config_.encoder_budget;
  for (const std::vector<SeqPtr>* list : {&running_, &waiting_}) {
    for (const SeqPtr& seq : *list) {
      for (const ImageSpan& span : seq->request.images) {
        if (span.position + span.num_tokens <= seq->num_computed || Ready(span)) continue;
        const bool listed = std::any_of(plan.encode.begin(), plan.encode.end(),
                                        [&](const EncodeWork& w) { return w.job == span.encode.get(); });
        if (!listed) plan.encode.push_back(EncodeWork{span.encode.get(), seq.get()});
      }
    }
  }
}

void Scheduler::ScheduleRunning(StepPlan& plan) {
  // Pass 0: decodes (exactly one uncomputed token); pass 1: unfinished prefills.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < running_.size(); ++i) {
      Sequence* seq = running_[i].get();
      const bool is_decode = seq->num_uncomputed() == 1 && seq->prefill_done;
      if (is_decode != (pass == 0)) continue;
      const int64_t budget = config_.max_batch_tokens - plan.num_tokens;
      if (budget <= 0) return;
      // A prefill stops before an image whose encode is not finished (scheduled encoding).
      const int64_t n = std::min(
          {seq->num_uncomputed(), budget, seq->ComputableEnd() - seq->num_computed});
      if (n == 0) continue;
      const int64_t start = seq->num_computed;
      if (!AllocateOrPreempt(seq, n, plan)) break;  // seq and all below it were preempted
      plan.items.push_back(ScheduledItem{seq, start, n, n == seq->num_uncomputed(), is_decode});
      plan.num_tokens += n;
      if (is_decode) ++plan.num_decode;
    }
  }
}

void Scheduler::ScheduleWaiting(StepPlan& plan) {
  const int64_t bs = pool_->block_size();
  while (!waiting_.empty() && static_cast<int>(running_.size()) < config_.max_running) {
    const int64_t budget = config_.max_batch_tokens - plan.num_tokens;
    if (budget <= 0) return;
    Sequence* seq = waiting_.front().get();
    CHECK_EQ(seq->num_computed, 0);
    CHECK(seq->table.blocks.empty());
    const std::vector<int32_t> shared = MatchPrefix(seq);
    const int64_t cached = static_cast<int64_t>(shared.size()) * bs;
    seq->num_computed = cached;  // for ComputableEnd; undone below if the start waits
    // May be 0 (the first uncached token is in an image still being encoded): the request
    // starts with its KV blocks and runs once the encode is done.
    const int64_t n = std::min(
        {seq->num_uncomputed(), budget, seq->ComputableEnd() - cached});
    seq->num_computed = 0;
    // Reviving a refcount-0 cached block takes it out of the allocatable count.
    const int64_t revived = std::count_if(shared.begin(), shared.end(),
                                          [&](int32_t b) { return pool_->RefCount(b) == 0; });
    const int64_t fresh = (cached + n + bs - 1) / bs - static_cast<int64_t>(shared.size());
    // Head of line: a request that does not fit blocks the ones behind it, so a large
    // high-priority request is not starved by a stream of small ones. No preemption for
    // admission: running requests keep their KV.
    if (!pool_->CanAllocate(fresh + revived)) return;
    for (int32_t b : shared) pool_->IncRef(b);
    seq->table.blocks = shared;
    seq->table.num_tokens = cached;
    seq->num_computed = cached;
    seq->num_registered = static_cast<int64_t>(shared.size());
    CHECK(pool_->Grow(seq->table, n).ok());
    if (prefix_ != nullptr) {
      counters_.prefix_queried_tokens += static_cast<int64_t>(seq->tokens.size());
      counters_.prefix_hit_tokens += cached;
    }
    if (!seq->started) {
      seq->started = true;
      seq->first_scheduled = clock_();
      seq->cached_tokens = cached;
      admission_->Started(seq->num_prompt);
    }
    SeqPtr owned = std::move(waiting_.front());
    waiting_.erase(waiting_.begin());
    auto pos = std::upper_bound(running_.begin(), running_.end(), owned,
                                [](const SeqPtr& a, const SeqPtr& b) {
                                  return RanksBefore(*a, *b);
                                });
    running_.insert(pos, std::move(owned));
    if (n == 0) continue;
    plan.items.push_back(ScheduledItem{seq, seq->num_computed, n, n == seq->num_uncomputed()});
    plan.num_tokens += n;
  }
}

void Scheduler::EnsureHashes(Sequence* seq, int64_t blocks) {
  if (seq->hash_chain_stopped || static_cast<int64_t>(seq->block_hashes.size()) >= blocks) {
    return;
  }
  if (!ExtendBlockHashes(seq->tokens, seq->content_spans, pool_->block_size(), blocks,
                         &seq->block_hashes, seq->request.cache_salt)) {
    seq->hash_chain_stopped = true;
  }
}

std::vector<int32_t> Scheduler::MatchPrefix(Sequence* seq) {
  if (prefix_ == nullptr) return {};
  // At least one token must run through the model to give the logits of the next sample,
  // and a reused block must be full: so at most floor((tokens - 1) / block_size) blocks.
  const int64_t max_blocks =
      (static_cast<int64_t>(seq->tokens.size()) - 1) / pool_->block_size();
  EnsureHashes(seq, max_blocks);
  const size_t usable =
      std::min(seq->block_hashes.size(), static_cast<size_t>(std::max<int64_t>(0, max_blocks)));
  return prefix_->Match(std::span<const BlockHash>(seq->block_hashes.data(), usable));
}

void Scheduler::RegisterFullBlocks(Sequence* seq) {
  if (prefix_ == nullptr) return;
  const int64_t full = seq->num_computed / pool_->block_size();
  if (full <= seq->num_registered) return;
  EnsureHashes(seq, full);
  const int64_t hashed = std::min<int64_t>(full, static_cast<int64_t>(seq->block_hashes.size()));
  for (int64_t j = seq->num_registered; j < hashed; ++j) {
    prefix_->Insert(seq->block_hashes[j], seq->table.blocks[j]);
  }
  seq->num_registered = full;
}

bool Scheduler::AllocateOrPreempt(Sequence* seq, int64_t tokens, StepPlan& plan) {
  while (!pool_->CanAllocate(seq->table.BlocksNeeded(tokens))) {
    CHECK(!running_.empty());
    Sequence* victim = running_.back().get();  // lowest rank
    Preempt(victim, plan);
    ++plan.num_preempted;
    if (victim == seq) return false;
  }
  CHECK(pool_->Grow(seq->table, tokens).ok());
  return true;
}

void Scheduler::Preempt(Sequence* seq, StepPlan& plan) {
  // Unschedule it if an earlier pass of this plan already gave it tokens.
  for (auto it = plan.items.begin(); it != plan.items.end(); ++it) {
    if (it->seq != seq) continue;
    plan.num_tokens -= it->num_tokens;
    if (it->decode) --plan.num_decode;
    plan.items.erase(it);
    break;
  }
  pool_->Release(seq->table);  // shared blocks stay with their other users / in the LRU
  seq->num_computed = 0;
  seq->num_registered = 0;
  ++seq->timings.preemptions;
  ++counters_.preemptions;
  auto it = std::find_if(running_.begin(), running_.end(),
                         [&](const SeqPtr& p) { return p.get() == seq; });
  CHECK(it != running_.end());
  SeqPtr owned = std::move(*it);
  running_.erase(it);
  auto pos = std::upper_bound(waiting_.begin(), waiting_.end(), owned,
                              [](const SeqPtr& a, const SeqPtr& b) {
                                return RanksBefore(*a, *b);
                              });
  waiting_.insert(pos, std::move(owned));
}

void Scheduler::Update(const StepPlan& plan, const StepOutput& output) {
  if (!output.status.ok()) {
    for (const ScheduledItem& item : plan.items) Fail(item.seq, output.status);
    return;
  }
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const ScheduledItem& item = plan.items[i];
    Sequence* seq = item.seq;
    CHECK_EQ(seq->num_computed, item.start_pos);
    seq->num_computed += item.num_tokens;
    if (!item.decode) counters_.prompt_tokens_computed += item.num_tokens;
    RegisterFullBlocks(seq);  // before a finish below releases the blocks
    if (item.sample) {
      CHECK_EQ(seq->num_uncomputed(), 0);
      CHECK_LE(static_cast<int64_t>((i + 1) * output.vocab),
               static_cast<int64_t>(output.logits.size()));
      HandleSample(seq, output.logits.data() + i * output.vocab, output.vocab);
    }
  }
}

void Scheduler::HandleSample(Sequence* seq, float* logits, int64_t vocab) {
  const TimePoint now = clock_();
  // Log probabilities are of the raw row: Sample() adds bias and penalties in place.
  const int32_t want_logprobs = seq->request.logprobs;
  if (want_logprobs >= 0) raw_logits_.assign(logits, logits + vocab);
  const int32_t token = seq->sampler.Sample(logits, vocab);
  std::vector<TokenLogprob> logprobs;
  if (want_logprobs >= 0) {
    logprobs.push_back(ComputeTokenLogprob(raw_logits_.data(), vocab, token, want_logprobs));
  }
  seq->tokens.push_back(token);
  ++counters_.generated_tokens;
  if (!seq->prefill_done) {
    seq->prefill_done = true;
    seq->prefill_end = now;
  }
  if (!seq->first_token) seq->first_token = now;
  seq->last_token = now;

  const SamplingParams& params = seq->request.sampling;
  const bool stop_token = tokenizer_->IsEndOfGeneration(token) || IsStopToken(params, token);
  std::string text;
  if (!stop_token) {
    StopMatcher::Result r = seq->stop_matcher.Feed(seq->detokenizer.Push(token));
    if (r.stopped) {
      Finish(seq, FinishReason::kStop, std::move(r.text), {token}, std::move(logprobs));
      return;
    }
    text = std::move(r.text);
  }
  const int64_t total = static_cast<int64_t>(seq->tokens.size());
  const int64_t kv_capacity = static_cast<int64_t>(pool_->num_blocks()) * pool_->block_size();
  const bool length = (params.max_tokens >= 0 && seq->num_generated() >= params.max_tokens) ||
                      total >= config_.max_context || total >= kv_capacity;
  // response_format: the JSON value is complete and nothing may follow it.
  const bool value_done = seq->sampler.output_complete();
  if (stop_token || length || value_done) {
    StopMatcher::Result r = seq->stop_matcher.Feed(seq->detokenizer.Flush());
    text += r.text;
    if (!r.stopped) text += seq->stop_matcher.Flush();
    const FinishReason reason =
        (stop_token || value_done || r.stopped) ? FinishReason::kStop : FinishReason::kLength;
    Finish(seq, reason, std::move(text), {token}, std::move(logprobs));
    return;
  }
  Event event;
  event.kind = Event::Kind::kDelta;
  event.text = std::move(text);
  event.tokens = {token};
  event.logprobs = std::move(logprobs);
  Emit(seq, std::move(event));
}

Usage Scheduler::UsageOf(const Sequence* seq) const {
  Usage u;
  u.prompt_tokens = seq->num_prompt;
  u.completion_tokens = seq->num_generated();
  u.cached_tokens = seq->cached_tokens;
  return u;
}

void Scheduler::Emit(Sequence* seq, Event event) {
  event.usage = UsageOf(seq);
  seq->stream->Push(std::move(event));
}

void Scheduler::FillTimings(Sequence* seq, TimePoint end) {
  RequestTimings& t = seq->timings;
  const TimePoint arrival = seq->request.arrival.value_or(seq->submit_time);
  if (seq->first_scheduled) {
    t.queue_ms = Ms(seq->submit_time, *seq->first_scheduled);
    if (seq->prefill_end) {
      // Encoding ran inside the prefill steps; the waterfall shows it as its own stage.
      t.prefill_ms = std::max(0.0, Ms(*seq->first_scheduled, *seq->prefill_end) -
                                       std::max(0.0, t.encode_ms));
      t.prefill_tokens = seq->num_prompt - seq->cached_tokens;
    }
  } else {
    t.queue_ms = Ms(seq->submit_time, end);
  }
  if (seq->first_token) {
    t.ttft_ms = Ms(arrival, *seq->first_token);
    t.decode_ms = Ms(*seq->first_token, *seq->last_token);
    t.decode_tokens = std::max<int64_t>(0, seq->num_generated() - 1);
    if (t.decode_ms > 0) t.decode_tokens_per_s = t.decode_tokens * 1000.0 / t.decode_ms;
  }
  t.e2e_ms = Ms(arrival, end);
}

void Scheduler::Finish(Sequence* seq, FinishReason reason, std::string text,
                       std::vector<int32_t> tokens, std::vector<TokenLogprob> logprobs) {
  FillTimings(seq, clock_());
  Event event;
  event.kind = Event::Kind::kFinished;
  event.text = std::move(text);
  event.tokens = std::move(tokens);
  event.logprobs = std::move(logprobs);
  event.finish_reason = reason;
  event.timings = seq->timings;
  Emit(seq, std::move(event));
  ++counters_.finished;
  if (reason == FinishReason::kCancelled) ++counters_.cancelled;
  if (reason == FinishReason::kDeadline) ++counters_.deadline;
  Remove(seq);
}

void Scheduler::Fail(Sequence* seq, const Status& error) {
  FillTimings(seq, clock_());
  Event event;
  event.kind = Event::Kind::kError;
  event.error = error;
  event.timings = seq->timings;
  Emit(seq, std::move(event));
  ++counters_.finished;
  ++counters_.errored;
  Remove(seq);
}

void Scheduler::Remove(Sequence* seq) {
  pool_->Release(seq->table);
  if (!seq->started) admission_->Started(seq->num_prompt);
  for (auto* list : {&running_, &waiting_}) {
    auto it = std::find_if(list->begin(), list->end(),
                           [&](const SeqPtr& p) { return p.get() == seq; });
    if (it != list->end()) {
      list->erase(it);  // destroys seq
      return;
    }
  }
  CHECK(false) << "sequence not found";
}

void Scheduler::AbortAll(FinishReason reason, const Status& error) {
  AdmitNew();
  std::vector<Sequence*> all;
  for (auto* list : {&running_, &waiting_}) {
    for (const SeqPtr& s : *list) all.push_back(s.get());
  }
  for (Sequence* s : all) {
    if (error.ok()) {
      Finish(s, reason, "", {});
    } else {
      Fail(s, error);
    }
  }
}

}  // namespace vlserve::engine
