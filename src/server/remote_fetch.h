// http(s) image fetch for image_url parts, only from hosts the operator allowed
// (--allow-media-domains), with a byte limit, a total time limit and redirects followed
// only while they stay on allowed hosts. Blocking: runs on the server's worker pool.
#pragma once

#include <string>
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

// True when `host` is in `allowed` (case-insensitive exact match; an entry ".example.com"
// also allows every subdomain of example.com).
bool HostAllowed(std::string_view host, const std::vector<std::string>& allowed);

// The body of `url`. Errors: InvalidArgument (host not allowed, or a redirect leaving the
// list), OutOfRange (larger than max_image_bytes), DeadlineExceeded (fetch_timeout_s),
// InvalidArgument (bad URL, connection / TLS failure, HTTP status other than 200).
StatusOr<std::string> FetchRemoteImage(std::string_view url, const MediaConfig& config);

}  // namespace vlserve::server
