#include "server/http_server.h"

#include <fmt/format.h>

#include "base/log.h"

namespace vlserve::server {
namespace {

using asio::use_awaitable;
using tcp = asio::ip::tcp;

auto Redirect(boost::system::error_code& ec) { return asio::redirect_error(use_awaitable, ec); }

}  // namespace

// Wake-ups for one connection. Lives in a shared_ptr because engine notifiers may outlive
// the connection; everything but `timer`'s cancel is touched only on the strand.
struct Connection::Wake {
  explicit Wake(asio::any_io_executor ex) : strand(ex), timer(ex) {}
  asio::any_io_executor strand;
  asio::steady_timer timer;
  bool pending = false;
  bool watching = false;     // a peer-watch read is outstanding
  bool peer_closed = false;
};

Connection::Connection(beast::tcp_stream stream, const HttpConfig& config)
    : stream_(std::move(stream)), config_(config),
      wake_(std::make_shared<Wake>(stream_.get_executor())) {}

std::function<void()> Connection::MakeNotifier() {
  return [wake = wake_] {
    asio::post(wake->strand, [wake] {
      wake->pending = true;
      wake->timer.cancel();
    });
  };
}

asio::awaitable<void> Connection::WaitNotify(std::chrono::milliseconds max) {
  if (!wake_->pending && !wake_->peer_closed) {
    wake_->timer.expires_after(max);
    boost::system::error_code ec;
    co_await wake_->timer.async_wait(Redirect(ec));
  }
  wake_->pending = false;
}

void Connection::StartWatchingPeer() {
  wake_->watching = true;
  // Raw socket read (outside tcp_stream's timeout): completes with data (a pipelined
  // request, kept in buffer_) or with EOF/error when the client goes away.
  stream_.socket().async_read_some(
      buffer_.prepare(4096), [this, wake = wake_](boost::system::error_code ec, size_t n) {
        wake->watching = false;
        if (ec == asio::error::operation_aborted && !wake->peer_closed) {
          // Cancelled by StopWatchingPeer: the connection lives on.
        } else if (ec) {
          wake->peer_closed = true;
        } else {
          buffer_.commit(n);
        }
        wake->pending = true;
        wake->timer.cancel();
      });
}

asio::awaitable<void> Connection::StopWatchingPeer() {
  if (wake_->watching) {
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);
    while (wake_->watching) co_await WaitNotify(std::chrono::milliseconds(100));
  }
}

bool Connection::peer_closed() const { return wake_->peer_closed; }

asio::awaitable<bool> Connection::WriteMessage(http::response<http::string_body>& res) {
  last_status_ = res.result_int();
  res.keep_alive(keep_alive_ && request_keep_alive_);
  res.prepare_payload();
  stream_.expires_after(config_.write_timeout);
  boost::system::error_code ec;
  co_await http::async_write(stream_, res, Redirect(ec));
  if (ec) keep_alive_ = false;
  co_return !ec;
}

asio::awaitable<bool> Connection::Write(
    http::status status, std::string content_type, std::string body,
    std::vector<std::pair<std::string, std::string>> headers) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::server, "vlserve");
  res.set(http::field::content_type, content_type);
  for (auto& [name, value] : headers) res.set(name, value);
  for (const auto& [name, value] : extra_headers_) res.set(name, value);
  res.body() = std::move(body);
  const bool ok = co_await WriteMessage(res);
  co_return ok;
}

asio::awaitable<bool> Connection::WriteError(const HttpError& error) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (error.retry_after) headers.emplace_back("Retry-After", "1");
  if (error.http_status == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
  const bool ok = co_await Write(static_cast<http::status>(error.http_status),
                                 "application/json", ErrorJson(error), std::move(headers));
  co_return ok;
}

asio::awaitable<bool> Connection::StartEventStream() {
  last_status_ = 200;
  sse_header_ = std::make_unique<http::response<http::empty_body>>(http::status::ok, 11);
  sse_header_->set(http::field::server, "vlserve");
  sse_header_->set(http::field::content_type, "text/event-stream");
  sse_header_->set(http::field::cache_control, "no-cache");
  sse_header_->set("X-Accel-Buffering", "no");
  for (const auto& [name, value] : extra_headers_) sse_header_->set(name, value);
  sse_header_->keep_alive(keep_alive_ && request_keep_alive_);
  sse_header_->chunked(true);
  sse_serializer_ = std::make_unique<http::response_serializer<http::empty_body>>(*sse_header_);
  stream_.expires_after(config_.write_timeout);
  boost::system::error_code ec;
  co_await http::async_write_header(stream_, *sse_serializer_, Redirect(ec));
  if (ec) keep_alive_ = false;
  co_return !ec;
}

asio::awaitable<bool> Connection::WriteChunk(std::string data) {
  stream_.expires_after(config_.write_timeout);
  boost::system::error_code ec;
  co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)), Redirect(ec));
  if (ec) keep_alive_ = false;
  co_return !ec;
}

asio::awaitable<void> Connection::EndEventStream() {
  if (keep_alive_) {
    stream_.expires_after(config_.write_timeout);
    boost::system::error_code ec;
    co_await asio::async_write(stream_, http::make_chunk_last(), Redirect(ec));
    if (ec) keep_alive_ = false;
  }
  if (!sse_header_->keep_alive()) keep_alive_ = false;
  sse_serializer_.reset();
  sse_header_.reset();
}

HttpServer::HttpServer(HttpConfig config, Handler handler)
    : config_(std::move(config)), handler_(std::move(handler)),
      ioc_(std::max(1, config_.threads)), acceptor_(ioc_) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpConfig config, Handler handler) {
  std::unique_ptr<HttpServer> s(new HttpServer(std::move(config), std::move(handler)));
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(s->config_.host, ec);
  if (ec) {
    return InvalidArgumentError(
        fmt::format("--host '{}' is not an IP address ({})", s->config_.host, ec.message()));
  }
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(s->config_.port));
  s->acceptor_.open(endpoint.protocol(), ec);
  if (!ec) s->acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(endpoint, ec);
  if (!ec) s->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError(fmt::format("cannot listen on {}:{}: {}; pick another --port",
                                        s->config_.host, s->config_.port, ec.message()));
  }
  s->port_ = s->acceptor_.local_endpoint().port();
  asio::co_spawn(s->ioc_, s->Accept(), asio::detached);
  for (int i = 0; i < std::max(1, s->config_.threads); ++i) {
    s->threads_.emplace_back([server = s.get()] { server->ioc_.run(); });
  }
  return s;
}

void HttpServer::Stop() {
  if (stopped_.exchange(true)) return;
  asio::post(ioc_, [this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  });
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

asio::awaitable<void> HttpServer::Accept() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::make_strand(ioc_), Redirect(ec));
    if (ec) {
      if (!acceptor_.is_open() || ec == asio::error::operation_aborted) co_return;
      LOG_WARN("accept failed: {}", ec.message());
      continue;
    }
    // Small SSE writes must leave at once: with Nagle's algorithm each one after the first
    // waits for the client's delayed ACK (~40 ms on Linux) on a kept-alive connection.
    socket.set_option(tcp::no_delay(true), ec);
    const asio::any_io_executor ex = socket.get_executor();
    asio::co_spawn(ex, Session(std::move(socket)), asio::detached);
  }
}

asio::awaitable<bool> HttpServer::ReadRequest(Connection& conn, IncomingRequest* req) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(config_.max_body_bytes);
  boost::system::error_code ec;
  conn.stream_.expires_after(config_.read_timeout);
  co_await http::async_read_header(conn.stream_, conn.buffer_, parser, Redirect(ec));
  // Beast checks Content-Length against the body limit while parsing the header.
  if (ec == http::error::body_limit) {
    conn.Close();
    conn.linger_ = true;
    co_await conn.WriteError(PayloadTooLargeError(config_.max_body_bytes));
    co_return false;
  }
  if (ec) co_return false;  // closed, timed out or garbage: drop the connection
  req->arrival = engine::SteadyClock::now();
  conn.request_keep_alive_ = parser.get().keep_alive();
  const auto length = parser.content_length();
  if (length && *length > config_.max_body_bytes) {
    conn.Close();
    conn.linger_ = true;
    co_await conn.WriteError(PayloadTooLargeError(config_.max_body_bytes));
    co_return false;
  }
  if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
    http::response<http::empty_body> cont{http::status::continue_, 11};
    co_await http::async_write(conn.stream_, cont, Redirect(ec));
    if (ec) co_return false;
  }
  const auto start = engine::SteadyClock::now();
  co_await http::async_read(conn.stream_, conn.buffer_, parser, Redirect(ec));
  if (ec == http::error::body_limit) {
    conn.Close();
    conn.linger_ = true;
    co_await conn.WriteError(PayloadTooLargeError(config_.max_body_bytes));
    co_return false;
  }
  if (ec) co_return false;
  req->read_ms =
      std::chrono::duration<double, std::milli>(engine::SteadyClock::now() - start).count();
  req->message = parser.release();
  co_return true;
}

asio::awaitable<void> HttpServer::Session(tcp::socket socket) {
  Connection conn(beast::tcp_stream(std::move(socket)), config_);
  struct Count {
    std::atomic<int>& n;
    ~Count() { --n; }
  } count{open_connections_};
  if (++open_connections_ > config_.max_connections) {
    conn.Close();
    co_await conn.WriteError(HttpErrorFromStatus(ResourceExhaustedError(fmt::format(
        "too many open connections (limit {}); retry later", config_.max_connections))));
  } else {
    while (conn.keep_alive()) {
      IncomingRequest req;
      if (!co_await ReadRequest(conn, &req)) break;
      conn.extra_headers_.clear();
      co_await handler_(conn, req);
    }
  }
  boost::system::error_code ec;
  conn.stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (conn.linger_) {
    // The client may still be sending the body we refused; closing with unread data
    // would reset the connection and could destroy the error response in flight. Read and
    // drop for a short while instead (bounded in time and bytes).
    std::vector<char> sink(64 * 1024);
    size_t drained = 0;
    conn.stream_.expires_after(std::chrono::seconds(2));
    while (!ec && drained < 4 * config_.max_body_bytes + (1u << 20)) {
      drained += co_await conn.stream_.async_read_some(asio::buffer(sink), Redirect(ec));
    }
  }
  conn.stream_.close();
}

}  // namespace vlserve::server
