// The glm4 architecture (GLM-4 / GLM-4.1V language model, arch/glm4.cc): the loader checks
// its tensors, and the forward pass equals an independent float64 implementation of
// Hugging Face's Glm4vTextModel written in this file (HF's order of the Q/K rows,
// interleaved partial RoPE with mrope_section as apply_multimodal_rotary_pos_emb builds its
// cos/sin tables, gate_up_proj chunked in two, sandwich norms).
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

// Tiny GLM-4.1V-shaped model: head_dim 16, 8 rotated dims = 4 pairs, sections [2, 1, 1, 0].
TestModelOptions Glm4Options(bool sections) {
  TestModelOptions o;
  o.arch = "glm4";
  if (sections) o.rope_sections = TestRopeSections(o);
  return o;
}

// ---- The reference (float64, from the GGUF's dequantized tensors) ----

using Vec = std::vector<double>;

struct RefModel {
  const gguf::File* file;
  int64_t hidden, heads, kv_heads, head_dim, rope_dims, ffn, vocab, layers;
  double eps, base;
  std::array<int32_t, 4> sections;  // HF mrope_section (+ 0); all 0 = 1-D positions
  bool neox_rows;                   // the file's Q/K rows are in llama.cpp's neox order

  Vec Tensor(const std::string& name) const { return testing::RefTensor(*file, name); }
  static Vec MatVec(const Vec& w, const Vec& x, int64_t rows) {
    return testing::RefMatVec(w, x, rows);
  }
  Vec RmsNorm(const Vec& x, const Vec& w) const {
    return testing::RefRmsNorm(x.data(), static_cast<int64_t>(x.size()), w, eps);
  }
  // Undoes convert_hf_to_gguf.py's Glm4Model.normal_to_neox on one head: the file's rows
  // [0, R/2) are HF's even dims, [R/2, R) its odd dims.
  void ToHfOrder(double* head) const {
    if (!neox_rows) return;
    const int64_t half = rope_dims / 2;
    Vec hf(head, head + rope_dims);
    for (int64_t j = 0; j < half; ++j) {
      hf[2 * j] = head[j];
      hf[2 * j + 1] = head[half + j];
    }
    std::copy(hf.begin(), hf.end(), head);
  }
  // apply_multimodal_rotary_pos_emb on one head in HF's order, with pos = (t, h, w).
  void HfRope(double* x, const std::array<int32_t, 3>& pos) const {
    const int64_t half = rope_dims / 2;
    // emb = cat(freqs, freqs) per axis, [3][R]
    std::vector<Vec> emb(3, Vec(rope_dims));
    for (int a = 0; a < 3; ++a) {
      for (int64_t j = 0; j < rope_dims; ++j) {
        const double inv_freq = 1.0 / std::pow(base, static_cast<double>(2 * (j % half)) /
                                                         static_cast<double>(rope_dims));
        emb[a][j] = pos[a] * inv_freq;
      }
    }
    // Split by mrope_section * 2, chunk i from axis i % 3 (1-D: all axes equal anyway).
    Vec chosen(rope_dims);
    std::vector<int32_t> split;
    if (sections[0] + sections[1] + sections[2] > 0) {
      for (int rep = 0; rep < 2; ++rep) {
        split.insert(split.end(), sections.begin(), sections.begin() + 3);
      }
    } else {
      split = {static_cast<int32_t>(rope_dims)};
    }
    int64_t at = 0;
    for (size_t i = 0; i < split.size(); ++i) {
      for (int32_t k = 0; k < split[i]; ++k, ++at) chosen[at] = emb[i % 3][at];
    }
    EXPECT_EQ(at, rope_dims);
    // cos[..., :R/2].repeat_interleave(2); rotate_half_llm pairs (2j, 2j+1).
    for (int64_t j = 0; j < half; ++j) {
      const double c = std::cos(chosen[j]), s = std::sin(chosen[j]);
      const double x0 = x[2 * j], x1 = x[2 * j + 1];
      x[2 * j] = x0 * c - x1 * s;
      x[2 * j + 1] = x1 * c + x0 * s;
    }
  }

  // Logits [n, vocab] for `tokens` with HF position_ids (t, h, w) per token.
  std::vector<Vec> Forward(const std::vector<int32_t>& tokens,
                           const std::vector<std::array<int32_t, 3>>& pos) const {
    const auto n = static_cast<int64_t>(tokens.size());
    const Vec embd = Tensor("token_embd.weight");
    std::vector<Vec> x(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i].assign(embd.begin() + tokens[i] * hidden, embd.begin() + (tokens[i] + 1) * hidden);
    }
    const int64_t q_dim = heads * head_dim, kv_dim = kv_heads * head_dim;
    for (int64_t l = 0; l < layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const Vec attn_norm = Tensor(p + "attn_norm.weight"), wq = Tensor(p + "attn_q.weight"),
                wk = Tensor(p + "attn_k.weight"), wv = Tensor(p + "attn_v.weight"),
                bq = Tensor(p + "attn_q.bias"), bk = Tensor(p + "attn_k.bias"),
                bv = Tensor(p + "attn_v.bias"), wo = Tensor(p + "attn_output.weight"),
                post_attn = Tensor(p + "post_attention_norm.weight"),
                ffn_norm = Tensor(p + "ffn_norm.weight"), gate_up = Tensor(p + "ffn_up.weight"),
                down = Tensor(p + "ffn_down.weight"), post_ffw = Tensor(p + "post_ffw_norm.weight");
      std::vector<Vec> q(n), k(n), v(n);
      for (int64_t i = 0; i < n; ++i) {
        const Vec h = RmsNorm(x[i], attn_norm);
        q[i] = MatVec(wq, h, q_dim);
        k[i] = MatVec(wk, h, kv_dim);
        v[i] = MatVec(wv, h, kv_dim);
        for (int64_t d = 0; d < q_dim; ++d) q[i][d] += bq[d];
        for (int64_t d = 0; d < kv_dim; ++d) k[i][d] += bk[d], v[i][d] += bv[d];
        for (int64_t hd = 0; hd < heads; ++hd) {
          ToHfOrder(q[i].data() + hd * head_dim);
          HfRope(q[i].data() + hd * head_dim, pos[i]);
        }
        for (int64_t hd = 0; hd < kv_heads; ++hd) {
          ToHfOrder(k[i].data() + hd * head_dim);
          HfRope(k[i].data() + hd * head_dim, pos[i]);
        }
      }
      const std::vector<Vec> attn = testing::RefCausalAttention(q, k, v, heads, kv_heads, head_dim);
      for (int64_t i = 0; i < n; ++i) {
        const Vec o = RmsNorm(MatVec(wo, attn[i], hidden), post_attn);
        for (int64_t d = 0; d < hidden; ++d) x[i][d] += o[d];
      }
      for (int64_t i = 0; i < n; ++i) {
        const Vec gu = MatVec(gate_up, RmsNorm(x[i], ffn_norm), 2 * ffn);  // chunk(2): gate, up
        Vec act(ffn);
        for (int64_t d = 0; d < ffn; ++d) {
          const double g = gu[d];
          act[d] = gu[ffn + d] * g / (1.0 + std::exp(-g));
        }
        const Vec mlp = RmsNorm(MatVec(down, act, hidden), post_ffw);
        for (int64_t d = 0; d < hidden; ++d) x[i][d] += mlp[d];
      }
    }
    const Vec out_norm = Tensor("output_norm.weight"), out = Tensor("output.weight");
    std::vector<Vec> logits(n);
    for (int64_t i = 0; i < n; ++i) logits[i] = MatVec(out, RmsNorm(x[i], out_norm), vocab);
    return logits;
  }
};

RefModel MakeRef(const TextModel& model) {
  const TextConfig& c = model.config();
  return RefModel{&model.file(),
                  c.hidden,
                  c.num_heads,
                  c.num_kv_heads,
                  c.head_dim,
                  c.rope_dims,
                  c.ffn,
                  c.vocab,
                  c.num_layers,
                  c.rms_eps,
                  c.rope_base,
                  c.rope_sections.pairs,
                  c.rope_sections.active()};
}

// Runs `tokens` in one prefill with `rope` positions (null = 1-D) and compares every
// position's logits with the reference.
void ExpectMatchesReference(const TextModel& model, const std::vector<int32_t>& tokens,
                            const std::vector<int32_t>* rope) {
  const int64_t n = static_cast<int64_t>(tokens.size()), vocab = model.config().vocab;
  const int64_t nb = (n + kKvBlockSize - 1) / kKvBlockSize;
  KvBuffer kv(model.config(), nb, DType::kF32);  // a float cache: the 1e-4 bound is the f32 one
  ForwardScratch scratch;
  const std::vector<int32_t> blocks = Iota(0, static_cast<int32_t>(nb));
  BatchItem item{blocks.data(),
                 nb,
                 0,
                 tokens,
                 nullptr,
                 /*logits_for_all=*/true,
                 rope != nullptr ? rope->data() : nullptr};
  std::vector<float> logits(n * vocab);
  ASSERT_TRUE(model.Forward({item}, kv, scratch, logits.data()).ok());
  std::vector<std::array<int32_t, 3>> pos(n);
  for (int64_t i = 0; i < n; ++i) {
    pos[i] = rope != nullptr
                 ? std::array<int32_t, 3>{(*rope)[4 * i], (*rope)[4 * i + 1], (*rope)[4 * i + 2]}
                 : std::array<int32_t, 3>{static_cast<int32_t>(i), static_cast<int32_t>(i),
                                          static_cast<int32_t>(i)};
  }
  const std::vector<Vec> ref = MakeRef(model).Forward(tokens, pos);
  std::vector<float> ref_flat;
  for (const Vec& row : ref) ref_flat.insert(ref_flat.end(), row.begin(), row.end());
  const float scale = MaxAbs(ref_flat);
  ASSERT_GT(scale, 1.0f);
  EXPECT_LT(MaxAbsDiff(logits, ref_flat), 1e-4f * scale);
}

TEST(Glm4Test, LoadsMakeTestModelFiles) {
  for (bool sections : {true, false}) {
    auto model = testing::MakeModel(Glm4Options(sections));
    ASSERT_NE(model, nullptr);
    const TextConfig& c = model->config();
    EXPECT_EQ(c.head_dim, 16);
    EXPECT_EQ(c.rope_dims, 8);  // partial_rotary_factor 0.5
    EXPECT_FALSE(c.tied_output);
    EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
    EXPECT_EQ(c.rope_sections.active(), sections);
    // llama.cpp: LLAMA_ROPE_TYPE_MROPE (neox) with sections, LLAMA_ROPE_TYPE_NORM without.
    EXPECT_EQ(c.rope_style, sections ? kernels::RopeStyle::kNeox : kernels::RopeStyle::kNormal);
    if (sections) {
      EXPECT_EQ(c.rope_sections.pairs, (std::array<int32_t, 4>{2, 1, 1, 0}));
    }
  }
}

TEST(Glm4Test, TextMatchesHuggingFaceReference) {
  // 100 positions: the angles of the slow pairs (theta = pos * 10000^(-3/4)) get past a
  // quarter turn.
  std::vector<int32_t> tokens(100);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % 512);
  for (bool sections : {true, false}) {
    SCOPED_TRACE(sections ? "with sections" : "without sections");
    auto model = testing::MakeModel(Glm4Options(sections));
    ASSERT_NE(model, nullptr);
    ExpectMatchesReference(*model, tokens, nullptr);
  }
}

TEST(Glm4Test, MultiAxisPositionsMatchHuggingFaceReference) {
  auto model = testing::MakeModel(Glm4Options(true));
  ASSERT_NE(model, nullptr);
  // 2 text tokens, a 2 x 3 grid at p = 2, then text from p = 2 + max(2, 3) = 5
  // (docs/architecture.md "Positions"); t, h and w all differ inside the grid.
  const std::vector<int32_t> tokens = {5, 77, 100, 101, 102, 103, 104, 105, 9, 400};
  const std::vector<int32_t> rope = {0, 0, 0, 0, 1, 1, 1, 0,              //
                                     2, 2, 2, 0, 2, 2, 3, 0, 2, 2, 4, 0,  //
                                     2, 3, 2, 0, 2, 3, 3, 0, 2, 3, 4, 0,  //
                                     5, 5, 5, 0, 6, 6, 6, 0};
  ExpectMatchesReference(*model, tokens, &rope);
}

TEST(Glm4Test, Glm41vPresetHasTheHuggingFaceShape) {
  auto o = TestModelPreset("glm41v-9b");  // zai-org/GLM-4.1V-9B-Thinking text_config
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->arch, "glm4");
  EXPECT_EQ(o->hidden, 4096);
  EXPECT_EQ(o->layers, 40);
  EXPECT_EQ(o->heads, 32);
  EXPECT_EQ(o->kv_heads, 2);
  EXPECT_EQ(o->ffn, 13696);
  EXPECT_EQ(o->vocab, 151552);
  EXPECT_EQ(o->context, 65536);
  EXPECT_EQ(o->rope_base, 10000.0);
  EXPECT_EQ(o->tied, false);
  EXPECT_EQ(TestRopeDims(*o), 64);  // partial_rotary_factor 0.5 of head_dim 128
  const std::array<int32_t, 4> hf_sections = {8, 12, 12, 0};
  EXPECT_EQ(*o->rope_sections, hf_sections);
  EXPECT_EQ(TestRopeSections(*o), hf_sections);  // the tiny models' rule gives the same split
}

TEST(Glm4Test, QuantizedModelLoadsAndRuns) {
  TestModelOptions o = Glm4Options(true);
  o.type = DType::kQ8_0;
  auto model = testing::MakeModel(o);
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> out = testing::Greedy(*model, {1, 2, 3}, 4);
  EXPECT_EQ(out.size(), 4u);
}

// ---- Loader errors ----

using testing::Rewrite;

Status LoadRewritten(const Rewrite& r) { return testing::LoadRewritten(Glm4Options(true), r); }

TEST(Glm4LoadErrorsTest, MissingSandwichNormIsNamed) {
  Rewrite r;
  r.keep_tensor = [](const std::string& n) { return n != "blk.1.post_ffw_norm.weight"; };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("blk.1.post_ffw_norm.weight"));
  EXPECT_THAT(s.message(), HasSubstr("bad.gguf"));
}

TEST(Glm4LoadErrorsTest, UnfusedFfnUpIsAShapeError) {
  Rewrite r;  // ffn_up must be [64, 256] (hidden, 2 * ffn); write a llama-style [64, 128]
  r.keep_tensor = [](const std::string& n) { return n != "blk.0.ffn_up.weight"; };
  r.add = [](gguf::Writer& w) {
    std::vector<float> zeros(64 * 128);
    ASSERT_TRUE(w.AddTensor("blk.0.ffn_up.weight", DType::kF32, {64, 128}, zeros.data(),
                            zeros.size() * sizeof(float))
                    .ok());
  };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.ffn_up.weight"));
  EXPECT_THAT(s.message(), HasSubstr("[64, 256]"));
}

TEST(Glm4LoadErrorsTest, BiasesAreOptionalButMustHaveTheirShape) {
  Rewrite none;
  none.keep_tensor = [](const std::string& n) { return n.find(".bias") == std::string::npos; };
  EXPECT_TRUE(LoadRewritten(none).ok());
  Rewrite bad;
  bad.keep_tensor = [](const std::string& n) { return n != "blk.0.attn_k.bias"; };
  bad.add = [](gguf::Writer& w) {
    std::vector<float> zeros(64);
    ASSERT_TRUE(
        w.AddTensor("blk.0.attn_k.bias", DType::kF32, {64}, zeros.data(), 64 * sizeof(float)).ok());
  };
  Status s = LoadRewritten(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_k.bias"));
}

TEST(Glm4LoadErrorsTest, FusedQkvIsRefusedWithAdvice) {
  Rewrite r;
  r.keep_tensor = [](const std::string& n) {
    return n.rfind("blk.0.attn_q", 0) != 0 && n.rfind("blk.0.attn_k", 0) != 0 &&
           n.rfind("blk.0.attn_v", 0) != 0;
  };
  r.add = [](gguf::Writer& w) {
    std::vector<float> zeros(64 * 128);
    ASSERT_TRUE(w.AddTensor("blk.0.attn_qkv.weight", DType::kF32, {64, 128}, zeros.data(),
                            zeros.size() * sizeof(float))
                    .ok());
  };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_qkv.weight"));
  EXPECT_THAT(s.message(), HasSubstr("convert_hf_to_gguf.py"));
}

TEST(Glm4LoadErrorsTest, NextTokenPredictionLayersAreRefused) {
  Rewrite r;
  r.add = [](gguf::Writer& w) { w.Set("glm4.nextn_predict_layers", gguf::Value::U32(1)); };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("glm4.nextn_predict_layers"));
}

TEST(Glm4LoadErrorsTest, SectionsBeyondTheRotatedPairsAreRefused) {
  Rewrite r;  // 4 rotated pairs; 2 + 2 + 2 = 6 is too many
  r.keep_key = [](const std::string& k) { return k != "glm4.rope.dimension_sections"; };
  r.add = [](gguf::Writer& w) {
    w.Set("glm4.rope.dimension_sections", gguf::Value::I32Array({2, 2, 2, 0}));
  };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("glm4.rope.dimension_sections"));
}

TEST(Glm4VocabTest, GlmSpecialTokensAndTemplate) {
  auto v = BuildTestVocab("glm4", 0);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->tokens.size(), 512u);
  EXPECT_EQ(v->pre, "glm4");
  EXPECT_EQ(v->tokens[v->eos], "<|endoftext|>");
  EXPECT_EQ(v->tokens[v->bos], "<|endoftext|>");
  EXPECT_EQ(v->tokens[v->eot], "<|user|>");
  for (const char* s : {"[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                        "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|image|>"}) {
    auto it = std::find(v->tokens.begin(), v->tokens.end(), s);
    ASSERT_NE(it, v->tokens.end()) << s;
    EXPECT_EQ(v->token_types[it - v->tokens.begin()], 3) << s;
  }
  EXPECT_EQ(v->chat_template.rfind("[gMASK]<sop>", 0), 0u);
}

// --vocab-from: another file's byte-level BPE with GLM's markers added after it; a marker
// the file already has keeps its id (no second <|endoftext|>), dummies pad to the size.
TEST(Glm4VocabTest, VocabularyFromAnotherFile) {
  tokenizer::TokenizerConfig base;
  base.model = "gpt2";
  base.pre = "gpt-2";
  base.tokens = {"a", "b", "ab", "<|endoftext|>"};
  base.token_types = {tokenizer::TokenType::kNormal, tokenizer::TokenType::kNormal,
                      tokenizer::TokenType::kNormal, tokenizer::TokenType::kControl};
  base.merges = {"a b"};
  auto v = BuildTestVocab("glm4", 64, base);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->tokens.size(), 64u);
  EXPECT_EQ(v->pre, "gpt-2");
  EXPECT_EQ(v->merges, base.merges);
  EXPECT_EQ(v->tokens[2], "ab");
  EXPECT_EQ(v->bos, 3);
  EXPECT_EQ(v->eos, 3);
  EXPECT_EQ(std::count(v->tokens.begin(), v->tokens.end(), "<|endoftext|>"), 1);
  EXPECT_EQ(v->tokens[4], "[MASK]");  // GLM's next added token, right after the file's
  EXPECT_EQ(v->token_types[4], 3);
  EXPECT_EQ(v->tokens[v->eot], "<|user|>");
  EXPECT_EQ(v->tokens[63], "<dummy_63>");

  base.model = "llama";
  EXPECT_FALSE(BuildTestVocab("glm4", 0, base).ok());  // not a byte-level BPE
}

}  // namespace
}  // namespace vlserve::models
