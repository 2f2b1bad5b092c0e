// The routes of Server: dispatch, authentication, chat completions (JSON and SSE),
// tokenize, models, health, metrics and static files.
#include <fmt/format.h>
#include <openssl/crypto.h>

#include <boost/json.hpp>
#include <filesystem>
#include <functional>

#include "base/clock.h"
#include "base/log.h"
#include "server/render_preview.h"
#include "server/server.h"
#include "server/web_assets.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
using asio::use_awaitable;
using Kind = engine::Event::Kind;

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

enum class RouteKind {
  kHealth, kModels, kMetrics, kChat, kCompletions, kTokenize, kDetokenize, kRender
};

// Every API route. GET routes (health, models, metrics) also take HEAD; the others take
// POST. Any other method is a 405 with Allow; any other path is a static file (GET) or 404.
struct RouteInfo {
  std::string_view path;
  RouteKind kind;
};
constexpr RouteInfo kRoutes[] = {
    {"/health", RouteKind::kHealth},
    {"/v1/models", RouteKind::kModels},
    {"/models", RouteKind::kModels},
    {"/metrics", RouteKind::kMetrics},
    {"/v1/chat/completions", RouteKind::kChat},
    {"/chat/completions", RouteKind::kChat},
    {"/v1/completions", RouteKind::kCompletions},
    {"/completions", RouteKind::kCompletions},
    {"/tokenize", RouteKind::kTokenize},
    {"/detokenize", RouteKind::kDetokenize},
    {"/v1/render", RouteKind::kRender},
};

const RouteInfo* FindRoute(std::string_view path) {
  for (const RouteInfo& r : kRoutes) {
    if (r.path == path) return &r;
  }
  return nullptr;
}

// Outside the coroutines: GCC 12 miscompiles braced initialisers with string literals there.
std::string ModelsJson(const ModelContext* ctx) {
  json::array data;
  if (ctx != nullptr) {
    // `meta` is for the web UI's model details (llama-server also puts a `meta` object
    // here): the served context length, whether images are accepted, and the families.
    const models::VisionModel* vision = ctx->vision.model.get();
    json::object meta{{"n_ctx", ctx->engine->config().max_context},
                      {"n_ctx_train", ctx->model->config().context_length},
                      {"arch", ctx->model->config().arch},
                      {"vision", vision != nullptr},
                      {"documents", vision != nullptr && ctx->vision.renderer != nullptr}};
    if (vision != nullptr) meta["projector"] = vision->config().projector_type;
    data.push_back(json::object{{"id", ctx->served_id()}, {"object", "model"},
                                {"created", ctx->created_unix}, {"owned_by", "vlserve"},
                                {"meta", std::move(meta)}});
  }
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

// Only answers that depend on nothing but the body and the model may be replayed: greedy or
// seeded sampling, and media whose bytes are in the body (a file:// image may change).
bool Cacheable(const ChatRequest& chat) {
  if (chat.logprobs >= 0) return false;  // the cache keeps the text only
  if (chat.sampling.temperature >= 1e-5f && !chat.seed_given) return false;
  for (const MediaRef& m : chat.media) {
    if (m.kind == MediaRef::Kind::kImageUrl && !m.url.starts_with("data:")) return false;
  }
  return true;
}

std::string FileStamp(const std::string& path) {
  if (path.empty()) return "-";
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
  return fmt::format("{}:{}:{}", path, size, static_cast<int64_t>(mtime));
}

// The terminal event a cached answer is replayed as: the stored text and usage, this
// request's server stages, and no engine work (prefill/decode 0).
engine::Event CachedEvent(const CachedResponse& hit, engine::RequestTimings timings,
                          engine::TimePoint arrival) {
  engine::Event e;
  e.kind = engine::Event::Kind::kFinished;
  e.finish_reason =
      hit.finish_reason == "length" ? engine::FinishReason::kLength : engine::FinishReason::kStop;
  e.usage.prompt_tokens = hit.prompt_tokens;
  e.usage.completion_tokens = hit.completion_tokens;
  e.usage.cached_tokens = hit.cached_tokens;
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(engine::SteadyClock::now() - arrival).count();
  timings.queue_ms = 0;
  timings.prefill_ms = 0;
  timings.decode_ms = 0;
  timings.ttft_ms = elapsed_ms;
  timings.e2e_ms = elapsed_ms;
  e.timings = timings;
  return e;
}

}  // namespace

std::string Server::ResponseCacheIdentity() const {
  const ModelContext& ctx = *ctx_;
  return fmt::format(
      "id={}|text={}|mmproj={}|builtin_dir={}|template={}|default_max_tokens={}|"
      "max_context={}|kv_tokens={}",
      ctx.id, FileStamp(config_.model_path), FileStamp(config_.mmproj_path),
      config_.model_path.empty() ? config_.default_model_dir : "", ctx.chat_template->name,
      config_.default_max_tokens, config_.engine.max_context, config_.engine.kv_tokens);
}

void Server::StoreResponse(const std::string& cache_key, const std::string& text,
                           const engine::Event& terminal) {
  if (cache_key.empty() || terminal.kind != engine::Event::Kind::kFinished) return;
  if (terminal.finish_reason != engine::FinishReason::kStop &&
      terminal.finish_reason != engine::FinishReason::kLength) {
    return;  // cancelled or past its deadline: not the whole answer
  }
  CachedResponse value;
  value.text = text;
  value.finish_reason = FinishReasonJsonName(terminal.finish_reason);
  value.prompt_tokens = terminal.usage.prompt_tokens;
  value.completion_tokens = terminal.usage.completion_tokens;
  value.cached_tokens = terminal.usage.cached_tokens;
  response_cache_.Insert(cache_key, std::move(value));
}

asio::awaitable<void> Server::Json(Connection& conn, int status, std::string body) {
  co_await conn.Write(static_cast<http::status>(status), "application/json", std::move(body));
}

asio::awaitable<void> Server::Error(Connection& conn, const HttpError& error) {
  co_await conn.WriteError(error);
}

bool Server::Authorized(const IncomingRequest& req) const {
  return api_keys_.empty() || CallerKey(req) != nullptr;
}

const std::string* Server::CallerKey(const IncomingRequest& req) const {
  const auto got = req.message[http::field::authorization];
  const std::string* match = nullptr;
  // Every key is compared, each in constant time: the time does not tell which matched.
  for (const std::string& key : api_keys_) {
    const std::string expected = "Bearer " + key;
    if (got.size() == expected.size() &&
        CRYPTO_memcmp(got.data(), expected.data(), expected.size()) == 0) {
      match = &key;
    }
  }
  return match;
}

std::string Server::CachePartitionOf(const IncomingRequest& req,
                                     std::string_view cache_salt) const {
  const std::string* key =
      cache_isolation_ == CacheIsolation::kApiKey ? CallerKey(req) : nullptr;
  return CachePartition(cache_isolation_, key != nullptr ? *key : std::string_view(),
                        cache_salt);
}

asio::awaitable<void> Server::Handle(Connection& conn, IncomingRequest& req) {
  const std::string path(PathOf(req.message.target()));
  const http::verb method = req.message.method();
  const RouteInfo* route = FindRoute(path);
  // The web UI's files are public, as llama-server's are: the page asks for the key and
  // sends it with its API calls. Every API route (and any other method) needs the key.
  const bool is_static = route == nullptr && (method == http::verb::get ||
                                              method == http::verb::head);
  if (route != nullptr && route->kind == RouteKind::kHealth) {
    // Public: a load balancer probes it without the key.
  } else if (!is_static && !Authorized(req)) {
    co_await Error(conn, UnauthorizedError());
    metrics_.CountRequest(401);
    co_return;
  }
  if (is_static) {
    co_await HandleStatic(conn, req);
    co_return;
  }
  if (route == nullptr) {
    co_await Error(conn, RouteNotFoundError(path));
    metrics_.CountRequest(conn.last_status());
    co_return;
  }
  const bool get_route = route->kind == RouteKind::kHealth ||
                         route->kind == RouteKind::kModels || route->kind == RouteKind::kMetrics;
  const bool method_ok = get_route ? method == http::verb::get || method == http::verb::head
                                   : method == http::verb::post;
  if (!method_ok) {
    conn.AddResponseHeader("Allow", get_route ? "GET, HEAD" : "POST");
    co_await Error(conn, MethodNotAllowedError(req.message.method_string(), path));
    metrics_.CountRequest(conn.last_status());
    co_return;
  }
  switch (route->kind) {
    case RouteKind::kHealth:
      co_await HandleHealth(conn);
      co_return;
    case RouteKind::kModels:
      co_await Json(conn, 200, ModelsJson(ready_ ? ctx_.get() : nullptr));
      co_return;
    case RouteKind::kMetrics:
      co_await HandleMetrics(conn);
      co_return;
    default:
      break;
  }
  if (!ready_) {
    co_await Error(conn, HttpErrorFromStatus(UnavailableError(
                             "the model is still loading; retry when GET /health returns 200")));
  } else if (route->kind == RouteKind::kTokenize) {
    co_await HandleTokenize(conn, req);
  } else if (route->kind == RouteKind::kDetokenize) {
    co_await HandleDetokenize(conn, req);
  } else if (route->kind == RouteKind::kRender) {
    co_await HandleRender(conn, req);
  } else {
    co_await HandleChat(conn, req, route->kind == RouteKind::kCompletions);
  }
  metrics_.CountRequest(conn.last_status());
}

asio::awaitable<void> Server::HandleHealth(Connection& conn) {
  if (ready_) {
    co_await Json(conn, 200, std::string(R"({"status":"ok"})"));
    co_return;
  }
  const Status s = load_status();
  std::string body = R"({"status":"loading"})";
  if (!s.ok()) {
    body = json::serialize(json::object{{"status", "error"}, {"error", s.message()}});
  }
  co_await Json(conn, 503, std::move(body));
}

asio::awaitable<void> Server::HandleMetrics(Connection& conn) {
  const auto stats = engine_stats();
  const ResponseCacheStats cache_stats = response_cache_.Stats();
  const EncoderCache* encoder =
      ready_ && ctx_->vision.cache != nullptr ? ctx_->vision.cache.get() : nullptr;
  const EncoderCacheStats encoder_stats = encoder != nullptr ? encoder->Stats()
                                                             : EncoderCacheStats{};
  co_await conn.Write(http::status::ok, "text/plain; version=0.0.4",
                      metrics_.Render(stats ? &*stats : nullptr,
                                      response_cache_.enabled() ? &cache_stats : nullptr,
                                      encoder != nullptr ? &encoder_stats : nullptr));
}

asio::awaitable<void> Server::JsonFromWorkers(Connection& conn,
                                              std::function<StatusOr<std::string>()> work) {
  // CPU work on a request body (tokenizing, detokenizing, rendering, JPEG encoding) runs on
  // the worker pool, not the I/O threads that /health and every other connection share.
  StatusOr<std::string> answer = InternalError("not run");
  co_await asio::co_spawn(
      workers_, [&]() -> asio::awaitable<void> { answer = work(); co_return; }, use_awaitable);
  if (!answer.ok()) {
    co_await Error(conn, HttpErrorFromStatus(answer.status()));
    co_return;
  }
  co_await Json(conn, 200, std::move(*answer));
}

asio::awaitable<void> Server::HandleTokenize(Connection& conn, IncomingRequest& req) {
  co_await JsonFromWorkers(conn, [&]() -> StatusOr<std::string> {
    auto parsed = ParseTokenizeRequest(req.message.body());
    if (!parsed.ok()) return parsed.status();
    return TokenizeJson(*parsed, *ctx_->tokenizer);
  });
}

asio::awaitable<void> Server::HandleDetokenize(Connection& conn, IncomingRequest& req) {
  co_await JsonFromWorkers(conn, [&]() -> StatusOr<std::string> {
    auto parsed = ParseDetokenizeRequest(req.message.body());
    if (!parsed.ok()) return parsed.status();
    return DetokenizeJson(*parsed, *ctx_->tokenizer);
  });
}

asio::awaitable<void> Server::HandleRender(Connection& conn, IncomingRequest& req) {
  co_await JsonFromWorkers(conn, [&] { return RenderPreviewJson(req.message.body(), *ctx_); });
}

asio::awaitable<void> Server::HandleStatic(Connection& conn, IncomingRequest& req) {
  std::string path(PathOf(req.message.target()));
  if (path == "/") path = "/index.html";
  if (const WebAsset* asset = FindWebAsset(path.substr(1)); asset != nullptr) {
    {
      co_await conn.Write(http::status::ok, std::string(asset->mime),
                                  std::string(asset->data, asset->size));
      co_return;
    }
  }
  if (path == "/index.html") {
    {
      co_await conn.Write(http::status::ok, "text/html; charset=utf-8",
                                  std::string(PlaceholderPage()));
      co_return;
    }
  }
  co_await Error(conn, RouteNotFoundError(path));
}

asio::awaitable<void> Server::HandleChat(Connection& conn, IncomingRequest& req,
                                         bool text_completion) {
  const ModelContext& ctx = *ctx_;
  engine::Request request;
  request.arrival = req.arrival;
  request.timings.http_read_ms = req.read_ms;
  request.id = fmt::format("{}-{:016x}", text_completion ? "cmpl" : "chatcmpl",
                           next_id_.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  conn.NameRequest(request.id);  // log line, X-Request-Id and body share one id
  bool stream = false, include_usage = false, parsed = false;
  int32_t logprobs = -1;
  std::string echo;  // text completion with echo: the prompt's text
  std::string cache_key;  // "" = not cacheable (or the cache is off)
  std::optional<CachedResponse> hit;
  // Parsing, cache lookup, media decode and tokenization run on the worker pool, not the
  // I/O threads. A response-cache hit skips media and tokenization.
  const Status prepared = co_await asio::co_spawn(
      workers_,
      [&]() -> asio::awaitable<Status> {
        Stopwatch parse;
        if (text_completion) {  // POST /v1/completions: no chat template, never cached
          auto completion = ParseCompletionRequest(req.message.body());
          request.timings.parse_ms = parse.ElapsedMs();
          if (!completion.ok()) co_return completion.status();
          completion->options.cache_salt =
              CachePartitionOf(req, completion->options.cache_salt);
          stream = completion->options.stream;
          include_usage = completion->options.include_usage;
          logprobs = completion->options.logprobs;
          co_return PrepareCompletion(*completion, ctx, {.max_tokens = config_.default_max_tokens},
                                      &request, &echo);
        }
        auto chat = ParseChatRequest(req.message.body(),
                                     {.max_media_parts = config_.max_media_parts});
        request.timings.parse_ms = parse.ElapsedMs();
        if (!chat.ok()) co_return chat.status();
        // From here on the salt names the whole partition: every cache key below uses it.
        chat->cache_salt = CachePartitionOf(req, chat->cache_salt);
        parsed = true;
        stream = chat->stream;
        include_usage = chat->include_usage;
        logprobs = chat->logprobs;
        if (response_cache_.enabled() && Cacheable(*chat)) {
          auto key = ResponseCacheKeyForBody(req.message.body(), ResponseCacheIdentity(),
                                             chat->cache_salt);
          if (key.ok()) {
            cache_key = std::move(*key);
            hit = response_cache_.Lookup(cache_key);
            if (hit) co_return OkStatus();
          }
        }
        co_return PrepareChat(*chat, ctx, config_.media,
                              {.max_tokens = config_.default_max_tokens}, &request);
      },
      use_awaitable);
  if (parsed && response_cache_.enabled()) {
    conn.AddResponseHeader("X-Cache", hit ? "hit" : "miss");
  }
  if (!prepared.ok()) {
      co_await Error(conn, HttpErrorFromStatus(prepared));
      co_return;
    }
  const CompletionMeta meta{
      .id = request.id,
      .model = ctx.served_id(),
      .created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count(),
      .text_completion = text_completion,
      .logprobs_tokenizer = logprobs >= 0 ? ctx.tokenizer.get() : nullptr,
      .echo = std::move(echo)};
  if (hit) {
    co_await AnswerFromCache(conn, *hit, meta, stream, include_usage, req.arrival,
                             request.timings);
    co_return;
  }
  auto submitted = ctx.engine->Submit(std::move(request));
  if (!submitted.ok()) {
      co_await Error(conn, HttpErrorFromStatus(submitted.status()));
      co_return;
    }
  std::shared_ptr<engine::RequestStream> s = *submitted;
  s->SetNotify(conn.MakeNotifier());
  conn.StartWatchingPeer();
  if (stream) {
    co_await StreamChat(conn, s, meta, include_usage, req.arrival, cache_key);
  } else {
    co_await AnswerChat(conn, s, meta, req.arrival, cache_key);
  }
  s->SetNotify([] {});
  if (!s->ended()) s->Cancel();
  co_await conn.StopWatchingPeer();
}

void Server::Finished(const engine::Event& terminal, const std::string& id,
                      engine::TimePoint arrival) {
  metrics_.ObserveTimings(terminal.timings);
  metrics_.AddTokens(terminal.usage.prompt_tokens, terminal.usage.completion_tokens);
  if (trace_ != nullptr) trace_->AddRequest(id, arrival, terminal.timings);
}

asio::awaitable<void> Server::AnswerFromCache(Connection& conn, const CachedResponse& hit,
                                              const CompletionMeta& meta, bool stream,
                                              bool include_usage, engine::TimePoint arrival,
                                              const engine::RequestTimings& timings) {
  const engine::Event e = CachedEvent(hit, timings, arrival);
  conn.access().SetGeneration(e.usage, e.timings);
  if (!stream) {
    co_await Json(conn, 200, CompletionJson(meta, hit.text, e));
    co_return;
  }
  // The shape of a live stream: role + content chunk (empty content for an empty answer),
  // the final chunk, the usage chunk when asked, [DONE].
  if (!co_await conn.StartEventStream()) co_return;
  std::string out = DeltaChunk(meta, hit.text, /*first=*/true);
  out += FinalChunks(meta, e, include_usage);
  if (!co_await conn.WriteChunk(std::move(out))) {
    conn.Close();
    co_return;
  }
  co_await conn.EndEventStream();
}

asio::awaitable<void> Server::AnswerChat(Connection& conn,
                                         std::shared_ptr<engine::RequestStream> s,
                                         const CompletionMeta& meta, engine::TimePoint arrival,
                                         const std::string& cache_key) {
  std::string text;
  std::vector<engine::TokenLogprob> logprobs;  // empty unless the request asked
  std::vector<engine::Event> events;
  for (;;) {
    events.clear();
    s->Poll(&events);
    for (engine::Event& e : events) {
      text += e.text;
      logprobs.insert(logprobs.end(), std::make_move_iterator(e.logprobs.begin()),
                      std::make_move_iterator(e.logprobs.end()));
      if (e.kind == Kind::kDelta) continue;
      Finished(e, meta.id, arrival);
      conn.access().SetGeneration(e.usage, e.timings);
      if (e.kind == Kind::kError) {
        co_await Error(conn, HttpErrorFromStatus(e.error));
      } else if (e.finish_reason == engine::FinishReason::kDeadline &&
                 e.usage.completion_tokens == 0) {
        co_await Error(conn, HttpErrorFromStatus(DeadlineExceededError(
                                 "the request's timeout passed before it started")));
      } else {
        StoreResponse(cache_key, text, e);
        co_await Json(conn, 200, CompletionJson(meta, text, e, logprobs));
      }
      co_return;
    }
    if (conn.peer_closed()) {
      s->Cancel();
      conn.Close();
      co_return;
    }
    co_await conn.WaitNotify(std::chrono::milliseconds(250));
  }
}

asio::awaitable<void> Server::StreamChat(Connection& conn,
                                         std::shared_ptr<engine::RequestStream> s,
                                         const CompletionMeta& meta, bool include_usage,
                                         engine::TimePoint arrival,
                                         const std::string& cache_key) {
  if (!co_await conn.StartEventStream()) {
    s->Cancel();
    co_return;
  }
  bool first = true, done = false;
  std::string text;  // the whole answer, kept only for the response cache
  std::optional<engine::TimePoint> last_write;
  std::vector<engine::Event> events;
  while (!done) {
    events.clear();
    s->Poll(&events);
    if (events.empty()) {
      if (conn.peer_closed()) break;
      co_await conn.WaitNotify(std::chrono::milliseconds(250));
      continue;
    }
    std::string out;
    for (engine::Event& e : events) {
      if (!cache_key.empty()) text += e.text;
      // The role goes with the first text; an answer that ends with no text still gets it,
      // in a chunk of empty content, before the final chunk.
      // A chunk also carries tokens whose text is held back (logprobs asked).
      if (!e.text.empty() || !e.logprobs.empty() || (first && e.kind == Kind::kFinished)) {
        out += DeltaChunk(meta, e.text, first, e.logprobs);
        first = false;
      }
      if (e.kind == Kind::kDelta) continue;
      done = true;
      Finished(e, meta.id, arrival);
      conn.access().SetGeneration(e.usage, e.timings);
      StoreResponse(cache_key, text, e);
      out += e.kind == Kind::kError ? SseError(ErrorJson(HttpErrorFromStatus(e.error)))
                                    : FinalChunks(meta, e, include_usage);
    }
    if (out.empty()) continue;
    if (last_write) {
      metrics_.ObserveInterToken(
          std::chrono::duration<double>(engine::SteadyClock::now() - *last_write).count());
    }
    last_write = engine::SteadyClock::now();
    if (!co_await conn.WriteChunk(std::move(out))) break;
  }
  if (!done) {
    s->Cancel();
    conn.Close();
    co_return;
  }
  co_await conn.EndEventStream();
}

}  // namespace vlserve::server
