#include "render/text.h"

#include <hb.h>

namespace vlserve::render {

DecodedText DecodeUtf8(std::string_view bytes) {
  DecodedText out;
  out.chars.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      out.chars.push_back(b);
      ++i;
      continue;
    }
    int len = 0;
    char32_t c = 0, min = 0;
    if ((b & 0xE0) == 0xC0) {
      len = 2, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, c = b & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) ok = false;
      c = (c << 6) | (p[i + k] & 0x3F);
    }
    if (ok && (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))) ok = false;
    if (!ok) {
      // Replace one byte and resynchronise on the next one.
      out.chars.push_back(kReplacementChar);
      ++out.invalid_bytes;
      ++i;
      continue;
    }
    out.chars.push_back(c);
    i += len;
  }
  return out;
}

bool IsCjkBreakable(char32_t c) {
  return (c >= 0x2E80 && c <= 0x2FDF) ||   // CJK radicals, Kangxi
         (c >= 0x3000 && c <= 0x303F) ||   // CJK symbols and punctuation
         (c >= 0x3040 && c <= 0x30FF) ||   // Hiragana, Katakana
         (c >= 0x3100 && c <= 0x31BF) ||   // Bopomofo, Hangul compatibility jamo
         (c >= 0x31F0 && c <= 0x9FFF) ||   // Katakana ext, enclosed, CJK ext A, unified
         (c >= 0xAC00 && c <= 0xD7AF) ||   // Hangul syllables
         (c >= 0xF900 && c <= 0xFAFF) ||   // CJK compatibility ideographs
         (c >= 0xFE30 && c <= 0xFE4F) ||   // CJK compatibility forms
         (c >= 0xFF00 && c <= 0xFFEF) ||   // half/full-width forms
         (c >= 0x20000 && c <= 0x3FFFF);   // CJK ext B..
}

bool IsNoBreakBefore(char32_t c) {
  switch (c) {
    case 0x3001: case 0x3002: case 0xFF0C: case 0xFF0E: case 0xFF1A: case 0xFF1B:
    case 0xFF01: case 0xFF1F: case 0xFF09: case 0x300D: case 0x300F: case 0x3011:
    case 0x300B: case 0x3009: case 0x201D: case 0x2019: case 0x30FC: case 0x3005:
    case ')': case ']': case '}': case ',': case '.': case ';': case ':': case '!':
    case '?': case 0x2026:
      return true;
    default:
      return false;
  }
}

bool IsNoBreakAfter(char32_t c) {
  switch (c) {
    case 0xFF08: case 0x300C: case 0x300E: case 0x3010: case 0x300A: case 0x3008:
    case 0x201C: case 0x2018: case '(': case '[': case '{':
      return true;
    default:
      return false;
  }
}

bool IsClusterContinuation(char32_t c) {
  if (c < 0x300) return false;
  if (c == 0x200D || c == 0x200C) return true;                 // ZWJ, ZWNJ
  if ((c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xE0100 && c <= 0xE01EF)) return true;
  if (c >= 0x1F3FB && c <= 0x1F3FF) return true;               // emoji skin tones
  switch (hb_unicode_general_category(hb_unicode_funcs_get_default(), c)) {
    case HB_UNICODE_GENERAL_CATEGORY_NON_SPACING_MARK:
    case HB_UNICODE_GENERAL_CATEGORY_SPACING_MARK:
    case HB_UNICODE_GENERAL_CATEGORY_ENCLOSING_MARK:
      return true;
    default:
      return false;
  }
}

bool IsSentenceEnd(char32_t c) {
  return c == '.' || c == '!' || c == '?' || c == 0x3002 || c == 0xFF01 || c == 0xFF1F ||
         c == 0x2026;
}

bool IsDropped(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  return c < 0x20 || (c >= 0x7F && c < 0xA0) || c == 0xFEFF;
}

}  // namespace vlserve::render
