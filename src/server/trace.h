// Chrome trace-event JSON (opens in Perfetto / chrome://tracing): engine steps on track 0
// ("engine": one "X" event per step with its schedule / encode / forward / update parts
// and batch composition in args), and one track per request with an "X" event per stage,
// reconstructed from its final timings (the stages ran back to back from arrival).
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/request.h"

namespace vlserve::server {

class TraceWriter {
 public:
  // Creates/truncates `path`. NotFound-ish InvalidArgument when it cannot be opened.
  static StatusOr<std::unique_ptr<TraceWriter>> Open(const std::string& path);
  ~TraceWriter();  // closes the JSON array

  // One engine step (EngineConfig::on_step; engine thread).
  void AddStep(const engine::StepTrace& step);
  // Spans of one finished request; `arrival` anchors the stages (they ran back to back).
  void AddRequest(const std::string& request_id, engine::TimePoint arrival,
                  const engine::RequestTimings& t);

 private:
  explicit TraceWriter(std::FILE* file) : file_(file) {}
  void Span(const std::string& name, int64_t tid, double start_us, double dur_us,
            const std::string& request_id);

  std::mutex mu_;
  std::FILE* file_;
  bool first_ = true;
  int64_t next_tid_ = 1;
  engine::TimePoint origin_ = engine::SteadyClock::now();
};

}  // namespace vlserve::server
