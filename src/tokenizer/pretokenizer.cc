#include "tokenizer/pretokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace vlserve::tokenizer {
namespace {

// The input as code points with their class flags; byte_offset[i] is where code point i
// starts in the UTF-8 text (byte_offset[n] = text size).
struct CodePoints {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> flags;
  std::vector<uint32_t> byte_offset;
};

void Decode(std::string_view text, CodePoints* out) {
  out->cp.clear();
  out->flags.clear();
  out->byte_offset.clear();
  out->cp.reserve(text.size());
  out->flags.reserve(text.size());
  out->byte_offset.reserve(text.size() + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    out->byte_offset.push_back(static_cast<uint32_t>(pos));
    const uint32_t cp = DecodeUtf8(text, &pos);
    out->cp.push_back(cp);
    out->flags.push_back(CodePointFlags(cp));
  }
  out->byte_offset.push_back(static_cast<uint32_t>(text.size()));
}

// One fragment [begin, end) of the code points being split; positions outside it read
// as "no character", so look-aheads stop at fragment edges as in a regex over a substring.
struct Fragment {
  const CodePoints& t;
  size_t end;
  bool In(size_t i) const { return i < end; }
  uint32_t Cp(size_t i) const { return In(i) ? t.cp[i] : 0xFFFFFFFFu; }
  bool Letter(size_t i) const { return In(i) && IsLetter(t.flags[i]); }
  bool Number(size_t i) const { return In(i) && IsNumber(t.flags[i]); }
  bool Punct(size_t i) const { return In(i) && IsPunct(t.flags[i]); }
  bool Space(size_t i) const { return In(i) && IsSpace(t.flags[i]); }
  // [^\s\p{L}\p{N}]
  bool Other(size_t i) const {
    return In(i) && !IsSpace(t.flags[i]) && !IsLetter(t.flags[i]) && !IsNumber(t.flags[i]);
  }
};

// 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive; returns the end or pos.
size_t MatchContraction(const Fragment& f, size_t pos, bool ignore_case) {
  if (f.Cp(pos) != '\'') return pos;
  auto at = [&](size_t i) { return ignore_case ? AsciiLower(f.Cp(i)) : f.Cp(i); };
  const uint32_t c1 = at(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
  const uint32_t c2 = at(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
    return pos + 3;
  }
  return pos;
}

// \s+(?!\S)|\s+ at a whitespace run starting at pos (run length n >= 1).
size_t MatchSpaceRun(const Fragment& f, size_t pos) {
  size_t n = 0;
  while (f.Space(pos + n)) ++n;
  if (n == 0) return pos + 1;                      // no alternative matched: one character
  if (n > 1 && f.In(pos + n)) return pos + n - 1;  // leave the last space to the next word
  return pos + n;
}

// gpt-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t MatchGpt2(const Fragment& f, size_t pos) {
  if (size_t e = MatchContraction(f, pos, /*ignore_case=*/false); e != pos) return e;
  const size_t body = f.Cp(pos) == ' ' ? pos + 1 : pos;  // the optional leading space
  size_t e = body;
  if (f.Letter(body)) {
    while (f.Letter(e)) ++e;
    return e;
  }
  if (f.Number(body)) {
    while (f.Number(e)) ++e;
    return e;
  }
  if (f.Other(body)) {
    while (f.Other(e)) ++e;
    return e;
  }
  return MatchSpaceRun(f, pos);
}

// llama3 / qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t MatchLlama3(const Fragment& f, size_t pos, size_t max_digits) {
  if (size_t e = MatchContraction(f, pos, /*ignore_case=*/true); e != pos) return e;
  const uint32_t c = f.Cp(pos);
  if (f.Letter(pos) || (c != '\r' && c != '\n' && !f.Number(pos) && f.Letter(pos + 1))) {
    size_t e = pos + 1;
    while (f.Letter(e)) ++e;
    return e;
  }
  if (f.Number(pos)) {
    size_t e = pos;
    while (e - pos < max_digits && f.Number(e)) ++e;
    return e;
  }
  const size_t body = c == ' ' ? pos + 1 : pos;
  if (f.Other(body)) {
    size_t e = body;
    while (f.Other(e)) ++e;
    while (f.Cp(e) == '\r' || f.Cp(e) == '\n') ++e;
    return e;
  }
  // \s*[\r\n]+ : through the last CR/LF of the whitespace run, if it has one.
  size_t last_newline_end = 0;
  for (size_t i = pos; f.Space(i); ++i) {
    if (f.Cp(i) == '\r' || f.Cp(i) == '\n') last_newline_end = i + 1;
  }
  if (last_newline_end != 0) return last_newline_end;
  return MatchSpaceRun(f, pos);
}

// Search-style matchers for the multi-regex pre-tokenizers: return pos when there is no
// match at pos (the driver then moves on and keeps the skipped text as a piece).
size_t MatchNewline(const Fragment& f, size_t pos) {
  return (f.Cp(pos) == '\r' || f.Cp(pos) == '\n') ? pos + 1 : pos;
}
size_t MatchOneNumber(const Fragment& f, size_t pos) { return f.Number(pos) ? pos + 1 : pos; }

template <typename Pred>
size_t MatchOptSpaceThenRun(const Fragment& f, size_t pos, Pred pred) {  // \s?X+
  size_t body = pos;
  if (f.Space(pos) && pred(pos + 1)) body = pos + 1;
  size_t e = body;
  while (pred(e)) ++e;
  return e == body ? pos : e;
}
size_t MatchSpaceLetters(const Fragment& f, size_t pos) {
  return MatchOptSpaceThenRun(f, pos, [&](size_t i) { return f.Letter(i); });
}
size_t MatchSpacePunct(const Fragment& f, size_t pos) {
  return MatchOptSpaceThenRun(f, pos, [&](size_t i) { return f.Punct(i); });
}
// [一-龥ࠀ-一가-퟿]+ = [U+0800..U+9FA5] or [U+AC00..U+D7FF]
size_t MatchCjkRun(const Fragment& f, size_t pos) {
  size_t e = pos;
  while (f.In(e)) {
    const uint32_t c = f.Cp(e);
    if (!((c >= 0x800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF))) break;
    ++e;
  }
  return e;
}

using Matcher = size_t (*)(const Fragment&, size_t);

// Splits every piece [bounds[i], bounds[i+1]) with `match`; pieces between matches are
// kept. `bounds` holds piece ends (the first piece starts at 0).
void ApplyPass(const CodePoints& t, Matcher match, const std::vector<uint32_t>& bounds,
               std::vector<uint32_t>* out) {
  out->clear();
  size_t begin = 0;
  for (const uint32_t end : bounds) {
    const Fragment f{t, end};
    size_t gap = begin;
    size_t pos = begin;
    while (pos < end) {
      const size_t e = match(f, pos);
      if (e == pos) {
        ++pos;
        continue;
      }
      if (gap < pos) out->push_back(static_cast<uint32_t>(pos));
      out->push_back(static_cast<uint32_t>(e));
      pos = gap = e;
    }
    if (gap < end) out->push_back(end);
    begin = end;
  }
}

size_t MatchLlama3Digits3(const Fragment& f, size_t pos) { return MatchLlama3(f, pos, 3); }
size_t MatchQwen2(const Fragment& f, size_t pos) { return MatchLlama3(f, pos, 1); }

struct NameEntry {
  std::string_view name;
  PreTokenizerKind kind;
};
constexpr NameEntry kNames[] = {
    {"gpt-2", PreTokenizerKind::kGpt2},
    {"default", PreTokenizerKind::kGpt2},
    {"llama-bpe", PreTokenizerKind::kLlama3},
    {"llama3", PreTokenizerKind::kLlama3},
    {"llama-v3", PreTokenizerKind::kLlama3},
    {"qwen2", PreTokenizerKind::kQwen2},
    {"starcoder", PreTokenizerKind::kStarcoder},
    {"smollm", PreTokenizerKind::kStarcoder},
    {"deepseek-coder", PreTokenizerKind::kDeepseekCoder},
};

}  // namespace

StatusOr<PreTokenizer> PreTokenizer::Create(std::string_view name) {
  for (const NameEntry& e : kNames) {
    if (e.name == name) return PreTokenizer(e.kind);
  }
  return UnimplementedError(
      "pre-tokenizer '" + std::string(name) +
      "' (tokenizer.ggml.pre) is not supported; supported: " + SupportedNames());
}

std::string PreTokenizer::SupportedNames() {
  std::string s;
  for (const NameEntry& e : kNames) {
    if (!s.empty()) s += ", ";
    s += e.name;
  }
  return s;
}

std::string_view PreTokenizer::name() const {
  switch (kind_) {
    case PreTokenizerKind::kGpt2:
      return "gpt-2";
    case PreTokenizerKind::kLlama3:
      return "llama3";
    case PreTokenizerKind::kQwen2:
      return "qwen2";
    case PreTokenizerKind::kStarcoder:
      return "starcoder";
    case PreTokenizerKind::kDeepseekCoder:
      return "deepseek-coder";
  }
  return "?";
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* words) const {
  if (text.empty()) return;
  // Per-thread scratch, reused across calls (Split is called once per text chunk).
  thread_local CodePoints t;
  thread_local std::vector<uint32_t> a, b;
  Decode(text, &t);
  a.assign(1, static_cast<uint32_t>(t.cp.size()));
  auto pass = [&](Matcher m) {
    ApplyPass(t, m, a, &b);
    a.swap(b);
  };
  switch (kind_) {
    case PreTokenizerKind::kGpt2:
      pass(MatchGpt2);
      break;
    case PreTokenizerKind::kLlama3:
      pass(MatchLlama3Digits3);
      break;
    case PreTokenizerKind::kQwen2:
      pass(MatchQwen2);
      break;
    case PreTokenizerKind::kStarcoder:
      pass(MatchOneNumber);
      pass(MatchGpt2);
      break;
    case PreTokenizerKind::kDeepseekCoder:
      for (Matcher m :
           {MatchNewline, MatchSpaceLetters, MatchSpacePunct, MatchCjkRun, MatchOneNumber}) {
        pass(m);
      }
      break;
  }
  size_t begin = 0;
  for (const uint32_t end : a) {
    const uint32_t b0 = t.byte_offset[begin];
    words->push_back(text.substr(b0, t.byte_offset[end] - b0));
    begin = end;
  }
}

}  // namespace vlserve::tokenizer
