// Architecture `qwen3vl`: the Qwen3-VL language models (Qwen3VLForConditionalGeneration's
// Qwen3VLTextModel; Qwen3-VL-2B/4B/8B/32B). Written from Hugging Face transformers'
// modeling_qwen3_vl.py (Qwen3VLTextDecoderLayer, Qwen3VLTextAttention,
// Qwen3VLTextRotaryEmbedding.apply_interleaved_mrope, Qwen3VLTextModel._deepstack_process)
// and the files llama.cpp's converter writes (conversion/qwen3vl.py Qwen3VLTextModel;
// src/models/qwen3vl.cpp).
//
// GGUF layout (ne0 first, as llama.cpp stores it; H = hidden, F = feed_forward_length,
// D = attention.key_length = HF head_dim, which need not be H / head_count):
//   token_embd.weight                 [H, vocab]
//   blk.N.attn_norm.weight            [H]          HF input_layernorm
//   blk.N.attn_q.weight               [H, heads*D] no biases (attention_bias false)
//   blk.N.attn_k.weight / attn_v      [H, kv*D]
//   blk.N.attn_q_norm.weight          [D]          HF q_norm: RMSNorm of every Q head
//   blk.N.attn_k_norm.weight          [D]          HF k_norm: RMSNorm of every K head
//   blk.N.attn_output.weight          [heads*D, H]
//   blk.N.ffn_norm.weight             [H]          HF post_attention_layernorm
//   blk.N.ffn_gate / ffn_up.weight    [H, F]
//   blk.N.ffn_down.weight             [F, H]
//   output_norm.weight                [H]
//   output.weight                     [H, vocab]   absent = tied (Qwen3-VL-2B/4B are tied)
// Metadata: qwen3vl.rope.dimension_sections = HF mrope_section padded to 4 ([24, 20, 20, 0]
// for D = 128), qwen3vl.n_deepstack_layers = len(vision deepstack_visual_indexes) (3),
// qwen3vl.rope.freq_base = rope_theta (5e6), attention.key_length / value_length = D.
//
// Per layer (RMSNorm everywhere, eps = attention.layer_norm_rms_epsilon):
//   q = q_norm(Wq·n(x)) per head, k = k_norm(Wk·n(x)) per head, then RoPE (neox pairs
//   (i, i + D/2), HF rotate_half), theta_i = pos[axis(i)] * base^(-2i / D) where axis(i)
//   interleaves (HF apply_interleaved_mrope): h when i % 3 == 1 and i < 3 * sections[1],
//   w when i % 3 == 2 and i < 3 * sections[2], else t;
//   x += Wo·Attn(q, k, v);  x += Wdown·(silu(Wgate·n(x)) * Wup·n(x));
//   deepstack: after layer k < n_deepstack, image tokens add slice k + 1 of their embedding
//   row (HF: hidden_states[visual_pos_masks] += deepstack_visual_embeds[k]).
// Image embedding rows are (1 + n_deepstack) * H wide, the main embedding first (what the
// qwen3vl_merger mmproj outputs; llama.cpp's n_embd_inp); text tokens' deepstack slices
// are zero. llama.cpp and Hugging Face agree on all of this.
#include "models/registry.h"

namespace vlserve::models {

const ArchTraits& Qwen3VlArch() {
  static const ArchTraits traits{
      .name = "qwen3vl",
      .rope_style = kernels::RopeStyle::kNeox,
      .qkv_bias = false,
      .default_rope_base = 5000000.0,
      .mrope = true,
      .qk_norm = true,
      .interleaved_mrope = true,
      .deepstack = true,
  };
  return traits;
}

}  // namespace vlserve::models
