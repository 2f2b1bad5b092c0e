// Bad models and bad requests give errors that name the thing that is wrong.
#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <functional>

#include "model_test_util.h"

namespace vlserve::models {
namespace {

using ::testing::HasSubstr;

using testing::Rewrite;

// The `arch` test model, rewritten by `r`.
Status LoadRewritten(const Rewrite& r, const char* arch = "llama") {
  TestModelOptions o;
  o.arch = arch;
  return testing::LoadRewritten(o, r);
}

TEST(LoadErrorsTest, ValidModelLoads) {
  EXPECT_TRUE(LoadRewritten({}).ok());
  EXPECT_TRUE(LoadRewritten({}, "qwen2").ok());
}

TEST(LoadErrorsTest, MissingTensorIsNamed) {
  Rewrite r;
  r.keep_tensor = [](const std::string& n) { return n != "blk.1.ffn_up.weight"; };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("blk.1.ffn_up.weight"));
  EXPECT_THAT(s.message(), HasSubstr("bad.gguf"));
}

TEST(LoadErrorsTest, MissingQwen2BiasIsNamed) {
  Rewrite r;
  r.keep_tensor = [](const std::string& n) { return n != "blk.0.attn_k.bias"; };
  Status s = LoadRewritten(r, "qwen2");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_k.bias"));
}

TEST(LoadErrorsTest, WrongShapeIsNamed) {
  Rewrite r;  // attn_k must be [64, 32] (hidden, kv_heads * head_dim); write [64, 64]
  r.keep_tensor = [](const std::string& n) { return n != "blk.0.attn_k.weight"; };
  r.add = [](gguf::Writer& w) {
    std::vector<float> zeros(64 * 64);
    ASSERT_TRUE(w.AddTensor("blk.0.attn_k.weight", DType::kF32, {64, 64}, zeros.data(),
                            zeros.size() * sizeof(float)).ok());
  };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_k.weight"));
  EXPECT_THAT(s.message(), HasSubstr("[64, 64]"));
  EXPECT_THAT(s.message(), HasSubstr("[64, 32]"));
}

TEST(LoadErrorsTest, MissingKeyIsNamed) {
  Rewrite r;
  r.keep_key = [](const std::string& k) { return k != "llama.block_count"; };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("llama.block_count"));
}

TEST(LoadErrorsTest, UnsupportedArchitectureListsSupported) {
  Rewrite r;
  r.add = [](gguf::Writer& w) { w.Set("general.architecture", gguf::Value::String("mamba")); };
  Status s = LoadRewritten(r);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("'mamba'"));
  EXPECT_THAT(s.message(), HasSubstr("supported: llama, qwen2"));
}

TEST(LoadErrorsTest, UnsupportedWeightTypeIsNamed) {
  Rewrite r;  // an i32 matrix: a valid GGUF type we have no matmul for
  r.keep_tensor = [](const std::string& n) { return n != "blk.1.attn_q.weight"; };
  r.add = [](gguf::Writer& w) {
    std::vector<int32_t> zeros(64 * 64);
    ASSERT_TRUE(w.AddTensor("blk.1.attn_q.weight", DType::kI32, {64, 64}, zeros.data(),
                            zeros.size() * sizeof(int32_t)).ok());
  };
  Status s = LoadRewritten(r);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("blk.1.attn_q.weight"));
  EXPECT_THAT(s.message(), HasSubstr("i32"));
}

TEST(ForwardErrorsTest, PromptLongerThanContext) {
  TestModelOptions o;
  o.context = 32;
  auto model = testing::MakeModel(o);
  ASSERT_NE(model, nullptr);
  KvBuffer kv(model->config(), 4);
  ForwardScratch scratch;
  const std::vector<int32_t> blocks = testing::Iota(0, 4);
  const std::vector<int32_t> tokens(40, 5);
  BatchItem item{blocks.data(), 4, 0, tokens, nullptr, false};
  std::vector<float> logits(model->config().vocab);
  Status s = model->Forward({item}, kv, scratch, logits.data());
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_THAT(s.message(), HasSubstr("context length 32"));
}

TEST(ForwardErrorsTest, BadTokenAndShortBlockTable) {
  auto model = testing::MakeModel({});
  ASSERT_NE(model, nullptr);
  KvBuffer kv(model->config(), 4);
  ForwardScratch scratch;
  const std::vector<int32_t> blocks = {0};
  std::vector<float> logits(model->config().vocab);
  const std::vector<int32_t> bad_token = {1, 100000};
  Status s = model->Forward({{blocks.data(), 1, 0, bad_token, nullptr, false}}, kv, scratch,
                            logits.data());
  EXPECT_THAT(s.message(), HasSubstr("token id 100000"));
  const std::vector<int32_t> long_prompt(20, 1);
  s = model->Forward({{blocks.data(), 1, 0, long_prompt, nullptr, false}}, kv, scratch,
                     logits.data());
  EXPECT_THAT(s.message(), HasSubstr("block table"));
}

TEST(TestVocabTest, ByteLevelBpeVocabulary) {
  for (const char* arch : {"llama", "qwen2"}) {
    auto v = BuildTestVocab(arch, 0);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->tokens.size(), 512u) << arch;
    EXPECT_EQ(v->tokens.size(), v->token_types.size());
    // Every merge's result is a token, and the control tokens are marked.
    for (const std::string& m : v->merges) {
      const size_t sp = m.find(' ');
      const std::string joined = m.substr(0, sp) + m.substr(sp + 1);
      EXPECT_NE(std::find(v->tokens.begin(), v->tokens.end(), joined), v->tokens.end()) << m;
    }
    EXPECT_EQ(v->tokens[v->eos], std::string(arch) == "qwen2" ? "<|im_end|>" : "<end_of_utterance>");
    EXPECT_EQ(v->token_types[v->eos], 3);
  }
  auto padded = BuildTestVocab("llama", 49280);
  ASSERT_TRUE(padded.ok());
  EXPECT_EQ(padded->tokens.size(), 49280u);
  // "Ġ" (U+0120) is the GPT-2 stand-in for the space byte.
  auto v = BuildTestVocab("llama", 0);
  EXPECT_NE(std::find(v->tokens.begin(), v->tokens.end(), "\xC4\xA0" "the"), v->tokens.end());
}

}  // namespace
}  // namespace vlserve::models
