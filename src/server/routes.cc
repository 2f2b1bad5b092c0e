// The routes of Server: dispatch, authentication, chat completions (JSON and SSE),
// tokenize, models, health, metrics and static files.
#include <fmt/format.h>
#include <openssl/crypto.h>

#include <boost/json.hpp>

#include "base/clock.h"
#include "base/log.h"
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

}  // namespace

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
                   path == "/tokenize";
  if (api && method != http::verb::post) {
    co_await Error(conn, MethodNotAllowedError(req.message.method_string(), path));
  } else if (api && !ready_) {
    co_await Error(conn, HttpErrorFromStatus(UnavailableError(
                             "the model is still loading; retry when GET /health returns 200")));
  } else if (path == "/tokenize") {
    co_await HandleTokenize(conn, req);
  } else if (api) {
    co_await HandleChat(conn, req);
  } else if (path == "/v1/models" || path == "/models") {
    co_await Json(conn, 200, ModelsJson(ready_ ? ctx_.get() : nullptr));
    co_return;
  } else if (path == "/metrics") {
    const auto stats = engine_stats();
    {
      co_await conn.Write(http::status::ok, "text/plain; version=0.0.4",
                                  metrics_.Render(stats ? &*stats : nullptr));
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
  bool stream = false, include_usage = false;
  // Parsing, media decode and tokenization run on the worker pool, not the I/O threads.
  const Status prepared = co_await asio::co_spawn(
      workers_,
      [&]() -> asio::awaitable<Status> {
        Stopwatch parse;
        auto chat = ParseChatRequest(req.message.body(),
                                     {.max_media_parts = config_.max_media_parts});
        request.timings.parse_ms = parse.ElapsedMs();
        if (!chat.ok()) co_return chat.status();
        stream = chat->stream;
        include_usage = chat->include_usage;
        co_return PrepareChat(*chat, ctx, config_.media,
                              {.max_tokens = config_.default_max_tokens}, &request);
      },
      use_awaitable);
  if (!prepared.ok()) {
      co_await Error(conn, HttpErrorFromStatus(prepared));
      co_return;
    }
  const CompletionMeta meta{request.id, ctx.id,
                            std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()};
  auto submitted = ctx.engine->Submit(std::move(request));
  if (!submitted.ok()) {
      co_await Error(conn, HttpErrorFromStatus(submitted.status()));
      co_return;
    }
  std::shared_ptr<engine::RequestStream> s = *submitted;
  s->SetNotify(conn.MakeNotifier());
  conn.StartWatchingPeer();
  if (stream) {
    co_await StreamChat(conn, s, meta, include_usage, req.arrival);
  } else {
    co_await AnswerChat(conn, s, meta, req.arrival);
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

asio::awaitable<void> Server::AnswerChat(Connection& conn,
                                         std::shared_ptr<engine::RequestStream> s,
                                         const CompletionMeta& meta, engine::TimePoint arrival) {
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
                                         engine::TimePoint arrival) {
  if (!co_await conn.StartEventStream()) {
    s->Cancel();
    co_return;
  }
  bool first = true, done = false;
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
      if (!e.text.empty()) {
        out += DeltaChunk(meta, e.text, first);
        first = false;
      }
      if (e.kind == Kind::kDelta) continue;
      done = true;
      Finished(e, meta.id, arrival);
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
