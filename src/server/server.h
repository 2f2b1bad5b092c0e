// vlserve's OpenAI-compatible server: the HTTP transport (http_server.h), the served model
// and its engine (chat_service.h), metrics, tracing and the embedded web UI.
//
//   ASSIGN_OR_RETURN(auto server, server::Server::Start(config));  // listening already
//   server->WaitReady(...);   // model loaded and warmed: /health turns 200
//
// Routes (docs/api.md): POST /v1/chat/completions, GET /v1/models, GET /health,
// GET /metrics, POST /tokenize, POST /detokenize, POST /v1/render, GET / (web UI, public).
#pragma once

#include <atomic>
#include <random>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/status.h"
#include "cache/response_cache.h"
#include "server/cache_isolation.h"
#include "server/chat_service.h"
#include "server/config.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/trace.h"

namespace vlserve::server {

class Server {
 public:
  // Binds the port and starts answering (/health = 503 loading) at once; the model loads
  // and warms up on a background thread. Errors: bad flags, port in use, trace file.
  static StatusOr<std::unique_ptr<Server>> Start(ServerConfig config);
  ~Server();  // Stop()

  int port() const { return http_->port(); }
  // True once ready; false on timeout or when loading failed (see load_status()).
  bool WaitReady(std::chrono::milliseconds timeout);
  // Blocks until loading finished (ready or failed) and returns how it went.
  Status WaitLoaded();
  Status load_status() const;
  bool ready() const { return ready_.load(); }
  // Null until ready.
  std::optional<engine::EngineStats> engine_stats() const;
  const std::string& model_id() const;

  // Engine first (ends every stream), then HTTP. Idempotent.
  void Stop();

 private:
  explicit Server(ServerConfig config);
  void Load();
  StatusOr<std::unique_ptr<ModelContext>> LoadModel();
  Status WarmUp(ModelContext& ctx);

  // routes.cc
  asio::awaitable<void> Handle(Connection& conn, IncomingRequest& req);
  // Chat completions, or text completions (POST /v1/completions) when text_completion.
  asio::awaitable<void> HandleChat(Connection& conn, IncomingRequest& req,
                                   bool text_completion = false);
  // `cache_key` "" = the answer is not stored in the response cache.
  asio::awaitable<void> StreamChat(Connection& conn, std::shared_ptr<engine::RequestStream> s,
                                   const CompletionMeta& meta, bool include_usage,
                                   engine::TimePoint arrival, const std::string& cache_key);
  asio::awaitable<void> AnswerChat(Connection& conn, std::shared_ptr<engine::RequestStream> s,
                                   const CompletionMeta& meta, engine::TimePoint arrival,
                                   const std::string& cache_key);
  asio::awaitable<void> AnswerFromCache(Connection& conn, const CachedResponse& hit,
                                        const CompletionMeta& meta, bool stream,
                                        bool include_usage, engine::TimePoint arrival,
                                        const engine::RequestTimings& timings);
  void StoreResponse(const std::string& cache_key, const std::string& text,
                     const engine::Event& terminal);
  std::string ResponseCacheIdentity() const;
  asio::awaitable<void> HandleHealth(Connection& conn);
  asio::awaitable<void> HandleMetrics(Connection& conn);
  // Runs `work` on the worker pool and answers its JSON (200) or its error status.
  asio::awaitable<void> JsonFromWorkers(Connection& conn,
                                        std::function<StatusOr<std::string>()> work);
  asio::awaitable<void> HandleTokenize(Connection& conn, IncomingRequest& req);
  asio::awaitable<void> HandleDetokenize(Connection& conn, IncomingRequest& req);
  asio::awaitable<void> HandleRender(Connection& conn, IncomingRequest& req);
  asio::awaitable<void> HandleStatic(Connection& conn, IncomingRequest& req);
  asio::awaitable<void> Json(Connection& conn, int status, std::string body);
  asio::awaitable<void> Error(Connection& conn, const HttpError& error);
  bool Authorized(const IncomingRequest& req) const;
  // The --api-key entry the request's Authorization header carries; null if none.
  const std::string* CallerKey(const IncomingRequest& req) const;
  // The cache partition of a request sending `cache_salt` (cache_isolation.h).
  std::string CachePartitionOf(const IncomingRequest& req, std::string_view cache_salt) const;
  void Finished(const engine::Event& terminal, const std::string& id, engine::TimePoint arrival);

  ServerConfig config_;
  std::vector<std::string> api_keys_;  // from config_.api_key; empty = no authentication
  CacheIsolation cache_isolation_ = CacheIsolation::kNone;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<ModelContext> ctx_;  // set once (under mu_) when ready; never replaced
  std::atomic<bool> ready_{false};
  mutable std::mutex mu_;
  std::condition_variable loaded_cv_;
  bool loaded_ = false;  // loading finished, successfully or not
  Status load_status_;
  std::thread loader_;
  asio::thread_pool workers_{2};  // JSON parse, media decode, tokenization
  Metrics metrics_;
  ResponseCache response_cache_{static_cast<int64_t>(config_.response_cache_mb * 1048576)};
  std::unique_ptr<TraceWriter> trace_;
  // Completion ids: a random start per process, so ids from restarts and replicas do not
  // repeat in joined logs (the counter is mixed by a multiplicative hash in routes.cc).
  std::atomic<uint64_t> next_id_{std::random_device{}() | (uint64_t{std::random_device{}()} << 32)};
  std::atomic<bool> stopped_{false};
};

}  // namespace vlserve::server
