// MatMul / Dequantize / Quantize entry points: pick the kernel for the active ISA,
// prepare the activations once per call, and split output rows over the thread pool.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "base/aligned.h"
#include "base/check.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_float.h"
#include "kernels/kernels.h"
#include "kernels/matmul_fused.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_blocks.h"
#include "kernels/ref/matmul_ref.h"
#include "kernels/ref/quant_ref.h"

namespace vlserve::kernels {
namespace internal {

void QuantizeActRowQ8Avx512(const float* x, int64_t cols, int64_t ld, uint8_t* dst);
void QuantizeActRowQ8KAvx512(const float* x, int64_t cols, ActQ8K* dst);  // matmul_k_avx512

namespace {

KernelChoice ChooseKernel(DType type, Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return Avx512Kernel(type);
    case Isa::kAvx2: return Avx2Kernel(type);
    default: return {ActKind::kF32, nullptr};
  }
}

// Scalar kQ8 row: same layout as QuantizeActRowQ8Avx512.
void QuantizeActRowQ8Scalar(const float* x, int64_t cols, int64_t ld, uint8_t* dst) {
  std::vector<ActQ8> blocks(cols / kQK);
  ref::QuantizeActQ8(x, blocks.data(), cols);
  auto* qs = reinterpret_cast<int8_t*>(dst);
  auto* d = reinterpret_cast<float*>(dst + ld);
  auto* sums = reinterpret_cast<int32_t*>(dst + ld + ld / kQK * 4);
  for (int64_t b = 0; b < ld / kQK; ++b) {
    const bool real = b < cols / kQK;
    sums[b] = 0;
    for (int j = 0; j < kQK; ++j) {
      qs[b * kQK + j] = real ? blocks[b].qs[j] : 0;
      sums[b] += qs[b * kQK + j];
    }
    d[b] = real ? blocks[b].d : 0.0f;
  }
}

// Whether preparing n tokens' activations is too little work to pay for waking the pool.
bool PrepareInline(int64_t n, int64_t cols) { return n * cols < (int64_t{1} << 16); }

// Runs fn(t0, t1) over tokens [0, n): on the pool when there is enough work to pay for
// waking it, else (or without a pool) inline; decode steps would otherwise pay two
// fork/joins per MatMul.
void ForTokens(ThreadPool* pool, int64_t n, int64_t cols,
               const std::function<void(int64_t, int64_t)>& fn) {
  if (pool == nullptr || PrepareInline(n, cols)) {
    fn(0, n);
  } else {
    pool->ParallelFor(n, 1, fn);
  }
}

// Converts x [n][cols] into the layout `kind` wants; buffer owned by the caller. A null
// pool prepares on the calling thread.
PreparedAct PrepareActivations(ActKind kind, Isa isa, const float* x, int64_t n, int64_t cols,
                               AlignedBuffer<uint8_t>* buf, ThreadPool* pool) {
  PreparedAct act{kind, x, cols * 4, cols};
  switch (kind) {
    case ActKind::kF32: return act;
    case ActKind::kBf16: {
      act.ld = (cols + 31) / 32 * 32;
      act.stride = act.ld * 2;
      buf->Resize(n * act.stride);
      auto* out = reinterpret_cast<uint16_t*>(buf->data());
      ForTokens(pool, n, cols, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          for (int64_t k = 0; k < act.ld; ++k) {
            out[t * act.ld + k] = k < cols ? F32ToBf16(x[t * cols + k]) : 0;
          }
        }
      });
      break;
    }
    case ActKind::kQ8:
    case ActKind::kQ8G: {
      act.ld = (cols + 63) / 64 * 64;
      act.stride = (act.ld + act.ld / kQK * 8 + 63) / 64 * 64;
      buf->Resize(n * act.stride);
      uint8_t* out = buf->data();
      ForTokens(pool, n, cols, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          if (kind == ActKind::kQ8G) {  // only chosen on AVX-512
            QuantizeActRowQ8GAvx512(x + t * cols, cols, act.ld, out + t * act.stride);
          } else if (isa == Isa::kAvx512) {
            QuantizeActRowQ8Avx512(x + t * cols, cols, act.ld, out + t * act.stride);
          } else {
            QuantizeActRowQ8Scalar(x + t * cols, cols, act.ld, out + t * act.stride);
          }
        }
      });
      break;
    }
    case ActKind::kQ8K:
    case ActKind::kQ8KG: {
      act.ld = cols;
      act.stride = cols / kQKK * static_cast<int64_t>(sizeof(ActQ8K));
      buf->Resize(n * act.stride);
      uint8_t* out = buf->data();
      ForTokens(pool, n, cols, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          auto* row = reinterpret_cast<ActQ8K*>(out + t * act.stride);
          if (kind == ActKind::kQ8KG) {  // only chosen on AVX-512
            QuantizeActRowQ8KGAvx512(x + t * cols, cols, row);
          } else if (isa == Isa::kAvx512) {
            QuantizeActRowQ8KAvx512(x + t * cols, cols, row);
          } else {
            ref::QuantizeActQ8K(x + t * cols, row, cols);
          }
        }
      });
      break;
    }
  }
  act.data = buf->data();
  return act;
}

}  // namespace
}  // namespace internal

namespace internal {
namespace {

// Rows per work unit: about 8 units per thread so that a late or descheduled thread
// leaves little work behind, but at least `grain` rows (and a multiple of it).
int64_t UnitRows(int64_t total_rows, int threads, int64_t grain) {
  const int64_t per = total_rows / (8 * std::max(threads, 1));
  return std::max<int64_t>(grain, per / grain * grain);
}

// One thread's share of the units, claimed from the front; on its own cache line so
// that claiming costs no cross-core traffic while the owner works through it.
struct alignas(64) UnitRange {
  std::atomic<int64_t> next;
  int64_t end;
};

// Runs kernel `fn` over all rows of `count` matrices sharing the prepared activations.
// Each thread first works through its own contiguous share of the units (the same rows
// on every call, so a matrix that fits in cache stays in that core's cache, and no
// claim touches a shared counter), then takes what is left of the others' shares (a
// late or descheduled thread). Measured (bench-kernels, 576×576 Q4_0 matvec, 2 threads):
// one shared counter for all units 41–56% of the memory bandwidth, static shares 89%.
// Which thread computes a row never changes its arithmetic, so results stay independent
// of thread count and timing.
//
// get_act() returns the activations the kernels read. It is called once per thread, on
// that thread, before its first unit: it either hands out one copy the caller prepared,
// or prepares a copy for the calling thread (see MatMulFused).
template <class GetAct>
void RunRows(const WeightView* ws, float* const* ys, int count, const GetAct& get_act,
             int64_t n, RowsKernel fn, int64_t grain, ThreadPool* pool) {
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += ws[i].rows;
  const int threads = pool->num_threads();
  const int64_t unit = UnitRows(total, threads, grain);
  // Unit u covers rows [u*unit, (u+1)*unit) of the matrix it starts in (clipped there).
  int64_t starts[8];
  int64_t num_units = 0;
  CHECK_LE(count, 8);
  for (int i = 0; i < count; ++i) {
    starts[i] = num_units;
    num_units += (ws[i].rows + unit - 1) / unit;
  }
  auto run_unit = [&](const PreparedAct& act, int64_t u) {
    int m = count - 1;
    while (starts[m] > u) --m;
    const MatMulArgs args{&ws[m], act, n, ys[m]};
    const int64_t r0 = (u - starts[m]) * unit;
    fn(args, r0, std::min(ws[m].rows, r0 + unit));
  };
  if (num_units == 1 || threads == 1) {
    const PreparedAct act = get_act();
    for (int64_t u = 0; u < num_units; ++u) run_unit(act, u);
    return;
  }
  // On the stack for the usual pool sizes: this runs for every decode matmul.
  UnitRange local[8];
  std::unique_ptr<UnitRange[]> heap(threads > 8 ? new UnitRange[threads] : nullptr);
  UnitRange* const ranges = threads > 8 ? heap.get() : local;
  for (int t = 0; t < threads; ++t) {
    int64_t begin, end;
    ChunkRange(num_units, 1, t, threads, &begin, &end);
    ranges[t].next.store(begin, std::memory_order_relaxed);
    ranges[t].end = end;
  }
  pool->Run([&](int thread, int) {
    std::optional<PreparedAct> act;  // prepared on this thread's first unit
    for (int i = 0; i < threads; ++i) {
      UnitRange& r = ranges[(thread + i) % threads];
      for (int64_t u = r.next.fetch_add(1, std::memory_order_relaxed); u < r.end;
           u = r.next.fetch_add(1, std::memory_order_relaxed)) {
        if (!act) act = get_act();
        run_unit(*act, u);
      }
    }
  });
}

}  // namespace
}  // namespace internal

namespace {

// The calling thread's activation scratch. A function, not a thread_local inside
// MatMulFused: a worker running MatMulFused's lambda never passes through that
// function's declarations, so a block-scope thread_local there would be used on the
// worker without ever being constructed or destroyed (LeakSanitizer caught the leak).
// MatMul is not reentrant on one pool, so one buffer per thread is enough.
AlignedBuffer<uint8_t>& ActScratch() {
  thread_local AlignedBuffer<uint8_t> scratch;
  return scratch;
}

}  // namespace

void MatMulFused(const WeightView* ws, float* const* ys, int count, const float* x, int64_t n,
                 ThreadPool* pool) {
  if (n <= 0 || count <= 0) return;
  if (pool == nullptr) pool = &DefaultThreadPool();
  const Isa isa = internal::CurrentIsa();
  // Float weights at prefill / encoder sizes: the packed GEMM (gemm_float.h), per matrix.
  {
    bool gemm = true;
    for (int i = 0; i < count; ++i) {
      gemm = gemm && internal::GemmSupports(ws[i].type, isa) &&
             n >= internal::GemmMinTokens(ws[i].type);
    }
    if (gemm) {
      for (int i = 0; i < count; ++i) internal::GemmFloat(ws[i], x, n, ys[i], pool);
      return;
    }
  }
  const internal::KernelChoice kc = internal::ChooseKernel(ws[0].type, isa);
  bool same = kc.fn != nullptr && count <= 8;
  for (int i = 0; i < count; ++i) {
    CHECK(ref::IsSupportedWeightType(ws[i].type))
        << "MatMul: unsupported type " << Info(ws[i].type).name;
    CHECK_EQ(ws[i].cols % Info(ws[i].type).block_size, 0);
    CHECK_EQ(ws[i].cols, ws[0].cols);
    same = same && internal::ChooseKernel(ws[i].type, isa).fn == kc.fn;
  }
  if (!same) {  // mixed types (or no SIMD kernel): one call per matrix
    for (int i = 0; i < count; ++i) MatMul(ws[i], x, n, ys[i], pool);
    return;
  }
  internal::RowsKernel fn = kc.fn;
  internal::ActKind act_kind = kc.act;
  int64_t grain = internal::kRowGrain;
  bool all_prepacked = isa == Isa::kAvx512;
  for (int i = 0; i < count; ++i) all_prepacked = all_prepacked && ws[i].prepacked != nullptr;
  // Q4_0 / Q5_0 in the 4-row group layout (matmul_q4pack_avx512.cc).
  const bool grouped =
      all_prepacked && (ws[0].type == DType::kQ4_0 || ws[0].type == DType::kQ5_0);
  if (all_prepacked && ws[0].type == DType::kQ4_K) {
    // Q4_K prepacked at load: one kernel for every n (4-row groups, as for Q4_0).
    fn = internal::Avx512Q4KPackedKernel();
    act_kind = internal::ActKind::kQ8KG;
  } else if (grouped && n < internal::Q4PanelMinTokens(ws[0].cols)) {
    // kRowGrain is a multiple of the 4-row groups, and prepacked matrices have rows % 4 == 0.
    fn = internal::Avx512Q4PackedKernel(ws[0].type);
    act_kind = internal::ActKind::kQ8G;
  } else if (grouped) {
    // The int8 panel kernel with its panels unpacked from the prepacked copy, so the
    // file's layout is never read (matmul_q4pack_avx512.cc, PackGroupedRows4).
    fn = internal::Avx512PackedFromPrepackedKernel(ws[0].type);
    grain = 2 * internal::kRowGrain;
  } else if (isa == Isa::kAvx512 && n >= internal::PackedMinTokens()) {
    // Prefill / batched decode: the int8 panel kernel, on the weights prepacked at load
    // when every matrix has them (no per-call repack), else repacking them per call.
    // A matrix-vector product stays on the dot-product kernel: on the prepacked panels it
    // measured no faster (bench-kernels q8_0 vs q8_0+p at n = 1), the repack saving is
    // what pays (bench-kernels n = 64: +18-66%; pp16 910 -> 1281 tok/s).
    bool prepacked = internal::Avx512PrepackedKernel(ws[0].type) != nullptr;
    for (int i = 0; i < count; ++i) prepacked = prepacked && ws[i].prepacked != nullptr;
    // The panel kernels run two 16-row panels per register tile; a unit of an odd number
    // of panels leaves one on the single-panel tile, which does ~2.8x fewer products per
    // cycle (it broadcasts each activation word for half as many rows). Measured at the
    // smolvlm-256m tower, where 768-row matrices were split into units of 3 panels: the
    // single-panel tile took 36% of the int8 GEMM time for 17% of the products.
    if (prepacked) {
      fn = internal::Avx512PrepackedKernel(ws[0].type);
      grain = 2 * internal::kRowGrain;
    } else if (internal::RowsKernel packed = internal::Avx512PackedQuantKernel(ws[0].type)) {
      fn = packed;
      grain = 2 * internal::kRowGrain;
    }
  }
  const int64_t cols = ws[0].cols;
  if (act_kind != internal::ActKind::kF32 && pool->num_threads() > 1 &&
      internal::PrepareInline(n, cols)) {
    // Decode-sized calls: every thread quantizes x for itself, in parallel, instead of
    // the caller alone while the others wait and then read its copy from another core.
    // The copies are identical, so results do not change. Measured with 2 threads,
    // alternating in one process: 2048×2048 matvec from DRAM in the host's fast-memory
    // minutes (mean of ~100 samples, against a plain read taken beside each) Q4_0 84% ->
    // 91%, Q4_K 89% -> 93%, Q8_0 89% -> 96%; weights in cache, Q4_0 576×576 at n = 8
    // 1.26x, 2048×2048 at n = 4 1.07x.
    internal::RunRows(
        ws, ys, count,
        [&] {
          return internal::PrepareActivations(act_kind, isa, x, n, cols, &ActScratch(), nullptr);
        },
        n, fn, grain, pool);
    return;
  }
  const internal::PreparedAct act =
      internal::PrepareActivations(act_kind, isa, x, n, cols, &ActScratch(), pool);
  internal::RunRows(ws, ys, count, [&] { return act; }, n, fn, grain, pool);
}

namespace internal {
int64_t PackedMinTokens() {
  static const int64_t value = [] {
    const char* env = std::getenv("VLSERVE_QPACK_MIN_TOKENS");
    return env != nullptr && std::atoll(env) > 0 ? std::atoll(env) : kPackedMinTokens;
  }();
  return value;
}
}  // namespace internal

void MatMul(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool) {
  CHECK(ref::IsSupportedWeightType(w.type)) << "MatMul: unsupported type " << Info(w.type).name;
  CHECK_EQ(w.cols % Info(w.type).block_size, 0);
  if (n <= 0 || w.rows <= 0) return;
  if (pool == nullptr) pool = &DefaultThreadPool();
  const Isa isa = internal::CurrentIsa();
  const internal::KernelChoice kc = internal::ChooseKernel(w.type, isa);
  if (kc.fn == nullptr) {
    pool->ParallelFor(w.rows, internal::kRowGrain, [&](int64_t r0, int64_t r1) {
      ref::MatMulRows(w, x, n, y, r0, r1);
    });
    return;
  }
  MatMulFused(&w, &y, 1, x, n, pool);
}

namespace {

// Bytes of a prepacked copy that reorders the file's bytes without adding any.
int64_t SameBytes(const WeightView& w) { return w.rows * RowBytes(w.type, w.cols); }
int64_t Q8PanelBytes(const WeightView& w) {
  return (w.rows + 15) / 16 * internal::PrepackedPanelBytes(w.cols / kQK);
}

// The types PrepackWeights makes an AVX-512 copy of, and what the copy replaces. The
// kernels that read each copy are chosen in MatMulFused.
struct PrepackedLayout {
  DType type;
  int64_t rows_multiple;  // the layout's row groups
  int64_t (*bytes)(const WeightView&);
  void (*pack)(const WeightView&, uint8_t*);
  // No MatMul reads the file's layout once the copy exists, so its pages may go.
  bool replaces_file;
};
constexpr PrepackedLayout kPrepackedLayouts[] = {
    // 16-row int8 panels for prefill; decode reads the file's layout.
    {DType::kQ8_0, 1, Q8PanelBytes, internal::PrepackQ8_0Avx512, false},
    // 4-row groups in vpdpbusd lane order (matmul_q4pack_avx512.cc); the panel kernel
    // unpacks from the copy.
    {DType::kQ4_0, 4, SameBytes, internal::PrepackQ4_0Avx512, true},
    // The same plus fifth-bit masks.
    {DType::kQ5_0, 4, SameBytes, internal::PrepackQ5_0Avx512, true},
    // 4-row groups interleaved by sub-block (matmul_k4pack_avx512.cc), for every n.
    {DType::kQ4_K, 4, SameBytes, internal::PrepackQ4_KAvx512, true},
};

const PrepackedLayout* FindPrepackedLayout(DType type) {
  for (const PrepackedLayout& l : kPrepackedLayouts) {
    if (l.type == type) return &l;
  }
  return nullptr;
}

}  // namespace

AlignedBuffer<uint8_t> PrepackWeights(const WeightView& w) {
  AlignedBuffer<uint8_t> buf;
  // VLSERVE_PREPACK=0: no packed copies (decode keeps reading the file's layout, so a
  // prepacked model holds both: ~2x the Q8_0 bytes resident).
  static const bool disabled = [] {
    const char* env = std::getenv("VLSERVE_PREPACK");
    return env != nullptr && std::string_view(env) == "0";
  }();
  const PrepackedLayout* layout = FindPrepackedLayout(w.type);
  if (disabled || layout == nullptr || internal::CurrentIsa() != Isa::kAvx512 || w.rows <= 0 ||
      w.rows % layout->rows_multiple != 0 || w.cols % Info(w.type).block_size != 0) {
    return buf;
  }
  buf.Resize(layout->bytes(w), Pages::kHuge);
  layout->pack(w, buf.data());
  return buf;
}

bool HasPrepackedLayout(DType type) { return FindPrepackedLayout(type) != nullptr; }

bool ReadsOnlyPrepacked(const WeightView& w) {
  const PrepackedLayout* layout = FindPrepackedLayout(w.type);
  return w.prepacked != nullptr && layout != nullptr && layout->replaces_file &&
         internal::CurrentIsa() == Isa::kAvx512;
}

void Dequantize(DType type, const void* src, float* dst, int64_t n) {
  ref::Dequantize(type, src, dst, n);
}

void Quantize(DType type, const float* src, void* dst, int64_t n) {
  ref::Quantize(type, src, dst, n);
}

}  // namespace vlserve::kernels
