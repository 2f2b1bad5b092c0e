// Which pages of a GGUF mapping this process keeps: the record of released pages, and the
// start-up prefault and accounting derived from it (gguf.h, "Residency").
//
// Why one record: loaders copy most matrices at load (prepacked panels, huge-page copies,
// BF16 conversions) and release the file's pages behind them. A prefault that walked
// every tensor would fault those pages straight back in, and they would stay mapped for
// the life of the process: the smolvlm-256m Q8_0 text file, 137 MiB, resident next to
// its copies (docs/serve.md "Memory").
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "gguf/gguf.h"

namespace vlserve::gguf {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

using Span = std::pair<size_t, size_t>;  // [begin, end) offsets into the mapping

// Sorts and merges overlapping or touching spans.
std::vector<Span> Merged(std::vector<Span> spans) {
  std::sort(spans.begin(), spans.end());
  std::vector<Span> out;
  for (const Span& s : spans) {
    if (s.first >= s.second) continue;
    if (!out.empty() && s.first <= out.back().second) {
      out.back().second = std::max(out.back().second, s.second);
    } else {
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace

void File::ReleasePages(const void* p, size_t bytes) {
  if (mapping_ == nullptr || bytes == 0) return;
  const size_t page = PageSize();
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const auto map_begin = reinterpret_cast<uintptr_t>(mapping_);
  if (begin < map_begin || begin + bytes > map_begin + mapping_size_) return;
  // Only the pages wholly inside: a page shared with a neighbouring tensor stays.
  const size_t first = (begin - map_begin + page - 1) / page * page;
  const size_t last = (begin - map_begin + bytes) / page * page;
  if (first >= last) return;
  (void)madvise(static_cast<uint8_t*>(mapping_) + first, last - first, MADV_DONTNEED);
  released_.emplace_back(first, last);
}

std::vector<PageRange> File::PagesInUse() const {
  std::vector<PageRange> out;
  if (mapping_ == nullptr) return out;
  const size_t page = PageSize();
  const auto map_begin = reinterpret_cast<uintptr_t>(mapping_);
  const size_t map_end = (mapping_size_ + page - 1) / page * page;
  std::vector<Span> tensors;
  for (const TensorInfo& t : tensors_) {
    if (t.num_bytes <= 0) continue;
    const size_t begin = reinterpret_cast<uintptr_t>(t.data) - map_begin;
    const size_t end = begin + static_cast<size_t>(t.num_bytes);
    tensors.emplace_back(begin / page * page, std::min(map_end, (end + page - 1) / page * page));
  }
  const std::vector<Span> released = Merged(released_);
  size_t r = 0;
  for (Span s : Merged(std::move(tensors))) {
    // Both lists are sorted and disjoint: cut the released spans out of s.
    while (r < released.size() && released[r].second <= s.first) ++r;
    for (size_t i = r; i < released.size() && released[i].first < s.second; ++i) {
      if (released[i].first > s.first) {
        out.push_back(
            {static_cast<const uint8_t*>(mapping_) + s.first, released[i].first - s.first});
      }
      s.first = std::max(s.first, released[i].second);
    }
    if (s.first < s.second) {
      out.push_back({static_cast<const uint8_t*>(mapping_) + s.first, s.second - s.first});
    }
  }
  return out;
}

int64_t File::Prefault(const std::function<void(int64_t done, int64_t total)>& progress) const {
  const std::vector<PageRange> ranges = PagesInUse();
  int64_t total = 0;
  for (const PageRange& r : ranges) total += static_cast<int64_t>(r.bytes);
  const size_t page = PageSize();
  constexpr size_t kReportEvery = size_t{4} << 20;
  volatile uint8_t sink = 0;
  int64_t done = 0;
  for (const PageRange& r : ranges) {
    for (size_t at = 0; at < r.bytes; at += kReportEvery) {
      const size_t end = std::min(r.bytes, at + kReportEvery);
      for (size_t i = at; i < end; i += page) sink = sink + r.data[i];
      done += static_cast<int64_t>(end - at);
      if (progress) progress(done, total);
    }
  }
  return total;
}

}  // namespace vlserve::gguf
