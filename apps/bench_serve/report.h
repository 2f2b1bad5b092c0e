// What a bench-serve run measured: aggregation of the per-request records, the stdout
// table, the JSON file and the SVG figure.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "bench_serve/runner.h"
#include "bench_serve/stats.h"

namespace vlserve::bench_serve {

// Server stages of `timings`, in pipeline order (the bar in the SVG follows it).
const std::vector<std::string>& StageNames();

struct StageMean {
  std::string name;
  double mean_ms = 0;
};

struct Report {
  int requests = 0, completed = 0, failed = 0;
  std::map<std::string, int> errors;  // ErrorCategory -> count
  double duration_s = 0;
  // Over completed requests; TPOT over those with >= 2 tokens; ITL over all gaps.
  Summary ttft, tpot, itl, e2e;
  int64_t output_tokens = 0;
  double request_throughput = 0;  // completed / duration
  double output_throughput = 0;   // output tokens of completed requests / duration
  bool has_slo = false;
  int slo_met = 0;
  double goodput = 0;                                     // slo_met / duration
  int64_t prompt_tokens = 0, cached_tokens = 0;           // summed over requests with usage
  int encoder_cache_hits = 0, encoder_cache_known = 0;    // timings.encode_cached
  int response_cache_hits = 0, response_cache_known = 0;  // X-Cache header
  std::vector<StageMean> stages;  // stages seen in any completed request's timings
};

Report Aggregate(const BenchResult& result);
std::string FormatTable(const BenchResult& result, const Report& report);
std::string ReportJson(const BenchResult& result, const Report& report);
std::string ReportSvg(const BenchResult& result, const Report& report);

// "out.json" -> "out.svg"; a path without ".json" gets ".svg" appended.
std::string SvgPathFor(const std::string& json_path);
// Writes the JSON to `json_path` and the SVG next to it.
Status WriteReports(const std::string& json_path, const BenchResult& result, const Report& report);

}  // namespace vlserve::bench_serve
