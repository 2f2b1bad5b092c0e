// Reads the llama.cpp vocab files in ../shared/vocab. The expected facts were taken with
// an independent Python struct parse of the same files and agree with the published
// tokenizers (GPT-2: 50257 tokens, 50000 merges, <|endoftext|> = 50256; LLaMA SPM:
// 32000 tokens, <unk>/<s>/</s> = 0/1/2).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gguf/gguf.h"

namespace vlserve::gguf {
namespace {

std::string VocabPath(const std::string& name) {
  return std::string(VLSERVE_SOURCE_DIR) + "/../shared/vocab/" + name;
}

std::unique_ptr<File> OpenOrSkip(const std::string& name) {
  const std::string path = VocabPath(name);
  if (!std::filesystem::exists(path)) return nullptr;
  StatusOr<std::unique_ptr<File>> f = File::Open(path);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? std::move(f).value() : nullptr;
}

#define OPEN_OR_SKIP(var, name)                                                        \
  if (!std::filesystem::exists(VocabPath(name))) {                                     \
    GTEST_SKIP() << VocabPath(name) << " not found (shared vocab files are optional)"; \
  }                                                                                    \
  std::unique_ptr<File> var = OpenOrSkip(name);                                        \
  ASSERT_NE(var, nullptr)

TEST(GgufVocab, Gpt2) {
  OPEN_OR_SKIP(f, "ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->metadata().size(), 16u);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(*f->GetString("general.architecture"), "gpt2");
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f->GetString("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(*f->GetInt("gpt2.context_length"), 1024);
  EXPECT_EQ(*f->GetInt("gpt2.embedding_length"), 768);
  StatusOr<std::vector<std::string>> tokens = f->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(tokens->size(), 50257u);
  EXPECT_EQ((*tokens)[0], "!");
  EXPECT_EQ((*tokens)[50256], "<|endoftext|>");
  EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->array_size(), 50257u);
  EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->array_type(), ValueType::kInt32);
  StatusOr<std::vector<std::string>> merges = f->GetStringArray("tokenizer.ggml.merges");
  ASSERT_TRUE(merges.ok());
  EXPECT_EQ(merges->size(), 50000u);
  EXPECT_EQ((*merges)[0], "\xc4\xa0 t");  // "Ġ t"
  EXPECT_EQ(*f->GetInt("tokenizer.ggml.bos_token_id"), 50256);
  EXPECT_EQ(*f->GetInt("tokenizer.ggml.eos_token_id"), 50256);
  EXPECT_NEAR(*f->GetFloat("gpt2.attention.layer_norm_epsilon"), 1e-5, 1e-12);
}

TEST(GgufVocab, LlamaSpm) {
  OPEN_OR_SKIP(f, "ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*f->GetInt("llama.vocab_size"), 32000);
  StatusOr<std::vector<std::string>> tokens = f->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 32000u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  StatusOr<std::vector<float>> scores = f->GetFloatArray("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok());
  EXPECT_EQ(scores->size(), 32000u);
  StatusOr<std::vector<int64_t>> types = f->GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  EXPECT_EQ((*types)[0], 2);  // UNKNOWN
  EXPECT_EQ((*types)[1], 3);  // CONTROL
  EXPECT_EQ(*f->GetInt("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(*f->GetInt("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_TRUE(*f->GetBool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(*f->GetBool("tokenizer.ggml.add_eos_token"));
  EXPECT_EQ(f->Find("tokenizer.ggml.merges"), nullptr);
}

TEST(GgufVocab, AllFilesTokenCountsMatchTheirArrays) {
  struct Case {
    const char* file;
    const char* model;
    size_t tokens;
  } cases[] = {{"ggml-vocab-gpt-2.gguf", "gpt2", 50257},
               {"ggml-vocab-starcoder.gguf", "gpt2", 49152},
               {"ggml-vocab-deepseek-coder.gguf", "gpt2", 32256},
               {"ggml-vocab-llama-spm.gguf", "llama", 32000}};
  int found = 0;
  for (const Case& c : cases) {
    if (!std::filesystem::exists(VocabPath(c.file))) continue;
    ++found;
    std::unique_ptr<File> f = OpenOrSkip(c.file);
    ASSERT_NE(f, nullptr) << c.file;
    EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), c.model) << c.file;
    const Value* tokens = f->Find("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr);
    EXPECT_EQ(tokens->array_size(), c.tokens) << c.file;
    EXPECT_EQ(f->Find("tokenizer.ggml.token_type")->array_size(), c.tokens) << c.file;
  }
  if (found == 0) GTEST_SKIP() << "no vocab files under " << VocabPath("");
}

TEST(GgufVocab, RewrittenVocabReadsBackIdentically) {
  OPEN_OR_SKIP(f, "ggml-vocab-deepseek-coder.gguf");
  Writer w;
  for (const auto& [key, value] : f->metadata()) w.Set(key, value);
  StatusOr<std::unique_ptr<File>> g = File::FromBytes(w.WriteToString());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ((*g)->metadata().size(), f->metadata().size());
  for (size_t i = 0; i < f->metadata().size(); ++i) {
    EXPECT_EQ((*g)->metadata()[i], f->metadata()[i]) << f->metadata()[i].first;
  }
  // The file came from llama.cpp's Python writer: our bytes must be the same, plus the
  // zero padding to 32 that gguf_write_to_file adds after a header with no tensors.
  std::ifstream in(VocabPath("ggml-vocab-deepseek-coder.gguf"), std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  const std::string ours = w.WriteToString();
  ASSERT_GE(ours.size(), original.size());
  EXPECT_LT(ours.size() - original.size(), 32u);
  EXPECT_TRUE(ours.compare(0, original.size(), original) == 0) << "bytes differ";
}

}  // namespace
}  // namespace vlserve::gguf
