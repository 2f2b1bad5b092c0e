// The served model (ModelContext) and the chat pipeline around it: ChatRequest ->
// engine::Request (model check, media, chat template, tokenization) and engine events ->
// OpenAI JSON (completion, stream chunks, usage, timings).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "models/chat_template.h"
#include "models/text_model.h"
#include "server/chat_request.h"
#include "server/media_input.h"
#include "server/vision_input.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::server {

struct ModelContext {
  std::string id;     // GGUF general.name, else the file stem
  std::string alias;  // --alias: the id clients see and may send ("" = id)
  const std::string& served_id() const { return alias.empty() ? id : alias; }
  std::shared_ptr<const models::TextModel> model;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  const models::ChatTemplate* chat_template = nullptr;
  std::unique_ptr<engine::Engine> engine;
  VisionContext vision;  // vision.model null = text only (no --mmproj)
  int64_t created_unix = 0;
};

struct ChatDefaults {
  int32_t max_tokens = 256;  // when the request gives none
};

// Turns a parsed request into an engine request. Fills the server stages of
// request->timings. Images and document pages become ImageSpans (cached embeddings or
// encode jobs for the engine). Errors: NotFound (model), InvalidArgument (media, no vision
// encoder), OutOfRange (media limits), and the engine's validation.
Status PrepareChat(const ChatRequest& chat, const ModelContext& ctx, const MediaConfig& media,
                   const ChatDefaults& defaults, engine::Request* request);
// The same for POST /v1/completions: the prompt goes to the model as is (a text prompt is
// tokenized with special-token texts recognised and BOS as the tokenizer wants it; token
// ids are taken unchanged). With echo, *echo = the prompt's text.
Status PrepareCompletion(const CompletionRequest& completion, const ModelContext& ctx,
                         const ChatDefaults& defaults, engine::Request* request,
                         std::string* echo);

// Tokens of POST /tokenize. With with_pieces, a piece that is not valid UTF-8 on its own
// (part of a character) is an array of its byte values, as llama-server sends it.
std::string TokenizeJson(const TokenizeRequest& req, const tokenizer::Tokenizer& tok);
// {"content": "..."} of POST /detokenize: the pieces of the ids concatenated, control tokens
// as their text; bytes that do not form valid UTF-8 become U+FFFD. InvalidArgument for an
// id outside the vocabulary.
StatusOr<std::string> DetokenizeJson(const DetokenizeRequest& req,
                                     const tokenizer::Tokenizer& tok);

// ---- response JSON ----

struct CompletionMeta {
  std::string id;     // "chatcmpl-..." (chat) or "cmpl-..." (text completion)
  std::string model;
  int64_t created = 0;
  // Text completions (POST /v1/completions) answer text_completion objects.
  bool text_completion = false;
  // With logprobs (ChatRequest::logprobs >= 0): the token texts come from here.
  const tokenizer::Tokenizer* logprobs_tokenizer = nullptr;
  std::string echo = "";  // text completion with echo: the prompt, before the answer
  // Text completion logprobs: characters already sent, so a stream's text_offset continues.
  mutable int64_t text_offset = 0;
};

// The non-streaming body. `event` is the terminal kFinished event; text = the whole answer;
// `logprobs` = the entries of every event (with meta.logprobs_tokenizer).
std::string CompletionJson(const CompletionMeta& meta, const std::string& text,
                           const engine::Event& event,
                           std::span<const engine::TokenLogprob> logprobs = {});
// One SSE "data: {...}\n\n" record of a chat.completion.chunk carrying `content`
// (role on the first chunk) and its tokens' `logprobs` (text_completion: the text, and
// the echo on the first chunk).
std::string DeltaChunk(const CompletionMeta& meta, std::string_view content, bool first,
                       std::span<const engine::TokenLogprob> logprobs = {});
// The final chunk(s): finish_reason + timings (+ usage chunk when include_usage), then
// "data: [DONE]\n\n".
std::string FinalChunks(const CompletionMeta& meta, const engine::Event& event,
                        bool include_usage);
// An SSE error record: data: {"error": {...}}\n\n followed by data: [DONE]\n\n.
std::string SseError(const std::string& error_json);

std::string FinishReasonJsonName(engine::FinishReason reason);

}  // namespace vlserve::server
