#include "engine/request_stream.h"

#include <utility>

namespace vlserve::engine {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kDeadline: return "deadline";
  }
  return "";
}

bool RequestStream::Poll(std::vector<Event>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (events_.empty()) return false;
  for (Event& e : events_) out->push_back(std::move(e));
  events_.clear();
  return true;
}

bool RequestStream::WaitNext(Event* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || ended_; });
  if (events_.empty()) return false;
  *out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestStream::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

bool RequestStream::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool RequestStream::ended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_;
}

bool RequestStream::drained() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_ && events_.empty();
}

void RequestStream::SetNotify(std::function<void()> notify) {
  bool pending = false;
  std::function<void()> copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify_ = std::move(notify);
    pending = !events_.empty();
    copy = notify_;
  }
  if (pending && copy) copy();
}

void RequestStream::Push(Event event) {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    if (event.kind != Event::Kind::kDelta) ended_ = true;
    events_.push_back(std::move(event));
    notify = notify_;
  }
  cv_.notify_all();
  if (notify) notify();
}

}  // namespace vlserve::engine
