// The plain description a Tokenizer is built from: what a GGUF file's tokenizer.ggml.*
// metadata holds (see gguf_config.h for the adapter), or what a test writes by hand.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vlserve::tokenizer {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, <|im_end|>: matched in text only with parse_special
  kUserDefined = 4,  // added tokens: always matched in text, decoded verbatim
  kUnused = 5,
  kByte = 6,  // SentencePiece byte fallback <0xXX>
};

struct TokenizerConfig {
  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
  std::string model;
  // tokenizer.ggml.pre: pre-tokenizer of a gpt2 model; empty means "default" (= gpt-2).
  std::string pre;
  std::vector<std::string> tokens;     // id -> text, in the model's own alphabet
  std::vector<TokenType> token_types;  // empty: all kNormal
  std::vector<float> scores;           // SentencePiece merge priorities; empty: all 0
  std::vector<std::string> merges;     // BPE merges "left right", highest priority first
  // Special ids; -1 when the model has none. Defaults follow llama.cpp per model when a
  // key is missing from the file (SentencePiece: bos 1, eos 2, unk 0).
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  // End of turn / end of message (tokenizer.ggml.eot_token_id / eom_token_id): generation
  // also stops there (GLM-4's converter writes <|user|> as eot).
  int32_t eot_id = -1;
  int32_t eom_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  // nullopt: the model's default (SentencePiece adds BOS and a space prefix; byte-level BPE
  // adds BOS only for the llama3 pre-tokenizer; nobody adds EOS).
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  std::optional<bool> add_space_prefix;
  std::string chat_template;  // tokenizer.chat_template (Jinja), kept for the models layer
};

}  // namespace vlserve::tokenizer
