#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace vlserve::server {
namespace {

std::vector<double> LatencyBounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void Gauge(const char* name, const char* help, double value, std::string* out) {
  *out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, value);
}

void Counter(const char* name, const char* help, double value, std::string* out) {
  *out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, value);
}

void HistHeader(const char* name, const char* help, std::string* out) {
  *out += fmt::format("# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double seconds) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& labels,
                       std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? fmt::format("{}", bounds_[i]) : "+Inf";
    *out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, le, cumulative);
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  *out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, sum_, name, braces, count_);
}

Metrics::Metrics()
    : ttft_(LatencyBounds()), itl_(LatencyBounds()), e2e_(LatencyBounds()),
      queue_(LatencyBounds()) {
  for (const char* stage : {"http_read", "parse", "media_fetch", "image_decode", "render",
                            "preprocess", "tokenize", "encode", "prefill", "decode"}) {
    stages_.try_emplace(stage, LatencyBounds());
  }
}

void Metrics::CountRequest(int http_status) {
  std::lock_guard<std::mutex> lock(mu_);
  // No status sent: the client left first. Counted as the access log writes it (nginx's
  // 499 "client closed request"), not as a status "0" that dashboards cannot read.
  ++requests_[http_status != 0 ? http_status : 499];
}

void Metrics::AddTokens(int64_t prompt, int64_t generated) {
  prompt_tokens_ += prompt;
  generated_tokens_ += generated;
}

void Metrics::ObserveTimings(const engine::RequestTimings& t) {
  auto obs = [](Histogram& h, double ms) {
    if (ms >= 0) h.Observe(ms / 1000.0);
  };
  obs(ttft_, t.ttft_ms);
  obs(e2e_, t.e2e_ms);
  obs(queue_, t.queue_ms);
  const std::pair<const char*, double> stages[] = {
      {"http_read", t.http_read_ms},   {"parse", t.parse_ms},
      {"media_fetch", t.media_fetch_ms}, {"image_decode", t.image_decode_ms},
      {"render", t.render_ms},         {"preprocess", t.preprocess_ms},
      {"tokenize", t.tokenize_ms},     {"encode", t.encode_ms},
      {"prefill", t.prefill_ms},       {"decode", t.decode_ms}};
  for (const auto& [name, ms] : stages) obs(stages_.at(name), ms);
}

std::string Metrics::Render(const engine::EngineStats* stats,
                            const ResponseCacheStats* response_cache,
                            const EncoderCacheStats* encoder_cache) const {
  std::string out;
  out += "# HELP vlserve_requests_total HTTP requests to the API routes by status code.\n"
         "# TYPE vlserve_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [status, n] : requests_) {
      out += fmt::format("vlserve_requests_total{{status=\"{}\"}} {}\n", status, n);
    }
  }
  const engine::EngineStats s = stats != nullptr ? *stats : engine::EngineStats{};
  Gauge("vlserve_requests_running", "Requests holding KV cache.", s.running, &out);
  Gauge("vlserve_requests_waiting", "Requests queued, not yet started.", s.waiting, &out);
  Gauge("vlserve_kv_cache_usage_ratio", "Fraction of KV blocks in use.", s.kv_usage, &out);
  Gauge("vlserve_kv_cache_bytes", "Memory of the KV cache (all blocks, as stored).",
        s.kv_bytes_total, &out);
  Counter("vlserve_prompt_tokens_total", "Prompt tokens of finished requests.",
          prompt_tokens_.load(), &out);
  Counter("vlserve_generation_tokens_total", "Generated tokens of finished requests.",
          generated_tokens_.load(), &out);
  Counter("vlserve_requests_cancelled_total",
          "Requests cancelled (client disconnected or shutdown).", s.requests_cancelled, &out);
  Counter("vlserve_requests_deadline_total", "Requests that passed their timeout.",
          s.requests_deadline, &out);
  Counter("vlserve_preemptions_total", "Requests that lost their KV and were recomputed.",
          s.preemptions, &out);
  Counter("vlserve_prefix_cache_queried_tokens_total",
          "Prompt tokens looked up in the prefix cache.", s.prefix_cache_queried_tokens, &out);
  Counter("vlserve_prefix_cache_hit_tokens_total",
          "Prompt tokens served from cached KV blocks.", s.prefix_cache_hit_tokens, &out);
  Gauge("vlserve_kv_cache_cached_blocks", "Unreferenced KV blocks kept for prefix reuse.",
        s.kv_blocks_cached, &out);
  Counter("vlserve_images_encoded_total",
          "Images and document pages run through the vision encoder.", s.images_encoded, &out);
  Counter("vlserve_tiles_encoded_total", "Tiles run through the vision encoder.",
          s.tiles_encoded, &out);
  Counter("vlserve_encode_seconds_total", "Engine time spent in the vision encoder.",
          s.encode_seconds, &out);
  if (encoder_cache != nullptr) {
    const EncoderCacheStats& e = *encoder_cache;
    Counter("vlserve_encoder_cache_hits_total",
            "Images served from the encoder cache (not decoded, not encoded).", e.hits, &out);
    Counter("vlserve_encoder_cache_misses_total", "Images looked up and not found.", e.misses,
            &out);
    Counter("vlserve_encoder_cache_evictions_total", "Encoder-cache entries evicted.",
            e.evictions, &out);
    Gauge("vlserve_encoder_cache_entries", "Images held by the encoder cache.", e.entries, &out);
    Gauge("vlserve_encoder_cache_bytes", "Bytes held by the encoder cache.", e.bytes, &out);
    Gauge("vlserve_encoder_cache_capacity_bytes", "Encoder cache capacity.", e.capacity_bytes,
          &out);
  }
  if (response_cache != nullptr) {
    const ResponseCacheStats& r = *response_cache;
    Counter("vlserve_response_cache_hits_total",
            "Chat requests answered from the response cache.", r.hits, &out);
    Counter("vlserve_response_cache_misses_total",
            "Cacheable chat requests not found in the response cache.", r.misses, &out);
    Counter("vlserve_response_cache_evictions_total",
            "Response cache entries evicted to make room.", r.evictions, &out);
    Gauge("vlserve_response_cache_entries", "Answers held by the response cache.", r.entries,
          &out);
    Gauge("vlserve_response_cache_bytes", "Bytes held by the response cache.", r.bytes, &out);
    Gauge("vlserve_response_cache_capacity_bytes", "Response cache capacity.",
          r.capacity_bytes, &out);
  }
  HistHeader("vlserve_ttft_seconds", "Time to first token.", &out);
  ttft_.Render("vlserve_ttft_seconds", "", &out);
  HistHeader("vlserve_inter_token_latency_seconds", "Gap between streamed token deliveries.",
             &out);
  itl_.Render("vlserve_inter_token_latency_seconds", "", &out);
  HistHeader("vlserve_e2e_latency_seconds", "Arrival to last token.", &out);
  e2e_.Render("vlserve_e2e_latency_seconds", "", &out);
  HistHeader("vlserve_queue_seconds", "Submit to first scheduled step.", &out);
  queue_.Render("vlserve_queue_seconds", "", &out);
  HistHeader("vlserve_stage_seconds", "Per-stage request latency.", &out);
  for (const auto& [stage, h] : stages_) {
    h.Render("vlserve_stage_seconds", fmt::format("stage=\"{}\"", stage), &out);
  }
  return out;
}

}  // namespace vlserve::server
