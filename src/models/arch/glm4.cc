// Architecture `glm4`: the GLM-4 language models — GLM-4-9B-0414 (Glm4ForCausalLM) and the
// text tower of GLM-4.1V-9B (Glm4vForConditionalGeneration; Glyph is a GLM-4.1V fine-tune).
// Written from Hugging Face transformers' modeling_glm4v.py (Glm4vTextDecoderLayer,
// Glm4vTextAttention, Glm4vTextMLP, apply_multimodal_rotary_pos_emb) and the files
// llama.cpp's converter writes (conversion/glm.py Glm4Model; src/models/glm4.cpp).
//
// GGUF layout (ne0 first, as llama.cpp stores it; H = hidden, F = feed_forward_length,
// D = head_dim = H / head_count, R = rope.dimension_count):
//   token_embd.weight                 [H, vocab]
//   blk.N.attn_norm.weight            [H]          HF input_layernorm
//   blk.N.attn_q.weight / .bias       [H, heads*D] / [heads*D]     biases optional
//   blk.N.attn_k.weight / .bias       [H, kv*D]    / [kv*D]        (GLM-4.1V has them)
//   blk.N.attn_v.weight / .bias       [H, kv*D]    / [kv*D]
//   blk.N.attn_output.weight          [heads*D, H]  no bias
//   blk.N.post_attention_norm.weight  [H]          HF post_self_attn_layernorm
//   blk.N.ffn_norm.weight             [H]          HF post_attention_layernorm (pre-MLP)
//   blk.N.ffn_up.weight               [H, 2F]      HF gate_up_proj: rows [0, F) gate,
//                                                  [F, 2F) up
//   blk.N.ffn_down.weight             [F, H]
//   blk.N.post_ffw_norm.weight        [H]          HF post_mlp_layernorm
//   output_norm.weight                [H]
//   output.weight                     [H, vocab]   absent = tied to token_embd
//
// Per layer (every norm an RMSNorm with glm4.attention.layer_norm_rms_epsilon):
//   x += post_attention_norm(attn(attn_norm(x)))
//   x += post_ffw_norm(ffn_down(silu(gate) * up)),  [gate; up] = ffn_up(ffn_norm(x))
//
// RoPE is partial: the first R = D / 2 dims of each head rotate (partial_rotary_factor
// 0.5), the rest pass through; theta_i = pos * base^(-2i / R). Hugging Face rotates the
// interleaved pairs (d[2i], d[2i+1]) (rotate_half_llm). Files differ by converter:
// - with glm4.rope.dimension_sections (GLM-4.1V; [8, 12, 12, 0] = HF's mrope_section):
//   the converter reorders the first R rows of every Q/K head (weights and biases) to
//   (even dims, odd dims), so neox pairs (i, i + R/2) are HF's pairs, and pair i takes
//   its angle from axis t, h or w by the contiguous sections (HF: cos/sin of frequency i
//   come from section chunk i of mrope_section) — kNeox + RopeMulti;
// - without them (GLM-4-0414, or a GLM-4.1V converted before M-RoPE support): the rows
//   keep HF's order and llama.cpp rotates adjacent pairs (LLAMA_ROPE_TYPE_NORM) — kNormal.
//   Such a file serves text; image grids are refused with advice to reconvert.
// Both are exactly Hugging Face's math; llama.cpp and Hugging Face agree here.
#include "models/registry.h"

namespace vlserve::models {

const ArchTraits& Glm4Arch() {
  static const ArchTraits traits{
      .name = "glm4",
      .rope_style = kernels::RopeStyle::kNormal,
      .qkv_bias = false,
      .default_rope_base = 10000.0,
      .mrope = true,
      .neox_with_sections = true,
      .optional_qkv_bias = true,
      .post_norms = true,
      .fused_gate_up = true,
  };
  return traits;
}

}  // namespace vlserve::models
