// A pool of reusable 64-byte aligned float buffers for preprocessed pixel tensors, so
// steady-state preprocessing does not allocate. Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "base/aligned.h"

namespace vlserve::media {

class BufferPool {
 public:
  // A buffer on loan; it returns to its pool when destroyed. Movable, not copyable.
  class Lease {
   public:
    Lease() = default;
    Lease(BufferPool* pool, AlignedBuffer<float> buffer)
        : pool_(pool), buffer_(std::move(buffer)) {}
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), buffer_(std::move(other.buffer_)) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        Release();
        pool_ = std::exchange(other.pool_, nullptr);
        buffer_ = std::move(other.buffer_);
      }
      return *this;
    }
    ~Lease() { Release(); }

    float* data() { return buffer_.data(); }
    const float* data() const { return buffer_.data(); }
    size_t size() const { return buffer_.size(); }

   private:
    void Release() {
      if (pool_ != nullptr) pool_->Return(std::move(buffer_));
      pool_ = nullptr;
    }
    BufferPool* pool_ = nullptr;
    AlignedBuffer<float> buffer_;
  };

  explicit BufferPool(size_t max_idle = 8) : max_idle_(max_idle) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of `count` floats (contents unspecified). Reuses the most recent idle one.
  Lease Acquire(size_t count) {
    AlignedBuffer<float> buffer;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        buffer = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    buffer.Resize(count);
    return Lease(this, std::move(buffer));
  }

  size_t idle() const {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_.size();
  }

 private:
  void Return(AlignedBuffer<float> buffer) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(buffer));
  }

  mutable std::mutex mu_;
  std::vector<AlignedBuffer<float>> idle_;
  size_t max_idle_;
};

}  // namespace vlserve::media
