#include "bench_serve/http_client.h"

#include <algorithm>

#include "base/clock.h"
#include "bench_serve/sse.h"

namespace vlserve::bench_serve {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxBody = 64 << 10;

double MsSince(int64_t start_ns) { return (NowNanos() - start_ns) * 1e-6; }

}  // namespace

StatusOr<Endpoint> ParseUrl(std::string_view url) {
  constexpr std::string_view kHttp = "http://";
  if (url.substr(0, 8) == "https://") {
    return InvalidArgumentError("--url " + std::string(url) +
                                ": https is not supported (bench-serve speaks plain HTTP); "
                                "use http:// or put the benchmark next to the server");
  }
  if (url.substr(0, kHttp.size()) != kHttp) {
    return InvalidArgumentError("--url " + std::string(url) +
                                ": expected http://host[:port][/path]");
  }
  std::string_view rest = url.substr(kHttp.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string path(slash == std::string_view::npos ? "" : rest.substr(slash));
  Endpoint e;
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    e.host = std::string(authority.substr(0, colon));
    e.port = std::string(authority.substr(colon + 1));
    if (e.port.empty() || !std::all_of(e.port.begin(), e.port.end(), ::isdigit)) {
      return InvalidArgumentError("--url " + std::string(url) + ": bad port '" + e.port + "'");
    }
  } else {
    e.host = std::string(authority);
  }
  if (e.host.size() > 2 && e.host.front() == '[') e.host = e.host.substr(1, e.host.size() - 2);
  if (e.host.empty()) return InvalidArgumentError("--url " + std::string(url) + ": no host");
  while (!path.empty() && path.back() == '/') path.pop_back();
  constexpr std::string_view kRoute = "/chat/completions";
  const bool has_route = path.size() >= kRoute.size() &&
                         path.compare(path.size() - kRoute.size(), kRoute.size(), kRoute) == 0;
  e.target = has_route ? path : path + "/v1/chat/completions";
  return e;
}

HttpConnection::HttpConnection(Endpoint endpoint) : endpoint_(std::move(endpoint)), stream_(ioc_) {}

HttpConnection::~HttpConnection() { Close(); }

// Runs one asynchronous operation to completion on this connection's own io_context, so
// beast::tcp_stream's expiry (which only applies to async operations) bounds it.
template <typename Start>
boost::system::error_code HttpConnection::Run(Start start) {
  boost::system::error_code result = asio::error::would_block;
  start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
  ioc_.restart();
  ioc_.run();
  return result;
}

void HttpConnection::Close() {
  if (!open_) return;
  boost::system::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
  buffer_.clear();
  open_ = false;
}

boost::system::error_code HttpConnection::Connect(Clock::time_point deadline) {
  asio::ip::tcp::resolver resolver(ioc_);
  asio::ip::tcp::resolver::results_type endpoints;
  boost::system::error_code ec = Run([&](auto handler) {
    resolver.async_resolve(endpoint_.host, endpoint_.port,
                           [&endpoints, handler](boost::system::error_code e, auto results) {
                             endpoints = results;
                             handler(e);
                           });
  });
  if (ec) return ec;
  stream_.expires_at(deadline);
  ec = Run([&](auto handler) { stream_.async_connect(endpoints, handler); });
  if (ec) return ec;
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  open_ = true;
  buffer_.clear();
  return {};
}

HttpResult HttpConnection::Post(const std::string& body, const std::string& api_key,
                                std::chrono::milliseconds timeout) {
  http::request<http::string_body> req{http::verb::post, endpoint_.target, 11};
  req.set(http::field::host, endpoint_.host);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();

  HttpResult r;
  for (int attempt = 0;; ++attempt) {
    r = HttpResult{};
    const int64_t start_ns = NowNanos();
    const Clock::time_point deadline = Clock::now() + timeout;
    const bool reused = open_;
    if (!open_) {
      if (boost::system::error_code ec = Connect(deadline)) {
        Close();
        r.transport_error =
            "connect " + endpoint_.host + ":" + endpoint_.port + ": " + ec.message();
        r.end_ms = MsSince(start_ns);
        return r;
      }
    }
    stream_.expires_at(deadline);
    boost::system::error_code ec =
        Run([&](auto handler) { http::async_write(stream_, req, handler); });
    if (!ec) {
      if (ReadResponse(deadline, start_ns, &r)) return r;
    } else {
      Close();
      r.transport_error = "write: " + ec.message();
      r.end_ms = MsSince(start_ns);
    }
    // A kept-alive socket the server closed in the meantime fails before any answer:
    // that is not the server failing this request, so try once on a fresh connection.
    if (!(reused && attempt == 0 && r.status == 0)) return r;
  }
}

// Reads one response into `r`; false when the connection failed (it is closed then).
bool HttpConnection::ReadResponse(Clock::time_point deadline, int64_t start_ns, HttpResult* r) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  SseParser sse;
  std::vector<std::string> events;
  auto on_chunk = [&](uint64_t, std::string_view data, boost::system::error_code&) {
    const double t = MsSince(start_ns);
    events.clear();
    sse.Feed(data, &events);
    for (std::string& e : events) r->events.push_back({t, std::move(e)});
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  stream_.expires_at(deadline);
  boost::system::error_code ec =
      Run([&](auto handler) { http::async_read_header(stream_, buffer_, parser, handler); });
  if (!ec) {
    r->first_byte_ms = MsSince(start_ns);
    r->status = parser.get().result_int();
    r->x_cache = std::string(parser.get()["X-Cache"]);
  }
  while (!ec && !parser.is_done()) {
    ec = Run([&](auto handler) { http::async_read_some(stream_, buffer_, parser, handler); });
  }
  r->end_ms = MsSince(start_ns);
  if (ec) {
    r->transport_error = (r->status == 0 ? "read: " : "read body: ") + ec.message();
    Close();
    return r->status != 0;
  }
  // A non-chunked event stream (not what vlserve sends) lands in the body at the end.
  std::string& body = parser.get().body();
  if (parser.get()[http::field::content_type].starts_with("text/event-stream")) {
    on_chunk(0, body, ec);
  } else {
    r->body = body.substr(0, kMaxBody);
  }
  if (!parser.keep_alive()) Close();
  return true;
}

std::unique_ptr<HttpConnection> ConnectionPool::Acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.empty()) return std::make_unique<HttpConnection>(endpoint_);
  std::unique_ptr<HttpConnection> c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void ConnectionPool::Release(std::unique_ptr<HttpConnection> connection) {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(std::move(connection));
}

}  // namespace vlserve::bench_serve
