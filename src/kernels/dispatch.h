// Run-time ISA selection shared by every kernel file (internal to src/kernels).
//
// The CPU is probed once (cpuid + xgetbv via __builtin_cpu_supports); VLSERVE_ISA=
// scalar|avx2|avx512 forces a choice (an unknown or unsupported value logs a warning and
// falls back to the best available). Kernels pick their variant per call with
//
//   switch (internal::CurrentIsa()) {
//     case Isa::kAvx512: return FooAvx512(...);   // defined in foo_avx512.cc
//     case Isa::kAvx2:   return FooAvx2(...);     // defined in foo_avx2.cc
//     default:           return ref::Foo(...);    // ref/foo_ref.cc
//   }
//
// CurrentIsa() is one relaxed atomic load, cheap enough for the hottest call sites.
// "avx512" here means the Zen 4 / Ice Lake set: F, BW, VL, DQ, VNNI, VBMI (+BF16 where
// present; see HasAvx512Bf16()). A CPU with only AVX-512F counts as AVX2.
#pragma once

#include <atomic>

#include "kernels/kernels.h"

namespace vlserve::kernels::internal {

// Set once (lazily) by ActiveIsa(); ForceIsa() overwrites it.
extern std::atomic<int> g_active_isa;

// The ISA kernels should use now. Resolves the default on first use.
inline Isa CurrentIsa() {
  int v = g_active_isa.load(std::memory_order_relaxed);
  if (v < 0) return kernels::ActiveIsa();
  return static_cast<Isa>(v);
}

// The ISA a VLSERVE_ISA value selects: null/empty -> best available; a known name the
// CPU supports -> that ISA; anything else -> a warning and the best available.
Isa ResolveIsaSetting(const char* value);
Isa BestAvailableIsa();

// Finer-grained feature bits for kernels that need more than the base level.
bool HasAvx512Bf16();  // vdpbf16ps
bool HasAvx512Vnni();  // vpdpbusd (always true when IsaAvailable(kAvx512))

}  // namespace vlserve::kernels::internal
