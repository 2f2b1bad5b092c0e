// Golden tests against llama.cpp's published tokenizer vectors in ../shared/vocab (the
// expected ids come from Hugging Face `tokenizers`, an independent implementation).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "tokenizer/detokenizer.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::tokenizer {
namespace {

const std::string kVocabDir = VLSERVE_SOURCE_DIR "/../shared/vocab";

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Case> LoadCases(const std::string& gguf) {
  const std::string inp = ReadAll(gguf + ".inp");
  const std::string out = ReadAll(gguf + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  size_t pos = 0;
  while (true) {
    const size_t hit = inp.find(sep, pos);
    if (hit == std::string::npos) break;
    cases.push_back({inp.substr(pos, hit - pos), {}});
    pos = hit + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (Case& c : cases) {
    if (!std::getline(lines, line)) break;
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) c.ids.push_back(id);
  }
  return cases;
}

// Loaded once per vocabulary for the whole binary (loading dominates the run time).
const Tokenizer* SharedTokenizer(const std::string& path) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(path);
  if (it == loaded.end()) {
    StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizerFromGguf(path);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    it = loaded.emplace(path, t.ok() ? std::move(*t) : nullptr).first;
  }
  return it->second.get();
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = kVocabDir + "/ggml-vocab-" + GetParam() + ".gguf";
    if (!std::filesystem::exists(path_)) {
      GTEST_SKIP() << path_ << " not found: the tokenizer golden files live in ../shared/vocab "
                   << "beside the checkout (llama.cpp's models/ggml-vocab-*.gguf)";
    }
    tok_ = SharedTokenizer(path_);
    ASSERT_NE(tok_, nullptr);
    cases_ = LoadCases(path_);
    ASSERT_GE(cases_.size(), 40u);
  }
  std::string path_;
  const Tokenizer* tok_ = nullptr;
  std::vector<Case> cases_;
};

const EncodeOptions kPlain{.add_special = false, .parse_special = false};

TEST_P(GoldenTest, EveryCaseMatchesExactly) {
  int failures = 0;
  for (const Case& c : cases_) {
    const std::vector<int32_t> got = tok_->Encode(c.text, kPlain);
    EXPECT_EQ(got, c.ids) << "input: '" << c.text << "'";
    failures += got != c.ids;
  }
  EXPECT_EQ(failures, 0) << "of " << cases_.size() << " cases";
}

TEST_P(GoldenTest, DecodeInvertsEncode) {
  for (const Case& c : cases_) {
    EXPECT_EQ(tok_->Decode(tok_->Encode(c.text, kPlain)), c.text);
    // The reference ids decode to the input too (an independent check of Decode).
    EXPECT_EQ(tok_->Decode(c.ids), c.text);
  }
}

TEST_P(GoldenTest, StreamingDetokenizerConcatenatesToDecode) {
  for (const Case& c : cases_) {
    StreamingDetokenizer detok(*tok_);
    std::string joined;
    for (const int32_t id : c.ids) joined += detok.Push(id);
    joined += detok.Flush();
    EXPECT_EQ(joined, tok_->Decode(c.ids));
  }
}

TEST_P(GoldenTest, CachedEncodingIsStable) {
  // The second pass hits the per-thread word cache.
  for (int pass = 0; pass < 2; ++pass) {
    for (const Case& c : cases_) EXPECT_EQ(tok_->Encode(c.text, kPlain), c.ids);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocab, GoldenTest,
                         ::testing::Values("gpt-2", "starcoder", "deepseek-coder", "llama-spm"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

TEST(GoldenBpeTest, HeapAndLinearMergeAgreeOnRealVocab) {
  const std::string path = kVocabDir + "/ggml-vocab-gpt-2.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  StatusOr<std::unique_ptr<gguf::File>> file = gguf::File::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  StatusOr<TokenizerConfig> config = TokenizerConfigFromGguf(**file);
  ASSERT_TRUE(config.ok());
  StatusOr<BpeModel> bpe = BpeModel::Create(config->tokens, config->merges, false);
  ASSERT_TRUE(bpe.ok());
  std::mt19937 rng(3);
  const std::string letters = "etaoinshrdlucmfwypvbgkjqxz  ,.'";
  for (int trial = 0; trial < 2000; ++trial) {
    std::string word;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) word += letters[rng() % letters.size()];
    std::vector<int32_t> linear, heap;
    bpe->EncodeWordUncached(word, false, &linear);
    bpe->EncodeWordUncached(word, true, &heap);
    ASSERT_EQ(linear, heap) << word;
  }
}

// Long inputs are pre-tokenized in chunks cut at "safe" positions; the result must equal
// pre-tokenizing the whole text at once.
TEST(GoldenBpeTest, ChunkedEncodingEqualsWholeText) {
  std::string text;
  std::mt19937 rng(5);
  const std::vector<std::string> parts = {"word",
                                          " Word",
                                          " ",
                                          "  ",
                                          "\n",
                                          "\n\n ",
                                          "123",
                                          " 4567",
                                          "!",
                                          " ?",
                                          "'s",
                                          " caf\xC3\xA9",
                                          " \xE4\xB8\x96\xE7\x95\x8C",
                                          "\t",
                                          " x"};
  while (text.size() < 300000) text += parts[rng() % parts.size()];
  for (const char* vocab : {"gpt-2", "starcoder", "deepseek-coder"}) {
    const std::string path = kVocabDir + "/ggml-vocab-" + vocab + ".gguf";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
    StatusOr<std::unique_ptr<gguf::File>> file = gguf::File::Open(path);
    ASSERT_TRUE(file.ok());
    StatusOr<TokenizerConfig> config = TokenizerConfigFromGguf(**file);
    ASSERT_TRUE(config.ok());
    StatusOr<BpeModel> bpe = BpeModel::Create(config->tokens, config->merges, false);
    StatusOr<PreTokenizer> pre = PreTokenizer::Create(config->pre);
    ASSERT_TRUE(bpe.ok() && pre.ok());
    std::vector<std::string_view> words;
    pre->Split(text, &words);
    std::vector<int32_t> expected;
    for (std::string_view w : words) bpe->EncodeWordUncached(w, false, &expected);
    StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*config);
    ASSERT_TRUE(tok.ok());
    EXPECT_EQ((*tok)->Encode(text, kPlain), expected) << vocab;
  }
}

TEST(GoldenGgufTest, MetadataDefaults) {
  const std::string path = kVocabDir + "/ggml-vocab-llama-spm.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizerFromGguf(path);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->kind(), ModelKind::kSpm);
  EXPECT_EQ((*t)->bos_id(), 1);
  EXPECT_EQ((*t)->eos_id(), 2);
  EXPECT_TRUE((*t)->add_bos());
  EXPECT_FALSE((*t)->add_eos());
  // "Hello world" with BOS: llama.cpp's test-tokenizer-0 expectation 15043 3186 plus <s>.
  EXPECT_EQ((*t)->Encode("Hello world"), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ((*t)->Encode("<s>Hello", {.add_special = false, .parse_special = true}),
            (std::vector<int32_t>{1, 15043}));
}

}  // namespace
}  // namespace vlserve::tokenizer
