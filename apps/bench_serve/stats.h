// Summary statistics of latency samples for `vlserve bench-serve`.
#pragma once

#include <cstddef>
#include <vector>

namespace vlserve::bench_serve {

// Percentile by linear interpolation between closest ranks (numpy's default "linear"
// method): rank = p / 100 * (n - 1) over the sorted samples. `sorted` must be ascending;
// p in [0, 100]. Empty input gives 0.
double Percentile(const std::vector<double>& sorted, double p);

struct Summary {
  size_t count = 0;
  double mean = 0, min = 0, max = 0;
  double p50 = 0, p90 = 0, p99 = 0;
};

// All fields 0 for no samples.
Summary Summarize(std::vector<double> samples);

// Empirical CDF points (value, fraction <= value) of the samples, at most `max_points`
// of them (evenly spaced ranks, always including the largest sample), ascending.
std::vector<std::pair<double, double>> CdfPoints(std::vector<double> samples, size_t max_points);

}  // namespace vlserve::bench_serve
