#include "tokenizer/detokenizer.h"

#include <gtest/gtest.h>

#include "test_vocab.h"

namespace vlserve::tokenizer {
namespace {

// Independent UTF-8 validity check (RFC 3629 structure; no overlong/surrogate checks
// needed for these inputs).
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

std::unique_ptr<Tokenizer> ByteTokenizer() {
  // No merges: every byte is its own token, so multi-byte characters are always split.
  return std::move(*Tokenizer::Create(testing::ByteLevelConfig({}, {})));
}

TEST(StreamingDetokenizerTest, NeverEmitsPartialCharacters) {
  auto t = ByteTokenizer();
  // é (2 bytes), 世界 (3 each), 😀 (4), 👩‍💻 (ZWJ sequence), plain ASCII.
  const std::string text =
      "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80 "
      "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB!";
  const std::vector<int32_t> ids = t->Encode(text, {.add_special = false});
  ASSERT_EQ(ids.size(), text.size());
  StreamingDetokenizer detok(*t);
  std::string joined;
  for (const int32_t id : ids) {
    const std::string piece = detok.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece));
    EXPECT_LE(detok.pending_bytes(), 3u);
    joined += piece;
  }
  joined += detok.Flush();
  EXPECT_EQ(joined, text);
  EXPECT_EQ(joined, t->Decode(ids));
}

TEST(StreamingDetokenizerTest, HoldsBackUntilCharacterCompletes) {
  auto t = ByteTokenizer();
  StreamingDetokenizer detok(*t);
  EXPECT_EQ(detok.Push(0xF0), "");
  EXPECT_EQ(detok.Push(0x9F), "");
  EXPECT_EQ(detok.Push(0x98), "");
  EXPECT_EQ(detok.pending_bytes(), 3u);
  EXPECT_EQ(detok.Push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(detok.Push('a'), "a");
}

TEST(StreamingDetokenizerTest, FlushReplacesAnUnfinishedCharacter) {
  auto t = ByteTokenizer();
  StreamingDetokenizer detok(*t);
  EXPECT_EQ(detok.Push('x'), "x");
  EXPECT_EQ(detok.Push(0xE4), "");
  EXPECT_EQ(detok.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(detok.pending_bytes(), 0u);
}

TEST(StreamingDetokenizerTest, InvalidBytesBecomeReplacementCharacters) {
  auto t = ByteTokenizer();
  StreamingDetokenizer detok(*t);
  EXPECT_EQ(detok.Push(0x80), "\xEF\xBF\xBD");  // a lone continuation byte
  EXPECT_EQ(detok.Push(0xC3), "");
  EXPECT_EQ(detok.Push('a'),
            "\xEF\xBF\xBD"
            "a");  // lead byte cut off by ASCII
}

TEST(StreamingDetokenizerTest, SentencePieceByteFallbackAndPrefix) {
  auto t = std::move(*Tokenizer::Create(testing::SpmConfig({{"\xE2\x96\x81", -1.0f}})));
  const std::string text = "\xE4\xB8\x96";  // 世 -> <0xE4><0xB8><0x96> after "▁"
  const std::vector<int32_t> ids = t->Encode(text);
  ASSERT_EQ(ids.size(), 5u);  // <s> ▁ + 3 byte tokens
  StreamingDetokenizer detok(*t);
  std::string joined;
  for (const int32_t id : ids) {
    const std::string piece = detok.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece));
    joined += piece;
  }
  joined += detok.Flush();
  EXPECT_EQ(joined, text);  // BOS renders as nothing, the prefix space is stripped
}

}  // namespace
}  // namespace vlserve::tokenizer

namespace vlserve::tokenizer {
namespace {

// Strict validity (RFC 3629): what JSON encoders and browsers accept.
TEST(SanitizeUtf8Test, RejectsOverlongSurrogatesAndOutOfRange) {
  const std::string kFffd = "\xEF\xBF\xBD";
  EXPECT_EQ(SanitizeUtf8("a\xC3\xA9z"), "a\xC3\xA9z");                // é is fine
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");    // U+1F600
  EXPECT_EQ(SanitizeUtf8(kFffd), kFffd);                               // a real U+FFFD
  // E0 8E 8E: overlong 3-byte form of U+038E (what a noise model produced).
  EXPECT_EQ(SanitizeUtf8("\xE0\x8E\x8E"), kFffd + kFffd + kFffd);
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), kFffd + kFffd);                  // overlong '/'
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);      // surrogate D800
  EXPECT_EQ(SanitizeUtf8("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
}

}  // namespace
}  // namespace vlserve::tokenizer
