// The qwen3vl architecture (Qwen3-VL language model, arch/qwen3vl.cc): the loader checks its
// tensors and metadata, and the forward pass equals an independent float64 implementation
// of Hugging Face's Qwen3VLTextModel written in this file from modeling_qwen3_vl.py: q_norm /
// k_norm per head before RoPE, Qwen3VLTextRotaryEmbedding with apply_interleaved_mrope
// (freqs_t[..., offset:3*section:3] = freqs[axis]) and rotate_half, and
// _deepstack_process (hidden_states[visual_pos_masks] += deepstack_visual_embeds[k] after
// decoder layer k).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>

#include "model_test_util.h"

namespace vlserve::models {
namespace {

using ::testing::HasSubstr;
using testing::Iota;
using testing::MaxAbs;
using testing::MaxAbsDiff;

// Tiny Qwen3-VL-shaped model: hidden 64, 4 heads of an explicit 24 (not 64 / 4), 3 layers of
// which the first 2 take deepstack slices; 12 rotation pairs in sections [6, 3, 3, 0], so
// the interleaved pattern (t h w t h w t h w t t t) ends in a tail of t pairs, as
// [24, 20, 20] at head_dim 128 does.
TestModelOptions Qwen3VlOptions() {
  TestModelOptions o;
  o.arch = "qwen3vl";
  o.layers = 3;
  o.head_dim = 24;
  o.deepstack_layers = 2;
  o.rope_sections = TestRopeSections(o);
  return o;
}

// ---- The reference (float64, from the GGUF's dequantized tensors) ----

using Vec = std::vector<double>;

struct RefModel {
  const gguf::File* file;
  int64_t hidden, heads, kv_heads, head_dim, ffn, vocab, layers, deepstack;
  double eps, base;
  std::array<int32_t, 4> sections;

  Vec Tensor(const std::string& name) const { return testing::RefTensor(*file, name); }
  static Vec MatVec(const Vec& w, const Vec& x, int64_t rows) {  // W stored [cols, rows]
    return testing::RefMatVec(w, x, rows);
  }
  Vec RmsNorm(const double* x, int64_t n, const Vec& w) const {
    return testing::RefRmsNorm(x, n, w, eps);
  }
  Vec RmsNorm(const Vec& x, const Vec& w) const {
    return RmsNorm(x.data(), static_cast<int64_t>(x.size()), w);
  }
  // Qwen3VLTextRotaryEmbedding + apply_rotary_pos_emb on one head, pos = (t, h, w).
  void HfRope(double* x, const std::array<int32_t, 3>& pos) const {
    const int64_t half = head_dim / 2;
    std::array<Vec, 3> freqs;  // [axis][half]: position_ids[axis] * inv_freq
    for (int a = 0; a < 3; ++a) {
      freqs[a].resize(half);
      for (int64_t j = 0; j < half; ++j) {
        freqs[a][j] = pos[a] / std::pow(base, static_cast<double>(2 * j) / head_dim);
      }
    }
    // apply_interleaved_mrope: start from T, overwrite slice(offset, 3 * section, 3).
    Vec freqs_t = freqs[0];
    for (int axis = 1; axis <= 2; ++axis) {
      for (int64_t j = axis; j < 3 * sections[axis]; j += 3) freqs_t[j] = freqs[axis][j];
    }
    // emb = cat(freqs_t, freqs_t); x * cos + rotate_half(x) * sin, rotate_half = (-x2, x1).
    Vec out(head_dim);
    for (int64_t d = 0; d < head_dim; ++d) {
      const double angle = freqs_t[d % half];
      const double rotated = d < half ? -x[d + half] : x[d - half];
      out[d] = x[d] * std::cos(angle) + rotated * std::sin(angle);
    }
    std::copy(out.begin(), out.end(), x);
  }

  // Logits [n, vocab]. tokens[i] < 0: inputs_embeds[i] is the first `hidden` values of
  // image_rows[i] (inputs_embeds.masked_scatter(image_mask, image_embeds)) and it is a
  // visual position; deepstack_visual_embeds[k][i] are its values [(k+1)H, (k+2)H).
  std::vector<Vec> Forward(const std::vector<int32_t>& tokens, const std::vector<Vec>& image_rows,
                           const std::vector<std::array<int32_t, 3>>& pos) const {
    const auto n = static_cast<int64_t>(tokens.size());
    const Vec embd = Tensor("token_embd.weight");
    std::vector<Vec> x(n);
    for (int64_t i = 0; i < n; ++i) {
      if (tokens[i] >= 0) {
        x[i].assign(embd.begin() + tokens[i] * hidden, embd.begin() + (tokens[i] + 1) * hidden);
      } else {
        x[i].assign(image_rows[i].begin(), image_rows[i].begin() + hidden);
      }
    }
    const int64_t q_dim = heads * head_dim, kv_dim = kv_heads * head_dim;
    for (int64_t l = 0; l < layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const Vec attn_norm = Tensor(p + "attn_norm.weight"), wq = Tensor(p + "attn_q.weight"),
                wk = Tensor(p + "attn_k.weight"), wv = Tensor(p + "attn_v.weight"),
                q_norm = Tensor(p + "attn_q_norm.weight"),
                k_norm = Tensor(p + "attn_k_norm.weight"), wo = Tensor(p + "attn_output.weight"),
                ffn_norm = Tensor(p + "ffn_norm.weight"), gate = Tensor(p + "ffn_gate.weight"),
                up = Tensor(p + "ffn_up.weight"), down = Tensor(p + "ffn_down.weight");
      std::vector<Vec> q(n), k(n), v(n);
      for (int64_t i = 0; i < n; ++i) {
        const Vec h = RmsNorm(x[i], attn_norm);
        q[i] = MatVec(wq, h, q_dim);
        k[i] = MatVec(wk, h, kv_dim);
        v[i] = MatVec(wv, h, kv_dim);
        for (int64_t hd = 0; hd < heads; ++hd) {
          double* qh = q[i].data() + hd * head_dim;
          const Vec normed = RmsNorm(qh, head_dim, q_norm);
          std::copy(normed.begin(), normed.end(), qh);
          HfRope(qh, pos[i]);
        }
        for (int64_t hd = 0; hd < kv_heads; ++hd) {
          double* kh = k[i].data() + hd * head_dim;
          const Vec normed = RmsNorm(kh, head_dim, k_norm);
          std::copy(normed.begin(), normed.end(), kh);
          HfRope(kh, pos[i]);
        }
      }
      const std::vector<Vec> attn = testing::RefCausalAttention(q, k, v, heads, kv_heads, head_dim);
      for (int64_t i = 0; i < n; ++i) {
        const Vec o = MatVec(wo, attn[i], hidden);
        for (int64_t d = 0; d < hidden; ++d) x[i][d] += o[d];
      }
      for (int64_t i = 0; i < n; ++i) {
        const Vec h = RmsNorm(x[i], ffn_norm);
        const Vec g = MatVec(gate, h, ffn), u = MatVec(up, h, ffn);
        Vec act(ffn);
        for (int64_t d = 0; d < ffn; ++d) act[d] = u[d] * g[d] / (1.0 + std::exp(-g[d]));
        const Vec mlp = MatVec(down, act, hidden);
        for (int64_t d = 0; d < hidden; ++d) x[i][d] += mlp[d];
        if (l < deepstack && tokens[i] < 0) {  // _deepstack_process
          for (int64_t d = 0; d < hidden; ++d) x[i][d] += image_rows[i][(l + 1) * hidden + d];
        }
      }
    }
    const Vec out_norm = Tensor("output_norm.weight");
    const Vec out =
        file->FindTensor("output.weight") != nullptr ? Tensor("output.weight") : embd;  // tied
    std::vector<Vec> logits(n);
    for (int64_t i = 0; i < n; ++i) logits[i] = MatVec(out, RmsNorm(x[i], out_norm), vocab);
    return logits;
  }
};

RefModel MakeRef(const TextModel& model) {
  const TextConfig& c = model.config();
  return RefModel{&model.file(),      c.hidden,  c.num_heads, c.num_kv_heads,
                  c.head_dim,         c.ffn,     c.vocab,     c.num_layers,
                  c.deepstack_layers, c.rms_eps, c.rope_base, c.rope_sections.pairs};
}

// A prompt of 2 text tokens, a 2 x 3 image grid at p = 2 (rows of the wide embeddings),
// then text from p = 2 + max(2, 3) = 5 (docs/architecture.md "Positions").
struct Prompt {
  std::vector<int32_t> tokens = {5, 77, -1, -1, -1, -1, -1, -1, 9, 400, 31};
  std::vector<int32_t> rope = {0, 0, 0, 0, 1, 1, 1, 0,              //
                               2, 2, 2, 0, 2, 2, 3, 0, 2, 2, 4, 0,  //
                               2, 3, 2, 0, 2, 3, 3, 0, 2, 3, 4, 0,  //
                               5, 5, 5, 0, 6, 6, 6, 0, 7, 7, 7, 0};
  std::vector<float> embeddings;  // [tokens, embedding_width]; zero rows at text tokens

  explicit Prompt(const TextConfig& c) {
    const int64_t width = c.embedding_width();
    embeddings.assign(tokens.size() * width, 0.0f);
    const std::vector<float> r =
        TestRandomValues(7, "image", static_cast<int64_t>(tokens.size()) * width, 0.0, 1.0);
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] >= 0) continue;
      std::copy_n(r.begin() + i * width, width, embeddings.begin() + i * width);
    }
  }
  std::vector<std::vector<double>> Rows(int64_t width) const {
    std::vector<Vec> rows(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      rows[i].assign(embeddings.begin() + i * width, embeddings.begin() + (i + 1) * width);
    }
    return rows;
  }
  std::vector<std::array<int32_t, 3>> Positions() const {
    std::vector<std::array<int32_t, 3>> pos(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      pos[i] = {rope[4 * i], rope[4 * i + 1], rope[4 * i + 2]};
    }
    return pos;
  }
};

std::vector<float> Flatten(const std::vector<Vec>& rows) {
  std::vector<float> out;
  for (const Vec& row : rows) out.insert(out.end(), row.begin(), row.end());
  return out;
}

TEST(Qwen3VlTest, LoadsMakeTestModelFiles) {
  auto model = testing::MakeModel(Qwen3VlOptions());
  ASSERT_NE(model, nullptr);
  const TextConfig& c = model->config();
  EXPECT_EQ(c.head_dim, 24);  // attention.key_length, not 64 / 4
  EXPECT_EQ(c.rope_dims, 24);
  EXPECT_EQ(c.deepstack_layers, 2);
  EXPECT_EQ(c.embedding_width(), 3 * 64);
  EXPECT_TRUE(c.tied_output);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_EQ(c.rope_base, 5000000.0);
  EXPECT_EQ(c.rope_style, kernels::RopeStyle::kNeox);
  EXPECT_TRUE(c.rope_sections.interleaved);
  EXPECT_EQ(c.rope_sections.pairs, (std::array<int32_t, 4>{6, 3, 3, 0}));
}

TEST(Qwen3VlTest, ImagePromptWithDeepstackMatchesHuggingFaceReference) {
  auto model = testing::MakeModel(Qwen3VlOptions());
  ASSERT_NE(model, nullptr);
  const TextConfig& c = model->config();
  const Prompt prompt(c);
  const auto n = static_cast<int64_t>(prompt.tokens.size());
  const int64_t nb = (n + kKvBlockSize - 1) / kKvBlockSize;
  KvBuffer kv(c, nb, DType::kF32);
  ForwardScratch scratch;
  const std::vector<int32_t> blocks = Iota(0, static_cast<int32_t>(nb));
  BatchItem item{blocks.data(),     nb, 0, prompt.tokens, prompt.embeddings.data(), true,
                 prompt.rope.data()};
  std::vector<float> logits(n * c.vocab);
  ASSERT_TRUE(model->Forward({item}, kv, scratch, logits.data()).ok());
  const RefModel ref = MakeRef(*model);
  const std::vector<float> expected =
      Flatten(ref.Forward(prompt.tokens, prompt.Rows(c.embedding_width()), prompt.Positions()));
  const float scale = MaxAbs(expected);
  ASSERT_GT(scale, 1.0f);
  EXPECT_LT(MaxAbsDiff(logits, expected), 1e-4f * scale);

  // The reference can fail: without the deepstack slices it is far off.
  RefModel no_deepstack = ref;
  no_deepstack.deepstack = 0;
  const std::vector<float> plain = Flatten(
      no_deepstack.Forward(prompt.tokens, prompt.Rows(c.embedding_width()), prompt.Positions()));
  EXPECT_GT(MaxAbsDiff(plain, expected), 0.05f * scale);
}

TEST(Qwen3VlTest, ChunkedPrefillCarriesTheWideRows) {
  // Prefill in two chunks split inside the image, then compare the last logits with the
  // one-shot reference: each chunk's BatchItem carries its own rows of wide embeddings.
  auto model = testing::MakeModel(Qwen3VlOptions());
  ASSERT_NE(model, nullptr);
  const TextConfig& c = model->config();
  const Prompt prompt(c);
  const int64_t n = static_cast<int64_t>(prompt.tokens.size()), split = 5;
  const int64_t width = c.embedding_width();
  KvBuffer kv(c, 1, DType::kF32);
  ForwardScratch scratch;
  const std::vector<int32_t> blocks = {0};
  std::vector<float> logits(c.vocab);
  BatchItem first{blocks.data(),
                  1,
                  0,
                  std::span<const int32_t>(prompt.tokens.data(), split),
                  prompt.embeddings.data(),
                  false,
                  prompt.rope.data()};
  ASSERT_TRUE(model->Forward({first}, kv, scratch, logits.data()).ok());
  BatchItem second{blocks.data(),
                   1,
                   split,
                   std::span<const int32_t>(prompt.tokens.data() + split, n - split),
                   prompt.embeddings.data() + split * width,
                   false,
                   prompt.rope.data() + 4 * split};
  ASSERT_TRUE(model->Forward({second}, kv, scratch, logits.data()).ok());
  const std::vector<Vec> ref =
      MakeRef(*model).Forward(prompt.tokens, prompt.Rows(width), prompt.Positions());
  const std::vector<float> last(ref.back().begin(), ref.back().end());
  EXPECT_LT(MaxAbsDiff(logits, last), 1e-4f * MaxAbs(last));
}

TEST(Qwen3VlTest, TextOnlyMatchesReferenceWithDefaultHeadDim) {
  TestModelOptions o = Qwen3VlOptions();
  o.head_dim = 0;  // 64 / 4 = 16: 8 pairs, sections [4, 2, 2, 0]
  o.rope_sections = TestRopeSections(o);
  o.tied = false;
  auto model = testing::MakeModel(o);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->config().head_dim, 16);
  std::vector<int32_t> tokens(40);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % 512);
  const auto n = static_cast<int64_t>(tokens.size());
  KvBuffer kv(model->config(), 3, DType::kF32);
  ForwardScratch scratch;
  const std::vector<int32_t> blocks = Iota(0, 3);
  std::vector<float> logits(n * model->config().vocab);
  std::vector<std::array<int32_t, 3>> pos(n);
  for (int64_t i = 0; i < n; ++i) pos[i] = {int32_t(i), int32_t(i), int32_t(i)};
  BatchItem item{blocks.data(), 3, 0, tokens, nullptr, true, nullptr};
  ASSERT_TRUE(model->Forward({item}, kv, scratch, logits.data()).ok());
  const std::vector<float> expected = Flatten(MakeRef(*model).Forward(tokens, {}, pos));
  EXPECT_LT(MaxAbsDiff(logits, expected), 1e-4f * MaxAbs(expected));
}

TEST(Qwen3VlTest, Qwen3Vl2bPresetHasTheHuggingFaceShape) {
  auto o = TestModelPreset("qwen3vl-2b");  // Qwen/Qwen3-VL-2B-Instruct text_config
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->arch, "qwen3vl");
  EXPECT_EQ(o->hidden, 2048);
  EXPECT_EQ(o->layers, 28);
  EXPECT_EQ(o->heads, 16);
  EXPECT_EQ(o->kv_heads, 8);
  EXPECT_EQ(TestHeadDim(*o), 128);
  EXPECT_EQ(o->ffn, 6144);
  EXPECT_EQ(o->vocab, 151936);
  EXPECT_EQ(o->rope_base, 5000000.0);
  EXPECT_EQ(o->tied, true);
  EXPECT_EQ(TestDeepstackLayers(*o), 3);
  const std::array<int32_t, 4> hf_sections = {24, 20, 20, 0};
  EXPECT_EQ(*o->rope_sections, hf_sections);
  EXPECT_EQ(TestRopeSections(*o), hf_sections);  // the tiny models' rule gives the same split
}

TEST(Qwen3VlTest, QuantizedModelLoadsAndRuns) {
  TestModelOptions o = Qwen3VlOptions();
  o.head_dim = 32;
  o.rope_sections = TestRopeSections(o);
  o.type = DType::kQ8_0;
  auto model = testing::MakeModel(o);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(testing::Greedy(*model, {1, 2, 3}, 4).size(), 4u);
}

// ---- Loader errors ----

using testing::Rewrite;

Status LoadRewritten(const Rewrite& r) { return testing::LoadRewritten(Qwen3VlOptions(), r); }

TEST(Qwen3VlLoadErrorsTest, MissingQkNormIsNamed) {
  Rewrite r;
  r.keep_tensor = [](const std::string& n) { return n != "blk.2.attn_k_norm.weight"; };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("blk.2.attn_k_norm.weight"));
  EXPECT_THAT(s.message(), HasSubstr("bad.gguf"));
}

TEST(Qwen3VlLoadErrorsTest, WithoutKeyLengthTheHeadsAreHiddenOverHeads) {
  // 64 / 4 = 16, but the file's Q rows are 4 x 24: a shape error naming attn_q (the RoPE
  // keys sized for 24 are dropped too, else they are refused first).
  Rewrite r;
  r.keep_key = [](const std::string& k) {
    return k != "qwen3vl.attention.key_length" && k != "qwen3vl.attention.value_length" &&
           k != "qwen3vl.rope.dimension_count" && k != "qwen3vl.rope.dimension_sections";
  };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_q.weight"));
}

TEST(Qwen3VlLoadErrorsTest, ValueLengthMustEqualKeyLength) {
  Rewrite r;
  r.keep_key = [](const std::string& k) { return k != "qwen3vl.attention.value_length"; };
  r.add = [](gguf::Writer& w) { w.Set("qwen3vl.attention.value_length", gguf::Value::U32(16)); };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("value_length"));
}

TEST(Qwen3VlLoadErrorsTest, DeepstackBeyondTheLayersIsRefused) {
  Rewrite r;
  r.keep_key = [](const std::string& k) { return k != "qwen3vl.n_deepstack_layers"; };
  r.add = [](gguf::Writer& w) { w.Set("qwen3vl.n_deepstack_layers", gguf::Value::U32(4)); };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("qwen3vl.n_deepstack_layers"));
}

TEST(Qwen3VlLoadErrorsTest, NoDeepstackKeyMeansPlainRows) {
  Rewrite r;
  r.keep_key = [](const std::string& k) { return k != "qwen3vl.n_deepstack_layers"; };
  EXPECT_TRUE(LoadRewritten(r).ok());  // llama.cpp reads the key as optional (0)
}

TEST(Qwen3VlVocabTest, QwenSpecialTokensAndChatMlTemplate) {
  auto v = BuildTestVocab("qwen3vl", 0);
  ASSERT_TRUE(v.ok());
  auto q2 = BuildTestVocab("qwen2", 0);
  ASSERT_TRUE(q2.ok());
  EXPECT_EQ(v->tokens, q2->tokens);  // Qwen3-VL keeps Qwen2's special tokens and ids
  EXPECT_EQ(v->pre, "qwen2");
  EXPECT_EQ(v->tokens[v->eos], "<|im_end|>");
  for (const char* s : {"<|vision_start|>", "<|vision_end|>", "<|image_pad|>"}) {
    auto it = std::find(v->tokens.begin(), v->tokens.end(), s);
    ASSERT_NE(it, v->tokens.end()) << s;
    EXPECT_EQ(v->token_types[it - v->tokens.begin()], 3) << s;
  }
  EXPECT_THAT(v->chat_template, HasSubstr("<|vision_start|><|image_pad|><|vision_end|>"));
  EXPECT_THAT(v->chat_template, HasSubstr("<|im_start|>assistant\n"));
}

}  // namespace
}  // namespace vlserve::models
