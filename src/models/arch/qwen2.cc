// Architecture `qwen2`: Q/K are not permuted by the converter, so RoPE rotates
// (x[i], x[i + rope_dims/2]) ("neox" style); Q, K and V projections carry biases.
#include "models/registry.h"

namespace vlserve::models {

const ArchTraits& Qwen2Arch() {
  static const ArchTraits traits{
      .name = "qwen2",
      .rope_style = kernels::RopeStyle::kNeox,
      .qkv_bias = true,
      .default_rope_base = 10000.0,
  };
  return traits;
}

}  // namespace vlserve::models
