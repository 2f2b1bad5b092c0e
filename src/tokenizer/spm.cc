#include "tokenizer/spm.h"

#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace vlserve::tokenizer {

namespace {

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581

// True when every U+2581 inside a token is at its start or right after another U+2581,
// i.e. no token contains "c▁" for a character c other than ▁.
bool NoTokenSpansWordStart(const std::vector<std::string>& tokens) {
  for (const std::string& t : tokens) {
    for (size_t p = t.find(kEscapedSpace, 1); p != std::string::npos;
         p = t.find(kEscapedSpace, p + 1)) {
      if (p < 3 || std::string_view(t).substr(p - 3, 3) != kEscapedSpace) return false;
    }
  }
  return true;
}

}  // namespace

SpmModel::SpmModel(const std::vector<std::string>& tokens, const std::vector<float>& scores,
                   int32_t unk_id)
    : scores_(scores) {
  ids_.reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) ids_.emplace(tokens[i], static_cast<int32_t>(i));
  scores_.resize(tokens.size(), 0.0f);
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    int32_t id = Find(hex);
    if (id < 0) id = Find(std::string(1, static_cast<char>(b)));
    byte_token_[b] = id >= 0 ? id : unk_id;
  }
  split_words_ = NoTokenSpansWordStart(tokens);
}

void SpmModel::Encode(std::string_view text, std::vector<int32_t>* out) const {
  if (!split_words_) {
    EncodeSpan(text, out);
    return;
  }
  // Cut before every "▁" that follows another character: no symbol can span such a cut
  // (that would need a token containing "c▁"), and merges on either side never interact,
  // so encoding the pieces separately gives the same ids as encoding the whole text, in
  // O(word) heap work instead of O(text).
  size_t begin = 0;
  for (size_t p = text.find(kEscapedSpace, 1); p != std::string_view::npos;
       p = text.find(kEscapedSpace, p + 1)) {
    if (p >= begin + 3 && text.substr(p - 3, 3) == kEscapedSpace) continue;
    if (p > begin) EncodeSpan(text.substr(begin, p - begin), out);
    begin = p;
  }
  EncodeSpan(text.substr(begin), out);
}

void SpmModel::EncodeSpan(std::string_view text, std::vector<int32_t>* out) const {
  struct Symbol {
    int prev;
    int next;
    size_t begin;
    size_t n;  // bytes; 0 once merged into its left neighbour
  };
  std::vector<Symbol> sym;
  for (size_t offs = 0; offs < text.size();) {
    const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(text[offs])), text.size() - offs);
    const int index = static_cast<int>(sym.size());
    sym.push_back({index - 1, offs + len == text.size() ? -1 : index + 1, offs, len});
    offs += len;
  }
  struct Bigram {
    int left;
    int right;
    float score;
    size_t size;
    // Max-heap order: higher score first, then the leftmost pair.
    bool operator<(const Bigram& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Bigram> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view joined = text.substr(sym[left].begin, sym[left].n + sym[right].n);
    const int32_t id = Find(joined);
    if (id < 0) return;
    queue.push({left, right, scores_[id], joined.size()});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    // Stale: one side was merged away, or grew since the pair was queued.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
    const std::string_view piece = text.substr(sym[i].begin, sym[i].n);
    const int32_t id = Find(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (const char c : piece) {
      const int32_t byte_id = byte_token_[static_cast<uint8_t>(c)];
      if (byte_id >= 0) out->push_back(byte_id);
    }
  }
}

}  // namespace vlserve::tokenizer
