// Pre-tokenizers of byte-level BPE models: split text into words before BPE runs on each
// word. There is one per `tokenizer.ggml.pre` value that llama.cpp accepts for byte-level
// BPE (llama-vocab.cpp): each name maps to a PreTokenizerKind, one per distinct regex list
// of llama.cpp's llm_tokenizer_bpe, and each kind is a list of hand-written passes
// (split_rules.h) that reproduce llama.cpp's unicode_regex_split on that list, quirks
// included. The regexes are listed next to the kinds in pretokenizer.cc and in
// docs/tokenize.md.
//
// The words always cover the whole input; text between regex matches stays a word, as in
// llama.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve::tokenizer {

enum class PreTokenizerKind {
  kGpt2,
  kLlama3,
  kQwen2,
  kQwen35,
  kStarcoder,
  kDeepseekCoder,
  kDeepseekLlm,
  kDeepseek3,
  kYoutu,
  kFalcon,
  kBloom,
  kViking,
  kTekken,
  kChameleon,
  kGpt4o,
  kGraniteEmbMulti,
  kTinyAya,
  kKimiK2,
  kSuperBpe,
  kSeedCoder,
  kAfmoe,
  kLaguna,
  kExaoneMoe,
  kMinicpm5,
  kJais2,
  kDefault,
};

class PreTokenizer {
 public:
  // `name` is the tokenizer.ggml.pre value. Unimplemented for values that are not
  // byte-level BPE pre-tokenizers (the message says why where llama.cpp knows the value,
  // and lists the supported ones).
  static StatusOr<PreTokenizer> Create(std::string_view name);

  PreTokenizerKind kind() const { return kind_; }
  // The kind's name: the first tokenizer.ggml.pre value that selects it ("gpt-2", "llama3",
  // "qwen2", ...).
  std::string_view name() const;

  // Defaults llama.cpp attaches to the pre value (GGUF keys may override add_bos): a word
  // that is itself a vocabulary token is emitted whole, without merges; BOS is added when
  // tokenizer.ggml.add_bos_token is absent.
  bool ignore_merges() const { return ignore_merges_; }
  bool add_bos_default() const { return add_bos_default_; }

  // Appends the words of `text` (views into it, in order, concatenating to `text`).
  // Invalid UTF-8 bytes are classified as U+FFFD but stay in the words unchanged.
  void Split(std::string_view text, std::vector<std::string_view>* words) const;

  // The accepted `tokenizer.ggml.pre` values, for messages and docs.
  static std::string SupportedNames();

 private:
  PreTokenizer(PreTokenizerKind kind, bool ignore_merges, bool add_bos_default)
      : kind_(kind), ignore_merges_(ignore_merges), add_bos_default_(add_bos_default) {}
  PreTokenizerKind kind_;
  bool ignore_merges_ = false;
  bool add_bos_default_ = false;
};

}  // namespace vlserve::tokenizer
