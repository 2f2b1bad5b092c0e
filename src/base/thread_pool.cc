#include "base/thread_pool.h"

#include <immintrin.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include "base/check.h"

namespace vlserve {
namespace {

// ~20-50 µs of spinning before sleeping: long enough to bridge back-to-back kernel calls
// inside one forward pass, short enough not to burn a core between requests.
constexpr int kSpinIterations = 20000;

int g_default_threads = 0;

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  Wake();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(const std::function<void(int, int)>& fn) {
  if (num_threads_ == 1) {
    fn(0, 1);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mu_);
  job_ = &fn;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  Wake();
  fn(0, num_threads_);
  while (pending_.load(std::memory_order_acquire) != 0) _mm_pause();
  job_ = nullptr;
}

void ThreadPool::Wake() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  sleep_cv_.notify_all();
}

void ThreadPool::WorkerLoop(int thread_index) {
  uint32_t seen = 0;  // the generation at construction; a late-starting thread must not skip a job
  while (true) {
    int spins = 0;
    uint32_t now;
    while ((now = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kSpinIterations) {
        _mm_pause();
      } else {
        std::unique_lock<std::mutex> lock(sleep_mu_);
        sleep_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
    }
    seen = now;
    if (stop_.load()) return;
    (*job_)(thread_index, num_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Run([&](int thread, int threads) {
    int64_t begin, end;
    ChunkRange(n, grain, thread, threads, &begin, &end);
    if (begin < end) fn(begin, end);
  });
}

void SetDefaultThreads(int num_threads) { g_default_threads = num_threads; }

ThreadPool& DefaultThreadPool() {
  static std::unique_ptr<ThreadPool> pool = [] {
    int n = g_default_threads;
    if (n <= 0) {
      if (const char* env = std::getenv("VLSERVE_THREADS")) n = std::atoi(env);
    }
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    return std::make_unique<ThreadPool>(n);
  }();
  return *pool;
}

}  // namespace vlserve
