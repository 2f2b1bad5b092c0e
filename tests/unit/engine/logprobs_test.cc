// Log probabilities (engine/logprobs.h): hand-computed values for ComputeTokenLogprob, and
// the engine's per-token entries against a log-softmax computed here in double precision
// over the whole vocabulary from a plain TextModel::Forward loop (the independent
// reference), for greedy, biased and sampled requests.
#include "engine/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "engine/engine.h"
#include "engine_test_util.h"

namespace vlserve::engine {
namespace {

TEST(ComputeTokenLogprobTest, HandComputedDistribution) {
  // p = 0.1, 0.2, 0.3, 0.4 up to a shared constant in the logits.
  const float logits[] = {std::log(1.0f) + 5, std::log(2.0f) + 5, std::log(3.0f) + 5,
                          std::log(4.0f) + 5};
  const TokenLogprob lp = ComputeTokenLogprob(logits, 4, 1, 3);
  EXPECT_EQ(lp.token, 1);
  EXPECT_NEAR(lp.logprob, std::log(0.2), 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].token, 3);
  EXPECT_NEAR(lp.top[0].logprob, std::log(0.4), 1e-6);
  EXPECT_EQ(lp.top[1].token, 2);
  EXPECT_NEAR(lp.top[1].logprob, std::log(0.3), 1e-6);
  EXPECT_EQ(lp.top[2].token, 1);
  // top 0: no alternatives; more than the vocabulary: all of it.
  EXPECT_TRUE(ComputeTokenLogprob(logits, 4, 0, 0).top.empty());
  EXPECT_EQ(ComputeTokenLogprob(logits, 4, 0, 20).top.size(), 4u);
}

TEST(ComputeTokenLogprobTest, TiesNanAndCertainty) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float ties[] = {1, 3, nan, 3, 1};
  const TokenLogprob lp = ComputeTokenLogprob(ties, 5, 2, 3);
  EXPECT_EQ(lp.logprob, -inf);  // a NaN logit has probability 0
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].token, 1);  // equal logits: lower id first
  EXPECT_EQ(lp.top[1].token, 3);
  EXPECT_EQ(lp.top[2].token, 0);
  const double z = 2 * std::exp(3.0) + 2 * std::exp(1.0);
  EXPECT_NEAR(lp.top[0].logprob, 3 - std::log(z), 1e-6);
  EXPECT_NEAR(lp.top[2].logprob, 1 - std::log(z), 1e-6);
  // One finite logit among -inf: certain (logprob exactly 0, never above).
  const float certain[] = {-inf, 7, -inf};
  EXPECT_EQ(ComputeTokenLogprob(certain, 3, 1, 1).logprob, 0.0f);
  EXPECT_EQ(ComputeTokenLogprob(certain, 3, 0, 0).logprob, -inf);
  // Large logits do not overflow.
  const float big[] = {1e30f, 1e30f};
  EXPECT_NEAR(ComputeTokenLogprob(big, 2, 0, 0).logprob, std::log(0.5), 1e-6);
}

class EngineLogprobsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TestModelFiles files;
    const Status s = testing::WriteAndLoadTestModel("logprobs_test", &files);
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

  // log_softmax (double) of the raw logits after prompt + `generated`, one Forward per
  // token, as a plain loop: row i is the distribution generated[i] was drawn from.
  static std::vector<std::vector<double>> Reference(const std::vector<int32_t>& prompt,
                                                    const std::vector<int32_t>& generated) {
    const int64_t vocab = model_->config().vocab;
    const int64_t total = static_cast<int64_t>(prompt.size() + generated.size());
    // The engine's KV type (f16 by default), so only the batching differs.
    models::KvBuffer kv(model_->config(), (total + 15) / 16, models::kDefaultKvType);
    models::ForwardScratch scratch;
    std::vector<int32_t> blocks(kv.num_blocks());
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
    std::vector<float> logits(vocab);
    std::vector<std::vector<double>> rows;
    std::vector<int32_t> feed = prompt;
    int64_t pos = 0;
    for (size_t i = 0; i < generated.size(); ++i) {
      models::BatchItem item;
      item.block_table = blocks.data();
      item.num_blocks = kv.num_blocks();
      item.start_pos = pos;
      item.tokens = feed;
      EXPECT_TRUE(model_->Forward({item}, kv, scratch, logits.data()).ok());
      pos += static_cast<int64_t>(feed.size());
      double sum = 0;
      for (const float l : logits) sum += std::exp(static_cast<double>(l));
      std::vector<double> row(vocab);
      for (int64_t t = 0; t < vocab; ++t) row[t] = logits[t] - std::log(sum);
      rows.push_back(std::move(row));
      feed = {generated[i]};
    }
    return rows;
  }

  // Runs `r` and checks every entry against the reference; returns the generated ids.
  static std::vector<int32_t> RunAndCheck(Request r, int32_t top) {
    const std::vector<int32_t> prompt = r.prompt_tokens;
    auto engine = Engine::Create(EngineConfig{}, model_, tok_);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    if (!engine.ok()) return {};
    r.logprobs = top;
    const testing::Collected c = testing::RunToEnd(**engine, std::move(r));
    std::vector<TokenLogprob> all;
    for (const Event& e : c.events) {
      EXPECT_EQ(e.logprobs.size(), e.tokens.size());
      all.insert(all.end(), e.logprobs.begin(), e.logprobs.end());
    }
    EXPECT_EQ(all.size(), c.tokens.size());
    const auto ref = Reference(prompt, c.tokens);
    for (size_t i = 0; i < all.size() && i < ref.size(); ++i) {
      const TokenLogprob& lp = all[i];
      const std::vector<double>& row = ref[i];
      double mass = 0;  // the reference is a distribution
      for (const double x : row) mass += std::exp(x);
      EXPECT_NEAR(mass, 1.0, 1e-9);
      EXPECT_EQ(lp.token, c.tokens[i]);
      EXPECT_LE(lp.logprob, 0.0f);
      EXPECT_NEAR(lp.logprob, row[lp.token], 5e-4) << "token " << i;
      EXPECT_EQ(static_cast<int32_t>(lp.top.size()), top);
      if (static_cast<int32_t>(lp.top.size()) != top) continue;
      // The top entries are the reference's `top` best, in order.
      std::vector<int32_t> order(row.size());
      for (size_t t = 0; t < order.size(); ++t) order[t] = static_cast<int32_t>(t);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return row[a] > row[b]; });
      for (int32_t k = 0; k < top; ++k) {
        EXPECT_NEAR(lp.top[k].logprob, row[lp.top[k].token], 5e-4);
        EXPECT_NEAR(lp.top[k].logprob, row[order[k]], 5e-4) << "rank " << k;
        if (k > 0) {
          EXPECT_GE(lp.top[k - 1].logprob, lp.top[k].logprob);
        }
      }
    }
    return c.tokens;
  }

  static inline std::string dir_;
  static inline std::shared_ptr<const models::TextModel> model_;
  static inline std::shared_ptr<const tokenizer::Tokenizer> tok_;
};

TEST_F(EngineLogprobsTest, GreedyTokensAreTheTopOne) {
  Request r;
  r.id = "greedy";
  r.prompt_tokens = tok_->Encode("The quick brown fox");
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 8;
  auto engine = Engine::Create(EngineConfig{}, model_, tok_);
  ASSERT_TRUE(engine.ok());
  r.logprobs = 5;
  const testing::Collected c = testing::RunToEnd(**engine, r);
  for (const Event& e : c.events) {
    for (const TokenLogprob& lp : e.logprobs) {
      ASSERT_FALSE(lp.top.empty());
      EXPECT_EQ(lp.top[0].token, lp.token);
      EXPECT_EQ(lp.top[0].logprob, lp.logprob);
    }
  }
  RunAndCheck(r, kMaxTopLogprobs);
}

TEST_F(EngineLogprobsTest, RawModelDistributionDespiteBiasAndTemperature) {
  // logit_bias forces a token the model finds unlikely; its logprob stays the model's.
  Request r;
  r.id = "biased";
  r.prompt_tokens = tok_->Encode("Hello world");
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 4;
  const int32_t forced = tok_->Encode("z")[0];
  r.sampling.logit_bias[forced] = 100;
  const std::vector<int32_t> ids = RunAndCheck(r, 3);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], forced);

  Request hot;
  hot.id = "sampled";
  hot.prompt_tokens = tok_->Encode("Hello world");
  hot.sampling.temperature = 1.7f;
  hot.sampling.top_k = 40;
  hot.sampling.seed = 7;
  hot.sampling.max_tokens = 6;
  RunAndCheck(hot, 2);
}

TEST_F(EngineLogprobsTest, NothingWhenNotAskedAndRangeChecked) {
  auto engine = Engine::Create(EngineConfig{}, model_, tok_);
  ASSERT_TRUE(engine.ok());
  Request r;
  r.id = "plain";
  r.prompt_tokens = tok_->Encode("Hello");
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 3;
  const testing::Collected c = testing::RunToEnd(**engine, r);
  for (const Event& e : c.events) EXPECT_TRUE(e.logprobs.empty());
  r.logprobs = kMaxTopLogprobs + 1;
  const auto s = (*engine)->Submit(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("top_logprobs"), std::string::npos);
}

}  // namespace
}  // namespace vlserve::engine
