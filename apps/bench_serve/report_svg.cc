// The SVG figure next to the --out JSON, written by hand (no libraries):
//   (a) empirical CDFs of TTFT and end-to-end latency of the completed requests;
//   (b) one stacked horizontal bar: the mean milliseconds per server stage (`timings`).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "bench_serve/report.h"

namespace vlserve::bench_serve {
namespace {

constexpr int kWidth = 960, kHeight = 600;
constexpr double kPlotX = 80, kPlotY = 70, kPlotW = 820, kPlotH = 280;
constexpr double kBarY = 450, kBarH = 36;
constexpr const char* kStageColors[] = {"#8dd3c7", "#ffffb3", "#bebada", "#fb8072",
                                        "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
                                        "#d9d9d9", "#bc80bd", "#ccebc5"};

std::string Escape(std::string_view text) {
  std::string s;
  for (char c : text) {
    switch (c) {
      case '&':
        s += "&amp;";
        break;
      case '<':
        s += "&lt;";
        break;
      case '>':
        s += "&gt;";
        break;
      case '"':
        s += "&quot;";
        break;
      default:
        s += c;
    }
  }
  return s;
}

// A 1/2/5 x 10^k step giving at most ~8 ticks up to `max`.
double TickStep(double max) {
  if (max <= 0) return 1;
  const double raw = max / 8;
  const double pow10 = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * pow10 >= raw) return m * pow10;
  }
  return 10 * pow10;
}

std::vector<double> Completed(const BenchResult& result, bool ttft) {
  std::vector<double> v;
  for (const RequestRecord& r : result.records) {
    if (!r.ok) continue;
    if (!ttft) v.push_back(r.e2e_ms);
    if (ttft && r.ttft_ms >= 0) v.push_back(r.ttft_ms);
  }
  return v;
}

// A step function through the CDF points, in plot coordinates.
std::string CdfPolyline(const std::vector<double>& samples, double x_max, const char* color) {
  std::string points;
  double prev_f = 0;
  auto px = [&](double v) { return kPlotX + kPlotW * std::min(v / x_max, 1.0); };
  auto py = [&](double f) { return kPlotY + kPlotH * (1 - f); };
  for (const auto& [v, f] : CdfPoints(samples, 400)) {
    points += fmt::format("{:.1f},{:.1f} {:.1f},{:.1f} ", px(v), py(prev_f), px(v), py(f));
    prev_f = f;
  }
  return fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                     color, points);
}

std::string CdfPanel(const BenchResult& result) {
  const std::vector<double> ttft = Completed(result, true), e2e = Completed(result, false);
  double max = 0;
  for (double v : ttft) max = std::max(max, v);
  for (double v : e2e) max = std::max(max, v);
  const double step = TickStep(max);
  const double x_max = std::max(step, std::ceil(max / step) * step);
  std::string s = fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"16\" font-weight=\"bold\">(a) latency CDF of "
      "completed requests (ms)</text>\n",
      kPlotX, kPlotY - 30);
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
      "stroke=\"#888\"/>\n",
      kPlotX, kPlotY, kPlotW, kPlotH);
  for (double t = 0; t <= x_max + step / 2; t += step) {
    const double x = kPlotX + kPlotW * t / x_max;
    s += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#eee\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\">"
        "{4:g}</text>\n",
        x, kPlotY, kPlotY + kPlotH, kPlotY + kPlotH + 16, t);
  }
  for (int k = 0; k <= 4; ++k) {
    const double y = kPlotY + kPlotH * (1 - k / 4.0);
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#eee\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" font-size=\"11\" text-anchor=\"end\">{5:g}"
        "</text>\n",
        kPlotX, y, kPlotX + kPlotW, kPlotX - 6, y + 4, k / 4.0);
  }
  // E2E first: TTFT <= E2E, so where they coincide the TTFT line stays visible on top.
  s += CdfPolyline(e2e, x_max, "#ff7f0e") + CdfPolyline(ttft, x_max, "#1f77b4");
  s += fmt::format(
      "<text x=\"{0}\" y=\"{1}\" font-size=\"12\" fill=\"#1f77b4\">TTFT (n={2})"
      "</text><text x=\"{0}\" y=\"{3}\" font-size=\"12\" fill=\"#ff7f0e\">E2E "
      "(n={4})</text>\n",
      kPlotX + kPlotW - 120, kPlotY + kPlotH - 34, ttft.size(), kPlotY + kPlotH - 16, e2e.size());
  return s;
}

std::string StagePanel(const Report& rep) {
  double total = 0;
  for (const StageMean& st : rep.stages) total += st.mean_ms;
  std::string s = fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"16\" font-weight=\"bold\">(b) mean server time per "
      "stage (timings), sum {:.2f} ms</text>\n",
      kPlotX, kBarY - 20, total);
  if (total <= 0) {
    return s + fmt::format(
                   "<text x=\"{}\" y=\"{}\" font-size=\"12\">no server timings"
                   "</text>\n",
                   kPlotX, kBarY + 20);
  }
  double x = kPlotX;
  for (size_t i = 0; i < rep.stages.size(); ++i) {
    const StageMean& st = rep.stages[i];
    const double w = kPlotW * st.mean_ms / total;
    const char* color = kStageColors[i % std::size(kStageColors)];
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\" "
        "stroke=\"#555\"><title>{} {:.2f} ms</title></rect>\n",
        x, kBarY, w, kBarH, color, st.name, st.mean_ms);
    // Legend: four entries per row under the bar.
    const double lx = kPlotX + (i % 4) * 205.0, ly = kBarY + kBarH + 24 + (i / 4) * 20.0;
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\" "
        "stroke=\"#555\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{} {:.2f} ms"
        "</text>\n",
        lx, ly - 10, color, lx + 18, ly, st.name, st.mean_ms);
    x += w;
  }
  return s;
}

}  // namespace

std::string ReportSvg(const BenchResult& result, const Report& rep) {
  const BenchConfig& c = result.config;
  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      kWidth, kHeight);
  s += fmt::format(
      "<text x=\"{}\" y=\"20\" font-size=\"13\">{}</text>\n", kPlotX,
      Escape(fmt::format("bench-serve {} dataset {} {} requests {}: completed {}, "
                         "failed {}, {:.2f} req/s",
                         c.url, DatasetKindName(c.dataset.kind),
                         c.rate > 0 ? fmt::format("rate {:g}/s", c.rate)
                                    : fmt::format("concurrency {}", c.concurrency),
                         c.requests, rep.completed, rep.failed, rep.request_throughput)));
  s += CdfPanel(result);
  s += StagePanel(rep);
  return s + "</svg>\n";
}

}  // namespace vlserve::bench_serve
