// 64-byte aligned heap buffers (one cache line / one AVX-512 register).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

namespace vlserve {

constexpr size_t kAlignment = 64;

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
  void Resize(size_t count) {
    if (count > capacity_) {
      size_t bytes = (count * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
      data_.reset(static_cast<T*>(std::aligned_alloc(kAlignment, bytes ? bytes : kAlignment)));
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
