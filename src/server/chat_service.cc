#include "server/chat_service.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>
#include <random>

#include "base/clock.h"
#include "models/image_prompt.h"
#include "server/logprobs_json.h"
#include "tokenizer/detokenizer.h"

namespace vlserve::server {
namespace json = boost::json;
namespace {

uint64_t RandomSeed() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

// BOS as the tokenizer wants it, never twice: the template may already begin with the
// BOS text (SmolVLM's <|im_start|>). Returns how many tokens were inserted (0 or 1).
int64_t PrependBos(const tokenizer::Tokenizer& tok, std::vector<int32_t>* ids) {
  if (!tok.add_bos() || tok.bos_id() < 0 || (!ids->empty() && ids->front() == tok.bos_id())) {
    return 0;
  }
  ids->insert(ids->begin(), tok.bos_id());
  return 1;
}

// The prompt of a request with media: every image part (and every page of a document
// part) becomes one image marker of the chat template, expanded into the family's image
// tokens with one ImageSpan per run of embedding rows.
Status PrepareMedia(const ChatRequest& chat, const ModelContext& ctx, const MediaConfig& config,
                    std::vector<models::ChatMessage>* messages, engine::Request* request) {
  const VisionContext& vision = ctx.vision;
  if (vision.model == nullptr) {
    return InvalidArgumentError(fmt::format(
        "model {} has no vision encoder (start vlserve with --mmproj); it cannot read images "
        "or documents",
        ctx.id));
  }
  // The request's image token bounds may narrow the server's, never widen them.
  const models::ImageTokenLimits& server = vision.model->default_limits();
  if (server.max_tokens > 0 && chat.image_max_tokens > server.max_tokens) {
    return InvalidArgumentError(fmt::format(
        "field 'image_max_tokens' = {} is above this server's limit of {} tokens per image "
        "(--image-max-tokens)",
        chat.image_max_tokens, server.max_tokens));
  }
  const models::ImageTokenLimits limits{chat.image_min_tokens, chat.image_max_tokens};
  VisionTimings t;
  const MediaConfig media = WithFetchDeadline(config);  // one deadline for all its images
  std::vector<std::vector<PreparedImage>> per_part(chat.media.size());
  for (size_t i = 0; i < chat.media.size(); ++i) {
    const MediaRef& ref = chat.media[i];
    if (ref.kind == MediaRef::Kind::kDocument) {
      auto pages = PrepareDocument(ref.document_text, ref.render_json, vision, &t, limits,
                                   chat.cache_salt);
      if (!pages.ok()) return pages.status().WithContext(fmt::format("media part {}", i));
      per_part[i] = std::move(*pages);
    } else {
      auto image = PrepareImageUrl(ref.url, vision, media, &t, limits, chat.cache_salt);
      if (!image.ok()) return image.status().WithContext(fmt::format("media part {}", i));
      per_part[i].push_back(std::move(*image));
    }
  }
  engine::RequestTimings& rt = request->timings;
  // Stages that did not run stay absent (-1): a cached image is never decoded.
  if (t.documents < static_cast<int>(chat.media.size())) rt.media_fetch_ms = t.fetch_ms;
  if (t.decoded > 0) rt.image_decode_ms = t.decode_ms;
  if (t.documents > 0) rt.render_ms = t.render_ms;
  if (t.preprocessed > 0) rt.preprocess_ms = t.preprocess_ms;
  rt.images = t.images;
  rt.images_cached = t.cached;
  if (t.cached == t.images) rt.encode_ms = 0;  // the engine has nothing to encode

  Stopwatch tokenize;
  // Glyph's trade, per request: the documents as text tokens vs as page embeddings (the
  // text count is part of the tokenize stage).
  if (t.documents > 0) {
    rt.document_text_tokens = rt.document_image_tokens = 0;
    for (size_t i = 0; i < chat.media.size(); ++i) {
      if (chat.media[i].kind != MediaRef::Kind::kDocument) continue;
      rt.document_text_tokens += static_cast<int64_t>(
          ctx.tokenizer->Encode(chat.media[i].document_text, {.add_special = false}).size());
      for (const PreparedImage& page : per_part[i]) rt.document_image_tokens += page.layout.tokens;
    }
  }
  std::vector<const PreparedImage*> images;  // in marker order
  for (const ParsedMessage& m : chat.messages) {
    models::ChatMessage out{m.role, {}};
    for (const ParsedPart& p : m.parts) {
      if (p.kind == ParsedPart::Kind::kText) {
        out.parts.push_back({models::ChatPart::Kind::kText, p.text});
        continue;
      }
      for (const PreparedImage& image : per_part[p.media_index]) {
        out.parts.push_back({models::ChatPart::Kind::kImage, {}});
        images.push_back(&image);
      }
    }
    messages->push_back(std::move(out));
  }
  // Special tokens and image markers count only in the template's text, not in content.
  const models::ChatPrompt prompt = models::RenderChatPrompt(*ctx.chat_template, *messages);
  std::vector<models::ImageLayout> layouts;
  for (const PreparedImage* image : images) layouts.push_back(image->layout);
  models::ImagePromptOptions options;
  options.marker = ctx.chat_template->image_marker;
  options.content = prompt.content;
  ASSIGN_OR_RETURN(models::ExpandedPrompt expanded,
                   models::ExpandImagePrompt(*ctx.tokenizer, *vision.model, ctx.model->config(),
                                             prompt.text, layouts, options));
  request->prompt_tokens = std::move(expanded.tokens);
  request->rope_positions = std::move(expanded.rope_positions);
  request->next_rope_position = expanded.next_rope_position;
  for (const models::PromptImageSpan& span : expanded.spans) {
    const PreparedImage& image = *images[span.image];
    engine::ImageSpan out;
    out.position = span.position;
    out.num_tokens = span.num_tokens;
    out.first_row = span.first_row;
    out.content_hash = fmt::format("{}/{}", image.cache_key, span.first_row);
    out.embeddings = image.embeddings;
    out.encode = image.job;
    request->images.push_back(std::move(out));
  }
  rt.tokenize_ms = tokenize.ElapsedMs();
  return OkStatus();
}

// Special tokens are parsed in the template's text only: a user who types "<|im_start|>"
// gets those characters, not a control token (no forged turns).
std::vector<int32_t> TokenizePrompt(const models::ChatPrompt& prompt,
                                    const tokenizer::Tokenizer& tok) {
  std::vector<tokenizer::TextSpan> spans;
  size_t pos = 0;
  for (const auto& [begin, end] : prompt.content) {
    const std::string_view text = prompt.text;
    if (begin > pos) spans.push_back({text.substr(pos, begin - pos), true});
    spans.push_back({text.substr(begin, end - begin), false});
    pos = end;
  }
  if (pos < prompt.text.size()) spans.push_back({std::string_view(prompt.text).substr(pos), true});
  std::vector<int32_t> ids;
  tok.EncodeSpans(spans, {.add_special = false}, &ids);
  PrependBos(tok, &ids);
  return ids;
}

// Milliseconds with at most 3 decimals, as plain decimals ("0.009", "21410.159"): Boost.JSON
// writes doubles in exponent notation ("9E-3"), which the docs and dashboards do not expect.
std::string PlainDecimal(double v) {
  std::string s = fmt::format("{:.3f}", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

// The "timings" object as JSON text (see PlainDecimal).
std::string TimingsJson(const engine::RequestTimings& t) {
  std::string out;
  auto field = [&out](const char* key, const std::string& value) {
    out += out.empty() ? "{\"" : ",\"";
    out += key;
    out += "\":";
    out += value;
  };
  auto ms = [&field](const char* key, double v) {
    if (v >= 0 && std::isfinite(v)) field(key, PlainDecimal(v));
  };
  auto count = [&field](const char* key, int64_t v) { field(key, std::to_string(v)); };
  ms("http_read", t.http_read_ms);
  ms("parse", t.parse_ms);
  ms("media_fetch", t.media_fetch_ms);
  ms("image_decode", t.image_decode_ms);
  ms("render", t.render_ms);
  ms("preprocess", t.preprocess_ms);
  ms("tokenize", t.tokenize_ms);
  if (t.document_image_tokens >= 0) {
    count("document_text_tokens", t.document_text_tokens);
    count("document_image_tokens", t.document_image_tokens);
  }
  ms("queue", t.queue_ms);
  ms("encode", t.encode_ms);
  if (t.images > 0) {
    count("images", t.images);
    count("images_cached", t.images_cached);
    field("encode_cached", t.images_cached == t.images ? "true" : "false");
  }
  ms("prefill", t.prefill_ms);
  count("prefill_tokens", t.prefill_tokens);
  ms("ttft", t.ttft_ms);
  ms("decode", t.decode_ms);
  count("decode_tokens", t.decode_tokens);
  ms("decode_tokens_per_s", t.decode_tokens_per_s);
  ms("total", t.e2e_ms);
  count("preemptions", t.preemptions);
  return out + "}";
}

// `o` serialized with "timings" appended as its last member.
std::string WithTimings(const json::object& o, const engine::RequestTimings& t) {
  std::string s = json::serialize(o);
  s.pop_back();  // '}'
  return s + (o.empty() ? "\"timings\":" : ",\"timings\":") + TimingsJson(t) + "}";
}

json::object UsageObject(const engine::Usage& u) {
  json::object details;
  details["cached_tokens"] = u.cached_tokens;
  json::object o;
  o["prompt_tokens"] = u.prompt_tokens;
  o["completion_tokens"] = u.completion_tokens;
  o["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  o["prompt_tokens_details"] = std::move(details);
  return o;
}

json::object Envelope(const CompletionMeta& meta, const char* object) {
  json::object o;
  o["id"] = meta.id;
  o["object"] = object;
  o["created"] = meta.created;
  o["model"] = meta.model;
  return o;
}

std::string Sse(const json::object& o) { return "data: " + json::serialize(o) + "\n\n"; }

}  // namespace

std::string FinishReasonJsonName(engine::FinishReason reason) {
  return std::string(engine::FinishReasonName(reason));
}

namespace {

// No model (or "") is the served one; the alias and the file's own name both name it.
Status CheckModel(const ChatRequest& chat, const ModelContext& ctx) {
  if (chat.model && !chat.model->empty() && *chat.model != ctx.id &&
      *chat.model != ctx.served_id()) {
    return NotFoundError(fmt::format("model '{}' is not served here; this server serves '{}' "
                                     "(GET /v1/models)",
                                     *chat.model, ctx.served_id()));
  }
  return OkStatus();
}

// The request's options that do not depend on the prompt: sampling, seed, priority,
// deadline, log probabilities, cache partition.
void ApplyOptions(const ChatRequest& chat, const ChatDefaults& defaults,
                  engine::Request* request) {
  request->sampling = chat.sampling;
  if (request->sampling.max_tokens < 0) request->sampling.max_tokens = defaults.max_tokens;
  if (!chat.seed_given) request->sampling.seed = RandomSeed();
  request->priority = chat.priority;
  request->logprobs = chat.logprobs;
  request->cache_salt = chat.cache_salt;
  if (chat.timeout_s) {
    const auto base = request->arrival.value_or(engine::SteadyClock::now());
    request->deadline = base + std::chrono::duration_cast<engine::SteadyClock::duration>(
                                   std::chrono::duration<double>(*chat.timeout_s));
  }
}

}  // namespace

Status PrepareCompletion(const CompletionRequest& completion, const ModelContext& ctx,
                         const ChatDefaults& defaults, engine::Request* request,
                         std::string* echo) {
  RETURN_IF_ERROR(CheckModel(completion.options, ctx));
  const tokenizer::Tokenizer& tok = *ctx.tokenizer;
  Stopwatch tokenize;
  if (completion.prompt_is_ids) {
    request->prompt_tokens = completion.prompt_ids;  // the engine checks the vocabulary
    if (completion.echo) {
      for (const int32_t id : completion.prompt_ids) {
        if (id >= tok.vocab_size()) {
          return InvalidArgumentError(fmt::format(
              "prompt token {} is outside the vocabulary [0, {})", id, tok.vocab_size()));
        }
      }
      *echo = tokenizer::SanitizeUtf8(tok.Decode(completion.prompt_ids));
    }
  } else {
    // As vLLM and llama-server: special-token texts in a raw prompt are the tokens.
    tok.Encode(completion.prompt, {.add_special = false, .parse_special = true},
               &request->prompt_tokens);
    PrependBos(tok, &request->prompt_tokens);
    if (completion.echo) *echo = completion.prompt;
  }
  request->timings.tokenize_ms = tokenize.ElapsedMs();
  ApplyOptions(completion.options, defaults, request);
  return OkStatus();
}

Status PrepareChat(const ChatRequest& chat, const ModelContext& ctx, const MediaConfig& media,
                   const ChatDefaults& defaults, engine::Request* request) {
  RETURN_IF_ERROR(CheckModel(chat, ctx));
  std::vector<models::ChatMessage> messages;
  messages.reserve(chat.messages.size());
  if (!chat.media.empty()) {
    RETURN_IF_ERROR(PrepareMedia(chat, ctx, media, &messages, request));
  } else {
    Stopwatch tokenize;
    for (const ParsedMessage& m : chat.messages) {
      models::ChatMessage out{m.role, {}};
      for (const ParsedPart& p : m.parts) out.parts.push_back({models::ChatPart::Kind::kText, p.text});
      messages.push_back(std::move(out));
    }
    request->prompt_tokens =
        TokenizePrompt(models::RenderChatPrompt(*ctx.chat_template, messages), *ctx.tokenizer);
    request->timings.tokenize_ms = tokenize.ElapsedMs();
  }

  ApplyOptions(chat, defaults, request);
  return OkStatus();
}

std::string TokenizeJson(const TokenizeRequest& req, const tokenizer::Tokenizer& tok) {
  const std::vector<int32_t> ids = tok.Encode(
      req.content, {.add_special = req.add_special, .parse_special = req.parse_special});
  json::array tokens;
  for (int32_t id : ids) {
    if (req.with_pieces) {
      json::object o;
      o["id"] = id;
      const std::string_view piece = tok.Piece(id, true);
      if (tokenizer::SanitizeUtf8(piece) == piece) {
        o["piece"] = piece;
      } else {  // part of a character: JSON strings must be valid UTF-8
        json::array bytes;
        for (const char c : piece) bytes.push_back(static_cast<uint8_t>(c));
        o["piece"] = std::move(bytes);
      }
      tokens.push_back(std::move(o));
    } else {
      tokens.push_back(id);
    }
  }
  json::object out;
  out["tokens"] = std::move(tokens);
  return json::serialize(out);
}

StatusOr<std::string> DetokenizeJson(const DetokenizeRequest& req,
                                     const tokenizer::Tokenizer& tok) {
  std::string text;
  for (size_t i = 0; i < req.tokens.size(); ++i) {
    const int64_t id = req.tokens[i];
    if (id < 0 || id >= tok.vocab_size()) {
      return InvalidArgumentError(fmt::format(
          "field 'tokens[{}]' = {} is not a token id; the vocabulary has ids 0..{}", i, id,
          tok.vocab_size() - 1));
    }
    text += tok.Piece(static_cast<int32_t>(id), /*render_special=*/true);
  }
  json::object out;
  out["content"] = tokenizer::SanitizeUtf8(text);
  return json::serialize(out);
}

namespace {

// choices[0].logprobs: null for a text completion without them; absent from chat then.
void AddLogprobs(const CompletionMeta& meta, std::span<const engine::TokenLogprob> logprobs,
                 json::object* choice) {
  if (meta.logprobs_tokenizer == nullptr) {
    if (meta.text_completion) (*choice)["logprobs"] = nullptr;
    return;
  }
  (*choice)["logprobs"] =
      meta.text_completion
          ? CompletionLogprobsJson(logprobs, *meta.logprobs_tokenizer, &meta.text_offset)
          : ChatLogprobsJson(logprobs, *meta.logprobs_tokenizer);
}

const char* ObjectName(const CompletionMeta& meta, bool chunk) {
  if (meta.text_completion) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

}  // namespace

std::string CompletionJson(const CompletionMeta& meta, const std::string& text,
                           const engine::Event& event,
                           std::span<const engine::TokenLogprob> logprobs) {
  json::object choice;
  choice["index"] = 0;
  if (meta.text_completion) {
    meta.text_offset = CountCodePoints(meta.echo);
    choice["text"] = meta.echo + text;
  } else {
    json::object message;
    message["role"] = "assistant";
    message["content"] = text;
    choice["message"] = std::move(message);
  }
  AddLogprobs(meta, logprobs, &choice);
  choice["finish_reason"] = FinishReasonJsonName(event.finish_reason);
  json::object o = Envelope(meta, ObjectName(meta, false));
  o["choices"] = json::array{std::move(choice)};
  o["usage"] = UsageObject(event.usage);
  return WithTimings(o, event.timings);
}

std::string DeltaChunk(const CompletionMeta& meta, std::string_view content, bool first,
                       std::span<const engine::TokenLogprob> logprobs) {
  json::object choice;
  choice["index"] = 0;
  if (meta.text_completion) {
    if (first) meta.text_offset = CountCodePoints(meta.echo);
    choice["text"] = first ? meta.echo + std::string(content) : std::string(content);
  } else {
    json::object delta;
    if (first) delta["role"] = "assistant";
    delta["content"] = content;
    choice["delta"] = std::move(delta);
  }
  AddLogprobs(meta, logprobs, &choice);
  choice["finish_reason"] = nullptr;
  json::object o = Envelope(meta, ObjectName(meta, true));
  o["choices"] = json::array{std::move(choice)};
  return Sse(o);
}

std::string FinalChunks(const CompletionMeta& meta, const engine::Event& event,
                        bool include_usage) {
  json::object choice;
  choice["index"] = 0;
  if (meta.text_completion) {
    choice["text"] = "";
    choice["logprobs"] = nullptr;
  } else {
    choice["delta"] = json::object();
  }
  choice["finish_reason"] = FinishReasonJsonName(event.finish_reason);
  json::object o = Envelope(meta, ObjectName(meta, true));
  o["choices"] = json::array{std::move(choice)};
  std::string out = "data: " + WithTimings(o, event.timings) + "\n\n";
  if (include_usage) {  // OpenAI: one extra chunk with empty choices and the usage
    json::object u = Envelope(meta, ObjectName(meta, true));
    u["choices"] = json::array();
    u["usage"] = UsageObject(event.usage);
    out += Sse(u);
  }
  return out + "data: [DONE]\n\n";
}

std::string SseError(const std::string& error_json) {
  return "data: " + error_json + "\n\ndata: [DONE]\n\n";
}

}  // namespace vlserve::server
