// The routes of Server: dispatch, authentication, chat completions (JSON and SSE),
// tokenize, models, health, metrics and static files.
#include <fmt/format.h>
#include <openssl/crypto.h>

#include <boost/json.hpp>
#include <filesystem>

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


// Outside the coroutines: GCC 12 miscompiles braced initialisers with string literals there.
std::string ModelsJson(const ModelContext* ctx) {
  json::array data;
  if (ctx != nullptr) {
    data.push_back(json::object{{"id", ctx->id}, {"object", "model"},
                                {"created", ctx->created_unix}, {"owned_by", "vlserve"}});
  }
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

// Only answers that depend on nothing but the body and the model may be replayed: greedy or
// seeded sampling, and media whose bytes are in the body (a file:// image may change).
bool Cacheable(const ChatRequest& chat) {
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
  if (config_.api_key.empty()) return true;
  const std::string expected = "Bearer " + config_.api_key;
  const auto got = req.message[http::field::authorization];
  return got.size() == expected.size() &&
         CRYPTO_memcmp(got.data(), expected.data(), expected.size()) == 0;
}

asio::awaitable<void> Server::Handle(Connection& conn, IncomingRequest& req) {
  const std::string path(PathOf(req.message.target()));
  const http::verb method = req.message.method();
  if (path == "/health") {
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
    co_return;
  }
  if (!Authorized(req)) {
    co_await Error(conn, UnauthorizedError());
    metrics_.CountRequest(401);
    co_return;
  }
  const bool api = path == "/v1/chat/completions" || path == "/chat/completions" ||
                   path == "/tokenize" || path == "/v1/render";
  if (api && method != http::verb::post) {
    co_await Error(conn, MethodNotAllowedError(req.message.method_string(), path));
  } else if (api && !ready_) {
    co_await Error(conn, HttpErrorFromStatus(UnavailableError(
                             "the model is still loading; retry when GET /health returns 200")));
  } else if (path == "/tokenize") {
    co_await HandleTokenize(conn, req);
  } else if (path == "/v1/render") {
    co_await HandleRender(conn, req);
  } else if (api) {
    co_await HandleChat(conn, req);
  } else if (path == "/v1/models" || path == "/models") {
    co_await Json(conn, 200, ModelsJson(ready_ ? ctx_.get() : nullptr));
    co_return;
  } else if (path == "/metrics") {
    const auto stats = engine_stats();
    const ResponseCacheStats cache_stats = response_cache_.Stats();
    const EncoderCache* encoder =
        ready_ && ctx_->vision.cache != nullptr ? ctx_->vision.cache.get() : nullptr;
    const EncoderCacheStats encoder_stats = encoder != nullptr ? encoder->Stats()
                                                               : EncoderCacheStats{};
    {
      co_await conn.Write(http::status::ok, "text/plain; version=0.0.4",
                          metrics_.Render(stats ? &*stats : nullptr,
                                          response_cache_.enabled() ? &cache_stats : nullptr,
                                          encoder != nullptr ? &encoder_stats : nullptr));
      co_return;
    }
  } else if (method == http::verb::get || method == http::verb::head) {
    {
      co_await HandleStatic(conn, req);
      co_return;
    }
  } else {
    {
      co_await Error(conn, RouteNotFoundError(path));
      co_return;
    }
  }
  metrics_.CountRequest(conn.last_status());
}

asio::awaitable<void> Server::HandleTokenize(Connection& conn, IncomingRequest& req) {
  auto parsed = ParseTokenizeRequest(req.message.body());
  if (!parsed.ok()) {
      co_await Error(conn, HttpErrorFromStatus(parsed.status()));
      co_return;
    }
  co_await Json(conn, 200, TokenizeJson(*parsed, *ctx_->tokenizer));
}

asio::awaitable<void> Server::HandleRender(Connection& conn, IncomingRequest& req) {
  // Rendering and JPEG encoding are CPU work: the worker pool, not the I/O threads.
  std::string answer;
  const Status status = co_await asio::co_spawn(
      workers_,
      [&]() -> asio::awaitable<Status> {
        auto json = RenderPreviewJson(req.message.body(), *ctx_);
        if (!json.ok()) co_return json.status();
        answer = std::move(*json);
        co_return OkStatus();
      },
      use_awaitable);
  if (!status.ok()) {
    co_await Error(conn, HttpErrorFromStatus(status));
    co_return;
  }
  co_await Json(conn, 200, std::move(answer));
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

asio::awaitable<void> Server::HandleChat(Connection& conn, IncomingRequest& req) {
  const ModelContext& ctx = *ctx_;
  engine::Request request;
  request.arrival = req.arrival;
  request.timings.http_read_ms = req.read_ms;
  request.id = fmt::format("chatcmpl-{:016x}", next_id_.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  bool stream = false, include_usage = false, parsed = false;
  std::string cache_key;  // "" = not cacheable (or the cache is off)
  std::optional<CachedResponse> hit;
  // Parsing, cache lookup, media decode and tokenization run on the worker pool, not the
  // I/O threads. A response-cache hit skips media and tokenization.
  const Status prepared = co_await asio::co_spawn(
      workers_,
      [&]() -> asio::awaitable<Status> {
        Stopwatch parse;
        auto chat = ParseChatRequest(req.message.body(),
                                     {.max_media_parts = config_.max_media_parts});
        request.timings.parse_ms = parse.ElapsedMs();
        if (!chat.ok()) co_return chat.status();
        parsed = true;
        stream = chat->stream;
        include_usage = chat->include_usage;
        if (response_cache_.enabled() && Cacheable(*chat)) {
          auto key = ResponseCacheKeyForBody(req.message.body(), ResponseCacheIdentity());
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
  const CompletionMeta meta{request.id, ctx.id,
                            std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()};
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
  if (!stream) {
    co_await Json(conn, 200, CompletionJson(meta, hit.text, e));
    co_return;
  }
  // The shape of a live stream: role + content chunk (none for an empty answer), the
  // final chunk, the usage chunk when asked, [DONE].
  if (!co_await conn.StartEventStream()) co_return;
  std::string out;
  if (!hit.text.empty()) out = DeltaChunk(meta, hit.text, /*first=*/true);
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
  std::vector<engine::Event> events;
  for (;;) {
    events.clear();
    s->Poll(&events);
    for (engine::Event& e : events) {
      text += e.text;
      if (e.kind == Kind::kDelta) continue;
      Finished(e, meta.id, arrival);
      if (e.kind == Kind::kError) {
        co_await Error(conn, HttpErrorFromStatus(e.error));
      } else if (e.finish_reason == engine::FinishReason::kDeadline &&
                 e.usage.completion_tokens == 0) {
        co_await Error(conn, HttpErrorFromStatus(DeadlineExceededError(
                                 "the request's timeout passed before it started")));
      } else {
        StoreResponse(cache_key, text, e);
        co_await Json(conn, 200, CompletionJson(meta, text, e));
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
      if (!e.text.empty()) {
        out += DeltaChunk(meta, e.text, first);
        first = false;
      }
      if (e.kind == Kind::kDelta) continue;
      done = true;
      Finished(e, meta.id, arrival);
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
