// The HTTP/1.1 transport: Boost.Beast on an Asio io_context run by a small thread pool.
// Each connection is one C++20 coroutine on its own strand: read a request (header, then
// body with a size limit), hand it to the Handler, loop while keep-alive. The Handler
// answers through Connection: one full response, or a chunked text/event-stream whose
// writes are woken by engine notifications (Connection::MakeNotifier).
//
// Bounds: at most max_connections open connections (a new one closes the oldest idle
// keep-alive connection, or gets a 503 when none is idle), one request in flight per
// connection, read/write timeouts on every socket operation, at most kMaxHeaderBytes of
// header (and of chunked trailer) per request, and max_inflight_body_mb of request bodies
// held by all connections together (503 + Retry-After above it).
//
// HTTP/1.1 and 1.0: Connection: close (and 1.0 without keep-alive) closes after the
// response; HEAD gets the headers only; malformed requests get 400 / 414 / 431 with a
// JSON error body before the close.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/request.h"
#include "server/access_log.h"
#include "server/http_error.h"

namespace vlserve::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct HttpConfig {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port (HttpServer::port() reports it)
  int threads = 2;
  int max_connections = 512;
  size_t max_body_bytes = 64u << 20;
  int max_inflight_body_mb = 1024;  // request bodies held by all connections together
  std::chrono::seconds read_timeout{60};   // per request (header + body), also keep-alive idle
  std::chrono::seconds write_timeout{60};  // per write
};

struct IncomingRequest {
  http::request<http::string_body> message;
  engine::TimePoint arrival;  // header received
  double read_ms = 0;         // reading the body
};

class Connection {
 public:
  Connection(beast::tcp_stream stream, const HttpConfig& config);

  // A complete response (Content-Length, keep-alive as the request asked unless Close()).
  asio::awaitable<bool> Write(http::status status, std::string content_type, std::string body,
                              std::vector<std::pair<std::string, std::string>> headers = {});
  asio::awaitable<bool> WriteError(const HttpError& error);

  // Server-sent events: header (chunked), chunks, the terminating chunk. A write that fails
  // (client gone, timeout) returns false; the stream is then dead.
  asio::awaitable<bool> StartEventStream();
  asio::awaitable<bool> WriteChunk(std::string data);
  asio::awaitable<void> EndEventStream();

  // A callable for any thread (e.g. the engine's RequestStream::SetNotify) that wakes
  // WaitNotify. Cheap; never blocks.
  std::function<void()> MakeNotifier();
  // Until notified, `max` passes, or the peer disconnects (while watching).
  asio::awaitable<void> WaitNotify(std::chrono::milliseconds max);
  // While a response is being prepared, background reads notice a client disconnect
  // (bytes the client pipelines meanwhile are kept for the next request).
  void StartWatchingPeer();
  asio::awaitable<void> StopWatchingPeer();
  // True once the client is gone. A client that only half-closed (shutdown(SHUT_WR) after
  // its request) still reads the answer: on its FIN an HTTP/1.1 non-streaming request
  // gets one interim "100 Continue" (clients must accept unexpected 1xx), which a fully
  // closed socket answers with a reset. HTTP/1.0 has no interim responses: FIN = gone.
  bool peer_closed();

  // Extra headers for every response to the current request (full, error or event
  // stream), e.g. X-Cache. Cleared when the next request on the connection is read.
  void AddResponseHeader(std::string name, std::string value) {
    extra_headers_.emplace_back(std::move(name), std::move(value));
  }

  // The current request's access log line (request id, trace, usage), logged when its
  // handler returns. Handlers that generate fill in the usage (SetGeneration).
  AccessRecord& access() { return access_; }
  // Names the request `id` (e.g. its chat completion id) in the log and the X-Request-Id
  // header, unless the client named it.
  void NameRequest(std::string id);

  void Close() { keep_alive_ = false; }
  bool keep_alive() const { return keep_alive_; }
  int last_status() const { return last_status_; }
  asio::any_io_executor executor() { return stream_.get_executor(); }

 private:
  friend class HttpServer;
  struct Wake;
  asio::awaitable<bool> WriteMessage(http::response<http::string_body>& res);
  void WatchPeer();
  void SetResponseConnection(http::fields& header, bool chunked_ok) const;
  // Starts the access record of a request (header fields "" when unknown) and sets its
  // X-Request-Id and traceparent response headers.
  void BeginRequest(std::string_view method, std::string_view target,
                    std::string_view x_request_id, std::string_view traceparent);
  // Logs the access record with the status written and the time since `start`.
  void FinishRequest(engine::TimePoint start);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const HttpConfig& config_;
  std::shared_ptr<Wake> wake_;
  bool keep_alive_ = true;
  bool request_keep_alive_ = true;
  bool linger_ = false;  // drain unread input before closing (after a 413)
  bool head_ = false;    // the request is HEAD: headers only
  bool http10_ = false;  // the request is HTTP/1.0: no chunked encoding, no 1xx
  bool probed_ = false;  // the half-close probe was sent
  int last_status_ = 0;
  std::string client_ = "-";  // peer ip:port
  AccessRecord access_;
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  std::unique_ptr<http::response<http::empty_body>> sse_header_;
  std::unique_ptr<http::response_serializer<http::empty_body>> sse_serializer_;
};

class HttpServer {
 public:
  using Handler = std::function<asio::awaitable<void>(Connection&, IncomingRequest&)>;

  // Binds and starts the io threads. InvalidArgument for a bad host, Unavailable when the
  // port is taken.
  static StatusOr<std::unique_ptr<HttpServer>> Start(HttpConfig config, Handler handler);
  ~HttpServer();  // Stop()

  int port() const { return port_; }
  int open_connections() const { return open_connections_.load(); }
  int64_t inflight_body_bytes() const { return inflight_body_bytes_.load(); }
  // Stops accepting, closes connections, joins the io threads. Idempotent.
  void Stop();

 private:
  class BodyReservation;
  struct IdleEntry;
  HttpServer(HttpConfig config, Handler handler);
  asio::awaitable<void> Accept();
  asio::awaitable<void> Session(asio::ip::tcp::socket socket);
  asio::awaitable<bool> ReadRequest(Connection& conn, IncomingRequest* req,
                                    BodyReservation* body);
  // Waits (up to read_timeout) for the first byte of the next request, listed as idle.
  asio::awaitable<bool> WaitForRequest(Connection& conn);
  // Closes the longest-idle connection to make room; false when none is idle.
  bool EvictOldestIdle();

  HttpConfig config_;
  Handler handler_;
  // Before ioc_: destroying ioc_ destroys the sessions' frames, which still touch these.
  std::atomic<int> open_connections_{0};
  std::atomic<int64_t> inflight_body_bytes_{0};
  std::mutex idle_mu_;
  std::list<IdleEntry*> idle_;  // oldest first
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
  int port_ = 0;
};

}  // namespace vlserve::server
