// The HTTP/1.1 transport: Boost.Beast on an Asio io_context run by a small thread pool.
// Each connection is one C++20 coroutine on its own strand: read a request (header, then
// body with a size limit), hand it to the Handler, loop while keep-alive. The Handler
// answers through Connection: one full response, or a chunked text/event-stream whose
// writes are woken by engine notifications (Connection::MakeNotifier).
//
// Bounds: at most max_connections open connections (more get a 503 and are closed), one
// request in flight per connection, read/write timeouts on every socket operation.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/request.h"
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
  // While an event stream runs, a background read notices a client disconnect.
  void StartWatchingPeer();
  asio::awaitable<void> StopWatchingPeer();
  bool peer_closed() const;

  // Extra headers for every response to the current request (full, error or event
  // stream), e.g. X-Cache. Cleared when the next request on the connection is read.
  void AddResponseHeader(std::string name, std::string value) {
    extra_headers_.emplace_back(std::move(name), std::move(value));
  }

  void Close() { keep_alive_ = false; }
  bool keep_alive() const { return keep_alive_; }
  int last_status() const { return last_status_; }
  asio::any_io_executor executor() { return stream_.get_executor(); }

 private:
  friend class HttpServer;
  struct Wake;
  asio::awaitable<bool> WriteMessage(http::response<http::string_body>& res);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const HttpConfig& config_;
  std::shared_ptr<Wake> wake_;
  bool keep_alive_ = true;
  bool request_keep_alive_ = true;
  bool linger_ = false;  // drain unread input before closing (after a 413)
  int last_status_ = 0;
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
  // Stops accepting, closes connections, joins the io threads. Idempotent.
  void Stop();

 private:
  HttpServer(HttpConfig config, Handler handler);
  asio::awaitable<void> Accept();
  asio::awaitable<void> Session(asio::ip::tcp::socket socket);
  asio::awaitable<bool> ReadRequest(Connection& conn, IncomingRequest* req);

  HttpConfig config_;
  Handler handler_;
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<int> open_connections_{0};
  std::atomic<bool> stopped_{false};
  int port_ = 0;
};

}  // namespace vlserve::server
