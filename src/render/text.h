// UTF-8 decoding and the character classes the line breaker needs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vlserve::render {

struct DecodedText {
  // One entry per code point; every offset the renderer reports indexes this array
  // (the same indices as a Python str of the valid text).
  std::u32string chars;
  // Bytes that were not valid UTF-8 (overlong forms, surrogates, > U+10FFFF, truncated
  // sequences). Each maximal invalid byte is replaced by one U+FFFD.
  int64_t invalid_bytes = 0;
};

DecodedText DecodeUtf8(std::string_view bytes);

constexpr char32_t kReplacementChar = 0xFFFD;
constexpr char32_t kSoftHyphen = 0x00AD;
constexpr char32_t kZeroWidthSpace = 0x200B;

// Scripts written without spaces: a line may break before or after each of these.
bool IsCjkBreakable(char32_t c);
// Closing punctuation that must not start a line (kinsoku): "，。）」" etc.
bool IsNoBreakBefore(char32_t c);
// Opening punctuation that must not end a line: "（「" etc.
bool IsNoBreakAfter(char32_t c);
// Characters that continue the previous grapheme cluster (combining marks, ZWJ,
// variation selectors, emoji modifiers); never split before one of these.
bool IsClusterContinuation(char32_t c);
// Characters that end a sentence when followed by a space or at a CJK full stop.
bool IsSentenceEnd(char32_t c);
// Breakable horizontal white space (kept as runs, hung at line ends).
inline bool IsBreakableSpace(char32_t c) { return c == ' '; }
// Invisible format characters dropped before shaping (BOM, C0/C1 controls except tab/newline).
bool IsDropped(char32_t c);

}  // namespace vlserve::render
