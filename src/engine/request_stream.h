// The per-request event queue shared by the engine thread (producer) and the server
// (consumer). Thread-safe. The engine pushes events in order and ends every stream with
// exactly one kFinished or kError event; the consumer drains them with Poll()/WaitNext()
// and may Cancel() at any time (client disconnect): the engine then frees the request's
// KV blocks within one step and ends the stream with kFinished / FinishReason::kCancelled.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "engine/request.h"

namespace vlserve::engine {

class RequestStream {
 public:
  explicit RequestStream(std::string request_id) : id_(std::move(request_id)) {}
  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;

  const std::string& id() const { return id_; }

  // --- consumer side (any thread) ---

  // Moves every pending event to the end of *out (non-blocking). Returns true if it
  // moved at least one.
  bool Poll(std::vector<Event>* out);
  // Waits up to `timeout` for the next event. False on timeout, or when the stream has
  // ended and every event has been taken.
  bool WaitNext(Event* out, std::chrono::milliseconds timeout);
  // Asks the engine to stop this request. Idempotent; harmless after the end.
  void Cancel();
  bool cancelled() const;
  // The terminal event has been pushed (it may not have been taken yet).
  bool ended() const;
  // Taken after the terminal event: nothing more will ever arrive.
  bool drained() const;

  // `notify` runs on the engine thread after each push, without the stream's lock held;
  // it must be cheap and must not block (e.g. post a wake-up to an Asio strand, then
  // Poll() there). If events are already pending when it is set, it is also called once
  // right away on the calling thread, so no wake-up is lost between Submit and SetNotify.
  void SetNotify(std::function<void()> notify);

  // --- engine side ---

  // Appends an event. Events pushed after the terminal one are dropped (CHECK-free:
  // keeps a racing shutdown harmless).
  void Push(Event event);

 private:
  const std::string id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::function<void()> notify_;
  bool cancelled_ = false;
  bool ended_ = false;
};

}  // namespace vlserve::engine
