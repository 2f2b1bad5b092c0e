// A persistent pool of worker threads for data-parallel kernels.
//
// Threads are created once; each Run() wakes them (spinning briefly, then sleeping on an
// atomic wait) so that a decode step with hundreds of small ops pays no thread creation.
// The caller's thread takes part as thread 0, and also runs the share of any worker that
// has not started by the time the caller finished its own (fn is still called once per
// thread index; only the OS thread differs). Work is split by index, never by timing, so
// kernels that partition output rows by thread give results independent of thread count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vlserve {

class ThreadPool {
 public:
  // num_threads counts the caller: ThreadPool(2) starts one worker thread.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(thread_index, num_threads) once on every thread and returns when all are done.
  // Callers on different threads are serialised (one job at a time). Not reentrant: fn
  // must not call Run on the same pool.
  void Run(const std::function<void(int thread, int num_threads)>& fn);

  // Splits [0, n) into contiguous chunks, one per thread, aligned to `grain` items.
  // fn(begin, end) is called for each non-empty chunk.
  void ParallelFor(int64_t n, int64_t grain,
                   const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void WorkerLoop(int thread_index);
  void Wake();

  const int num_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // claimed_[i]: the last generation whose job slot i was taken, by worker i or by the
  // caller. Run() takes the slots of workers that have not woken up yet and runs their
  // share itself, so a descheduled worker (a loaded machine) cannot stall every step.
  std::unique_ptr<std::atomic<uint32_t>[]> claimed_;
  // Sleeping workers wait here after spinning; Run() notifies under the mutex so that no
  // wake-up is lost between a worker's last check and its wait.
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  std::mutex run_mu_;  // one Run() at a time when several threads share the pool
};

// The process-wide pool used by kernels unless a caller passes its own. Its size is
// VLSERVE_THREADS if set, else the number of hardware threads; SetDefaultThreads() before
// first use overrides both.
ThreadPool& DefaultThreadPool();
void SetDefaultThreads(int num_threads);

// [begin, end) of chunk `index` when n items are split into `parts` parts aligned to grain.
inline void ChunkRange(int64_t n, int64_t grain, int index, int parts, int64_t* begin,
                       int64_t* end) {
  const int64_t units = (n + grain - 1) / grain;
  const int64_t per = units / parts, extra = units % parts;
  const int64_t first = index * per + (index < extra ? index : extra);
  const int64_t count = per + (index < extra ? 1 : 0);
  *begin = first * grain < n ? first * grain : n;
  *end = (first + count) * grain < n ? (first + count) * grain : n;
}

}  // namespace vlserve
