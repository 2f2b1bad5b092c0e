// Prefix index: content address -> KV block, for automatic prefix reuse
// (docs/architecture.md "KV cache").
//
// Every FULL block of a sequence (block_size tokens) gets a chain hash
//
//   H_j = SHA-256(tag, H_{j-1}, token ids of block j,
//                 for each content span overlapping block j: where the overlap starts in
//                 the block, where it starts in the span, its length, the span's length
//                 and the span's content hash)
//
// with H_{-1} = 32 zero bytes, or SHA-256(salt tag, length, salt) for a request with a
// cache salt (docs/caching.md "Isolation"). H_j therefore names everything the K/V of
// positions [16j, 16j + 16) depend on: all earlier tokens (through the chain), these
// tokens, and the identity of the image embeddings fed at image positions; and with the
// salt in the chain's seed, requests of different salts never share a block (as vLLM's
// cache_salt, which it mixes into the first block's hash) while the pool, the index and
// eviction stay one. Two different images of equal
// size at the same place give different hashes; a prompt that diverges inside an image
// span stops matching at the first block of the divergence. Prompts are user-controlled,
// so the chain uses a cryptographic hash (a collision would serve one user's KV to
// another); std::hash of the digest is only the bucket index of the table.
//
// Life cycle (with BlockPool): a sequence registers each of its blocks as soon as the
// block is full and computed (Insert -> BlockPool::MarkCached). When the last sequence
// using it finishes, the block stays in the pool's LRU with refcount 0 and stays indexed;
// the pool evicts it only when it needs a block, and the eviction callback removes it
// from the index. Indexed blocks are read-only: they are full, and a sequence only writes
// positions past its last full shared block.
//
// Not thread-safe: the engine thread owns the pool and the index.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/block_pool.h"

namespace vlserve {

// A 32-byte SHA-256 digest naming one full block's content and its whole prefix.
struct BlockHash {
  std::array<uint8_t, 32> bytes{};
  bool operator==(const BlockHash& other) const = default;
  std::string Hex() const;
};

struct BlockHashHasher {
  // The digest is already uniformly distributed: its first 8 bytes are a fine bucket key.
  size_t operator()(const BlockHash& h) const {
    size_t v;
    std::memcpy(&v, h.bytes.data(), sizeof(v));
    return v;
  }
};

// A run of positions whose inputs are not token embeddings (an image or a rendered page):
// positions [position, position + num_tokens) of the sequence. content_hash must identify
// the embeddings fed there exactly (SHA-256 hex of the image bytes + preprocessing + tower).
struct ContentSpan {
  int64_t position = 0;
  int64_t num_tokens = 0;
  std::string_view content_hash;
};

// Extends `hashes` (the chain of `tokens`' full blocks) until it covers
// min(max_blocks, tokens.size() / block_size) blocks. `spans` sorted by position,
// non-overlapping. A block overlapping a span with an EMPTY content_hash cannot be named
// safely: the chain stops before it (that block and all later ones are never shared).
// Returns false when the chain stopped for that reason before reaching the target.
// `cache_salt`: the request's cache partition ("" = the shared default one); a chain must
// be extended with the salt it was started with.
bool ExtendBlockHashes(std::span<const int32_t> tokens, std::span<const ContentSpan> spans,
                       int32_t block_size, int64_t max_blocks, std::vector<BlockHash>* hashes,
                       std::string_view cache_salt = {});

class PrefixIndex {
 public:
  // Installs itself as `pool`'s eviction callback; `pool` must outlive the index.
  explicit PrefixIndex(BlockPool* pool);
  ~PrefixIndex();
  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  // The blocks holding hashes[0], hashes[1], ... as long as each is indexed (the longest
  // cached prefix). Takes no references: the caller IncRefs the blocks it keeps before it
  // allocates anything (an allocation may evict refcount-0 blocks).
  std::vector<int32_t> Match(std::span<const BlockHash> hashes) const;

  // Registers a full, computed block of a sequence (refcount >= 1) under `hash` and marks
  // it cached in the pool. If `hash` is already indexed (another sequence computed the
  // same content at the same time, or `block` itself), nothing changes and false is
  // returned: the duplicate block stays private and is freed normally.
  bool Insert(const BlockHash& hash, int32_t block);

  bool Contains(const BlockHash& hash) const { return map_.count(hash) != 0; }
  int64_t size() const { return static_cast<int64_t>(map_.size()); }
  int64_t evictions() const { return evictions_; }

 private:
  void OnEvict(int32_t block);

  BlockPool* pool_;
  std::unordered_map<BlockHash, int32_t, BlockHashHasher> map_;
  std::vector<BlockHash> hash_of_;  // [num_blocks] valid where indexed_[b]
  std::vector<bool> indexed_;       // [num_blocks]
  int64_t evictions_ = 0;
};

}  // namespace vlserve
