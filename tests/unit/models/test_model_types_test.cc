// make-test-model's per-tensor type fallback for K-quants (llama.cpp's
// llama_tensor_get_type: rows that are not a multiple of 256 get Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when not a multiple of 32 either).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "gguf/gguf.h"
#include "models/test_model.h"

namespace vlserve::models {
namespace {

TEST(TestModelTypesTest, FallbackTable) {
  EXPECT_EQ(TestModelMatrixType(DType::kQ4_K, 512), DType::kQ4_K);
  EXPECT_EQ(TestModelMatrixType(DType::kQ4_K, 576), DType::kQ5_0);
  EXPECT_EQ(TestModelMatrixType(DType::kQ5_K, 960), DType::kQ5_1);
  EXPECT_EQ(TestModelMatrixType(DType::kQ6_K, 576), DType::kQ8_0);
  EXPECT_EQ(TestModelMatrixType(DType::kQ6_K, 1536), DType::kQ6_K);
  EXPECT_EQ(TestModelMatrixType(DType::kQ4_K, 80), DType::kF16);  // not a multiple of 32
  // Non-K types never change (a bad width stays an error for the caller).
  EXPECT_EQ(TestModelMatrixType(DType::kQ8_0, 80), DType::kQ8_0);
  EXPECT_EQ(TestModelMatrixType(DType::kF32, 7), DType::kF32);
}

TEST(TestModelTypesTest, Q4KModelUsesFallbackPerTensor) {
  TestModelOptions o;
  o.hidden = 96, o.heads = 3, o.kv_heads = 1, o.ffn = 256, o.layers = 1;
  o.type = DType::kQ4_K;
  auto writer = BuildTestModel(o);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  auto file = gguf::File::FromBytes(writer->WriteToString());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::map<std::string, DType> types;
  for (const gguf::TensorInfo& t : (*file)->tensors()) types[t.name] = t.type;
  // 96 columns: Q5_0; ffn_down has 256 columns: stays Q4_K; norms stay F32.
  EXPECT_EQ(types.at("blk.0.attn_q.weight"), DType::kQ5_0);
  EXPECT_EQ(types.at("blk.0.ffn_gate.weight"), DType::kQ5_0);
  EXPECT_EQ(types.at("blk.0.ffn_down.weight"), DType::kQ4_K);
  EXPECT_EQ(types.at("token_embd.weight"), DType::kQ5_0);
  EXPECT_EQ(types.at("blk.0.attn_norm.weight"), DType::kF32);
}

TEST(TestModelTypesTest, NonKTypeWithBadWidthStillFails) {
  TestModelOptions o;
  o.hidden = 80, o.heads = 4, o.kv_heads = 2, o.ffn = 160, o.layers = 1;
  o.type = DType::kQ8_0;
  EXPECT_FALSE(BuildTestModel(o).ok());
}

}  // namespace
}  // namespace vlserve::models
