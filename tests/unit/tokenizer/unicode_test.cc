#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace vlserve::tokenizer {
namespace {

TEST(UnicodeTest, ClassesOfKnownCodePoints) {
  // Expected categories from the Unicode Character Database.
  EXPECT_EQ(ClassOf(CodePointFlags('a')), CpClass::kLetter);
  EXPECT_EQ(ClassOf(CodePointFlags(0xC4)), CpClass::kLetter);    // Ä
  EXPECT_EQ(ClassOf(CodePointFlags(0x4E16)), CpClass::kLetter);  // 世 (Lo)
  EXPECT_EQ(ClassOf(CodePointFlags(0x1780)), CpClass::kLetter);  // Khmer ក
  EXPECT_EQ(ClassOf(CodePointFlags('7')), CpClass::kNumber);
  EXPECT_EQ(ClassOf(CodePointFlags(0x663)), CpClass::kNumber);  // Arabic-Indic three
  EXPECT_EQ(ClassOf(CodePointFlags(0xBD)), CpClass::kNumber);   // ½ (No)
  EXPECT_EQ(ClassOf(CodePointFlags('!')), CpClass::kPunct);
  EXPECT_EQ(ClassOf(CodePointFlags(0x3001)), CpClass::kPunct);  // 、
  EXPECT_EQ(ClassOf(CodePointFlags('$')), CpClass::kSymbol);
  EXPECT_EQ(ClassOf(CodePointFlags('~')), CpClass::kSymbol);
  EXPECT_EQ(ClassOf(CodePointFlags(0x1F600)), CpClass::kSymbol);  // 😀 (So)
  EXPECT_EQ(ClassOf(CodePointFlags(0x301)), CpClass::kMark);      // combining acute
  EXPECT_EQ(ClassOf(CodePointFlags(0x200D)), CpClass::kOther);    // ZWJ (Cf)
  EXPECT_EQ(ClassOf(CodePointFlags(0x10FFFF)), CpClass::kUnassigned);
  EXPECT_EQ(ClassOf(CodePointFlags(0x20000)), CpClass::kLetter);  // CJK Ext. B
}

TEST(UnicodeTest, WhiteSpaceProperty) {
  for (uint32_t cp : {0x9u, 0xAu, 0xDu, 0x20u, 0x85u, 0xA0u, 0x2003u, 0x3000u, 0x2029u}) {
    EXPECT_TRUE(IsSpace(CodePointFlags(cp))) << std::hex << cp;
  }
  for (uint32_t cp : {0x1Cu, 0x200Bu, 0x61u, 0x180Eu}) {
    EXPECT_FALSE(IsSpace(CodePointFlags(cp))) << std::hex << cp;
  }
}

TEST(UnicodeTest, DecodeUtf8) {
  const std::string s = "a\xC3\xA9\xE4\xB8\x96\xF0\x9F\x98\x80";  // a é 世 😀
  size_t pos = 0;
  EXPECT_EQ(DecodeUtf8(s, &pos), 'a');
  EXPECT_EQ(DecodeUtf8(s, &pos), 0xE9u);
  EXPECT_EQ(DecodeUtf8(s, &pos), 0x4E16u);
  EXPECT_EQ(DecodeUtf8(s, &pos), 0x1F600u);
  EXPECT_EQ(pos, s.size());
  // A truncated sequence consumes one byte and yields U+FFFD.
  const std::string bad = "\xE4\xB8";
  pos = 0;
  EXPECT_EQ(DecodeUtf8(bad, &pos), 0xFFFDu);
  EXPECT_EQ(pos, 1u);
}

TEST(UnicodeTest, AppendUtf8MatchesLiteral) {
  std::string out;
  for (uint32_t cp : {0x41u, 0xE9u, 0x4E16u, 0x1F600u}) AppendUtf8(cp, &out);
  EXPECT_EQ(out, "A\xC3\xA9\xE4\xB8\x96\xF0\x9F\x98\x80");
}

TEST(UnicodeTest, CompleteUtf8Prefix) {
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98"), 2u);  // 3 of 4 bytes of 😀
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(CompleteUtf8Prefix("\xE4"), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("\xE4\xB8"), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("x\xC3"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("x\x80\x80"), 3u);  // stray continuation bytes: never complete
}

}  // namespace
}  // namespace vlserve::tokenizer
