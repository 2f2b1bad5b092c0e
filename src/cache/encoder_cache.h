// Encoder-output cache: the same image (or rendered page) under the same preprocessing and
// the same vision tower is encoded once (docs/architecture.md "Caches").
//
//   key   = SHA-256 hex of (cache salt, content bytes, preprocessing description, mmproj
//           identity), built by EncoderCacheKey / EncoderKeyBuilder; the content is
//           user-controlled, so the key is cryptographic (no cross-user poisoning by
//           collision). The salt is the request's cache partition (docs/caching.md
//           "Isolation"): the same image under two salts is two entries of one cache.
//   value = the projected embeddings, shared and immutable ([rows, hidden] float32,
//           optionally split into segments, e.g. one per tile).
//   bound = total bytes of the values (+ a small per-entry overhead); least recently used
//           entries are evicted first. Capacity 0 disables the cache (every Lookup misses,
//           Insert stores nothing).
//
// Thread-safe: the server's worker threads look up and insert concurrently. A value is a
// shared_ptr to const data, so an entry evicted while a request still uses it stays alive
// until that request drops it (memory is bounded by the cache plus in-flight requests).
// GetOrCompute also collapses concurrent misses on the same key into one encode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/family.h"
#include "base/status.h"

namespace vlserve {

// SHA-256 of `data` as 64 lowercase hex digits.
std::string Sha256Hex(std::span<const uint8_t> data);

// Incremental key builder, for content that is not one contiguous buffer (e.g. the rows of
// rendered pages). Feed every content byte with Update, then Finish once.
class EncoderKeyBuilder {
 public:
  // `cache_salt`: the request's cache partition ("" = the shared default one). It is
  // digested first and length-prefixed, so keys of different salts never coincide.
  explicit EncoderKeyBuilder(std::string_view cache_salt = {});
  ~EncoderKeyBuilder();
  EncoderKeyBuilder(const EncoderKeyBuilder&) = delete;
  EncoderKeyBuilder& operator=(const EncoderKeyBuilder&) = delete;

  void Update(std::span<const uint8_t> content);
  void Update(std::string_view content) {
    Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()),
                                    content.size()));
  }
  // `preprocess`: every parameter that changes the pixels the tower sees (e.g.
  // "smolvlm longest_edge=1536 tile=512 mean=.5,.5,.5 std=.5,.5,.5"); `mmproj_id`: the
  // vision tower's identity (e.g. its file's SHA-256 or name + size + mtime). The content
  // length is included, so different splits of Update calls give the same key only for the
  // same bytes.
  std::string Finish(std::string_view preprocess, std::string_view mmproj_id);

 private:
  void* ctx_;  // EVP_MD_CTX
  uint64_t content_bytes_ = 0;
  bool finished_ = false;
};

// One-shot key for contiguous content (encoded image file bytes or page pixels).
std::string EncoderCacheKey(std::span<const uint8_t> content, std::string_view preprocess,
                            std::string_view mmproj_id, std::string_view cache_salt = {});

struct EncoderOutput {
  std::shared_ptr<const std::vector<float>> embeddings;  // [rows, hidden]
  int64_t rows = 0;
  // Floats per row: the projector's output width (for deepstack models (1 + n) x the text
  // hidden size, the deepstack slices travel with the main embedding).
  int64_t hidden = 0;
  // Rows per segment (e.g. per tile, in prompt order); empty = one segment of `rows`.
  std::vector<int64_t> segment_rows;
  // How the family laid the image out (tiles, grid, token count): a hit must rebuild the
  // same prompt without decoding the image again.
  models::ImageLayout layout;

  // Bytes charged against the capacity.
  int64_t Bytes() const;
};

struct EncoderCacheStats {
  int64_t hits = 0, misses = 0, evictions = 0, insertions = 0;
  int64_t entries = 0;
  int64_t bytes = 0;           // current charged bytes
  int64_t capacity_bytes = 0;
};

class EncoderCache {
 public:
  // `capacity_bytes` 0 = disabled. Server flag: --encoder-cache-mb (default 256).
  explicit EncoderCache(int64_t capacity_bytes);
  static constexpr int64_t kDefaultCapacityMb = 256;

  // The cached output (and marks it most recently used), or nullopt. Counts a hit/miss.
  std::optional<EncoderOutput> Lookup(const std::string& key);

  // For a caller whose earlier Lookup of `key` missed and who is about to compute it
  // (the engine, just before encoding a queued image): another request may have stored
  // it since. When found, that earlier miss is recounted as a hit, so the statistics
  // still count one lookup per image; when not found, nothing is counted.
  std::optional<EncoderOutput> LookupAfterMiss(const std::string& key);

  // Stores `value` (replacing an older value of the key) and evicts least recently used
  // entries until the total fits. InvalidArgument for a value whose shape does not match
  // its data; a value larger than the whole capacity is not stored (not an error).
  Status Insert(const std::string& key, EncoderOutput value);

  // Lookup; on a miss runs `compute` (outside the lock) and inserts its result. Concurrent
  // callers missing on the same key wait for the first one's result instead of encoding
  // again (counted as hits). Errors of `compute` are returned to every waiter and not
  // cached. `hit` (optional) tells whether this call avoided computing.
  StatusOr<EncoderOutput> GetOrCompute(const std::string& key,
                                       const std::function<StatusOr<EncoderOutput>()>& compute,
                                       bool* hit = nullptr);

  EncoderCacheStats Stats() const;
  void Clear();
  int64_t capacity_bytes() const { return capacity_; }

 private:
  struct Entry {
    std::string key;
    EncoderOutput value;
    int64_t bytes = 0;
  };
  struct InFlight;
  using List = std::list<Entry>;  // front = most recently used

  std::optional<EncoderOutput> LookupLocked(const std::string& key);
  void InsertLocked(const std::string& key, EncoderOutput value);
  void EvictToFitLocked(int64_t incoming);

  const int64_t capacity_;
  mutable std::mutex mu_;
  List lru_;
  std::unordered_map<std::string, List::iterator> map_;
  std::unordered_map<std::string, std::shared_ptr<InFlight>> in_flight_;
  EncoderCacheStats stats_;
};

}  // namespace vlserve
