// Remote image fetch against a tiny loopback HTTP server written here (plain sockets):
// allowed hosts, byte limit, timeouts, redirects that stay on / leave the allowed list,
// and an image_url over http answered by the real server.
#include "server/remote_fetch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include "http_client.h"
#include "media/encode.h"
#include "server/server.h"

namespace vlserve::server {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

std::string Jpeg() {
  media::Image img = media::MakeImage(40, 30);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 7);
  auto bytes = media::EncodeJpeg(img, 90);
  EXPECT_TRUE(bytes.ok());
  return std::string(bytes->begin(), bytes->end());
}

// Answers one request per connection by path.
class TinyHttpServer {
 public:
  TinyHttpServer() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Loop(); });
  }
  ~TinyHttpServer() {
    stop_ = true;
    boost::system::error_code ec;
    tcp::socket poke(ioc_);
    poke.connect(acceptor_.local_endpoint(), ec);  // wakes accept()
    thread_.join();
  }
  int port() const { return port_; }
  // The allow-list entry for this server: an IP literal with its port.
  std::string Entry() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  const std::string image = Jpeg();

 private:
  void Loop() {
    while (!stop_) {
      tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) continue;
      asio::streambuf buf;
      asio::read_until(s, buf, "\r\n\r\n", ec);
      std::string head(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
      const std::string path = head.substr(4, head.find(' ', 4) - 4);
      std::string response;
      if (path == "/img.jpg") {
        response = Reply("200 OK", image);
      } else if (path == "/big") {
        response = Reply("200 OK", std::string(100000, 'x'));
      } else if (path == "/redirect-ok") {
        response = "HTTP/1.1 302 Found\r\nLocation: /img.jpg\r\nContent-Length: 0\r\n\r\n";
      } else if (path == "/redirect-away") {
        response =
            "HTTP/1.1 302 Found\r\nLocation: http://evil.invalid/x.jpg\r\nContent-Length: 0\r\n\r\n";
      } else if (path == "/slowish") {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        response = Reply("200 OK", image);
      } else if (path == "/slow") {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        response = Reply("200 OK", image);
      } else {
        response = Reply("404 Not Found", "no");
      }
      asio::write(s, asio::buffer(response), ec);
    }
  }
  static std::string Reply(const std::string& status, const std::string& body) {
    return "HTTP/1.1 " + status + "\r\nContent-Type: image/jpeg\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(RemoteFetchTest, ParsesUrls) {
  auto u = ParseHttpUrl("https://Example.COM:8443/a/b.png?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/a/b.png?x=1");
  auto v = ParseHttpUrl("http://[::1]/img");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->host, "::1");
  EXPECT_EQ(v->port, "80");
  EXPECT_EQ(ParseHttpUrl("http://example.com")->target, "/");
  EXPECT_FALSE(ParseHttpUrl("http://user@example.com/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://example.com:99999999/").ok());
  EXPECT_FALSE(ParseHttpUrl("ftp://example.com/").ok());
  EXPECT_FALSE(ParseHttpUrl("http:///path").ok());
}

TEST(RemoteFetchTest, HostAllowList) {
  const std::vector<std::string> allowed = {"images.example.com", ".cdn.example.org"};
  EXPECT_TRUE(HostAllowed("images.example.com", allowed));
  EXPECT_TRUE(HostAllowed("IMAGES.example.com", allowed));
  EXPECT_FALSE(HostAllowed("example.com", allowed));
  EXPECT_FALSE(HostAllowed("evilimages.example.com", allowed));
  EXPECT_TRUE(HostAllowed("cdn.example.org", allowed));
  EXPECT_TRUE(HostAllowed("a.b.cdn.example.org", allowed));
  EXPECT_FALSE(HostAllowed("xcdn.example.org", allowed));
}

// An allowed host is reachable on its scheme's port only, unless the entry names one.
TEST(RemoteFetchTest, AllowListEntriesBindThePort) {
  const std::vector<std::string> allowed = {"img.example.com", "cdn.example.org:8443",
                                            "[::1]:9000", ".example.net"};
  EXPECT_TRUE(MatchAllowed("img.example.com", "443", allowed, "443"));
  EXPECT_TRUE(MatchAllowed("img.example.com", "80", allowed, "80"));
  EXPECT_FALSE(MatchAllowed("img.example.com", "80", allowed, "6379"));
  EXPECT_TRUE(MatchAllowed("cdn.example.org", "443", allowed, "8443"));
  EXPECT_FALSE(MatchAllowed("cdn.example.org", "443", allowed, "443"));
  EXPECT_TRUE(MatchAllowed("::1", "80", allowed, "9000"));
  EXPECT_TRUE(MatchAllowed("a.example.net", "443", allowed, "443"));
  EXPECT_FALSE(MatchAllowed("a.example.net", "443", allowed, "22"));
  EXPECT_TRUE(HostAllowed("cdn.example.org", allowed));  // on some port
  EXPECT_TRUE(ParseAllowEntry("10.0.0.5").ip_literal);
  EXPECT_TRUE(ParseAllowEntry("[fd00::1]:80").ip_literal);
  EXPECT_FALSE(ParseAllowEntry("localhost").ip_literal);
  EXPECT_FALSE(ParseAllowEntry(".10.0.0.5").ip_literal);

  TinyHttpServer http;
  MediaConfig config;
  config.fetch_timeout_s = 1;
  config.allowed_hosts = {"127.0.0.1"};  // no port: 80 only, so not this server's port
  auto refused = FetchRemoteImage(http.Url("/img.jpg"), config);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("port"), std::string::npos)
      << refused.status().ToString();
}

// A host name that resolves to a loopback or private address is refused (DNS rebinding);
// the operator may still list the address itself.
TEST(RemoteFetchTest, NamesResolvingToPrivateAddressesAreRefused) {
  TinyHttpServer http;
  MediaConfig config;
  config.fetch_timeout_s = 2;
  config.allowed_hosts = {"localhost:" + std::to_string(http.port())};
  auto refused = FetchRemoteImage(
      "http://localhost:" + std::to_string(http.port()) + "/img.jpg", config);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("private"), std::string::npos)
      << refused.status().ToString();
  config.allowed_hosts = {http.Entry()};
  EXPECT_TRUE(FetchRemoteImage(http.Url("/img.jpg"), config).ok());
}

// --media-fetch-timeout bounds all fetches of a request together: two 300 ms images under
// a 500 ms request deadline fail on the second (each fit the old per-image limit).
TEST(RemoteFetchTest, OneDeadlinePerRequest) {
  TinyHttpServer http;
  MediaConfig config;
  config.allowed_hosts = {http.Entry()};
  config.fetch_timeout_s = 0.5;
  EXPECT_TRUE(FetchRemoteImage(http.Url("/slowish"), config).ok());
  EXPECT_TRUE(FetchRemoteImage(http.Url("/slowish"), config).ok());  // no shared deadline
  const MediaConfig request = WithFetchDeadline(config);
  EXPECT_TRUE(FetchImageBytes(http.Url("/slowish"), request).ok());
  EXPECT_EQ(FetchImageBytes(http.Url("/slowish"), request).status().code(),
            StatusCode::kDeadlineExceeded);
}

// A FIFO below --media-dir blocked a media worker in open() forever; only regular files
// are read.
TEST(MediaInputTest, FileUrlsReadRegularFilesOnly) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("vlserve_media_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "pipe.jpg").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  {
    std::ofstream((dir / "a.jpg").string(), std::ios::binary) << "JPEGBYTES";
  }
  MediaConfig config;
  config.media_dir = dir.string();
  auto pipe = FetchImageBytes("file://" + fifo, config);  // returns at once, no writer
  EXPECT_EQ(pipe.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pipe.status().message().find("regular file"), std::string::npos)
      << pipe.status().ToString();
  auto dir_url = FetchImageBytes("file://" + dir.string(), config);
  EXPECT_EQ(dir_url.status().code(), StatusCode::kInvalidArgument);
  auto file = FetchImageBytes("file://" + (dir / "a.jpg").string(), config);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(*file, "JPEGBYTES");
  std::filesystem::remove_all(dir);
}

TEST(RemoteFetchTest, FetchesWithinTheLimits) {
  TinyHttpServer http;
  MediaConfig config;
  config.allowed_hosts = {http.Entry()};
  config.max_image_bytes = 50000;
  config.fetch_timeout_s = 1;

  auto ok = FetchRemoteImage(http.Url("/img.jpg"), config);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, http.image);
  auto redirected = FetchRemoteImage(http.Url("/redirect-ok"), config);
  ASSERT_TRUE(redirected.ok()) << redirected.status().ToString();
  EXPECT_EQ(*redirected, http.image);

  EXPECT_EQ(FetchRemoteImage(http.Url("/big"), config).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(FetchRemoteImage(http.Url("/redirect-away"), config).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(FetchRemoteImage(http.Url("/missing"), config).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(FetchRemoteImage(http.Url("/slow"), config).status().code(),
            StatusCode::kDeadlineExceeded);
  config.allowed_hosts = {"localhost"};
  EXPECT_EQ(FetchRemoteImage(http.Url("/img.jpg"), config).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(RemoteFetchTest, ServerAnswersAboutARemoteImage) {
  TinyHttpServer http;
  ServerConfig config;
  config.http.port = 0;
  config.media.allowed_hosts = {http.Entry()};
  auto server = Server::Start(config);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE((*server)->WaitReady(std::chrono::seconds(60)));
  namespace json = boost::json;
  auto body = [](const std::string& url) {
    json::array parts{json::object{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                      json::object{{"type", "text"}, {"text", "What is this?"}}};
    return json::serialize(json::object{
        {"messages", json::array{json::object{{"role", "user"}, {"content", parts}}}},
        {"max_tokens", 3}});
  };
  testing::Client c((*server)->port());
  testing::Response r = c.Post("/v1/chat/completions", body(http.Url("/img.jpg")), "");
  EXPECT_EQ(r.status, 200) << r.body;
  json::value v = json::parse(r.body);
  EXPECT_GE(v.at("timings").at("media_fetch").to_number<double>(), 0.0);
  testing::Client c2((*server)->port());
  testing::Response denied = c2.Post("/v1/chat/completions", body(http.Url("/redirect-away")), "");
  EXPECT_EQ(denied.status, 400) << denied.body;
}

}  // namespace
}  // namespace vlserve::server
