// ISA detection and selection (see dispatch.h).
#include "kernels/dispatch.h"

#include <cstdlib>
#include <string>

#include "base/check.h"
#include "base/log.h"

namespace vlserve::kernels {
namespace internal {

std::atomic<int> g_active_isa{-1};

namespace {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;
  bool avx512_bf16 = false;
};

// __builtin_cpu_supports checks both cpuid and the OS-enabled state (xgetbv) for the
// AVX and AVX-512 register files.
CpuFeatures Probe() {
  __builtin_cpu_init();
  CpuFeatures f;
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") &&
             __builtin_cpu_supports("avx512vbmi");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  return f;
}

const CpuFeatures& Features() {
  static const CpuFeatures features = Probe();
  return features;
}

Isa BestAvailable() {
  if (Features().avx512) return Isa::kAvx512;
  if (Features().avx2) return Isa::kAvx2;
  return Isa::kScalar;
}

}  // namespace

Isa BestAvailableIsa() { return BestAvailable(); }

Isa ResolveIsaSetting(const char* env) {
  if (env == nullptr || *env == '\0') return BestAvailable();
  const std::string want(env);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (want != IsaName(isa)) continue;
    if (IsaAvailable(isa)) return isa;
    LOG_WARN("VLSERVE_ISA={} is not supported by this CPU; using {}", want,
             IsaName(BestAvailable()));
    return BestAvailable();
  }
  LOG_WARN("VLSERVE_ISA={} is not one of scalar, avx2, avx512; using {}", want,
           IsaName(BestAvailable()));
  return BestAvailable();
}

bool HasAvx512Bf16() { return Features().avx512_bf16; }
bool HasAvx512Vnni() { return Features().avx512; }

}  // namespace internal

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

bool IsaAvailable(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return internal::Features().avx2;
    case Isa::kAvx512: return internal::Features().avx512;
  }
  return false;
}

Isa ActiveIsa() {
  int v = internal::g_active_isa.load(std::memory_order_acquire);
  if (v >= 0) return static_cast<Isa>(v);
  // Racing first calls compute the same answer; only one stores it.
  int resolved = static_cast<int>(internal::ResolveIsaSetting(std::getenv("VLSERVE_ISA")));
  int expected = -1;
  internal::g_active_isa.compare_exchange_strong(expected, resolved);
  return static_cast<Isa>(internal::g_active_isa.load(std::memory_order_acquire));
}

void ForceIsa(Isa isa) {
  CHECK(IsaAvailable(isa)) << "ForceIsa: " << IsaName(isa) << " is not available";
  internal::g_active_isa.store(static_cast<int>(isa), std::memory_order_release);
}

}  // namespace vlserve::kernels
