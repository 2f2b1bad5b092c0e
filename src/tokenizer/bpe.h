// Byte-level BPE (GPT-2 style, tokenizer.ggml.model = "gpt2"): every byte of a word maps to
// one base token through the GPT-2 byte<->unicode alphabet, then the lowest-ranked adjacent
// pair is merged until no ranked pair is left (ties: leftmost first), as llama.cpp and HF do.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace vlserve::tokenizer {

// GPT-2's reversible byte -> code point map (printable bytes map to themselves, the rest
// to U+0100.. in byte order), as UTF-8 strings; and the inverse (-1: not a byte char).
const std::array<std::string, 256>& ByteToUnicode();
int UnicodeToByte(uint32_t cp);

class BpeModel {
 public:
  // `tokens` are in the byte-level alphabet; `merges` are "a b" strings by rank. Merges
  // whose parts or result are not tokens are ignored (they could never be emitted).
  // ignore_merges: a word that is itself a token is emitted whole (llama3 behaviour).
  static StatusOr<BpeModel> Create(const std::vector<std::string>& tokens,
                                   const std::vector<std::string>& merges, bool ignore_merges);

  // Appends the ids of one pre-tokenized word (raw bytes). Uses a per-thread cache of
  // frequent words, so repeated words cost one hash lookup.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  // The same without the cache; `use_heap` picks the priority-queue merge loop (used for
  // long words) instead of the linear scan (short words). Both give identical results.
  void EncodeWordUncached(std::string_view word, bool use_heap, std::vector<int32_t>* out) const;

  size_t num_merges() const { return num_merges_; }

 private:
  struct MergeEntry {
    uint64_t key;  // (left << 32) | right; kEmpty for a free slot
    int32_t rank;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  // Open-addressing table (power-of-two capacity, load <= 0.5) keyed by the id pair.
  const MergeEntry* FindMerge(int32_t left, int32_t right) const;
  void InsertMerge(int32_t left, int32_t right, int32_t rank, int32_t result);
  void MergeLinear(std::vector<int32_t>* syms) const;
  void MergeHeap(std::vector<int32_t>* syms) const;

  std::vector<MergeEntry> table_;
  uint64_t mask_ = 0;
  int shift_ = 60;  // 64 - log2(capacity): the hash's top bits pick the slot
  size_t num_merges_ = 0;
  std::array<int32_t, 256> byte_token_{};  // id of each byte's one-character token, or -1
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> whole_word_;  // raw bytes -> id (ignore_merges)
  uint64_t instance_id_ = 0;                             // selects the thread-local cache
};

}  // namespace vlserve::tokenizer
