// `vlserve bench-serve`: a load generator for a running vlserve (or any OpenAI-compatible)
// server: streamed chat completions with synthetic text, image, multi-turn or document
// prompts; TTFT / TPOT / ITL / E2E percentiles, throughput, goodput, cache hit counts.
// The logic lives in apps/bench_serve/; docs/bench-serve.md describes flags and output.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "bench_serve/report.h"
#include "bench_serve/runner.h"
#include "command.h"

namespace vlserve::app {
namespace {

int RunBenchServe(int argc, char** argv) {
  using namespace bench_serve;
  BenchConfig config;
  std::string dataset = "random-mm", slo, out;
  CLI::App app{"Load-test a vlserve server over its OpenAI API (streaming chat completions)",
               "vlserve bench-serve"};
  app.add_option("--url", config.url, "server base URL, http:// only (https is not supported)")
      ->capture_default_str();
  app.add_option("--dataset", dataset, "prompts: " + DatasetKindNames())->capture_default_str();
  auto* rate =
      app.add_option("--rate", config.rate, "open loop: Poisson arrivals at this many requests/s");
  auto* conc = app.add_option("--concurrency", config.concurrency,
                              "closed loop: this many clients, each sending its next request "
                              "when the last one ended (default 1)");
  rate->excludes(conc);
  app.add_option("--requests,-n", config.requests, "requests to send")->capture_default_str();
  app.add_option("--slo", slo, "goodput objective, e.g. ttft:500,tpot:50 (ms; also e2e:MS)");
  app.add_option("--out", out, "write JSON here, and an SVG next to it (x.json -> x.svg)");
  app.add_option("--seed", config.dataset.seed, "dataset and arrival seed")->capture_default_str();
  app.add_option("--max-tokens", config.dataset.max_tokens, "max_tokens of every request")
      ->capture_default_str();
  app.add_option("--api-key", config.api_key, "sent as 'Authorization: Bearer KEY'");
  app.add_option("--model", config.dataset.model, "the 'model' field (default: omitted)");
  app.add_option("--extra-body", config.dataset.extra_body,
                 "JSON object merged into every request body, e.g. '{\"temperature\": 0}'");
  app.add_option("--timeout", config.timeout_s, "seconds one request may take")
      ->capture_default_str();
  bool quiet = false;
  app.add_flag("--quiet,-q", quiet, "no progress line on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto kind = ParseDatasetKind(dataset);
  auto parsed_slo = ParseSlo(slo);
  for (const Status& s : {kind.status(), parsed_slo.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "bench-serve: %s\n", s.message().c_str());
      return 2;
    }
  }
  config.dataset.kind = *kind;
  config.slo = *parsed_slo;
  config.progress = !quiet;
  config.command_line = "vlserve";
  for (int i = 0; i < argc; ++i) config.command_line += std::string(" ") + argv[i];

  StatusOr<BenchResult> result = RunBench(config);
  if (!result.ok()) {
    std::fprintf(stderr, "bench-serve: %s\n", result.status().message().c_str());
    return 2;
  }
  const Report report = Aggregate(*result);
  std::fputs(FormatTable(*result, report).c_str(), stdout);
  if (!out.empty()) {
    if (Status s = WriteReports(out, *result, report); !s.ok()) {
      std::fprintf(stderr, "bench-serve: %s\n", s.message().c_str());
      return 1;
    }
    std::printf("wrote %s and %s\n", out.c_str(), SvgPathFor(out).c_str());
  }
  return report.completed > 0 ? 0 : 1;
}

}  // namespace
}  // namespace vlserve::app

VLSERVE_COMMAND("bench-serve", "load-test a running server: TTFT/TPOT/ITL, goodput, caches",
                vlserve::app::RunBenchServe);
