#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <queue>

#include "tokenizer/unicode.h"

namespace vlserve::tokenizer {
namespace {

// Words up to this many bytes use the linear merge loop; longer ones the heap.
constexpr size_t kLinearMaxBytes = 48;
// Words longer than this are not cached (rare, and they would bloat the cache).
constexpr size_t kCacheMaxBytes = 64;

std::array<int, 256> ByteToCodePoint() {
  std::array<int, 256> map{};
  std::array<bool, 256> direct{};
  for (int b = 0; b < 256; ++b) {
    direct[b] = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  }
  int next = 256;
  for (int b = 0; b < 256; ++b) map[b] = direct[b] ? b : next++;
  return map;
}

// Cheap hash for short words (<= kCacheMaxBytes): 8-byte chunks, multiply-xorshift mix.
uint64_t HashWord(std::string_view w) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ w.size();
  size_t i = 0;
  for (; i + 8 <= w.size(); i += 8) {
    uint64_t v;
    std::memcpy(&v, w.data() + i, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, w.data() + i, w.size() - i);
  h = (h ^ tail) * 0x94D049BB133111EBull;
  return h ^ (h >> 29);
}

// Per-thread cache of encoded words: open addressing over a fixed slot array, keys and ids
// in two arenas. Cleared wholesale when half full (cheap: no per-entry frees), so its
// memory stays bounded (~2.5 MiB) and a miss costs one probe sequence and two appends.
class WordCache {
 public:
  static constexpr size_t kSlots = size_t{1} << 16;

  void Reset(uint64_t owner) {
    owner_ = owner;
    slots_.assign(kSlots, Slot{});
    used_ = 0;
    keys_.clear();
    ids_.clear();
  }
  uint64_t owner() const { return owner_; }

  // Appends the cached ids of `word` to out and returns true, or returns false.
  bool Find(std::string_view word, uint64_t hash, std::vector<int32_t>* out) const {
    for (size_t i = hash & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return false;
      if (s.hash == hash && s.key_len == word.size() &&
          std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
        out->insert(out->end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.n_ids);
        return true;
      }
    }
  }

  void Insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) {
    if (used_ >= kSlots / 2) Reset(owner_);  // words and ids are <= kCacheMaxBytes
    size_t i = hash & (kSlots - 1);
    while (slots_[i].key_len != 0) i = (i + 1) & (kSlots - 1);
    slots_[i] = Slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(ids_.size()),
                     static_cast<uint16_t>(word.size()), static_cast<uint16_t>(n)};
    keys_.append(word);
    ids_.insert(ids_.end(), ids, ids + n);
    ++used_;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0;
    uint32_t ids_off = 0;
    uint16_t key_len = 0;  // 0 = free (empty words are never cached)
    uint16_t n_ids = 0;
  };
  uint64_t owner_ = 0;
  std::vector<Slot> slots_;
  size_t used_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

WordCache& ThreadCache(uint64_t owner) {
  thread_local WordCache cache;
  if (cache.owner() != owner) cache.Reset(owner);
  return cache;
}

std::atomic<uint64_t> next_instance_id{1};

// Decodes a token's byte-level text to raw bytes; false if it has a non-alphabet char.
bool TokenBytes(std::string_view text, std::string* out) {
  out->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    const int b = UnicodeToByte(DecodeUtf8(text, &pos));
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace

const std::array<std::string, 256>& ByteToUnicode() {
  static const auto* table = [] {
    auto* t = new std::array<std::string, 256>();
    const std::array<int, 256> cps = ByteToCodePoint();
    for (int b = 0; b < 256; ++b) AppendUtf8(static_cast<uint32_t>(cps[b]), &(*t)[b]);
    return t;
  }();
  return *table;
}

int UnicodeToByte(uint32_t cp) {
  static const auto* inverse = [] {
    auto* inv = new std::array<int16_t, 512>();
    inv->fill(-1);
    const std::array<int, 256> cps = ByteToCodePoint();
    for (int b = 0; b < 256; ++b) (*inv)[cps[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return cp < 512 ? (*inverse)[cp] : -1;
}

StatusOr<BpeModel> BpeModel::Create(const std::vector<std::string>& tokens,
                                    const std::vector<std::string>& merges, bool ignore_merges) {
  BpeModel m;
  m.ignore_merges_ = ignore_merges;
  m.instance_id_ = next_instance_id.fetch_add(1);
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) ids.emplace(tokens[i], static_cast<int32_t>(i));
  auto find = [&](std::string_view s) {
    auto it = ids.find(s);
    return it == ids.end() ? -1 : it->second;
  };
  for (int b = 0; b < 256; ++b) m.byte_token_[b] = find(ByteToUnicode()[b]);

  size_t capacity = 16;
  m.shift_ = 60;
  while (capacity < merges.size() * 2) {
    capacity *= 2;
    --m.shift_;
  }
  m.table_.assign(capacity, MergeEntry{kEmpty, 0, 0});
  m.mask_ = capacity - 1;
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& merge = merges[rank];
    // Split at the first space after position 0 (a part may itself start with a space
    // in exotic vocabularies; llama.cpp splits the same way).
    const size_t sp = merge.find(' ', 1);
    if (sp == std::string::npos) {
      return InvalidArgumentError("BPE merge #" + std::to_string(rank) + " '" + merge +
                                  "' has no space; merges must be 'left right'");
    }
    const std::string_view left = std::string_view(merge).substr(0, sp);
    const std::string_view right = std::string_view(merge).substr(sp + 1);
    joined.assign(left);
    joined.append(right);
    const int32_t l = find(left), r = find(right), res = find(joined);
    if (l < 0 || r < 0 || res < 0) continue;
    if (m.FindMerge(l, r) != nullptr) continue;  // the first (best) rank wins
    m.InsertMerge(l, r, static_cast<int32_t>(rank), res);
    ++m.num_merges_;
  }
  if (ignore_merges) {
    std::string bytes;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (TokenBytes(tokens[i], &bytes)) m.whole_word_.emplace(bytes, static_cast<int32_t>(i));
    }
  }
  return m;
}

const BpeModel::MergeEntry* BpeModel::FindMerge(int32_t left, int32_t right) const {
  const uint64_t key =
      (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint64_t i = h >> shift_;; ++i) {
    const MergeEntry& e = table_[i & mask_];
    if (e.key == key) return &e;
    if (e.key == kEmpty) return nullptr;
  }
}

void BpeModel::InsertMerge(int32_t left, int32_t right, int32_t rank, int32_t result) {
  const uint64_t key =
      (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint64_t i = h >> shift_;; ++i) {
    MergeEntry& e = table_[i & mask_];
    if (e.key == kEmpty) {
      e = MergeEntry{key, rank, result};
      return;
    }
  }
}

// O(n^2) in the word length but with tiny constants: for the short words of normal text.
void BpeModel::MergeLinear(std::vector<int32_t>* syms) const {
  std::vector<int32_t>& s = *syms;
  // pair[i] describes the pair (s[i], s[i+1]); nullptr when it has no merge.
  const MergeEntry* pair_buf[kLinearMaxBytes];
  size_t n = s.size();
  auto lookup = [&](size_t i) -> const MergeEntry* {
    return (s[i] < 0 || s[i + 1] < 0) ? nullptr : FindMerge(s[i], s[i + 1]);
  };
  for (size_t i = 0; i + 1 < n; ++i) pair_buf[i] = lookup(i);
  while (n > 1) {
    size_t best = SIZE_MAX;
    int32_t best_rank = INT32_MAX;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (pair_buf[i] != nullptr && pair_buf[i]->rank < best_rank) {
        best_rank = pair_buf[i]->rank;
        best = i;
      }
    }
    if (best == SIZE_MAX) break;
    s[best] = pair_buf[best]->result;
    for (size_t i = best + 1; i + 1 < n; ++i) s[i] = s[i + 1];
    for (size_t i = best + 1; i + 2 < n; ++i) pair_buf[i] = pair_buf[i + 1];
    --n;
    if (best > 0) pair_buf[best - 1] = lookup(best - 1);
    if (best + 1 < n) pair_buf[best] = lookup(best);
  }
  s.resize(n);
}

// O(n log n): symbols in a linked list, candidate pairs in a min-heap by (rank, position);
// stale entries are skipped when popped (llama.cpp's llm_tokenizer_bpe_session scheme).
void BpeModel::MergeHeap(std::vector<int32_t>* syms) const {
  std::vector<int32_t>& s = *syms;
  const int n = static_cast<int>(s.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int left;
    int right;
    int32_t left_id;
    int32_t right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int l, int r) {
    if (l < 0 || r < 0 || s[l] < 0 || s[r] < 0) return;
    if (const MergeEntry* e = FindMerge(s[l], s[r])) heap.push({e->rank, l, r, s[l], s[r]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || s[c.left] != c.left_id ||
        s[c.right] != c.right_id) {
      continue;
    }
    s[c.left] = FindMerge(c.left_id, c.right_id)->result;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  std::vector<int32_t> out;
  for (int i = 0; i >= 0 && i < n; i = next[i]) out.push_back(s[i]);
  s.swap(out);
}

void BpeModel::EncodeWordUncached(std::string_view word, bool use_heap,
                                  std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = whole_word_.find(std::string(word)); it != whole_word_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  thread_local std::vector<int32_t> syms;  // reused: no allocation per word
  syms.resize(word.size());
  for (size_t i = 0; i < word.size(); ++i) syms[i] = byte_token_[static_cast<uint8_t>(word[i])];
  if (use_heap || syms.size() > kLinearMaxBytes) {
    MergeHeap(&syms);
  } else {
    MergeLinear(&syms);
  }
  // A byte without a base token can only be dropped (llama.cpp does the same).
  for (int32_t id : syms) {
    if (id >= 0) out->push_back(id);
  }
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (word.size() > kCacheMaxBytes) {
    EncodeWordUncached(word, /*use_heap=*/false, out);
    return;
  }
  WordCache& cache = ThreadCache(instance_id_);
  const uint64_t hash = HashWord(word);
  if (cache.Find(word, hash, out)) return;
  const size_t before = out->size();
  EncodeWordUncached(word, /*use_heap=*/false, out);
  cache.Insert(word, hash, out->data() + before, out->size() - before);
}

}  // namespace vlserve::tokenizer
