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

// Expected splits below are derived by hand from the regexes listed in pretokenizer.cc.
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

TEST(PreTokenizerTest, Glm4UsesTheLlama3Regex) {
  for (const char* pre : {"glm4", "chatglm-bpe"}) {
    EXPECT_EQ(Split(pre, "Hello world123456 ok\r\n\n  x"),
              (Words{"Hello", " world", "123", "456", " ok", "\r\n\n", " ", " x"}));
    EXPECT_EQ(Split(pre, "'S it's"), (Words{"'S", " it", "'s"}));
  }
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
  StatusOr<PreTokenizer> p = PreTokenizer::Create("no-such-pre");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(p.status().message().find("'no-such-pre'"), std::string::npos);
  EXPECT_NE(p.status().message().find("gpt-2"), std::string::npos);
  EXPECT_NE(p.status().message().find("glm4"), std::string::npos);
  EXPECT_NE(p.status().message().find("deepseek-coder"), std::string::npos);
}

// llama.cpp accepts these for byte-level BPE but skips the byte alphabet (byte_encode =
// false); the converter also writes WordPiece values. The message says why.
TEST(PreTokenizerTest, NonByteLevelNamesSayWhy) {
  for (const char* name : {"gemma4", "granite-embed-multi-311m", "sarvam-moe", "whitespace"}) {
    StatusOr<PreTokenizer> p = PreTokenizer::Create(name);
    ASSERT_FALSE(p.ok()) << name;
    EXPECT_EQ(p.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(p.status().message().find("raw UTF-8"), std::string::npos) << name;
    EXPECT_NE(p.status().message().find("llama3"), std::string::npos) << name;
  }
  StatusOr<PreTokenizer> p = PreTokenizer::Create("bert-bge");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("WordPiece"), std::string::npos);
}

// The tokenizer.ggml.pre -> regex list mapping of llama.cpp's llama-vocab.cpp (read by hand,
// grouped by LLAMA_VOCAB_PRE_TYPE), and the llama.cpp defaults tied to some values.
TEST(PreTokenizerTest, NamesMapToLlamaCppRegexLists) {
  const std::vector<std::pair<std::vector<const char*>, const char*>> groups = {
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
        "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt",
        "olmo", "jais", "trillion", "granite-docling"},
       "gpt-2"},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano", "dbrx", "smaug-bpe", "glm4", "chatglm-bpe"},
       "llama3"},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
        "solar-open", "grok-2", "bailingmoe", "bailingmoe2", "llada-moe"},
       "qwen2"},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
        "mellum2"},
       "starcoder"},
      {{"deepseek-v3", "hunyuan-dense", "joyai-llm"}, "deepseek-v3"},
      {{"poro-chat", "bloom", "gpt3-finnish"}, "bloom"},
      {{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, "gpt-4o"},
      {{"tiny_aya", "cohere2moe"}, "tiny_aya"},
  };
  for (const auto& [names, kind] : groups) {
    for (const char* name : names) {
      StatusOr<PreTokenizer> p = PreTokenizer::Create(name);
      ASSERT_TRUE(p.ok()) << name;
      EXPECT_EQ(p->name(), kind) << name;
    }
  }
  // ignore_merges / add_bos: llama3 group, tekken, chameleon, minicpm5, youtu, granite-97m.
  auto defaults = [](const char* name) {
    StatusOr<PreTokenizer> p = PreTokenizer::Create(name);
    EXPECT_TRUE(p.ok()) << name;
    return std::pair(p->ignore_merges(), p->add_bos_default());
  };
  EXPECT_EQ(defaults("llama-bpe"), std::pair(true, true));
  EXPECT_EQ(defaults("pixtral"), std::pair(true, true));
  EXPECT_EQ(defaults("tekken"), std::pair(true, true));
  EXPECT_EQ(defaults("chameleon"), std::pair(false, true));
  EXPECT_EQ(defaults("minicpm5"), std::pair(true, false));
  EXPECT_EQ(defaults("youtu"), std::pair(true, false));
  EXPECT_EQ(defaults("granite-embed-multi-97m"), std::pair(true, false));
  EXPECT_EQ(defaults("glm4"), std::pair(false, false));
  EXPECT_EQ(defaults("dbrx"), std::pair(false, false));
  EXPECT_EQ(defaults("qwen2"), std::pair(false, false));
}

// Expected words from llama.cpp's own unicode_regex_split on each kind's regex list, at
// llama.cpp d32676d7742 (a harness built outside the project, which also ran a
// differential fuzzer against llama.cpp on every name; only its output is committed). The
// probes exercise contractions (case), digit grouping (1, 3, all, thousands), CJK/Hangul/
// kana and Thai, combining marks, upper/lower splits, newlines, punctuation runs, space
// runs before a non-space, '~' and '`' (llama.cpp's \p{S} misses '~'), and chameleon's
// sentinels; gen_cases.py checks that they tell every kind from every other.
struct SplitCase {
  const char* pre;
  const char* text;
  std::vector<const char*> words;
};
const SplitCase kLlamaCppCases[] = {
#include "pretokenizer_cases.inc"
};

TEST(PreTokenizerTest, EveryKindMatchesLlamaCpp) {
  for (const SplitCase& c : kLlamaCppCases) {
    EXPECT_EQ(Split(c.pre, c.text), Words(c.words.begin(), c.words.end()))
        << c.pre << " on \"" << c.text << "\"";
  }
}

TEST(PreTokenizerTest, WordsAlwaysCoverTheInput) {
  const std::vector<std::string> alphabet = {
      "a",    "Z",           " ",  "  ", "\n",       "\r",           "\t",
      "7",    "'",           "'s", "!",  "\xC3\xA9", "\xE4\xB8\x96", "\xF0\x9F\x98\x80",
      "\xFF", "\xE2\x80\x83"};
  std::mt19937 rng(7);
  const std::vector<std::string> kinds = [] {
    std::vector<std::string> names;
    for (const SplitCase& c : kLlamaCppCases) {
      if (names.empty() || names.back() != c.pre) names.push_back(c.pre);
    }
    return names;
  }();
  ASSERT_EQ(kinds.size(), 26u);
  for (const std::string& pre : kinds) {
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
