// SentencePiece BPE as llama.cpp runs it (tokenizer.ggml.model = "llama"): the text (spaces
// already escaped to U+2581) is split into UTF-8 characters, and the adjacent pair whose
// concatenation is a token with the highest score is merged repeatedly (ties: leftmost).
// Characters that end up in no token fall back to <0xXX> byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vlserve::tokenizer {

class SpmModel {
 public:
  // `tokens` must outlive the model (views are kept); scores may be empty (all 0).
  SpmModel(const std::vector<std::string>& tokens, const std::vector<float>& scores,
           int32_t unk_id);

  // Appends the ids of `escaped` (spaces already replaced by U+2581, prefix added).
  void Encode(std::string_view escaped, std::vector<int32_t>* out) const;

  int32_t Find(std::string_view text) const {
    auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }

 private:
  void EncodeSpan(std::string_view text, std::vector<int32_t>* out) const;

  std::unordered_map<std::string_view, int32_t> ids_;
  std::vector<float> scores_;
  std::array<int32_t, 256> byte_token_{};  // <0xXX> (or the raw byte) token, or unk
  bool split_words_ = false;  // the vocabulary allows encoding word by word (see Encode)
};

}  // namespace vlserve::tokenizer
