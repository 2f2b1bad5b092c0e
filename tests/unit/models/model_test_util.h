// Helpers shared by the models tests: build a test model in memory, run prompts through
// the paged forward pass, greedy decoding.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "models/text_model.h"

namespace vlserve::models::testing {

inline std::string BuildBytes(const TestModelOptions& options) {
  auto writer = BuildTestModel(options);
  EXPECT_TRUE(writer.ok()) << writer.status().ToString();
  return writer.ok() ? writer->WriteToString() : std::string();
}

inline std::unique_ptr<TextModel> LoadFromBytes(std::string bytes, std::string name = "test") {
  auto file = gguf::File::FromBytes(std::move(bytes), std::move(name));
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return nullptr;
  auto model = LoadTextModel(std::move(*file));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(*model) : nullptr;
}

inline std::unique_ptr<TextModel> MakeModel(const TestModelOptions& options) {
  return LoadFromBytes(BuildBytes(options));
}

inline std::vector<int32_t> Iota(int32_t first, int32_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Runs `tokens` at positions [start, start + n) with the given block table and returns
// logits for all of them ([n, vocab]).
inline std::vector<float> RunAll(const TextModel& model, KvBuffer& kv, ForwardScratch& scratch,
                                 const std::vector<int32_t>& blocks,
                                 const std::vector<int32_t>& tokens, int64_t start) {
  BatchItem item;
  item.block_table = blocks.data();
  item.num_blocks = static_cast<int64_t>(blocks.size());
  item.start_pos = start;
  item.tokens = tokens;
  item.logits_for_all = true;
  std::vector<float> logits(tokens.size() * model.config().vocab);
  Status s = model.Forward({item}, kv, scratch, logits.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return logits;
}

inline int32_t Argmax(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

// Greedy continuation: prompt in one prefill, then `steps` single-token decodes.
inline std::vector<int32_t> Greedy(const TextModel& model, const std::vector<int32_t>& prompt,
                                   int steps, DType kv_type = DType::kF32) {
  const int64_t total = static_cast<int64_t>(prompt.size()) + steps;
  KvBuffer kv(model.config(), (total + kKvBlockSize - 1) / kKvBlockSize, kv_type);
  ForwardScratch scratch;
  std::vector<int32_t> blocks = Iota(0, static_cast<int32_t>(kv.num_blocks()));
  std::vector<int32_t> out;
  std::vector<float> logits(model.config().vocab);
  std::vector<int32_t> feed = prompt;
  int64_t pos = 0;
  for (int i = 0; i < steps; ++i) {
    BatchItem item{blocks.data(), kv.num_blocks(), pos, feed, nullptr, false};
    Status s = model.Forward({item}, kv, scratch, logits.data());
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) break;
    pos += static_cast<int64_t>(feed.size());
    out.push_back(Argmax(logits.data(), model.config().vocab));
    feed = {out.back()};
  }
  return out;
}

inline float MaxAbs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

inline float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace vlserve::models::testing
