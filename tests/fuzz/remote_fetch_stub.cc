// data_url_fuzz runs media_input.cc with remote fetches switched off (no
// --allow-media-domains), so FetchRemoteImage is never called; this stands in for
// remote_fetch.cc to keep Boost.Beast and OpenSSL out of the fuzzer build.
#include "base/check.h"
#include "server/remote_fetch.h"

namespace vlserve::server {

StatusOr<std::string> FetchRemoteImage(std::string_view url, const MediaConfig& config) {
  CHECK(false) << "FetchRemoteImage reached with remote fetches off: " << url;
  return InternalError("unreachable");
}

}  // namespace vlserve::server
