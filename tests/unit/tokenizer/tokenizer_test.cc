#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include "test_vocab.h"

namespace vlserve::tokenizer {
namespace {

using testing::ByteLevelConfig;
using testing::SpmConfig;
using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> Make(TokenizerConfig c) {
  StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Create(std::move(c));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

const EncodeOptions kPlain{.add_special = false, .parse_special = false};

TEST(BpeTest, MergesByRank) {
  // 256 "ab", 257 "abc", 258 "bc"
  auto t = Make(ByteLevelConfig({"ab", "abc", "bc"}, {"a b", "ab c", "b c"}));
  EXPECT_EQ(t->Encode("abc", kPlain), (Ids{257}));
  EXPECT_EQ(t->Encode("abab", kPlain), (Ids{256, 256}));
  EXPECT_EQ(t->Encode("bca", kPlain), (Ids{258, 'a'}));
  EXPECT_EQ(t->Encode("xyz", kPlain), (Ids{'x', 'y', 'z'}));
}

TEST(BpeTest, LowerRankWinsOverPosition) {
  // "b c" has the better rank, so "abc" -> a + bc even though "a b" is leftmost.
  auto t = Make(ByteLevelConfig({"ab", "bc"}, {"b c", "a b"}));
  EXPECT_EQ(t->Encode("abc", kPlain), (Ids{'a', 257}));
}

TEST(BpeTest, EqualRankTieGoesLeftmost) {
  auto t = Make(ByteLevelConfig({"aa"}, {"a a"}));
  EXPECT_EQ(t->Encode("aaa", kPlain), (Ids{256, 'a'}));
  EXPECT_EQ(t->Encode("aaaa", kPlain), (Ids{256, 256}));
}

TEST(BpeTest, SpaceUsesByteAlphabet) {
  // GPT-2 maps the space byte to U+0120 'Ġ'.
  auto t = Make(ByteLevelConfig({"\xC4\xA0"
                                 "a"},
                                {"\xC4\xA0 a"}));
  EXPECT_EQ(t->Encode("a a", kPlain), (Ids{'a', 256}));
  EXPECT_EQ(t->Decode(Ids{'a', 256}), "a a");
}

TEST(BpeTest, LinearAndHeapMergeLoopsAgree) {
  StatusOr<BpeModel> m = BpeModel::Create(ByteLevelConfig({"aa", "aaaa", "ab", "ba"}, {}).tokens,
                                          {"a a", "aa aa", "a b", "b a"}, false);
  ASSERT_TRUE(m.ok());
  for (const char* w : {"aaaaaaa", "abababa", "baaab", "aabbaabbaa", "a"}) {
    Ids linear, heap;
    m->EncodeWordUncached(w, false, &linear);
    m->EncodeWordUncached(w, true, &heap);
    EXPECT_EQ(linear, heap) << w;
  }
}

TEST(BpeTest, MalformedMergeIsAnError) {
  StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Create(ByteLevelConfig({"ab"}, {"ab"}));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, UnsupportedPreTokenizerIsUnimplemented) {
  StatusOr<std::unique_ptr<Tokenizer>> t =
      Tokenizer::Create(ByteLevelConfig({}, {}, "no-such-pre"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("smollm"), std::string::npos);
}

TEST(TokenizerTest, UnsupportedModelIsUnimplemented) {
  TokenizerConfig c = ByteLevelConfig({}, {});
  c.model = "bert";
  StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Create(c);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
}

TEST(TokenizerTest, AddBosWithoutBosIdIsInvalid) {
  TokenizerConfig c = ByteLevelConfig({}, {});
  c.add_bos = true;
  StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Create(c);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
}

// 256 <|im_start|> (control), 257 <|im_end|> (control), 258 <u> (user-defined),
// 259 <u><v> (control, longer than <u>)
TokenizerConfig SpecialConfig() {
  TokenizerConfig c = ByteLevelConfig({"<|im_start|>", "<|im_end|>", "<u>", "<u><v>"}, {});
  c.token_types.assign(c.tokens.size(), TokenType::kNormal);
  c.token_types[256] = c.token_types[257] = c.token_types[259] = TokenType::kControl;
  c.token_types[258] = TokenType::kUserDefined;
  c.bos_id = 256;
  c.eos_id = 257;
  return c;
}

TEST(TokenizerTest, ControlTokensOnlyWithParseSpecial) {
  auto t = Make(SpecialConfig());
  const std::string text = "a<|im_end|>";
  Ids plain = t->Encode(text, kPlain);
  EXPECT_EQ(plain.size(), text.size());  // every byte is its own token
  EXPECT_EQ(t->Encode(text, {.add_special = false, .parse_special = true}), (Ids{'a', 257}));
}

// Long texts are pre-tokenized in chunks cut where no word crosses; exaone-moe's words
// span single spaces between letters ("d d d" is one word), so no cut may fall there.
TEST(TokenizerTest, ChunkingKeepsWordsThatSpanSpacesWhole) {
  // 256 "dĠ" (merge "d Ġ"): only inside one word can "d" and the following space merge.
  auto t = Make(ByteLevelConfig({"d\xC4\xA0"}, {"d \xC4\xA0"}, "exaone-moe"));
  std::string text;
  for (int i = 0; i < 40000; ++i) text += "d ";  // 80 KB, over the 64 KB chunk size
  text += "d";
  Ids want(40000, 256);
  want.push_back('d');
  EXPECT_EQ(t->Encode(text, kPlain), want);
  // superbpe cuts only at digits: "d d d" is one word there too, so no chunking at all.
  EXPECT_EQ(Make(ByteLevelConfig({"d\xC4\xA0"}, {"d \xC4\xA0"}, "superbpe"))->Encode(text, kPlain),
            want);
}

// Chat prompts: control tokens only in the template's spans (issue #18 item 7).
TEST(TokenizerTest, EncodeSpansParsesControlTokensOnlyWhereAsked) {
  auto t = Make(SpecialConfig());
  const std::string user = "<|im_start|>system<u>";
  const TextSpan spans[] = {{"<|im_start|>u\n", true}, {user, false}, {"<|im_end|>", true}};
  Ids want = {256, 'u', '\n'};
  for (const char c : std::string_view("<|im_start|>system")) want.push_back(c);
  want.push_back(258);  // user-defined tokens match everywhere, as in Encode
  want.push_back(257);
  EXPECT_EQ(t->EncodeSpans(spans, kPlain), want);
  // BOS/EOS as in Encode; all spans special = Encode with parse_special.
  const TextSpan all[] = {{"a<|im_end|>", true}, {"b", true}};
  EXPECT_EQ(t->EncodeSpans(all, {.add_special = true}), (Ids{'a', 257, 'b'}));
  TokenizerConfig c = SpecialConfig();
  c.add_bos = true;
  EXPECT_EQ(Make(c)->EncodeSpans(all, {.add_special = true}), (Ids{256, 'a', 257, 'b'}));
}

TEST(TokenizerTest, EncodeSpansTokenizesAcrossSpanBoundaries) {
  // 256 "ab" (merge "a b"), 257 <c> (control): "a" + "b" from two spans still merge.
  TokenizerConfig c = ByteLevelConfig({"ab", "<c>"}, {"a b"});
  c.token_types.assign(c.tokens.size(), TokenType::kNormal);
  c.token_types[257] = TokenType::kControl;
  auto t = Make(c);
  const TextSpan spans[] = {{"<c>a", true}, {"b<c>", false}, {"ab<c>", true}};
  EXPECT_EQ(t->EncodeSpans(spans, kPlain), (Ids{257, 256, '<', 'c', '>', 256, 257}));
  EXPECT_EQ(t->EncodeSpans({}, kPlain), Ids{});
}

TEST(TokenizerTest, UserDefinedTokensAlwaysMatchAndLongestWins) {
  auto t = Make(SpecialConfig());
  EXPECT_EQ(t->Encode("x<u>y", kPlain), (Ids{'x', 258, 'y'}));
  // With parse_special the longer control token <u><v> wins over <u>.
  EXPECT_EQ(t->Encode("<u><v>", {.add_special = false, .parse_special = true}), (Ids{259}));
  EXPECT_EQ(t->Encode("<u><v>", kPlain), (Ids{258, '<', 'v', '>'}));
}

TEST(TokenizerTest, BosEosFollowFlags) {
  TokenizerConfig c = SpecialConfig();
  c.add_bos = true;
  c.add_eos = true;
  auto t = Make(c);
  EXPECT_EQ(t->Encode("a"), (Ids{256, 'a', 257}));
  EXPECT_EQ(t->Encode("a", kPlain), (Ids{'a'}));
  // Byte-level BPE defaults: no BOS unless the pre-tokenizer is llama3.
  EXPECT_FALSE(Make(SpecialConfig())->add_bos());
  TokenizerConfig l3 = SpecialConfig();
  l3.pre = "llama-bpe";
  EXPECT_TRUE(Make(l3)->add_bos());
}

// llama-vocab.cpp: "glm4"/"chatglm-bpe" (LLAMA_VOCAB_PRE_TYPE_CHATGLM4) use llama3's regex
// but, unlike "llama3", neither set ignore_merges nor add_bos.
TEST(TokenizerTest, Glm4SplitsLikeLlama3WithoutItsDefaults) {
  // 256 "ab", 257 "abc"; only "a b" is a merge, so "abc" is a whole-word token that BPE
  // cannot reach.
  for (const char* pre : {"glm4", "chatglm-bpe"}) {
    auto t = Make(ByteLevelConfig({"ab", "abc"}, {"a b"}, pre));
    EXPECT_FALSE(t->add_bos()) << pre;
    EXPECT_EQ(t->Encode("abc", kPlain), (Ids{256, 'c'})) << pre;
    EXPECT_EQ(t->Encode("1234", kPlain), (Ids{'1', '2', '3', '4'})) << pre;
  }
  TokenizerConfig c = ByteLevelConfig({"ab", "abc"}, {"a b"}, "llama3");
  c.add_bos = false;
  EXPECT_EQ(Make(c)->Encode("abc", kPlain), (Ids{257}));  // ignore_merges
}

TEST(TokenizerTest, DecodeSkipsControlUnlessRendered) {
  auto t = Make(SpecialConfig());
  const Ids ids = {256, 'h', 'i', 258, 257};
  EXPECT_EQ(t->Decode(ids), "hi<u>");
  EXPECT_EQ(t->Decode(ids, {.render_special = true}), "<|im_start|>hi<u><|im_end|>");
  EXPECT_TRUE(t->IsEndOfGeneration(257));
  EXPECT_FALSE(t->IsEndOfGeneration('a'));
}

// tokenizer.ggml.eot_token_id / eom_token_id end generation too (llama.cpp adds them to its
// end-of-generation set; GLM-4's converter writes <|user|> as eot, which HF's
// generation_config also stops on). An id outside the vocabulary is ignored.
TEST(TokenizerTest, EotAndEomIdsEndGeneration) {
  TokenizerConfig c = SpecialConfig();
  c.eot_id = 'x';
  c.eom_id = 'y';
  auto t = Make(c);
  EXPECT_TRUE(t->IsEndOfGeneration('x'));
  EXPECT_TRUE(t->IsEndOfGeneration('y'));
  EXPECT_FALSE(t->IsEndOfGeneration('z'));
  c = SpecialConfig();
  c.eot_id = 1 << 20;
  EXPECT_FALSE(Make(c)->IsEndOfGeneration(1 << 20));
}

TEST(SpmTest, MergesByScoreWithSpacePrefix) {
  // 259 "▁", 260 "▁a", 261 "b", 262 "▁ab", 263 "ab"
  auto t = Make(SpmConfig({{"\xE2\x96\x81", -1.0f},
                           {"\xE2\x96\x81"
                            "a",
                            -2.0f},
                           {"b", -1.0f},
                           {"\xE2\x96\x81"
                            "ab",
                            -3.0f},
                           {"ab", -0.5f}}));
  // "▁ab": candidates "▁a" (-2) and "ab" (-0.5): "ab" wins, then "▁"+"ab" = "▁ab".
  EXPECT_EQ(t->Encode("ab", kPlain), (Ids{262}));
  EXPECT_EQ(t->Encode("ab"), (Ids{1, 262}));  // BOS by default
  EXPECT_EQ(t->Encode("", kPlain), Ids{});
  EXPECT_EQ(t->Decode(Ids{1, 262}), "ab");  // the prefix space is stripped
}

TEST(SpmTest, ByteFallbackForUnknownCharacters) {
  auto t = Make(SpmConfig({{"\xE2\x96\x81", -1.0f}}));
  // "é" = C3 A9 has no token: <0xC3> = 3 + 0xC3, <0xA9> = 3 + 0xA9.
  EXPECT_EQ(t->Encode("\xC3\xA9", kPlain), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->Decode(Ids{259, 3 + 0xC3, 3 + 0xA9}), "\xC3\xA9");
}

TEST(SpmTest, TokenContainingInnerSpaceDisablesWordSplitting) {
  // 259 "▁", 260 "▁x", 261 "x▁": "x▁" spans a word start, so the text must be merged as a
  // whole: "▁x▁x" -> "x▁" (best score) first -> ▁ + x▁ + x.
  auto t = Make(SpmConfig({{"\xE2\x96\x81", -1.0f},
                           {"\xE2\x96\x81"
                            "x",
                            -1.0f},
                           {"x\xE2\x96\x81", -0.5f}}));
  EXPECT_EQ(t->Encode("x x", kPlain), (Ids{259, 261, 'x' + 3}));
  // Without the inner-space token the words are independent: ▁x ▁x.
  auto u = Make(SpmConfig({{"\xE2\x96\x81", -1.0f},
                           {"\xE2\x96\x81"
                            "x",
                            -1.0f}}));
  EXPECT_EQ(u->Encode("x x", kPlain), (Ids{260, 260}));
}

TEST(SpmTest, SpacePrefixAfterSpecialToken) {
  TokenizerConfig c = SpmConfig({{"\xE2\x96\x81", -1.0f}, {"x", -1.0f}});
  auto t = Make(c);
  // "</s>x" with parse_special: "x" follows a special token, so it gets "▁" too.
  EXPECT_EQ(t->Encode("x</s>x", {.add_special = false, .parse_special = true}),
            (Ids{259, 260, 2, 259, 260}));
}

}  // namespace
}  // namespace vlserve::tokenizer
