// Text <-> token ids for the models vlserve serves: byte-level BPE (GPT-2 family, with the
// pre-tokenizers in pretokenizer.h) and SentencePiece BPE (LLaMA-1/2, Vicuna). Built once
// from a TokenizerConfig (or a GGUF file, gguf_config.h); immutable and thread-safe after.
// Output matches llama.cpp's llama_tokenize on its published test vectors.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer_config.h"

namespace vlserve::tokenizer {

enum class ModelKind { kBpe, kSpm };

struct EncodeOptions {
  // Add BOS/EOS as the model's add_bos/add_eos say.
  bool add_special = true;
  // Recognise CONTROL token texts (e.g. "<|im_start|>") inside the text. USER_DEFINED
  // tokens are always recognised, as in llama.cpp and HF.
  bool parse_special = false;
};

// A piece of text for EncodeSpans, with or without CONTROL-token parsing.
struct TextSpan {
  std::string_view text;
  bool parse_special = false;
};

struct DecodeOptions {
  // Render CONTROL/UNKNOWN tokens as their text instead of nothing.
  bool render_special = false;
  // SentencePiece with add_space_prefix: drop the one space the encoder put in front.
  bool strip_space_prefix = true;
};

class Tokenizer {
 public:
  // InvalidArgument for inconsistent configs (e.g. add_bos without a BOS id), Unimplemented
  // for unsupported models / pre-tokenizers (the message lists the supported ones).
  static StatusOr<std::unique_ptr<Tokenizer>> Create(TokenizerConfig config);

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const;
  void Encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>* out) const;

  // Encodes the concatenation of `spans` as one text, except that CONTROL tokens are
  // recognised only inside spans with parse_special (USER_DEFINED ones everywhere, as in
  // Encode; options.parse_special is ignored). Text on both sides of a span boundary is
  // tokenized together, so the ids equal Encode(concatenation) whenever the spans without
  // parse_special hold no control-token text. Used to keep chat content typed by users
  // ("<|im_start|>system") from becoming control tokens while the template's own text is
  // parsed.
  void EncodeSpans(std::span<const TextSpan> spans, const EncodeOptions& options,
                   std::vector<int32_t>* out) const;
  std::vector<int32_t> EncodeSpans(std::span<const TextSpan> spans,
                                   const EncodeOptions& options = {}) const;

  // Concatenated bytes of the tokens. May end inside a UTF-8 character when the ids do;
  // see StreamingDetokenizer for incremental, always-valid output. Ids out of range are
  // skipped.
  std::string Decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  // The bytes token `id` stands for in text (empty for CONTROL tokens unless
  // render_special, and for ids out of range).
  std::string_view Piece(int32_t id, bool render_special = false) const;

  ModelKind kind() const { return kind_; }
  const TokenizerConfig& config() const { return config_; }
  int32_t vocab_size() const { return static_cast<int32_t>(config_.tokens.size()); }
  int32_t bos_id() const { return config_.bos_id; }
  int32_t eos_id() const { return config_.eos_id; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  // The pre-tokenizer (byte-level BPE only).
  const std::optional<PreTokenizer>& pre_tokenizer() const { return pre_; }

  TokenType token_type(int32_t id) const;
  // The token's text as stored in the vocabulary; empty for ids out of range.
  std::string_view token_text(int32_t id) const;
  // Id of a vocabulary entry by its stored text, or -1.
  int32_t FindToken(std::string_view text) const;
  // EOS, and end-of-turn tokens recognised by text (<|im_end|>, <|eot_id|>,
  // <end_of_utterance>, <|endoftext|>, ...), as llama.cpp's EOG set.
  bool IsEndOfGeneration(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_ids_; }

 private:
  explicit Tokenizer(TokenizerConfig config) : config_(std::move(config)) {}
  Status Init();
  Status InitModel();
  void BuildPieces();
  void BuildSpecialMatcher();
  // Splits text into raw-text runs and special tokens (longest match, left to right).
  template <typename OnText, typename OnToken>
  void Partition(std::string_view text, bool parse_special, OnText on_text, OnToken on_token) const;
  void EncodeText(std::string_view text, bool after_special, std::vector<int32_t>* out) const;

  TokenizerConfig config_;
  ModelKind kind_ = ModelKind::kBpe;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  std::optional<PreTokenizer> pre_;
  std::optional<BpeModel> bpe_;
  std::optional<SpmModel> spm_;
  std::vector<std::string> pieces_;  // id -> decoded bytes (special tokens: their text)
  std::unordered_map<std::string_view, int32_t> text_to_id_;
  std::vector<int32_t> eog_ids_;

  // Special tokens that can occur in text, grouped by first byte, longest first.
  struct Special {
    std::string_view text;
    int32_t id;
    bool control;  // CONTROL/UNKNOWN: only with parse_special
  };
  std::vector<std::vector<Special>> specials_by_byte_;  // 256 buckets (empty if none)
  bool has_user_defined_ = false;
  bool has_control_ = false;
};

}  // namespace vlserve::tokenizer
