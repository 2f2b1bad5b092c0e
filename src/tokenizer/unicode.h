// Code point classes (Unicode general categories, White_Space) and UTF-8 helpers for the
// pre-tokenizers. The class table is generated from Python's unicodedata by
// tools/gen_unicode_tables.py into unicode_tables.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vlserve::tokenizer {

// The major general category of a code point. Values are part of the generated table.
enum class CpClass : uint8_t {
  kUnassigned = 0,  // Cn
  kLetter = 1,      // L*  (\p{L})
  kMark = 2,        // M*  (\p{M})
  kNumber = 3,      // N*  (\p{N})
  kPunct = 4,       // P*  (\p{P})
  kSymbol = 5,      // S*  (\p{S})
  kSeparator = 6,   // Z*
  kControl = 7,     // Cc
  kOther = 8,       // Cf, Co, Cs
};

inline constexpr uint8_t kClassMask = 0x0F;
inline constexpr uint8_t kWhitespaceFlag = 0x10;  // Unicode White_Space (regex \s)

// flags = CpClass | kWhitespaceFlag. O(1) for the BMP, binary search above it.
uint8_t CodePointFlags(uint32_t cp);

inline CpClass ClassOf(uint8_t flags) { return static_cast<CpClass>(flags & kClassMask); }
inline bool IsLetter(uint8_t flags) { return ClassOf(flags) == CpClass::kLetter; }
inline bool IsNumber(uint8_t flags) { return ClassOf(flags) == CpClass::kNumber; }
inline bool IsPunct(uint8_t flags) { return ClassOf(flags) == CpClass::kPunct; }
inline bool IsSpace(uint8_t flags) { return (flags & kWhitespaceFlag) != 0; }

// Decodes one code point at text[*pos] and advances *pos. Invalid or truncated sequences
// consume one byte and yield U+FFFD (as llama.cpp does), so every byte is consumed.
uint32_t DecodeUtf8(std::string_view text, size_t* pos);

// Appends the UTF-8 encoding of cp (cp <= 0x10FFFF).
void AppendUtf8(uint32_t cp, std::string* out);

// Length of a UTF-8 sequence from its lead byte (1 for continuation/invalid bytes), as
// llama.cpp's unicode_len_utf8.
inline size_t Utf8SeqLen(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// The length of the longest prefix of `bytes` that does not end inside an incomplete
// (but so far valid) UTF-8 sequence: bytes past it might still complete a character.
// Invalid bytes count as complete (they will never become valid).
size_t CompleteUtf8Prefix(std::string_view bytes);

// Simple lower-casing of ASCII letters, enough for the (?i:'s|'t|...) contractions.
inline uint32_t AsciiLower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

}  // namespace vlserve::tokenizer
