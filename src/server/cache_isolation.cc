#include "server/cache_isolation.h"

#include <fmt/format.h>

#include <span>

#include "cache/encoder_cache.h"

namespace vlserve::server {

StatusOr<CacheIsolation> ParseCacheIsolation(std::string_view name) {
  if (name == "none") return CacheIsolation::kNone;
  if (name == "api-key") return CacheIsolation::kApiKey;
  return InvalidArgumentError(fmt::format(
      "--cache-isolation '{}' is not known; use none (callers share cached prompts, images "
      "and answers unless they send a cache_salt) or api-key (one partition per --api-key)",
      name));
}

std::vector<std::string> SplitApiKeys(std::string_view flag) {
  std::vector<std::string> keys;
  while (!flag.empty()) {
    const size_t comma = flag.find(',');
    std::string_view key = flag.substr(0, comma);
    flag = comma == std::string_view::npos ? std::string_view() : flag.substr(comma + 1);
    while (!key.empty() && (key.front() == ' ' || key.front() == '\t')) key.remove_prefix(1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    if (!key.empty()) keys.emplace_back(key);
  }
  return keys;
}

std::string CachePartition(CacheIsolation mode, std::string_view api_key,
                           std::string_view cache_salt) {
  if (mode == CacheIsolation::kNone) return std::string(cache_salt);
  const std::string digest = Sha256Hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(api_key.data()), api_key.size()));
  return fmt::format("key:{}:{}", digest, cache_salt);
}

}  // namespace vlserve::server
