#include "tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <random>

namespace vlserve::tokenizer {
namespace {

using Words = std::vector<std::string>;

Words Split(std::string_view pre, std::string_view text) {
  StatusOr<PreTokenizer> p = PreTokenizer::Create(pre);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  std::vector<std::string_view> views;
  p->Split(text, &views);
  return Words(views.begin(), views.end());
}

// Expected splits below are derived by hand from the regexes in pretokenizer.h.
TEST(PreTokenizerTest, Gpt2) {
  EXPECT_EQ(Split("gpt-2", "Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(Split("gpt-2", "I've  got 123 apples!!\n\n"),
            (Words{"I", "'ve", " ", " got", " 123", " apples", "!!", "\n\n"}));
  EXPECT_EQ(Split("gpt-2", "   Hello"), (Words{"  ", " Hello"}));
  EXPECT_EQ(Split("gpt-2", "x  "), (Words{"x", "  "}));
  EXPECT_EQ(Split("gpt-2", "\t\tx"), (Words{"\t", "\t", "x"}));
  EXPECT_EQ(Split("gpt-2", "'S"), (Words{"'", "S"}));  // contractions are case-sensitive
  EXPECT_EQ(Split("gpt-2", " !?a"), (Words{" !?", "a"}));
  EXPECT_EQ(Split("gpt-2", "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C"),  // café 世界
            (Words{"caf\xC3\xA9", " \xE4\xB8\x96\xE7\x95\x8C"}));
  EXPECT_EQ(Split("default", "a b"), (Words{"a", " b"}));
  EXPECT_TRUE(Split("gpt-2", "").empty());
}

TEST(PreTokenizerTest, Llama3) {
  EXPECT_EQ(Split("llama-bpe", "Hello world123456 ok\r\n\n  x"),
            (Words{"Hello", " world", "123", "456", " ok", "\r\n\n", " ", " x"}));
  EXPECT_EQ(Split("llama3", "'S it's"), (Words{"'S", " it", "'s"}));
  EXPECT_EQ(Split("llama3", "(hi) ..\n"), (Words{"(hi", ")", " ..\n"}));
  EXPECT_EQ(Split("llama3", "12345"), (Words{"123", "45"}));
}

TEST(PreTokenizerTest, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(Split("qwen2", "ab 12345"), (Words{"ab", " ", "1", "2", "3", "4", "5"}));
}

TEST(PreTokenizerTest, StarcoderIsolatesDigitsThenGpt2) {
  EXPECT_EQ(Split("starcoder", "abc 123"), (Words{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(Split("smollm", "x  9"), (Words{"x", "  ", "9"}));
}

TEST(PreTokenizerTest, DeepseekCoder) {
  EXPECT_EQ(Split("deepseek-coder", "Hello, world!\n12"),
            (Words{"Hello", ",", " world", "!", "\n", "1", "2"}));
  EXPECT_EQ(Split("deepseek-coder", "a  b"), (Words{"a", " ", " b"}));
  EXPECT_EQ(Split("deepseek-coder", "x+=1"), (Words{"x", "+=", "1"}));
}

TEST(PreTokenizerTest, UnsupportedNameIsUnimplementedAndListsSupported) {
  StatusOr<PreTokenizer> p = PreTokenizer::Create("falcon");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(p.status().message().find("'falcon'"), std::string::npos);
  EXPECT_NE(p.status().message().find("gpt-2"), std::string::npos);
  EXPECT_NE(p.status().message().find("deepseek-coder"), std::string::npos);
}

TEST(PreTokenizerTest, WordsAlwaysCoverTheInput) {
  const std::vector<std::string> alphabet = {
      "a",    "Z",           " ",  "  ", "\n",       "\r",           "\t",
      "7",    "'",           "'s", "!",  "\xC3\xA9", "\xE4\xB8\x96", "\xF0\x9F\x98\x80",
      "\xFF", "\xE2\x80\x83"};
  std::mt19937 rng(7);
  for (const char* pre : {"gpt-2", "llama3", "qwen2", "starcoder", "deepseek-coder"}) {
    StatusOr<PreTokenizer> p = PreTokenizer::Create(pre);
    ASSERT_TRUE(p.ok());
    for (int trial = 0; trial < 200; ++trial) {
      std::string text;
      const int n = static_cast<int>(rng() % 20);
      for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
      std::vector<std::string_view> words;
      p->Split(text, &words);
      std::string joined;
      for (std::string_view w : words) {
        EXPECT_FALSE(w.empty());
        joined.append(w);
      }
      EXPECT_EQ(joined, text) << pre;
    }
  }
}

}  // namespace
}  // namespace vlserve::tokenizer
