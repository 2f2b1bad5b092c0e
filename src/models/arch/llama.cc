// Architecture `llama`: SmolLM2 (the text tower of SmolVLM) and Vicuna (LLaVA-1.5).
// llama.cpp's converter permutes the Q and K rows of each head so that RoPE rotates
// adjacent pairs (x[2i], x[2i+1]); we therefore use the "normal" rope style on the
// weights as stored. No Q/K/V biases.
#include "models/registry.h"

namespace vlserve::models {

const ArchTraits& LlamaArch() {
  static const ArchTraits traits{
      .name = "llama",
      .rope_style = kernels::RopeStyle::kNormal,
      .qkv_bias = false,
      .default_rope_base = 10000.0,
  };
  return traits;
}

}  // namespace vlserve::models
