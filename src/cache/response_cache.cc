#include "cache/response_cache.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <vector>

#include "base/check.h"

namespace vlserve {
namespace {

namespace json = boost::json;

constexpr int64_t kEntryOverheadBytes = 256;  // list node, map slot, strings' headers

void AppendCanonical(const json::value& v, std::string* out);

void AppendNumber(const json::value& v, std::string* out) {
  if (v.is_double()) {
    const double d = v.get_double();
    // Integral values print as integers so that 0, 0.0 and -0.0 (or 1 and 1.0) agree.
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
      *out += std::to_string(static_cast<int64_t>(d));
      return;
    }
  }
  *out += json::serialize(v);
}

void AppendObject(const json::object& o, std::string* out) {
  std::vector<const json::key_value_pair*> fields;
  fields.reserve(o.size());
  for (const json::key_value_pair& kv : o) fields.push_back(&kv);
  std::sort(fields.begin(), fields.end(),
            [](const auto* a, const auto* b) { return a->key() < b->key(); });
  *out += '{';
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) *out += ',';
    *out += json::serialize(json::string(fields[i]->key()));
    *out += ':';
    AppendCanonical(fields[i]->value(), out);
  }
  *out += '}';
}

// Boost.JSON's parser bounds the nesting depth, so the recursion is bounded too.
void AppendCanonical(const json::value& v, std::string* out) {
  switch (v.kind()) {
    case json::kind::object:
      AppendObject(v.get_object(), out);
      break;
    case json::kind::array: {
      *out += '[';
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) *out += ',';
        first = false;
        AppendCanonical(e, out);
      }
      *out += ']';
      break;
    }
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      AppendNumber(v, out);
      break;
    default:  // string, bool, null: Boost's serialisation is already canonical
      *out += json::serialize(v);
  }
}

void DigestField(EVP_MD_CTX* ctx, std::string_view s) {
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{s.size()} >> (8 * i));
  CHECK(EVP_DigestUpdate(ctx, len, sizeof(len)) == 1);
  CHECK(EVP_DigestUpdate(ctx, s.data(), s.size()) == 1);
}

}  // namespace

StatusOr<std::string> CanonicalRequestJson(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return InvalidArgumentError("the request body is not a JSON object");
  }
  json::object& o = v.get_object();
  for (std::string_view field : kIgnoredRequestFields) o.erase(field);
  std::string out;
  out.reserve(body.size());
  AppendCanonical(v, &out);
  return out;
}

std::string ResponseCacheKey(std::string_view canonical_request, std::string_view model_identity,
                             std::string_view cache_salt) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  CHECK(ctx != nullptr);
  CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1);
  DigestField(ctx, "vlserve.response.v1");
  DigestField(ctx, canonical_request);
  DigestField(ctx, model_identity);
  if (!cache_salt.empty()) DigestField(ctx, cache_salt);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(EVP_DigestFinal_ex(ctx, d, &len) == 1);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[d[i] >> 4];
    hex += kHex[d[i] & 15];
  }
  return hex;
}

StatusOr<std::string> ResponseCacheKeyForBody(std::string_view body,
                                              std::string_view model_identity,
                                              std::string_view cache_salt) {
  ASSIGN_OR_RETURN(std::string canonical, CanonicalRequestJson(body));
  return ResponseCacheKey(canonical, model_identity, cache_salt);
}

int64_t CachedResponse::Bytes() const {
  return static_cast<int64_t>(text.size() + finish_reason.size()) + kEntryOverheadBytes;
}

ResponseCache::ResponseCache(int64_t capacity_bytes)
    : capacity_(std::max<int64_t>(0, capacity_bytes)) {
  stats_.capacity_bytes = capacity_;
}

std::optional<CachedResponse> ResponseCache::Lookup(const std::string& key) {
  if (!enabled()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void ResponseCache::EraseLocked(List::iterator it) {
  stats_.bytes -= it->bytes;
  --stats_.entries;
  map_.erase(it->key);
  lru_.erase(it);
}

void ResponseCache::Insert(const std::string& key, CachedResponse value) {
  if (!enabled()) return;
  const int64_t bytes = value.Bytes() + static_cast<int64_t>(key.size());
  if (bytes > capacity_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = map_.find(key); it != map_.end()) EraseLocked(it->second);
  while (!lru_.empty() && stats_.bytes + bytes > capacity_) {
    EraseLocked(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(Entry{key, std::move(value), bytes});
  map_[key] = lru_.begin();
  stats_.bytes += bytes;
  ++stats_.entries;
  ++stats_.insertions;
}

ResponseCacheStats ResponseCache::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ResponseCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lru_.clear();
  map_.clear();
  stats_.entries = 0;
  stats_.bytes = 0;
}

}  // namespace vlserve
