// Portable entry of the packed float GEMM (gemm_float.h): picks the ISA variant.
#include "kernels/gemm_float.h"

#include <cstdlib>

#include "base/check.h"
#include "kernels/dispatch.h"

namespace vlserve::kernels::internal {

int64_t GemmMinTokens(DType type) {
  static const int64_t env_value = [] {
    const char* env = std::getenv("VLSERVE_GEMM_MIN_TOKENS");
    return env != nullptr && *env != '\0' ? std::atoll(env) : int64_t{0};
  }();
  if (env_value > 0) return env_value;
  return type == DType::kBF16 && HasAvx512Bf16() ? kGemmMinTokensBf16 : kGemmMinTokens;
}

bool GemmSupports(DType type, Isa isa) {
  return isa == Isa::kAvx512 &&
         (type == DType::kF32 || type == DType::kF16 || type == DType::kBF16);
}

void GemmFloat(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool) {
  CHECK(GemmSupports(w.type, Isa::kAvx512)) << "GemmFloat: unsupported type";
  GemmFloatAvx512(w, x, n, y, pool);
}

}  // namespace vlserve::kernels::internal
