// Cache isolation between callers (docs/caching.md "Isolation"): which cache partition a
// request belongs to. The partition string is mixed into the key of every cache a request
// touches (the seed of the prefix-KV hash chain, the encoder-cache key, the response-cache
// key), so requests share cached work only within one partition, while the memory of each
// cache and its eviction stay shared. Without isolation a caller could tell from
// `cached_tokens`, the time to first token, `X-Cache` or an instant answer that someone
// else sent the same prompt or image.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve::server {

enum class CacheIsolation {
  kNone,    // partition = the request's cache_salt ("" = the shared default partition)
  kApiKey,  // partition = the caller's API key (as a digest) and its cache_salt
};

// "none" | "api-key" (--cache-isolation); InvalidArgument naming the choices otherwise.
StatusOr<CacheIsolation> ParseCacheIsolation(std::string_view name);

// The keys of --api-key: comma-separated (as llama-server's), spaces around each trimmed,
// empty entries dropped.
std::vector<std::string> SplitApiKeys(std::string_view flag);

// The partition of one request. kNone: `cache_salt` itself. kApiKey: "key:" + the SHA-256
// hex of `api_key` + ":" + `cache_salt`; only a digest of the key reaches the cache keys,
// and the fixed-length key part keeps every key's partitions apart from every other key's
// whatever salts the callers choose.
std::string CachePartition(CacheIsolation mode, std::string_view api_key,
                           std::string_view cache_salt);

}  // namespace vlserve::server
