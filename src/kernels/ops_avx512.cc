// AVX-512 instantiation of the element-wise and row ops (templates in ops-inl.h).
#include "kernels/ops-inl.h"
#include "kernels/simd_avx512.h"

namespace vlserve::kernels::internal {

const RowOps& RowOpsAvx512() {
  static constexpr RowOps kOps = opsimpl::MakeRowOps<simd::Avx512>();
  return kOps;
}

}  // namespace vlserve::kernels::internal
