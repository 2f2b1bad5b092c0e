// `vlserve bench-render`: pages/s and chars/s of the text renderer (layout + raster into
// memory; no file output). Default input: built-in deterministic English prose.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "base/thread_pool.h"
#include "command.h"
#include "render/renderer.h"
#include "render/sample_text.h"
#include "render_flags.h"

namespace vlserve::app {
namespace {

struct BenchResult {
  int pages = 0;
  int64_t chars = 0;
  double seconds = 0;
};

// Best of `repeat` runs; the renderer (and its glyph cache) is warm after the first.
StatusOr<BenchResult> Measure(const render::Renderer& renderer, const std::string& text,
                              int threads, int repeat) {
  ThreadPool pool(threads);
  BenchResult best;
  for (int r = 0; r < repeat; ++r) {
    render::RenderSummary summary;
    RETURN_IF_ERROR(renderer.RenderAll(
        text, render::PixelFormat::kGrey8, threads > 1 ? &pool : nullptr,
        [](const render::PageLayout&, const render::ImageView&) { return OkStatus(); },
        &summary));
    if (r == 0 || summary.seconds < best.seconds) {
      best = {summary.pages, summary.text.chars, summary.seconds};
    }
  }
  return best;
}

std::string Json(const BenchResult& r) {
  return fmt::format(
      "{{\"pages\": {}, \"chars\": {}, \"seconds\": {:.4f}, \"pages_per_s\": {:.1f}, "
      "\"chars_per_s\": {:.0f}}}",
      r.pages, r.chars, r.seconds, r.pages / r.seconds, r.chars / r.seconds);
}

int RunSuite(const render::Renderer& renderer, int repeat) {
  struct Case {
    std::string name;
    std::string text;
  };
  const Case cases[] = {
      {"english 10K", render::SampleEnglish(10'000)},
      {"english 100K", render::SampleEnglish(100'000)},
      {"english 1M", render::SampleEnglish(1'000'000)},
      {"english 1MB one paragraph", render::SampleEnglish(1'000'000, 1, false)},
      {"chinese 1MB", render::SampleChinese(1'000'000)},
  };
  std::printf("%-28s %7s %6s %9s %9s %12s\n", "case", "threads", "pages", "seconds", "pages/s",
              "chars/s");
  for (const Case& c : cases) {
    for (int threads : {1, 2}) {
      StatusOr<BenchResult> r = Measure(renderer, c.text, threads, repeat);
      if (!r.ok()) {
        std::fprintf(stderr, "error: %s\n", r.status().ToString().c_str());
        return 1;
      }
      std::printf("%-28s %7d %6d %9.4f %9.1f %12.0f\n", c.name.c_str(), threads, r->pages,
                  r->seconds, r->pages / r->seconds, r->chars / r->seconds);
    }
  }
  return 0;
}

int RunBenchRender(int argc, char** argv) {
  CLI::App cli("Measure the text renderer: layout + rasterisation into memory",
               "vlserve bench-render");
  std::string input;
  int threads = 1, repeat = 3;
  size_t chars = 1'000'000;
  bool json = false, chinese = false, one_paragraph = false, suite = false;
  RenderFlags flags;
  cli.add_option("input", input, "UTF-8 text (default: built-in English prose)");
  cli.add_option("-t,--threads", threads, "threads")->capture_default_str();
  cli.add_option("--chars", chars, "size of the built-in text in bytes")->capture_default_str();
  cli.add_option("--repeat", repeat, "runs; the best is reported")->capture_default_str();
  cli.add_flag("--chinese", chinese, "built-in Chinese text instead of English");
  cli.add_flag("--one-paragraph", one_paragraph, "built-in English with no newline");
  cli.add_flag("--suite", suite, "the table in docs/render.md (sizes x threads)");
  cli.add_flag("--json", json, "print one JSON object");
  flags.Add(cli);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (std::string err = flags.Finish(); !err.empty()) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 2;
  }
  auto renderer = render::Renderer::Create(flags.options);
  if (!renderer.ok()) {
    std::fprintf(stderr, "error: %s\n", renderer.status().ToString().c_str());
    return 1;
  }
  if (suite) return RunSuite(**renderer, std::max(1, repeat));
  std::string text;
  if (!input.empty()) {
    std::ifstream in(input, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "error: cannot open '%s'\n", input.c_str());
      return 1;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    text = std::move(ss).str();
  } else {
    text = chinese ? render::SampleChinese(chars) : render::SampleEnglish(chars, 1, !one_paragraph);
  }
  StatusOr<BenchResult> r = Measure(**renderer, text, std::max(1, threads), std::max(1, repeat));
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.status().ToString().c_str());
    return 1;
  }
  if (json) {
    std::printf("%s\n", Json(*r).c_str());
  } else {
    std::printf("%d pages, %lld chars in %.4f s: %.1f pages/s, %.0f chars/s (%d threads)\n",
                r->pages, static_cast<long long>(r->chars), r->seconds, r->pages / r->seconds,
                r->chars / r->seconds, threads);
  }
  return 0;
}

}  // namespace

VLSERVE_COMMAND("bench-render", "measure text-to-page rendering speed", RunBenchRender);

}  // namespace vlserve::app
