// Element-wise and row ops templated on the SIMD traits S; each ISA's ops_<isa>.cc
// instantiates MakeRowOps<S>(). All loads/stores are unaligned and tails use masked
// lanes, so any pointer and any n >= 0 work. In-place use (x == y) is allowed.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/ops_isa.h"
#include "kernels/vec_math-inl.h"

namespace vlserve::kernels::opsimpl {

// x[i] = f(x[i]) for a vector functor f.
template <class S, class F>
inline void MapInPlace(float* x, int64_t n, F f) {
  constexpr int L = S::kLanes;
  int64_t i = 0;
  for (; i + L <= n; i += L) S::Store(x + i, f(S::Load(x + i)));
  if (i < n) S::StoreN(x + i, f(S::LoadN(x + i, n - i)), n - i);
}

// out[i] = f(a[i], b[i]).
template <class S, class F>
inline void Map2(const float* a, const float* b, float* out, int64_t n, F f) {
  constexpr int L = S::kLanes;
  int64_t i = 0;
  for (; i + L <= n; i += L) S::Store(out + i, f(S::Load(a + i), S::Load(b + i)));
  if (i < n) S::StoreN(out + i, f(S::LoadN(a + i, n - i), S::LoadN(b + i, n - i)), n - i);
}

// Σ f(x[i]) with four independent accumulators. Tail padding lanes read `fill`, and
// f(fill) must be 0.
template <class S, class F>
inline float SumOf(const float* x, int64_t n, float fill, F f) {
  constexpr int L = S::kLanes;
  using V = typename S::V;
  V a0 = S::Zero(), a1 = S::Zero(), a2 = S::Zero(), a3 = S::Zero();
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 = S::Add(a0, f(S::Load(x + i)));
    a1 = S::Add(a1, f(S::Load(x + i + L)));
    a2 = S::Add(a2, f(S::Load(x + i + 2 * L)));
    a3 = S::Add(a3, f(S::Load(x + i + 3 * L)));
  }
  for (; i + L <= n; i += L) a0 = S::Add(a0, f(S::Load(x + i)));
  if (i < n) a1 = S::Add(a1, f(S::LoadNFill(x + i, n - i, fill)));
  return S::SumLanes(S::Add(S::Add(a0, a1), S::Add(a2, a3)));
}

template <class S>
void RmsNorm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  using V = typename S::V;
  const float ss = SumOf<S>(x, n, 0.0f, [](V v) { return S::Mul(v, v); });
  const V scale = S::Set(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
  // (x * scale) * weight, the order Hugging Face and ggml use.
  Map2<S>(x, weight, y, n, [&](V a, V w) { return S::Mul(S::Mul(a, scale), w); });
}

template <class S>
void LayerNorm(const float* x, const float* weight, const float* bias, float eps, int64_t n,
               float* y) {
  using V = typename S::V;
  const float mean = SumOf<S>(x, n, 0.0f, [](V v) { return v; }) / static_cast<float>(n);
  const V vmean = S::Set(mean);
  // Two passes (mean, then squared deviations): no cancellation for large offsets.
  constexpr int L = S::kLanes;
  const float ssd = SumOf<S>(x, n, mean, [&](V v) {
    const V d = S::Sub(v, vmean);
    return S::Mul(d, d);
  });
  const float rstd = 1.0f / std::sqrt(ssd / static_cast<float>(n) + eps);
  const V vr = S::Set(rstd);
  constexpr float kOne = 1.0f, kZero = 0.0f;
  int64_t i = 0;
  for (; i < n; i += L) {
    const int64_t m = n - i < L ? n - i : L;
    const V v = m == L ? S::Load(x + i) : S::LoadN(x + i, m);
    const V w = weight == nullptr ? S::Set(kOne)
                : m == L          ? S::Load(weight + i)
                                  : S::LoadN(weight + i, m);
    const V b = bias == nullptr ? S::Set(kZero) : m == L ? S::Load(bias + i) : S::LoadN(bias + i, m);
    const V r = S::Fma(S::Mul(S::Sub(v, vmean), vr), w, b);
    if (m == L) {
      S::Store(y + i, r);
    } else {
      S::StoreN(y + i, r, m);
    }
  }
}

template <class S>
void Softmax(float* x, int64_t n) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr float kNegInf = -__builtin_inff();
  if (n <= 0) return;
  V vmax = S::Set(kNegInf);
  int64_t i = 0;
  for (; i + L <= n; i += L) vmax = S::Max(vmax, S::Load(x + i));
  if (i < n) vmax = S::Max(vmax, S::LoadNFill(x + i, n - i, kNegInf));
  const float m = S::MaxLanes(vmax);
  if (m == kNegInf) {  // every entry masked: define the row as zeros, not NaN
    for (int64_t j = 0; j < n; ++j) x[j] = 0.0f;
    return;
  }
  const V vm = S::Set(m);
  V sum = S::Zero();
  for (i = 0; i + L <= n; i += L) {
    const V e = vmath::Exp<S>(S::Sub(S::Load(x + i), vm));
    S::Store(x + i, e);
    sum = S::Add(sum, e);
  }
  if (i < n) {
    const V e = vmath::Exp<S>(S::Sub(S::LoadNFill(x + i, n - i, kNegInf), vm));
    S::StoreN(x + i, e, n - i);
    sum = S::Add(sum, e);
  }
  const V inv = S::Set(1.0f / S::SumLanes(sum));
  MapInPlace<S>(x, n, [&](V v) { return S::Mul(v, inv); });
}

template <class S>
void Silu(float* x, int64_t n) {
  MapInPlace<S>(x, n, [](typename S::V v) { return vmath::XSigmoid<S>(v, v); });
}

template <class S>
void QuickGelu(float* x, int64_t n) {
  MapInPlace<S>(x, n, [](typename S::V v) {
    return vmath::XSigmoid<S>(v, S::Mul(v, S::Set(1.702f)));
  });
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = √(2/π) (x + 0.044715 x³); the sigmoid form
// has no cancellation for negative x.
template <class S>
void GeluTanh(float* x, int64_t n) {
  MapInPlace<S>(x, n, [](typename S::V v) {
    const typename S::V inner = S::Fma(S::Mul(v, v), S::Set(0.044715f), S::Set(1.0f));
    const typename S::V two_u = S::Mul(S::Mul(v, inner), S::Set(2.0f * 0.7978845608028654f));
    return vmath::XSigmoid<S>(v, two_u);
  });
}

template <class S>
void GeluErf(float* x, int64_t n) {
  MapInPlace<S>(x, n, [](typename S::V v) { return S::Mul(v, vmath::Phi<S>(v)); });
}

template <class S>
void SwiGlu(const float* gate, const float* up, float* out, int64_t n) {
  Map2<S>(gate, up, out, n, [](typename S::V g, typename S::V u) {
    return S::Mul(vmath::XSigmoid<S>(g, g), u);
  });
}

template <class S>
void Add(const float* a, const float* b, float* out, int64_t n) {
  Map2<S>(a, b, out, n, [](typename S::V x, typename S::V y) { return S::Add(x, y); });
}

template <class S>
constexpr internal::RowOps MakeRowOps() {
  return internal::RowOps{&RmsNorm<S>, &LayerNorm<S>,  &Softmax<S>,
                          &Silu<S>,    &GeluTanh<S>,   &GeluErf<S>,
                          &QuickGelu<S>, &SwiGlu<S>,   &Add<S>};
}

}  // namespace vlserve::kernels::opsimpl
