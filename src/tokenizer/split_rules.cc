#include "tokenizer/split_rules.h"

#include <algorithm>
#include <span>

namespace vlserve::tokenizer::split {
namespace {

struct Range {
  uint32_t first, last;
};

bool InRanges(uint32_t cp, std::span<const Range> ranges) {
  for (const Range& r : ranges) {
    if (cp >= r.first && cp <= r.last) return true;
  }
  return false;
}

// A literal code point class of a regex llama.cpp runs with std::wregex: non-ASCII
// whitespace never matches it (llama.cpp turns it into \v before matching).
bool InClass(const Fragment& f, size_t i, std::span<const Range> ranges) {
  return f.In(i) && !f.Space(i) && InRanges(f.Cp(i), ranges);
}

template <typename Pred>
size_t RunEnd(size_t pos, Pred pred) {
  while (pred(pos)) ++pos;
  return pos;
}

// \s?X+ : returns pos if there is no X.
template <typename Pred>
size_t OptSpaceThenRun(const Fragment& f, size_t pos, Pred pred) {
  const size_t body = (f.Space(pos) && pred(pos + 1)) ? pos + 1 : pos;
  const size_t e = RunEnd(body, pred);
  return e == body ? pos : e;
}

// ' ?X+' (a literal space): returns pos if there is no X.
template <typename Pred>
size_t OptBlankThenRun(const Fragment& f, size_t pos, Pred pred) {
  const size_t body = (f.Cp(pos) == ' ' && pred(pos + 1)) ? pos + 1 : pos;
  const size_t e = RunEnd(body, pred);
  return e == body ? pos : e;
}

bool AsciiLetter(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// Printable ASCII that is neither a letter, a digit nor a space: !-/ :-@ [-` {-~
bool AsciiPunctOrSymbol(uint32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

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

// \s+(?!\S)|\s+ at pos; pos if pos is not whitespace.
size_t MatchSpaceRun(const Fragment& f, size_t pos) {
  const size_t n = RunEnd(pos, [&](size_t i) { return f.Space(i); }) - pos;
  if (n > 1 && f.In(pos + n)) return pos + n - 1;  // leave the last space to the next word
  return pos + n;
}

// \s{512}(?!\S)|\s{256}(?!\S)|...|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1} at pos.
size_t MatchCascadingSpaces(const Fragment& f, size_t pos) {
  const size_t n = RunEnd(pos, [&](size_t i) { return f.Space(i); }) - pos;
  if (n == 0) return pos;
  const bool at_end = !f.In(pos + n);
  // \s{k}(?!\S): k spaces followed by a space or the end of the piece.
  for (const size_t k : {512, 256, 128, 64, 32, 16, 8, 4, 2, 1}) {
    if (n > k || (n == k && at_end)) return pos + k;
  }
  return pos + 1;  // \s{1}
}

// \s*[\r\n]+ (also \s*[\r\n]): through the last CR/LF of the whitespace run at pos.
size_t MatchSpacesToNewline(const Fragment& f, size_t pos) {
  size_t last_newline_end = pos;
  for (size_t i = pos; f.Space(i); ++i) {
    if (f.Newline(i)) last_newline_end = i + 1;
  }
  return last_newline_end;
}

bool IsHan(uint32_t c) {  // llama.cpp's unicode_cpt_is_han
  static constexpr Range kHan[] = {{0x4E00, 0x9FFF},   {0x3400, 0x4DBF},   {0x20000, 0x2A6DF},
                                   {0x2A700, 0x2B73F}, {0x2B740, 0x2B81F}, {0x2B820, 0x2CEAF},
                                   {0x2CEB0, 0x2EBEF}, {0xF900, 0xFAFF},   {0x2F800, 0x2FA1F}};
  return InRanges(c, kHan);
}

// The first letters of WORD: the class a word may start with.
bool WordChar(const Fragment& f, size_t i, Word w) {
  switch (w) {
    case Word::kLettersMarks:
    case Word::kCaseSplitMarks:
      return f.Letter(i) || f.Mark(i);
    case Word::kLettersNotHan:
      return f.Letter(i) && !IsHan(f.Cp(i));
    default:
      return f.Letter(i);
  }
}

// ((?=C)[^a-z])*((?=C)[^A-Z])+ (alternative 0) or ((?=C)[^a-z])+((?=C)[^A-Z])*
// (alternative 1) from start; SIZE_MAX when it does not match. Case is ASCII-only (see
// split_rules.h), so a non-ASCII letter (or mark) is both "upper" and "lower".
size_t MatchCaseSplitWord(const Fragment& f, size_t start, Word w, int alternative) {
  auto upper = [&](size_t i) { return WordChar(f, i, w) && !(f.Cp(i) >= 'a' && f.Cp(i) <= 'z'); };
  auto lower = [&](size_t i) { return WordChar(f, i, w) && !(f.Cp(i) >= 'A' && f.Cp(i) <= 'Z'); };
  const size_t upper_end = RunEnd(start, upper);
  if (alternative == 0) {
    // The longest upper prefix after which a lower run can start.
    for (size_t q = upper_end + 1; q-- > start;) {
      if (lower(q)) return RunEnd(q + 1, lower);
    }
    return SIZE_MAX;
  }
  return upper_end > start ? RunEnd(upper_end, lower) : SIZE_MAX;
}

size_t MatchWordBody(const Fragment& f, size_t start, Word w) {
  switch (w) {
    case Word::kLettersSpaced: {
      // (?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+ : letters with their marks, and single spaces
      // between letters.
      size_t e = start;
      while (true) {
        if (f.Letter(e)) {
          e = RunEnd(e + 1, [&](size_t i) { return f.Mark(i); });
        } else if (f.Cp(e) == ' ' && f.Letter(e + 1)) {
          ++e;
        } else {
          return e;
        }
      }
    }
    default:
      return RunEnd(start, [&](size_t i) { return WordChar(f, i, w); });
  }
}

bool ThreeDigitsAhead(const Fragment& f, size_t pos) {
  const size_t n = RunEnd(pos, [&](size_t i) { return f.AsciiDigit(i); }) - pos;
  return n >= 3 && n % 3 == 0;
}

}  // namespace

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

void ApplyRule(const CodePoints& t, Rule rule, const std::vector<uint32_t>& bounds,
               std::vector<uint32_t>* out) {
  out->clear();
  size_t begin = 0;
  for (const uint32_t end : bounds) {
    const Fragment f{t, end};
    size_t gap = begin;
    size_t pos = begin;
    while (pos < end) {
      const size_t e = rule(f, pos);
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

size_t MatchWords(const Fragment& f, size_t pos, const WordRules& r) {
  if (r.contraction == Contraction::kLeading) {
    if (size_t e = MatchContraction(f, pos, /*ignore_case=*/true); e != pos) return e;
  }
  if (r.word == Word::kLettersNotHan && f.Letter(pos) && IsHan(f.Cp(pos))) {  // \p{Han}+
    return RunEnd(pos, [&](size_t i) { return f.Letter(i) && IsHan(f.Cp(i)); });
  }
  // [^\r\n\p{L}\p{N}]?WORD
  const bool prefix = f.In(pos) && !f.Newline(pos) && !f.Letter(pos) && !f.Number(pos);
  if (r.word == Word::kCaseSplit || r.word == Word::kCaseSplitMarks) {
    // Each alternative is tried with the prefix, then without (a mark may be either).
    for (const int alternative : {0, 1}) {
      for (const size_t start : {prefix ? pos + 1 : SIZE_MAX, pos}) {
        if (start == SIZE_MAX || !WordChar(f, start, r.word)) continue;
        const size_t e = MatchCaseSplitWord(f, start, r.word, alternative);
        if (e == SIZE_MAX) continue;
        return r.contraction == Contraction::kSuffix ? MatchContraction(f, e, true) : e;
      }
    }
  }
  size_t start = pos;
  if (prefix && WordChar(f, pos + 1, r.word)) {
    start = pos + 1;
  } else if (!WordChar(f, pos, r.word)) {
    start = SIZE_MAX;
  }
  if (start != SIZE_MAX) {
    const size_t e = MatchWordBody(f, start, r.word);
    return r.contraction == Contraction::kSuffix ? MatchContraction(f, e, /*ignore_case=*/true) : e;
  }
  if (f.Number(pos)) {
    size_t e = pos + 1;
    while (f.Number(e) && (r.max_digits == 0 || e - pos < r.max_digits)) ++e;
    return e;
  }
  // ?[^\s\p{L}\p{N}]+TRAIL
  auto punct = [&](size_t i) { return f.Other(i) && !(r.punct_excludes_marks && f.Mark(i)); };
  if (size_t e = OptBlankThenRun(f, pos, punct); e != pos) {
    switch (r.trail) {
      case Trail::kNewlines:
        return RunEnd(e, [&](size_t i) { return f.Newline(i); });
      case Trail::kNewlinesSlash:
        return RunEnd(e, [&](size_t i) { return f.Newline(i) || f.Cp(i) == '/'; });
      case Trail::kOneNewlineSlash:
        return (f.Newline(e) || f.Cp(e) == '/') ? e + 1 : e;
      case Trail::kNone:
        return e;
    }
  }
  if (size_t e = MatchSpacesToNewline(f, pos); e != pos) return e;
  if (r.cascading_spaces) {
    if (size_t e = MatchCascadingSpaces(f, pos); e != pos) return e;
  } else if (size_t e = MatchSpaceRun(f, pos); e != pos) {
    return e;
  }
  return pos + 1;  // not reached: every character is a letter, number, space or other
}

size_t Gpt2(const Fragment& f, size_t pos) {
  if (size_t e = MatchContraction(f, pos, /*ignore_case=*/false); e != pos) return e;
  for (auto pred : {&Fragment::Letter, &Fragment::Number, &Fragment::Other}) {
    if (size_t e = OptBlankThenRun(f, pos, [&](size_t i) { return (f.*pred)(i); }); e != pos) {
      return e;
    }
  }
  const size_t e = MatchSpaceRun(f, pos);
  return e == pos ? pos + 1 : e;  // llama.cpp's custom splitter: one character
}

size_t OneNewline(const Fragment& f, size_t pos) { return f.Newline(pos) ? pos + 1 : pos; }

size_t NewlineRuns(const Fragment& f, size_t pos) {
  const bool newline = f.Cp(pos) == '\n';
  return RunEnd(pos + 1, [&](size_t i) { return f.In(i) && (f.Cp(i) == '\n') == newline; });
}

size_t OneNumber(const Fragment& f, size_t pos) { return f.Number(pos) ? pos + 1 : pos; }

size_t UpTo3Numbers(const Fragment& f, size_t pos) {
  size_t e = pos;
  while (e - pos < 3 && f.Number(e)) ++e;
  return e;
}

size_t NumberRun(const Fragment& f, size_t pos) {
  return RunEnd(pos, [&](size_t i) { return f.Number(i); });
}

size_t ThreeAsciiDigits(const Fragment& f, size_t pos) {
  return (f.AsciiDigit(pos) && f.AsciiDigit(pos + 1) && f.AsciiDigit(pos + 2)) ? pos + 3 : pos;
}

void ThousandsPass(const CodePoints& t, const std::vector<uint32_t>& bounds,
                   std::vector<uint32_t>* out) {
  out->clear();
  size_t begin = 0;
  for (const uint32_t end : bounds) {
    const Fragment f{t, end};
    for (size_t pos = begin + 1; pos < end; ++pos) {
      if (ThreeDigitsAhead(f, pos)) out->push_back(static_cast<uint32_t>(pos));
    }
    out->push_back(end);
    begin = end;
  }
}

size_t SpaceLetters(const Fragment& f, size_t pos) {
  return OptSpaceThenRun(f, pos, [&](size_t i) { return f.Letter(i); });
}

size_t SpacePunct(const Fragment& f, size_t pos) {
  return OptSpaceThenRun(f, pos, [&](size_t i) { return f.Punct(i); });
}

size_t CjkRun(const Fragment& f, size_t pos) {
  static constexpr Range kCjk[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};
  return RunEnd(pos, [&](size_t i) { return InClass(f, i, kCjk); });
}

size_t DeepseekLlmLetters(const Fragment& f, size_t pos) {
  // The letter class of deepseek-llm's tokenizer.json, as code point ranges.
  static constexpr Range kLetters[] = {
      {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
      {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
      {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
      {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
      {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
      {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
      {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
      {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
      {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
      {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
      {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
      {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
      {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
      {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
      {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
      {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
      {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
      {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
      {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
      {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
      {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
  };
  return OptSpaceThenRun(f, pos, [&](size_t i) { return InClass(f, i, kLetters); });
}

size_t DeepseekLlmPunct(const Fragment& f, size_t pos) {
  static constexpr Range kPunct[] = {{0x21, 0x2F},     {0x3A, 0x7E},     {0x2018, 0x201F},
                                     {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}};
  return OptSpaceThenRun(f, pos, [&](size_t i) { return InClass(f, i, kPunct); });
}

size_t TrailingSpaces(const Fragment& f, size_t pos) {
  const size_t e = RunEnd(pos, [&](size_t i) { return f.Space(i); });
  return f.In(e) ? pos : e;
}

size_t HanKanaRun(const Fragment& f, size_t pos) {
  static constexpr Range kHanKana[] = {{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}};
  return RunEnd(pos, [&](size_t i) { return InClass(f, i, kHanKana); });
}

// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// llama.cpp's \p{S} misses ASCII '~' (its collapsed-regex table lists only $+<=>^`|), so
// here '~' is neither punctuation nor symbol.
size_t Deepseek3Words(const Fragment& f, size_t pos) {
  auto ascii_letter = [&](size_t i) { return AsciiLetter(f.Cp(i)); };
  if (AsciiPunctOrSymbol(f.Cp(pos)) && ascii_letter(pos + 1)) return RunEnd(pos + 1, ascii_letter);
  auto word = [&](size_t i) { return f.Letter(i) || f.Mark(i); };
  auto punct_or_symbol = [&](size_t i) { return f.Punct(i) || (f.Symbol(i) && f.Cp(i) != '~'); };
  const bool prefix = f.In(pos) && !f.Newline(pos) && !f.Letter(pos) && !punct_or_symbol(pos);
  if (prefix && word(pos + 1)) return RunEnd(pos + 1, word);
  if (word(pos)) return RunEnd(pos, word);
  if (size_t e = OptBlankThenRun(f, pos, punct_or_symbol); e != pos) {
    return RunEnd(e, [&](size_t i) { return f.Newline(i); });
  }
  if (size_t e = MatchSpacesToNewline(f, pos); e != pos) return e;
  return MatchSpaceRun(f, pos);  // pos (no match) for digits and other characters
}

size_t YoutuCjk(const Fragment& f, size_t pos) {
  static constexpr Range kHangul[] = {{0xAC00, 0xD7A3}, {0x3131, 0x318E}};
  static constexpr Range kCjkPunct[] = {{0xFF01, 0xFF01}, {0x2026, 0x2026}, {0x201C, 0x201D},
                                        {0x2018, 0x2019}, {0x2014, 0x2014}, {0xFF1A, 0xFF1B},
                                        {0xFF0C, 0xFF0C}, {0x3001, 0x303F}, {0xFE30, 0xFE4F}};
  static constexpr Range kBopomofo[] = {{0x3105, 0x312F}};
  static constexpr Range kHanKana[] = {{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}};
  for (std::span<const Range> cls :
       {std::span<const Range>(kHangul), std::span<const Range>(kCjkPunct),
        std::span<const Range>(kBopomofo), std::span<const Range>(kHanKana)}) {
    if (InClass(f, pos, cls)) return RunEnd(pos, [&](size_t i) { return InClass(f, i, cls); });
  }
  return pos;
}

size_t AfmoeScripts(const Fragment& f, size_t pos) {
  // As llama.cpp has them; its source holds U+8C48 (not U+F900) as the start of the third
  // range, so that range covers U+8C48..U+FAFF.
  static constexpr Range kScripts[] = {
      {0x4E00, 0x9FFF}, {0x3400, 0x4DBF}, {0x8C48, 0xFAFF}, {0x3040, 0x309F}, {0x30A0, 0x30FF},
      {0xFF65, 0xFF9F}, {0x2F00, 0x2FDF}, {0x0E40, 0x0E7F}, {0x0E80, 0x0EFF}, {0x1780, 0x17FF},
      {0x1000, 0x109F}, {0xAA60, 0xAA7F}, {0xA9E0, 0xA9FF}, {0xAC00, 0xD7AF}, {0x1100, 0x11FF}};
  return RunEnd(pos, [&](size_t i) { return InClass(f, i, kScripts); });
}

size_t FalconPunct(const Fragment& f, size_t pos) {
  return RunEnd(pos, [&](size_t i) {
    const uint32_t c = f.Cp(i);
    return f.Punct(i) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
           c == '~' || c == '|' || c == '`';
  });
}

size_t DefaultPunct(const Fragment& f, size_t pos) {
  return RunEnd(pos, [&](size_t i) {
    const uint32_t c = f.Cp(i);
    return f.Punct(i) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
           c == '~' || c == '|';
  });
}

size_t BloomWord(const Fragment& f, size_t pos) {
  return OptBlankThenRun(f, pos, [&](size_t i) {
    if (!f.In(i) || f.Space(i)) return false;
    switch (f.Cp(i)) {
      case '(':
      case ')':
      case '|':
      case '.':
      case ',':
      case '!':
      case '?':
      case 0x2026:
      case 0x3002:
      case 0xFF0C:
      case 0x3001:
      case 0x0964:
      case 0x06D4:
      case 0x060C:
        return false;
      default:
        return true;
    }
  });
}

size_t ChameleonSentinel(const Fragment& f, size_t pos) {
  constexpr std::string_view kOpen = "<sentinel:";
  for (size_t k = 0; k < kOpen.size(); ++k) {
    if (f.Cp(pos + k) != static_cast<uint8_t>(kOpen[k])) return pos;
  }
  const size_t digits = pos + kOpen.size();
  const size_t e = RunEnd(digits, [&](size_t i) { return f.AsciiDigit(i); });
  return (e > digits && f.Cp(e) == '>') ? e + 1 : pos;
}

size_t ChameleonImage(const Fragment& f, size_t pos) {
  constexpr std::string_view kOpen = "IMGIMG";
  for (size_t k = 0; k < kOpen.size(); ++k) {
    if (f.Cp(pos + k) != static_cast<uint8_t>(kOpen[k])) return pos;
  }
  const size_t letters = pos + kOpen.size();
  const size_t e = RunEnd(letters, [&](size_t i) { return f.Cp(i) >= 'A' && f.Cp(i) <= 'I'; });
  return (e > letters && e - letters <= 4 && f.Cp(e) == 'Z') ? e + 1 : pos;
}

size_t ChameleonSpaces(const Fragment& f, size_t pos) {
  if (f.Cp(pos) == '\t' || f.Cp(pos) == '\n') return pos + 1;
  const size_t blanks = RunEnd(pos, [&](size_t i) { return f.Cp(i) == ' '; }) - pos;
  return pos + (blanks >= 4 ? 4 : blanks >= 2 ? 2 : 0);
}

size_t ChameleonPunct(const Fragment& f, size_t pos) {
  return (f.Punct(pos) || AsciiPunctOrSymbol(f.Cp(pos))) ? pos + 1 : pos;
}

void AfmoeDigitsPass(const CodePoints& t, const std::vector<uint32_t>& bounds,
                     std::vector<uint32_t>* out) {
  out->clear();
  size_t begin = 0;
  for (const uint32_t end : bounds) {
    const Fragment f{t, end};
    size_t last = begin;
    auto cut = [&](size_t at) {
      if (at > last) out->push_back(static_cast<uint32_t>(at));
      last = at;
    };
    size_t pos = begin;
    while (pos < end) {
      if (!f.Number(pos)) {
        ++pos;
        continue;
      }
      const size_t run_end = RunEnd(pos, [&](size_t i) { return f.Number(i); });
      // Text before the run is not cut off: it goes with the run's first group.
      size_t at = pos + (run_end - pos) % 3;
      if (at > pos) cut(at);
      for (; at < run_end; at += 3) cut(at + 3);
      pos = run_end;
    }
    cut(end);
    begin = end;
  }
}

}  // namespace vlserve::tokenizer::split
