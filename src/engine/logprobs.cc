#include "engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/sampling.h"

namespace vlserve::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float Clean(float x) { return std::isnan(x) ? kNegInf : x; }

// Strict total order: higher logit first, then lower id.
bool Better(const TopLogprob& a, const TopLogprob& b) {
  return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
}

}  // namespace

TokenLogprob ComputeTokenLogprob(const float* logits, int64_t vocab, int32_t token,
                                 int32_t top) {
  top = std::clamp<int32_t>(top, 0, static_cast<int32_t>(std::min<int64_t>(vocab, kMaxTopLogprobs)));
  const float max_logit = sampling_internal::MaxIgnoringNan(logits, vocab);
  // log Z = max + log sum exp(l - max), summed in double (a float sum loses the tail of a
  // 150k vocabulary) with the sampler's vectorised exp (relative error < 2e-7; glibc exp
  // cost ~2 ms per token on a 152k vocabulary). All logits -inf: every token has
  // probability 0.
  const double sum = std::isfinite(max_logit)
                         ? sampling_internal::SumExpShifted(logits, vocab, max_logit)
                         : 0.0;
  // (l - max) - log(sum), not l - (max + log(sum)): the second loses log(sum) next to a
  // huge max.
  const double log_sum = std::log(sum);
  auto logprob = [&](int64_t i) -> float {
    const float l = Clean(logits[i]);
    if (!std::isfinite(max_logit) || l == kNegInf) return kNegInf;
    // Rounding may give a hair above 0 for a token holding all the mass.
    return static_cast<float>(std::min(0.0, (static_cast<double>(l) - max_logit) - log_sum));
  };
  TokenLogprob out;
  out.token = token;
  out.logprob = token >= 0 && token < vocab ? logprob(token) : kNegInf;
  if (top == 0) return out;
  // A min-heap of the best `top` by raw logit (same order as by logprob); tokens arrive in
  // increasing id order, so an equal logit never displaces a kept one.
  std::vector<TopLogprob> heap;
  heap.reserve(top);
  for (int64_t i = 0; i < vocab; ++i) {
    // Most tokens lose to the worst kept one: one compare (false for NaN too).
    if (static_cast<int32_t>(heap.size()) == top && !(logits[i] > heap.front().logprob)) continue;
    const TopLogprob c{static_cast<int32_t>(i), Clean(logits[i])};
    if (static_cast<int32_t>(heap.size()) < top) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), Better);
    } else if (c.logprob > heap.front().logprob) {
      std::pop_heap(heap.begin(), heap.end(), Better);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), Better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), Better);
  for (TopLogprob& t : heap) t.logprob = logprob(t.token);
  out.top = std::move(heap);
  return out;
}

}  // namespace vlserve::engine
