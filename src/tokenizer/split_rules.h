// The building blocks of the pre-tokenizers (pretokenizer.h): one "rule" per regex of
// llama.cpp's regex lists (llama-vocab.cpp, llm_tokenizer_bpe), written by hand over code
// point classes. Internal to vlserve_tokenizer.
//
// A pre-tokenizer is a list of passes; each pass splits every piece the previous pass made
// (the first pass sees the whole text), as llama.cpp's unicode_regex_split does. Most
// passes are a Rule applied like a regex search: at each position the rule returns where
// its match ends, or the position itself when nothing matches there; text between matches
// stays one piece. Rules for llama.cpp's custom splitters (unicode.cpp) never return the
// position itself: an unmatched character becomes a piece of its own, as there.
//
// llama.cpp runs the other regexes with std::regex over a "collapsed" text (every non-ASCII
// code point replaced by one byte standing for its class), which the rules reproduce:
//  - \p{Lu}, \p{Ll}, \p{Lt}, \p{Lm}, \p{Lo} all mean \p{L}; [^a-z] / [^A-Z] see case only
//    in ASCII (so a non-ASCII letter counts as both upper and lower case);
//  - \s is ASCII \t\n\v\f\r and space plus every non-ASCII White_Space code point; literal
//    code point ranges never match non-ASCII whitespace (llama.cpp rewrites it to \v first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace vlserve::tokenizer::split {

// The input as code points with their class flags; byte_offset[i] is where code point i
// starts in the UTF-8 text (byte_offset[n] = text size).
struct CodePoints {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> flags;
  std::vector<uint32_t> byte_offset;
};

void Decode(std::string_view text, CodePoints* out);

// One piece [.., end) of the code points being split; positions at or past `end` read as
// "no character", so look-aheads stop at piece edges as in a regex over a substring.
struct Fragment {
  const CodePoints& t;
  size_t end;
  bool In(size_t i) const { return i < end; }
  uint32_t Cp(size_t i) const { return In(i) ? t.cp[i] : 0xFFFFFFFFu; }
  bool Letter(size_t i) const { return In(i) && IsLetter(t.flags[i]); }
  bool Mark(size_t i) const { return In(i) && ClassOf(t.flags[i]) == CpClass::kMark; }
  bool Number(size_t i) const { return In(i) && IsNumber(t.flags[i]); }
  bool Punct(size_t i) const { return In(i) && IsPunct(t.flags[i]); }
  bool Symbol(size_t i) const { return In(i) && ClassOf(t.flags[i]) == CpClass::kSymbol; }
  bool Space(size_t i) const { return In(i) && IsSpace(t.flags[i]); }
  bool Newline(size_t i) const { return Cp(i) == '\r' || Cp(i) == '\n'; }
  bool AsciiDigit(size_t i) const { return Cp(i) >= '0' && Cp(i) <= '9'; }
  // [^\s\p{L}\p{N}]
  bool Other(size_t i) const {
    return In(i) && !IsSpace(t.flags[i]) && !IsLetter(t.flags[i]) && !IsNumber(t.flags[i]);
  }
};

// Returns the end of the match at pos, or pos when there is none.
using Rule = size_t (*)(const Fragment& f, size_t pos);

// Splits every piece [bounds[i-1], bounds[i]) (the first starts at 0) into `out`.
using Pass = void (*)(const CodePoints& t, const std::vector<uint32_t>& bounds,
                      std::vector<uint32_t>* out);

void ApplyRule(const CodePoints& t, Rule rule, const std::vector<uint32_t>& bounds,
               std::vector<uint32_t>* out);
template <Rule R>
void RulePass(const CodePoints& t, const std::vector<uint32_t>& bounds,
              std::vector<uint32_t>* out) {
  ApplyRule(t, R, bounds, out);
}

// ---- The llama3 family: one parameterised rule for the regexes shaped like
//   CONTRACTION | [^\r\n\p{L}\p{N}]?WORD CONTRACTION? | \p{N}{1,D} | ?[^\s\p{L}\p{N}]+TRAIL |
//   \s*[\r\n]+ | \s+(?!\S) | \s+
enum class Contraction : uint8_t {
  kNone,
  kLeading,  // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]) as the first alternative
  kSuffix,   // the same, optional, right after a WORD
};
enum class Word : uint8_t {
  kLetters,         // \p{L}+
  kLettersMarks,    // [\p{L}\p{M}]+
  kCaseSplit,       // ((?=\p{L})[^a-z])*((?=\p{L})[^A-Z])+ | ((?=\p{L})[^a-z])+((?=\p{L})[^A-Z])*
  kCaseSplitMarks,  // the same with (?=[\p{L}\p{M}])
  kLettersSpaced,   // (?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+  (exaone-moe)
  kLettersNotHan,   // [\p{L}&&[^\p{Han}]]+, after a \p{Han}+ alternative (kimi-k2)
};
enum class Trail : uint8_t {
  kNewlines,         // [\r\n]*
  kNewlinesSlash,    // [\r\n/]*
  kOneNewlineSlash,  // [\r\n/]?
  kNone,             // and the run also stops at \r \n (seed-coder: [^\s\p{L}\p{N}\r\n]+)
};
struct WordRules {
  Contraction contraction = Contraction::kLeading;
  Word word = Word::kLetters;
  uint32_t max_digits = 3;            // \p{N}{1,max_digits}; 0 = \p{N}+
  bool punct_excludes_marks = false;  // ?[^\s\p{L}\p{M}\p{N}]+ (qwen35)
  Trail trail = Trail::kNewlines;
  // \s{512}(?!\S)|\s{256}(?!\S)|...|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1} instead of
  // \s+(?!\S)|\s+ (jais-2).
  bool cascading_spaces = false;
};
size_t MatchWords(const Fragment& f, size_t pos, const WordRules& r);
template <WordRules R>
size_t WordsRule(const Fragment& f, size_t pos) {
  return MatchWords(f, pos, R);
}

// ---- Other regexes, named by what they match.
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t Gpt2(const Fragment& f, size_t pos);
size_t OneNewline(const Fragment& f, size_t pos);          // [\r\n]
size_t NewlineRuns(const Fragment& f, size_t pos);         // [^\n]+|[\n]+
size_t OneNumber(const Fragment& f, size_t pos);           // \p{N}
size_t UpTo3Numbers(const Fragment& f, size_t pos);        // \p{N}{1,3}
size_t NumberRun(const Fragment& f, size_t pos);           // \p{N}+
size_t ThreeAsciiDigits(const Fragment& f, size_t pos);    // [0-9][0-9][0-9]
size_t SpaceLetters(const Fragment& f, size_t pos);        // \s?\p{L}+
size_t SpacePunct(const Fragment& f, size_t pos);          // \s?\p{P}+
size_t CjkRun(const Fragment& f, size_t pos);              // [一-龥ࠀ-一가-퟿]+
size_t DeepseekLlmLetters(const Fragment& f, size_t pos);  // \s?[A-Za-zµÀ-ÖØ-ö...]+
size_t DeepseekLlmPunct(const Fragment& f, size_t pos);  // \s?[!-/:-~！-／：-～‘-‟　-。]+
size_t TrailingSpaces(const Fragment& f, size_t pos);    // \s+$
size_t HanKanaRun(const Fragment& f, size_t pos);        // [一-龥぀-ゟ゠-ヿ]+
size_t Deepseek3Words(const Fragment& f, size_t pos);    // deepseek-v3's third regex
size_t YoutuCjk(const Fragment& f, size_t pos);          // youtu's first regex
size_t AfmoeScripts(const Fragment& f, size_t pos);      // afmoe's CJK / Asian scripts
size_t FalconPunct(const Fragment& f, size_t pos);       // [\p{P}\$\+<=>\^~\|`]+
size_t DefaultPunct(const Fragment& f, size_t pos);      // [\p{P}\$\+<=>\^~\|]+
size_t BloomWord(const Fragment& f, size_t pos);         //  ?[^(\s|.,!?…。，、।۔،)]+
size_t ChameleonSentinel(const Fragment& f, size_t pos);  // <sentinel:[0-9]+>
size_t ChameleonImage(const Fragment& f, size_t pos);     // (IMGIMG)((A|B|...|I){1,4})Z
size_t ChameleonSpaces(const Fragment& f, size_t pos);    // ([\t\n]|    |  )
size_t ChameleonPunct(const Fragment& f, size_t pos);     // [\p{P}!-/:-@\[-`{-~]

// llama.cpp's afmoe digit splitter (also used for tiny_aya's \d{1,3}(?=(?:\d{3})*\b)): a
// number run is cut into a leading group of (length mod 3) digits and then groups of 3;
// text before a number run joins that run's first group.
// superbpe's (?=(\d{3})+(?!\d)): an empty match before every run of 3k ASCII digits that
// ends at a non-digit or the piece end; the piece is cut at each (ASCII only: \d).
void ThousandsPass(const CodePoints& t, const std::vector<uint32_t>& bounds,
                   std::vector<uint32_t>* out);

void AfmoeDigitsPass(const CodePoints& t, const std::vector<uint32_t>& bounds,
                     std::vector<uint32_t>* out);

}  // namespace vlserve::tokenizer::split
