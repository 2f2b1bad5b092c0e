#include "tokenizer/pretokenizer.h"

#include <span>

#include "tokenizer/split_rules.h"

namespace vlserve::tokenizer {
namespace {

using namespace split;  // NOLINT(google-build-using-namespace): rules read as regexes

template <Rule R>
constexpr Pass P = RulePass<R>;

// The llama3-shaped regexes (see WordRules).
constexpr WordRules kLlama3Words{};
constexpr WordRules kQwen2Words{.max_digits = 1};
constexpr WordRules kQwen35Words{
    .word = Word::kLettersMarks, .max_digits = 1, .punct_excludes_marks = true};
constexpr WordRules kMinicpm5Words{.max_digits = 0};
constexpr WordRules kSeedCoderWords{.max_digits = 1, .trail = Trail::kNone};
constexpr WordRules kJais2Words{.cascading_spaces = true};
constexpr WordRules kExaoneMoeWords{
    .word = Word::kLettersSpaced, .max_digits = 1, .trail = Trail::kOneNewlineSlash};
constexpr WordRules kYoutuWords{.contraction = Contraction::kSuffix,
                                .word = Word::kLettersMarks,
                                .max_digits = 1,
                                .trail = Trail::kNewlinesSlash};
constexpr WordRules kTinyAyaWords{.contraction = Contraction::kSuffix,
                                  .word = Word::kLettersMarks,
                                  .max_digits = 3,
                                  .trail = Trail::kNewlinesSlash};
constexpr WordRules kTekkenWords{.contraction = Contraction::kNone,
                                 .word = Word::kCaseSplit,
                                 .max_digits = 1,
                                 .trail = Trail::kNewlinesSlash};
constexpr WordRules kGpt4oWords{
    .contraction = Contraction::kSuffix, .word = Word::kCaseSplit, .trail = Trail::kNewlinesSlash};
constexpr WordRules kGraniteWords{.contraction = Contraction::kSuffix,
                                  .word = Word::kCaseSplitMarks,
                                  .trail = Trail::kNewlinesSlash};
constexpr WordRules kKimiK2Words{.contraction = Contraction::kSuffix, .word = Word::kLettersNotHan};

// One entry per regex list of llama.cpp's llm_tokenizer_bpe (llama-vocab.cpp); the passes
// run in order, each splitting the pieces of the previous one.
struct KindEntry {
  PreTokenizerKind kind;
  std::string_view name;
  std::span<const Pass> passes;
};

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
constexpr Pass kGpt2[] = {P<Gpt2>};
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
constexpr Pass kLlama3[] = {P<WordsRule<kLlama3Words>>};
// llama3 with \p{N}
constexpr Pass kQwen2[] = {P<WordsRule<kQwen2Words>>};
// qwen2 with [\p{L}\p{M}]+ words and ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*
constexpr Pass kQwen35[] = {P<WordsRule<kQwen35Words>>};
// \p{N}, then gpt-2
constexpr Pass kStarcoder[] = {P<OneNumber>, P<Gpt2>};
// [\r\n], \s?\p{L}+, \s?\p{P}+, [一-龥ࠀ-一가-퟿]+, \p{N}
constexpr Pass kDeepseekCoder[] = {P<OneNewline>, P<SpaceLetters>, P<SpacePunct>, P<CjkRun>,
                                   P<OneNumber>};
// [\r\n], \s?[A-Za-zµÀ-ÖØ-ö...]+, \s?[!-/:-~！-／：-～‘-‟　-。]+, \s+$, [一-龥ࠀ-一가-퟿]+,
// \p{N}+
constexpr Pass kDeepseekLlm[] = {P<OneNewline>,       P<DeepseekLlmLetters>,
                                 P<DeepseekLlmPunct>, P<TrailingSpaces>,
                                 P<CjkRun>,           P<NumberRun>};
// \p{N}{1,3}, [一-龥぀-ゟ゠-ヿ]+, [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|
// [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
constexpr Pass kDeepseek3[] = {P<UpTo3Numbers>, P<HanKanaRun>, P<Deepseek3Words>};
// [가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+,
// then
// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'s|...)?|...|
// \p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
constexpr Pass kYoutu[] = {P<YoutuCjk>, P<WordsRule<kYoutuWords>>};
// [\p{P}\$\+<=>\^~\|`]+, gpt-2, [0-9][0-9][0-9]
constexpr Pass kFalcon[] = {P<FalconPunct>, P<Gpt2>, P<ThreeAsciiDigits>};
//  ?[^(\s|.,!?…。，、।۔،)]+
constexpr Pass kBloom[] = {P<BloomWord>};
constexpr Pass kViking[] = {P<BloomWord>, P<OneNumber>};
// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|
// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|
//  ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+  (llama.cpp: case by ASCII only)
constexpr Pass kTekken[] = {P<WordsRule<kTekkenWords>>};
// <sentinel:[0-9]+>, (IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z, ([\t\n]|    |  ), \p{N},
// [\p{P}!-/:-@\[-`{-~], gpt-2
constexpr Pass kChameleon[] = {P<ChameleonSentinel>, P<ChameleonImage>, P<ChameleonSpaces>,
                               P<OneNumber>,         P<ChameleonPunct>, P<Gpt2>};
// tekken with (?i:'s|'t|'re|'ve|'m|'ll|'d)? after words and \p{N}{1,3}
constexpr Pass kGpt4o[] = {P<WordsRule<kGpt4oWords>>};
// gpt-4o with (?=[\p{L}\p{M}]) in the case classes
constexpr Pass kGraniteEmbMulti[] = {P<WordsRule<kGraniteWords>>};
// \d{1,3}(?=(?:\d{3})*\b) (llama.cpp's afmoe splitter), then youtu's second regex with
// \p{N}{1,3}
constexpr Pass kTinyAya[] = {AfmoeDigitsPass, P<WordsRule<kTinyAyaWords>>};
// [\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{L}&&[^\p{Han}]]+(?i:'s|...)?|\p{N}{1,3}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+  (llama.cpp's custom kimi-k2 splitter)
constexpr Pass kKimiK2[] = {P<WordsRule<kKimiK2Words>>};
// \p{N}+, (?=(\d{3})+(?!\d))
constexpr Pass kSuperBpe[] = {P<NumberRun>, ThousandsPass};
// qwen2 with ?[^\s\p{L}\p{N}\r\n]+ (no trailing newlines)
constexpr Pass kSeedCoder[] = {P<WordsRule<kSeedCoderWords>>};
// afmoe digits, [一-鿿㐀-䶿...가-힯ᄀ-ᇿ]+, deepseek-v3's third regex
constexpr Pass kAfmoe[] = {AfmoeDigitsPass, P<AfmoeScripts>, P<Deepseek3Words>};
// [^\n]+|[\n]+, then qwen2
constexpr Pass kLaguna[] = {P<NewlineRuns>, P<WordsRule<kQwen2Words>>};
// (?i:'s|...)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}|
//  ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+
constexpr Pass kExaoneMoe[] = {P<WordsRule<kExaoneMoeWords>>};
// \p{N}{1,3}, then llama3 with \p{N}+
constexpr Pass kMinicpm5[] = {P<UpTo3Numbers>, P<WordsRule<kMinicpm5Words>>};
// llama3 with \s{512}(?!\S)|\s{256}(?!\S)|...|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}
constexpr Pass kJais2[] = {P<WordsRule<kJais2Words>>};
// [\p{P}\$\+<=>\^~\|]+, gpt-2, \p{N}+, [0-9][0-9][0-9]
constexpr Pass kDefault[] = {P<DefaultPunct>, P<Gpt2>, P<NumberRun>, P<ThreeAsciiDigits>};

using K = PreTokenizerKind;
constexpr KindEntry kKinds[] = {
    {K::kGpt2, "gpt-2", kGpt2},
    {K::kLlama3, "llama3", kLlama3},
    {K::kQwen2, "qwen2", kQwen2},
    {K::kQwen35, "qwen35", kQwen35},
    {K::kStarcoder, "starcoder", kStarcoder},
    {K::kDeepseekCoder, "deepseek-coder", kDeepseekCoder},
    {K::kDeepseekLlm, "deepseek-llm", kDeepseekLlm},
    {K::kDeepseek3, "deepseek-v3", kDeepseek3},
    {K::kYoutu, "youtu", kYoutu},
    {K::kFalcon, "falcon", kFalcon},
    {K::kBloom, "bloom", kBloom},
    {K::kViking, "viking", kViking},
    {K::kTekken, "tekken", kTekken},
    {K::kChameleon, "chameleon", kChameleon},
    {K::kGpt4o, "gpt-4o", kGpt4o},
    {K::kGraniteEmbMulti, "granite-embed-multi-97m", kGraniteEmbMulti},
    {K::kTinyAya, "tiny_aya", kTinyAya},
    {K::kKimiK2, "kimi-k2", kKimiK2},
    {K::kSuperBpe, "superbpe", kSuperBpe},
    {K::kSeedCoder, "seed-coder", kSeedCoder},
    {K::kAfmoe, "afmoe", kAfmoe},
    {K::kLaguna, "laguna", kLaguna},
    {K::kExaoneMoe, "exaone-moe", kExaoneMoe},
    {K::kMinicpm5, "minicpm5", kMinicpm5},
    {K::kJais2, "jais-2", kJais2},
    {K::kDefault, "default", kDefault},
};

const KindEntry& EntryOf(PreTokenizerKind kind) {
  for (const KindEntry& e : kKinds) {
    if (e.kind == kind) return e;
  }
  return kKinds[0];  // not reached: every kind has an entry
}

// tokenizer.ggml.pre value -> kind and the two vocabulary defaults llama.cpp ties to it
// (llama_vocab::impl::load): ignore_merges and add_bos. E.g. "glm4" splits like "llama3"
// but has neither llama3 default. A missing key means "default", as in llama.cpp.
struct NameEntry {
  std::string_view name;
  PreTokenizerKind kind;
  bool ignore_merges = false;
  bool add_bos = false;
};
constexpr NameEntry kNames[] = {
    {"default", K::kDefault},
    {"gpt-2", K::kGpt2},
    {"phi-2", K::kGpt2},
    {"jina-es", K::kGpt2},
    {"jina-de", K::kGpt2},
    {"gigachat", K::kGpt2},
    {"jina-v2-es", K::kGpt2},
    {"jina-v2-de", K::kGpt2},
    {"a.x-4.0", K::kGpt2},
    {"mellum", K::kGpt2},
    {"modern-bert", K::kGpt2},
    {"jina-v1-en", K::kGpt2},
    {"jina-v2-code", K::kGpt2},
    {"roberta-bpe", K::kGpt2},
    {"exaone4", K::kGpt2},
    {"mpt", K::kGpt2},
    {"olmo", K::kGpt2},
    {"jais", K::kGpt2},
    {"trillion", K::kGpt2},
    {"granite-docling", K::kGpt2},
    {"llama3", K::kLlama3, true, true},
    {"llama-v3", K::kLlama3, true, true},
    {"llama-bpe", K::kLlama3, true, true},
    {"falcon3", K::kLlama3, true, true},
    {"falcon-h1", K::kLlama3, true, true},
    {"pixtral", K::kLlama3, true, true},
    {"midm-2.0", K::kLlama3, true, true},
    {"lfm2", K::kLlama3, true, true},
    {"jina-v5-nano", K::kLlama3, true, true},
    {"dbrx", K::kLlama3},
    {"smaug-bpe", K::kLlama3},
    {"glm4", K::kLlama3},
    {"chatglm-bpe", K::kLlama3},
    {"qwen2", K::kQwen2},
    {"deepseek-r1-qwen", K::kQwen2},
    {"kormo", K::kQwen2},
    {"f2llmv2", K::kQwen2},
    {"megrez", K::kQwen2},
    {"stablelm2", K::kQwen2},
    {"hunyuan", K::kQwen2},
    {"solar-open", K::kQwen2},
    {"grok-2", K::kQwen2},
    // '(?i:[sdmt]|ll|ve|re)|...|\s*[\r\n]|...: the same splits as qwen2's regex.
    {"bailingmoe", K::kQwen2},
    {"bailingmoe2", K::kQwen2},
    {"llada-moe", K::kQwen2},
    {"qwen35", K::kQwen35},
    {"starcoder", K::kStarcoder},
    {"refact", K::kStarcoder},
    {"command-r", K::kStarcoder},
    {"smollm", K::kStarcoder},
    {"codeshell", K::kStarcoder},
    {"exaone", K::kStarcoder},
    {"minerva-7b", K::kStarcoder},
    {"mellum2", K::kStarcoder},
    {"deepseek-coder", K::kDeepseekCoder},
    {"deepseek-llm", K::kDeepseekLlm},
    {"deepseek-v3", K::kDeepseek3},
    {"hunyuan-dense", K::kDeepseek3},
    {"joyai-llm", K::kDeepseek3},
    {"youtu", K::kYoutu, true},
    {"falcon", K::kFalcon},
    {"poro-chat", K::kBloom},
    {"bloom", K::kBloom},
    {"gpt3-finnish", K::kBloom},
    {"viking", K::kViking},
    {"tekken", K::kTekken, true, true},
    {"chameleon", K::kChameleon, false, true},
    {"gpt-4o", K::kGpt4o},
    {"llama4", K::kGpt4o},
    {"kanana2", K::kGpt4o},
    {"talkie", K::kGpt4o},
    {"minimax-m2", K::kGpt4o},
    {"granite-embed-multi-97m", K::kGraniteEmbMulti, true},
    {"tiny_aya", K::kTinyAya},
    {"cohere2moe", K::kTinyAya},
    {"kimi-k2", K::kKimiK2},
    {"superbpe", K::kSuperBpe},
    {"seed-coder", K::kSeedCoder},
    {"afmoe", K::kAfmoe},
    {"laguna", K::kLaguna},
    {"exaone-moe", K::kExaoneMoe},
    {"minicpm5", K::kMinicpm5, true},
    {"jais-2", K::kJais2},
};

// Values llama.cpp's converter writes that are not byte-level BPE pre-tokenizers.
struct UnsupportedEntry {
  std::string_view name;
  std::string_view why;
};
constexpr std::string_view kRawUtf8 =
    "runs BPE on raw UTF-8 without the byte-level alphabet (llama.cpp byte_encode = false), "
    "which vlserve does not implement";
constexpr std::string_view kWordPiece = "belongs to WordPiece (BERT) vocabularies";
constexpr UnsupportedEntry kUnsupported[] = {
    {"gemma4", kRawUtf8},       {"granite-embed-multi-311m", kRawUtf8},
    {"sarvam-moe", kRawUtf8},   {"whitespace", kRawUtf8},
    {"bert-bge", kWordPiece},   {"bert-bge-large", kWordPiece},
    {"jina-v2-en", kWordPiece}, {"chatglm-spm", "belongs to SentencePiece vocabularies"},
};

}  // namespace

StatusOr<PreTokenizer> PreTokenizer::Create(std::string_view name) {
  for (const NameEntry& e : kNames) {
    if (e.name == name) return PreTokenizer(e.kind, e.ignore_merges, e.add_bos);
  }
  std::string why = "is not supported";
  for (const UnsupportedEntry& e : kUnsupported) {
    if (e.name == name) why = "is not supported: it " + std::string(e.why);
  }
  return UnimplementedError("pre-tokenizer '" + std::string(name) + "' (tokenizer.ggml.pre) " +
                            why + "; supported: " + SupportedNames());
}

std::string PreTokenizer::SupportedNames() {
  std::string s;
  for (const NameEntry& e : kNames) {
    if (!s.empty()) s += ", ";
    s += e.name;
  }
  return s;
}

std::string_view PreTokenizer::name() const { return EntryOf(kind_).name; }

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* words) const {
  if (text.empty()) return;
  // Per-thread scratch, reused across calls (Split is called once per text chunk).
  thread_local CodePoints t;
  thread_local std::vector<uint32_t> a, b;  // piece ends, in code points
  Decode(text, &t);
  a.assign(1, static_cast<uint32_t>(t.cp.size()));
  for (const Pass pass : EntryOf(kind_).passes) {
    pass(t, a, &b);
    a.swap(b);
  }
  size_t begin = 0;
  for (const uint32_t end : a) {
    const uint32_t b0 = t.byte_offset[begin];
    words->push_back(text.substr(b0, t.byte_offset[end] - b0));
    begin = end;
  }
}

}  // namespace vlserve::tokenizer
