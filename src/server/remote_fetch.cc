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
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

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

// Addresses a public image host never has: loopback, private (RFC 1918, ULA), link-local,
// carrier-grade NAT, unspecified, multicast, reserved. A name on the allow-list that
// resolves to one of them (a DNS rebinding, a stale record) must not reach internal services.
bool PublicAddress(const asio::ip::address& address) {
  if (address.is_v6()) {
    const asio::ip::address_v6 v6 = address.to_v6();
    if (v6.is_v4_mapped()) {
      return PublicAddress(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    }
    const auto b = v6.to_bytes();
    if (v6.is_unspecified() || v6.is_loopback() || v6.is_multicast()) return false;
    if ((b[0] & 0xFE) == 0xFC) return false;                // fc00::/7 unique local
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) return false;  // fe80::/10 link-local
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0) return false;  // fec0::/10 site-local
    return true;
  }
  const uint32_t a = address.to_v4().to_uint();
  const auto in = [a](uint32_t net, int bits) {
    return (a >> (32 - bits)) == (net >> (32 - bits));
  };
  return !(in(0x00000000, 8) || in(0x0A000000, 8) || in(0x64400000, 10) || in(0x7F000000, 8) ||
           in(0xA9FE0000, 16) || in(0xAC100000, 12) || in(0xC0000000, 24) ||
           in(0xC0A80000, 16) || in(0xC6120000, 15) || in(0xE0000000, 4) ||
           in(0xF0000000, 4));
}

// getaddrinfo cannot be cancelled, and asio's resolver joins its thread on destruction:
// resolve on a detached thread and stop waiting at the deadline. At most kMaxLookups
// stuck lookups exist at a time.
constexpr int kMaxLookups = 16;
std::atomic<int> lookups_in_flight{0};

StatusOr<std::vector<asio::ip::tcp::endpoint>> Resolve(const ParsedUrl& url,
                                                       Clock::time_point deadline) {
  struct Lookup {
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;
    beast::error_code ec;
    std::vector<asio::ip::tcp::endpoint> endpoints;
  };
  if (lookups_in_flight.fetch_add(1) >= kMaxLookups) {
    --lookups_in_flight;
    return UnavailableError("too many image host lookups in flight; retry later");
  }
  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host = url.host, port = url.port] {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::error_code ec;
    const auto results = resolver.resolve(host, port, ec);
    std::vector<asio::ip::tcp::endpoint> endpoints;
    if (!ec) {
      for (const auto& r : results) endpoints.push_back(r.endpoint());
    }
    {
      std::lock_guard<std::mutex> lock(lookup->mu);
      lookup->done = true;
      lookup->ec = ec;
      lookup->endpoints = std::move(endpoints);
    }
    lookup->done_cv.notify_all();
    --lookups_in_flight;
  }).detach();
  std::unique_lock<std::mutex> lock(lookup->mu);
  if (!lookup->done_cv.wait_until(lock, deadline, [&] { return lookup->done; })) {
    return DeadlineExceededError(fmt::format("the image fetch timed out resolving {}", url.host));
  }
  if (lookup->ec) {
    return InvalidArgumentError(
        fmt::format("cannot resolve {}: {}", url.host, lookup->ec.message()));
  }
  return std::move(lookup->endpoints);
}

StatusOr<FetchResult> FetchOnce(const ParsedUrl& url, const MediaConfig& config,
                                Clock::time_point deadline, bool private_ok) {
  ASSIGN_OR_RETURN(std::vector<asio::ip::tcp::endpoint> resolved, Resolve(url, deadline));
  std::vector<asio::ip::tcp::endpoint> endpoints;
  for (const auto& e : resolved) {
    if (private_ok || PublicAddress(e.address())) endpoints.push_back(e);
  }
  if (endpoints.empty()) {
    return InvalidArgumentError(fmt::format(
        "image host {} resolves to a private, loopback or reserved address ({}); only an "
        "IP address listed in --allow-media-domains itself may be one",
        url.host, resolved.empty() ? "none" : resolved.front().address().to_string()));
  }
  asio::io_context ioc;
  beast::error_code ec;
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

AllowEntry ParseAllowEntry(std::string_view entry) {
  AllowEntry out;
  std::string e = Lower(entry);
  if (e.starts_with('[')) {  // [IPv6] or [IPv6]:port
    const size_t close = e.find(']');
    out.host = e.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < e.size() && e[close + 1] == ':') {
      out.port = e.substr(close + 2);
    }
  } else if (const size_t colon = e.find(':');
             colon != std::string::npos && e.find(':', colon + 1) == std::string::npos) {
    out.host = e.substr(0, colon);  // host:port (a bare IPv6 address has several colons)
    out.port = e.substr(colon + 1);
  } else {
    out.host = e;
  }
  out.subdomains = out.host.starts_with('.');
  if (out.subdomains) out.host.erase(0, 1);
  boost::system::error_code ec;
  asio::ip::make_address(out.host, ec);
  out.ip_literal = !ec && !out.subdomains;
  return out;
}

bool HostAllowed(std::string_view host, const std::vector<std::string>& allowed) {
  return MatchAllowed(host, "", allowed).has_value();
}

std::optional<AllowEntry> MatchAllowed(std::string_view host, std::string_view default_port,
                                       const std::vector<std::string>& allowed,
                                       std::string_view port) {
  const std::string h = Lower(host);
  for (const std::string& entry : allowed) {
    const AllowEntry a = ParseAllowEntry(entry);
    if (a.host.empty()) continue;
    const bool host_ok =
        h == a.host || (a.subdomains && h.size() > a.host.size() + 1 && h.ends_with(a.host) &&
                        h[h.size() - a.host.size() - 1] == '.');
    if (!host_ok) continue;
    // Without a port in the entry only the scheme's default port; "" = any (host check).
    if (!default_port.empty() && port != (a.port.empty() ? default_port : a.port)) continue;
    return a;
  }
  return std::nullopt;
}

StatusOr<std::string> FetchRemoteImage(std::string_view url, const MediaConfig& config) {
  const auto deadline = config.fetch_deadline != Clock::time_point{}
                            ? config.fetch_deadline
                            : Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                                 config.fetch_timeout_s * 1000));
  if (Clock::now() >= deadline) {
    return DeadlineExceededError(
        "the request's image fetches took longer than --media-fetch-timeout");
  }
  std::string current(url);
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    ASSIGN_OR_RETURN(ParsedUrl parsed, ParseHttpUrl(current));
    const std::optional<AllowEntry> entry =
        MatchAllowed(parsed.host, parsed.https ? "443" : "80", config.allowed_hosts, parsed.port);
    if (!entry) {
      const bool host_only = HostAllowed(parsed.host, config.allowed_hosts);
      return InvalidArgumentError(fmt::format(
          "image host '{}'{} is not allowed{}; allow it with --allow-media-domains{}",
          parsed.host, host_only ? " on port " + parsed.port : "",
          hop > 0 ? " (reached by a redirect)" : "",
          host_only ? " HOST:PORT (an entry without a port allows 80 and 443 only)" : ""));
    }
    ASSIGN_OR_RETURN(FetchResult r, FetchOnce(parsed, config, deadline, entry->ip_literal));
    if (r.status == 200) return std::move(r.body);
    const bool redirect = r.status == 301 || r.status == 302 || r.status == 303 ||
                          r.status == 307 || r.status == 308;
    if (!redirect) {
      return InvalidArgumentError(fmt::format("fetching the image from {} gave HTTP {}", parsed.host,
                                          r.status));
    }
    if (r.location.empty()) return InvalidArgumentError("a redirect without a Location header");
    if (r.location.front() == '/') {  // same host, absolute path
      const bool v6 = parsed.host.find(':') != std::string::npos;
      r.location = fmt::format("{}://{}{}{}:{}{}", parsed.https ? "https" : "http",
                               v6 ? "[" : "", parsed.host, v6 ? "]" : "", parsed.port,
                               r.location);
    }
    current = r.location;
  }
  return InvalidArgumentError(fmt::format("more than {} redirects fetching the image", kMaxRedirects));
}

}  // namespace vlserve::server
