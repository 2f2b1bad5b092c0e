#include "bench_serve/report.h"

#include <fmt/format.h>

#include <fstream>

namespace vlserve::bench_serve {

const std::vector<std::string>& StageNames() {
  static const std::vector<std::string> kStages = {
      "http_read", "parse", "media_fetch", "image_decode", "render", "preprocess",
      "tokenize",  "queue", "encode",      "prefill",      "decode"};
  return kStages;
}

Report Aggregate(const BenchResult& result) {
  Report rep;
  rep.requests = static_cast<int>(result.records.size());
  rep.duration_s = result.duration_s;
  rep.has_slo = !result.config.slo.empty();
  std::vector<double> ttft, tpot, itl, e2e;
  std::map<std::string, double> stage_sum;
  int with_timings = 0;
  for (const RequestRecord& r : result.records) {
    if (r.prompt_tokens >= 0) rep.prompt_tokens += r.prompt_tokens;
    if (r.cached_tokens >= 0) rep.cached_tokens += r.cached_tokens;
    if (r.encode_cached >= 0) ++rep.encoder_cache_known, rep.encoder_cache_hits += r.encode_cached;
    if (!r.x_cache.empty()) {
      ++rep.response_cache_known;
      if (r.x_cache.starts_with("hit") || r.x_cache.starts_with("HIT")) ++rep.response_cache_hits;
    }
    if (!r.ok) {
      ++rep.failed;
      ++rep.errors[ErrorCategory(r)];
      continue;
    }
    ++rep.completed;
    rep.output_tokens += r.output_tokens;
    if (r.ttft_ms >= 0) ttft.push_back(r.ttft_ms);
    if (r.tpot_ms >= 0) tpot.push_back(r.tpot_ms);
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
    e2e.push_back(r.e2e_ms);
    if (rep.has_slo && MeetsSlo(result.config.slo, r)) ++rep.slo_met;
    if (!r.timings.empty()) {
      ++with_timings;
      for (const std::string& s : StageNames()) {
        if (auto it = r.timings.find(s); it != r.timings.end()) stage_sum[s] += it->second;
      }
    }
  }
  rep.ttft = Summarize(ttft);
  rep.tpot = Summarize(tpot);
  rep.itl = Summarize(itl);
  rep.e2e = Summarize(e2e);
  if (rep.duration_s > 0) {
    rep.request_throughput = rep.completed / rep.duration_s;
    rep.output_throughput = rep.output_tokens / rep.duration_s;
    rep.goodput = rep.slo_met / rep.duration_s;
  }
  for (const std::string& s : StageNames()) {
    if (auto it = stage_sum.find(s); it != stage_sum.end()) {
      rep.stages.push_back({s, it->second / with_timings});
    }
  }
  return rep;
}

namespace {

std::string Row(std::string_view name, const Summary& s) {
  return fmt::format("{:<14}{:>10.2f}{:>10.2f}{:>10.2f}{:>10.2f}{:>10.2f}{:>8}\n", name, s.mean,
                     s.p50, s.p90, s.p99, s.max, s.count);
}

std::string Ratio(int64_t part, int64_t whole) {
  if (whole <= 0) return "n/a";
  return fmt::format("{} / {} ({:.1f}%)", part, whole, 100.0 * part / whole);
}

}  // namespace

std::string FormatTable(const BenchResult& result, const Report& rep) {
  const BenchConfig& c = result.config;
  std::string s =
      fmt::format("bench-serve {}  dataset {}  {}  requests {}  max_tokens {}  seed {}\n", c.url,
                  DatasetKindName(c.dataset.kind),
                  c.rate > 0 ? fmt::format("rate {:g}/s (Poisson)", c.rate)
                             : fmt::format("concurrency {}", c.concurrency),
                  c.requests, c.dataset.max_tokens, c.dataset.seed);
  s += fmt::format("duration {:.2f} s   completed {}   failed {}", rep.duration_s, rep.completed,
                   rep.failed);
  if (!rep.errors.empty()) {
    s += "   errors:";
    for (const auto& [category, n] : rep.errors) s += fmt::format(" {}={}", category, n);
  }
  s += "\n\n";
  s += fmt::format("{:<14}{:>10}{:>10}{:>10}{:>10}{:>10}{:>8}\n", "latency (ms)", "mean", "p50",
                   "p90", "p99", "max", "n");
  s += Row("TTFT", rep.ttft) + Row("TPOT", rep.tpot) + Row("ITL", rep.itl) + Row("E2E", rep.e2e);
  s += fmt::format("\nrequest throughput   {:.3f} req/s\n", rep.request_throughput);
  s += fmt::format("output throughput    {:.1f} tok/s ({} tokens)\n", rep.output_throughput,
                   rep.output_tokens);
  if (rep.has_slo) {
    std::string terms;
    const std::pair<const char*, double> given[] = {
        {"ttft", c.slo.ttft_ms}, {"tpot", c.slo.tpot_ms}, {"e2e", c.slo.e2e_ms}};
    for (const auto& [name, ms] : given) {
      if (ms > 0) terms += fmt::format("{}{}<={:g}ms", terms.empty() ? "" : " ", name, ms);
    }
    s += fmt::format("goodput              {:.3f} req/s ({} of {} met {})\n", rep.goodput,
                     rep.slo_met, rep.requests, terms);
  }
  s += "prompt tokens cached " + Ratio(rep.cached_tokens, rep.prompt_tokens) + "\n";
  s += "encoder cache hits   " + Ratio(rep.encoder_cache_hits, rep.encoder_cache_known) + "\n";
  s += "response cache hits  " + Ratio(rep.response_cache_hits, rep.response_cache_known) + "\n";
  if (!rep.stages.empty()) {
    s += "server stages (mean ms):";
    for (const StageMean& st : rep.stages) s += fmt::format(" {} {:.2f}", st.name, st.mean_ms);
    s += "\n";
  }
  return s;
}

std::string SvgPathFor(const std::string& json_path) {
  constexpr std::string_view kJson = ".json";
  if (json_path.size() > kJson.size() && json_path.ends_with(kJson)) {
    return json_path.substr(0, json_path.size() - kJson.size()) + ".svg";
  }
  return json_path + ".svg";
}

Status WriteReports(const std::string& json_path, const BenchResult& result, const Report& report) {
  const std::pair<std::string, std::string> files[] = {
      {json_path, ReportJson(result, report)}, {SvgPathFor(json_path), ReportSvg(result, report)}};
  for (const auto& [path, text] : files) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.close();
    if (!out) return NotFoundError("cannot write " + path + ": check that the folder exists");
  }
  return OkStatus();
}

}  // namespace vlserve::bench_serve
