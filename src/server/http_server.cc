#include "server/http_server.h"

#include <fmt/format.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "base/log.h"

namespace vlserve::server {
namespace {

using asio::use_awaitable;
using tcp = asio::ip::tcp;

auto Redirect(boost::system::error_code& ec) { return asio::redirect_error(use_awaitable, ec); }

// Request line + header fields, and (separately) a chunked body's trailer fields. The
// connection's read buffer never holds more than this plus one read.
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBufferBytes = kMaxHeaderBytes + 64 * 1024;

// Parse errors of the request itself (as opposed to the socket or the client leaving).
bool MalformedRequest(const boost::system::error_code& ec) {
  if (ec.category() != http::make_error_code(http::error::bad_target).category()) return false;
  return ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::need_more && ec != http::error::need_buffer;
}

HttpError TransportError(int status, std::string message) {
  return {status, "invalid_request_error", std::move(message)};
}

}  // namespace

// Bytes of request bodies held, against HttpConfig::max_inflight_body_mb: grown as a body
// is read (up front from Content-Length), released when the request is done.
class HttpServer::BodyReservation {
 public:
  BodyReservation(std::atomic<int64_t>& used, int64_t limit) : used_(used), limit_(limit) {}
  ~BodyReservation() { Release(); }
  bool Grow(int64_t total) {
    if (total <= held_) return true;
    const int64_t delta = total - held_;
    if (used_.fetch_add(delta) + delta > limit_) {
      used_.fetch_sub(delta);
      return false;
    }
    held_ = total;
    return true;
  }
  void Release() {
    used_.fetch_sub(held_);
    held_ = 0;
  }
  int64_t limit() const { return limit_; }

 private:
  std::atomic<int64_t>& used_;
  const int64_t limit_;
  int64_t held_ = 0;
};

// A connection waiting for its next request, listed while it waits (oldest first).
struct HttpServer::IdleEntry {
  HttpServer* server;
  int fd;
  bool evicted = false;
  std::list<IdleEntry*>::iterator it;
  IdleEntry(HttpServer* s, int socket_fd) : server(s), fd(socket_fd) {
    std::lock_guard<std::mutex> lock(server->idle_mu_);
    it = server->idle_.insert(server->idle_.end(), this);
  }
  // Unlisted before the socket can close, so EvictOldestIdle never touches a stale fd.
  ~IdleEntry() { Unlist(); }
  bool Unlist() {  // true when evicted
    std::lock_guard<std::mutex> lock(server->idle_mu_);
    if (!evicted && it != server->idle_.end()) {
      server->idle_.erase(it);
      it = server->idle_.end();
    }
    return evicted;
  }
};

// Wake-ups for one connection. Lives in a shared_ptr because engine notifiers may outlive
// the connection; everything but `timer`'s cancel is touched only on the strand.
struct Connection::Wake {
  explicit Wake(asio::any_io_executor ex) : strand(ex), timer(ex) {}
  asio::any_io_executor strand;
  asio::steady_timer timer;
  bool pending = false;
  bool watching = false;     // a peer-watch read is outstanding
  bool stop = false;         // StopWatchingPeer asked: do not read again
  bool eof = false;          // the client sent FIN (maybe only a half-close)
  bool peer_closed = false;  // the client is gone (reset, error, or FIN on HTTP/1.0)
};

Connection::Connection(beast::tcp_stream stream, const HttpConfig& config)
    : stream_(std::move(stream)), buffer_(kMaxBufferBytes), config_(config),
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
  wake_->stop = false;
  WatchPeer();
}

void Connection::WatchPeer() {
  // Raw socket reads (outside tcp_stream's timeout), re-armed after every read so a
  // disconnect after pipelined bytes is still seen. The pipelined bytes stay in buffer_;
  // past its bound we stop reading (the client cannot be watched, but it cannot grow us).
  if (buffer_.max_size() - buffer_.size() < 4096) {
    wake_->watching = false;
    return;
  }
  wake_->watching = true;
  stream_.socket().async_read_some(
      buffer_.prepare(4096), [this, wake = wake_](boost::system::error_code ec, size_t n) {
        if (!ec) {
          buffer_.commit(n);
          if (!wake->stop) return WatchPeer();
        } else if (ec == asio::error::eof) {
          wake->eof = true;
          if (http10_) wake->peer_closed = true;
        } else if (ec != asio::error::operation_aborted) {
          wake->peer_closed = true;
        }
        wake->watching = false;
        wake->pending = true;
        wake->timer.cancel();
      });
}

asio::awaitable<void> Connection::StopWatchingPeer() {
  wake_->stop = true;
  if (wake_->watching) {
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);
    while (wake_->watching) co_await WaitNotify(std::chrono::milliseconds(100));
  }
  // After a FIN the client sends nothing more: close once the response is out (and the
  // requests it pipelined before the FIN are answered).
  if (wake_->eof && buffer_.size() == 0) keep_alive_ = false;
}

bool Connection::peer_closed() {
  if (wake_->peer_closed) return true;
  if (!wake_->eof) return false;
  const int fd = stream_.socket().native_handle();
  if (!probed_) {
    probed_ = true;
    // Only before any response byte and with nothing queued, so the probe can neither
    // split a write nor land inside a body. A stream in progress needs no probe: its
    // next chunk draws the reset.
    int queued = 0;
    if (sse_header_ == nullptr && ::ioctl(fd, SIOCOUTQ, &queued) == 0 && queued == 0) {
      static constexpr char kProbe[] = "HTTP/1.1 100 Continue\r\n\r\n";
      if (::send(fd, kProbe, sizeof(kProbe) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
          errno != EAGAIN && errno != EWOULDBLOCK) {
        wake_->peer_closed = true;
      }
    }
    return wake_->peer_closed;
  }
  pollfd p{fd, 0, 0};  // POLLERR / POLLHUP are always reported
  if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0) {
    wake_->peer_closed = true;
  }
  return wake_->peer_closed;
}

void Connection::BeginRequest(std::string_view method, std::string_view target,
                              std::string_view x_request_id, std::string_view traceparent) {
  access_ = BeginAccessRecord(method, target, x_request_id, traceparent, client_);
  extra_headers_ = access_.ResponseHeaders();
  last_status_ = 0;  // stays 0 when the client leaves before any answer
}

void Connection::NameRequest(std::string id) {
  if (access_.client_request_id) return;
  access_.request_id = std::move(id);
  for (auto& [name, value] : extra_headers_) {
    if (name == "X-Request-Id") value = access_.request_id;
  }
}

void Connection::FinishRequest(engine::TimePoint start) {
  access_.status = last_status_ != 0 ? last_status_ : 499;  // nginx's "client closed"
  access_.total_ms =
      std::chrono::duration<double, std::milli>(engine::SteadyClock::now() - start).count();
  LogAccess(access_);
}

void Connection::SetResponseConnection(http::fields& header, bool chunked_ok) const {
  // HTTP/1.0 keeps a connection only when both sides say "keep-alive" explicitly.
  const bool keep = keep_alive_ && request_keep_alive_ && chunked_ok;
  header.set(http::field::connection, keep ? "keep-alive" : "close");
}

asio::awaitable<bool> Connection::WriteMessage(http::response<http::string_body>& res) {
  last_status_ = res.result_int();
  if (!request_keep_alive_) keep_alive_ = false;
  res.prepare_payload();
  SetResponseConnection(res, true);
  stream_.expires_after(config_.write_timeout);
  boost::system::error_code ec;
  if (head_) {  // the GET's headers, Content-Length included, and no body
    http::response<http::empty_body> header{std::move(res.base())};
    http::response_serializer<http::empty_body> sr{header};
    co_await http::async_write_header(stream_, sr, Redirect(ec));
  } else {
    co_await http::async_write(stream_, res, Redirect(ec));
  }
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
  // HTTP/1.0 has no chunked encoding: the stream is the raw body, ended by the close.
  if (http10_) keep_alive_ = false;
  SetResponseConnection(*sse_header_, !http10_);
  sse_header_->chunked(!http10_);
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
  if (http10_) {
    co_await asio::async_write(stream_, asio::buffer(data), Redirect(ec));
  } else {
    co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)), Redirect(ec));
  }
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
  if (!sse_header_->keep_alive() || !request_keep_alive_) keep_alive_ = false;
  sse_serializer_.reset();
  sse_header_.reset();
}

HttpServer::HttpServer(HttpConfig config, Handler handler)
    : config_(std::move(config)), handler_(std::move(handler)),
      ioc_(std::max(1, config_.threads)), acceptor_(ioc_) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpConfig config, Handler handler) {
  if (config.max_inflight_body_mb < 1) {
    return InvalidArgumentError("--max-inflight-body-mb must be >= 1");
  }
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

bool HttpServer::EvictOldestIdle() {
  std::lock_guard<std::mutex> lock(idle_mu_);
  if (idle_.empty()) return false;
  IdleEntry* oldest = idle_.front();
  idle_.pop_front();
  oldest->it = idle_.end();
  oldest->evicted = true;
  // Wakes its WaitForRequest (the socket becomes readable at EOF). The fd is open: its
  // connection unlists itself under idle_mu_ before the socket can close.
  ::shutdown(oldest->fd, SHUT_RDWR);
  return true;
}

asio::awaitable<bool> HttpServer::WaitForRequest(Connection& conn) {
  if (conn.buffer_.size() > 0) co_return true;  // pipelined bytes are already here
  tcp::socket& socket = conn.stream_.socket();
  IdleEntry idle(this, socket.native_handle());
  // The keep-alive idle time is the read timeout; the timer and the wait share the
  // strand, `waiting` says whether the wait is still the one to cancel.
  auto waiting = std::make_shared<bool>(true);
  asio::steady_timer timer(conn.executor());
  timer.expires_after(config_.read_timeout);
  timer.async_wait([waiting, &socket](boost::system::error_code ec) {
    if (!ec && *waiting) socket.cancel(ec);
  });
  boost::system::error_code ec;
  co_await socket.async_wait(tcp::socket::wait_read, Redirect(ec));
  *waiting = false;
  timer.cancel();
  const bool evicted = idle.Unlist();
  co_return !ec && !evicted;
}

asio::awaitable<bool> HttpServer::ReadRequest(Connection& conn, IncomingRequest* req,
                                              BodyReservation* body) {
  if (!co_await WaitForRequest(conn)) co_return false;
  http::request_parser<http::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(config_.max_body_bytes);
  boost::system::error_code ec;
  // Answers an error, then closes (draining what the client still sends, see Session).
  const auto first_byte = engine::SteadyClock::now();
  auto refuse = [&](const HttpError& error) -> asio::awaitable<bool> {
    conn.Close();
    conn.linger_ = true;
    if (parser.is_header_done()) {
      const auto& h = parser.get();
      conn.BeginRequest(h.method_string(), h.target(), h["X-Request-Id"], h["traceparent"]);
    } else {
      conn.BeginRequest("", "", "", "");
    }
    co_await conn.WriteError(error);
    conn.FinishRequest(first_byte);
    co_return false;
  };
  auto refuse_parse = [&](const boost::system::error_code& e, bool in_body) {
    if (e == http::error::body_limit) return PayloadTooLargeError(config_.max_body_bytes);
    if (e == http::error::header_limit || e == http::error::buffer_overflow) {
      const std::string_view seen(static_cast<const char*>(conn.buffer_.data().data()),
                                  conn.buffer_.size());
      if (!in_body && seen.find("\r\n") == std::string_view::npos) {
        return TransportError(414, fmt::format("the request line is longer than {} bytes; "
                                               "send parameters in the body",
                                               kMaxHeaderBytes));
      }
      return TransportError(
          431, fmt::format("the request {} are larger than {} bytes",
                           in_body ? "body's chunk headers or trailer fields" : "header fields",
                           kMaxHeaderBytes));
    }
    return TransportError(400, fmt::format("malformed HTTP request: {}", e.message()));
  };
  conn.stream_.expires_after(config_.read_timeout);
  co_await http::async_read_header(conn.stream_, conn.buffer_, parser, Redirect(ec));
  if (ec == http::error::body_limit || ec == http::error::header_limit ||
      ec == http::error::buffer_overflow || MalformedRequest(ec)) {
    co_return co_await refuse(refuse_parse(ec, false));
  }
  if (ec) co_return false;  // closed or timed out: nobody to answer
  req->arrival = engine::SteadyClock::now();
  conn.request_keep_alive_ = parser.get().keep_alive();
  conn.head_ = parser.get().method() == http::verb::head;
  conn.http10_ = parser.get().version() < 11;
  const auto length = parser.content_length();
  if (length && *length > config_.max_body_bytes) {
    co_return co_await refuse(PayloadTooLargeError(config_.max_body_bytes));
  }
  const auto over_budget = [&] {
    HttpError e = TransportError(
        503, fmt::format("request bodies in flight exceed the server's budget of {} MiB "
                         "(--max-inflight-body-mb); retry later",
                         config_.max_inflight_body_mb));
    e.type = "overloaded_error";
    e.retry_after = true;
    return e;
  };
  if (length && !body->Grow(static_cast<int64_t>(*length))) {
    co_return co_await refuse(over_budget());
  }
  if (beast::iequals(parser.get()[http::field::expect], "100-continue") && !conn.http10_) {
    http::response<http::empty_body> cont{http::status::continue_, 11};
    co_await http::async_write(conn.stream_, cont, Redirect(ec));
    if (ec) co_return false;
  }
  const auto start = engine::SteadyClock::now();
  while (!parser.is_done()) {
    co_await http::async_read_some(conn.stream_, conn.buffer_, parser, Redirect(ec));
    if (ec) break;
    // A chunked body has no length up front: it is counted as it grows.
    if (!body->Grow(static_cast<int64_t>(parser.get().body().capacity()))) {
      co_return co_await refuse(over_budget());
    }
  }
  if (ec == http::error::body_limit || ec == http::error::header_limit ||
      ec == http::error::buffer_overflow || MalformedRequest(ec)) {
    co_return co_await refuse(refuse_parse(ec, true));
  }
  if (ec) co_return false;
  req->read_ms =
      std::chrono::duration<double, std::milli>(engine::SteadyClock::now() - start).count();
  req->message = parser.release();
  co_return true;
}

asio::awaitable<void> HttpServer::Session(tcp::socket socket) {
  Connection conn(beast::tcp_stream(std::move(socket)), config_);
  boost::system::error_code peer_ec;
  const tcp::endpoint peer = conn.stream_.socket().remote_endpoint(peer_ec);
  if (!peer_ec) {
    const std::string ip = peer.address().to_string();
    conn.client_ = peer.address().is_v6() ? fmt::format("[{}]:{}", ip, peer.port())
                                           : fmt::format("{}:{}", ip, peer.port());
  }
  struct Count {
    std::atomic<int>& n;
    ~Count() { --n; }
  } count{open_connections_};
  // Over the limit, the longest-idle keep-alive connection makes room (an idle client
  // reconnects cheaply; a refused one, /health included, cannot get in at all).
  if (++open_connections_ > config_.max_connections && !EvictOldestIdle()) {
    conn.Close();
    conn.BeginRequest("", "", "", "");
    const auto start = engine::SteadyClock::now();
    co_await conn.WriteError(HttpErrorFromStatus(ResourceExhaustedError(fmt::format(
        "too many open connections (limit {}), none of them idle; retry later",
        config_.max_connections))));
    conn.FinishRequest(start);
  } else {
    const int64_t budget = static_cast<int64_t>(config_.max_inflight_body_mb) << 20;
    while (conn.keep_alive()) {
      IncomingRequest req;
      BodyReservation body(inflight_body_bytes_, budget);
      if (!co_await ReadRequest(conn, &req, &body)) break;
      conn.BeginRequest(req.message.method_string(), req.message.target(),
                        req.message["X-Request-Id"], req.message["traceparent"]);
      conn.probed_ = false;
      co_await handler_(conn, req);
      conn.FinishRequest(req.arrival);
      co_await conn.StopWatchingPeer();  // a handler that left it running: its reads use conn
      if (!conn.request_keep_alive_ || (conn.wake_->eof && conn.buffer_.size() == 0)) break;
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
