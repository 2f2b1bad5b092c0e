// The one ViT forward pass, driven by VisionConfig's spec (SigLIP for SmolVLM, CLIP for
// LLaVA, the Qwen2-VL dynamic-resolution tower, InternViT for InternVL):
//   x = [CLS]? ++ Wpatch · im2col(tile) + bpatch, + pos_embd (learned);  x = pre_ln(x)?
//   GLM-4.1V instead: x = norm_embd(Wpatch · im2col(tile) + bpatch) + resize(pos_embd)
//   Qwen3-VL:         x = Wpatch · im2col(tile) + bpatch + bilinear_resize(pos_embd)
//   per layer:  x += ls1? ⊙ (Wo · Attn(r(Wq·n1(x) + bq), r(Wk·n1(x) + bk), Wv·n1(x) + bv) + bo)
//               x += ls2? ⊙ (Wdown · act(Wup·n2(x) + bup) + bdown)
//   features = post_ln(x)? without the CLS row
//   deepstack (Qwen3-VL): after each layer in deepstack_layers, x goes to ProjectTap too
// n = LayerNorm or RMSNorm; r = 2-D RoPE on each patch's (row, col) for kRope2d towers
// (Hugging Face VisionRotaryEmbedding: per head, pair (i, i + hd/2) turns by
// row * theta^(-4i/hd) for i < hd/4 and col * theta^(-4(i - hd/4)/hd) above), else identity.
// Tiles are rows x cols patches, row-major. Attention is bidirectional and per tile;
// every matmul runs over the rows of all tiles.
#include <algorithm>
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
enum class Act { kNone, kGeluTanh, kQuickGelu, kGeluErf };
void BiasAct(float* y, const std::vector<float>& bias, int64_t n, int64_t d, Act act,
             ThreadPool* pool) {
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = y + r * d;
      kernels::Add(row, bias.data(), row, d);
      if (act == Act::kGeluTanh) kernels::GeluTanh(row, d);
      if (act == Act::kQuickGelu) kernels::QuickGelu(row, d);
      if (act == Act::kGeluErf) kernels::GeluErf(row, d);
    }
  });
}

// x[r] += y[r] + bias (the residual add after a projection); with a layer scale
// (non-empty `scale`), x[r] += scale ⊙ (y[r] + bias).
void ResidualAdd(float* x, const float* y, const std::vector<float>& bias, int64_t n, int64_t d,
                 ThreadPool* pool, const std::vector<float>& scale = {}) {
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (!scale.empty()) {
        for (int64_t i = 0; i < d; ++i) x[r * d + i] += scale[i] * (y[r * d + i] + bias[i]);
        continue;
      }
      kernels::Add(x + r * d, y + r * d, x + r * d, d);
      kernels::Add(x + r * d, bias.data(), x + r * d, d);
    }
  });
}

}  // namespace

void MergePatches(const float* features, int64_t num_tiles, int64_t rows, int64_t cols,
                  int64_t d, int64_t s, float* out) {
  const int64_t mr = rows / s, mc = cols / s, tokens = mr * mc, np = rows * cols;
  for (int64_t t = 0; t < num_tiles; ++t) {
    for (int64_t y = 0; y < mr; ++y) {
      for (int64_t x = 0; x < mc; ++x) {
        float* dst = out + (t * tokens + y * mc + x) * s * s * d;
        for (int64_t dy = 0; dy < s; ++dy) {
          for (int64_t dx = 0; dx < s; ++dx) {
            const int64_t patch = (s * y + dy) * cols + s * x + dx;
            std::memcpy(dst + (dy * s + dx) * d, features + (t * np + patch) * d,
                        d * sizeof(float));
          }
        }
      }
    }
  }
}

void VisionModel::Norm(const float* x, const std::vector<float>& w, const std::vector<float>& b,
                       int64_t n, float* y, ThreadPool* pool) const {
  const int64_t d = config_.hidden;
  const float eps = config_.eps;
  if (config_.norm == VisionNorm::kLayerNorm) {
    LayerNormRows(x, w, b, eps, n, d, y, pool);
    return;
  }
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) kernels::RmsNorm(x + r * d, w.data(), eps, d, y + r * d);
  });
}

void VisionModel::Embed(const float* tiles, int64_t num_tiles, int64_t rows, int64_t cols,
                        VisionScratch& s, ThreadPool* pool) const {
  const VisionConfig& c = config_;
  const int64_t p = c.patch_size, img_w = cols * p, img_h = rows * p;
  const int64_t np = rows * cols, d = c.hidden, k = 3 * p * p;
  const int64_t t_tok = np + (c.class_token ? 1 : 0);
  // im2col: row (tile, py, px), column (channel, ky, kx) — the conv weight's row order.
  s.patches.Resize(num_tiles * np * k);
  Pool(pool).ParallelFor(num_tiles * np, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t t = r / np, py = (r % np) / cols, px = r % cols;
      float* dst = s.patches.data() + r * k;
      for (int64_t ch = 0; ch < 3; ++ch) {
        const float* plane = tiles + (t * 3 + ch) * img_h * img_w;
        for (int64_t ky = 0; ky < p; ++ky) {
          std::memcpy(dst + (ch * p + ky) * p, plane + (py * p + ky) * img_w + px * p,
                      p * sizeof(float));
        }
      }
    }
  });
  s.xn.Resize(num_tiles * np * d);
  kernels::MatMul(patch_w_, s.patches.data(), num_tiles * np, s.xn.data(), pool);
  s.x.Resize(num_tiles * t_tok * d);
  const int64_t first = c.class_token ? 1 : 0;
  const bool learned = c.positions == VisionPositions::kLearned;
  for (int64_t t = 0; t < num_tiles; ++t) {
    float* xt = s.x.data() + t * t_tok * d;
    if (c.class_token) kernels::Add(class_embd_.data(), pos_embd_.data(), xt, d);
    for (int64_t i = 0; i < np; ++i) {
      float* row = xt + (first + i) * d;
      kernels::Add(s.xn.data() + (t * np + i) * d, patch_b_.data(), row, d);
      if (learned) kernels::Add(row, pos_embd_.data() + (first + i) * d, row, d);
    }
  }
  if (c.embd_norm) {
    Norm(s.x.data(), norm_embd_w_, norm_embd_b_, num_tiles * t_tok, s.x.data(), pool);
  }
  if (c.pos_resize_side > 0) {  // no CLS in these towers
    s.pos.Resize(np * d);
    if (c.pos_resize_bilinear) {
      ResizePositionTableBilinear(pos_embd_.data(), c.pos_resize_side, d, rows, cols,
                                  s.pos.data(), pool);
    } else {
      ResizePositionTable(pos_embd_.data(), c.pos_resize_side, d, rows, cols, s.pos.data(),
                          pool);
    }
    for (int64_t t = 0; t < num_tiles; ++t) {
      kernels::Add(s.x.data() + t * np * d, s.pos.data(), s.x.data() + t * np * d, np * d);
    }
  }
  if (c.pre_ln) Norm(s.x.data(), pre_ln_w_, pre_ln_b_, num_tiles * t_tok, s.x.data(), pool);
  if (c.positions == VisionPositions::kRope2d) RopeTables(rows, cols, s);
}

void ResizePositionTable(const float* table, int64_t side, int64_t d, int64_t rows, int64_t cols,
                         float* out, ThreadPool* pool) {
  // PyTorch's cubic convolution weights for fraction t of the 4 taps at floor - 1 .. floor + 2.
  auto weights = [](double t, double w[4]) {
    constexpr double a = -0.75;
    auto near = [](double x) { return ((a + 2) * x - (a + 3)) * x * x + 1; };       // |x| <= 1
    auto far = [](double x) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; };  // 1 < |x| < 2
    w[0] = far(t + 1), w[1] = near(t), w[2] = near(1 - t), w[3] = far(2 - t);
  };
  auto taps = [side, &weights](int64_t i, int64_t n, int64_t idx[4], double w[4]) {
    // grid_sample's unnormalized coordinate of the target centre (align_corners=False).
    const double x =
        (static_cast<double>(i) + 0.5) * static_cast<double>(side) / static_cast<double>(n) - 0.5;
    const double x0 = std::floor(x);
    weights(x - x0, w);
    for (int k = 0; k < 4; ++k) {
      idx[k] = std::clamp(static_cast<int64_t>(x0) - 1 + k, int64_t{0}, side - 1);  // border
    }
  };
  // 16 taps x d per patch (~0.1 G multiply-adds at GLM-4.1V's widest grids): rows in parallel.
  Pool(pool).ParallelFor(rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(d);
    for (int64_t r = begin; r < end; ++r) {
      int64_t ry[4];
      double wy[4];
      taps(r, rows, ry, wy);
      for (int64_t col = 0; col < cols; ++col) {
        int64_t cx[4];
        double wx[4];
        taps(col, cols, cx, wx);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int ky = 0; ky < 4; ++ky) {
          for (int kx = 0; kx < 4; ++kx) {
            const double w = wy[ky] * wx[kx];
            const float* src = table + (ry[ky] * side + cx[kx]) * d;
            for (int64_t i = 0; i < d; ++i) acc[i] += w * src[i];
          }
        }
        float* dst = out + (r * cols + col) * d;
        for (int64_t i = 0; i < d; ++i) dst[i] = static_cast<float>(acc[i]);
      }
    }
  });
}

void ResizePositionTableBilinear(const float* table, int64_t side, int64_t d, int64_t rows,
                                 int64_t cols, float* out, ThreadPool* pool) {
  // torch.linspace(0, side - 1, n) in float32 (ATen's CPU kernel: the first half counts up
  // from 0, the second half down from the end; one step is [0]), its int() floor, and the
  // float32 fraction.
  struct Axis {
    std::vector<int64_t> lo, hi;
    std::vector<float> frac;
  };
  auto axis = [side](int64_t n) {
    Axis a;
    const float end = static_cast<float>(side - 1);
    const float step = n > 1 ? end / static_cast<float>(n - 1) : 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      const float x = n == 1      ? 0.0f
                      : i < n / 2 ? step * static_cast<float>(i)
                                  : end - step * static_cast<float>(n - 1 - i);
      const auto lo = static_cast<int64_t>(x);
      a.lo.push_back(lo);
      a.hi.push_back(std::min(lo + 1, side - 1));
      a.frac.push_back(x - static_cast<float>(lo));
    }
    return a;
  };
  const Axis ay = axis(rows), ax = axis(cols);
  Pool(pool).ParallelFor(rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float dh = ay.frac[r];
      for (int64_t col = 0; col < cols; ++col) {
        const float dw = ax.frac[col];
        // HF's four (index, weight) terms, summed in this order in float32.
        const float w[4] = {(1 - dh) * (1 - dw), (1 - dh) * dw, dh * (1 - dw), dh * dw};
        const float* src[4] = {table + (ay.lo[r] * side + ax.lo[col]) * d,
                               table + (ay.lo[r] * side + ax.hi[col]) * d,
                               table + (ay.hi[r] * side + ax.lo[col]) * d,
                               table + (ay.hi[r] * side + ax.hi[col]) * d};
        float* dst = out + (r * cols + col) * d;
        for (int64_t i = 0; i < d; ++i) {
          dst[i] = w[0] * src[0][i] + w[1] * src[1][i] + w[2] * src[2][i] + w[3] * src[3][i];
        }
      }
    }
  });
}

void VisionModel::RopeTables(int64_t rows, int64_t cols, VisionScratch& s) const {
  // Shared by every tile, head and layer of a forward.
  const VisionConfig& c = config_;
  const int64_t np = rows * cols, hd = c.head_dim, quarter = hd / 4;
  s.rope_cos.resize(np * hd / 2);
  s.rope_sin.resize(np * hd / 2);
  for (int64_t i = 0; i < np; ++i) {
    const int64_t axis_pos[2] = {i / cols, i % cols};
    for (int64_t j = 0; j < hd / 2; ++j) {
      const int64_t f = j % quarter;
      const float inv_freq = 1.0f / static_cast<float>(std::pow(
                                        static_cast<double>(c.rope_theta),
                                        static_cast<double>(2 * f) / static_cast<double>(hd / 2)));
      const double theta = static_cast<float>(axis_pos[j / quarter]) * inv_freq;
      s.rope_cos[i * hd / 2 + j] = static_cast<float>(std::cos(theta));
      s.rope_sin[i * hd / 2 + j] = static_cast<float>(std::sin(theta));
    }
  }
}

namespace {

// Rotates every head of rows [0, n) (tile-major, t_tok rows a tile, no CLS) by the tile's
// per-patch angles: pairs (i, i + hd/2).
void Rope2d(float* x, int64_t n, int64_t np, int64_t heads, int64_t hd, const float* cos,
            const float* sin, ThreadPool* pool) {
  const int64_t half = hd / 2;
  Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* c = cos + (r % np) * half;
      const float* s = sin + (r % np) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = x + (r * heads + h) * hd;
        float* hi = lo + half;
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = lo[i], x1 = hi[i];
          lo[i] = x0 * c[i] - x1 * s[i];
          hi[i] = x0 * s[i] + x1 * c[i];
        }
      }
    }
  });
}

}  // namespace

// Window attention (Qwen2.5-VL's windowed layers): per tile, the patches are gathered window
// by window (windows of window_patches x window_patches, row-major, edge windows smaller),
// each window attends within itself, and the rows go back to patch order. HF reorders the
// whole sequence by windows instead (window_index) and undoes it after the merger; the
// results are the same because attention within a window does not depend on row order and
// every patch keeps its own RoPE position.
void VisionModel::WindowAttention(int64_t num_tiles, int64_t rows, int64_t cols, float scale,
                                  VisionScratch& s, ThreadPool* pool) const {
  const VisionConfig& c = config_;
  const int64_t d = c.hidden, np = rows * cols, w = c.window_patches;
  s.window_order.clear();
  s.window_sizes.clear();
  for (int64_t wy = 0; wy < rows; wy += w) {
    for (int64_t wx = 0; wx < cols; wx += w) {
      const int64_t h = std::min(w, rows - wy), ww = std::min(w, cols - wx);
      for (int64_t y = wy; y < wy + h; ++y) {
        for (int64_t x = wx; x < wx + ww; ++x) s.window_order.push_back(static_cast<int32_t>(y * cols + x));
      }
      s.window_sizes.push_back(h * ww);
    }
  }
  for (AlignedBuffer<float>* b : {&s.wq, &s.wk, &s.wv, &s.wo}) b->Resize(np * d);
  const bool bf16 = compute_ == VisionComputeType::kBf16;
  for (int64_t t = 0; t < num_tiles; ++t) {
    const int64_t off = t * np * d;
    for (int64_t i = 0; i < np; ++i) {
      const int64_t src = off + s.window_order[i] * d;
      std::memcpy(s.wq.data() + i * d, s.q.data() + src, d * sizeof(float));
      std::memcpy(s.wk.data() + i * d, s.k.data() + src, d * sizeof(float));
      std::memcpy(s.wv.data() + i * d, s.v.data() + src, d * sizeof(float));
    }
    int64_t row = 0;
    for (int64_t size : s.window_sizes) {
      kernels::AttentionBidirectional(s.wq.data() + row * d, s.wk.data() + row * d,
                                      s.wv.data() + row * d, size, c.num_heads, c.head_dim, d,
                                      scale, bf16, s.wo.data() + row * d, pool);
      row += size;
    }
    for (int64_t i = 0; i < np; ++i) {
      std::memcpy(s.attn.data() + off + s.window_order[i] * d, s.wo.data() + i * d,
                  d * sizeof(float));
    }
  }
}

void VisionModel::Layer(const VisionLayerWeights& l, int64_t num_tiles, int64_t rows,
                        int64_t cols, VisionScratch& s, ThreadPool* pool) const {
  const VisionConfig& c = config_;
  const int64_t np = rows * cols;
  const int64_t d = c.hidden, t_tok = np + (c.class_token ? 1 : 0), n = num_tiles * t_tok;
  s.xn.Resize(n * d);  // Embed sized it for patches only (no CLS row)
  Norm(s.x.data(), l.ln1_w, l.ln1_b, n, s.xn.data(), pool);
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
  if (c.positions == VisionPositions::kRope2d) {  // no CLS in these towers
    Rope2d(s.q.data(), n, np, c.num_heads, c.head_dim, s.rope_cos.data(), s.rope_sin.data(),
           pool);
    Rope2d(s.k.data(), n, np, c.num_heads, c.head_dim, s.rope_cos.data(), s.rope_sin.data(),
           pool);
  }
  s.attn.Resize(n * d);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const bool bf16 = compute_ == VisionComputeType::kBf16;
  if (l.windowed) {
    WindowAttention(num_tiles, rows, cols, scale, s, pool);
  } else {
    for (int64_t t = 0; t < num_tiles; ++t) {
      const int64_t off = t * t_tok * d;
      kernels::AttentionBidirectional(s.q.data() + off, s.k.data() + off, s.v.data() + off,
                                      t_tok, c.num_heads, c.head_dim, d, scale, bf16,
                                      s.attn.data() + off, pool);
    }
  }
  kernels::MatMul(l.o, s.attn.data(), n, s.xn.data(), pool);
  ResidualAdd(s.x.data(), s.xn.data(), l.o_b, n, d, pool, l.ls1);

  Norm(s.x.data(), l.ln2_w, l.ln2_b, n, s.xn.data(), pool);
  s.ffn.Resize(n * c.ffn);
  if (c.mlp == VisionMlp::kSwiGlu) {
    s.gate.Resize(n * c.ffn);
    const kernels::WeightView gu[] = {l.gate, l.up};
    float* const gu_out[] = {s.gate.data(), s.ffn.data()};
    kernels::MatMulFused(gu, gu_out, 2, s.xn.data(), n, pool);
    BiasAct(s.gate.data(), l.gate_b, n, c.ffn, Act::kNone, pool);
    BiasAct(s.ffn.data(), l.up_b, n, c.ffn, Act::kNone, pool);
    Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
      kernels::SwiGlu(s.gate.data() + begin * c.ffn, s.ffn.data() + begin * c.ffn,
                      s.ffn.data() + begin * c.ffn, (end - begin) * c.ffn);
    });
  } else {
    kernels::MatMul(l.up, s.xn.data(), n, s.ffn.data(), pool);
    const Act act = c.mlp == VisionMlp::kGeluTanh  ? Act::kGeluTanh
                    : c.mlp == VisionMlp::kGeluErf ? Act::kGeluErf
                                                   : Act::kQuickGelu;
    BiasAct(s.ffn.data(), l.up_b, n, c.ffn, act, pool);
  }
  kernels::MatMul(l.down, s.ffn.data(), n, s.xn.data(), pool);
  ResidualAdd(s.x.data(), s.xn.data(), l.down_b, n, d, pool, l.ls2);
}

void VisionModel::Features(int64_t num_tiles, int64_t rows, int64_t cols, VisionScratch& s,
                           ThreadPool* pool) const {
  const VisionConfig& c = config_;
  const int64_t d = c.hidden, np = rows * cols, t_tok = np + (c.class_token ? 1 : 0);
  const int64_t first = c.class_token ? 1 : 0;
  s.features.Resize(num_tiles * np * d);
  for (int64_t t = 0; t < num_tiles; ++t) {
    std::memcpy(s.features.data() + t * np * d, s.x.data() + (t * t_tok + first) * d,
                np * d * sizeof(float));
  }
  if (c.post_ln) {
    Norm(s.features.data(), post_ln_w_, post_ln_b_, num_tiles * np, s.features.data(), pool);
  }
}

void VisionModel::RunLayer(int64_t il, int64_t num_tiles, int64_t rows, int64_t cols,
                           float* out, VisionScratch& s, ThreadPool* pool) const {
  Layer(layers_[il], num_tiles, rows, cols, s, pool);
  const std::vector<int64_t>& taps = config_.deepstack_layers;
  if (out == nullptr || taps.empty()) return;
  const auto it = std::find(taps.begin(), taps.end(), il);
  if (it == taps.end()) return;
  // No CLS in towers with taps: s.x is [num_tiles, rows * cols, hidden].
  projector_->ProjectTap(it - taps.begin(), s.x.data(), num_tiles, rows, cols, out, s, pool);
}

void VisionModel::RunTower(const float* tiles, int64_t num_tiles, int64_t height, int64_t width,
                           VisionScratch& s, ThreadPool* pool, float* out) const {
  const VisionConfig& c = config_;
  const int64_t rows = height / c.patch_size, cols = width / c.patch_size;
  Embed(tiles, num_tiles, rows, cols, s, pool);
  for (int64_t il = 0; il < c.num_layers; ++il) RunLayer(il, num_tiles, rows, cols, out, s, pool);
  Features(num_tiles, rows, cols, s, pool);  // projector input: no CLS, post-LN
}

int64_t VisionModel::TokenLayers(const ImageLayout& l) const {
  const int64_t p = config_.patch_size;
  const int64_t t_tok = (l.tile_height / p) * (l.tile_width / p) + (config_.class_token ? 1 : 0);
  return l.num_tiles * t_tok * config_.num_layers;
}

int64_t VisionModel::EncodeSome(const float* pixels, const ImageLayout& l, float* out,
                                EncodeProgress& p, int64_t budget, VisionScratch& s,
                                ThreadPool* pool, int64_t max_per_forward) const {
  const VisionConfig& c = config_;
  const int64_t rows = l.tile_height / c.patch_size, cols = l.tile_width / c.patch_size;
  const int64_t t_tok = rows * cols + (c.class_token ? 1 : 0);
  const int64_t step = max_per_forward > 0 ? max_per_forward : tiles_per_forward_;
  const int64_t out_rows = projector_->TokensPerTile(rows, cols);
  // The group in flight lives in `p` between calls; here it runs in the shared scratch.
  std::swap(p.x, s.x);
  std::swap(p.rope_cos, s.rope_cos);
  std::swap(p.rope_sin, s.rope_sin);
  int64_t spent = 0;
  while (!p.done(l)) {
    if (p.group == 0) {
      p.group = std::min(step, l.num_tiles - p.next_tile);
      p.next_layer = 0;
      Embed(pixels + p.next_tile * l.tile_floats(), p.group, rows, cols, s, pool);
    }
    const int64_t tokens = p.group * t_tok;
    bool paused = false;
    while (p.next_layer < c.num_layers) {
      if (budget > 0 && spent > 0 && spent + tokens > budget) {
        paused = true;
        break;
      }
      RunLayer(p.next_layer++, p.group, rows, cols,
               out + p.next_tile * out_rows * output_width(), s, pool);
      spent += tokens;
    }
    if (paused) break;
    Features(p.group, rows, cols, s, pool);
    projector_->Project(s.features.data(), p.group, rows, cols,
                        out + p.next_tile * out_rows * output_width(), s, pool);
    p.next_tile += p.group;
    p.group = 0;
  }
  std::swap(p.x, s.x);
  std::swap(p.rope_cos, s.rope_cos);
  std::swap(p.rope_sin, s.rope_sin);
  return spent;
}

}  // namespace vlserve::models
