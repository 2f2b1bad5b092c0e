// Reads a TokenizerConfig from GGUF metadata (tokenizer.ggml.* keys, llama.cpp's names).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace vlserve::tokenizer {

// Missing special-token ids get llama.cpp's per-model defaults (SentencePiece: bos 1,
// eos 2, unk 0; byte-level BPE: none). Errors name the key and the file.
StatusOr<TokenizerConfig> TokenizerConfigFromGguf(const gguf::File& file);

// Opens `path` and builds its tokenizer (the file is closed again).
StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const std::string& path);

}  // namespace vlserve::tokenizer
