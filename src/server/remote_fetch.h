// http(s) image fetch for image_url parts, only from hosts the operator allowed
// (--allow-media-domains), with a byte limit, a total time limit and redirects followed
// only while they stay on allowed hosts. Blocking: runs on the server's worker pool.
#pragma once

#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "base/status.h"
#include "server/media_input.h"

namespace vlserve::server {

struct ParsedUrl {
  bool https = false;
  std::string host;  // lower case, no brackets
  std::string port;  // "80" / "443" when absent
  std::string target;  // path + query, "/" when absent
};

// InvalidArgument for anything but http(s)://host[:port][/path]; user info is refused.
StatusOr<ParsedUrl> ParseHttpUrl(std::string_view url);

// One --allow-media-domains entry: "host", ".example.com" (the domain and its
// subdomains), "host:port", "[v6]:port".
struct AllowEntry {
  std::string host;        // lower case, no leading dot, no brackets
  std::string port;        // "" = the scheme's default port (80 / 443) only
  bool subdomains = false;
  bool ip_literal = false;  // the operator named the address: it may be private/loopback
};
AllowEntry ParseAllowEntry(std::string_view entry);

// True when `host` is in `allowed` on some port (case-insensitive exact match; an entry
// ".example.com" also allows every subdomain of example.com).
bool HostAllowed(std::string_view host, const std::vector<std::string>& allowed);
// The entry allowing `host` on `port` (given `default_port`, the scheme's), if any.
std::optional<AllowEntry> MatchAllowed(std::string_view host, std::string_view default_port,
                                       const std::vector<std::string>& allowed,
                                       std::string_view port = "");

// The body of `url`. A host name must resolve to public addresses (see AllowEntry); the
// lookup counts against the deadline (config.fetch_deadline if set, else fetch_timeout_s
// from now). Errors: InvalidArgument (host or port not allowed, a private address, or a
// redirect leaving the list), OutOfRange (larger than max_image_bytes), DeadlineExceeded
// (the deadline), InvalidArgument (bad URL, connection / TLS failure, HTTP status other
// than 200), Unavailable (too many host lookups stuck at once).
StatusOr<std::string> FetchRemoteImage(std::string_view url, const MediaConfig& config);

}  // namespace vlserve::server
