#include "cache/encoder_cache.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <condition_variable>
#include <numeric>

#include "base/check.h"

namespace vlserve {
namespace {

constexpr std::string_view kKeyTag = "vlserve.encoder-output.v1";
// Charged per entry on top of the floats: key, list node, map node, vector headers.
constexpr int64_t kEntryOverheadBytes = 256;

std::string ToHex(const unsigned char* d, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[d[i] >> 4]);
    s.push_back(kDigits[d[i] & 15]);
  }
  return s;
}

EVP_MD_CTX* Ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

void DigestU64(EVP_MD_CTX* ctx, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>((v >> (8 * i)) & 0xff);
  CHECK(EVP_DigestUpdate(ctx, b, sizeof(b)) == 1);
}

void DigestField(EVP_MD_CTX* ctx, std::string_view s) {
  DigestU64(ctx, s.size());  // length prefix: fields cannot run into each other
  CHECK(EVP_DigestUpdate(ctx, s.data(), s.size()) == 1);
}

}  // namespace

std::string Sha256Hex(std::span<const uint8_t> data) {
  unsigned char d[32];
  unsigned int len = 0;
  CHECK(EVP_Digest(data.data(), data.size(), d, &len, EVP_sha256(), nullptr) == 1);
  return ToHex(d, len);
}

EncoderKeyBuilder::EncoderKeyBuilder(std::string_view cache_salt) : ctx_(EVP_MD_CTX_new()) {
  CHECK(ctx_ != nullptr);
  CHECK(EVP_DigestInit_ex(Ctx(ctx_), EVP_sha256(), nullptr) == 1);
  DigestField(Ctx(ctx_), kKeyTag);
  DigestField(Ctx(ctx_), cache_salt);  // always present: the fields' layout is fixed
}

EncoderKeyBuilder::~EncoderKeyBuilder() { EVP_MD_CTX_free(Ctx(ctx_)); }

void EncoderKeyBuilder::Update(std::span<const uint8_t> content) {
  CHECK(!finished_) << "EncoderKeyBuilder::Update after Finish";
  CHECK(EVP_DigestUpdate(Ctx(ctx_), content.data(), content.size()) == 1);
  content_bytes_ += content.size();
}

std::string EncoderKeyBuilder::Finish(std::string_view preprocess, std::string_view mmproj_id) {
  CHECK(!finished_) << "EncoderKeyBuilder::Finish called twice";
  finished_ = true;
  // The content length goes after the content (its length is only known now); the two
  // strings are length-prefixed, so (content, preprocess, mmproj) splits are unambiguous.
  DigestU64(Ctx(ctx_), content_bytes_);
  DigestField(Ctx(ctx_), preprocess);
  DigestField(Ctx(ctx_), mmproj_id);
  unsigned char d[32];
  unsigned int len = 0;
  CHECK(EVP_DigestFinal_ex(Ctx(ctx_), d, &len) == 1);
  return ToHex(d, len);
}

std::string EncoderCacheKey(std::span<const uint8_t> content, std::string_view preprocess,
                            std::string_view mmproj_id, std::string_view cache_salt) {
  EncoderKeyBuilder b(cache_salt);
  b.Update(content);
  return b.Finish(preprocess, mmproj_id);
}

int64_t EncoderOutput::Bytes() const {
  const int64_t floats = embeddings ? static_cast<int64_t>(embeddings->size()) : 0;
  return floats * static_cast<int64_t>(sizeof(float)) +
         static_cast<int64_t>(segment_rows.size() * sizeof(int64_t)) + kEntryOverheadBytes;
}

struct EncoderCache::InFlight {
  std::condition_variable done_cv;
  bool done = false;
  std::optional<StatusOr<EncoderOutput>> result;
};

EncoderCache::EncoderCache(int64_t capacity_bytes) : capacity_(std::max<int64_t>(0, capacity_bytes)) {
  stats_.capacity_bytes = capacity_;
}

std::optional<EncoderOutput> EncoderCache::LookupLocked(const std::string& key) {
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);  // most recently used
  return it->second->value;
}

std::optional<EncoderOutput> EncoderCache::Lookup(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<EncoderOutput> v = LookupLocked(key);
  ++(v ? stats_.hits : stats_.misses);
  return v;
}

std::optional<EncoderOutput> EncoderCache::LookupAfterMiss(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<EncoderOutput> v = LookupLocked(key);
  if (v) {
    ++stats_.hits;
    if (stats_.misses > 0) --stats_.misses;
  }
  return v;
}

void EncoderCache::EvictToFitLocked(int64_t incoming) {
  while (!lru_.empty() && stats_.bytes + incoming > capacity_) {
    Entry& victim = lru_.back();
    stats_.bytes -= victim.bytes;
    map_.erase(victim.key);
    lru_.pop_back();
    ++stats_.evictions;
  }
  stats_.entries = static_cast<int64_t>(map_.size());
}

void EncoderCache::InsertLocked(const std::string& key, EncoderOutput value) {
  const int64_t bytes = value.Bytes();
  if (auto it = map_.find(key); it != map_.end()) {  // replace: drop the old value first
    stats_.bytes -= it->second->bytes;
    lru_.erase(it->second);
    map_.erase(it);
  }
  if (bytes > capacity_) {
    stats_.entries = static_cast<int64_t>(map_.size());
    return;
  }
  EvictToFitLocked(bytes);
  lru_.push_front(Entry{key, std::move(value), bytes});
  map_[key] = lru_.begin();
  stats_.bytes += bytes;
  ++stats_.insertions;
  stats_.entries = static_cast<int64_t>(map_.size());
}

Status EncoderCache::Insert(const std::string& key, EncoderOutput value) {
  if (value.embeddings == nullptr || value.rows < 0 || value.hidden < 0 ||
      static_cast<int64_t>(value.embeddings->size()) != value.rows * value.hidden) {
    return InvalidArgumentError(fmt::format(
        "encoder output for the cache has {} floats, expected rows {} x hidden {}",
        value.embeddings ? value.embeddings->size() : 0, value.rows, value.hidden));
  }
  if (!value.segment_rows.empty() &&
      std::accumulate(value.segment_rows.begin(), value.segment_rows.end(), int64_t{0}) !=
          value.rows) {
    return InvalidArgumentError(
        fmt::format("encoder output segment_rows do not add up to rows {}", value.rows));
  }
  std::lock_guard<std::mutex> lock(mu_);
  InsertLocked(key, std::move(value));
  return OkStatus();
}

StatusOr<EncoderOutput> EncoderCache::GetOrCompute(
    const std::string& key, const std::function<StatusOr<EncoderOutput>()>& compute,
    bool* hit) {
  std::shared_ptr<InFlight> flight;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (std::optional<EncoderOutput> v = LookupLocked(key)) {
      ++stats_.hits;
      if (hit) *hit = true;
      return std::move(*v);
    }
    if (auto it = in_flight_.find(key); it != in_flight_.end() && capacity_ > 0) {
      std::shared_ptr<InFlight> other = it->second;  // keep alive while waiting
      other->done_cv.wait(lock, [&] { return other->done; });
      const bool ok = other->result->ok();
      ++(ok ? stats_.hits : stats_.misses);
      if (hit) *hit = ok;
      return *other->result;
    }
    ++stats_.misses;
    if (capacity_ > 0) {
      flight = std::make_shared<InFlight>();
      in_flight_[key] = flight;
    }
  }
  if (hit) *hit = false;
  StatusOr<EncoderOutput> result = compute();
  if (result.ok()) {
    Status s = Insert(key, *result);
    if (!s.ok()) result = s;
  }
  if (flight) {
    std::lock_guard<std::mutex> lock(mu_);
    flight->result.emplace(result);
    flight->done = true;
    in_flight_.erase(key);
    flight->done_cv.notify_all();
  }
  return result;
}

EncoderCacheStats EncoderCache::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void EncoderCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lru_.clear();
  map_.clear();
  stats_.bytes = 0;
  stats_.entries = 0;
}

}  // namespace vlserve
