#include "bench_serve/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace vlserve::bench_serve {

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - lo;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Summary Summarize(std::vector<double> samples) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.count = samples.size();
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size();
  s.min = samples.front();
  s.max = samples.back();
  s.p50 = Percentile(samples, 50);
  s.p90 = Percentile(samples, 90);
  s.p99 = Percentile(samples, 99);
  return s;
}

std::vector<std::pair<double, double>> CdfPoints(std::vector<double> samples, size_t max_points) {
  std::vector<std::pair<double, double>> out;
  if (samples.empty() || max_points == 0) return out;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  const size_t points = std::min(n, max_points);
  for (size_t k = 1; k <= points; ++k) {
    // k-th of `points` evenly spaced ranks; the last is always n.
    const size_t rank = (k * n + points - 1) / points;
    out.emplace_back(samples[rank - 1], static_cast<double>(rank) / n);
  }
  return out;
}

}  // namespace vlserve::bench_serve
