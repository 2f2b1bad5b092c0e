#include "server/trace.h"

#include <fmt/format.h>

#include <boost/json.hpp>

namespace vlserve::server {

StatusOr<std::unique_ptr<TraceWriter>> TraceWriter::Open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return InvalidArgumentError(fmt::format("--trace-file '{}' cannot be created", path));
  }
  std::fputs("[\n", f);
  return std::unique_ptr<TraceWriter>(new TraceWriter(f));
}

TraceWriter::~TraceWriter() {
  std::fputs("\n]\n", file_);
  std::fclose(file_);
}

void TraceWriter::Span(const std::string& name, int64_t tid, double start_us, double dur_us,
                       const std::string& request_id) {
  boost::json::object e;
  e["name"] = name;
  e["cat"] = "request";
  e["ph"] = "X";
  e["pid"] = 1;
  e["tid"] = tid;
  e["ts"] = start_us;
  e["dur"] = dur_us;
  e["args"] = boost::json::object{{"request", request_id}};
  std::fputs(first_ ? "" : ",\n", file_);
  std::fputs(boost::json::serialize(e).c_str(), file_);
  first_ = false;
}

void TraceWriter::AddStep(const engine::StepTrace& step) {
  std::lock_guard<std::mutex> lock(mu_);
  const double at = std::chrono::duration<double, std::micro>(step.start - origin_).count();
  const double total_ms = step.schedule_ms + step.encode_ms + step.forward_ms + step.update_ms;
  boost::json::object e;
  e["name"] = step.images_encoded > 0 ? "step+encode" : "step";
  e["cat"] = "engine";
  e["ph"] = "X";
  e["pid"] = 1;
  e["tid"] = 0;
  e["ts"] = at;
  e["dur"] = total_ms * 1000.0;
  e["args"] = boost::json::object{{"requests", step.requests},
                                  {"decode_tokens", step.decode_tokens},
                                  {"prefill_tokens", step.prefill_tokens},
                                  {"images_encoded", step.images_encoded},
                                  {"preempted", step.preempted},
                                  {"schedule_ms", step.schedule_ms},
                                  {"encode_ms", step.encode_ms},
                                  {"forward_ms", step.forward_ms},
                                  {"update_ms", step.update_ms},
                                  {"kv_usage", step.kv_usage}};
  std::fputs(first_ ? "" : ",\n", file_);
  std::fputs(boost::json::serialize(e).c_str(), file_);
  first_ = false;
}

void TraceWriter::AddRequest(const std::string& request_id, engine::TimePoint arrival,
                             const engine::RequestTimings& t) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t tid = next_tid_++;
  double at = std::chrono::duration<double, std::micro>(arrival - origin_).count();
  const std::pair<const char*, double> stages[] = {
      {"http_read", t.http_read_ms}, {"parse", t.parse_ms},
      {"media_fetch", t.media_fetch_ms}, {"image_decode", t.image_decode_ms},
      {"render", t.render_ms}, {"preprocess", t.preprocess_ms},
      {"tokenize", t.tokenize_ms}, {"queue", t.queue_ms},
      {"encode", t.encode_ms}, {"prefill", t.prefill_ms},
      {"decode", t.decode_ms}};
  if (t.e2e_ms >= 0) Span("request " + request_id, tid, at, t.e2e_ms * 1000.0, request_id);
  for (const auto& [name, ms] : stages) {
    if (ms < 0) continue;
    Span(name, tid, at, ms * 1000.0, request_id);
    at += ms * 1000.0;
  }
  std::fflush(file_);
}

}  // namespace vlserve::server
