// 64-byte aligned heap buffers (one cache line / one AVX-512 register).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

namespace vlserve {

constexpr size_t kAlignment = 64;

// Backing pages for large buffers that are streamed in full (prepacked weights, benchmark
// buffers): kHuge aligns a buffer of 2 MiB or more to 2 MiB and asks for transparent huge
// pages (madvise; a no-op where THP is off). Measured on the 2-core Zen 4 VM: a prepacked
// Q4_K matrix-vector product streaming 256 MB, 2 threads, same minutes: 4 KiB pages ~42,
// huge pages ~49 GB/s (fewer TLB misses: one per 2 MiB instead of per 4 KiB). Not the
// default: a huge page is committed whole on first touch, so sparse buffers would grow.
enum class Pages { kNormal, kHuge };
void AdviseHugePages(void* p, size_t bytes);  // aligned.cc
bool HugePagesEnabled();  // false with VLSERVE_HUGE_PAGES=0

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// A typed, fixed-capacity, 64-byte aligned array. Contents are uninitialised after
// construction unless Zero() is called.
template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t count) { Resize(count); }

  // Reallocates only when growing; contents are not preserved.
  void Resize(size_t count, Pages pages = Pages::kNormal) {
    if (count > capacity_) {
      constexpr size_t kHugePage = size_t{2} << 20;
      size_t bytes = (count * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
      if (pages == Pages::kHuge && bytes >= kHugePage) {
        // posix_memalign: no size rounding (a rounded-up tail would be a whole huge page
        // committed for nothing; the partial last 2 MiB stays on 4 KiB pages).
        void* p = nullptr;
        data_.reset(posix_memalign(&p, kHugePage, bytes) == 0 ? static_cast<T*>(p) : nullptr);
        if (data_) AdviseHugePages(data_.get(), bytes);
      } else {
        data_.reset(static_cast<T*>(std::aligned_alloc(kAlignment, bytes ? bytes : kAlignment)));
      }
      capacity_ = count;
    }
    size_ = count;
  }
  void Zero() {
    if (size_) std::memset(data_.get(), 0, size_ * sizeof(T));
  }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_.get()[i]; }
  const T& operator[](size_t i) const { return data_.get()[i]; }

 private:
  std::unique_ptr<T, AlignedFree> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace vlserve
