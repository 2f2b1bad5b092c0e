// The tokenizer benchmarks' vocabularies: ../shared/vocab/ggml-vocab-NAME.gguf, loaded once.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::tokenizer {

// nullptr when the file is missing or invalid (the benchmarks then skip that vocabulary).
inline const Tokenizer* LoadSharedVocab(const std::string& vocab) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(vocab);
  if (it != cache.end()) return it->second.get();
  const std::string path = VLSERVE_SOURCE_DIR "/../shared/vocab/ggml-vocab-" + vocab + ".gguf";
  StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizerFromGguf(path);
  Tokenizer* raw = t.ok() ? t->get() : nullptr;
  cache[vocab] = t.ok() ? std::move(*t) : nullptr;
  return raw;
}

}  // namespace vlserve::tokenizer
