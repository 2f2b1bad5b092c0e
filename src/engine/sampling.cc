#include "engine/sampling.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/check.h"

namespace vlserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Top-p without top-k first gathers only tokens within this many nats of the best one;
// when they do not hold enough mass it gathers the whole vocabulary, so the gap affects
// speed only, never the result.
constexpr float kTopPGatherGap = 10.0f;
// Top-k up to this size uses a bounded heap (one compare for most tokens); larger k uses
// nth_element over the whole vocabulary.
constexpr int32_t kHeapTopKLimit = 512;
// Weights are summed per chunk so a draw walks chunk sums, then one chunk.
constexpr int64_t kChunk = 1024;
// Below this temperature sampling is greedy (as vLLM); also keeps 1 / T finite.
constexpr float kGreedyTemperature = 1e-5f;

Status RangeError(std::string_view field, double value, std::string_view range) {
  return InvalidArgumentError(
      fmt::format("sampling parameter {} = {} is out of range; allowed: {}", field, value, range));
}

bool InClosed(float v, float lo, float hi) { return std::isfinite(v) && v >= lo && v <= hi; }

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// 4-wide vectors (GCC/Clang vector extensions): compiled to the build's baseline ISA, no
// intrinsics. The vocabulary-wide loops below use them; g++ does not vectorize the
// equivalent scalar loops (the selects stay branches), and glibc expf per token was the
// largest cost of sampling a 152k vocabulary.
using F4 = float __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));
using D4 = double __attribute__((vector_size(32)));

F4 Splat(float x) { return F4{x, x, x, x}; }
F4 Load4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// e^x for x <= 0 per lane, relative error < 2e-7, exactly 0 below -87 (so -inf logits
// get weight 0).
inline __attribute__((always_inline)) F4 Exp4(F4 x) {
  const F4 xc = x < -87.0f ? Splat(-87.0f) : x;
  // x = n ln2 + r, |r| <= ln2 / 2; n by the round-to-nearest magic constant 1.5 * 2^23.
  const F4 n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
  const F4 r = (xc - n * 0.693145752f) - n * 1.42860677e-6f;  // Cody-Waite split of ln2
  // Taylor to degree 6: truncation error |r|^7 / 7! < 1.2e-7 on |r| <= 0.347.
  F4 p = Splat(1.0f / 720);
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const I4 bits = (__builtin_convertvector(n, I4) + 127) << 23;  // 2^n, n in [-126, 0]
  const F4 result = p * std::bit_cast<F4>(bits);
  return x < -87.0f ? Splat(0.0f) : result;
}

}  // namespace

// Scalar form through the same code, so scalar and vector weights are bit-identical.
float sampling_internal::ExpNonPositive(float x) { return Exp4(Splat(x))[0]; }

double sampling_internal::SumExpShifted(const float* logits, int64_t n, float max_logit) {
  D4 lanes = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    F4 l = Load4(logits + i);
    l = l == l ? l : Splat(kNegInf);  // NaN -> weight 0
    lanes += __builtin_convertvector(Exp4(l - max_logit), D4);
  }
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) {
    if (!std::isnan(logits[i])) sum += Exp4(Splat(logits[i] - max_logit))[0];
  }
  return sum;
}

namespace {
using sampling_internal::ExpNonPositive;

// Max over logits[0, n) ignoring NaN; sets *any_nan.
float MaxLogit(const float* logits, int64_t n, bool* any_nan) {
  F4 m4 = Splat(kNegInf);
  I4 nan4 = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const F4 l = Load4(logits + i);
    m4 = l > m4 ? l : m4;
    nan4 |= l != l;
  }
  float m = kNegInf;
  bool nan = false;
  for (; i < n; ++i) {
    m = logits[i] > m ? logits[i] : m;
    nan |= std::isnan(logits[i]);
  }
  for (int j = 0; j < 4; ++j) {
    m = m4[j] > m ? m4[j] : m;
    nan |= nan4[j] != 0;
  }
  *any_nan = nan;
  return m;
}

// w[i] = e^((l[i] - max) / T) if l[i] >= threshold else 0, for i in [0, n). Fills
// chunk_sums[c] = sum of w over chunk c and returns the total (both in double, in a fixed
// order, so the result is the same on every run).
double ComputeWeights(const float* logits, int64_t n, float max_logit, float inv_t, float threshold,
                      float* w, std::vector<double>& chunk_sums) {
  chunk_sums.assign((n + kChunk - 1) / kChunk, 0.0);
  double total = 0;
  for (int64_t c = 0; c * kChunk < n; ++c) {
    const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
    D4 lanes = {0, 0, 0, 0};  // double: a float sum would drop 1e-9 next to 1
    int64_t i = begin;
    for (; i + 4 <= end; i += 4) {
      const F4 l = Load4(logits + i);
      const F4 e = Exp4((l - max_logit) * inv_t);
      const F4 wi = l >= threshold ? e : Splat(0.0f);
      std::memcpy(w + i, &wi, sizeof wi);
      lanes += __builtin_convertvector(wi, D4);
    }
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < end; ++i) {
      w[i] = logits[i] >= threshold ? ExpNonPositive((logits[i] - max_logit) * inv_t) : 0.0f;
      sum += w[i];
    }
    chunk_sums[c] = sum;
    total += sum;
  }
  return total;
}

// Index whose cumulative weight interval contains target, target in [0, total).
int64_t Draw(const float* w, int64_t n, const std::vector<double>& chunk_sums, double target) {
  double cum = 0;
  size_t c = 0;
  while (c + 1 < chunk_sums.size() && cum + chunk_sums[c] <= target) cum += chunk_sums[c++];
  // Rounding can leave target >= total and c on a trailing empty chunk: step back.
  while (c > 0 && chunk_sums[c] == 0) cum -= chunk_sums[--c];
  const int64_t begin = static_cast<int64_t>(c) * kChunk, end = std::min(n, begin + kChunk);
  int64_t last_positive = begin;
  for (int64_t i = begin; i < end; ++i) {
    if (w[i] <= 0) continue;
    last_positive = i;
    cum += w[i];
    if (cum > target) return i;
  }
  return last_positive;  // float-vs-double rounding inside the chunk
}

}  // namespace

float sampling_internal::MaxIgnoringNan(const float* logits, int64_t n) {
  bool any_nan = false;
  return MaxLogit(logits, n, &any_nan);
}

Status ValidateSamplingParams(const SamplingParams& p, int64_t vocab_size) {
  if (!(std::isfinite(p.temperature) && p.temperature >= 0)) {
    return RangeError("temperature", p.temperature, "a finite number >= 0 (0 = greedy)");
  }
  if (p.top_k < 0) return RangeError("top_k", p.top_k, "an integer >= 0 (0 = off)");
  if (!(std::isfinite(p.top_p) && p.top_p > 0 && p.top_p <= 1)) {
    return RangeError("top_p", p.top_p, "(0, 1] (1 = off)");
  }
  if (!InClosed(p.min_p, 0, 1)) return RangeError("min_p", p.min_p, "[0, 1] (0 = off)");
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0)) {
    return RangeError("repetition_penalty", p.repetition_penalty, "a number > 0 (1 = off)");
  }
  if (p.penalty_last_n < -1) {
    return RangeError("penalty_last_n", p.penalty_last_n, "-1 (whole context), 0 (off) or > 0");
  }
  if (!InClosed(p.presence_penalty, -2, 2)) {
    return RangeError("presence_penalty", p.presence_penalty, "[-2, 2]");
  }
  if (!InClosed(p.frequency_penalty, -2, 2)) {
    return RangeError("frequency_penalty", p.frequency_penalty, "[-2, 2]");
  }
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return InvalidArgumentError(fmt::format(
          "logit_bias names token {}, but the model's token ids are 0..{}", token, vocab_size - 1));
    }
    if (!InClosed(bias, -100, 100)) {
      return RangeError(fmt::format("logit_bias[{}]", token), bias, "[-100, 100]");
    }
  }
  if (p.max_tokens < 1 && p.max_tokens != -1) {
    return RangeError("max_tokens", p.max_tokens, "an integer >= 1");
  }
  for (int32_t token : p.stop_token_ids) {
    if (token < 0 || token >= vocab_size) {
      return InvalidArgumentError(fmt::format(
          "stop token id {} is not in the model's vocabulary (0..{})", token, vocab_size - 1));
    }
  }
  for (const std::string& s : p.stop) {
    if (s.empty()) return InvalidArgumentError("stop strings must not be empty");
  }
  return OkStatus();
}

bool IsStopToken(const SamplingParams& params, int32_t token) {
  return std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), token) !=
         params.stop_token_ids.end();
}

Xoshiro256::Xoshiro256(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& word : s_) word = SplitMix64(state);
}

uint64_t Xoshiro256::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

Sampler::Sampler(SamplingParams params, const ConstraintVocab* vocab)
    : params_(std::move(params)), rng_(params_.seed), constraint_vocab_(vocab) {
  if (params_.json_grammar != nullptr) {
    CHECK(vocab != nullptr) << "a response_format grammar needs the constraint vocabulary";
    json_.emplace(params_.json_grammar);
  }
}

void Sampler::AcceptPrompt(std::span<const int32_t> tokens) {
  // Only the tail can stay in a bounded window; skip the rest.
  size_t first = 0;
  if (params_.penalty_last_n == 0) return;
  if (params_.penalty_last_n > 0 && tokens.size() > static_cast<size_t>(params_.penalty_last_n)) {
    first = tokens.size() - params_.penalty_last_n;
  }
  for (size_t i = first; i < tokens.size(); ++i) AddToWindow(tokens[i]);
}

void Sampler::Accept(int32_t token) {
  if (json_.has_value()) json_->Accept(*constraint_vocab_, token);
  AddToWindow(token);
  ++output_counts_[token];
  ++num_generated_;
}

void Sampler::AddToWindow(int32_t token) {
  if (params_.penalty_last_n == 0) return;
  window_.push_back(token);
  ++window_counts_[token];
  if (params_.penalty_last_n > 0 && window_.size() > static_cast<size_t>(params_.penalty_last_n)) {
    const int32_t old = window_.front();
    window_.pop_front();
    auto it = window_counts_.find(old);
    if (--it->second == 0) window_counts_.erase(it);
  }
}

void Sampler::ApplyBiasAndPenalties(float* logits, int64_t vocab) const {
  auto in_vocab = [vocab](int32_t t) { return t >= 0 && t < vocab; };
  for (const auto& [token, bias] : params_.logit_bias) {
    if (in_vocab(token)) logits[token] += bias;
  }
  // Each token is penalised once however often it occurs, so the map's iteration order
  // does not matter.
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    for (const auto& [token, count] : window_counts_) {
      if (!in_vocab(token)) continue;
      float& l = logits[token];
      l = l > 0 ? l / rep : l * rep;
    }
  }
  const float presence = params_.presence_penalty, frequency = params_.frequency_penalty;
  if (presence != 0.0f || frequency != 0.0f) {
    for (const auto& [token, count] : output_counts_) {
      if (in_vocab(token)) logits[token] -= presence + frequency * static_cast<float>(count);
    }
  }
}

int32_t Sampler::Sample(float* logits, int64_t vocab) {
  CHECK_GT(vocab, 0);
  CHECK_LE(vocab, std::numeric_limits<int32_t>::max());
  ApplyBiasAndPenalties(logits, vocab);
  bool any_nan = false;
  const float max_logit = MaxLogit(logits, vocab, &any_nan);
  if (any_nan) {  // a NaN logit is never chosen and must not poison the sums below
    for (int64_t i = 0; i < vocab; ++i) {
      if (std::isnan(logits[i])) logits[i] = kNegInf;
    }
  }
  int32_t token = Pick(logits, vocab, max_logit);
  if (json_.has_value() && !json_->Allows(*constraint_vocab_, token)) {
    token = PickAllowed(logits, vocab, token);
  }
  Accept(token);
  return token;
}

int32_t Sampler::PickAllowed(float* logits, int64_t vocab, int32_t refused) {
  json_->AllowedTokens(*constraint_vocab_, &allowed_);
  // Model rows may be longer than the tokenizer's vocabulary (padding): never allowed.
  const int64_t known = std::min<int64_t>(vocab, static_cast<int64_t>(allowed_.size()));
  int32_t first_allowed = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (i < known && allowed_[i] != 0) {
      if (first_allowed < 0) first_allowed = static_cast<int32_t>(i);
    } else {
      logits[i] = kNegInf;
    }
  }
  // AllowedTokens falls back to the end tokens; a vocabulary without any cannot end.
  if (first_allowed < 0) return refused;
  bool any_nan = false;
  const float max_logit = MaxLogit(logits, vocab, &any_nan);
  // Every allowed logit is -inf (e.g. logit_bias): the lowest allowed id, as greedy would.
  if (!std::isfinite(max_logit)) return first_allowed;
  return Pick(logits, vocab, max_logit);
}

int32_t Sampler::Pick(float* logits, int64_t vocab, float max_logit) {
  const bool greedy =
      params_.temperature < kGreedyTemperature || params_.top_k == 1 || !std::isfinite(max_logit);
  if (greedy) {  // argmax, ties -> lowest id (the first index holding the max)
    const float* first = std::find(logits, logits + vocab, max_logit);
    return first == logits + vocab ? 0 : static_cast<int32_t>(first - logits);
  }
  const bool use_top_k = params_.top_k > 0 && params_.top_k < vocab;
  const bool use_top_p = params_.top_p < 1.0f;
  if (!use_top_k && !use_top_p) return SampleUnsorted(logits, vocab, max_logit);

  size_t n;
  if (use_top_k) {
    n = TopK(logits, vocab, params_.top_k);
    if (use_top_p) {
      double z = 0;  // top-p renormalises over the top-k survivors
      for (size_t i = 0; i < n; ++i) z += ExpNonPositive(cands_[i].logit - max_logit);
      n = TopPPrefix(n, params_.top_p * z, max_logit);
    }
  } else {
    weights_.resize(vocab);
    const double z_all =
        ComputeWeights(logits, vocab, max_logit, 1.0f, kNegInf, weights_.data(), chunk_sums_);
    const float floor = max_logit - kTopPGatherGap;
    double z_gathered = 0;
    cands_.clear();
    for (int64_t i = 0; i < vocab; ++i) {
      if (logits[i] >= floor) {
        cands_.push_back({logits[i], static_cast<int32_t>(i)});
        z_gathered += weights_[i];
      }
    }
    // Every gathered token outranks every other one, so if they hold top_p of the mass
    // the nucleus lies inside them; otherwise it reaches below the gap: take everything.
    if (z_gathered < params_.top_p * z_all) {
      cands_.resize(vocab);
      for (int64_t i = 0; i < vocab; ++i) cands_[i] = {logits[i], static_cast<int32_t>(i)};
    }
    n = TopPPrefix(cands_.size(), params_.top_p * z_all, max_logit);
  }
  if (params_.min_p > 0) {  // cands_[0, n) is sorted best first; min-p cuts a suffix
    const float threshold = max_logit + std::log(params_.min_p);
    while (n > 1 && cands_[n - 1].logit < threshold) --n;
  }
  return DrawSorted(n);
}

namespace {
// Strict total order: higher logit first, then lower id (deterministic ties).
bool Better(const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}
}  // namespace

size_t Sampler::TopK(const float* logits, int64_t vocab, int32_t k) {
  auto better = [](const Candidate& a, const Candidate& b) { return Better(a, b); };
  cands_.clear();
  if (k <= kHeapTopKLimit) {
    // Heap whose front is the worst kept candidate. Tokens come in increasing id order, so
    // a newcomer beats the front exactly when its logit is strictly higher (an equal logit
    // loses on id); four-token blocks with no such logit are skipped with one compare.
    cands_.reserve(k);
    auto offer = [&](int64_t i) {
      const Candidate c{logits[i], static_cast<int32_t>(i)};
      if (cands_.size() < static_cast<size_t>(k)) {
        cands_.push_back(c);
        std::push_heap(cands_.begin(), cands_.end(), better);
      } else if (c.logit > cands_.front().logit) {
        std::pop_heap(cands_.begin(), cands_.end(), better);
        cands_.back() = c;
        std::push_heap(cands_.begin(), cands_.end(), better);
      }
    };
    int64_t i = 0;
    for (; i + 4 <= vocab; i += 4) {
      if (cands_.size() == static_cast<size_t>(k)) {
        const I4 higher = Load4(logits + i) > cands_.front().logit;
        if ((higher[0] | higher[1] | higher[2] | higher[3]) == 0) continue;
      }
      for (int64_t j = i; j < i + 4; ++j) offer(j);
    }
    for (; i < vocab; ++i) offer(i);
    std::sort_heap(cands_.begin(), cands_.end(), better);
  } else {
    cands_.resize(vocab);
    for (int64_t i = 0; i < vocab; ++i) cands_[i] = {logits[i], static_cast<int32_t>(i)};
    std::nth_element(cands_.begin(), cands_.begin() + k, cands_.end(), better);
    cands_.resize(k);
    std::sort(cands_.begin(), cands_.end(), better);
  }
  return cands_.size();
}

size_t Sampler::TopPPrefix(size_t n, double mass_needed, float max_logit) {
  auto better = [](const Candidate& a, const Candidate& b) { return Better(a, b); };
  // Sort in growing chunks: each round selects the next-best chunk with nth_element and
  // sorts only it, so a peaked distribution costs O(n) rather than O(n log n).
  size_t sorted = 0, chunk = 64;
  double cum = 0;
  while (sorted < n) {
    const size_t end = std::min(n, sorted + chunk);
    auto first = cands_.begin() + sorted;
    if (end < n) std::nth_element(first, cands_.begin() + end, cands_.begin() + n, better);
    std::sort(first, cands_.begin() + end, better);
    for (size_t i = sorted; i < end; ++i) {
      cum += ExpNonPositive(cands_[i].logit - max_logit);
      if (cum >= mass_needed) return i + 1;  // the token that crosses top_p is kept
    }
    sorted = end;
    chunk *= 4;
  }
  return n;
}

int32_t Sampler::SampleUnsorted(const float* logits, int64_t vocab, float max_logit) {
  // min-p compares probabilities at temperature 1: p >= min_p * p_max.
  const float threshold = params_.min_p > 0 ? max_logit + std::log(params_.min_p) : kNegInf;
  weights_.resize(vocab);
  const double total = ComputeWeights(logits, vocab, max_logit, 1.0f / params_.temperature,
                                      threshold, weights_.data(), chunk_sums_);
  const double target = rng_.NextDouble() * total;
  return static_cast<int32_t>(Draw(weights_.data(), vocab, chunk_sums_, target));
}

int32_t Sampler::DrawSorted(size_t n) {
  CHECK_GT(n, 0u);
  const float top = cands_[0].logit;
  const float inv_t = 1.0f / params_.temperature;
  weights_.resize(n);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    weights_[i] = ExpNonPositive((cands_[i].logit - top) * inv_t);
    total += weights_[i];
  }
  const double target = rng_.NextDouble() * total;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += weights_[i];
    if (cum > target) return cands_[i].id;
  }
  return cands_[n - 1].id;
}

}  // namespace vlserve
