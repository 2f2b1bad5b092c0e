// Log probabilities of generated tokens (OpenAI's `logprobs` / `top_logprobs`): the
// model's own distribution at each step, log_softmax(raw logits), before logit_bias,
// penalties, temperature and truncation (the default of vLLM's logprobs_mode
// "raw_logprobs" and of llama-server's n_probs). Computed only for requests that ask
// (Request::logprobs >= 0): one pass over the vocabulary for the normaliser plus a
// bounded top-k.
#pragma once

#include <cstdint>
#include <vector>

namespace vlserve::engine {

// At most this many alternatives per token (OpenAI's top_logprobs limit).
constexpr int32_t kMaxTopLogprobs = 20;

struct TopLogprob {
  int32_t token = 0;
  float logprob = 0;  // <= 0
};

// The chosen token of one step, with the `top` most likely tokens of the same
// distribution, most likely first (ties: lower id first).
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;  // <= 0; -inf for a token of probability 0 (e.g. a NaN logit)
  std::vector<TopLogprob> top;
};

// log_softmax(logits)[token] and the `top` (0..kMaxTopLogprobs) largest entries. NaN logits
// count as -inf. `logits` is [vocab], unmodified.
TokenLogprob ComputeTokenLogprob(const float* logits, int64_t vocab, int32_t token, int32_t top);

}  // namespace vlserve::engine
