// The load generator of `vlserve bench-serve`: open-loop Poisson arrivals (--rate) or
// closed-loop clients (--concurrency), each request a streamed chat completion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "bench_serve/dataset.h"
#include "bench_serve/record.h"

namespace vlserve::bench_serve {

// Service-level objective: a request "meets" it when it succeeded and every given term
// holds (0 = term not given).
struct Slo {
  double ttft_ms = 0;
  double tpot_ms = 0;
  double e2e_ms = 0;
  bool empty() const { return ttft_ms <= 0 && tpot_ms <= 0 && e2e_ms <= 0; }
};

// "ttft:500,tpot:50[,e2e:MS]" (milliseconds).
StatusOr<Slo> ParseSlo(std::string_view text);
bool MeetsSlo(const Slo& slo, const RequestRecord& record);

struct BenchConfig {
  std::string url = "http://127.0.0.1:8080";
  DatasetOptions dataset;
  double rate = 0;      // requests/s (Poisson); 0 = closed loop
  int concurrency = 1;  // closed-loop clients (used when rate == 0)
  int requests = 100;
  Slo slo;
  std::string api_key;
  double timeout_s = 300;  // per request
  bool progress = true;    // "\r[ 37/100] ..." on stderr
  std::string command_line;
};

struct BenchResult {
  BenchConfig config;
  std::vector<RequestRecord> records;  // by index
  double duration_s = 0;               // first send -> last response
};

// Runs the whole benchmark. Fails only on bad configuration (URL, counts, dataset); every
// request failure is recorded in its RequestRecord.
StatusOr<BenchResult> RunBench(const BenchConfig& config);

// Poisson arrival times (seconds from 0; the first is 0) of `n` requests at `rate`/s,
// deterministic in the seed.
std::vector<double> PoissonSchedule(int n, double rate, uint64_t seed);

}  // namespace vlserve::bench_serve
