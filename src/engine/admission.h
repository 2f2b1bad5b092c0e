// Admission control between the server threads and the engine thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"
#include "engine/request.h"
#include "engine/request_stream.h"

namespace vlserve::engine {

// Thread-safe entry point for new requests: Submit() pushes (and is refused when the
// queue of not-yet-started requests is full), the engine thread drains it into the
// scheduler. The counts cover both this inbox and the scheduler's not-started requests;
// the scheduler calls Started() when one starts or ends before starting.
class AdmissionQueue {
 public:
  AdmissionQueue(int64_t max_requests, int64_t max_tokens)
      : max_requests_(max_requests), max_tokens_(max_tokens) {}

  // ResourceExhausted (nothing queued) when full; Unavailable after Close().
  Status Push(Request request, std::shared_ptr<RequestStream> stream);
  struct Entry {
    Request request;
    std::shared_ptr<RequestStream> stream;
    TimePoint submit_time;
  };
  std::vector<Entry> Drain();
  void Started(int64_t prompt_tokens);
  // Refuses further pushes; returns what was still in the inbox.
  std::vector<Entry> Close();

  int64_t waiting_requests() const;
  // Tests: the clock that stamps Entry::submit_time (same one as the scheduler's).
  void SetClockForTesting(std::function<TimePoint()> clock) { clock_ = std::move(clock); }
  int64_t waiting_tokens() const;
  // Wakes a Wait() on the engine thread (new request, cancellation, shutdown).
  void Wake();
  // Blocks until the inbox is non-empty, Wake() or `timeout`.
  void Wait(std::chrono::milliseconds timeout);

 private:
  const int64_t max_requests_, max_tokens_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> inbox_;
  int64_t requests_ = 0, tokens_ = 0;  // inbox + not started in the scheduler
  bool closed_ = false;
  bool woken_ = false;
  std::function<TimePoint()> clock_ = [] { return SteadyClock::now(); };
};

}  // namespace vlserve::engine
