// Scalar references for the row ops and attention (see ops_ref.h).
#include "kernels/ref/ops_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "base/check.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::ref {
namespace {

// The float32 constants the models' own code uses (PyTorch evaluates these formulas in
// float): matching them matters in the far tails, where e^(k x) magnifies a 3e-8
// difference in k by |k x|.
constexpr double kGeluTanhK = static_cast<float>(0.7978845608028654);  // √(2/π)
constexpr double kGeluTanhC = static_cast<float>(0.044715);
constexpr double kQuickGeluK = static_cast<float>(1.702);

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] * scale * weight[i]);
}

void LayerNorm(const float* x, const float* weight, const float* bias, float eps, int64_t n,
               float* y) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double var = 0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);  // biased, as torch.nn.LayerNorm
  const double rstd = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i) {
    double v = (x[i] - mean) * rstd;
    if (weight != nullptr) v *= weight[i];
    if (bias != nullptr) v += bias[i];
    y[i] = static_cast<float>(v);
  }
}

float RopeTheta(int64_t pos, int64_t i, int64_t rope_dims, float freq_base) {
  const float exponent = static_cast<float>(2 * i) / static_cast<float>(rope_dims);
  const float base_pow = static_cast<float>(std::pow(static_cast<double>(freq_base), exponent));
  const float inv_freq = 1.0f / base_pow;
  return static_cast<float>(pos) * inv_freq;
}

void Rope(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims, int64_t pos,
          float freq_base, RopeStyle style) {
  const auto p = static_cast<int32_t>(pos);
  const int32_t same[4] = {p, p, p, p};
  ref::RopeMulti(x, num_heads, head_dim, rope_dims, same, freq_base, style, RopeSections{});
}

void RopeMulti(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims,
               const int32_t pos[4], float freq_base, RopeStyle style,
               const RopeSections& sections) {
  CHECK(rope_dims % 2 == 0 && rope_dims <= head_dim) << "rope_dims " << rope_dims;
  const int64_t half = rope_dims / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const double theta = RopeTheta(pos[sections.AxisOfPair(i)], i, rope_dims, freq_base);
      const double c = std::cos(theta), s = std::sin(theta);
      const int64_t a = style == RopeStyle::kNormal ? 2 * i : i;
      const int64_t b = style == RopeStyle::kNormal ? 2 * i + 1 : i + half;
      const double x0 = v[a], x1 = v[b];
      v[a] = static_cast<float>(x0 * c - x1 * s);
      v[b] = static_cast<float>(x0 * s + x1 * c);
    }
  }
}

void Softmax(float* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(x[i]));
  if (m == -std::numeric_limits<double>::infinity()) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  std::vector<double> e(n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += e[i] = std::exp(x[i] - m);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
}

void Silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * Sigmoid(x[i]));
}

// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u), which is exact algebra and avoids the
// cancellation of 1 + tanh(u) for negative u.
void GeluTanh(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double u = kGeluTanhK * (v + kGeluTanhC * v * v * v);
    x[i] = static_cast<float>(v * Sigmoid(2.0 * u));
  }
}

// 0.5 x (1 + erf(x/√2)) == 0.5 x erfc(-x/√2); erfc keeps the left tail accurate.
void GeluErf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(0.5 * v * std::erfc(-v / std::sqrt(2.0)));
  }
}

void QuickGelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * Sigmoid(kQuickGeluK * x[i]));
}

void SwiGlu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(gate[i] * Sigmoid(gate[i]) * up[i]);
  }
}

void Add(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// Value i of a K/V block, widened from the view's storage type.
static double KvValue(const KvView& kv, const void* block, int64_t i) {
  switch (kv.type) {
    case DType::kF32: return static_cast<const float*>(block)[i];
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(block)[i]);
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(block)[i]);
    default: CHECK(false) << "kv type " << Info(kv.type).name; return 0;
  }
}

void Attention(const float* q, int64_t n_q, int64_t num_heads, int64_t num_kv_heads,
               int64_t head_dim, const KvView& kv, const int32_t* q_positions, float scale,
               float* out) {
  CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0);
  const int64_t group = num_heads / num_kv_heads;
  const int64_t row = num_kv_heads * head_dim;  // floats per kv position
  std::vector<double> p(kv.length);
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t visible = q_positions ? q_positions[i] + 1 : kv.length;
    CHECK(visible >= 1 && visible <= kv.length);
    for (int64_t h = 0; h < num_heads; ++h) {
      const float* qh = q + (i * num_heads + h) * head_dim;
      const int64_t off = (h / group) * head_dim;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t t = 0; t < visible; ++t) {
        const int64_t k = (t % kv.block_size) * row + off;
        double dot = 0;
        for (int64_t d = 0; d < head_dim; ++d) {
          dot += static_cast<double>(qh[d]) * KvValue(kv, kv.k_blocks[t / kv.block_size], k + d);
        }
        p[t] = dot * scale;
        m = std::max(m, p[t]);
      }
      double sum = 0;
      for (int64_t t = 0; t < visible; ++t) sum += p[t] = std::exp(p[t] - m);
      float* o = out + (i * num_heads + h) * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) {
        double acc = 0;
        for (int64_t t = 0; t < visible; ++t) {
          acc += p[t] * KvValue(kv, kv.v_blocks[t / kv.block_size],
                                (t % kv.block_size) * row + off + d);
        }
        o[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace vlserve::kernels::ref
