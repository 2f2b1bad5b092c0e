// The HTTP transport alone (no model): a tiny handler behind HttpServer, raw sockets in
// front, so each test sends exactly the bytes a hostile or unusual client would.
// Connection: close / HTTP/1.0 / HEAD semantics, 400/414/431 bodies, bounded trailers and
// in-flight bodies, idle-connection eviction, and disconnect vs half-close detection.
#include "server/http_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "http_client.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  std::atomic<bool> release{false};  // /hold answers once set
  std::atomic<int> holding{0};       // /hold requests waiting
  std::atomic<int> watch_result{0};  // /watch: 1 = saw the client go, 2 = answered
  std::unique_ptr<HttpServer> server;

  explicit Fixture(HttpConfig config = {}) {
    config.host = "127.0.0.1";
    config.port = 0;
    config.read_timeout = std::chrono::seconds(5);
    auto s = HttpServer::Start(config, [this](Connection& conn, IncomingRequest& req) {
      return Handle(conn, req);
    });
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    server = std::move(*s);
  }

  asio::awaitable<void> Handle(Connection& conn, IncomingRequest& req) {
    const std::string target(req.message.target());
    if (target == "/hold") {
      ++holding;
      while (!release) co_await conn.WaitNotify(std::chrono::milliseconds(5));
      --holding;
    } else if (target.starts_with("/watch")) {
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(std::stoi(target.substr(10)));
      conn.StartWatchingPeer();
      bool closed = false;
      while (std::chrono::steady_clock::now() < until) {
        if (conn.peer_closed()) {
          closed = true;
          break;
        }
        co_await conn.WaitNotify(std::chrono::milliseconds(10));
      }
      co_await conn.StopWatchingPeer();
      watch_result = closed ? 1 : 2;
      if (closed) {
        conn.Close();
        co_return;
      }
      co_await conn.Write(http::status::ok, "text/plain", std::string("done"));
      co_return;
    }
    co_await conn.Write(http::status::ok, "text/plain", std::string("hello"));
  }
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the server refused and closed: the test reads its answer
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything until the server closes (or 5 s pass: `closed` false).
std::string ReadAll(int fd, bool* closed = nullptr) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = n == 0 || errno == ECONNRESET;
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

// True when the server keeps the connection open for `wait` with nothing to say.
bool StaysOpen(int fd, std::chrono::milliseconds wait) {
  timeval tv{0, static_cast<suseconds_t>(wait.count() * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Reads one response (headers + Content-Length body) from a connection left open.
std::string ReadOne(int fd) {
  std::string out;
  char c;
  while (out.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) out += c;
  const size_t at = out.find("Content-Length: ");
  if (at == std::string::npos) return out;
  size_t left = std::stoul(out.substr(at + 16));
  while (left > 0 && ::recv(fd, &c, 1, 0) == 1) out += c, --left;
  return out;
}

int Count(const std::string& text, std::string_view what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

int StatusOf(const std::string& response) {
  return response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

TEST(HttpServerTest, ConnectionCloseAndHttp10CloseAfterTheResponse) {
  Fixture f;
  const int port = f.server->port();
  const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string first : {"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                  "GET /a HTTP/1.0\r\n\r\n"}) {
    const int fd = Connect(port);
    SendAll(fd, first + second);  // the pipelined second request must not be answered
    bool closed = false;
    const std::string got = ReadAll(fd, &closed);
    EXPECT_TRUE(closed) << first;
    EXPECT_EQ(Count(got, "HTTP/1.1 200"), 1) << got;
    EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
    ::close(fd);
  }
  // HTTP/1.0 asking for keep-alive keeps it, and is told so explicitly.
  const int fd = Connect(port);
  SendAll(fd, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const std::string got = ReadOne(fd);
  EXPECT_NE(got.find("Connection: keep-alive"), std::string::npos) << got;
  EXPECT_TRUE(StaysOpen(fd, 200ms));
  ::close(fd);
}

TEST(HttpServerTest, HeadHasTheLengthButNoBody) {
  Fixture f;
  const int fd = Connect(f.server->port());
  SendAll(fd,
          "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string got = ReadAll(fd);
  ::close(fd);
  // Two responses, one body: the HEAD's headers are followed directly by the GET's.
  EXPECT_EQ(Count(got, "HTTP/1.1 200"), 2) << got;
  EXPECT_EQ(Count(got, "Content-Length: 5"), 2) << got;
  EXPECT_EQ(Count(got, "hello"), 1) << got;
  const size_t second = got.find("HTTP/1.1 200", 1);
  EXPECT_EQ(got.substr(second - 4, 4), "\r\n\r\n");
}

TEST(HttpServerTest, MalformedRequestsGetAJsonErrorBeforeTheClose) {
  Fixture f;
  const std::string long_target = "GET /" + std::string(70000, 'a');
  const std::string long_header =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n";
  const std::pair<std::string, int> cases[] = {
      {"GET /a HTXP/1.1\r\nHost: x\r\n\r\n", 400},
      {"G(T /a HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", 400},
      {long_target, 414},
      {long_header, 431},
  };
  for (const auto& [request, status] : cases) {
    const int fd = Connect(f.server->port());
    SendAll(fd, request);
    ::shutdown(fd, SHUT_WR);
    const std::string got = ReadAll(fd);
    ::close(fd);
    EXPECT_EQ(StatusOf(got), status) << request.substr(0, 40) << " -> " << got;
    EXPECT_NE(got.find("application/json"), std::string::npos) << got;
    EXPECT_NE(got.find("{\"error\""), std::string::npos) << got;
  }
}

TEST(HttpServerTest, ChunkedTrailersAreBounded) {
  Fixture f;
  const std::string head =
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "5\r\nhello\r\n0\r\n";
  {
    const int fd = Connect(f.server->port());
    SendAll(fd, head + "X-Trailer: 1\r\n\r\n");  // an ordinary trailer is fine
    EXPECT_EQ(StatusOf(ReadAll(fd)), 200);
    ::close(fd);
  }
  std::string trailer;
  while (trailer.size() < 200000) trailer += "X-T: " + std::string(1000, 'a') + "\r\n";
  const int fd = Connect(f.server->port());
  SendAll(fd, head + trailer + "\r\n");
  const std::string got = ReadAll(fd);
  ::close(fd);
  EXPECT_EQ(StatusOf(got), 431) << got.substr(0, 300);
  EXPECT_NE(got.find("trailer"), std::string::npos) << got;
}

TEST(HttpServerTest, InFlightBodiesShareOneBudget) {
  HttpConfig config;
  config.max_inflight_body_mb = 1;
  Fixture f(config);
  const int port = f.server->port();
  const std::string body(700000, 'x');
  const std::string post = "POST /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Length: 700000\r\n\r\n" + body;
  const int holder = Connect(port);
  SendAll(holder, post);
  for (int i = 0; i < 500 && f.holding == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(f.holding, 1);
  EXPECT_GE(f.server->inflight_body_bytes(), 700000);
  // Both a sized and a chunked body over the rest of the budget are refused.
  std::string chunked = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 7; ++i) chunked += "186a0\r\n" + std::string(100000, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  for (std::string request : {post, chunked}) {
    const int fd = Connect(port);
    SendAll(fd, request);
    const std::string got = ReadAll(fd);
    ::close(fd);
    EXPECT_EQ(StatusOf(got), 503) << got.substr(0, 300);
    EXPECT_NE(got.find("Retry-After"), std::string::npos);
    EXPECT_NE(got.find("--max-inflight-body-mb"), std::string::npos);
  }
  f.release = true;
  EXPECT_EQ(StatusOf(ReadAll(holder)), 200);
  ::close(holder);
  for (int i = 0; i < 500 && f.server->inflight_body_bytes() != 0; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(f.server->inflight_body_bytes(), 0);
  const int fd = Connect(port);
  SendAll(fd, post);  // the budget is free again
  EXPECT_EQ(StatusOf(ReadAll(fd)), 200);
  ::close(fd);
}

TEST(HttpServerTest, AtTheConnectionLimitTheOldestIdleConnectionMakesRoom) {
  HttpConfig config;
  config.max_connections = 3;
  Fixture f(config);
  const int port = f.server->port();
  int idle[3];
  for (int& fd : idle) {
    fd = Connect(port);
    std::this_thread::sleep_for(20ms);  // a clear age order
  }
  for (int i = 0; i < 200 && f.server->open_connections() < 3; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  const int fresh = Connect(port);
  SendAll(fresh, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(ReadAll(fresh)), 200);
  ::close(fresh);
  bool closed = false;
  EXPECT_EQ(ReadAll(idle[0], &closed), "");
  EXPECT_TRUE(closed) << "the oldest idle connection is closed";
  EXPECT_TRUE(StaysOpen(idle[2], 100ms));
  for (int fd : idle) ::close(fd);

  // Connections in the middle of a request are never closed for room: 503 then.
  for (int i = 0; i < 200 && f.server->open_connections() > 0; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  int busy[3];
  for (int& fd : busy) {
    fd = Connect(port);
    SendAll(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  for (int i = 0; i < 500 && f.holding < 3; ++i) std::this_thread::sleep_for(5ms);
  const int refused = Connect(port);
  SendAll(refused, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusOf(ReadAll(refused)), 503);
  ::close(refused);
  f.release = true;
  for (int fd : busy) ::close(fd);
}

TEST(HttpServerTest, DisconnectAfterAPipelinedByteIsSeen) {
  Fixture f;
  const int fd = Connect(f.server->port());
  const auto start = std::chrono::steady_clock::now();
  SendAll(fd, "GET /watch?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\nG");
  std::this_thread::sleep_for(50ms);  // the byte arrives while the handler watches
  ::close(fd);
  for (int i = 0; i < 600 && f.watch_result == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.watch_result, 1) << "the handler ran to its end instead of seeing the close";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(HttpServerTest, HalfClosedClientStillGetsItsAnswer) {
  Fixture f;
  const int fd = Connect(f.server->port());
  SendAll(fd, "GET /watch?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
  ::shutdown(fd, SHUT_WR);  // "that is all I send", still reading
  bool closed = false;
  const std::string got = ReadAll(fd, &closed);
  ::close(fd);
  EXPECT_EQ(f.watch_result, 2);
  EXPECT_TRUE(closed);
  // At most one interim 100 Continue (the server's check that the client still reads),
  // then the answer.
  const size_t final_at = got.find("HTTP/1.1 200");
  ASSERT_NE(final_at, std::string::npos) << got;
  EXPECT_TRUE(final_at == 0 || got.substr(0, final_at) == "HTTP/1.1 100 Continue\r\n\r\n")
      << got;
  EXPECT_EQ(got.substr(got.size() - 4), "done");
}

// /tokenize and /detokenize of a large body ran on the I/O threads: two 23 MB requests held
// /health for 5 s. With one I/O thread, /health must answer while the slow request runs.
// `after`: when the body has been sent and the work is under way.
void ExpectHealthAnswersDuring(const std::string& path, const std::string& body,
                               std::chrono::milliseconds after) {
  ServerConfig config;
  config.http.threads = 1;
  auto server = testing::StartTestServer(config);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  std::atomic<double> slow_ms{0};
  std::thread slow([&] {
    testing::Client c(port);
    const auto t0 = std::chrono::steady_clock::now();
    const testing::Response r = c.Post(path, body);
    EXPECT_EQ(r.status, 200) << r.body.substr(0, 200);
    slow_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                  .count();
  });
  std::this_thread::sleep_for(after);
  testing::Client health(port);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(health.Get("/health").status, 200);
  const double health_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  slow.join();
  std::printf("%s %.0f ms, /health meanwhile %.1f ms\n", path.c_str(), slow_ms.load(),
              health_ms);
  EXPECT_LT(health_ms * 3, slow_ms.load() - after.count());
}

TEST(HttpServerWithModelTest, TokenizeLeavesTheIoThreadFree) {
  std::string text;
  const char* words[] = {"hello ", "world ", "tokenize ", "\xC3\xBCber ", "na\xC3\xAFve "};
  for (int i = 0; text.size() < (1u << 20); ++i) text += words[i % 5];
  ExpectHealthAnswersDuring("/tokenize", "{\"content\": \"" + text + "\"}", 100ms);
}

TEST(HttpServerWithModelTest, DetokenizeLeavesTheIoThreadFree) {
  std::string ids;
  for (int i = 0; i < 2'000'000; ++i) ids += (i ? "," : "") + std::to_string(20 + i % 400);
  ExpectHealthAnswersDuring("/detokenize", "{\"tokens\": [" + ids + "]}", 500ms);
}

}  // namespace
}  // namespace vlserve::server
