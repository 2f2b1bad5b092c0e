#include "server/remote_fetch.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>

namespace vlserve::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

constexpr int kMaxRedirects = 3;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct FetchResult {
  unsigned status = 0;
  std::string location;  // for redirects
  std::string body;
};

// Runs one asynchronous operation to completion on `ioc` (this thread): Beast's stream
// timeouts (expires_after) apply only to asynchronous operations.
template <typename Start>
beast::error_code Run(asio::io_context& ioc, Start start) {
  beast::error_code result = asio::error::operation_aborted;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

Status StreamError(const beast::error_code& ec, std::string_view what, std::string_view host) {
  if (ec == beast::error::timeout) return DeadlineExceededError("the image fetch timed out");
  return InvalidArgumentError(fmt::format("{} {} failed: {}", what, host, ec.message()));
}

// One GET on an open stream (plain TCP or TLS) whose deadline the caller set.
template <typename Stream>
StatusOr<FetchResult> Get(asio::io_context& ioc, Stream& stream, const ParsedUrl& url,
                          size_t max_bytes) {
  http::request<http::empty_body> req{http::verb::get, url.target, 11};
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, "vlserve");
  req.set(http::field::accept, "image/*");
  beast::error_code ec =
      Run(ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  if (ec) return StreamError(ec, "sending the request to", url.host);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_bytes);
  parser.header_limit(16 * 1024);
  ec = Run(ioc,
           [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  if (ec == http::error::body_limit) {
    return OutOfRangeError(fmt::format("the image is larger than the limit of {} bytes",
                                       max_bytes));
  }
  if (ec) return StreamError(ec, "reading the response of", url.host);
  FetchResult r;
  r.status = parser.get().result_int();
  r.location = std::string(parser.get()[http::field::location]);
  r.body = std::move(parser.get().body());
  return r;
}

StatusOr<FetchResult> FetchOnce(const ParsedUrl& url, const MediaConfig& config,
                                Clock::time_point deadline) {
  asio::io_context ioc;
  asio::ip::tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) return InvalidArgumentError(fmt::format("cannot resolve {}: {}", url.host, ec.message()));
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return DeadlineExceededError("the image fetch timed out");
  auto connect = [&](beast::tcp_stream& tcp) {
    tcp.expires_after(left);  // one deadline for connect, TLS, request and response
    return Run(ioc, [&](auto handler) { tcp.async_connect(endpoints, std::move(handler)); });
  };
  if (!url.https) {
    beast::tcp_stream stream(ioc);
    if (ec = connect(stream); ec) return StreamError(ec, "connecting to", url.host);
    auto r = Get(ioc, stream, url, config.max_image_bytes);
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return r;
  }
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_default_verify_paths(ec);
  tls.set_verify_mode(asio::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, tls);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
    return InvalidArgumentError("TLS: cannot set the server name");
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
  if (ec = connect(beast::get_lowest_layer(stream)); ec) {
    return StreamError(ec, "connecting to", url.host);
  }
  ec = Run(ioc, [&](auto handler) {
    stream.async_handshake(asio::ssl::stream_base::client, std::move(handler));
  });
  if (ec) return StreamError(ec, "the TLS handshake with", url.host);
  return Get(ioc, stream, url, config.max_image_bytes);
}

}  // namespace

StatusOr<ParsedUrl> ParseHttpUrl(std::string_view url) {
  ParsedUrl out;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    out.https = true;
    rest = url.substr(8);
  } else {
    return InvalidArgumentError("only http:// and https:// URLs can be fetched");
  }
  const size_t slash = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target = "/" + out.target;
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgumentError("image URLs with user info (user@host) are not accepted");
  }
  std::string_view port;
  if (authority.starts_with('[')) {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("bad IPv6 host in URL");
    out.host = Lower(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgumentError("bad port in URL");
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = Lower(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return InvalidArgumentError("the image URL has no host");
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) {
      return InvalidArgumentError("bad port in image URL");
    }
    out.port = std::string(port);
  } else {
    out.port = out.https ? "443" : "80";
  }
  return out;
}

bool HostAllowed(std::string_view host, const std::vector<std::string>& allowed) {
  const std::string h = Lower(host);
  for (const std::string& entry : allowed) {
    const std::string a = Lower(entry);
    if (a.empty()) continue;
    if (a == h) return true;
    if (a.front() == '.' && (h == a.substr(1) || (h.size() > a.size() && h.ends_with(a)))) {
      return true;
    }
  }
  return false;
}

StatusOr<std::string> FetchRemoteImage(std::string_view url, const MediaConfig& config) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(
                                           static_cast<int64_t>(config.fetch_timeout_s * 1000));
  std::string current(url);
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    ASSIGN_OR_RETURN(ParsedUrl parsed, ParseHttpUrl(current));
    if (!HostAllowed(parsed.host, config.allowed_hosts)) {
      return InvalidArgumentError(fmt::format(
          "image host '{}' is not allowed{}; allow it with --allow-media-domains", parsed.host,
          hop > 0 ? " (reached by a redirect)" : ""));
    }
    ASSIGN_OR_RETURN(FetchResult r, FetchOnce(parsed, config, deadline));
    if (r.status == 200) return std::move(r.body);
    const bool redirect = r.status == 301 || r.status == 302 || r.status == 303 ||
                          r.status == 307 || r.status == 308;
    if (!redirect) {
      return InvalidArgumentError(fmt::format("fetching the image from {} gave HTTP {}", parsed.host,
                                          r.status));
    }
    if (r.location.empty()) return InvalidArgumentError("a redirect without a Location header");
    if (r.location.front() == '/') {  // same host, absolute path
      r.location = fmt::format("{}://{}:{}{}", parsed.https ? "https" : "http", parsed.host,
                               parsed.port, r.location);
    }
    current = r.location;
  }
  return InvalidArgumentError(fmt::format("more than {} redirects fetching the image", kMaxRedirects));
}

}  // namespace vlserve::server
