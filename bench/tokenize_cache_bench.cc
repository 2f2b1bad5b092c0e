// Would a tokenization cache for repeated prompt segments pay off? (issue #7; the answer
// and the numbers are in docs/caching.md, "Tokenization cache".)
//
// A realistic chat prompt: ChatML pieces around a ~1.5 KB system prompt that every request
// repeats and a short user question that is new each time. Compared:
//   no_cache        Tokenizer::Encode of the whole rendered prompt (what the server does);
//   segment_cache   the prompt split at the template pieces, each segment looked up by
//                   SHA-256 (the text is user input: ARCHITECTURE §4 wants a cryptographic
//                   key) in a bounded map of ids; the system prompt and the pieces hit, the
//                   question misses and is inserted (evicting when full);
//   system_only     Encode of the system prompt alone: the most a cache could save.
// Counters: tokens, and prefill_ms_1700 = the prefill time of those tokens at ~1700 tok/s
// (the 256m preset's prompt speed), to put the microseconds in proportion.
// Vocabs from ../shared/vocab (skipped with a message when absent).
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/encoder_cache.h"
#include "bench_vocab.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::tokenizer {
namespace {

constexpr double kPrefillTokensPerSecond = 1700;

const Tokenizer* Load(const std::string& vocab) { return LoadSharedVocab(vocab); }

const std::string kSystem =
    "You are Atlas, the customer-support assistant of Northwind Hardware, a chain of 42 "
    "hardware stores. Follow these rules in every answer.\n"
    "1. Be brief: at most three sentences unless the customer asks for step-by-step "
    "instructions, in which case use a numbered list of no more than eight steps.\n"
    "2. Name the aisle and shelf of every product you mention, using the store map below. "
    "Never invent prices, stock levels or delivery dates; when you do not know, say so and "
    "offer to connect the customer with a human colleague.\n"
    "3. Safety first: for electrical, gas or structural work, remind the customer that a "
    "licensed professional is required by law in most regions, and never give wiring "
    "diagrams for mains voltage.\n"
    "4. Returns: unused items within 30 days with the receipt; opened power tools within 14 "
    "days only if faulty; paint mixed to order cannot be returned.\n"
    "5. Opening hours: Monday to Friday 8:00-20:00, Saturday 9:00-18:00, Sunday 10:00-16:00; "
    "closed on public holidays. The click-and-collect desk closes 30 minutes earlier.\n"
    "Store map: aisle 1 paint and decorating; aisle 2 hand tools; aisle 3 power tools and "
    "batteries; aisle 4 fasteners, screws, nails and anchors; aisle 5 plumbing; aisle 6 "
    "electrical and lighting; aisle 7 garden and outdoor; aisle 8 timber and sheet "
    "materials (cut-to-size service at the back); aisle 9 storage and shelving; aisle 10 "
    "cleaning and household.\n"
    "Tone: friendly, plain English, no emojis, no marketing language. If the customer "
    "writes in another language, answer in that language.";

const std::string kQuestions[] = {
    "Where can I find wall plugs for a concrete wall, and which size for a 5 kg mirror?",
    "Do you sell cordless drills with two batteries, and can I return one if I open it?",
    "What paint should I use for a bathroom ceiling that gets a lot of steam?",
    "Are you open on Easter Monday? I need to pick up an online order.",
};

// ChatML around the system prompt and question `q`; `segments` gets the same text in
// pieces: template parts, system prompt, question.
std::string Render(const std::string& q, std::vector<std::string_view>* segments) {
  static const std::string kHead = "<|im_start|>system\n";
  static const std::string kMid = "<|im_end|>\n<|im_start|>user\n";
  static const std::string kTail = "<|im_end|>\n<|im_start|>assistant\n";
  if (segments != nullptr) *segments = {kHead, kSystem, kMid, q, kTail};
  return kHead + kSystem + kMid + q + kTail;
}

std::string Question(int64_t i) { return kQuestions[i % 4] + " (order " + std::to_string(i) + ")"; }

// SHA-256(segment) -> ids, bounded by entries (cleared when full: enough for a benchmark
// whose hot set is five segments).
class SegmentCache {
 public:
  explicit SegmentCache(size_t max_entries) : max_entries_(max_entries) {}
  void Append(const Tokenizer& tok, std::string_view segment, std::vector<int32_t>* out) {
    const std::string key = Sha256Hex(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(segment.data()), segment.size()));
    auto it = map_.find(key);
    if (it == map_.end()) {
      if (map_.size() >= max_entries_) map_.clear();
      it = map_.emplace(key, tok.Encode(segment, {.add_special = false})).first;
    }
    out->insert(out->end(), it->second.begin(), it->second.end());
  }

 private:
  size_t max_entries_;
  std::unordered_map<std::string, std::vector<int32_t>> map_;
};

void Report(benchmark::State& state, size_t tokens, size_t bytes) {
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["prefill_ms_1700"] =
      1000.0 * static_cast<double>(tokens) / kPrefillTokensPerSecond;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void BM_NoCache(benchmark::State& state, const std::string& vocab) {
  const Tokenizer* tok = Load(vocab);
  if (tok == nullptr) return state.SkipWithError(("vocab " + vocab + " not found").c_str());
  size_t tokens = 0, bytes = 0;
  int64_t i = 0;
  for (auto _ : state) {
    const std::string prompt = Render(Question(i++), nullptr);
    std::vector<int32_t> ids = tok->Encode(prompt, {.add_special = false});
    tokens = ids.size();
    bytes = prompt.size();
    benchmark::DoNotOptimize(ids.data());
  }
  Report(state, tokens, bytes);
}

void BM_SegmentCache(benchmark::State& state, const std::string& vocab) {
  const Tokenizer* tok = Load(vocab);
  if (tok == nullptr) return state.SkipWithError(("vocab " + vocab + " not found").c_str());
  SegmentCache cache(256);
  size_t tokens = 0, bytes = 0;
  int64_t i = 0;
  std::vector<std::string_view> segments;
  std::vector<int32_t> ids;
  for (auto _ : state) {
    const std::string q = Question(i++);
    const std::string prompt = Render(q, &segments);
    ids.clear();
    for (std::string_view s : segments) cache.Append(*tok, s, &ids);
    tokens = ids.size();
    bytes = prompt.size();
    benchmark::DoNotOptimize(ids.data());
  }
  Report(state, tokens, bytes);
}

void BM_SystemOnly(benchmark::State& state, const std::string& vocab) {
  const Tokenizer* tok = Load(vocab);
  if (tok == nullptr) return state.SkipWithError(("vocab " + vocab + " not found").c_str());
  size_t tokens = 0;
  for (auto _ : state) {
    std::vector<int32_t> ids = tok->Encode(kSystem, {.add_special = false});
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  Report(state, tokens, kSystem.size());
}

BENCHMARK_CAPTURE(BM_NoCache, gpt2, "gpt-2")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SegmentCache, gpt2, "gpt-2")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SystemOnly, gpt2, "gpt-2")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_NoCache, llama_spm, "llama-spm")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SegmentCache, llama_spm, "llama-spm")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SystemOnly, llama_spm, "llama-spm")->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace vlserve::tokenizer
