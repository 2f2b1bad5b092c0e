// Architecture `qwen2vl`: the Qwen2-VL / Qwen2.5-VL language model — qwen2 (neox RoPE,
// Q/K/V biases) with multi-axis RoPE: `qwen2vl.rope.dimension_sections` (e.g. [16, 24,
// 24, 0] for head_dim 128) gives the t/h/w axes their contiguous rotation pairs, as
// Hugging Face's apply_multimodal_rotary_pos_emb does with mrope_section.
#include "models/registry.h"

namespace vlserve::models {

const ArchTraits& Qwen2VlArch() {
  static const ArchTraits traits{
      .name = "qwen2vl",
      .rope_style = kernels::RopeStyle::kNeox,
      .qkv_bias = true,
      .default_rope_base = 1000000.0,
      .mrope = true,
  };
  return traits;
}

}  // namespace vlserve::models
