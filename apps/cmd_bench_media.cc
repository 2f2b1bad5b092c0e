// `vlserve bench-media`: decode + preprocess of a photo-like JPEG, per stage, one thread.
// The JPEG is generated at run time (smooth gradients, blobs, an edge and noise,
// TurboJPEG quality 90, 4:2:0), so the benchmark needs no files.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/aligned.h"
#include "base/clock.h"
#include "command.h"
#include "kernels/kernels.h"
#include "media/encode.h"
#include "media/image.h"
#include "media/preprocess.h"

namespace vlserve::app {
namespace {

media::Image SyntheticPhoto(int width, int height) {
  media::Image image = media::MakeImage(width, height);
  std::mt19937 rng(42);
  std::normal_distribution<float> noise(0.0f, 6.0f);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const float fx = static_cast<float>(x) / width, fy = static_cast<float>(y) / height;
      float v[3] = {128 + 100 * std::sin(x / 97.0f) * std::cos(y / 131.0f),
                    255 * fx * 0.7f + 40 * std::cos((x + y) / 61.0f),
                    255 * fy * 0.8f + 30 * std::sin(x * y / 40000.0f)};
      const float dx = fx - 0.6f, dy = (fy - 0.4f) * height / width;
      if (dx * dx + dy * dy < 0.01f) v[0] = 250, v[1] = 240, v[2] = 30;
      for (int c = 0; c < 3; ++c) {
        float s = (x < width / 8 ? 0.3f * v[c] : v[c]) + noise(rng);
        image.Row(y)[3 * x + c] = static_cast<uint8_t>(std::clamp(std::lround(s), 0L, 255L));
      }
    }
  }
  return image;
}

// CPU time of this thread: on a loaded machine wall time includes waiting for a core.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Row {
  std::string name;
  double decode, resize, normalize, total, cpu;
  int tiles, dct;
};

// Runs decode + preprocess `iters` times; keeps the last tiles in `last`.
template <typename Fn>
Row Measure(const std::string& name, const std::vector<uint8_t>& jpeg, int hint, int iters,
            Fn preprocess, std::vector<float>* last) {
  std::vector<double> dec, res, norm, total, cpu;
  Row row{name, 0, 0, 0, 0, 0, 0, 1};
  for (int i = 0; i < iters; ++i) {
    media::DecodeOptions options;
    options.target_long_edge = hint;
    const double cpu_start = ThreadCpuMs();
    Stopwatch watch;
    StatusOr<media::Image> image = media::Decode(jpeg, options);
    const double decode_ms = watch.ElapsedMs();
    if (!image.ok()) {
      std::fprintf(stderr, "decode failed: %s\n", image.status().ToString().c_str());
      return row;
    }
    media::PreprocessTimings t;
    media::PixelTiles tiles = preprocess(*image, &t);
    total.push_back(watch.ElapsedMs());
    cpu.push_back(ThreadCpuMs() - cpu_start);
    dec.push_back(decode_ms);
    res.push_back(t.resize_ms);
    norm.push_back(t.normalize_ms);
    row.tiles = tiles.num_tiles;
    row.dct = image->dct_scale_denom;
    if (i + 1 == iters) {
      const size_t count = tiles.num_tiles * tiles.tile_floats();
      last->assign(tiles.pixels.data(), tiles.pixels.data() + count);
    }
  }
  row.decode = Median(dec), row.resize = Median(res), row.normalize = Median(norm);
  row.total = Median(total);
  row.cpu = Median(cpu);
  return row;
}

void PrintDeviation(const std::vector<float>& a, const std::vector<float>& b, float std_dev) {
  if (a.size() != b.size() || a.empty()) return;
  double max_diff = 0, sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double{a[i]} - b[i]);
    max_diff = std::max(max_diff, d);
    sum += d;
  }
  // Normalized units times std * 255 gives 8-bit pixel levels.
  std::printf(
      "    DCT-scaled vs full decode: max |diff| %.4f (%.1f/255), mean |diff| %.5f (%.2f/255)\n",
      max_diff, max_diff * std_dev * 255, sum / a.size(), sum / a.size() * std_dev * 255);
}

// Single-thread write bandwidth: median time to memset `bytes` (already faulted in), the
// floor for writing the float tiles.
void PrintWriteBandwidth(size_t bytes, int iters) {
  AlignedBuffer<uint8_t> buffer(bytes);
  buffer.Zero();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    Stopwatch watch;
    std::memset(buffer.data(), i, bytes);
    ms.push_back(watch.ElapsedMs());
  }
  const double median = Median(ms);
  std::printf("\nwrite bandwidth (memset, one thread): %.1f MB in %.2f ms = %.1f GB/s\n",
              bytes / 1e6, median, bytes / median / 1e6);
}

void PrintRow(const Row& r) {
  std::printf("%-34s 1/%-2d %6d %8.2f %8.2f %10.2f %8.2f %8.2f\n", r.name.c_str(), r.dct,
              r.tiles, r.decode, r.resize, r.normalize, r.total, r.cpu);
}

// The SmolVLM 2048 configuration (full decode) once per resize/normalize ISA.
void PrintPerIsa(const std::vector<uint8_t>& jpeg, int iters, media::BufferPool* pool,
                 media::PreprocessScratch* scratch) {
  std::printf("\nper ISA (VLSERVE_ISA), SmolVLM longest_edge 2048, full decode:\n");
  const kernels::Isa saved = kernels::ActiveIsa();
  media::SmolVlmPreprocessConfig config;
  auto run = [&](const media::Image& image, media::PreprocessTimings* t) {
    return media::PreprocessSmolVlm(image, config, pool, scratch, t);
  };
  for (auto isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (!kernels::IsaAvailable(isa)) continue;
    kernels::ForceIsa(isa);
    std::vector<float> last;
    const std::string name = "  " + std::string(kernels::IsaName(isa)) +
                             (isa == kernels::Isa::kScalar ? " (SSE4.1 resize)" : "");
    PrintRow(Measure(name, jpeg, 0, iters, run, &last));
  }
  kernels::ForceIsa(saved);
}

int RunBenchMedia(int argc, char** argv) {
  CLI::App app{"Decode + preprocess benchmark (one thread, median of N runs)",
               "vlserve bench-media"};
  int width = 1920, height = 1080, iters = 21, quality = 90;
  app.add_option("--width", width, "Image width")->capture_default_str();
  app.add_option("--height", height, "Image height")->capture_default_str();
  app.add_option("--iterations", iters, "Runs per configuration")->capture_default_str();
  app.add_option("--quality", quality, "JPEG quality")->capture_default_str();
  bool per_isa = true;
  app.add_flag("!--no-per-isa", per_isa, "Skip the per-ISA comparison");
  CLI11_PARSE(app, argc, argv);

  StatusOr<std::vector<uint8_t>> jpeg = media::EncodeJpeg(SyntheticPhoto(width, height), quality);
  if (!jpeg.ok()) {
    std::fprintf(stderr, "%s\n", jpeg.status().ToString().c_str());
    return 1;
  }
  std::printf("input: %dx%d synthetic photo, JPEG q%d 4:2:0, %zu bytes; %d runs, median ms\n",
              width, height, quality, jpeg->size(), iters);
  std::printf("resize/normalize ISA: %s (VLSERVE_ISA=scalar|avx2|avx512 to change)\n\n",
              std::string(kernels::IsaName(kernels::ActiveIsa())).c_str());
  std::printf("%-34s %4s %6s %8s %8s %10s %8s %8s\n", "configuration", "dct", "tiles", "decode",
              "resize", "tile+norm", "total", "cpu");
  media::BufferPool pool;
  media::PreprocessScratch scratch;
  for (int longest : {2048, 512}) {
    media::SmolVlmPreprocessConfig config;
    config.longest_edge = longest;
    auto run = [&](const media::Image& image, media::PreprocessTimings* t) {
      return media::PreprocessSmolVlm(image, config, &pool, &scratch, t);
    };
    std::vector<float> full, scaled;
    for (bool dct : {false, true}) {
      const std::string name = "SmolVLM longest_edge " + std::to_string(longest) + " tile 512";
      Row r = Measure(name, *jpeg, dct ? media::SmolVlmDecodeHint(config) : 0, iters, run,
                      dct ? &scaled : &full);
      PrintRow(r);
    }
    PrintDeviation(full, scaled, config.norm.std[0]);
  }
  media::LlavaPreprocessConfig llava;
  auto run = [&](const media::Image& image, media::PreprocessTimings* t) {
    return media::PreprocessLlava(image, llava, &pool, &scratch, t);
  };
  std::vector<float> full, scaled;
  for (bool dct : {false, true}) {
    Row r = Measure("LLaVA-1.5 pad + 336 bicubic", *jpeg, dct ? media::LlavaDecodeHint(llava) : 0,
                    iters, run, dct ? &scaled : &full);
    PrintRow(r);
  }
  PrintDeviation(full, scaled, llava.norm.std[1]);
  if (per_isa) PrintPerIsa(*jpeg, iters, &pool, &scratch);
  // 13 SmolVLM tiles of 3 x 512 x 512 float32 = the output the 2048 configuration writes.
  PrintWriteBandwidth(size_t{13} * 3 * 512 * 512 * sizeof(float), iters);
  return 0;
}

}  // namespace

VLSERVE_COMMAND("bench-media", "benchmark image decode + preprocessing (one thread)",
                RunBenchMedia);

}  // namespace vlserve::app
