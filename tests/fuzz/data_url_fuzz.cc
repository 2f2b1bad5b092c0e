// libFuzzer target for image_url values (src/server/media_input.cc): data: URLs and their
// base64, with file:// and remote fetches switched off as in a default server (the target
// never touches the file system or the network).
// Properties: a refused URL is InvalidArgument with a message; base64 decoding agrees with
// encoding (decode(encode(x)) == x for any bytes; encode(decode(t)) decodes to the same
// bytes for any accepted t); a data: URL's bytes are exactly its payload's decoding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "server/media_input.h"

namespace {

using vlserve::StatusCode;
using namespace vlserve::server;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto round_trip = DecodeBase64(EncodeBase64(input));
  CHECK(round_trip.ok() && *round_trip == input) << round_trip.status().ToString();

  auto decoded = DecodeBase64(input);
  if (decoded.ok()) {
    CHECK(decoded->size() <= input.size() / 4 * 3 + 2);
    auto again = DecodeBase64(EncodeBase64(*decoded));
    CHECK(again.ok() && *again == *decoded);
  } else {
    CHECK(decoded.status().code() == StatusCode::kInvalidArgument);
  }

  // The input as an image URL, and as the payload of a data: URL.
  const MediaConfig config;  // no --media-dir, no --allow-media-domains
  for (const std::string& url :
       {std::string(input), "data:image/png;base64," + std::string(input)}) {
    auto bytes = FetchImageBytes(url, config);
    if (!bytes.ok()) {
      CHECK(bytes.status().code() == StatusCode::kInvalidArgument) << bytes.status().ToString();
      CHECK(!bytes.status().message().empty());
      continue;
    }
    CHECK(std::string_view(url).starts_with("data:")) << "only data: URLs can succeed here";
    auto payload = DecodeBase64(std::string_view(url).substr(url.find(',') + 1));
    CHECK(payload.ok() && *payload == *bytes);
  }
  return 0;
}
