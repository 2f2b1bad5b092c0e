#include "server/media_input.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <filesystem>
#include <span>

#include "base/clock.h"
#include "server/remote_fetch.h"

namespace vlserve::server {
namespace {

constexpr std::string_view kRemoteDisabled =
    "remote image URLs are disabled; allow hosts with --allow-media-domains, or send the "
    "image inline as a data: URL";

std::array<int8_t, 256> Base64Table() {
  std::array<int8_t, 256> t;
  t.fill(-1);
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < alphabet.size(); ++i) t[static_cast<uint8_t>(alphabet[i])] = i;
  // URL-safe alphabet too (some clients produce it).
  t[static_cast<uint8_t>('-')] = 62;
  t[static_cast<uint8_t>('_')] = 63;
  return t;
}

StatusOr<std::string> ReadFileUnder(std::string_view path, const MediaConfig& config) {
  namespace fs = std::filesystem;
  if (config.media_dir.empty()) {
    return InvalidArgumentError("file:// image URLs are disabled; start vlserve with --media-dir");
  }
  std::error_code ec;
  const fs::path root = fs::canonical(config.media_dir, ec);
  if (ec) return NotFoundError(fmt::format("--media-dir '{}' does not exist", config.media_dir));
  const fs::path file = fs::weakly_canonical(fs::path(std::string(path)), ec);
  const auto [root_end, file_it] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  if (ec || root_end != root.end()) {
    return InvalidArgumentError(
        fmt::format("file '{}' is outside --media-dir; only files below it can be read", path));
  }
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever and
  // hold a media worker; only regular files are images.
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return NotFoundError(fmt::format("image file '{}' cannot be opened", path));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return InvalidArgumentError(
        fmt::format("'{}' is not a regular file; file:// URLs must name image files", path));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size > config.max_image_bytes) {
    return OutOfRangeError(fmt::format("image file '{}' is {} bytes; the limit is {}", path, size,
                                       config.max_image_bytes));
  }
  std::string bytes(size, '\0');
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, bytes.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);  // a file that shrank while read
  return bytes;
}

StatusOr<std::string> DecodeDataUrl(std::string_view url) {
  // data:[<mediatype>][;base64],<data>
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) {
    return InvalidArgumentError("data: URL has no ',' before its payload");
  }
  const std::string_view meta = url.substr(5, comma - 5);
  if (meta.size() < 7 || meta.substr(meta.size() - 7) != ";base64") {
    return InvalidArgumentError("data: URL must be base64 encoded (data:image/...;base64,...)");
  }
  auto bytes = DecodeBase64(url.substr(comma + 1));
  if (!bytes.ok()) return bytes.status().WithContext("data: URL");
  return bytes;
}

}  // namespace

StatusOr<std::string> DecodeBase64(std::string_view text) {
  static const std::array<int8_t, 256> table = Base64Table();
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) {
    return InvalidArgumentError("invalid base64: the length is not a valid base64 length");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const int8_t v = table[static_cast<uint8_t>(text[i])];
    if (v < 0) {
      return InvalidArgumentError(fmt::format("invalid base64: byte {} ('{}') is not in the "
                                              "base64 alphabet",
                                              i, text[i] >= 32 && text[i] < 127 ? text[i] : '?'));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string EncodeBase64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const auto at = [&](size_t k) -> uint32_t {
      return k < bytes.size() ? static_cast<uint8_t>(bytes[k]) : 0;
    };
    const uint32_t n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += i + 1 < bytes.size() ? kAlphabet[n >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

MediaConfig WithFetchDeadline(const MediaConfig& config) {
  MediaConfig out = config;
  out.fetch_deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(config.fetch_timeout_s * 1000));
  return out;
}

StatusOr<std::string> FetchImageBytes(std::string_view url, const MediaConfig& config) {
  if (url.starts_with("data:")) return DecodeDataUrl(url);
  if (url.starts_with("file://")) return ReadFileUnder(url.substr(7), config);
  if (url.starts_with("http://") || url.starts_with("https://")) {
    if (config.allowed_hosts.empty()) return InvalidArgumentError(std::string(kRemoteDisabled));
    return FetchRemoteImage(url, config);
  }
  return InvalidArgumentError(fmt::format(
      "image URL '{}' has an unsupported scheme; use data:, file:// (with --media-dir) or "
      "http(s):// (with --allow-media-domains)",
      url.substr(0, std::min<size_t>(url.size(), 32))));
}

}  // namespace vlserve::server
