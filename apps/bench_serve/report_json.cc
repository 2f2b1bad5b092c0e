// The --out JSON file: the command, the configuration, every aggregate of Report and one
// record per request. Unknown values (-1 in RequestRecord) are null.
#include <boost/json.hpp>
#include <cmath>

#include "bench_serve/report.h"

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

// Milliseconds rounded to microseconds keep the file readable.
json::value Ms(double v) {
  if (v < 0 || !std::isfinite(v)) return nullptr;
  return std::round(v * 1000.0) / 1000.0;
}

json::value Known(int v) { return v < 0 ? json::value(nullptr) : json::value(v); }

json::object SummaryJson(const Summary& s) {
  return {{"count", s.count}, {"mean", Ms(s.mean)}, {"min", Ms(s.min)}, {"max", Ms(s.max)},
          {"p50", Ms(s.p50)}, {"p90", Ms(s.p90)},   {"p99", Ms(s.p99)}};
}

json::object ConfigJson(const BenchConfig& c) {
  json::object o{{"url", c.url},
                 {"dataset", DatasetKindName(c.dataset.kind)},
                 {"requests", c.requests},
                 {"seed", c.dataset.seed},
                 {"max_tokens", c.dataset.max_tokens},
                 {"model", c.dataset.model},
                 {"timeout_s", c.timeout_s}};
  if (c.rate > 0) {
    o["rate"] = c.rate;
  } else {
    o["concurrency"] = c.concurrency;
  }
  if (!c.slo.empty()) {
    o["slo"] = json::object{
        {"ttft_ms", c.slo.ttft_ms}, {"tpot_ms", c.slo.tpot_ms}, {"e2e_ms", c.slo.e2e_ms}};
  }
  return o;
}

json::object RecordJson(const RequestRecord& r) {
  json::array itl;
  for (double g : r.itl_ms) itl.push_back(Ms(g));
  json::object timings;
  for (const auto& [k, v] : r.timings) timings[k] = v;
  return {{"index", r.index},
          {"conversation", r.conversation},
          {"turn", r.turn},
          {"scheduled_s", Ms(r.scheduled_s)},
          {"start_s", Ms(r.start_s)},
          {"status", r.status},
          {"ok", r.ok},
          {"error", r.error},
          {"ttft_ms", Ms(r.ttft_ms)},
          {"tpot_ms", Ms(r.tpot_ms)},
          {"e2e_ms", Ms(r.e2e_ms)},
          {"itl_ms", std::move(itl)},
          {"output_tokens", r.output_tokens},
          {"prompt_tokens", Known(r.prompt_tokens)},
          {"cached_tokens", Known(r.cached_tokens)},
          {"x_cache", r.x_cache.empty() ? json::value(nullptr) : json::value(r.x_cache)},
          {"encode_cached",
           r.encode_cached < 0 ? json::value(nullptr) : json::value(r.encode_cached == 1)},
          {"finish_reason", r.finish_reason},
          {"timings", std::move(timings)}};
}

}  // namespace

std::string ReportJson(const BenchResult& result, const Report& rep) {
  json::object errors;
  for (const auto& [category, n] : rep.errors) errors[category] = n;
  json::object stages;
  for (const StageMean& s : rep.stages) stages[s.name] = Ms(s.mean_ms);
  json::object cache{
      {"prompt_tokens", rep.prompt_tokens},
      {"cached_tokens", rep.cached_tokens},
      {"cached_ratio", rep.prompt_tokens > 0
                           ? json::value(double(rep.cached_tokens) / rep.prompt_tokens)
                           : json::value(nullptr)},
      {"encoder_cache_hits", rep.encoder_cache_hits},
      {"encoder_cache_known", rep.encoder_cache_known},
      {"response_cache_hits", rep.response_cache_hits},
      {"response_cache_known", rep.response_cache_known}};
  json::array records;
  for (const RequestRecord& r : result.records) records.push_back(RecordJson(r));
  json::object o{{"command", result.config.command_line},
                 {"config", ConfigJson(result.config)},
                 {"duration_s", rep.duration_s},
                 {"requests", rep.requests},
                 {"completed", rep.completed},
                 {"failed", rep.failed},
                 {"errors", std::move(errors)},
                 {"ttft_ms", SummaryJson(rep.ttft)},
                 {"tpot_ms", SummaryJson(rep.tpot)},
                 {"itl_ms", SummaryJson(rep.itl)},
                 {"e2e_ms", SummaryJson(rep.e2e)},
                 {"output_tokens", rep.output_tokens},
                 {"request_throughput", rep.request_throughput},
                 {"output_throughput", rep.output_throughput},
                 {"slo_met", rep.has_slo ? json::value(rep.slo_met) : json::value(nullptr)},
                 {"goodput", rep.has_slo ? json::value(rep.goodput) : json::value(nullptr)},
                 {"cache", std::move(cache)},
                 {"stages_mean_ms", std::move(stages)},
                 {"records", std::move(records)}};
  return json::serialize(o) + "\n";
}

}  // namespace vlserve::bench_serve
