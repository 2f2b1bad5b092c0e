// Tokenizer throughput (MB/s of input text, one thread) on the llama.cpp vocab files in
// ../shared/vocab. Texts: `prose` = tests/golden/english_prose.txt repeated to 4 MiB (the
// word cache is warm after the first paragraphs, as in long English documents);
// `unique` = 4 MiB of generated pseudo-words that are almost all distinct, so nearly every
// word misses the cache and runs the full BPE merge loop (worst case).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include "bench_vocab.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::tokenizer {
namespace {

constexpr size_t kTextBytes = size_t{4} << 20;

const Tokenizer* Load(const std::string& vocab) { return LoadSharedVocab(vocab); }

const std::string& ProseText() {
  static const std::string text = [] {
    std::ifstream in(VLSERVE_SOURCE_DIR "/tests/golden/english_prose.txt", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string para = ss.str();
    std::string out;
    while (!para.empty() && out.size() < kTextBytes) out += para;
    return out;
  }();
  return text;
}

const std::string& UniqueWordsText() {
  static const std::string text = [] {
    static const char* kSyllables[] = {"ka", "lo",  "mi",  "ter", "sun", "dra", "vel", "on",
                                       "ix", "pre", "qua", "bel", "st",  "orn", "ee",  "gh"};
    std::mt19937 rng(42);
    std::string out;
    while (out.size() < kTextBytes) {
      const int n = 2 + static_cast<int>(rng() % 4);
      out += ' ';
      for (int i = 0; i < n; ++i) out += kSyllables[rng() % 16];
      if (rng() % 10 == 0) out += rng() % 2 ? "," : ".";
    }
    return out;
  }();
  return text;
}

void BM_Encode(benchmark::State& state, const std::string& vocab, const std::string& text) {
  const Tokenizer* tok = Load(vocab);
  if (tok == nullptr) {
    state.SkipWithError(("vocab " + vocab + " not found in ../shared/vocab").c_str());
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    std::vector<int32_t> ids = tok->Encode(text, {.add_special = false});
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["bytes/token"] = static_cast<double>(text.size()) / std::max<size_t>(tokens, 1);
}

void BM_Decode(benchmark::State& state, const std::string& vocab) {
  const Tokenizer* tok = Load(vocab);
  if (tok == nullptr) {
    state.SkipWithError(("vocab " + vocab + " not found in ../shared/vocab").c_str());
    return;
  }
  const std::vector<int32_t> ids = tok->Encode(ProseText(), {.add_special = false});
  for (auto _ : state) {
    std::string text = tok->Decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * ProseText().size()));
}

BENCHMARK_CAPTURE(BM_Encode, gpt2_prose, "gpt-2", ProseText())->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, starcoder_prose, "starcoder", ProseText())
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, deepseek_coder_prose, "deepseek-coder", ProseText())
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama_spm_prose, "llama-spm", ProseText())
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, gpt2_unique, "gpt-2", UniqueWordsText())
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, starcoder_unique, "starcoder", UniqueWordsText())
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, gpt2_prose, "gpt-2")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vlserve::tokenizer
