// Public entry points for the element-wise / row ops (kernels.h): one switch on the
// active ISA picks the table built from ops-inl.h for that ISA. RoPE lives here too: its
// cost is the angles, which are cached, not the rotation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/check.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/ops-inl.h"
#include "kernels/ops_isa.h"
#include "kernels/simd_scalar.h"

namespace vlserve::kernels {
namespace internal {

const RowOps& RowOpsScalar() {
  static constexpr RowOps kOps = opsimpl::MakeRowOps<simd::Scalar>();
  return kOps;
}

}  // namespace internal

namespace {

const internal::RowOps& Ops() {
  switch (internal::CurrentIsa()) {
    case Isa::kAvx512: return internal::RowOpsAvx512();
    case Isa::kAvx2: return internal::RowOpsAvx2();
    default: return internal::RowOpsScalar();
  }
}

// cos/sin of the rope angles for one (pos, rope_dims, freq_base), per thread. A model
// rotates Q and then K of the same token, and every layer repeats the same position, so
// a one-entry cache removes almost all trigonometry in decode.
struct RopeAngles {
  int64_t dims = 0;
  float base = 0.0f;
  int64_t pos = -1;
  std::vector<float> inv_freq;  // [dims / 2]
  std::vector<float> cos, sin;  // [dims / 2]
};

const RopeAngles& Angles(int64_t pos, int64_t dims, float base) {
  thread_local RopeAngles a;
  if (a.dims != dims || a.base != base) {
    a.dims = dims;
    a.base = base;
    a.pos = -1;
    a.inv_freq.resize(dims / 2);
    // In float, as Hugging Face computes inv_freq = 1 / base ** (arange(0, d, 2).float() / d).
    for (int64_t i = 0; i < dims / 2; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(dims);
      a.inv_freq[i] = 1.0f / static_cast<float>(std::pow(static_cast<double>(base), exponent));
    }
    a.cos.resize(dims / 2);
    a.sin.resize(dims / 2);
  }
  if (a.pos != pos) {
    a.pos = pos;
    for (int64_t i = 0; i < dims / 2; ++i) {
      // The angle is rounded to float like HF's pos * inv_freq; cos/sin then in double.
      const double theta = static_cast<float>(pos) * a.inv_freq[i];
      a.cos[i] = static_cast<float>(std::cos(theta));
      a.sin[i] = static_cast<float>(std::sin(theta));
    }
  }
  return a;
}

// Rotates the first rope_dims values of each head by the angles' cos/sin ([rope_dims/2]).
void RotatePairs(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims,
                 const float* c, const float* s, RopeStyle style) {
  const int64_t half = rope_dims / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    float* v = x + h * head_dim;
    if (style == RopeStyle::kNormal) {
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c[i] - x1 * s[i];
        v[2 * i + 1] = x0 * s[i] + x1 * c[i];
      }
    } else {
      float* lo = v;
      float* hi = v + half;
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = lo[i], x1 = hi[i];
        lo[i] = x0 * c[i] - x1 * s[i];
        hi[i] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

}  // namespace

void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  Ops().rms_norm(x, weight, eps, n, y);
}

void LayerNorm(const float* x, const float* weight, const float* bias, float eps, int64_t n,
               float* y) {
  Ops().layer_norm(x, weight, bias, eps, n, y);
}

void Rope(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims, int64_t pos,
          float freq_base, RopeStyle style) {
  CHECK(rope_dims > 0 && rope_dims % 2 == 0 && rope_dims <= head_dim)
      << "rope_dims " << rope_dims << ", head_dim " << head_dim;
  const RopeAngles& a = Angles(pos, rope_dims, freq_base);
  RotatePairs(x, num_heads, head_dim, rope_dims, a.cos.data(), a.sin.data(), style);
}

int32_t RopeSections::AxisOfPair(int64_t i) const {
  if (!active()) return 0;
  if (interleaved) {
    if (i % 3 == 1 && i < 3 * pairs[1]) return 1;
    if (i % 3 == 2 && i < 3 * pairs[2]) return 2;
    return 0;
  }
  const int64_t sector = i % (pairs[0] + pairs[1] + pairs[2] + pairs[3]);
  int64_t end = 0;
  for (int32_t axis = 0; axis < 3; ++axis) {
    end += pairs[axis];
    if (sector < end) return axis;
  }
  return 3;
}

namespace {

// cos/sin of one token's M-RoPE angles, per thread, one entry: Q and K of a token and
// every layer share them.
struct MultiAngles {
  int64_t dims = 0;
  float base = 0.0f;
  RopeSections sections;
  std::array<int32_t, 4> pos{-1, -1, -1, -1};
  std::vector<float> inv_freq, cos, sin;  // [dims / 2]
  std::vector<int32_t> axis;              // [dims / 2]
};

const MultiAngles& MultiAnglesFor(const int32_t pos[4], int64_t dims, float base,
                                  const RopeSections& sections) {
  thread_local MultiAngles a;
  if (a.dims != dims || a.base != base || a.sections.pairs != sections.pairs ||
      a.sections.interleaved != sections.interleaved) {
    a.dims = dims;
    a.base = base;
    a.sections = sections;
    a.pos = {-1, -1, -1, -1};
    a.inv_freq.resize(dims / 2);
    a.axis.resize(dims / 2);
    for (int64_t i = 0; i < dims / 2; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(dims);
      a.inv_freq[i] = 1.0f / static_cast<float>(std::pow(static_cast<double>(base), exponent));
      a.axis[i] = sections.AxisOfPair(i);
    }
    a.cos.resize(dims / 2);
    a.sin.resize(dims / 2);
  }
  if (!std::equal(a.pos.begin(), a.pos.end(), pos)) {
    std::copy(pos, pos + 4, a.pos.begin());
    for (int64_t i = 0; i < dims / 2; ++i) {
      const double theta = static_cast<float>(pos[a.axis[i]]) * a.inv_freq[i];
      a.cos[i] = static_cast<float>(std::cos(theta));
      a.sin[i] = static_cast<float>(std::sin(theta));
    }
  }
  return a;
}

}  // namespace

void RopeMulti(float* x, int64_t num_heads, int64_t head_dim, int64_t rope_dims,
               const int32_t pos[4], float freq_base, RopeStyle style,
               const RopeSections& sections) {
  CHECK(rope_dims > 0 && rope_dims % 2 == 0 && rope_dims <= head_dim)
      << "rope_dims " << rope_dims << ", head_dim " << head_dim;
  const MultiAngles& a = MultiAnglesFor(pos, rope_dims, freq_base, sections);
  RotatePairs(x, num_heads, head_dim, rope_dims, a.cos.data(), a.sin.data(), style);
}

void Softmax(float* x, int64_t n) { Ops().softmax(x, n); }
void Silu(float* x, int64_t n) { Ops().silu(x, n); }
void GeluTanh(float* x, int64_t n) { Ops().gelu_tanh(x, n); }
void GeluErf(float* x, int64_t n) { Ops().gelu_erf(x, n); }
void QuickGelu(float* x, int64_t n) { Ops().quick_gelu(x, n); }

void SwiGlu(const float* gate, const float* up, float* out, int64_t n) {
  Ops().swiglu(gate, up, out, n);
}

void Add(const float* a, const float* b, float* out, int64_t n) { Ops().add(a, b, out, n); }

}  // namespace vlserve::kernels
