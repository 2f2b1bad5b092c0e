// AVX2 instantiation of the attention tile kernel (attention-inl.h).
#include "kernels/attention-inl.h"
#include "kernels/simd_avx2.h"

namespace vlserve::kernels::internal {

const AttentionKernel& AttentionKernelAvx2() {
  static constexpr AttentionKernel kKernel = attnimpl::MakeAttentionKernel<simd::Avx2, 8>();
  return kKernel;
}

}  // namespace vlserve::kernels::internal
