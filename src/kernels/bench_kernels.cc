// Benchmark behind `vlserve bench-kernels` (see docs/bench-kernels.md for the method).
#include "kernels/bench_kernels.h"

#include <algorithm>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "base/aligned.h"
#include "base/clock.h"
#include "base/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/ref/quant_ref.h"

namespace vlserve::kernels {
namespace internal {
uint64_t StreamReadAvx512(const uint8_t* p, int64_t bytes);
uint64_t StreamReadPrefetchAvx512(const uint8_t* p, int64_t bytes);
float FmaLoopAvx512(int64_t iters);
}  // namespace internal

namespace {

struct Limits {
  double read_gbs = 0, fma_gflops = 0, gemm_gflops = 0;
  int64_t gemm_size = 0;  // rows = cols = tokens of the peak GEMM
};
struct LimitOptions {
  int64_t stream_bytes;
  double seconds;
};

struct Shape {
  const char* model;
  int64_t rows, cols;
};

// 135M-class (576 wide, FFN 1536) and 1.7B-class (2048 wide, FFN 8192) projections.
constexpr Shape kShapes[] = {{"135M", 576, 576},   {"135M", 1536, 576}, {"135M", 576, 1536},
                             {"1.7B", 2048, 2048}, {"1.7B", 8192, 2048}, {"1.7B", 2048, 8192}};

struct Result {
  DType type;
  Shape shape;
  double matvec_gbs, matmul_gflops;
  bool prepacked = false;  // weights repacked once by PrepackWeights (what models use)
  double read_gbs = 0;     // the read limit sampled in turn with this row's matvec passes
  double call_read_gbs = 0;  // the same bytes read in pieces of one matrix (see PiecesGbs)
};

std::string TypeLabel(const Result& r) {
  return std::string(Info(r.type).name) + (r.prepacked ? "+p" : "");
}

// Best (shortest) time of fn over repetitions lasting at least `seconds` in total.
template <class Fn>
double BestSeconds(double seconds, int min_reps, Fn fn) {
  double best = 1e30, total = 0;
  for (int rep = 0; rep < min_reps || total < seconds; ++rep) {
    Stopwatch sw;
    fn();
    const double s = sw.ElapsedSeconds();
    best = std::min(best, s);
    total += s;
    if (rep > 1000) break;
  }
  return best;
}

volatile uint64_t g_sink;

uint64_t StreamReadPortable(const uint8_t* p, int64_t bytes) {
  uint64_t acc[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i + 32 <= bytes; i += 32) {
    for (int j = 0; j < 4; ++j) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * j, 8);
      acc[j] ^= v;
    }
  }
  return acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
}

// A buffer far larger than the caches, read by all threads: plain streaming loads, or
// loads with software prefetch (AVX-512 only; 8 interleaved streams per thread).
class StreamReader {
 public:
  // Huge pages, as the prepacked weights the matvec rows read have (base/aligned.h).
  StreamReader(int64_t bytes, ThreadPool& pool) : pool_(pool) {
    buf_.Resize(bytes, Pages::kHuge);
    pool.ParallelFor(bytes, 4096, [&](int64_t b, int64_t e) {
      std::memset(buf_.data() + b, 1, e - b);  // fault pages in on the threads that read
    });
  }
  int64_t bytes() const { return static_cast<int64_t>(buf_.size()); }
  // Seconds of one pass over the buffer.
  double Pass(bool prefetch) {
    const bool avx512 = internal::CurrentIsa() == Isa::kAvx512;
    Stopwatch sw;
    pool_.ParallelFor(bytes(), 4096, [&](int64_t b, int64_t e) {
      g_sink = !avx512   ? StreamReadPortable(buf_.data() + b, e - b)
               : prefetch ? internal::StreamReadPrefetchAvx512(buf_.data() + b, e - b)
                          : internal::StreamReadAvx512(buf_.data() + b, e - b);
    });
    return sw.ElapsedSeconds();
  }
  // The faster of one plain and one prefetched pass, in GB/s.
  double SampleGbs() {
    double s = Pass(false);
    if (internal::CurrentIsa() == Isa::kAvx512) s = std::min(s, Pass(true));
    return bytes() / s * 1e-9;
  }
  // One plain pass read the way a matvec reads its weights: in pieces of `piece` bytes
  // (one matrix), each split over the threads by its own fork/join. What a pure read
  // reaches at a matrix's size: each piece starts cold streams and ends in a join, which
  // a small matrix cannot amortize (a 576x576 Q4_0 matrix is 186 KB).
  double PiecesGbs(int64_t piece) {
    const bool avx512 = internal::CurrentIsa() == Isa::kAvx512;
    piece = std::clamp<int64_t>(piece, 1, bytes());
    Stopwatch sw;
    for (int64_t at = 0; at + piece <= bytes(); at += piece) {
      pool_.ParallelFor(piece, 4096, [&](int64_t b, int64_t e) {
        g_sink = avx512 ? internal::StreamReadAvx512(buf_.data() + at + b, e - b)
                        : StreamReadPortable(buf_.data() + at + b, e - b);
      });
    }
    return bytes() / piece * piece / sw.ElapsedSeconds() * 1e-9;
  }

 private:
  AlignedBuffer<uint8_t> buf_;
  ThreadPool& pool_;
};

Limits MeasureLimits(const LimitOptions& o, ThreadPool& pool) {
  Limits lim;
  const bool avx512 = internal::CurrentIsa() == Isa::kAvx512;
  {
    StreamReader reader(o.stream_bytes, pool);
    // Best of plain streaming loads and loads with software prefetch (AVX-512 only).
    double s = 1e30;
    for (bool prefetch : {false, true}) {
      if (prefetch && !avx512) break;
      s = std::min(s, BestSeconds(o.seconds, 8, [&] { reader.Pass(prefetch); }));
    }
    lim.read_gbs = o.stream_bytes / s * 1e-9;
  }
  if (avx512) {
    // ~0.1 s per run at the default --seconds; tiny when a test asks for 0.
    const int64_t iters = std::clamp<int64_t>(static_cast<int64_t>(o.seconds * 8e7), 10'000,
                                              20'000'000);
    const double s = BestSeconds(0, 5, [&] {
      pool.Run([&](int, int) { g_sink = static_cast<uint64_t>(internal::FmaLoopAvx512(iters)); });
    });
    lim.fma_gflops = 384.0 * iters * pool.num_threads() / s * 1e-9;
  }
  {
    // The packed F32 GEMM at a large square shape (weights 9 MiB, activations 9 MiB):
    // the best F32 matmul this machine does, the honest denominator for "of gemm".
    // (Tests ask for seconds = 0: a small shape keeps them quick on any ISA.)
    lim.gemm_size = o.seconds >= 0.05 ? 1536 : 192;
    const int64_t rows = lim.gemm_size, cols = lim.gemm_size, n = lim.gemm_size;
    std::vector<float> w(rows * cols), x(n * cols), y(n * rows);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    for (auto& v : w) v = uni(rng);
    for (auto& v : x) v = uni(rng);
    const WeightView view{DType::kF32, w.data(), rows, cols};
    MatMul(view, x.data(), n, y.data(), &pool);  // warm-up: page faults, packing buffers
    const double s = BestSeconds(o.seconds, 5, [&] { MatMul(view, x.data(), n, y.data(), &pool); });
    lim.gemm_gflops = 2.0 * rows * cols * n / s * 1e-9;
  }
  return lim;
}

// Fills `copies` matrices of one shape: 64 quantized rows replicated (speed does not
// depend on the values, and quantizing hundreds of MiB would dominate the run).
void FillWeights(DType type, int64_t cols, int64_t total_rows, uint8_t* dst) {
  const int64_t block_rows = std::min<int64_t>(64, total_rows);
  const int64_t row_bytes = RowBytes(type, cols);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> src(cols);
  for (int64_t r = 0; r < block_rows; ++r) {
    for (auto& v : src) v = normal(rng);
    Quantize(type, src.data(), dst + r * row_bytes, cols);
  }
  for (int64_t r = block_rows; r < total_rows; r += block_rows) {
    std::memcpy(dst + r * row_bytes, dst, std::min(block_rows, total_rows - r) * row_bytes);
  }
}

Result MeasureType(const BenchKernelsOptions& o, ThreadPool& pool, DType type, const Shape& sh,
                   AlignedBuffer<uint8_t>& buf, bool prepack, StreamReader& reader) {
  const int64_t mat_bytes = RowBytes(type, sh.cols) * sh.rows;
  const int64_t copies = std::max<int64_t>(1, (o.matvec_bytes + mat_bytes - 1) / mat_bytes);
  buf.Resize(copies * mat_bytes, Pages::kHuge);
  FillWeights(type, sh.cols, copies * sh.rows, buf.data());
  std::vector<float> x(o.matmul_tokens * sh.cols), y(o.matmul_tokens * sh.rows);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = normal(rng);
  // Prepacked: every copy gets its own packed buffer, so the packed bytes stream from
  // DRAM like the file's do.
  std::vector<AlignedBuffer<uint8_t>> packed;
  if (prepack) {
    for (int64_t c = 0; c < copies; ++c) {
      packed.push_back(PrepackWeights(WeightView{type, buf.data() + c * mat_bytes, sh.rows,
                                                 sh.cols}));
    }
  }
  auto view = [&](int64_t c) {
    WeightView w{type, buf.data() + c * mat_bytes, sh.rows, sh.cols};
    if (prepack) w.prepacked = packed[c].data();
    return w;
  };
  // Matvec passes alternate with samples of the read limit, and the row is compared with
  // the best sample of its own minutes: this host's memory bandwidth jumps between ~30
  // and ~55 GB/s from minute to minute, so a limit measured at another time than the
  // row (before or after the table) makes a ratio mostly a measure of the host's mood.
  double mv = 1e30, read_gbs = 0, call_read_gbs = 0, total = 0;
  for (int rep = 0; rep < 3 || total < o.seconds; ++rep) {
    read_gbs = std::max(read_gbs, reader.SampleGbs());
    call_read_gbs = std::max(call_read_gbs, reader.PiecesGbs(mat_bytes));
    Stopwatch sw;
    for (int64_t c = 0; c < copies; ++c) MatMul(view(c), x.data(), 1, y.data(), &pool);
    const double s = sw.ElapsedSeconds();
    mv = std::min(mv, s);
    total += s;
    if (rep > 1000) break;
  }
  // GEMM: cycle through copies as well so weights come from memory for the big shapes.
  const int64_t mm_copies = std::min<int64_t>(copies, 4);
  const double mm = BestSeconds(o.seconds, 2, [&] {
    for (int64_t c = 0; c < mm_copies; ++c) {
      MatMul(view(c), x.data(), o.matmul_tokens, y.data(), &pool);
    }
  });
  return Result{type,    sh, copies * mat_bytes / mv * 1e-9,
                2.0 * sh.rows * sh.cols * o.matmul_tokens * mm_copies / mm * 1e-9,
                prepack, read_gbs,   call_read_gbs};
}

std::string Report(const BenchKernelsOptions& o, const Limits& lim,
                   const std::vector<Result>& results) {
  const std::string isa(IsaName(internal::CurrentIsa()));
  std::string out;
  if (o.json) {
    out += fmt::format(
        "{{\"threads\": {}, \"isa\": \"{}\", \"matmul_tokens\": {}, \"memory_read_gbs\": {:.2f}, "
        "\"fma_peak_gflops\": {:.1f}, \"gemm_peak_gflops\": {:.1f}, \"results\": [",
        o.threads, isa, o.matmul_tokens, lim.read_gbs, lim.fma_gflops, lim.gemm_gflops);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      out += fmt::format(
          "{}{{\"type\": \"{}\", \"model\": \"{}\", \"rows\": {}, \"cols\": {}, "
          "\"matvec_gbs\": {:.2f}, \"matvec_read_gbs\": {:.2f}, \"matvec_frac_bw\": {:.3f}, "
          "\"matvec_by_matrix_read_gbs\": {:.2f}, \"matvec_frac_by_matrix_bw\": {:.3f}, "
          "\"matvec_frac_table_bw\": {:.3f}, \"matmul_gflops\": {:.1f}, "
          "\"matmul_frac_gemm\": {:.3f}}}",
          i ? ", " : "", TypeLabel(r), r.shape.model, r.shape.rows, r.shape.cols,
          r.matvec_gbs, r.read_gbs, r.matvec_gbs / r.read_gbs, r.call_read_gbs,
          r.matvec_gbs / r.call_read_gbs, r.matvec_gbs / lim.read_gbs, r.matmul_gflops,
          r.matmul_gflops / lim.gemm_gflops);
    }
    out += "]}\n";
    return out;
  }
  out += fmt::format("threads {}  isa {}  matmul n = {}\n", o.threads, isa, o.matmul_tokens);
  out += fmt::format(
      "memory read  {:8.1f} GB/s   ({} MiB buffer, AVX-512 loads, best of runs before and after "
      "the rows)\n",
      lim.read_gbs, o.stream_bytes >> 20);
  out += fmt::format("fma peak     {:8.1f} GFLOP/s (f32, 12 independent zmm FMA chains)\n",
                     lim.fma_gflops);
  out += fmt::format(
      "gemm peak    {:8.1f} GFLOP/s (f32 packed GEMM {}x{}, n={}, best of runs; {:.0f}% of fma "
      "peak)\n",
      lim.gemm_gflops, lim.gemm_size, lim.gemm_size, lim.gemm_size,
      lim.fma_gflops > 0 ? 100 * lim.gemm_gflops / lim.fma_gflops : 0.0);
  out += "matvec: \"read\" is the limit sampled in turn with the row's own passes and \"of "
         "read\" the row against it; \"by-mat\" is a plain read of the same buffer in pieces "
         "of one matrix, one fork/join each, as the matvec reads (what a pure read reaches at "
         "this matrix size); \"of table\" is against the memory read above\n\n";
  out += fmt::format("{:<6} {:<5} {:>11}  {:>11} {:>9} {:>7} {:>11} {:>9} {:>8}  {:>14} {:>7}\n",
                     "type", "model", "rows x cols", "matvec GB/s", "read GB/s", "of read",
                     "by-mat GB/s", "of by-mat", "of table", "matmul GFLOP/s", "of gemm");
  for (const Result& r : results) {
    out += fmt::format(
        "{:<6} {:<5} {:>5}x{:<5}  {:>11.1f} {:>9.1f} {:>6.0f}% {:>11.1f} {:>8.0f}% {:>7.0f}%  "
        "{:>14.1f} {:>6.0f}%\n",
        TypeLabel(r), r.shape.model, r.shape.rows, r.shape.cols, r.matvec_gbs, r.read_gbs,
        100 * r.matvec_gbs / r.read_gbs, r.call_read_gbs, 100 * r.matvec_gbs / r.call_read_gbs,
        100 * r.matvec_gbs / lim.read_gbs, r.matmul_gflops,
        100 * r.matmul_gflops / lim.gemm_gflops);
  }
  return out;
}

}  // namespace

MachineLimits MeasureMachineLimits(int threads, double seconds, int64_t stream_bytes) {
  ThreadPool pool(threads);
  const Limits lim = MeasureLimits({stream_bytes, seconds}, pool);
  return MachineLimits{lim.read_gbs, lim.fma_gflops, lim.gemm_gflops};
}

StatusOr<std::string> BenchKernels(const BenchKernelsOptions& options) {
  if (options.threads < 1 || options.threads > 1024) {
    return InvalidArgumentError(fmt::format(
        "bench-kernels: thread count {} is out of range; pass -t between 1 and 1024",
        options.threads));
  }
  std::vector<DType> types = options.types;
  if (types.empty()) {
    types = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1,
             DType::kQ5_0, DType::kQ5_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  }
  for (DType t : types) {
    if (!ref::IsSupportedWeightType(t)) {
      return InvalidArgumentError(fmt::format(
          "bench-kernels: type {} has no kernels; use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, "
          "q5_1, q4_k, q5_k or q6_k", Info(t).name));
    }
  }
  ThreadPool pool(options.threads);
  Limits lim = MeasureLimits({options.stream_bytes, options.seconds}, pool);
  std::vector<Result> results;
  AlignedBuffer<uint8_t> buf;
  // Read-limit samples between a row's matvec passes: a buffer as large as the weights
  // the row cycles through (both far beyond the caches).
  StreamReader reader(options.matvec_bytes, pool);
  for (DType t : types) {
    for (const Shape& sh : kShapes) {
      // 576 is not a multiple of 256: K-quant files store such matrices in another type.
      if (sh.cols % Info(t).block_size != 0) continue;
      results.push_back(MeasureType(options, pool, t, sh, buf, false, reader));
      // Types the models prepack at load get a second row measured that way (GB/s still
      // counts the file's bytes, so the rows compare directly).
      if (HasPrepackedLayout(t) && internal::CurrentIsa() == Isa::kAvx512) {
        results.push_back(MeasureType(options, pool, t, sh, buf, true, reader));
      }
    }
  }
  // The limits again after the rows, keeping the higher of each: on a shared machine a
  // busy moment during the first measurement would otherwise flatter every ratio.
  const Limits after = MeasureLimits({options.stream_bytes, options.seconds}, pool);
  lim.read_gbs = std::max(lim.read_gbs, after.read_gbs);
  lim.fma_gflops = std::max(lim.fma_gflops, after.fma_gflops);
  lim.gemm_gflops = std::max(lim.gemm_gflops, after.gemm_gflops);
  return Report(options, lim, results);
}

}  // namespace vlserve::kernels
