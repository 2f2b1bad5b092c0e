// The response_format automaton (engine/json_constraint.h): hand-written valid and invalid
// prefixes and complete values, the token mask against a brute-force check of every
// token, and the sampler producing only grammar text from random logits. JSON validity of
// random walks against Boost.JSON is in tests/unit/server/json_schema_test.cc.
#include "engine/json_constraint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve {
namespace {

using NodeId = JsonGrammar::NodeId;

// Feeds `text` in one piece; true if it stays a valid prefix.
bool Prefix(const std::shared_ptr<const JsonGrammar>& g, std::string_view text) {
  JsonMatcher m(g);
  return m.Advance(text);
}
// Feeds `text` byte by byte; true if every byte is accepted and the value is complete.
bool Complete(const std::shared_ptr<const JsonGrammar>& g, std::string_view text) {
  JsonMatcher m(g);
  for (char c : text) {
    if (!m.Advance(std::string_view(&c, 1))) return false;
  }
  return m.CanEnd();
}

TEST(JsonConstraintTest, AnyObjectAcceptsValidObjects) {
  const auto g = JsonGrammar::AnyObject();
  for (const char* text : {
           R"({})",
           R"({"a": 1})",
           "{\n  \"a\": [1, -2.5e-3, 0, 1E+2, \"x\", true, false, null, {\"b\": {}}, []]\n}",
           R"({"k": "\u00e9\n\t\"\\\/ \uD7FF"})",
           "{\"caf\xC3\xA9\": \"\xE2\x82\xAC \xF0\x9F\x98\x80\"}",
           R"({"a":{"b":{"c":[[[]]]}},"a":0})",
       }) {
    JsonMatcher m(g);
    EXPECT_TRUE(m.Advance(text)) << text;
    EXPECT_TRUE(m.CanEnd()) << text;
    EXPECT_TRUE(m.Done()) << text;  // an object ends with its brace: nothing may follow
    EXPECT_TRUE(Complete(g, text)) << text;
  }
}

TEST(JsonConstraintTest, AnyObjectPrefixesAreNotComplete) {
  const auto g = JsonGrammar::AnyObject();
  for (const char* text : {"{", " {", R"({"a)", R"({"a":)", R"({"a": [1, )", R"({"a":1.)",
                           R"({"a":"\u00)", R"({"a":tr)", "{\"a\":\"\xE2\x82"}) {
    JsonMatcher m(g);
    EXPECT_TRUE(m.Advance(text)) << text;
    EXPECT_FALSE(m.CanEnd()) << text;
    EXPECT_FALSE(m.Done()) << text;
  }
}

TEST(JsonConstraintTest, AnyObjectRejectsInvalidText) {
  const auto g = JsonGrammar::AnyObject();
  for (const char* text : {
           "[1]", "1", "\"a\"", "null",         // not an object
           R"({"a" 1})", R"({a: 1})", R"({'a': 1})", R"({"a": 01})", R"({"a": 1,})",
           R"({"a": .5})", R"({"a": 1.})" "}", R"({"a": -})", R"({"a": tru})", R"({"a": nul})",
           R"({"a": [1,]})", R"({"a": [,1]})", R"({,})", R"({"a": 1}})", "{} ", "{}\n",
           "{\"a\": \"\x01\"}",                 // raw control character in a string
           "{\"a\": \"x\ny\"}",                 // raw newline in a string
           R"({"a": "\q"})", R"({"a": "\u12G4"})",
           R"({"a": "\uD800"})", R"({"a": "\udfff"})",  // lone surrogate escapes
           "{\"a\": \"\xC0\x80\"}",             // overlong UTF-8
           "{\"a\": \"\xED\xA0\x80\"}",         // UTF-8 surrogate
           "{\"a\": \"\xF4\x90\x80\x80\"}",     // above U+10FFFF
           "{\"a\": \"\x80\"}",                 // stray continuation byte
       }) {
    EXPECT_FALSE(Complete(g, text)) << text;
  }
  // Byte-level refusal points: the prefix before them is fine.
  EXPECT_TRUE(Prefix(g, R"({"a": 1)"));
  EXPECT_FALSE(Prefix(g, R"({"a": 1])"));
}

TEST(JsonConstraintTest, RejectedAdvanceLeavesStateAlone) {
  JsonMatcher m(JsonGrammar::AnyObject());
  ASSERT_TRUE(m.Advance(R"({"a":)"));
  EXPECT_FALSE(m.Advance("}"));
  EXPECT_FALSE(m.Advance("1]"));
  EXPECT_TRUE(m.Advance("12}"));
  EXPECT_TRUE(m.Done());
}

TEST(JsonConstraintTest, WhitespaceRunsAreBounded) {
  const auto g = JsonGrammar::AnyObject();
  const std::string run(JsonMatcher::kMaxWhitespaceRun, ' ');
  EXPECT_TRUE(Complete(g, run + "{" + run + "\"a\"" + run + ":" + run + "1" + run + "}"));
  EXPECT_FALSE(Prefix(g, run + " {"));
  EXPECT_FALSE(Prefix(g, "{" + run + "\n"));
  EXPECT_TRUE(Prefix(g, "{\n" + std::string(JsonMatcher::kMaxWhitespaceRun - 1, '\t') + "\"a"));
  // At most one line break per run (CRLF counts as one).
  EXPECT_TRUE(Prefix(g, "{\r\n  \"a\":\n 1 \n}"));
  EXPECT_FALSE(Prefix(g, "{\n\n"));
  EXPECT_FALSE(Prefix(g, "{\n \n"));
  EXPECT_FALSE(Prefix(g, "{\r\r"));
  // Blanks are only allowed between tokens, not inside one.
  EXPECT_FALSE(Prefix(g, R"({"a": t rue)"));
  EXPECT_FALSE(Prefix(g, R"({"a": 1 2)"));
}

TEST(JsonConstraintTest, NumbersAreBounded) {
  const auto g = JsonGrammar::AnyObject();
  const std::string max_int(JsonMatcher::kMaxIntegerDigits, '7');
  EXPECT_TRUE(Complete(g, "{\"a\":" + max_int + "}"));
  EXPECT_FALSE(Prefix(g, "{\"a\":" + max_int + "7"));
  EXPECT_TRUE(Complete(g, R"({"a":1e999})"));
  EXPECT_FALSE(Prefix(g, R"({"a":1e9999)"));
}

// {"name": string<=5 (required), "age": integer, "tags": [1..2 of "a"|"b"] (required),
//  "note": string|null}
std::shared_ptr<const JsonGrammar> PersonGrammar() {
  JsonGrammarBuilder b;
  const NodeId name = b.String(0, 5);
  const NodeId age = b.Integer();
  const NodeId tags = b.Array(b.Literals({"\"b\"", "\"a\""}), 1, 2);
  const NodeId note = b.AnyOf({b.String(), b.Null()});
  return b.Build(b.Object({{"name", name, true}, {"age", age, false}, {"tags", tags, true},
                           {"note", note, false}}));
}

TEST(JsonConstraintTest, SchemaObjectFollowsOrderRequiredAndLimits) {
  const auto g = PersonGrammar();
  for (const char* text : {
           R"({"name":"bob","tags":["a"]})",
           R"({"name": "", "age": -3, "tags": ["b", "a"], "note": null})",
           R"({"name":"abcde","age":0,"tags":["a","a"],"note":"x"})",
       }) {
    EXPECT_TRUE(Complete(g, text)) << text;
  }
  for (const char* text : {
           R"({})",                                   // required properties missing
           R"({"name":"bob"})",                       // tags missing
           R"({"tags":["a"],"name":"bob"})",          // schema order
           R"({"name":"bob","name":"x","tags":["a"]})",  // a key twice
           R"({"name":"abcdef","tags":["a"]})",       // maxLength 5
           R"({"name":"bob","tags":[]})",             // minItems 1
           R"({"name":"bob","tags":["a","b","a"]})",  // maxItems 2
           R"({"name":"bob","tags":["c"]})",          // not in the enum
           R"({"name":"bob","age":1.5,"tags":["a"]})",  // integer
           R"({"name":"bob","tags":["a"],"x":1})",    // no extra properties
           R"({"name":1,"tags":["a"]})",
       }) {
    EXPECT_FALSE(Complete(g, text)) << text;
  }
  // Characters, not bytes, count toward maxLength; an escape is one character.
  EXPECT_TRUE(Complete(g, "{\"name\":\"\xC3\xA9\xC3\xA9\\n\\u0041\xF0\x9F\x98\x80\",\"tags\":[\"a\"]}"));
}

TEST(JsonConstraintTest, LiteralsAndAnyOfAtTopLevel) {
  JsonGrammarBuilder b;
  const auto lits = b.Build(b.Literals({"1", "12", "\"x\"", "true"}));
  {
    JsonMatcher m(lits);
    ASSERT_TRUE(m.Advance("1"));
    EXPECT_TRUE(m.CanEnd());
    EXPECT_FALSE(m.Done());  // "12" may still come
    ASSERT_TRUE(m.Advance("2"));
    EXPECT_TRUE(m.Done());
  }
  EXPECT_FALSE(Prefix(lits, "13"));
  EXPECT_FALSE(Prefix(lits, "2"));
  EXPECT_TRUE(Complete(lits, "\"x\""));
  EXPECT_FALSE(Prefix(lits, "\"y"));

  const auto any = b.Build(b.AnyOf({b.Integer(), b.String(0, 2), b.Null()}));
  EXPECT_TRUE(Complete(any, "null"));
  EXPECT_TRUE(Complete(any, "-12"));
  EXPECT_TRUE(Complete(any, "\"ab\""));
  EXPECT_FALSE(Prefix(any, "\"abc"));
  EXPECT_FALSE(Prefix(any, "1.5"));
  EXPECT_FALSE(Complete(any, "-"));

  const auto number = b.Build(b.Number());
  for (const char* text : {"0", "-0.5e+10", "3.25", "1E3"}) EXPECT_TRUE(Complete(number, text));
  for (const char* text : {"1.", "-", "1e", "1e+", "00"}) EXPECT_FALSE(Complete(number, text));
}

// A hand vocabulary: every token's bytes, "" for special tokens; id 13 is the end token.
std::vector<std::string> HandPieces() {
  return {"{", "}", "\"", "a", "\":", " ", "1", "{\"", "}\n", "", "\"a\"", ",", ":", "<eos>",
          "12", "a\"", "\n\n", "x"};
}

TEST(JsonConstraintTest, TokenMaskMatchesHandChoices) {
  const ConstraintVocab vocab(HandPieces(), {13});
  JsonGrammarBuilder b;
  const auto g = b.Build(b.Object({{"a", b.Integer(), true}}));
  JsonMatcher m(g);
  std::vector<uint8_t> allowed;
  auto allowed_ids = [&]() {
    m.AllowedTokens(vocab, &allowed);
    std::vector<int> ids;
    for (size_t i = 0; i < allowed.size(); ++i) {
      if (allowed[i]) ids.push_back(static_cast<int>(i));
    }
    return ids;
  };
  // "\n\n" (16) never: two line breaks in one blank run.
  EXPECT_EQ(allowed_ids(), (std::vector<int>{0, 5, 7}));  // "{", " ", "{\""
  ASSERT_TRUE(m.Accept(vocab, 7));                           // {"
  EXPECT_EQ(allowed_ids(), (std::vector<int>{3, 15}));       // "a", "a\""
  ASSERT_TRUE(m.Accept(vocab, 15));                          // a"
  EXPECT_EQ(allowed_ids(), (std::vector<int>{5, 12}));       // " ", ":"
  ASSERT_TRUE(m.Accept(vocab, 12));
  EXPECT_EQ(allowed_ids(), (std::vector<int>{5, 6, 14}));  // " ", "1", "12"
  ASSERT_TRUE(m.Accept(vocab, 14));
  EXPECT_EQ(allowed_ids(), (std::vector<int>{1, 5, 6, 14}));  // "}" or more digits
  ASSERT_TRUE(m.Accept(vocab, 1));
  EXPECT_TRUE(m.Done());
  EXPECT_EQ(allowed_ids(), (std::vector<int>{13}));  // only the end token
  EXPECT_FALSE(m.Accept(vocab, 8));
}

// The trie walk must agree with checking every token on its own.
TEST(JsonConstraintTest, TokenMaskMatchesBruteForce) {
  std::vector<std::string> pieces = HandPieces();
  for (const char* extra : {"\"b", "\":\"", "tr", "true", "ue", "null", "-", ".", "e", "5",
                            "[", "]", "],", "\\", "\\n", "\xC3", "\xA9", "\xC3\xA9", "\t"}) {
    pieces.push_back(extra);
  }
  const ConstraintVocab vocab(pieces, {13});
  const auto g = JsonGrammar::AnyObject();
  JsonMatcher m(g);
  std::mt19937 rng(7);
  std::vector<uint8_t> allowed;
  for (int step = 0; step < 200 && !m.Done(); ++step) {
    m.AllowedTokens(vocab, &allowed);
    std::vector<int32_t> ok;
    for (int32_t id = 0; id < vocab.size(); ++id) {
      ASSERT_EQ(allowed[id] != 0, m.Allows(vocab, id)) << "step " << step << " token " << id;
      if (allowed[id]) ok.push_back(id);
    }
    ASSERT_FALSE(ok.empty());
    ASSERT_TRUE(m.Accept(vocab, ok[rng() % ok.size()]));
  }
}

// Random logits through the Sampler: whatever it draws, the text is the grammar's.
TEST(JsonConstraintTest, SamplerOnlyProducesGrammarText) {
  const ConstraintVocab vocab(HandPieces(), {13});
  JsonGrammarBuilder b;
  const auto g = b.Build(b.Object({{"a", b.Integer(), true}}));
  for (float temperature : {0.0f, 1.0f}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SamplingParams p;
      p.temperature = temperature;
      p.seed = seed;
      p.json_grammar = g;
      Sampler sampler(p, &vocab);
      std::mt19937 rng(static_cast<uint32_t>(seed));
      std::normal_distribution<float> noise(0.0f, 3.0f);
      std::string text;
      for (int step = 0; step < 200 && !sampler.output_complete(); ++step) {
        std::vector<float> logits(vocab.size());
        for (float& l : logits) l = noise(rng);
        const int32_t t = sampler.Sample(logits.data(), vocab.size());
        ASSERT_NE(t, 13);  // the value is never complete before the brace
        text += vocab.piece(t);
      }
      ASSERT_TRUE(sampler.output_complete()) << text;
      // Independent check: blanks removed, the text is {"a":<digits>}.
      std::string compact;
      for (char c : text) {
        if (c != ' ' && c != '\n') compact += c;
      }
      ASSERT_GE(compact.size(), 7u) << text;
      EXPECT_EQ(compact.substr(0, 5), "{\"a\":") << text;
      EXPECT_EQ(compact.back(), '}') << text;
      const std::string digits = compact.substr(5, compact.size() - 6);
      EXPECT_FALSE(digits.empty()) << text;
      EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos) << text;
      EXPECT_TRUE(digits == "0" || digits[0] != '0') << text;
    }
  }
}

// Cost of the full mask on a real vocabulary (GPT-2, 50k tokens) in the states that cost
// most: inside a string almost every token is allowed, so almost the whole trie is
// walked. Prints the timings (docs/api.md quotes them); asserts only a loose bound.
TEST(JsonConstraintTest, FullMaskCostOnGpt2Vocabulary) {
  const std::string path = VLSERVE_SOURCE_DIR "/../shared/vocab/ggml-vocab-gpt-2.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not there";
  auto tok = tokenizer::LoadTokenizerFromGguf(path);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto t0 = std::chrono::steady_clock::now();
  const auto vocab = ConstraintVocab::FromTokenizer(**tok);
  const double build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<uint8_t> allowed;
  for (const char* prefix : {"{", "{\"name\": \"abc", "{\"a\": [1, 2", "{\"a\": {\"b\": tr"}) {
    JsonMatcher m(JsonGrammar::AnyObject());
    ASSERT_TRUE(m.Advance(prefix));
    constexpr int kRounds = 5;
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) m.AllowedTokens(*vocab, &allowed);
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0).count() / kRounds;
    size_t n = 0;
    for (uint8_t a : allowed) n += a;
    std::printf("vocab %lld (trie built in %.1f ms): mask after '%s': %.2f ms, %zu allowed\n",
                static_cast<long long>(vocab->size()), build_ms, prefix, ms, n);
    EXPECT_GT(n, 0u);
    EXPECT_LT(ms, 2000.0);  // a sanity bound (ASan, loaded CI), not the benchmark
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) (void)m.Allows(*vocab, 1000 + i);
    std::printf("  one-token check: %.3f us\n",
                std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                        .count() / 1000);
  }
}

}  // namespace
}  // namespace vlserve
