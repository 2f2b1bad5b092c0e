// Helpers shared by the models tests: build a test model in memory, run prompts through
// the paged forward pass, greedy decoding.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
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

// A valid test model copied into a new GGUF, for the loader's errors: keys and tensors the
// filters refuse left out, then what `add` writes.
struct Rewrite {
  std::function<bool(const std::string&)> keep_key = [](const std::string&) { return true; };
  std::function<bool(const std::string&)> keep_tensor = [](const std::string&) { return true; };
  std::function<void(gguf::Writer&)> add = [](gguf::Writer&) {};
};

// LoadTextModel's status on the model `source` builds, rewritten by `r` (named "bad.gguf").
inline Status LoadRewritten(const TestModelOptions& source, const Rewrite& r) {
  auto src = gguf::File::FromBytes(BuildBytes(source), "src");
  if (!src.ok()) return src.status();
  gguf::Writer w;
  for (const auto& [key, value] : (*src)->metadata()) {
    if (r.keep_key(key)) w.Set(key, value);
  }
  for (const gguf::TensorInfo& t : (*src)->tensors()) {
    if (!r.keep_tensor(t.name)) continue;
    RETURN_IF_ERROR(w.AddTensor(t.name, t.type, t.shape, t.data, t.num_bytes));
  }
  r.add(w);
  ASSIGN_OR_RETURN(auto file, gguf::File::FromBytes(w.WriteToString(), "bad.gguf"));
  return LoadTextModel(std::move(file)).status();
}

// ---- Pieces of the float64 references the architecture tests write from HF's code ----

using RefVec = std::vector<double>;

// The file's tensor dequantized, in double; empty (and a failure) if it is missing.
inline RefVec RefTensor(const gguf::File& file, const std::string& name) {
  const gguf::TensorInfo* t = file.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  int64_t n = 1;
  for (int64_t d : t->shape) n *= d;
  std::vector<float> f(n);
  kernels::Dequantize(t->type, t->data, f.data(), n);
  return RefVec(f.begin(), f.end());
}

// y = W x for W stored [cols, rows] (ne0 = cols).
inline RefVec RefMatVec(const RefVec& w, const RefVec& x, int64_t rows) {
  const auto cols = static_cast<int64_t>(x.size());
  RefVec y(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * x[c];
  }
  return y;
}

// HF's RMSNorm: x / sqrt(mean(x²) + eps) * w over n values.
inline RefVec RefRmsNorm(const double* x, int64_t n, const RefVec& w, double eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  RefVec y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// Causal softmax(q k^T / sqrt(head_dim)) v per head, head h reading KV head h / (heads /
// kv_heads) (HF's repeat_kv). q[i]: [heads * head_dim], k[i], v[i]: [kv_heads * head_dim];
// returns [n][heads * head_dim].
inline std::vector<RefVec> RefCausalAttention(const std::vector<RefVec>& q,
                                              const std::vector<RefVec>& k,
                                              const std::vector<RefVec>& v, int64_t heads,
                                              int64_t kv_heads, int64_t head_dim) {
  const auto n = static_cast<int64_t>(q.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<RefVec> out(n);
  for (int64_t i = 0; i < n; ++i) {
    RefVec attn(heads * head_dim, 0.0);
    for (int64_t hd = 0; hd < heads; ++hd) {
      const int64_t g = hd / (heads / kv_heads);
      RefVec score(i + 1);
      double m = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < head_dim; ++d) {
          dot += q[i][hd * head_dim + d] * k[j][g * head_dim + d];
        }
        score[j] = dot * scale;
        m = std::max(m, score[j]);
      }
      double sum = 0;
      for (double& s : score) sum += s = std::exp(s - m);
      for (int64_t j = 0; j <= i; ++j) {
        for (int64_t d = 0; d < head_dim; ++d) {
          attn[hd * head_dim + d] += score[j] / sum * v[j][g * head_dim + d];
        }
      }
    }
    out[i] = std::move(attn);
  }
  return out;
}

}  // namespace vlserve::models::testing
