#include "server/chat_service.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>
#include <random>

#include "base/clock.h"
#include "models/image_prompt.h"

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
  std::vector<std::vector<PreparedImage>> per_part(chat.media.size());
  for (size_t i = 0; i < chat.media.size(); ++i) {
    const MediaRef& ref = chat.media[i];
    if (ref.kind == MediaRef::Kind::kDocument) {
      auto pages = PrepareDocument(ref.document_text, ref.render_json, vision, &t, limits);
      if (!pages.ok()) return pages.status().WithContext(fmt::format("media part {}", i));
      per_part[i] = std::move(*pages);
    } else {
      auto image = PrepareImageUrl(ref.url, vision, config, &t, limits);
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
  const std::string prompt = models::ApplyChatTemplate(*ctx.chat_template, *messages, true);
  std::vector<models::ImageLayout> layouts;
  for (const PreparedImage* image : images) layouts.push_back(image->layout);
  models::ImagePromptOptions options;
  options.marker = ctx.chat_template->image_marker;
  ASSIGN_OR_RETURN(models::ExpandedPrompt expanded,
                   models::ExpandImagePrompt(*ctx.tokenizer, *vision.model, ctx.model->config(),
                                             prompt, layouts, options));
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

std::vector<int32_t> TokenizePrompt(const std::string& prompt, const tokenizer::Tokenizer& tok) {
  std::vector<int32_t> ids;
  tok.Encode(prompt, {.add_special = false, .parse_special = true}, &ids);
  PrependBos(tok, &ids);
  return ids;
}

json::object TimingsObject(const engine::RequestTimings& t) {
  json::object o;
  auto ms = [&o](const char* key, double v) {
    if (v >= 0) o[key] = std::round(v * 1000.0) / 1000.0;
  };
  ms("http_read", t.http_read_ms);
  ms("parse", t.parse_ms);
  ms("media_fetch", t.media_fetch_ms);
  ms("image_decode", t.image_decode_ms);
  ms("render", t.render_ms);
  ms("preprocess", t.preprocess_ms);
  ms("tokenize", t.tokenize_ms);
  ms("queue", t.queue_ms);
  ms("encode", t.encode_ms);
  if (t.images > 0) {
    o["images"] = t.images;
    o["images_cached"] = t.images_cached;
    o["encode_cached"] = t.images_cached == t.images;
  }
  ms("prefill", t.prefill_ms);
  o["prefill_tokens"] = t.prefill_tokens;
  ms("ttft", t.ttft_ms);
  ms("decode", t.decode_ms);
  o["decode_tokens"] = t.decode_tokens;
  ms("decode_tokens_per_s", t.decode_tokens_per_s);
  ms("total", t.e2e_ms);
  o["preemptions"] = t.preemptions;
  return o;
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

Status PrepareChat(const ChatRequest& chat, const ModelContext& ctx, const MediaConfig& media,
                   const ChatDefaults& defaults, engine::Request* request) {
  if (chat.model && !chat.model->empty() && *chat.model != ctx.id) {
    return NotFoundError(fmt::format("model '{}' is not served here; this server serves '{}' "
                                     "(GET /v1/models)",
                                     *chat.model, ctx.id));
  }
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
    const std::string prompt = models::ApplyChatTemplate(*ctx.chat_template, messages, true);
    request->prompt_tokens = TokenizePrompt(prompt, *ctx.tokenizer);
    request->timings.tokenize_ms = tokenize.ElapsedMs();
  }

  request->sampling = chat.sampling;
  if (request->sampling.max_tokens < 0) request->sampling.max_tokens = defaults.max_tokens;
  if (!chat.seed_given) request->sampling.seed = RandomSeed();
  request->priority = chat.priority;
  if (chat.timeout_s) {
    const auto base = request->arrival.value_or(engine::SteadyClock::now());
    request->deadline = base + std::chrono::duration_cast<engine::SteadyClock::duration>(
                                   std::chrono::duration<double>(*chat.timeout_s));
  }
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
      o["piece"] = std::string(tok.Piece(id, true));
      tokens.push_back(std::move(o));
    } else {
      tokens.push_back(id);
    }
  }
  json::object out;
  out["tokens"] = std::move(tokens);
  return json::serialize(out);
}

std::string CompletionJson(const CompletionMeta& meta, const std::string& text,
                           const engine::Event& event) {
  json::object message;
  message["role"] = "assistant";
  message["content"] = text;
  json::object choice;
  choice["index"] = 0;
  choice["message"] = std::move(message);
  choice["finish_reason"] = FinishReasonJsonName(event.finish_reason);
  json::object o = Envelope(meta, "chat.completion");
  o["choices"] = json::array{std::move(choice)};
  o["usage"] = UsageObject(event.usage);
  o["timings"] = TimingsObject(event.timings);
  return json::serialize(o);
}

std::string DeltaChunk(const CompletionMeta& meta, std::string_view content, bool first) {
  json::object delta;
  if (first) delta["role"] = "assistant";
  delta["content"] = content;
  json::object choice;
  choice["index"] = 0;
  choice["delta"] = std::move(delta);
  choice["finish_reason"] = nullptr;
  json::object o = Envelope(meta, "chat.completion.chunk");
  o["choices"] = json::array{std::move(choice)};
  return Sse(o);
}

std::string FinalChunks(const CompletionMeta& meta, const engine::Event& event,
                        bool include_usage) {
  json::object choice;
  choice["index"] = 0;
  choice["delta"] = json::object();
  choice["finish_reason"] = FinishReasonJsonName(event.finish_reason);
  json::object o = Envelope(meta, "chat.completion.chunk");
  o["choices"] = json::array{std::move(choice)};
  o["timings"] = TimingsObject(event.timings);
  std::string out = Sse(o);
  if (include_usage) {  // OpenAI: one extra chunk with empty choices and the usage
    json::object u = Envelope(meta, "chat.completion.chunk");
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
