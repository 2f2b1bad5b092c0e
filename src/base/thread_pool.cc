#include "base/thread_pool.h"

#include <immintrin.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include "base/check.h"

namespace vlserve {
namespace {

// ~20-50 µs of spinning before sleeping: long enough to bridge back-to-back kernel calls
// inside one forward pass, short enough not to burn a core between requests.
constexpr int kSpinIterations = 20000;
// While spinning (worker waiting for a job, caller waiting for workers), give the core
// away every this many pauses: on an oversubscribed machine the thread we wait for may
// be runnable on this very core, and a pure spin would hold it off for a whole time
// slice. sched_yield returns at once when nothing else is runnable.
constexpr int kYieldEvery = 256;

inline void SpinPause(int spins) {
  if (spins % kYieldEvery == kYieldEvery - 1) {
    std::this_thread::yield();
  } else {
    _mm_pause();
  }
}

int g_default_threads = 0;

}  // namespace

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads < 1 ? 1 : num_threads),
      claimed_(new std::atomic<uint32_t>[num_threads_]) {
  for (int i = 0; i < num_threads_; ++i) claimed_[i].store(0, std::memory_order_relaxed);
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
  const uint32_t gen = generation_.load(std::memory_order_relaxed);
  fn(0, num_threads_);
  // Workers still asleep or descheduled: take their slot and run their share here.
  for (int i = 1; i < num_threads_; ++i) {
    uint32_t expected = gen - 1;
    if (claimed_[i].compare_exchange_strong(expected, gen, std::memory_order_acq_rel)) {
      fn(i, num_threads_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) SpinPause(spins);
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
        SpinPause(spins);
      } else {
        std::unique_lock<std::mutex> lock(sleep_mu_);
        sleep_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
    }
    seen = now;
    if (stop_.load()) return;
    // Every earlier job finished with all its slots claimed, so slot `now` is free unless
    // the caller already took it (then `now` may even be over: skip it).
    uint32_t expected = now - 1;
    if (!claimed_[thread_index].compare_exchange_strong(expected, now,
                                                        std::memory_order_acq_rel)) {
      continue;
    }
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
