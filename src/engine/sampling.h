// Token sampling: SamplingParams (plain data from the request) and Sampler (per-request
// state: RNG, penalty history). The scheduler owns one Sampler per request and calls
// Sample() with that request's logits row. docs/sampling.md is the user-facing spec.
//
// Chain, in this order (llama.cpp's default chain, which adds logit bias first):
//   1. logit bias          logit[t] += bias[t]
//   2. repetition penalty  over the last penalty_last_n context tokens (prompt + output)
//   3. presence/frequency  over all generated tokens (OpenAI semantics)
//   -- temperature < 1e-5 or top_k == 1: greedy, argmax of the result (ties -> lowest token id) --
//   4. top-k               keep the k highest logits (ties -> lower id wins)
//   5. top-p               smallest prefix (by descending prob at temperature 1, normalised
//                          over the top-k survivors) whose mass >= top_p
//   6. min-p               keep p >= min_p * p_max (temperature 1)
//   7. temperature         p ∝ exp((logit - max) / T) over the survivors
//   8. draw                one uniform double from xoshiro256** seeded by splitmix64(seed)
// With a response_format grammar (engine/json_constraint.h) the picked token is checked
// against it; only when it is refused are the refused tokens set to -inf and the pick
// redone (llama.cpp's lazy grammar). Exact for greedy and plain temperature sampling;
// top-k / top-p / min-p then cut among the allowed tokens only.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/json_constraint.h"

namespace vlserve {

struct SamplingParams {
  float temperature = 1.0f;             // >= 0; < 1e-5 = greedy (argmax)
  int32_t top_k = 0;                    // >= 0; 0 = off
  float top_p = 1.0f;                   // (0, 1]; 1 = off
  float min_p = 0.0f;                   // [0, 1]; 0 = off
  float repetition_penalty = 1.0f;      // > 0; 1 = off. logit > 0 ? logit / p : logit * p
  int32_t penalty_last_n = 64;          // window of the repetition penalty; -1 = whole context
  float presence_penalty = 0.0f;        // [-2, 2]; logit -= presence * (count > 0)
  float frequency_penalty = 0.0f;       // [-2, 2]; logit -= frequency * count
  std::map<int32_t, float> logit_bias;  // token -> [-100, 100] added to the logit
  uint64_t seed = 0;                    // the server draws one when the request has none
  int32_t max_tokens = -1;              // generated-token limit; -1 = until the context is full
  std::vector<int32_t> stop_token_ids;  // extra tokens that end generation (besides EOS)
  std::vector<std::string> stop;        // stop strings (see engine/stop.h)
  // response_format json_object / json_schema: the output must be this JSON value, and
  // generation ends when it is complete. Null = free text.
  std::shared_ptr<const JsonGrammar> json_grammar;
};

// Checks ranges and token ids against the model's vocabulary; the message names the field
// and the allowed range so the server can return it as a 400.
Status ValidateSamplingParams(const SamplingParams& params, int64_t vocab_size);

bool IsStopToken(const SamplingParams& params, int32_t token);

// xoshiro256** (Blackman & Vigna) seeded through splitmix64: fixed, portable output for a
// given seed, unlike the std:: distributions whose results are implementation-defined.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, 1) with 53 random bits.
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  // `vocab` is needed (and must outlive the sampler) when params.json_grammar is set.
  explicit Sampler(SamplingParams params, const ConstraintVocab* vocab = nullptr);

  // Feeds prompt tokens into the repetition-penalty window (they do not count for the
  // presence/frequency penalties). Call once before the first Sample().
  void AcceptPrompt(std::span<const int32_t> tokens);

  // Picks the next token from `logits` ([vocab], modified in place by bias and penalties)
  // and records it as generated. Deterministic for the same params, seed, history and
  // logits.
  int32_t Sample(float* logits, int64_t vocab);

  // Records a token chosen elsewhere (e.g. a forced token) as generated.
  void Accept(int32_t token);

  // response_format: the value is complete and nothing may follow (generation ends).
  bool output_complete() const { return json_.has_value() && json_->Done(); }

  const SamplingParams& params() const { return params_; }
  int64_t num_generated() const { return num_generated_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };

  void AddToWindow(int32_t token);
  void ApplyBiasAndPenalties(float* logits, int64_t vocab) const;
  int32_t Pick(float* logits, int64_t vocab, float max_logit);
  // Fills cands_ with the top_k candidates sorted best first; returns how many.
  size_t TopK(const float* logits, int64_t vocab, int32_t k);
  // Sorts cands_[0, n) best first only as far as needed for top-p; returns the cut.
  size_t TopPPrefix(size_t n, double mass_needed, float max_logit);
  int32_t SampleUnsorted(const float* logits, int64_t vocab, float max_logit);
  int32_t DrawSorted(size_t n);
  // Sets every token the grammar refuses to -inf and picks again.
  int32_t PickAllowed(float* logits, int64_t vocab, int32_t refused);

  SamplingParams params_;
  Xoshiro256 rng_;
  std::deque<int32_t> window_;                          // last penalty_last_n context tokens
  std::unordered_map<int32_t, int32_t> window_counts_;  // token -> count in window_
  std::unordered_map<int32_t, int32_t> output_counts_;  // token -> count in the output
  int64_t num_generated_ = 0;
  // Scratch reused across calls to avoid a vocab-sized allocation per token.
  std::vector<Candidate> cands_;
  std::vector<float> weights_;      // [vocab] or [candidates]
  std::vector<double> chunk_sums_;  // per 1024 weights
  const ConstraintVocab* constraint_vocab_ = nullptr;
  std::optional<JsonMatcher> json_;  // with params_.json_grammar
  std::vector<uint8_t> allowed_;     // [constraint vocab]: the last full mask
};

namespace sampling_internal {
// e^x for x <= 0 as the sampler computes it (vectorised polynomial, relative error
// < 2e-7, exactly 0 below -87). Exposed for tests.
float ExpNonPositive(float x);
// Sum over logits[0, n) of e^(l - max_logit) with the same vectorised exp, in double; NaN
// logits count 0. max_logit must be finite and >= every logit. Used by engine/logprobs.
double SumExpShifted(const float* logits, int64_t n, float max_logit);
// Max over logits[0, n) ignoring NaN (-inf when all are NaN or -inf), vectorised.
float MaxIgnoringNan(const float* logits, int64_t n);
}  // namespace sampling_internal

}  // namespace vlserve
