// `vlserve bench-kernels`: memory bandwidth, F32 peak and MatMul throughput per weight
// type (src/kernels/bench_kernels.cc does the work; docs/bench-kernels.md explains it).
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "command.h"
#include "kernels/bench_kernels.h"
#include "kernels/types.h"

namespace vlserve::app {
namespace {

int RunBenchKernels(int argc, char** argv) {
  CLI::App cli("Measure memory bandwidth, F32 peak and MatMul speed per weight type",
               "vlserve bench-kernels");
  kernels::BenchKernelsOptions opts;
  std::vector<std::string> type_names;
  double seconds = opts.seconds;
  cli.add_option("-t,--threads", opts.threads, "threads (default 2)");
  cli.add_flag("--json", opts.json, "print JSON instead of a table");
  cli.add_option("--types", type_names, "weight types to measure (default: all), e.g. q4_0 f16");
  cli.add_option("-n,--tokens", opts.matmul_tokens, "tokens for the matmul measurement (64)");
  cli.add_option("--seconds", seconds, "minimum seconds per measurement (0.25)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  opts.seconds = seconds;
  for (const std::string& name : type_names) {
    const auto type = DTypeFromName(name);
    if (!type) {
      std::fprintf(stderr, "bench-kernels: unknown type '%s' (try q4_0, q8_0, f16, q4_k)\n",
                   name.c_str());
      return 2;
    }
    opts.types.push_back(*type);
  }
  auto report = kernels::BenchKernels(opts);
  if (!report.ok()) {
    std::fprintf(stderr, "%s\n", report.status().ToString().c_str());
    return 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}

}  // namespace
}  // namespace vlserve::app

VLSERVE_COMMAND("bench-kernels", "measure memory bandwidth and MatMul speed per weight type",
                vlserve::app::RunBenchKernels);
