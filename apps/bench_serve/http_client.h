// A blocking HTTP/1.1 client (Boost.Beast) for `vlserve bench-serve`: plain http:// only,
// keep-alive, a deadline per request, and SSE events timestamped as they arrive.
// One HttpConnection is used by one thread at a time.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace vlserve::bench_serve {

struct Endpoint {
  std::string host;
  std::string port = "80";
  std::string target;  // the chat completions path, e.g. "/v1/chat/completions"
};

// "http://host[:port][/prefix]" -> Endpoint; target = prefix + "/v1/chat/completions"
// unless the path already ends in "/chat/completions". https:// is refused with a clear
// message (no TLS in the client).
StatusOr<Endpoint> ParseUrl(std::string_view url);

struct SseEvent {
  double t_ms = 0;   // since the request started, when the read that completed it ended
  std::string data;  // the payload after "data: "
};

struct HttpResult {
  int status = 0;                // HTTP status; 0 = no response (connect, write or read failed)
  std::string transport_error;   // why status is 0, or why the body ended early
  std::string x_cache;           // the X-Cache header ("hit" / "miss"), "" when absent
  std::string body;              // a non-streamed body (an error answer), capped at 64 KiB
  std::vector<SseEvent> events;  // text/event-stream bodies
  double first_byte_ms = -1;     // response header received
  double end_ms = 0;             // response complete (or failed)
};

class HttpConnection {
 public:
  explicit HttpConnection(Endpoint endpoint);
  ~HttpConnection();

  // POSTs `body` (JSON) to the endpoint and reads the whole response. Reuses the open
  // connection; a reused connection the server had already closed is reopened once,
  // transparently. Never throws.
  HttpResult Post(const std::string& body, const std::string& api_key,
                  std::chrono::milliseconds timeout);

 private:
  boost::system::error_code Connect(std::chrono::steady_clock::time_point deadline);
  template <typename Start>
  boost::system::error_code Run(Start start);
  void Close();
  bool ReadResponse(std::chrono::steady_clock::time_point deadline, int64_t start_ns,
                    HttpResult* r);

  Endpoint endpoint_;
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool open_ = false;
};

// Idle keep-alive connections shared by the request threads of a --rate run.
class ConnectionPool {
 public:
  explicit ConnectionPool(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}
  std::unique_ptr<HttpConnection> Acquire();
  void Release(std::unique_ptr<HttpConnection> connection);

 private:
  Endpoint endpoint_;
  std::mutex mu_;
  std::vector<std::unique_ptr<HttpConnection>> idle_;
};

}  // namespace vlserve::bench_serve
