#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <memory>

namespace vlserve::tokenizer {
namespace {

struct Range {
  uint32_t first;
  uint8_t flags;
};

constexpr Range kRanges[] = {
#include "tokenizer/unicode_tables.inc"
};

// Flat table for the Basic Multilingual Plane, built once from the ranges.
const std::array<uint8_t, 0x10000>& BmpTable() {
  static const auto* table = [] {
    auto* t = new std::array<uint8_t, 0x10000>();
    const size_t n = std::size(kRanges);
    for (size_t i = 0; i < n && kRanges[i].first < 0x10000; ++i) {
      const uint32_t end = i + 1 < n ? std::min<uint32_t>(kRanges[i + 1].first, 0x10000) : 0x10000;
      std::fill(t->begin() + kRanges[i].first, t->begin() + end, kRanges[i].flags);
    }
    return t;
  }();
  return *table;
}

}  // namespace

uint8_t CodePointFlags(uint32_t cp) {
  if (cp < 0x10000) return BmpTable()[cp];
  if (cp > 0x10FFFF) return 0;
  const Range* it = std::upper_bound(std::begin(kRanges), std::end(kRanges), cp,
                                     [](uint32_t v, const Range& r) { return v < r.first; });
  return (it - 1)->flags;
}

uint32_t DecodeUtf8(std::string_view text, size_t* pos) {
  const size_t i = *pos;
  const auto b = [&](size_t k) { return static_cast<uint8_t>(text[i + k]); };
  const uint8_t c0 = b(0);
  if (c0 < 0x80) {
    *pos = i + 1;
    return c0;
  }
  const size_t n = text.size() - i;
  const auto cont = [&](size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
  if ((c0 & 0xE0) == 0xC0 && cont(1)) {
    *pos = i + 2;
    return ((c0 & 0x1Fu) << 6) | (b(1) & 0x3Fu);
  }
  if ((c0 & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    *pos = i + 3;
    return ((c0 & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
  }
  if ((c0 & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    *pos = i + 4;
    return ((c0 & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
  }
  *pos = i + 1;
  return 0xFFFD;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t CompleteUtf8Prefix(std::string_view bytes) {
  // Only the last (up to) 3 bytes can belong to an unfinished sequence.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 0;
    if ((c & 0xE0) == 0xC0)
      need = 2;
    else if ((c & 0xF0) == 0xE0)
      need = 3;
    else if ((c & 0xF8) == 0xF0)
      need = 4;
    // An ASCII/invalid lead, or a sequence that is already complete: nothing pending.
    if (need == 0 || back >= need) return n;
    return n - back;
  }
  return n;  // only continuation bytes at the end, with no lead: they can never complete
}

}  // namespace vlserve::tokenizer
