// vlserve bench: llama-bench style model throughput. pp = one prefill of -p tokens from an
// empty cache; tg = -n single-token decode steps from an empty cache. Each is repeated -r
// times after one warm-up run; the mean and standard deviation are reported.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/thread_pool.h"
#include "command.h"
#include "kernels/kernels.h"
#include "models/registry.h"
#include "models/text_model.h"

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

// Seconds for one prefill of `n` tokens at positions [0, n).
StatusOr<double> TimePrefill(const models::TextModel& m, models::KvBuffer& kv,
                             models::ForwardScratch& s, const std::vector<int32_t>& blocks,
                             const std::vector<int32_t>& tokens, std::vector<float>& logits) {
  models::BatchItem item{blocks.data(), kv.num_blocks(), 0, tokens, nullptr, false};
  Stopwatch t;
  RETURN_IF_ERROR(m.Forward({item}, kv, s, logits.data()));
  return t.ElapsedSeconds();
}

// Seconds for `n` single-token decode steps at positions [0, n).
StatusOr<double> TimeDecode(const models::TextModel& m, models::KvBuffer& kv,
                            models::ForwardScratch& s, const std::vector<int32_t>& blocks,
                            int64_t n, std::vector<float>& logits) {
  Stopwatch t;
  int32_t token = 1;
  for (int64_t pos = 0; pos < n; ++pos) {
    const int32_t one[1] = {token};
    models::BatchItem item{blocks.data(), kv.num_blocks(), pos, one, nullptr, false};
    RETURN_IF_ERROR(m.Forward({item}, kv, s, logits.data()));
    token = static_cast<int32_t>((token * 7 + 3) % m.config().vocab);
  }
  return t.ElapsedSeconds();
}

int RunBench(int argc, char** argv) {
  CLI::App cli("Model throughput: prompt processing (pp) and token generation (tg).",
               "vlserve bench");
  std::string model_path;
  int64_t n_prompt = 512, n_gen = 128;
  int threads = 0, reps = 3;
  bool json = false;
  cli.add_option("-m,--model", model_path, "text model GGUF")->required();
  cli.add_option("-p,--n-prompt", n_prompt, "prompt tokens (0 = skip pp)")->capture_default_str();
  cli.add_option("-n,--n-gen", n_gen, "generated tokens (0 = skip tg)")->capture_default_str();
  cli.add_option("-t,--threads", threads, "threads (default: VLSERVE_THREADS or all cores)");
  cli.add_option("-r,--repetitions", reps, "repetitions")->capture_default_str();
  cli.add_flag("--json", json, "print one JSON object instead of the table");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (threads > 0) SetDefaultThreads(threads);
  auto model_or = models::LoadTextModel(model_path);
  if (!model_or.ok()) {
    std::fprintf(stderr, "error: %s\n", model_or.status().ToString().c_str());
    return 1;
  }
  const models::TextModel& m = **model_or;
  const models::TextConfig& c = m.config();
  const int64_t ctx = std::max<int64_t>({n_prompt, n_gen, 1});
  if (ctx > c.context_length || reps < 1) {
    std::fprintf(stderr, "error: -p/-n must fit the context length %lld and -r must be >= 1\n",
                 static_cast<long long>(c.context_length));
    return 2;
  }
  models::KvBuffer kv(c, (ctx + models::kKvBlockSize - 1) / models::kKvBlockSize);
  std::vector<int32_t> blocks(kv.num_blocks());
  std::iota(blocks.begin(), blocks.end(), 0);
  models::ForwardScratch scratch;
  std::vector<float> logits(c.vocab);
  std::vector<int32_t> prompt(n_prompt);
  for (int64_t i = 0; i < n_prompt; ++i) prompt[i] = static_cast<int32_t>((i * 37 + 11) % c.vocab);

  std::vector<double> pp_s, tg_s;
  for (int r = 0; r <= reps; ++r) {  // r == 0 warms up
    if (n_prompt > 0) {
      auto s = TimePrefill(m, kv, scratch, blocks, prompt, logits);
      if (!s.ok()) return std::fprintf(stderr, "error: %s\n", s.status().ToString().c_str()), 1;
      if (r > 0) pp_s.push_back(*s);
    }
    if (n_gen > 0) {
      auto s = TimeDecode(m, kv, scratch, blocks, r == 0 ? std::min<int64_t>(n_gen, 4) : n_gen,
                          logits);
      if (!s.ok()) return std::fprintf(stderr, "error: %s\n", s.status().ToString().c_str()), 1;
      if (r > 0) tg_s.push_back(*s);
    }
  }
  // FLOPs of a prefill: 2 per weight MAC per token, plus QK and PV over the causal triangle.
  const double attn_macs = 2.0 * c.num_layers * c.num_heads * c.head_dim *
                           (n_prompt * (n_prompt + 1) / 2.0);
  const double pp_flop = 2.0 * (static_cast<double>(m.matmul_macs_per_token()) * n_prompt +
                                attn_macs);
  const Result pp = n_prompt > 0 ? Summarize(pp_s, n_prompt) : Result{};
  const Result tg = n_gen > 0 ? Summarize(tg_s, n_gen) : Result{};
  const double pp_gflops = pp.mean_tok_s / n_prompt * pp_flop * 1e-9;
  const double tg_gbps = tg.mean_tok_s * m.weight_bytes() * 1e-9;  // weights streamed per token
  const int nthreads = DefaultThreadPool().num_threads();
  if (json) {
    std::printf("{\"model\": \"%s\", \"threads\": %d, \"isa\": \"%s\", "
                "\"pp\": {\"n_tokens\": %lld, \"tok_per_s\": %.3f, \"gflops\": %.3f}, "
                "\"tg\": {\"n_tokens\": %lld, \"tok_per_s\": %.3f, \"gbps\": %.3f}}\n",
                c.name.c_str(), nthreads, std::string(kernels::IsaName(kernels::ActiveIsa())).c_str(),
                static_cast<long long>(n_prompt), pp.mean_tok_s, pp_gflops,
                static_cast<long long>(n_gen), tg.mean_tok_s, tg_gbps);
    return 0;
  }
  const std::string name = c.name.empty() ? c.arch : c.name;
  const std::string size = fmt::format("{:.2f} MiB", m.weight_bytes() / 1048576.0);
  const std::string wtype(Info(m.file().FindTensor("blk.0.attn_q.weight")->type).name);
  std::printf("| %-26s | %10s | %5s | %7s | %6s | %18s | %12s |\n", "model", "size", "type",
              "threads", "test", "t/s", "rate");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(28, '-').c_str(),
              std::string(12, '-').c_str(), std::string(7, '-').c_str(),
              std::string(9, '-').c_str(), std::string(8, '-').c_str(),
              std::string(20, '-').c_str(), std::string(14, '-').c_str());
  auto row = [&](const char* kind, int64_t n, const Result& r, std::string rate) {
    std::printf("| %-26s | %10s | %5s | %7d | %6s | %18s | %12s |\n", name.c_str(),
                size.c_str(), wtype.c_str(), nthreads, fmt::format("{}{}", kind, n).c_str(),
                fmt::format("{:.2f} ± {:.2f}", r.mean_tok_s, r.stddev_tok_s).c_str(),
                rate.c_str());
  };
  if (n_prompt > 0) row("pp", n_prompt, pp, fmt::format("{:.1f} GFLOP/s", pp_gflops));
  if (n_gen > 0) row("tg", n_gen, tg, fmt::format("{:.2f} GB/s", tg_gbps));
  return 0;
}

}  // namespace

VLSERVE_COMMAND("bench", "model throughput: prompt processing and token generation", RunBench);

}  // namespace vlserve::app
