// The OpenAI chat-completions request body -> a validated ChatRequest (plain data).
// Types are checked strictly: a field of the wrong type is a 400 that names the field.
// docs/api.md lists every field; vlserve extensions are marked there.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/sampling.h"

namespace vlserve::server {

// One non-text content part, resolved later (media.h) into images.
struct MediaRef {
  enum class Kind { kImageUrl, kDocument };
  Kind kind = Kind::kImageUrl;
  std::string url;            // kImageUrl: data:, file:// or http(s)://
  std::string document_text;  // kDocument: the text to render into pages
  std::string render_json;    // kDocument: the "render" object as JSON text ("" = defaults)
};

struct ParsedPart {
  enum class Kind { kText, kMedia };
  Kind kind = Kind::kText;
  std::string text;     // kText
  size_t media_index = 0;  // kMedia: index into ChatRequest::media
};

struct ParsedMessage {
  std::string role;  // system | user | assistant
  std::vector<ParsedPart> parts;
};

struct ChatRequest {
  std::optional<std::string> model;
  std::vector<ParsedMessage> messages;
  std::vector<MediaRef> media;      // in order of appearance
  SamplingParams sampling;          // max_tokens -1 = server default
  bool seed_given = false;
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  int priority = 0;                 // extension
  std::optional<double> timeout_s;  // extension: deadline after arrival (<= kMaxTimeoutSeconds)
  // Extension (llama.cpp's flag names): per-image token bounds for this request's images,
  // applied through the family's layout rule; 0 = the server's. Above the server's
  // --image-max-tokens is refused.
  int64_t image_min_tokens = 0, image_max_tokens = 0;
  // -1: no log probabilities; else `logprobs: true` with this many `top_logprobs` (0..20).
  // POST /v1/completions: its integer `logprobs`.
  int32_t logprobs = -1;
  // Extension (vLLM's name): requests share cached prompt KV, image embeddings and
  // replayed answers only with requests of the same salt ("" = none given: the shared
  // default partition). The server replaces it with the request's whole partition
  // (CachePartition: with --cache-isolation api-key the caller's key too) before
  // PrepareChat / PrepareCompletion, which pass it on to every cache key.
  std::string cache_salt;
};

// A request's "timeout" above this (one day) is clamped to it.
constexpr double kMaxTimeoutSeconds = 86400;
// Longest "cache_salt" in bytes: a partition name, not a payload.
constexpr size_t kMaxCacheSaltBytes = 256;

struct ChatParseLimits {
  int max_media_parts = 8;  // images + documents per request
  int max_messages = 1024;
};

// InvalidArgument naming the field for malformed JSON, wrong types or bad values;
// Unimplemented for features vlserve does not have (n > 1, tools).
StatusOr<ChatRequest> ParseChatRequest(std::string_view body, const ChatParseLimits& limits);

// POST /v1/completions: one prompt, sent to the model as is (no chat template).
struct CompletionRequest {
  ChatRequest options;              // every field but messages/media (those stay empty)
  std::string prompt;               // a text prompt (special-token texts are parsed)
  std::vector<int32_t> prompt_ids;  // or a token-id prompt (prompt_is_ids)
  bool prompt_is_ids = false;
  bool echo = false;                // the answer's text starts with the prompt
};

// `prompt`: a string, an array of one string, an array of token ids, or an array of one
// array of token ids; several prompts are a 400 (one choice per request). InvalidArgument
// naming the field for wrong types or values; Unimplemented for echo with logprobs (no
// prompt log probabilities), suffix and best_of > 1.
StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body);

// {"content": "..."} of POST /tokenize (also accepts "add_special", "with_pieces").
struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};
StatusOr<TokenizeRequest> ParseTokenizeRequest(std::string_view body);

// {"tokens": [ids...]} of POST /detokenize (ids are checked against the vocabulary later).
struct DetokenizeRequest {
  std::vector<int64_t> tokens;
};
StatusOr<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body);

}  // namespace vlserve::server
