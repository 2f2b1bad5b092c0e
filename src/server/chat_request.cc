#include "server/chat_request.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/logprobs.h"
#include "server/json_schema.h"

namespace vlserve::server {
namespace json = boost::json;
namespace {

Status TypeError(std::string_view field, std::string_view want) {
  return InvalidArgumentError(fmt::format("field '{}' must be {}", field, want));
}

StatusOr<json::object> ParseObject(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    return InvalidArgumentError(fmt::format("request body is not valid JSON: {}", ec.message()));
  }
  if (!v.is_object()) return InvalidArgumentError("request body must be a JSON object");
  return std::move(v.as_object());
}

// Reads optional fields of one object with strict types. A JSON null counts as absent.
class Fields {
 public:
  Fields(const json::object& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  const json::value* Get(std::string_view key) const {
    const json::value* v = obj_.if_contains(key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }
  std::string Name(std::string_view key) const { return prefix_ + std::string(key); }

  Status Number(std::string_view key, float* out) const {
    const json::value* v = Get(key);
    if (v == nullptr) return OkStatus();
    if (!v->is_number()) return TypeError(Name(key), "a number");
    *out = static_cast<float>(v->to_number<double>());
    return OkStatus();
  }
  Status Double(std::string_view key, std::optional<double>* out) const {
    const json::value* v = Get(key);
    if (v == nullptr) return OkStatus();
    if (!v->is_number()) return TypeError(Name(key), "a number");
    *out = v->to_number<double>();
    return OkStatus();
  }
  template <typename Int>
  Status Integer(std::string_view key, Int* out, bool* given = nullptr) const {
    const json::value* v = Get(key);
    if (v == nullptr) return OkStatus();
    int64_t x = 0;
    if (v->is_int64()) {
      x = v->as_int64();
    } else if (v->is_uint64() && v->as_uint64() <= uint64_t{INT64_MAX}) {
      x = static_cast<int64_t>(v->as_uint64());
    } else if (v->is_uint64() && std::is_unsigned_v<Int>) {
      *out = static_cast<Int>(v->as_uint64());
      if (given != nullptr) *given = true;
      return OkStatus();
    } else {
      return TypeError(Name(key), "an integer");
    }
    if (x < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        (x > 0 && static_cast<uint64_t>(x) > uint64_t{std::numeric_limits<Int>::max()})) {
      return InvalidArgumentError(fmt::format("field '{}' = {} is out of range", Name(key), x));
    }
    *out = static_cast<Int>(x);
    if (given != nullptr) *given = true;
    return OkStatus();
  }
  Status Bool(std::string_view key, bool* out) const {
    const json::value* v = Get(key);
    if (v == nullptr) return OkStatus();
    if (!v->is_bool()) return TypeError(Name(key), "a boolean");
    *out = v->as_bool();
    return OkStatus();
  }
  Status String(std::string_view key, std::optional<std::string>* out) const {
    const json::value* v = Get(key);
    if (v == nullptr) return OkStatus();
    if (!v->is_string()) return TypeError(Name(key), "a string");
    *out = std::string(v->as_string());
    return OkStatus();
  }

 private:
  const json::object& obj_;
  std::string prefix_;
};

Status ParsePart(const json::value& v, const std::string& name, ChatRequest* req,
                 ParsedMessage* msg, const ChatParseLimits& limits) {
  if (!v.is_object()) return TypeError(name, "an object");
  const json::object& part = v.as_object();
  Fields f(part, name + ".");
  std::optional<std::string> type;
  RETURN_IF_ERROR(f.String("type", &type));
  if (!type) return InvalidArgumentError(fmt::format("field '{}.type' is required", name));
  ParsedPart out;
  if (*type == "text") {
    std::optional<std::string> text;
    RETURN_IF_ERROR(f.String("text", &text));
    if (!text) return InvalidArgumentError(fmt::format("field '{}.text' is required", name));
    out.text = std::move(*text);
    msg->parts.push_back(std::move(out));
    return OkStatus();
  }
  MediaRef media;
  if (*type == "image_url") {
    const json::value* iu = f.Get("image_url");
    if (iu == nullptr) return InvalidArgumentError(fmt::format("field '{}.image_url' is required", name));
    if (iu->is_string()) {  // tolerated shorthand: "image_url": "data:..."
      media.url = std::string(iu->as_string());
    } else if (iu->is_object()) {
      std::optional<std::string> url;
      RETURN_IF_ERROR(Fields(iu->as_object(), name + ".image_url.").String("url", &url));
      if (!url) return InvalidArgumentError(fmt::format("field '{}.image_url.url' is required", name));
      media.url = std::move(*url);
    } else {
      return TypeError(name + ".image_url", "an object with a 'url' string");
    }
  } else if (*type == "document") {  // vlserve extension: text rendered into page images
    media.kind = MediaRef::Kind::kDocument;
    std::optional<std::string> text;
    RETURN_IF_ERROR(f.String("text", &text));
    if (!text) return InvalidArgumentError(fmt::format("field '{}.text' is required", name));
    media.document_text = std::move(*text);
    if (const json::value* r = f.Get("render"); r != nullptr) {
      if (!r->is_object()) return TypeError(name + ".render", "an object");
      media.render_json = json::serialize(*r);
    }
  } else {
    return InvalidArgumentError(fmt::format(
        "field '{}.type' = '{}' is not supported; use text, image_url or document", name, *type));
  }
  if (static_cast<int>(req->media.size()) >= limits.max_media_parts) {
    return InvalidArgumentError(fmt::format(
        "too many images/documents in one request (limit {}); send fewer", limits.max_media_parts));
  }
  out.kind = ParsedPart::Kind::kMedia;
  out.media_index = req->media.size();
  req->media.push_back(std::move(media));
  msg->parts.push_back(std::move(out));
  return OkStatus();
}

Status ParseMessages(const json::object& body, const ChatParseLimits& limits, ChatRequest* req) {
  const json::value* msgs = body.if_contains("messages");
  if (msgs == nullptr) return InvalidArgumentError("field 'messages' is required");
  if (!msgs->is_array()) return TypeError("messages", "an array");
  const json::array& arr = msgs->as_array();
  if (arr.empty()) return InvalidArgumentError("field 'messages' must not be empty");
  if (static_cast<int>(arr.size()) > limits.max_messages) {
    return InvalidArgumentError(fmt::format("too many messages (limit {})", limits.max_messages));
  }
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string name = fmt::format("messages[{}]", i);
    if (!arr[i].is_object()) return TypeError(name, "an object");
    Fields f(arr[i].as_object(), name + ".");
    ParsedMessage msg;
    std::optional<std::string> role;
    RETURN_IF_ERROR(f.String("role", &role));
    if (!role) return InvalidArgumentError(fmt::format("field '{}.role' is required", name));
    if (*role == "developer") *role = "system";
    if (*role != "system" && *role != "user" && *role != "assistant") {
      return InvalidArgumentError(fmt::format(
          "field '{}.role' = '{}' is not supported; use system, user or assistant", name, *role));
    }
    msg.role = *role;
    const json::value* content = f.Get("content");
    if (content == nullptr) {
      if (msg.role != "assistant") {
        return InvalidArgumentError(fmt::format("field '{}.content' is required", name));
      }
    } else if (content->is_string()) {
      msg.parts.push_back({ParsedPart::Kind::kText, std::string(content->as_string()), 0});
    } else if (content->is_array()) {
      const json::array& parts = content->as_array();
      for (size_t j = 0; j < parts.size(); ++j) {
        RETURN_IF_ERROR(
            ParsePart(parts[j], fmt::format("{}.content[{}]", name, j), req, &msg, limits));
      }
    } else {
      return TypeError(name + ".content", "a string or an array of content parts");
    }
    req->messages.push_back(std::move(msg));
  }
  return OkStatus();
}

// The engine thread checks every stop string after every token, so their number and length
// are bounded (OpenAI allows 4).
constexpr size_t kMaxStopStrings = 16;
constexpr size_t kMaxStopBytes = 512;

Status ParseStop(const Fields& f, SamplingParams* s) {
  const json::value* stop = f.Get("stop");
  if (stop == nullptr) return OkStatus();
  json::array one;
  if (stop->is_string()) {
    one.push_back(*stop);
  } else if (!stop->is_array()) {
    return TypeError("stop", "a string or an array of strings");
  }
  const json::array& all = stop->is_array() ? stop->as_array() : one;
  if (all.size() > kMaxStopStrings) {
    return InvalidArgumentError(fmt::format("field 'stop' has {} strings; at most {} are allowed",
                                            all.size(), kMaxStopStrings));
  }
  for (const json::value& v : all) {
    if (!v.is_string()) return TypeError("stop", "a string or an array of strings");
    if (v.as_string().size() > kMaxStopBytes) {
      return InvalidArgumentError(fmt::format(
          "a 'stop' string is {} bytes long; at most {} are allowed", v.as_string().size(),
          kMaxStopBytes));
    }
    s->stop.emplace_back(v.as_string());
  }
  return OkStatus();
}

// Structured output: json_object (any object, or llama-server's `schema` beside it) and
// json_schema (OpenAI's form) become a grammar the sampler enforces (json_schema.h lists
// the supported subset; anything else is a 400 naming the keyword).
Status ParseResponseFormat(const Fields& f, SamplingParams* s) {
  const json::value* rf = f.Get("response_format");
  if (rf == nullptr) return OkStatus();
  if (!rf->is_object()) return TypeError("response_format", "an object");
  const Fields format(rf->as_object(), "response_format.");
  std::optional<std::string> type;
  RETURN_IF_ERROR(format.String("type", &type));
  if (!type) return InvalidArgumentError("field 'response_format.type' is required");
  if (*type == "text") return OkStatus();
  if (*type == "json_object") {
    const json::value* schema = format.Get("schema");
    if (schema == nullptr) {
      s->json_grammar = JsonGrammar::AnyObject();
      return OkStatus();
    }
    ASSIGN_OR_RETURN(s->json_grammar, CompileJsonSchema(*schema, "response_format.schema"));
    return OkStatus();
  }
  if (*type == "json_schema") {
    const json::value* js = format.Get("json_schema");
    if (js == nullptr) {
      return InvalidArgumentError("field 'response_format.json_schema' is required");
    }
    if (!js->is_object()) return TypeError("response_format.json_schema", "an object");
    const Fields spec(js->as_object(), "response_format.json_schema.");
    std::optional<std::string> name;
    RETURN_IF_ERROR(spec.String("name", &name));
    bool strict = false;  // the schema is always enforced; only the type is checked
    RETURN_IF_ERROR(spec.Bool("strict", &strict));
    const json::value* schema = spec.Get("schema");
    if (schema == nullptr) {
      return InvalidArgumentError("field 'response_format.json_schema.schema' is required");
    }
    ASSIGN_OR_RETURN(s->json_grammar,
                     CompileJsonSchema(*schema, "response_format.json_schema.schema"));
    return OkStatus();
  }
  return InvalidArgumentError(fmt::format(
      "field 'response_format.type' = '{}' is not a known type; use 'text', 'json_object' or "
      "'json_schema'",
      *type));
}

Status ParseLogitBias(const Fields& f, SamplingParams* s) {
  const json::value* lb = f.Get("logit_bias");
  if (lb == nullptr) return OkStatus();
  if (!lb->is_object()) return TypeError("logit_bias", "an object of token id -> number");
  for (const auto& [key, value] : lb->as_object()) {
    // Digits only: std::stoll alone would also take " 5" and "+5".
    const std::string k(key);
    int64_t id = -1;
    if (!k.empty() && k.size() <= 10 &&
        std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      id = std::stoll(k);
    }
    if (id < 0 || id > INT32_MAX) {
      return InvalidArgumentError(
          fmt::format("field 'logit_bias' key '{}' must be a token id (a decimal integer)", k));
    }
    if (!value.is_number()) return TypeError(fmt::format("logit_bias.{}", k), "a number");
    s->logit_bias[static_cast<int32_t>(id)] = static_cast<float>(value.to_number<double>());
  }
  return OkStatus();
}

Status ParseSampling(const json::object& body, ChatRequest* req) {
  Fields f(body, "");
  SamplingParams& s = req->sampling;
  RETURN_IF_ERROR(f.Number("temperature", &s.temperature));
  RETURN_IF_ERROR(f.Number("top_p", &s.top_p));
  RETURN_IF_ERROR(f.Integer("top_k", &s.top_k));
  RETURN_IF_ERROR(f.Number("min_p", &s.min_p));
  RETURN_IF_ERROR(f.Number("presence_penalty", &s.presence_penalty));
  RETURN_IF_ERROR(f.Number("frequency_penalty", &s.frequency_penalty));
  RETURN_IF_ERROR(f.Number("repetition_penalty", &s.repetition_penalty));
  RETURN_IF_ERROR(f.Integer("max_tokens", &s.max_tokens));
  RETURN_IF_ERROR(f.Integer("max_completion_tokens", &s.max_tokens));
  if (f.Get("max_tokens") != nullptr || f.Get("max_completion_tokens") != nullptr) {
    if (s.max_tokens < 1) return InvalidArgumentError("field 'max_tokens' must be >= 1");
  }
  RETURN_IF_ERROR(f.Integer("seed", &s.seed, &req->seed_given));
  RETURN_IF_ERROR(ParseStop(f, &s));
  RETURN_IF_ERROR(ParseLogitBias(f, &s));
  return OkStatus();
}

// As vLLM: a non-empty string when given (null = absent); bounded, since it is hashed
// into every cache key of the request.
Status ParseCacheSalt(const Fields& f, ChatRequest* req) {
  std::optional<std::string> salt;
  RETURN_IF_ERROR(f.String("cache_salt", &salt));
  if (!salt) return OkStatus();
  if (salt->empty() || salt->size() > kMaxCacheSaltBytes) {
    return InvalidArgumentError(fmt::format(
        "field 'cache_salt' must be a non-empty string of at most {} bytes (it is {} bytes)",
        kMaxCacheSaltBytes, salt->size()));
  }
  req->cache_salt = std::move(*salt);
  return OkStatus();
}

Status ParseOptions(const json::object& body, ChatRequest* req) {
  Fields f(body, "");
  RETURN_IF_ERROR(f.String("model", &req->model));
  RETURN_IF_ERROR(f.Bool("stream", &req->stream));
  if (const json::value* so = f.Get("stream_options"); so != nullptr) {
    if (!so->is_object()) return TypeError("stream_options", "an object");
    RETURN_IF_ERROR(Fields(so->as_object(), "stream_options.").Bool("include_usage",
                                                                    &req->include_usage));
  }
  RETURN_IF_ERROR(f.Integer("priority", &req->priority));
  RETURN_IF_ERROR(f.Double("timeout", &req->timeout_s));
  if (req->timeout_s && !(*req->timeout_s > 0 && std::isfinite(*req->timeout_s))) {
    return InvalidArgumentError("field 'timeout' must be a positive number of seconds");
  }
  // A huge timeout means "no hurry": clamped, so the deadline never overflows the clock.
  if (req->timeout_s) *req->timeout_s = std::min(*req->timeout_s, kMaxTimeoutSeconds);
  RETURN_IF_ERROR(ParseCacheSalt(f, req));
  RETURN_IF_ERROR(f.Integer("image_min_tokens", &req->image_min_tokens));
  RETURN_IF_ERROR(f.Integer("image_max_tokens", &req->image_max_tokens));
  if (req->image_min_tokens < 0 || req->image_max_tokens < 0 ||
      (req->image_max_tokens > 0 && req->image_min_tokens > req->image_max_tokens)) {
    return InvalidArgumentError(
        "fields 'image_min_tokens' and 'image_max_tokens' must be >= 0 (0 = the server's) "
        "with min <= max");
  }
  int64_t n = 1;
  RETURN_IF_ERROR(f.Integer("n", &n));
  if (n != 1) return UnimplementedError("field 'n' must be 1; vlserve returns one choice");
  RETURN_IF_ERROR(ParseResponseFormat(f, &req->sampling));
  if (const json::value* tools = f.Get("tools");
      tools != nullptr && !(tools->is_array() && tools->as_array().empty())) {
    return UnimplementedError("field 'tools' is not supported by vlserve");
  }
  return OkStatus();
}

// Chat: `logprobs` (boolean) and `top_logprobs` (0..20, only with logprobs).
Status ParseChatLogprobs(const json::object& body, ChatRequest* req) {
  Fields f(body, "");
  bool logprobs = false, top_given = false;
  int32_t top = 0;
  RETURN_IF_ERROR(f.Bool("logprobs", &logprobs));
  RETURN_IF_ERROR(f.Integer("top_logprobs", &top, &top_given));
  if (top_given && !logprobs) {
    return InvalidArgumentError("field 'top_logprobs' needs \"logprobs\": true");
  }
  if (top < 0 || top > engine::kMaxTopLogprobs) {
    return InvalidArgumentError(fmt::format("field 'top_logprobs' = {} is out of range; "
                                            "allowed: 0..{}", top, engine::kMaxTopLogprobs));
  }
  if (logprobs) req->logprobs = top;
  return OkStatus();
}

// One token-id prompt: integers in [0, INT32_MAX] (the vocabulary is checked later).
Status ParsePromptIds(const json::array& ids, const std::string& name,
                      std::vector<int32_t>* out) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const json::value& v = ids[i];
    if (!(v.is_int64() || v.is_uint64())) return TypeError(name, "an array of token ids");
    if (v.is_uint64() || v.as_int64() < 0 || v.as_int64() > INT32_MAX) {
      return InvalidArgumentError(fmt::format("field '{}[{}]' is not a token id", name, i));
    }
    out->push_back(static_cast<int32_t>(v.as_int64()));
  }
  return OkStatus();
}

Status ParsePrompt(const json::object& body, CompletionRequest* req) {
  const json::value* p = Fields(body, "").Get("prompt");
  if (p == nullptr) return InvalidArgumentError("field 'prompt' is required");
  constexpr std::string_view kWant =
      "a string, an array of token ids, or an array of one string or of one token-id array";
  if (p->is_string()) {
    req->prompt = std::string(p->as_string());
    return OkStatus();
  }
  if (!p->is_array()) return TypeError("prompt", kWant);
  const json::array& arr = p->as_array();
  if (arr.empty()) return InvalidArgumentError("field 'prompt' must not be an empty array");
  if (arr[0].is_int64() || arr[0].is_uint64()) {
    req->prompt_is_ids = true;
    return ParsePromptIds(arr, "prompt", &req->prompt_ids);
  }
  if (!arr[0].is_string() && !arr[0].is_array()) return TypeError("prompt", kWant);
  if (arr.size() > 1) {
    return InvalidArgumentError(fmt::format(
        "field 'prompt' holds {} prompts; vlserve answers one prompt per request (n = 1): "
        "send them as separate requests",
        arr.size()));
  }
  if (arr[0].is_string()) {
    req->prompt = std::string(arr[0].as_string());
    return OkStatus();
  }
  req->prompt_is_ids = true;
  return ParsePromptIds(arr[0].as_array(), "prompt[0]", &req->prompt_ids);
}

}  // namespace

StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseObject(body));
  CompletionRequest req;
  RETURN_IF_ERROR(ParseOptions(obj, &req.options));
  RETURN_IF_ERROR(ParseSampling(obj, &req.options));
  RETURN_IF_ERROR(ParsePrompt(obj, &req));
  Fields f(obj, "");
  RETURN_IF_ERROR(f.Bool("echo", &req.echo));
  // The legacy form: an integer, the number of alternatives per token.
  bool logprobs_given = false;
  int32_t logprobs = 0;
  if (const json::value* v = f.Get("logprobs"); v != nullptr && v->is_bool()) {
    return TypeError("logprobs", "an integer (0..20) on /v1/completions");
  }
  RETURN_IF_ERROR(f.Integer("logprobs", &logprobs, &logprobs_given));
  if (logprobs_given) {
    if (logprobs < 0 || logprobs > engine::kMaxTopLogprobs) {
      return InvalidArgumentError(fmt::format("field 'logprobs' = {} is out of range; allowed: "
                                              "0..{}", logprobs, engine::kMaxTopLogprobs));
    }
    req.options.logprobs = logprobs;
  }
  if (req.echo && logprobs_given) {
    return UnimplementedError(
        "'echo' with 'logprobs' is not supported: vlserve does not compute the prompt's log "
        "probabilities; drop one of them");
  }
  std::optional<std::string> suffix;
  RETURN_IF_ERROR(f.String("suffix", &suffix));
  if (suffix && !suffix->empty()) {
    return UnimplementedError("field 'suffix' is not supported by vlserve");
  }
  int64_t best_of = 1;
  RETURN_IF_ERROR(f.Integer("best_of", &best_of));
  if (best_of != 1) return UnimplementedError("field 'best_of' must be 1");
  return req;
}

StatusOr<ChatRequest> ParseChatRequest(std::string_view body, const ChatParseLimits& limits) {
  ASSIGN_OR_RETURN(json::object obj, ParseObject(body));
  ChatRequest req;
  RETURN_IF_ERROR(ParseOptions(obj, &req));
  RETURN_IF_ERROR(ParseSampling(obj, &req));
  RETURN_IF_ERROR(ParseChatLogprobs(obj, &req));
  RETURN_IF_ERROR(ParseMessages(obj, limits, &req));
  return req;
}

StatusOr<TokenizeRequest> ParseTokenizeRequest(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseObject(body));
  Fields f(obj, "");
  std::optional<std::string> content;
  RETURN_IF_ERROR(f.String("content", &content));
  if (!content) return InvalidArgumentError("field 'content' is required");
  TokenizeRequest req;
  req.content = std::move(*content);
  RETURN_IF_ERROR(f.Bool("add_special", &req.add_special));
  RETURN_IF_ERROR(f.Bool("parse_special", &req.parse_special));
  RETURN_IF_ERROR(f.Bool("with_pieces", &req.with_pieces));
  return req;
}

StatusOr<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseObject(body));
  const json::value* tokens = Fields(obj, "").Get("tokens");
  if (tokens == nullptr) return InvalidArgumentError("field 'tokens' is required");
  if (!tokens->is_array()) return TypeError("tokens", "an array of token ids");
  DetokenizeRequest req;
  req.tokens.reserve(tokens->as_array().size());
  for (const json::value& v : tokens->as_array()) {
    if (!v.is_int64()) return TypeError("tokens", "an array of token ids (integers)");
    req.tokens.push_back(v.as_int64());
  }
  return req;
}

}  // namespace vlserve::server
