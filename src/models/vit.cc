// The ViT forward pass shared by SigLIP (SmolVLM) and CLIP (LLaVA) towers:
//   x = [CLS]? ++ Wpatch · im2col(tile) + bpatch, + pos_embd;  x = pre_ln(x)?
//   per layer:  x += Wo · Attn(Wq·ln1(x) + bq, Wk·ln1(x) + bk, Wv·ln1(x) + bv) + bo
//               x += Wdown · act(Wup·ln2(x) + bup) + bdown
//   features = post_ln(x)? without the CLS row
// Attention is bidirectional and per tile; every matmul runs over the rows of all tiles.
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/attention_bidir.h"
#include "kernels/matmul_fused.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

ThreadPool& Pool(ThreadPool* pool) { return pool != nullptr ? *pool : DefaultThreadPool(); }

// y[r] = LayerNorm(x[r]) for rows [0, n).
void LayerNormRows(const float* x, const std::vector<float>& w, const std::vector<float>& b,
                   float eps, int64_t n, int64_t d, float* y, ThreadPool* pool) {
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      kernels::LayerNorm(x + r * d, w.data(), b.data(), eps, d, y + r * d);
    }
  });
}

// y[r] += bias for rows [0, n); then optionally the activation.
enum class Act { kNone, kGeluTanh, kQuickGelu };
void BiasAct(float* y, const std::vector<float>& bias, int64_t n, int64_t d, Act act,
             ThreadPool* pool) {
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = y + r * d;
      kernels::Add(row, bias.data(), row, d);
      if (act == Act::kGeluTanh) kernels::GeluTanh(row, d);
      if (act == Act::kQuickGelu) kernels::QuickGelu(row, d);
    }
  });
}

// x[r] += y[r] + bias (the residual add after a projection).
void ResidualAdd(float* x, const float* y, const std::vector<float>& bias, int64_t n, int64_t d,
                 ThreadPool* pool) {
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      kernels::Add(x + r * d, y + r * d, x + r * d, d);
      kernels::Add(x + r * d, bias.data(), x + r * d, d);
    }
  });
}

}  // namespace

void VisionModel::Embed(const float* tiles, int64_t num_tiles, VisionScratch& s,
                        ThreadPool* pool) const {
  const VisionConfig& c = config_;
  const int64_t p = c.patch_size, side = c.patches_per_side, img = c.image_size;
  const int64_t np = c.num_patches, d = c.hidden, k = 3 * p * p;
  const int64_t t_tok = c.tokens_per_tile_in_tower();
  // im2col: row (tile, py, px), column (channel, ky, kx) — the conv weight's row order.
  s.patches.Resize(num_tiles * np * k);
  Pool(pool).ParallelFor(num_tiles * np, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t t = r / np, py = (r % np) / side, px = r % side;
      float* dst = s.patches.data() + r * k;
      for (int64_t ch = 0; ch < 3; ++ch) {
        const float* plane = tiles + (t * 3 + ch) * img * img;
        for (int64_t ky = 0; ky < p; ++ky) {
          std::memcpy(dst + (ch * p + ky) * p, plane + (py * p + ky) * img + px * p,
                      p * sizeof(float));
        }
      }
    }
  });
  s.xn.Resize(num_tiles * np * d);
  kernels::MatMul(patch_w_, s.patches.data(), num_tiles * np, s.xn.data(), pool);
  s.x.Resize(num_tiles * t_tok * d);
  const int64_t first = c.class_token ? 1 : 0;
  for (int64_t t = 0; t < num_tiles; ++t) {
    float* xt = s.x.data() + t * t_tok * d;
    if (c.class_token) kernels::Add(class_embd_.data(), pos_embd_.data(), xt, d);
    for (int64_t i = 0; i < np; ++i) {
      float* row = xt + (first + i) * d;
      kernels::Add(s.xn.data() + (t * np + i) * d, patch_b_.data(), row, d);
      kernels::Add(row, pos_embd_.data() + (first + i) * d, row, d);
    }
  }
  if (c.pre_ln) {
    LayerNormRows(s.x.data(), pre_ln_w_, pre_ln_b_, c.eps, num_tiles * t_tok, d, s.x.data(), pool);
  }
}

void VisionModel::Layer(const VisionLayerWeights& l, int64_t num_tiles, VisionScratch& s,
                        ThreadPool* pool) const {
  const VisionConfig& c = config_;
  const int64_t d = c.hidden, t_tok = c.tokens_per_tile_in_tower(), n = num_tiles * t_tok;
  s.xn.Resize(n * d);  // Embed sized it for patches only (no CLS row)
  LayerNormRows(s.x.data(), l.ln1_w, l.ln1_b, c.eps, n, d, s.xn.data(), pool);
  // Q, K and V read the same activations: one call converts them once (int8 blocks for
  // quantized weights) and shares one fork/join.
  s.q.Resize(n * d);
  s.k.Resize(n * d);
  s.v.Resize(n * d);
  const kernels::WeightView qkv[] = {l.q, l.k, l.v};
  float* const qkv_out[] = {s.q.data(), s.k.data(), s.v.data()};
  kernels::MatMulFused(qkv, qkv_out, 3, s.xn.data(), n, pool);
  for (auto [b, out] : {std::pair{&l.q_b, &s.q}, {&l.k_b, &s.k}, {&l.v_b, &s.v}}) {
    BiasAct(out->data(), *b, n, d, Act::kNone, pool);
  }
  s.attn.Resize(n * d);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const bool bf16 = compute_ == VisionComputeType::kBf16;
  for (int64_t t = 0; t < num_tiles; ++t) {
    const int64_t off = t * t_tok * d;
    kernels::AttentionBidirectional(s.q.data() + off, s.k.data() + off, s.v.data() + off, t_tok,
                                    c.num_heads, c.head_dim, d, scale, bf16,
                                    s.attn.data() + off, pool);
  }
  kernels::MatMul(l.o, s.attn.data(), n, s.xn.data(), pool);
  ResidualAdd(s.x.data(), s.xn.data(), l.o_b, n, d, pool);

  LayerNormRows(s.x.data(), l.ln2_w, l.ln2_b, c.eps, n, d, s.xn.data(), pool);
  s.ffn.Resize(n * c.ffn);
  kernels::MatMul(l.up, s.xn.data(), n, s.ffn.data(), pool);
  BiasAct(s.ffn.data(), l.up_b, n, c.ffn, c.use_gelu ? Act::kGeluTanh : Act::kQuickGelu, pool);
  kernels::MatMul(l.down, s.ffn.data(), n, s.xn.data(), pool);
  ResidualAdd(s.x.data(), s.xn.data(), l.down_b, n, d, pool);
}

void VisionModel::RunTower(const float* tiles, int64_t num_tiles, VisionScratch& s,
                           ThreadPool* pool) const {
  const VisionConfig& c = config_;
  Embed(tiles, num_tiles, s, pool);
  for (const VisionLayerWeights& l : layers_) Layer(l, num_tiles, s, pool);
  // Projector input: drop CLS, post-LN when the projector reads the last layer.
  const int64_t d = c.hidden, np = c.num_patches, t_tok = c.tokens_per_tile_in_tower();
  const int64_t first = c.class_token ? 1 : 0;
  s.features.Resize(num_tiles * np * d);
  for (int64_t t = 0; t < num_tiles; ++t) {
    std::memcpy(s.features.data() + t * np * d, s.x.data() + (t * t_tok + first) * d,
                np * d * sizeof(float));
  }
  if (c.post_ln) {
    LayerNormRows(s.features.data(), post_ln_w_, post_ln_b_, c.eps, num_tiles * np, d,
                  s.features.data(), pool);
  }
}

}  // namespace vlserve::models
