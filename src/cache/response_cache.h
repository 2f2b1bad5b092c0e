// Response cache: the complete answer of a deterministic chat request (greedy, or a given
// seed), replayed without running the model when the same request comes again. Opt-in
// (`--response-cache-mb`, default 0 = off); docs/caching.md.
//
//   key   = SHA-256 hex of (canonical request JSON, model identity[, cache salt]). The
//           salt is the request's cache partition (docs/caching.md "Isolation"): a hit
//           needs the same salt. The canonical form is
//           the parsed body with the fields that do not change the answer removed
//           (kIgnoredRequestFields), object keys sorted and no whitespace, so key order,
//           spacing and the stream flag do not matter. Images sent as data: URLs are part
//           of the body and so of the key. The body is user-controlled: the hash is
//           cryptographic (docs/architecture.md "Caches").
//   value = answer text, finish reason ("stop" / "length") and token usage.
//   bound = bytes (text + key + a fixed per-entry overhead), least recently used first.
//
// Thread-safe. Which requests may be cached (deterministic, complete answers only) is the
// server's decision; this class only stores what it is given.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"

namespace vlserve {

// Top-level request fields left out of the key: transport ("stream", "stream_options"),
// attribution ("user"), scheduling extensions that change when, not what, a complete
// answer is ("priority", "timeout"), and "cache_salt", which the server folds into the
// partition it passes to ResponseCacheKey (with the caller's key under --cache-isolation).
inline constexpr std::string_view kIgnoredRequestFields[] = {
    "stream", "stream_options", "user", "priority", "timeout", "cache_salt"};

// The canonical JSON text of a request body (see above). Numbers keep their value:
// 0, 0.0 and -0.0 are the same; an integral double within ±2^53 prints as an integer.
// InvalidArgument when `body` is not a JSON object.
StatusOr<std::string> CanonicalRequestJson(std::string_view body);

// SHA-256 hex over a domain tag and the length-prefixed canonical request and
// `model_identity` (whatever tells served models apart: id, weight files, template, ...),
// then, when not empty, the length-prefixed `cache_salt` (the cache partition). Every
// field is length-prefixed, so keys with and without a salt, or of two salts, differ;
// keys of the default partition are what they were before salts existed.
std::string ResponseCacheKey(std::string_view canonical_request, std::string_view model_identity,
                             std::string_view cache_salt = {});

// CanonicalRequestJson + ResponseCacheKey.
StatusOr<std::string> ResponseCacheKeyForBody(std::string_view body,
                                              std::string_view model_identity,
                                              std::string_view cache_salt = {});

struct CachedResponse {
  std::string text;           // the whole answer
  std::string finish_reason;  // "stop" or "length"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prefix-cache tokens of the run that produced it

  int64_t Bytes() const;  // charged against the capacity (without the key)
};

struct ResponseCacheStats {
  int64_t hits = 0, misses = 0, insertions = 0, evictions = 0;
  int64_t entries = 0;
  int64_t bytes = 0;  // current charged bytes (values + keys + overhead)
  int64_t capacity_bytes = 0;
};

class ResponseCache {
 public:
  // 0 = disabled: Lookup always misses without counting, Insert stores nothing.
  explicit ResponseCache(int64_t capacity_bytes);

  bool enabled() const { return capacity_ > 0; }
  int64_t capacity_bytes() const { return capacity_; }

  // The stored answer (now most recently used), or nullopt. Counts a hit or a miss.
  std::optional<CachedResponse> Lookup(const std::string& key);
  // Stores (or replaces) and evicts least recently used entries until it fits. An entry
  // larger than the whole capacity is not stored.
  void Insert(const std::string& key, CachedResponse value);

  ResponseCacheStats Stats() const;
  void Clear();

 private:
  struct Entry {
    std::string key;
    CachedResponse value;
    int64_t bytes = 0;
  };
  using List = std::list<Entry>;  // front = most recently used

  void EraseLocked(List::iterator it);

  const int64_t capacity_;
  mutable std::mutex mu_;
  List lru_;
  std::unordered_map<std::string, List::iterator> map_;
  ResponseCacheStats stats_;
};

}  // namespace vlserve
