// Image inputs of a chat request: data: URLs (base64), file:// below --media-dir, and
// (rejected for now) remote URLs -> decoded RGB images via src/media. Document parts
// (rendered text) are resolved here too once a vision encoder can read them.
#pragma once

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
  std::vector<std::string> allowed_hosts;  // remote fetch is not implemented: must be empty
  int64_t max_image_pixels = 40'000'000;
  size_t max_image_bytes = 32u << 20;
};

struct LoadedImage {
  media::Image image;
  std::string sha256_hex;  // of the encoded bytes (cache identity, ARCHITECTURE §4)
};

struct MediaTimings {
  double fetch_ms = 0;   // base64 decode / file read
  double decode_ms = 0;  // image decode
};

// Strict RFC 4648 base64 (padding optional, whitespace not allowed). InvalidArgument names
// the offending position.
StatusOr<std::string> DecodeBase64(std::string_view text);

// "sha256 hex" of bytes (OpenSSL).
std::string Sha256Hex(std::string_view bytes);

// The encoded image bytes an image_url points to.
StatusOr<std::string> FetchImageBytes(std::string_view url, const MediaConfig& config);

// Fetches and decodes one image_url part; adds to *timings.
StatusOr<LoadedImage> LoadImage(std::string_view url, const MediaConfig& config,
                                MediaTimings* timings);

}  // namespace vlserve::server
