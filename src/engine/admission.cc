#include "engine/admission.h"

#include <fmt/format.h>

#include <utility>

namespace vlserve::engine {

Status AdmissionQueue::Push(Request request, std::shared_ptr<RequestStream> stream) {
  const auto n = static_cast<int64_t>(request.prompt_tokens.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return UnavailableError("the engine is shutting down; retry on another server");
    if (requests_ + 1 > max_requests_) {
      return ResourceExhaustedError(fmt::format(
          "server busy: {} requests are already waiting (max_waiting_requests={}); retry later",
          requests_, max_requests_));
    }
    // A prompt longer than the whole token bound is still accepted into an empty queue,
    // otherwise it could never run.
    if (requests_ > 0 && tokens_ + n > max_tokens_) {
      return ResourceExhaustedError(fmt::format(
          "server busy: {} prompt tokens are already waiting (max_waiting_tokens={}); "
          "retry later",
          tokens_, max_tokens_));
    }
    ++requests_;
    tokens_ += n;
    inbox_.push_back(Entry{std::move(request), std::move(stream), clock_()});
  }
  cv_.notify_all();
  return OkStatus();
}

std::vector<AdmissionQueue::Entry> AdmissionQueue::Drain() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Entry> out;
  out.swap(inbox_);
  return out;
}

void AdmissionQueue::Started(int64_t prompt_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  --requests_;
  tokens_ -= prompt_tokens;
}

std::vector<AdmissionQueue::Entry> AdmissionQueue::Close() {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    out.swap(inbox_);
    for (const Entry& e : out) {
      --requests_;
      tokens_ -= static_cast<int64_t>(e.request.prompt_tokens.size());
    }
    woken_ = true;
  }
  cv_.notify_all();
  return out;
}

int64_t AdmissionQueue::waiting_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int64_t AdmissionQueue::waiting_tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

void AdmissionQueue::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void AdmissionQueue::Wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !inbox_.empty() || woken_; });
  woken_ = false;
}

}  // namespace vlserve::engine
