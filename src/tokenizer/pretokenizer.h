// Pre-tokenizers of byte-level BPE models: split text into words before BPE runs on each
// word. Each one is a hand-written matcher equivalent to the Hugging Face regex (and to
// llama.cpp's unicode.cpp custom splitters) of a `tokenizer.ggml.pre` value:
//
//   gpt-2           's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3          (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//                   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2           llama3 with \p{N} instead of \p{N}{1,3}
//   starcoder       \p{N} (each digit alone), then gpt-2 on the pieces in between
//   deepseek-coder  [\r\n], \s?\p{L}+, \s?\p{P}+, [\x{800}-\x{9FA5}\x{AC00}-\x{D7FF}]+, \p{N}
//                   applied in sequence (each regex splits every piece from the previous)
//
// A multi-regex pre-tokenizer keeps the text between matches as pieces too, exactly as
// llama.cpp's unicode_regex_split does. The words always cover the whole input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve::tokenizer {

enum class PreTokenizerKind { kGpt2, kLlama3, kQwen2, kStarcoder, kDeepseekCoder };

class PreTokenizer {
 public:
  // `name` is the tokenizer.ggml.pre value; Unimplemented (listing the supported names)
  // for anything else.
  static StatusOr<PreTokenizer> Create(std::string_view name);

  PreTokenizerKind kind() const { return kind_; }
  // The canonical name ("gpt-2", "llama3", "qwen2", "starcoder", "deepseek-coder").
  std::string_view name() const;

  // Appends the words of `text` (views into it, in order, concatenating to `text`).
  // Invalid UTF-8 bytes are classified as U+FFFD but stay in the words unchanged.
  void Split(std::string_view text, std::vector<std::string_view>* words) const;

  // The accepted `tokenizer.ggml.pre` values, for messages and docs.
  static std::string SupportedNames();

 private:
  explicit PreTokenizer(PreTokenizerKind kind) : kind_(kind) {}
  PreTokenizerKind kind_;
};

}  // namespace vlserve::tokenizer
