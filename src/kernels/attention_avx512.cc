// AVX-512 instantiation of the attention tile kernel (attention-inl.h).
#include "kernels/attention-inl.h"
#include "kernels/simd_avx512.h"

namespace vlserve::kernels::internal {

const AttentionKernel& AttentionKernelAvx512() {
  static constexpr AttentionKernel kKernel = attnimpl::MakeAttentionKernel<simd::Avx512, 16>();
  return kKernel;
}

}  // namespace vlserve::kernels::internal
