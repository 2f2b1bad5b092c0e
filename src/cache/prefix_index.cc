#include "cache/prefix_index.h"

#include <openssl/evp.h>

#include <algorithm>

#include "base/check.h"

namespace vlserve {
namespace {

// Domain separation: a block digest can never equal a digest computed for another purpose
// (e.g. an encoder-cache key) from the same bytes. Bump the version if the layout changes.
constexpr std::string_view kBlockTag = "vlserve.kv-block.v1";
constexpr std::string_view kSaltTag = "vlserve.kv-salt.v1";

// Fixed-width little-endian fields keep the serialization unambiguous (no two different
// blocks serialize to the same bytes): every variable-length field is length-prefixed.
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

BlockHash Sha256(std::string_view data) {
  BlockHash h;
  unsigned int len = 0;
  CHECK(EVP_Digest(data.data(), data.size(), h.bytes.data(), &len, EVP_sha256(), nullptr) == 1)
      << "SHA-256 failed";
  CHECK_EQ(len, 32u);
  return h;
}

// H_{-1}: zeros for the default partition; a salt's digest otherwise. The salt is
// length-prefixed after a tag of its own, so no salt's seed is another salt's, and a
// seed is never zero (that would need a SHA-256 preimage).
BlockHash ChainSeed(std::string_view cache_salt) {
  if (cache_salt.empty()) return BlockHash{};
  std::string buf(kSaltTag);
  PutU64(buf, cache_salt.size());
  buf.append(cache_salt);
  return Sha256(buf);
}

}  // namespace

std::string BlockHash::Hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (uint8_t b : bytes) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

bool ExtendBlockHashes(std::span<const int32_t> tokens, std::span<const ContentSpan> spans,
                       int32_t block_size, int64_t max_blocks, std::vector<BlockHash>* hashes,
                       std::string_view cache_salt) {
  CHECK_GT(block_size, 0);
  const int64_t full = static_cast<int64_t>(tokens.size()) / block_size;
  const int64_t target = std::min(max_blocks, full);
  const BlockHash seed = hashes->empty() && target > 0 ? ChainSeed(cache_salt) : BlockHash{};
  std::string buf;
  size_t first_span = 0;  // spans ending at or before the current block are skipped
  for (int64_t j = static_cast<int64_t>(hashes->size()); j < target; ++j) {
    const int64_t lo = j * block_size, hi = lo + block_size;
    buf.clear();
    buf.append(kBlockTag);
    if (j > 0) {
      const BlockHash& parent = (*hashes)[j - 1];
      buf.append(reinterpret_cast<const char*>(parent.bytes.data()), parent.bytes.size());
    } else {
      buf.append(reinterpret_cast<const char*>(seed.bytes.data()), seed.bytes.size());
    }
    PutU32(buf, static_cast<uint32_t>(block_size));
    for (int64_t p = lo; p < hi; ++p) PutU32(buf, static_cast<uint32_t>(tokens[p]));
    while (first_span < spans.size() &&
           spans[first_span].position + spans[first_span].num_tokens <= lo) {
      ++first_span;
    }
    for (size_t s = first_span; s < spans.size() && spans[s].position < hi; ++s) {
      const ContentSpan& span = spans[s];
      const int64_t a = std::max(lo, span.position);
      const int64_t b = std::min(hi, span.position + span.num_tokens);
      if (a >= b) continue;
      if (span.content_hash.empty()) return false;  // unnamed content: never share
      PutU32(buf, static_cast<uint32_t>(a - lo));              // overlap start in block
      PutU64(buf, static_cast<uint64_t>(a - span.position));   // overlap start in span
      PutU32(buf, static_cast<uint32_t>(b - a));               // overlap length
      PutU64(buf, static_cast<uint64_t>(span.num_tokens));     // span length
      PutU64(buf, span.content_hash.size());
      buf.append(span.content_hash);
    }
    hashes->push_back(Sha256(buf));
  }
  return true;
}

PrefixIndex::PrefixIndex(BlockPool* pool)
    : pool_(pool),
      hash_of_(pool->num_blocks()),
      indexed_(pool->num_blocks(), false) {
  pool_->SetEvictionCallback([this](int32_t block) { OnEvict(block); });
}

PrefixIndex::~PrefixIndex() { pool_->SetEvictionCallback(nullptr); }

std::vector<int32_t> PrefixIndex::Match(std::span<const BlockHash> hashes) const {
  std::vector<int32_t> blocks;
  for (const BlockHash& h : hashes) {
    auto it = map_.find(h);
    if (it == map_.end()) break;
    blocks.push_back(it->second);
  }
  return blocks;
}

bool PrefixIndex::Insert(const BlockHash& hash, int32_t block) {
  CHECK(block >= 0 && block < static_cast<int32_t>(indexed_.size()));
  if (map_.count(hash) != 0) return false;
  // A block has one content for its whole indexed life: full blocks are never rewritten.
  CHECK(!indexed_[block]) << "block " << block << " is already indexed under another hash";
  pool_->MarkCached(block);
  map_.emplace(hash, block);
  hash_of_[block] = hash;
  indexed_[block] = true;
  return true;
}

void PrefixIndex::OnEvict(int32_t block) {
  if (block < 0 || block >= static_cast<int32_t>(indexed_.size()) || !indexed_[block]) return;
  map_.erase(hash_of_[block]);
  indexed_[block] = false;
  ++evictions_;
}

}  // namespace vlserve
