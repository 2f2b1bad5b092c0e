// AVX2 instantiation of the element-wise and row ops (templates in ops-inl.h).
#include "kernels/ops-inl.h"
#include "kernels/simd_avx2.h"

namespace vlserve::kernels::internal {

const RowOps& RowOpsAvx2() {
  static constexpr RowOps kOps = opsimpl::MakeRowOps<simd::Avx2>();
  return kOps;
}

}  // namespace vlserve::kernels::internal
