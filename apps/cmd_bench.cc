// vlserve bench: llama-bench style model throughput. pp = one prefill of -p tokens from an
// empty cache; tg = -n single-token decode steps from an empty cache. Each is repeated -r
// times after one warm-up run; the mean and standard deviation are reported.
// Rates: tg streams every weight once per token (GB/s = weight bytes x tok/s); pp is
// counted as 2 x params FLOP per token (the matrix parameters, output/embedding included,
// attention excluded). Both are shown as a fraction of this machine's memory read
// bandwidth and F32 GEMM peak, measured in the same run before the model (--no-limits
// skips that).
// With --mmproj, one forward of --tiles vision tiles (tower + projector) is timed the same
// way; its FLOPs are VisionModel::FlopsPerTile (patch embed, per layer
// 2T(4d² + 2d·ffn) + 4T²d attention, projector).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/thread_pool.h"
#include "command.h"
#include "kernels/bench_kernels.h"
#include "kernels/kernels.h"
#include "models/registry.h"
#include "models/text_model.h"
#include "models/vision_model.h"

namespace vlserve::app {
namespace {

struct Result {
  double mean_tok_s = 0, stddev_tok_s = 0;
};

Result Summarize(const std::vector<double>& seconds, int64_t tokens) {
  Result r;
  std::vector<double> rates;
  for (double s : seconds) rates.push_back(tokens / s);
  r.mean_tok_s = std::accumulate(rates.begin(), rates.end(), 0.0) / rates.size();
  double var = 0;
  for (double x : rates) var += (x - r.mean_tok_s) * (x - r.mean_tok_s);
  r.stddev_tok_s = rates.size() > 1 ? std::sqrt(var / (rates.size() - 1)) : 0.0;
  return r;
}

// CPU seconds used by the whole process (all threads, spinning included). CPU / wall
// below the thread count means the threads did not get their cores (a loaded machine).
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// Seconds for one prefill of `n` tokens at positions [0, n).
StatusOr<double> TimePrefill(const models::TextModel& m, models::KvBuffer& kv,
                             models::ForwardScratch& s, const std::vector<int32_t>& blocks,
                             const std::vector<int32_t>& tokens, std::vector<float>& logits) {
  models::BatchItem item{blocks.data(), kv.num_blocks(), 0, tokens, nullptr, false};
  Stopwatch t;
  RETURN_IF_ERROR(m.Forward({item}, kv, s, logits.data()));
  return t.ElapsedSeconds();
}

// Seconds for `n` single-token decode steps at positions [depth, depth + n) (the KV
// cache below `depth` already filled).
StatusOr<double> TimeDecode(const models::TextModel& m, models::KvBuffer& kv,
                            models::ForwardScratch& s, const std::vector<int32_t>& blocks,
                            int64_t depth, int64_t n, std::vector<float>& logits) {
  Stopwatch t;
  int32_t token = 1;
  for (int64_t pos = depth; pos < depth + n; ++pos) {
    const int32_t one[1] = {token};
    models::BatchItem item{blocks.data(), kv.num_blocks(), pos, one, nullptr, false};
    RETURN_IF_ERROR(m.Forward({item}, kv, s, logits.data()));
    token = static_cast<int32_t>((token * 7 + 3) % m.config().vocab);
  }
  return t.ElapsedSeconds();
}

struct EncodeResult {
  int64_t tiles = 0;
  double ms_per_tile = 0, stddev_ms = 0, gflops = 0;
  double cpu_per_wall = 0;  // below the thread count: the threads did not get their cores
  std::vector<float> pixels, output;  // the timed tiles and their embeddings
};

// How far `got` is from `ref` (the same tiles through a reference tower).
struct EncodeAccuracy {
  bool measured = false;
  double max_abs_diff = 0, max_abs_ref = 0, rel_rms = 0;
};

EncodeAccuracy CompareEmbeddings(const std::vector<float>& got, const std::vector<float>& ref) {
  EncodeAccuracy a;
  a.measured = true;
  double sq_err = 0, sq = 0;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    const double d = double{got[i]} - ref[i];
    a.max_abs_diff = std::max(a.max_abs_diff, std::fabs(d));
    a.max_abs_ref = std::max(a.max_abs_ref, std::fabs(double{ref[i]}));
    sq_err += d * d;
    sq += double{ref[i]} * ref[i];
  }
  a.rel_rms = sq > 0 ? std::sqrt(sq_err / sq) : 0.0;
  return a;
}

// Times `reps` encodes of `tiles` deterministic tiles after one warm-up.
EncodeResult TimeEncode(const models::VisionModel& v, int64_t tiles, int reps) {
  const int64_t side = v.config().image_size;
  std::vector<float> pixels(tiles * 3 * side * side);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::sin(0.001f * i);
  std::vector<float> out(tiles * v.tokens_per_tile() * v.output_width());
  models::VisionScratch scratch;
  std::vector<double> seconds;
  double cpu = 0;
  for (int r = 0; r <= reps; ++r) {
    const double cpu0 = ProcessCpuSeconds();
    Stopwatch t;
    v.Encode(pixels.data(), tiles, out.data(), scratch);
    if (r > 0) seconds.push_back(t.ElapsedSeconds()), cpu += ProcessCpuSeconds() - cpu0;
  }
  const Result rate = Summarize(seconds, tiles);  // tiles per second
  EncodeResult e;
  e.pixels = std::move(pixels);
  e.output = std::move(out);
  e.tiles = tiles;
  e.ms_per_tile = 1e3 / rate.mean_tok_s;
  e.stddev_ms = e.ms_per_tile * rate.stddev_tok_s / rate.mean_tok_s;
  e.gflops = v.FlopsPerTile() * rate.mean_tok_s * 1e-9;
  e.cpu_per_wall = cpu / std::accumulate(seconds.begin(), seconds.end(), 0.0);
  return e;
}

int RunBench(int argc, char** argv) {
  CLI::App cli("Model throughput: prompt processing (pp) and token generation (tg).",
               "vlserve bench");
  std::string model_path;
  int64_t n_prompt = 512, n_gen = 128, depth = 0;
  int threads = 0, reps = 3;
  bool json = false, no_limits = false;
  std::string mmproj_path, reference_path;
  int64_t tiles = 1;
  std::string vision_compute = "f32";
  std::string kv_type = "f16";
  cli.add_option("-m,--model", model_path, "text model GGUF")->required();
  cli.add_option("--kv-type", kv_type, "KV cache storage: f16, bf16 or f32 (as serve)")
      ->capture_default_str();
  cli.add_option("--vision-compute", vision_compute,
                 "vision tower matmul arithmetic: f32 or bf16 (vdpbf16ps; docs/vision.md)")
      ->capture_default_str();
  cli.add_option("--mmproj", mmproj_path, "also time the vision encoder of this mmproj GGUF");
  cli.add_option("--encode-reference", reference_path,
                 "also encode the timed tiles with this mmproj (f32 compute) and report how far "
                 "the timed embeddings are from it (accuracy cost of bf16 or a quantized mmproj)");
  cli.add_option("--tiles", tiles, "tiles per encode forward (with --mmproj)")
      ->capture_default_str();
  cli.add_option("-p,--n-prompt", n_prompt, "prompt tokens (0 = skip pp)")->capture_default_str();
  cli.add_option("-n,--n-gen", n_gen, "generated tokens (0 = skip tg)")->capture_default_str();
  cli.add_option("-d,--depth", depth,
                 "tokens already in the KV cache when tg starts (decode at a long context, "
                 "e.g. after an image prompt; llama-bench's -d)")
      ->capture_default_str();
  cli.add_option("-t,--threads", threads, "threads (default: VLSERVE_THREADS or all cores)");
  cli.add_option("-r,--repetitions", reps, "repetitions")->capture_default_str();
  cli.add_flag("--json", json, "print one JSON object instead of the table");
  cli.add_flag("--no-limits", no_limits, "skip measuring memory bandwidth and GEMM peak");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (threads > 0) SetDefaultThreads(threads);
  // Limits first, while no model thread is spinning; same thread count as the model.
  kernels::MachineLimits limits;
  if (!no_limits) limits = kernels::MeasureMachineLimits(DefaultThreadPool().num_threads());
  auto model_or = models::LoadTextModel(model_path);
  if (!model_or.ok()) {
    std::fprintf(stderr, "error: %s\n", model_or.status().ToString().c_str());
    return 1;
  }
  const models::TextModel& m = **model_or;
  const models::TextConfig& c = m.config();
  EncodeResult enc;
  EncodeAccuracy accuracy;
  if (!mmproj_path.empty()) {
    auto compute = models::ParseVisionComputeType(vision_compute);
    if (!compute.ok()) {
      std::fprintf(stderr, "error: %s\n", compute.status().ToString().c_str());
      return 1;
    }
    auto v = models::VisionModel::Load(mmproj_path, models::VisionLoadOptions{*compute});
    Status s = v.ok() ? (*v)->CheckCompatible(c) : v.status();
    if (!s.ok() || tiles < 1) {
      std::fprintf(stderr, "error: %s\n", s.ok() ? "--tiles must be >= 1" : s.ToString().c_str());
      return 1;
    }
    enc = TimeEncode(**v, tiles, std::max(reps, 1));
    if (!reference_path.empty()) {
      auto ref = models::VisionModel::Load(reference_path, models::VisionLoadOptions{});
      Status rs = ref.ok() ? (*ref)->CheckCompatible(c) : ref.status();
      if (rs.ok() && ((*ref)->tokens_per_tile() != (*v)->tokens_per_tile() ||
                      (*ref)->output_width() != (*v)->output_width() ||
                      (*ref)->config().image_size != (*v)->config().image_size)) {
        rs = InvalidArgumentError("--encode-reference has another tower shape than --mmproj");
      }
      if (!rs.ok()) {
        std::fprintf(stderr, "error: %s\n", rs.ToString().c_str());
        return 1;
      }
      accuracy = CompareEmbeddings(enc.output, (*ref)->Encode(enc.pixels.data(), tiles));
    }
  }
  const int64_t ctx = std::max<int64_t>({n_prompt, depth + n_gen, 1});
  if (ctx > c.context_length || reps < 1 || depth < 0) {
    std::fprintf(stderr, "error: -p and -d + -n must fit the context length %lld, -d must be "
                 ">= 0 and -r >= 1\n",
                 static_cast<long long>(c.context_length));
    return 2;
  }
  auto kv_dtype = models::ParseKvType(kv_type);
  if (!kv_dtype.ok()) {
    return std::fprintf(stderr, "error: %s\n", kv_dtype.status().ToString().c_str()), 2;
  }
  const int64_t kv_token_bytes = models::KvBuffer::BytesPerToken(c, *kv_dtype);
  models::KvBuffer kv(c, (ctx + models::kKvBlockSize - 1) / models::kKvBlockSize, *kv_dtype);
  std::vector<int32_t> blocks(kv.num_blocks());
  std::iota(blocks.begin(), blocks.end(), 0);
  models::ForwardScratch scratch;
  std::vector<float> logits(c.vocab);
  std::vector<int32_t> prompt(n_prompt);
  for (int64_t i = 0; i < n_prompt; ++i) prompt[i] = static_cast<int32_t>((i * 37 + 11) % c.vocab);

  if (depth > 0 && n_gen > 0) {  // fill the KV cache up to the depth once (untimed)
    std::vector<int32_t> fill(depth);
    for (int64_t i = 0; i < depth; ++i) fill[i] = static_cast<int32_t>((i * 53 + 5) % c.vocab);
    models::BatchItem item{blocks.data(), kv.num_blocks(), 0, fill, nullptr, false};
    if (Status s = m.Forward({item}, kv, scratch, logits.data()); !s.ok()) {
      return std::fprintf(stderr, "error: %s\n", s.ToString().c_str()), 1;
    }
  }
  std::vector<double> pp_s, tg_s;
  double pp_cpu = 0, tg_cpu = 0;  // CPU seconds over the measured repetitions
  for (int r = 0; r <= reps; ++r) {  // r == 0 warms up
    if (n_prompt > 0) {
      const double cpu0 = ProcessCpuSeconds();
      auto s = TimePrefill(m, kv, scratch, blocks, prompt, logits);
      if (!s.ok()) return std::fprintf(stderr, "error: %s\n", s.status().ToString().c_str()), 1;
      if (r > 0) pp_s.push_back(*s), pp_cpu += ProcessCpuSeconds() - cpu0;
    }
    if (n_gen > 0) {
      const double cpu0 = ProcessCpuSeconds();
      auto s = TimeDecode(m, kv, scratch, blocks, depth,
                          r == 0 ? std::min<int64_t>(n_gen, 4) : n_gen, logits);
      if (!s.ok()) return std::fprintf(stderr, "error: %s\n", s.status().ToString().c_str()), 1;
      if (r > 0) tg_s.push_back(*s), tg_cpu += ProcessCpuSeconds() - cpu0;
    }
  }
  auto total = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); };
  const double pp_cpu_ratio = pp_s.empty() ? 0 : pp_cpu / total(pp_s);
  const double tg_cpu_ratio = tg_s.empty() ? 0 : tg_cpu / total(tg_s);
  // 2 FLOP per matrix parameter per prompt token (llama-bench's convention for pp).
  const double pp_flop = 2.0 * static_cast<double>(m.matmul_macs_per_token()) * n_prompt;
  const Result pp = n_prompt > 0 ? Summarize(pp_s, n_prompt) : Result{};
  const Result tg = n_gen > 0 ? Summarize(tg_s, n_gen) : Result{};
  const double pp_gflops = n_prompt > 0 ? pp.mean_tok_s / n_prompt * pp_flop * 1e-9 : 0.0;
  const double tg_gbps = tg.mean_tok_s * m.weight_bytes() * 1e-9;  // weights streamed per token
  const int nthreads = DefaultThreadPool().num_threads();
  // Fractions of the measured limits (0 when they were not measured).
  auto frac = [](double x, double limit) { return limit > 0 ? x / limit : 0.0; };
  const double pp_frac = frac(pp_gflops, limits.f32_gemm_gflops);
  const double tg_frac = frac(tg_gbps, limits.mem_read_gbps);
  if (json) {
    std::printf("{\"model\": \"%s\", \"threads\": %d, \"isa\": \"%s\", "
                "\"pp\": {\"n_tokens\": %lld, \"tok_per_s\": %.3f, \"stddev\": %.3f, "
                "\"gflops\": %.3f, \"frac_f32_gemm\": %.4f, \"cpu_per_wall\": %.2f}, "
                "\"tg\": {\"n_tokens\": %lld, \"depth\": %lld, \"tok_per_s\": %.3f, \"stddev\": %.3f, "
                "\"gbps\": %.3f, \"frac_mem\": %.4f, \"cpu_per_wall\": %.2f, \"kv_type\": \"%s\", "
                "\"kv_bytes_per_token\": %lld}, "
                "\"limits\": {\"mem_gbps\": %.3f, \"f32_gflops\": %.3f}",
                c.name.c_str(), nthreads, std::string(kernels::IsaName(kernels::ActiveIsa())).c_str(),
                static_cast<long long>(n_prompt), pp.mean_tok_s, pp.stddev_tok_s, pp_gflops,
                pp_frac, pp_cpu_ratio, static_cast<long long>(n_gen), static_cast<long long>(depth),
                tg.mean_tok_s,
                tg.stddev_tok_s, tg_gbps, tg_frac, tg_cpu_ratio, kv_type.c_str(),
                static_cast<long long>(kv_token_bytes), limits.mem_read_gbps,
                limits.f32_gemm_gflops);
    if (enc.tiles > 0) {
      std::printf(", \"encode\": {\"tiles\": %lld, \"compute\": \"%s\", \"ms_per_tile\": %.3f, "
                  "\"stddev_ms\": %.3f, \"gflops\": %.3f, \"frac_f32_gemm\": %.4f, "
                  "\"cpu_per_wall\": %.2f",
                  static_cast<long long>(enc.tiles), vision_compute.c_str(), enc.ms_per_tile,
                  enc.stddev_ms, enc.gflops, frac(enc.gflops, limits.f32_gemm_gflops),
                  enc.cpu_per_wall);
      if (accuracy.measured) {
        std::printf(", \"accuracy\": {\"max_abs_diff\": %.6g, \"max_abs_ref\": %.6g, "
                    "\"rel_rms\": %.6g}",
                    accuracy.max_abs_diff, accuracy.max_abs_ref, accuracy.rel_rms);
      }
      std::printf("}");
    }
    std::printf("}\n");
    return 0;
  }
  if (!no_limits) {
    std::printf("limits (measured now, %d threads): memory read %.1f GB/s, F32 GEMM %.1f GFLOP/s\n\n",
                nthreads, limits.mem_read_gbps, limits.f32_gemm_gflops);
  }
  const std::string name = c.name.empty() ? c.arch : c.name;
  const std::string size = fmt::format("{:.2f} MiB", m.weight_bytes() / 1048576.0);
  const std::string wtype(Info(m.file().FindTensor("blk.0.attn_q.weight")->type).name);
  std::printf("| %-26s | %10s | %5s | %7s | %6s | %18s | %14s | %10s |\n", "model", "size",
              "type", "threads", "test", "t/s", "rate", "of limit");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(28, '-').c_str(),
              std::string(12, '-').c_str(), std::string(7, '-').c_str(),
              std::string(9, '-').c_str(), std::string(8, '-').c_str(),
              std::string(20, '-').c_str(), std::string(16, '-').c_str(),
              std::string(12, '-').c_str());
  auto row = [&](const char* kind, int64_t n, const Result& r, std::string rate,
                 std::string of_limit) {
    std::printf("| %-26s | %10s | %5s | %7d | %6s | %18s | %14s | %10s |\n", name.c_str(),
                size.c_str(), wtype.c_str(), nthreads,
                fmt::format("{}{}{}", kind, n,
                            kind[0] == 't' && depth > 0 ? fmt::format("@d{}", depth) : "")
                    .c_str(),
                fmt::format("{:.2f} ± {:.2f}", r.mean_tok_s, r.stddev_tok_s).c_str(),
                rate.c_str(), of_limit.c_str());
  };
  if (n_prompt > 0) {
    row("pp", n_prompt, pp, fmt::format("{:.1f} GFLOP/s", pp_gflops),
        no_limits ? "" : fmt::format("{:.1f}% gemm", 100 * pp_frac));
  }
  if (n_gen > 0) {
    row("tg", n_gen, tg, fmt::format("{:.2f} GB/s", tg_gbps),
        no_limits ? "" : fmt::format("{:.1f}% mem", 100 * tg_frac));
    std::printf("\nKV cache %s: %lld bytes per token (tg at depth %lld also reads %.1f MiB of "
                "KV per token)\n",
                kv_type.c_str(), static_cast<long long>(kv_token_bytes),
                static_cast<long long>(depth), depth * kv_token_bytes / 1048576.0);
  }
  if (enc.tiles > 0) {
    std::printf("\nencode (%lld tile(s) per forward, %s compute): %.1f ± %.1f ms/tile, %.1f GFLOP/s, "
                "cpu/wall %.2f%s\n",
                static_cast<long long>(enc.tiles), vision_compute.c_str(), enc.ms_per_tile,
                enc.stddev_ms, enc.gflops,
                enc.cpu_per_wall,
                no_limits ? ""
                          : fmt::format(" ({:.1f}% of F32 GEMM peak)",
                                        100 * frac(enc.gflops, limits.f32_gemm_gflops))
                                .c_str());
    if (accuracy.measured) {
      std::printf("encode accuracy vs --encode-reference (f32): max |diff| %.4g (%.2f%% of max "
                  "|y| %.4g), relative RMS error %.3f%%\n",
                  accuracy.max_abs_diff, 100 * accuracy.max_abs_diff / accuracy.max_abs_ref,
                  accuracy.max_abs_ref, 100 * accuracy.rel_rms);
    }
  }
  std::printf("\ncpu time / wall time: pp %.2f, tg %.2f (of %d threads; lower means the "
              "threads did not get their cores)\n", pp_cpu_ratio, tg_cpu_ratio, nthreads);
  return 0;
}

}  // namespace

VLSERVE_COMMAND("bench", "model throughput: prompt processing, token generation, tile encode",
                RunBench);

}  // namespace vlserve::app
