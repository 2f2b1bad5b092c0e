#include "tokenizer/gguf_config.h"

namespace vlserve::tokenizer {
namespace {

Status KeyError(const gguf::File& file, std::string_view key, std::string_view what) {
  return InvalidArgumentError("'" + std::string(key) + "' in " + file.path() + " " +
                              std::string(what));
}

// Reads an optional token id; keeps `*id` when the key is absent.
Status ReadId(const gguf::File& file, std::string_view key, int32_t* id) {
  const gguf::Value* v = file.Find(key);
  if (v == nullptr) return OkStatus();
  const std::optional<int64_t> i = v->AsInt();
  if (!i || *i < 0 || *i > INT32_MAX) return KeyError(file, key, "is not a token id");
  *id = static_cast<int32_t>(*i);
  return OkStatus();
}

Status ReadFlag(const gguf::File& file, std::string_view key, std::optional<bool>* flag) {
  const gguf::Value* v = file.Find(key);
  if (v == nullptr) return OkStatus();
  const std::optional<bool> b = v->AsBool();
  if (!b) return KeyError(file, key, "is not a bool");
  *flag = *b;
  return OkStatus();
}

Status ReadStrings(const gguf::File& file, std::string_view key, bool required,
                   std::vector<std::string>* out) {
  const gguf::Value* v = file.Find(key);
  if (v == nullptr) {
    return required ? NotFoundError("key '" + std::string(key) + "' missing in " + file.path() +
                                    "; the file has no usable tokenizer")
                    : OkStatus();
  }
  const std::vector<std::string>* strings = v->AsStringArray();
  if (strings == nullptr) return KeyError(file, key, "is not an array of strings");
  *out = *strings;
  return OkStatus();
}

}  // namespace

StatusOr<TokenizerConfig> TokenizerConfigFromGguf(const gguf::File& file) {
  TokenizerConfig c;
  ASSIGN_OR_RETURN(c.model, file.GetString("tokenizer.ggml.model"));
  ASSIGN_OR_RETURN(c.pre, file.GetStringOr("tokenizer.ggml.pre", ""));
  RETURN_IF_ERROR(ReadStrings(file, "tokenizer.ggml.tokens", true, &c.tokens));
  RETURN_IF_ERROR(ReadStrings(file, "tokenizer.ggml.merges", c.model == "gpt2", &c.merges));
  if (const gguf::Value* v = file.Find("tokenizer.ggml.token_type")) {
    const std::optional<std::vector<int64_t>> types = v->AsIntArray();
    if (!types) return KeyError(file, "tokenizer.ggml.token_type", "is not an integer array");
    c.token_types.reserve(types->size());
    for (const int64_t t : *types) {
      c.token_types.push_back(t >= 0 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kUndefined);
    }
  }
  if (const gguf::Value* v = file.Find("tokenizer.ggml.scores")) {
    std::optional<std::vector<float>> scores = v->AsFloatArray();
    if (!scores) return KeyError(file, "tokenizer.ggml.scores", "is not a number array");
    c.scores = std::move(*scores);
  }
  if (c.model == "llama") {  // llama.cpp's SentencePiece defaults
    c.bos_id = 1;
    c.eos_id = 2;
    c.unk_id = 0;
  }
  RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.bos_token_id", &c.bos_id));
  RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.eos_token_id", &c.eos_id));
  RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.eot_token_id", &c.eot_id));
  RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.eom_token_id", &c.eom_id));
  RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.unknown_token_id", &c.unk_id));
  RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.padding_token_id", &c.pad_id));
  RETURN_IF_ERROR(ReadFlag(file, "tokenizer.ggml.add_bos_token", &c.add_bos));
  RETURN_IF_ERROR(ReadFlag(file, "tokenizer.ggml.add_eos_token", &c.add_eos));
  RETURN_IF_ERROR(ReadFlag(file, "tokenizer.ggml.add_space_prefix", &c.add_space_prefix));
  ASSIGN_OR_RETURN(c.chat_template, file.GetStringOr("tokenizer.chat_template", ""));
  return c;
}

StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> file, gguf::File::Open(path));
  ASSIGN_OR_RETURN(TokenizerConfig config, TokenizerConfigFromGguf(*file));
  StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(std::move(config));
  if (!tok.ok()) return tok.status().WithContext("tokenizer of " + path);
  return tok;
}

}  // namespace vlserve::tokenizer
