// Image inputs of a chat request: data: URLs (base64), file:// below --media-dir, and
// http(s) URLs on --allow-media-domains hosts (remote_fetch.h) -> encoded image bytes
// (vision_input.h decodes them, or skips decoding on an encoder-cache hit).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "media/image.h"
#include "server/chat_request.h"

namespace vlserve::server {

struct MediaConfig {
  std::string media_dir;           // file:// URLs must resolve below it; "" = file:// off
  std::vector<std::string> allowed_hosts;  // http(s) image hosts; empty = remote fetch off
  double fetch_timeout_s = 10;             // all remote fetches of one request
  // When set, the deadline of every remote fetch (one per request, from WithFetchDeadline);
  // unset = fetch_timeout_s from each fetch's start.
  std::chrono::steady_clock::time_point fetch_deadline{};
  int64_t max_image_pixels = 40'000'000;
  size_t max_image_bytes = 32u << 20;
};

// Strict RFC 4648 base64 (padding optional, whitespace not allowed). InvalidArgument names
// the offending position.
StatusOr<std::string> DecodeBase64(std::string_view text);
// Standard alphabet with padding.
std::string EncodeBase64(std::string_view bytes);

// A copy of `config` whose remote fetches share one deadline, fetch_timeout_s from now:
// a request with 8 slow images holds a worker for the timeout once, not 8 times.
MediaConfig WithFetchDeadline(const MediaConfig& config);

// The encoded image bytes an image_url points to.
StatusOr<std::string> FetchImageBytes(std::string_view url, const MediaConfig& config);

}  // namespace vlserve::server
