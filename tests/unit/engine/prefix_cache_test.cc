// Prefix reuse in the engine with the tiny generated test model. The oracle is an engine
// with the prefix cache disabled (every token computed): greedy output with reuse must be
// identical, and cached_tokens must equal the hand-computed block-aligned common prefix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::engine {
namespace {

using testing::Collected;
constexpr int64_t kBlock = 16;

class PrefixCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TestModelFiles files;
    const Status s = testing::WriteAndLoadTestModel("prefix_test", &files);
    ASSERT_TRUE(s.ok()) << s.ToString();
    dir_ = files.dir;
    model_ = files.model;
    tok_ = files.tok;
  }
  static void TearDownTestSuite() {
    model_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Every engine has its own 1-thread pool: two engines may be alive at once.
  static std::unique_ptr<Engine> MakeEngine(bool prefix_cache, int64_t kv_tokens = 0,
                                            int64_t max_batch_tokens = 512) {
    EngineConfig config;
    config.enable_prefix_cache = prefix_cache;
    config.kv_tokens = kv_tokens;
    config.max_batch_tokens = max_batch_tokens;
    config.threads = 1;
    auto engine = Engine::Create(config, model_, tok_);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // Deterministic pseudo-random ordinary token ids (never special tokens).
  static std::vector<int32_t> Ids(int n, uint64_t seed) {
    std::vector<int32_t> v;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    const int32_t lo = 1, hi = 250;  // byte tokens of the test vocabulary
    while (static_cast<int>(v.size()) < n) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const int32_t t = lo + static_cast<int32_t>(x % (hi - lo));
      if (!tok_->IsEndOfGeneration(t) && t != tok_->bos_id()) v.push_back(t);
    }
    return v;
  }

  // Greedy; the end-of-sequence token is biased away so every answer has max_tokens.
  static Request Greedy(std::vector<int32_t> prompt, int max_tokens) {
    Request r;
    r.id = "r";
    r.prompt_tokens = std::move(prompt);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = max_tokens;
    r.sampling.logit_bias[tok_->eos_id()] = -100;
    return r;
  }

  // `n` rows of token embeddings (of the ids `Ids(n, seed)`): realistic magnitudes.
  static std::shared_ptr<const std::vector<float>> Rows(int n, uint64_t seed) {
    const gguf::TensorInfo* embd = model_->file().FindTensor("token_embd.weight");
    EXPECT_NE(embd, nullptr);
    const int64_t hidden = model_->config().hidden;
    auto rows = std::make_shared<std::vector<float>>(n * hidden);
    const std::vector<int32_t> ids = Ids(n, seed);
    for (int i = 0; i < n; ++i) {
      std::memcpy(rows->data() + i * hidden,
                  reinterpret_cast<const float*>(embd->data) + ids[i] * hidden,
                  hidden * sizeof(float));
    }
    return rows;
  }

  // A request with one image span of `rows` at `pos` (placeholders -5).
  static Request WithImage(std::vector<int32_t> prompt, int64_t pos,
                           std::shared_ptr<const std::vector<float>> rows, std::string hash,
                           int max_tokens) {
    const auto n = static_cast<int64_t>(rows->size()) / model_->config().hidden;
    for (int64_t i = pos; i < pos + n; ++i) prompt[i] = -5;
    Request r = Greedy(std::move(prompt), max_tokens);
    r.images.push_back(ImageSpan{pos, n, 0, std::move(hash), std::move(rows)});
    return r;
  }

  static Collected Run(Engine& engine, Request r) {
    return testing::RunToEnd(engine, std::move(r));
  }

  static int64_t Cached(const Collected& c) {
    return c.ended ? c.terminal()->usage.cached_tokens : -1;
  }

  // Expected hit: the common prefix with what an earlier request computed, cut to whole
  // blocks and to at most prompt_len - 1 tokens.
  static int64_t ExpectedHit(int64_t common, int64_t prompt_len) {
    return std::min(common, prompt_len - 1) / kBlock * kBlock;
  }

  static EngineStats SettledStats(Engine& engine, int64_t finished) {
    EngineStats s = engine.Stats();
    for (int k = 0; k < 400 && s.requests_finished < finished; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      s = engine.Stats();
    }
    return s;
  }

  static inline std::string dir_;
  static inline std::shared_ptr<const models::TextModel> model_;
  static inline std::shared_ptr<const tokenizer::Tokenizer> tok_;
};

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(PrefixCacheTest, SharedSystemPromptDifferentQuestions) {
  auto cold = MakeEngine(false), warm = MakeEngine(true);
  ASSERT_TRUE(cold && warm);
  const std::vector<int32_t> system = Ids(37, 1);
  int64_t expected_hits = 0, prompt_total = 0;
  for (int q = 0; q < 4; ++q) {
    std::vector<int32_t> question = Ids(9 + 5 * q, 100 + q);
    question[0] = 260 + q;  // each question starts with its own token: common prefix = 37
    const std::vector<int32_t> prompt = Concat(system, question);
    const Collected ref = Run(*cold, Greedy(prompt, 6));
    const Collected got = Run(*warm, Greedy(prompt, 6));
    EXPECT_EQ(got.tokens, ref.tokens) << "question " << q;
    const int64_t n = static_cast<int64_t>(prompt.size());
    const int64_t hit = q == 0 ? 0 : ExpectedHit(37, n);  // = 32
    EXPECT_EQ(Cached(got), hit) << "question " << q;
    EXPECT_EQ(got.terminal()->timings.prefill_tokens, n - hit);
    EXPECT_EQ(Cached(ref), 0);
    EXPECT_EQ(ref.terminal()->timings.prefill_tokens, n);
    expected_hits += hit;
    prompt_total += n;
  }
  const EngineStats s = SettledStats(*warm, 4);
  EXPECT_EQ(s.prefix_cache_hit_tokens, expected_hits);
  EXPECT_EQ(s.prefix_cache_queried_tokens, prompt_total);
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_GT(s.kv_blocks_cached, 0);
  EXPECT_EQ(s.prompt_tokens_computed, prompt_total - expected_hits);
  const EngineStats off = SettledStats(*cold, 4);
  EXPECT_EQ(off.prefix_cache_hit_tokens, 0);
  EXPECT_EQ(off.prefix_cache_queried_tokens, 0);
  EXPECT_EQ(off.kv_blocks_cached, 0);
}

TEST_F(PrefixCacheTest, WholePromptHitLeavesTheLastBlockToCompute) {
  auto cold = MakeEngine(false), warm = MakeEngine(true);
  ASSERT_TRUE(cold && warm);
  for (int n : {48, 50, 16, 17}) {
    const std::vector<int32_t> prompt = Ids(n, 7 + n);
    const Collected ref = Run(*cold, Greedy(prompt, 5));
    const Collected first = Run(*warm, Greedy(prompt, 5));
    const Collected again = Run(*warm, Greedy(prompt, 5));
    EXPECT_EQ(first.tokens, ref.tokens);
    EXPECT_EQ(again.tokens, ref.tokens);
    EXPECT_EQ(Cached(first), 0);
    // 48 -> 32 (the last full block is recomputed), 50 -> 48, 16 -> 0, 17 -> 16.
    EXPECT_EQ(Cached(again), ExpectedHit(n, n)) << "prompt of " << n;
    EXPECT_EQ(again.terminal()->timings.prefill_tokens, n - ExpectedHit(n, n));
  }
}

TEST_F(PrefixCacheTest, MultiTurnReusesThePreviousTurn) {
  auto cold = MakeEngine(false), warm = MakeEngine(true);
  ASSERT_TRUE(cold && warm);
  const std::vector<int32_t> turn1 = Ids(45, 3);
  const Collected ref1 = Run(*cold, Greedy(turn1, 12));
  const Collected got1 = Run(*warm, Greedy(turn1, 12));
  ASSERT_EQ(got1.tokens, ref1.tokens);
  ASSERT_EQ(got1.tokens.size(), 12u);
  const std::vector<int32_t> turn2 = Concat(Concat(turn1, got1.tokens), Ids(7, 4));
  const Collected ref2 = Run(*cold, Greedy(turn2, 8));
  const Collected got2 = Run(*warm, Greedy(turn2, 8));
  EXPECT_EQ(got2.tokens, ref2.tokens);
  // Turn 1 computed its prompt and all answer tokens but the last (never fed back).
  const int64_t computed1 = 45 + 12 - 1;
  EXPECT_EQ(Cached(got2), ExpectedHit(computed1, turn2.size()));  // = 48
  EXPECT_GE(Cached(got2), 45 / kBlock * kBlock);  // at least turn 1's full prompt blocks
  // Turn 3 builds on turn 2 the same way.
  const std::vector<int32_t> turn3 = Concat(Concat(turn2, got2.tokens), Ids(3, 5));
  const Collected ref3 = Run(*cold, Greedy(turn3, 4));
  const Collected got3 = Run(*warm, Greedy(turn3, 4));
  EXPECT_EQ(got3.tokens, ref3.tokens);
  EXPECT_EQ(Cached(got3), ExpectedHit(turn2.size() + 8 - 1, turn3.size()));
}

TEST_F(PrefixCacheTest, DifferentImagesOfEqualSizeAreNotConfused) {
  auto cold = MakeEngine(false), warm = MakeEngine(true);
  ASSERT_TRUE(cold && warm);
  const std::vector<int32_t> prompt = Ids(60, 11);  // text [0,20), image [20,44), text
  const auto x = Rows(24, 21), y = Rows(24, 22);
  const Request a = WithImage(prompt, 20, x, "sha-of-image-x", 8);
  const Request b = WithImage(prompt, 20, y, "sha-of-image-y", 8);
  const Collected ref_a = Run(*cold, a), ref_b = Run(*cold, b);
  // The test only has power if the two images lead to different answers.
  ASSERT_NE(ref_a.tokens, ref_b.tokens);
  const Collected got_a = Run(*warm, a);
  const Collected got_b = Run(*warm, b);
  const Collected got_a2 = Run(*warm, a);
  const Collected got_b2 = Run(*warm, b);
  EXPECT_EQ(got_a.tokens, ref_a.tokens);
  EXPECT_EQ(got_b.tokens, ref_b.tokens);
  EXPECT_EQ(got_a2.tokens, ref_a.tokens);
  EXPECT_EQ(got_b2.tokens, ref_b.tokens);
  EXPECT_EQ(Cached(got_a), 0);
  EXPECT_EQ(Cached(got_b), 16);  // block 0 is text only; block 1 holds the image
  EXPECT_EQ(Cached(got_a2), ExpectedHit(60, 60));  // same image: 48, image blocks included
  EXPECT_EQ(Cached(got_b2), ExpectedHit(60, 60));
}

TEST_F(PrefixCacheTest, PrefixDivergingInsideAnImageSpan) {
  auto cold = MakeEngine(false), warm = MakeEngine(true);
  ASSERT_TRUE(cold && warm);
  const std::vector<int32_t> prompt = Ids(90, 12);  // image [20, 60)
  const auto x = Rows(40, 31);
  // y: the same first 20 rows as x, different after (a different image).
  auto y_rows = std::make_shared<std::vector<float>>(*Rows(40, 32));
  const int64_t hidden = model_->config().hidden;
  std::copy(x->begin(), x->begin() + 20 * hidden, y_rows->begin());
  const Request a = WithImage(prompt, 20, x, "image-x", 6);
  const Request b = WithImage(prompt, 20, y_rows, "image-y", 6);
  // c: the same image as a, but the text after it diverges at position 70.
  Request c = a;
  c.prompt_tokens[70] = 270;
  const Collected ref_a = Run(*cold, a), ref_b = Run(*cold, b), ref_c = Run(*cold, c);
  EXPECT_EQ(Run(*warm, a).tokens, ref_a.tokens);
  const Collected got_b = Run(*warm, b);
  const Collected got_c = Run(*warm, c);
  EXPECT_EQ(got_b.tokens, ref_b.tokens);
  EXPECT_EQ(got_c.tokens, ref_c.tokens);
  // The image's identity is its content hash: b matches only the text-only block 0.
  EXPECT_EQ(Cached(got_b), 16);
  // c shares the text and the whole image: blocks up to the divergence at 70.
  EXPECT_EQ(Cached(got_c), 64);
}

TEST_F(PrefixCacheTest, EvictionAndPreemptionUnderMemoryPressure) {
  // 12 blocks of KV; prompts up to 70 tokens + 10 generated (6 blocks): several requests
  // share a system prompt, run concurrently (preemption), and evict each other's cache.
  const std::vector<int32_t> system = Ids(40, 41);
  std::vector<Request> requests;
  for (int i = 0; i < 8; ++i) {
    std::vector<int32_t> q = Ids(5 + 3 * i, 50 + i);
    q[0] = 260 + i;
    // Odd requests have a private prompt (no common prefix): they churn the cache.
    requests.push_back(Greedy(i % 2 ? Ids(40 + 3 * i, 70 + i) : Concat(system, q), 10));
  }
  std::vector<std::vector<int32_t>> expected;
  {
    auto cold = MakeEngine(false);
    ASSERT_TRUE(cold);
    for (const Request& r : requests) expected.push_back(Run(*cold, r).tokens);
  }
  auto warm = MakeEngine(true, /*kv_tokens=*/12 * kBlock, /*max_batch_tokens=*/48);
  ASSERT_TRUE(warm);
  for (int round = 0; round < 2; ++round) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const Request& r : requests) {
      auto s = warm->Submit(r);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      streams.push_back(*s);
    }
    for (size_t i = 0; i < streams.size(); ++i) {
      Collected got;
      const auto give_up = SteadyClock::now() + std::chrono::seconds(50);
      while (!got.ended && SteadyClock::now() < give_up) {
        Event e;
        if (!streams[i]->WaitNext(&e, std::chrono::milliseconds(100))) continue;
        got.tokens.insert(got.tokens.end(), e.tokens.begin(), e.tokens.end());
        got.ended = e.kind != Event::Kind::kDelta;
        if (got.ended) {
          EXPECT_EQ(e.kind, Event::Kind::kFinished) << e.error.ToString();
        }
      }
      EXPECT_EQ(got.tokens, expected[i]) << "round " << round << " request " << i;
    }
  }
  const EngineStats s = SettledStats(*warm, 16);
  EXPECT_GT(s.preemptions, 0);
  EXPECT_GT(s.prefix_cache_evictions, 0);
  EXPECT_GT(s.prefix_cache_hit_tokens, 0);
  EXPECT_EQ(s.kv_blocks_used, 0);
  // Sequentially, in a pool that holds one request: still exact.
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(Run(*warm, requests[i]).tokens, expected[i]) << "sequential " << i;
  }
}

}  // namespace
}  // namespace vlserve::engine
