#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

namespace vlserve {
namespace {

// Deterministic pseudo-random logits in [-10, 10) from a simple LCG (independent of the
// sampler's own RNG).
std::vector<float> MakeLogits(int64_t vocab, uint32_t seed) {
  std::vector<float> v(vocab);
  uint32_t x = seed;
  for (auto& l : v) {
    x = x * 1664525u + 1013904223u;
    l = static_cast<float>(x >> 8) / static_cast<float>(1 << 24) * 20.0f - 10.0f;
  }
  return v;
}

int32_t SampleOnce(Sampler& s, std::vector<float> logits) {  // copy: Sample edits in place
  return s.Sample(logits.data(), static_cast<int64_t>(logits.size()));
}

// Draws n tokens with a fresh sampler (no penalties in play) and counts them.
std::vector<int> Histogram(const SamplingParams& p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[SampleOnce(s, logits)];
  return counts;
}

std::set<int32_t> Drawn(const std::vector<int>& counts) {
  std::set<int32_t> out;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) out.insert(static_cast<int32_t>(i));
  }
  return out;
}

// Logits whose softmax is exactly `probs`.
std::vector<float> LogitsFromProbs(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

// Temperature is applied after the truncation samplers, so a huge temperature makes the
// survivors nearly uniform and every one of them shows up: the drawn set IS the kept set.
SamplingParams RevealKeptSet() {
  SamplingParams p;
  p.temperature = 1000.0f;
  p.seed = 7;
  return p;
}

TEST(SamplingTest, GreedyIsArgmaxWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0.0f;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> logits = MakeLogits(1000, seed);
    const int32_t want = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                              logits.begin());  // first max
    Sampler s(p);
    EXPECT_EQ(SampleOnce(s, logits), want);
  }
  Sampler s(p);
  EXPECT_EQ(SampleOnce(s, {1.0f, 3.0f, 2.0f, 3.0f}), 1);
}

TEST(SamplingTest, TopK1IsGreedyAtAnyTemperature) {
  std::vector<float> logits = MakeLogits(5000, 3);
  const int32_t want =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SamplingParams p;
    p.top_k = 1;
    p.temperature = 1.5f;
    p.seed = seed;
    Sampler s(p);
    EXPECT_EQ(SampleOnce(s, logits), want);
  }
}

TEST(SamplingTest, LowTemperatureApproachesGreedy) {
  // Gap 0.5 between the best two: at T = 0.01 the runner-up has weight e^-50.
  std::vector<float> logits = {0.0f, 2.5f, 3.0f, 1.0f};
  SamplingParams p;
  p.temperature = 0.01f;
  std::vector<int> counts = Histogram(p, logits, 2000);
  EXPECT_EQ(counts[2], 2000);
  // ...while at T = 1 the runner-up (p ≈ 0.33) shows up plenty.
  p.temperature = 1.0f;
  counts = Histogram(p, logits, 2000);
  EXPECT_GT(counts[1], 400);
}

TEST(SamplingTest, SeededSamplingIsReproducibleAndSeedsDiffer) {
  std::vector<float> logits = MakeLogits(8000, 11);
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = 0.95f;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 32; ++i) out.push_back(SampleOnce(s, logits));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(SamplingTest, XoshiroMatchesReferenceSequence) {
  // Expected words from an independent Python transcription of the published
  // splitmix64 / xoshiro256** algorithms (splitmix64(0) starts 0xE220A8397B1DCDAF).
  Xoshiro256 a(0);
  EXPECT_EQ(a.Next(), 0x99ec5f36cb75f2b4ull);
  EXPECT_EQ(a.Next(), 0xbf6e1f784956452aull);
  EXPECT_EQ(a.Next(), 0x1a5f849d4933e6e0ull);
  Xoshiro256 b(42);
  EXPECT_EQ(b.Next(), 0x15780b2e0c2ec716ull);
  EXPECT_EQ(b.Next(), 0x6104d9866d113a7eull);
  for (int i = 0; i < 1000; ++i) {
    const double u = a.NextDouble();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

// Chi-square of observed counts against expected probabilities.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi2 = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double e = probs[i] * n;
    if (e == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0 but was drawn";
      continue;
    }
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  const double mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp((logits[i] - mx) / temperature);
  for (double& x : p) x /= z;
  return p;
}

TEST(SamplingTest, EmpiricalDistributionMatchesSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 0.0f};
  const int n = 20000;
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 2024;
  // 5 degrees of freedom: chi-square > 20.5 has probability 0.001 under the hypothesis.
  EXPECT_LT(ChiSquare(Histogram(p, logits, n), Softmax(logits, 1.0), n), 20.5);

  p.temperature = 0.7f;
  EXPECT_LT(ChiSquare(Histogram(p, logits, n), Softmax(logits, 0.7), n), 20.5);

  // top-k = 3 at T = 0.7: softmax at T over tokens {4, 1, 0} only (2 degrees of freedom).
  p.top_k = 3;
  std::vector<double> want = Softmax({1.0f, 2.0f, 3.0f}, 0.7);
  std::vector<double> probs = {want[0], want[1], 0, 0, want[2], 0};
  EXPECT_LT(ChiSquare(Histogram(p, logits, n), probs, n), 13.8);
}

TEST(SamplingTest, TopPKeepsSmallestPrefixReachingP) {
  const std::vector<float> logits = LogitsFromProbs({0.1, 0.5, 0.15, 0.25});
  SamplingParams p = RevealKeptSet();
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.5 + 0.25: keep {1, 3}
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1, 3}));
  p.top_p = 0.8f;  // 0.75 < 0.8 <= 0.9: keep {1, 3, 2}
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1, 2, 3}));
  p.top_p = 0.4f;  // the first token alone already reaches p
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1}));
}

TEST(SamplingTest, TopPRenormalisesOverTopK) {
  // After top-k = 3 the masses are {0.5, 0.25, 0.15} / 0.9 = {0.556, 0.278, 0.167}:
  // top-p 0.8 stops at {1, 3} (0.833), whereas without top-k it needs {1, 3, 2}.
  const std::vector<float> logits = LogitsFromProbs({0.1, 0.5, 0.15, 0.25});
  SamplingParams p = RevealKeptSet();
  p.top_k = 3;
  p.top_p = 0.8f;
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1, 3}));
}

TEST(SamplingTest, MinPKeepsTokensAboveFractionOfBest) {
  const std::vector<float> logits = LogitsFromProbs({0.1, 0.5, 0.15, 0.25});
  SamplingParams p = RevealKeptSet();
  p.min_p = 0.25f;  // threshold 0.125: keep {1, 3, 2}
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1, 2, 3}));
  p.min_p = 0.4f;  // threshold 0.2: keep {1, 3}
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1, 3}));
  p.top_k = 3;  // same result through the sorted path
  EXPECT_EQ(Drawn(Histogram(p, logits, 2000)), (std::set<int32_t>{1, 3}));
  p.min_p = 0.6f;  // threshold 0.3: only the best token is left
  EXPECT_EQ(Drawn(Histogram(p, logits, 500)), (std::set<int32_t>{1}));
  p.top_k = 0;
  EXPECT_EQ(Drawn(Histogram(p, logits, 500)), (std::set<int32_t>{1}));
}

TEST(SamplingTest, ExpApproximationIsAccurate) {
  double worst = 0;
  for (int i = 0; i <= 870000; ++i) {
    const float x = -static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(sampling_internal::ExpNonPositive(x) - want) / want);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(sampling_internal::ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(sampling_internal::ExpNonPositive(-88.0f), 0.0f);
  EXPECT_EQ(sampling_internal::ExpNonPositive(-std::numeric_limits<float>::infinity()), 0.0f);
}

TEST(SamplingTest, TopKLargeVocabBothPathsAndTies) {
  const std::vector<float> logits = MakeLogits(2000, 5);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (int32_t k : {100, 600}) {  // bounded-heap path (k <= 512) and nth_element path
    SamplingParams p = RevealKeptSet();
    p.top_k = k;
    std::set<int32_t> want(order.begin(), order.begin() + k);
    std::set<int32_t> got = Drawn(Histogram(p, logits, 4000));
    EXPECT_TRUE(std::includes(want.begin(), want.end(), got.begin(), got.end())) << "k=" << k;
    EXPECT_GT(got.size(), static_cast<size_t>(k) * 9 / 10) << "k=" << k;
  }
  SamplingParams p = RevealKeptSet();
  p.top_k = 3;
  EXPECT_EQ(Drawn(Histogram(p, std::vector<float>(50, 0.0f), 500)),
            (std::set<int32_t>{0, 1, 2}));  // equal logits: lowest ids win
}

TEST(SamplingTest, TopPLongTailBeyondGatherWindow) {
  // Token 0 is 20.5 nats above 299 others, so the fast path's first gather ([max - 10, max])
  // holds only token 0 and top-p close to 1 must fall back to the whole vocabulary.
  std::vector<float> logits(300, 0.0f);
  logits[0] = 20.5f;
  SamplingParams p = RevealKeptSet();
  p.top_p = 0.9999999f;
  // Reference in double: keep token 0 plus the m lowest ids (ties) until the mass >= top_p.
  const double e = std::exp(-20.5), z = 1 + 299 * e;
  int m = 0;
  while ((1 + m * e) / z < static_cast<double>(p.top_p)) ++m;
  ASSERT_GT(m, 150);  // the cut falls well inside the tail (m = 204)
  ASSERT_LT(m, 280);
  std::set<int32_t> got = Drawn(Histogram(p, logits, 8000));
  EXPECT_EQ(*got.rbegin(), m);  // ids 1..m kept, m+1.. cut
  EXPECT_GT(got.size(), static_cast<size_t>(m) * 9 / 10);
}

TEST(SamplingTest, PenaltiesChangeLogitsByHandComputedAmounts) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p);
  const std::vector<int32_t> prompt = {0, 1};
  s.AcceptPrompt(prompt);
  s.Accept(3);
  s.Accept(3);
  s.Accept(1);
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
  const int32_t token = s.Sample(logits.data(), 5);
  // Repetition (window {0, 1, 3}): 2 -> 1, -1 -> -2, 3 -> 1.5.
  // Presence/frequency (output counts {3: 2, 1: 1}): 3: 1.5 - 0.5 - 0.5 = 0.5;
  // 1: -2 - 0.5 - 0.25 = -2.75. Token 0 appeared only in the prompt: no presence penalty.
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], -2.75f);
  EXPECT_FLOAT_EQ(logits[2], 0.5f);
  EXPECT_FLOAT_EQ(logits[3], 0.5f);
  EXPECT_FLOAT_EQ(logits[4], 0.0f);
  EXPECT_EQ(token, 0);
  EXPECT_EQ(s.num_generated(), 4);  // three Accept()s and the sampled token
}

TEST(SamplingTest, RepetitionPenaltyWindowSlides) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  p.penalty_last_n = 2;
  Sampler s(p);
  const std::vector<int32_t> prompt = {0, 1, 2};  // window keeps {1, 2}
  s.AcceptPrompt(prompt);
  std::vector<float> logits = {4.0f, 4.0f, -1.0f, 1.0f};
  EXPECT_EQ(s.Sample(logits.data(), 4), 0);
  EXPECT_FLOAT_EQ(logits[0], 4.0f);
  EXPECT_FLOAT_EQ(logits[1], 2.0f);
  EXPECT_FLOAT_EQ(logits[2], -2.0f);
  EXPECT_FLOAT_EQ(logits[3], 1.0f);
  // Window is now {2, 0}: token 1 has left it.
  std::vector<float> again = {4.0f, 4.0f, -1.0f, 1.0f};
  EXPECT_EQ(s.Sample(again.data(), 4), 1);
  EXPECT_FLOAT_EQ(again[0], 2.0f);
  EXPECT_FLOAT_EQ(again[1], 4.0f);
}

TEST(SamplingTest, LogitBiasAppliesBeforePenaltiesAndBans) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{2, 5.0f}, {0, -100.0f}};
  Sampler s(p);
  std::vector<float> logits = {10.0f, 1.0f, 2.0f};
  EXPECT_EQ(s.Sample(logits.data(), 3), 2);
  EXPECT_FLOAT_EQ(logits[0], -90.0f);
  EXPECT_FLOAT_EQ(logits[2], 7.0f);

  // Bias first, then the repetition penalty on the biased value: (2 + 5) / 2 = 3.5.
  p.logit_bias = {{2, 5.0f}};
  p.repetition_penalty = 2.0f;
  Sampler t(p);
  t.Accept(2);
  std::vector<float> l2 = {1.0f, 1.0f, 2.0f};
  t.Sample(l2.data(), 3);
  EXPECT_FLOAT_EQ(l2[2], 3.5f);

  // -100 bans a token under random sampling too.
  SamplingParams r;
  r.logit_bias = {{1, -100.0f}};
  std::vector<int> counts = Histogram(r, {0.0f, 0.5f, 0.0f}, 5000);
  EXPECT_EQ(counts[1], 0);
}

TEST(SamplingTest, NonFiniteLogits) {
  const float inf = std::numeric_limits<float>::infinity();
  SamplingParams p;
  Sampler s(p);
  EXPECT_EQ(SampleOnce(s, {-inf, 0.0f, -inf}), 1);
  EXPECT_EQ(SampleOnce(s, {std::nanf(""), -5.0f, -inf}), 1);
  EXPECT_EQ(SampleOnce(s, {-inf, -inf}), 0);  // nothing possible: lowest id, no crash
}

TEST(SamplingTest, ValidateRejectsOutOfRange) {
  SamplingParams ok;
  EXPECT_TRUE(ValidateSamplingParams(ok, 100).ok());
  auto bad = [](auto edit) {
    SamplingParams p;
    edit(p);
    Status s = ValidateSamplingParams(p, 100);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  EXPECT_NE(bad([](SamplingParams& p) { p.temperature = -1; }).find("temperature"),
            std::string::npos);
  bad([](SamplingParams& p) { p.top_p = 0; });
  bad([](SamplingParams& p) { p.top_p = 1.5f; });
  bad([](SamplingParams& p) { p.top_k = -2; });
  bad([](SamplingParams& p) { p.min_p = 2; });
  bad([](SamplingParams& p) { p.repetition_penalty = 0; });
  bad([](SamplingParams& p) { p.penalty_last_n = -5; });
  bad([](SamplingParams& p) { p.presence_penalty = 3; });
  bad([](SamplingParams& p) { p.frequency_penalty = std::nanf(""); });
  EXPECT_NE(bad([](SamplingParams& p) { p.logit_bias[100] = 1; }).find("0..99"), std::string::npos);
  bad([](SamplingParams& p) { p.logit_bias[3] = -101; });
  bad([](SamplingParams& p) { p.max_tokens = 0; });
  bad([](SamplingParams& p) { p.stop_token_ids = {100}; });
  bad([](SamplingParams& p) { p.stop = {""}; });
}

TEST(SamplingTest, StopTokens) {
  SamplingParams p;
  p.stop_token_ids = {7, 9};
  EXPECT_TRUE(IsStopToken(p, 9));
  EXPECT_FALSE(IsStopToken(p, 8));
}

}  // namespace
}  // namespace vlserve
