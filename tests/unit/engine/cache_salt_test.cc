// Request::cache_salt in the engine with the tiny generated test model: the prefix cache
// reuses blocks only between requests of equal salts, and the salt never changes an answer
// (the oracle is an engine with the prefix cache off).
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/engine.h"
#include "engine_test_util.h"

namespace vlserve::engine {
namespace {

using testing::Collected;

class CacheSaltEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TestModelFiles files;
    const Status s = testing::WriteAndLoadTestModel("cache_salt_test", &files);
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

  static std::unique_ptr<Engine> MakeEngine(bool prefix_cache) {
    EngineConfig config;
    config.enable_prefix_cache = prefix_cache;
    config.threads = 1;
    auto engine = Engine::Create(config, model_, tok_);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // Greedy, end-of-sequence biased away; byte tokens 100..149 of the test vocabulary.
  static Request Greedy(std::string salt) {
    Request r;
    r.id = "salted";
    for (int i = 0; i < 50; ++i) r.prompt_tokens.push_back(100 + i);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = 4;
    r.sampling.logit_bias[tok_->eos_id()] = -100;
    r.cache_salt = std::move(salt);
    return r;
  }

  static int64_t Cached(const Collected& c) {
    return c.ended ? c.terminal()->usage.cached_tokens : -1;
  }

  static inline std::string dir_;
  static inline std::shared_ptr<const models::TextModel> model_;
  static inline std::shared_ptr<const tokenizer::Tokenizer> tok_;
};

TEST_F(CacheSaltEngineTest, BlocksAreSharedOnlyWithinASalt) {
  auto cold = MakeEngine(false), warm = MakeEngine(true);
  ASSERT_TRUE(cold && warm);
  const Collected ref = testing::RunToEnd(*cold, Greedy(""));
  ASSERT_TRUE(ref.ended);
  // 50 prompt tokens: a hit reuses the 3 full blocks (48 tokens).
  const Collected a1 = testing::RunToEnd(*warm, Greedy("tenant-a"));
  const Collected b1 = testing::RunToEnd(*warm, Greedy("tenant-b"));
  const Collected none = testing::RunToEnd(*warm, Greedy(""));
  const Collected a2 = testing::RunToEnd(*warm, Greedy("tenant-a"));
  const Collected b2 = testing::RunToEnd(*warm, Greedy("tenant-b"));
  const Collected none2 = testing::RunToEnd(*warm, Greedy(""));
  EXPECT_EQ(Cached(a1), 0);
  EXPECT_EQ(Cached(b1), 0) << "another salt's blocks were reused";
  EXPECT_EQ(Cached(none), 0) << "a salted request's blocks were reused without a salt";
  EXPECT_EQ(Cached(a2), 48);
  EXPECT_EQ(Cached(b2), 48);
  EXPECT_EQ(Cached(none2), 48);
  EXPECT_EQ(b1.terminal()->timings.prefill_tokens, 50);
  EXPECT_EQ(a2.terminal()->timings.prefill_tokens, 2);
  for (const Collected* c : {&a1, &b1, &none, &a2, &b2, &none2}) {
    EXPECT_EQ(c->tokens, ref.tokens);
  }
}

}  // namespace
}  // namespace vlserve::engine
