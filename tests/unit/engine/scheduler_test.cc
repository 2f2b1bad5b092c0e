// Scheduler tests without a model: the "runner" is a function that writes one-hot logits,
// so every expected token, text and block count is known in advance.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <numeric>

#include "engine/admission.h"
#include "engine_test_util.h"

namespace vlserve::engine {
namespace {

using testing::Collected;
using testing::Drain;

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = testing::TestTokenizer();
    ASSERT_NE(tok_, nullptr);
    vocab_ = tok_->vocab_size();
    letter_a_ = SingleToken("a");
  }

  void Init(SchedulerConfig config, int32_t num_blocks, int64_t max_waiting_requests = 64,
            int64_t max_waiting_tokens = 1 << 20, bool prefix_cache = false) {
    pool_ = std::make_unique<BlockPool>(num_blocks, 16);
    if (prefix_cache) index_ = std::make_unique<PrefixIndex>(pool_.get());
    admission_ = std::make_unique<AdmissionQueue>(max_waiting_requests, max_waiting_tokens);
    sched_ = std::make_unique<Scheduler>(config, pool_.get(), tok_.get(), admission_.get(),
                                         index_.get());
    sched_->SetClockForTesting([this] { return now_; });
    admission_->SetClockForTesting([this] { return now_; });
  }

  int32_t SingleToken(const std::string& text) {
    std::vector<int32_t> ids = tok_->Encode(text);
    EXPECT_EQ(ids.size(), 1u) << text;
    return ids.empty() ? 0 : ids[0];
  }

  // Submits a greedy request with `prompt_len` tokens; returns its stream.
  std::shared_ptr<RequestStream> Submit(const std::string& id, int64_t prompt_len,
                                        int max_tokens = 100, int priority = 0) {
    Request r;
    r.id = id;
    r.prompt_tokens.assign(prompt_len, letter_a_);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = max_tokens;
    r.priority = priority;
    return SubmitRequest(std::move(r));
  }

  std::shared_ptr<RequestStream> SubmitRequest(Request r) {
    auto stream = std::make_shared<RequestStream>(r.id);
    Status s = admission_->Push(std::move(r), stream);
    EXPECT_TRUE(s.ok()) << s.ToString();
    streams_[stream->id()] = stream;
    return stream;
  }

  // Runs the fake model: every sampling item gets one-hot logits at `choose(seq)`
  // (default: the letter 'b').
  void RunFake(const StepPlan& plan, std::function<int32_t(const Sequence&)> choose = nullptr) {
    logits_.assign(plan.items.size() * vocab_, 0.0f);
    for (size_t i = 0; i < plan.items.size(); ++i) {
      const int32_t t = choose ? choose(*plan.items[i].seq) : SingleToken("b");
      logits_[i * vocab_ + t] = 10.0f;
    }
    StepOutput out;
    out.logits = logits_;
    out.vocab = vocab_;
    sched_->Update(plan, out);
  }

  // Steps until no work is left (at most `max_steps`); returns the number of steps.
  int RunToEnd(int max_steps, std::function<int32_t(const Sequence&)> choose = nullptr) {
    int steps = 0;
    while (sched_->HasWork() && steps < max_steps) {
      StepPlan plan = sched_->Schedule();
      EXPECT_LE(plan.num_tokens, sched_->config().max_batch_tokens);
      RunFake(plan, choose);
      ++steps;
    }
    return steps;
  }

  Collected Collect(const std::string& id) {
    Collected c;
    Drain(*streams_.at(id), &c);
    return c;
  }

  std::shared_ptr<const tokenizer::Tokenizer> tok_;
  int64_t vocab_ = 0;
  int32_t letter_a_ = 0;
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<PrefixIndex> index_;  // destroyed after sched_, before pool_
  std::unique_ptr<AdmissionQueue> admission_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<float> logits_;
  std::map<std::string, std::shared_ptr<RequestStream>> streams_;
  TimePoint now_ = SteadyClock::now();
};

SchedulerConfig Config(int64_t budget, int max_running = 64) {
  SchedulerConfig c;
  c.max_batch_tokens = budget;
  c.max_running = max_running;
  c.max_context = 4096;
  return c;
}

TEST_F(SchedulerTest, BudgetRespectedAndDecodesFirst) {
  Init(Config(32), 64);
  Submit("A", 20);
  Submit("B", 20);
  Submit("C", 20);
  StepPlan p1 = sched_->Schedule();
  ASSERT_EQ(p1.items.size(), 2u);
  EXPECT_EQ(p1.items[0].seq->request.id, "A");
  EXPECT_EQ(p1.items[0].num_tokens, 20);
  EXPECT_TRUE(p1.items[0].sample);
  EXPECT_EQ(p1.items[1].seq->request.id, "B");
  EXPECT_EQ(p1.items[1].num_tokens, 12);  // chunk: what is left of the budget
  EXPECT_FALSE(p1.items[1].sample);
  EXPECT_EQ(p1.num_tokens, 32);
  RunFake(p1);

  StepPlan p2 = sched_->Schedule();
  ASSERT_EQ(p2.items.size(), 3u);
  EXPECT_EQ(p2.items[0].seq->request.id, "A");  // the decode comes first
  EXPECT_TRUE(p2.items[0].decode);
  EXPECT_EQ(p2.items[0].num_tokens, 1);
  EXPECT_EQ(p2.items[1].seq->request.id, "B");  // then the running prefill
  EXPECT_EQ(p2.items[1].start_pos, 12);
  EXPECT_EQ(p2.items[1].num_tokens, 8);
  EXPECT_TRUE(p2.items[1].sample);
  EXPECT_EQ(p2.items[2].seq->request.id, "C");  // then a new request with the rest
  EXPECT_EQ(p2.items[2].num_tokens, 20);
  EXPECT_EQ(p2.num_tokens, 29);
  EXPECT_EQ(p2.num_decode, 1);
}

TEST_F(SchedulerTest, LongPromptIsChunkedAcrossSteps) {
  Init(Config(32), 64);
  Submit("A", 100, /*max_tokens=*/2);
  std::vector<int64_t> starts, sizes;
  std::vector<bool> samples;
  while (sched_->HasWork()) {
    StepPlan p = sched_->Schedule();
    ASSERT_EQ(p.items.size(), 1u);
    starts.push_back(p.items[0].start_pos);
    sizes.push_back(p.items[0].num_tokens);
    samples.push_back(p.items[0].sample);
    // Blocks cover exactly what has been scheduled so far.
    EXPECT_EQ(p.items[0].seq->table.num_tokens, p.items[0].start_pos + p.items[0].num_tokens);
    EXPECT_EQ(pool_->num_used(), (p.items[0].start_pos + p.items[0].num_tokens + 15) / 16);
    RunFake(p);
  }
  EXPECT_EQ(starts, (std::vector<int64_t>{0, 32, 64, 96, 100}));
  EXPECT_EQ(sizes, (std::vector<int64_t>{32, 32, 32, 4, 1}));
  EXPECT_EQ(samples, (std::vector<bool>{false, false, false, true, true}));
  Collected c = Collect("A");
  ASSERT_TRUE(c.ended);
  EXPECT_EQ(c.terminal()->finish_reason, FinishReason::kLength);
  EXPECT_EQ(c.text, "bb");
  EXPECT_EQ(c.terminal()->usage.prompt_tokens, 100);
  EXPECT_EQ(c.terminal()->usage.completion_tokens, 2);
  EXPECT_EQ(pool_->num_used(), 0);
}

TEST_F(SchedulerTest, NewRequestsJoinRunningBatch) {
  Init(Config(64), 64);
  Submit("A", 5);
  RunFake(sched_->Schedule());
  RunFake(sched_->Schedule());  // A decodes
  Submit("B", 7);
  StepPlan p = sched_->Schedule();
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[0].seq->request.id, "A");
  EXPECT_TRUE(p.items[0].decode);
  EXPECT_EQ(p.items[0].start_pos, 6);
  EXPECT_EQ(p.items[1].seq->request.id, "B");
  EXPECT_EQ(p.items[1].num_tokens, 7);
  EXPECT_TRUE(p.items[1].sample);
}

TEST_F(SchedulerTest, HigherPriorityFirstThenFifo) {
  Init(Config(64, /*max_running=*/1), 64);
  Submit("low1", 4, 1, 0);
  Submit("low2", 4, 1, 0);
  Submit("high", 4, 1, 5);
  std::vector<std::string> order;
  while (sched_->HasWork()) {
    StepPlan p = sched_->Schedule();
    ASSERT_EQ(p.items.size(), 1u);
    order.push_back(p.items[0].seq->request.id);
    RunFake(p);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"high", "low1", "low2"}));
}

TEST_F(SchedulerTest, PreemptsLowestPriorityWhenBlocksRunOut) {
  // 4 blocks = 64 tokens. A (priority 1) and B (priority 0) each start with 2 blocks;
  // at 32 tokens each needs a third block and B, the lower one, must give way.
  Init(Config(128), 4);
  Submit("A", 30, /*max_tokens=*/10, /*priority=*/1);
  Submit("B", 30, /*max_tokens=*/10, /*priority=*/0);
  // Sequence-specific outputs: A always says 'x', B always says 'y'.
  const int32_t x = SingleToken("x"), y = SingleToken("y");
  auto choose = [&](const Sequence& s) { return s.request.id == "A" ? x : y; };
  int64_t preempted = 0;
  int steps = 0;
  while (sched_->HasWork() && steps < 100) {
    StepPlan p = sched_->Schedule();
    preempted += p.num_preempted;
    EXPECT_LE(pool_->num_used(), 4);
    RunFake(p, choose);
    ++steps;
  }
  EXPECT_GE(preempted, 1);
  Collected a = Collect("A"), b = Collect("B");
  ASSERT_TRUE(a.ended && b.ended);
  EXPECT_EQ(a.text, std::string(10, 'x'));
  EXPECT_EQ(b.text, std::string(10, 'y'));  // B completes after recompute, nothing lost
  EXPECT_EQ(b.tokens.size(), 10u);
  EXPECT_EQ(a.terminal()->timings.preemptions, 0);
  EXPECT_GE(b.terminal()->timings.preemptions, 1);
  EXPECT_EQ(b.terminal()->usage.completion_tokens, 10);
  EXPECT_EQ(sched_->counters().preemptions, preempted);
  EXPECT_EQ(pool_->num_used(), 0);
}

TEST_F(SchedulerTest, CancelFreesBlocksWithinOneStep) {
  Init(Config(64), 64);
  auto a = Submit("A", 40);
  auto b = Submit("B", 10);
  RunFake(sched_->Schedule());
  RunFake(sched_->Schedule());
  const int32_t used_before = pool_->num_used();
  EXPECT_EQ(used_before, 3 + 1);  // 42 tokens -> 3 blocks, 12 tokens -> 1 block
  a->Cancel();
  StepPlan p = sched_->Schedule();
  EXPECT_EQ(pool_->num_used(), 1);  // A's blocks freed before anything else happens
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].seq->request.id, "B");
  Collected c = Collect("A");
  ASSERT_TRUE(c.ended);
  EXPECT_EQ(c.terminal()->kind, Event::Kind::kFinished);
  EXPECT_EQ(c.terminal()->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(sched_->counters().cancelled, 1);
}

TEST_F(SchedulerTest, DeadlinesExpireWhileWaitingAndRunning) {
  Init(Config(64, /*max_running=*/1), 64);
  Request r1;
  r1.id = "running";
  r1.prompt_tokens.assign(8, letter_a_);
  r1.sampling.temperature = 0;
  r1.deadline = now_ + std::chrono::milliseconds(50);
  SubmitRequest(std::move(r1));
  Request r2 = {};
  r2.id = "waiting";
  r2.prompt_tokens.assign(8, letter_a_);
  r2.sampling.temperature = 0;
  r2.deadline = now_ + std::chrono::milliseconds(20);
  SubmitRequest(std::move(r2));
  RunFake(sched_->Schedule());  // "running" starts; "waiting" waits (max_running = 1)
  RunFake(sched_->Schedule());
  now_ += std::chrono::milliseconds(30);
  StepPlan p = sched_->Schedule();
  Collected w = Collect("waiting");
  ASSERT_TRUE(w.ended);
  EXPECT_EQ(w.terminal()->finish_reason, FinishReason::kDeadline);
  EXPECT_EQ(w.terminal()->usage.completion_tokens, 0);
  EXPECT_DOUBLE_EQ(w.terminal()->timings.queue_ms, 30.0);
  RunFake(p);
  now_ += std::chrono::milliseconds(30);
  sched_->Schedule();
  Collected r = Collect("running");
  ASSERT_TRUE(r.ended);
  EXPECT_EQ(r.terminal()->finish_reason, FinishReason::kDeadline);
  EXPECT_EQ(r.text, "bbb");  // what was generated before the deadline is delivered
  EXPECT_EQ(pool_->num_used(), 0);
  EXPECT_EQ(sched_->counters().deadline, 2);
}

TEST_F(SchedulerTest, AdmissionLimitsByRequestsAndTokens) {
  Init(Config(64), 64, /*max_waiting_requests=*/2, /*max_waiting_tokens=*/100);
  auto push = [&](int64_t n) {
    Request r;
    r.prompt_tokens.assign(n, letter_a_);
    return admission_->Push(std::move(r), std::make_shared<RequestStream>("x"));
  };
  EXPECT_TRUE(push(10).ok());
  EXPECT_TRUE(push(10).ok());
  Status full = push(10);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_EQ(admission_->waiting_requests(), 2);
  sched_->Schedule();  // both start: the queue empties
  EXPECT_EQ(admission_->waiting_requests(), 0);
  EXPECT_EQ(admission_->waiting_tokens(), 0);
  EXPECT_TRUE(push(60).ok());
  Status tokens_full = push(50);  // 60 + 50 > 100
  EXPECT_EQ(tokens_full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(tokens_full.message().find("max_waiting_tokens"), std::string::npos);
  EXPECT_TRUE(push(40).ok());
}

TEST_F(SchedulerTest, OversizedPromptAdmittedIntoEmptyQueue) {
  Init(Config(64), 64, 4, /*max_waiting_tokens=*/100);
  Request r;
  r.prompt_tokens.assign(300, letter_a_);
  EXPECT_TRUE(admission_->Push(std::move(r), std::make_shared<RequestStream>("big")).ok());
}

TEST_F(SchedulerTest, StopStringAcrossTokensIsRemoved) {
  Init(Config(64), 64);
  Request r;
  r.id = "A";
  r.prompt_tokens.assign(3, letter_a_);
  r.sampling.temperature = 0;
  r.sampling.stop = {"cd"};
  SubmitRequest(std::move(r));
  const std::string script = "abcdef";
  size_t next = 0;
  RunToEnd(20, [&](const Sequence&) { return SingleToken(std::string(1, script[next++])); });
  Collected c = Collect("A");
  ASSERT_TRUE(c.ended);
  EXPECT_EQ(c.text, "ab");
  EXPECT_EQ(c.terminal()->finish_reason, FinishReason::kStop);
  EXPECT_EQ(c.tokens.size(), 4u);  // a b c d: generation stopped at the match
  EXPECT_EQ(c.terminal()->usage.completion_tokens, 4);
}

TEST_F(SchedulerTest, EndOfGenerationTokenStops) {
  Init(Config(64), 64);
  Submit("A", 3, 50);
  int n = 0;
  const int32_t eos = tok_->eos_id();
  ASSERT_TRUE(tok_->IsEndOfGeneration(eos));
  RunToEnd(20, [&](const Sequence&) { return ++n == 3 ? eos : SingleToken("z"); });
  Collected c = Collect("A");
  ASSERT_TRUE(c.ended);
  EXPECT_EQ(c.text, "zz");
  EXPECT_EQ(c.terminal()->finish_reason, FinishReason::kStop);
  EXPECT_EQ(c.terminal()->usage.completion_tokens, 3);
  EXPECT_EQ(c.tokens.back(), eos);
}

TEST_F(SchedulerTest, RunnerErrorEndsPlanRequestsWithError) {
  Init(Config(64), 64);
  Submit("A", 3);
  StepPlan p = sched_->Schedule();
  StepOutput out;
  out.status = InternalError("boom");
  sched_->Update(p, out);
  Collected c = Collect("A");
  ASSERT_TRUE(c.ended);
  EXPECT_EQ(c.terminal()->kind, Event::Kind::kError);
  EXPECT_EQ(c.terminal()->error.message(), "boom");
  EXPECT_FALSE(sched_->HasWork());
  EXPECT_EQ(pool_->num_used(), 0);
}

TEST_F(SchedulerTest, TimingsFromInjectedClock) {
  Init(Config(64), 64);
  Submit("A", 3, /*max_tokens=*/3);
  now_ += std::chrono::milliseconds(5);  // queue
  StepPlan p = sched_->Schedule();
  now_ += std::chrono::milliseconds(7);  // prefill
  RunFake(p);
  for (int i = 0; i < 2; ++i) {
    StepPlan d = sched_->Schedule();
    now_ += std::chrono::milliseconds(10);
    RunFake(d);
  }
  Collected c = Collect("A");
  ASSERT_TRUE(c.ended);
  const RequestTimings& t = c.terminal()->timings;
  EXPECT_DOUBLE_EQ(t.queue_ms, 5.0);
  EXPECT_DOUBLE_EQ(t.prefill_ms, 7.0);
  EXPECT_EQ(t.prefill_tokens, 3);
  EXPECT_DOUBLE_EQ(t.ttft_ms, 12.0);
  EXPECT_DOUBLE_EQ(t.decode_ms, 20.0);
  EXPECT_EQ(t.decode_tokens, 2);
  EXPECT_DOUBLE_EQ(t.decode_tokens_per_s, 100.0);
}

TEST_F(SchedulerTest, SharedPrefixBlocksRefcountsAndPreemption) {
  // 5 blocks. A (40 tokens) finishes and leaves 2 full prompt blocks + 1 block of prompt
  // and answer in the index. B and C (the same 40-token prompt) then share the first two
  // blocks (refcount 2) and each computes its last 8 prompt tokens in a private block.
  Init(Config(128), 5, 64, 1 << 20, /*prefix_cache=*/true);
  Submit("A", 40, /*max_tokens=*/3);
  RunToEnd(20);
  ASSERT_TRUE(Collect("A").ended);
  EXPECT_EQ(pool_->num_used(), 0);
  EXPECT_EQ(pool_->EvictableCount(), 2);  // A computed 42 tokens: 2 full blocks
  EXPECT_EQ(index_->size(), 2);

  Submit("B", 40, /*max_tokens=*/12);
  Submit("C", 40, /*max_tokens=*/12);
  StepPlan p = sched_->Schedule();
  ASSERT_EQ(p.items.size(), 2u);
  for (const ScheduledItem& item : p.items) {
    EXPECT_EQ(item.start_pos, 32);  // 2 blocks reused
    EXPECT_EQ(item.num_tokens, 8);
  }
  const int32_t shared0 = p.items[0].seq->table.blocks[0];
  EXPECT_EQ(p.items[1].seq->table.blocks[0], shared0);
  EXPECT_NE(p.items[0].seq->table.blocks[2], p.items[1].seq->table.blocks[2]);
  EXPECT_EQ(pool_->RefCount(shared0), 2);
  EXPECT_EQ(pool_->num_used(), 4);
  RunFake(p);
  // Decoding: at 48 tokens each needs a 4th block; only one is left, so C (the later
  // arrival) is preempted: its private blocks go, the shared ones stay with B.
  int64_t preempted = 0;
  for (int step = 0; step < 100 && sched_->HasWork(); ++step) {
    StepPlan q = sched_->Schedule();
    preempted += q.num_preempted;
    if (q.num_preempted > 0) {
      EXPECT_GE(pool_->RefCount(shared0), 1);  // B still holds the shared prefix
    }
    EXPECT_LE(pool_->num_used(), 5);
    RunFake(q);
  }
  EXPECT_GE(preempted, 1);
  Collected b = Collect("B"), c = Collect("C");
  ASSERT_TRUE(b.ended && c.ended);
  EXPECT_EQ(b.text, std::string(12, 'b'));
  EXPECT_EQ(c.text, std::string(12, 'b'));
  EXPECT_EQ(b.terminal()->usage.cached_tokens, 32);
  EXPECT_EQ(c.terminal()->usage.cached_tokens, 32);  // counted at the first start
  EXPECT_EQ(c.terminal()->timings.prefill_tokens, 8);
  EXPECT_GE(c.terminal()->timings.preemptions, 1);
  EXPECT_EQ(pool_->num_used(), 0);
  EXPECT_GE(sched_->counters().prefix_hit_tokens, 64);  // B and C (and C's restart)
}

}  // namespace
}  // namespace vlserve::engine
