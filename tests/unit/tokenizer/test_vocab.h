// Small hand-built vocabularies for the tokenizer tests.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_config.h"

namespace vlserve::tokenizer::testing {

// Byte-level BPE: ids 0..255 are the bytes (in GPT-2's alphabet), then `extra` tokens;
// merges as given. Byte b has id b.
inline TokenizerConfig ByteLevelConfig(std::vector<std::string> extra,
                                       std::vector<std::string> merges, std::string pre = "gpt-2") {
  TokenizerConfig c;
  c.model = "gpt2";
  c.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) c.tokens.push_back(ByteToUnicode()[b]);
  for (std::string& e : extra) c.tokens.push_back(std::move(e));
  c.merges = std::move(merges);
  return c;
}

// SentencePiece: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then `extra` with scores.
inline TokenizerConfig SpmConfig(const std::vector<std::pair<std::string, float>>& extra) {
  TokenizerConfig c;
  c.model = "llama";
  c.tokens = {"<unk>", "<s>", "</s>"};
  c.token_types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    c.tokens.push_back(hex);
    c.token_types.push_back(TokenType::kByte);
  }
  for (const auto& [text, score] : extra) {
    c.tokens.push_back(text);
    c.token_types.push_back(TokenType::kNormal);
  }
  c.scores.assign(c.tokens.size(), 0.0f);
  for (size_t i = 0; i < extra.size(); ++i) c.scores[259 + i] = extra[i].second;
  c.unk_id = 0;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

}  // namespace vlserve::tokenizer::testing
