// Server metrics in Prometheus text format (GET /metrics). Thread-safe; cheap to update.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cache/response_cache.h"
#include "cache/encoder_cache.h"
#include "engine/engine.h"
#include "engine/request.h"

namespace vlserve::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds in seconds, ascending
  void Observe(double seconds);
  // Appends name_bucket/_sum/_count lines; `labels` like `stage="parse"` or "".
  void Render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  // One finished HTTP request of the chat/tokenize routes with its status code.
  void CountRequest(int http_status);
  // Latencies of one completed generation (from its final timings).
  void ObserveTimings(const engine::RequestTimings& t);
  // Gap between two consecutive token deliveries of one request.
  void ObserveInterToken(double seconds) { itl_.Observe(seconds); }
  void AddTokens(int64_t prompt, int64_t generated);

  // The whole exposition; `stats` null before the engine exists; `response_cache` null
  // when the response cache is off (its metrics are then left out).
  std::string Render(const engine::EngineStats* stats,
                     const ResponseCacheStats* response_cache = nullptr,
                     const EncoderCacheStats* encoder_cache = nullptr) const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> requests_;  // http status -> count
  std::atomic<int64_t> prompt_tokens_{0}, generated_tokens_{0};
  Histogram ttft_, itl_, e2e_, queue_;
  std::map<std::string, Histogram> stages_;  // fixed keys, created in the constructor
};

}  // namespace vlserve::server
