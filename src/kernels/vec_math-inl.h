// Vectorised float math shared by the element-wise ops and attention, templated on the
// SIMD traits S (simd_scalar.h, simd_avx2.h, simd_avx512.h). Included by per-ISA .cc
// files only; everything here is a template, so each ISA gets its own instantiation.
//
// Accuracy (measured against double-precision references in ops_test.cc): Exp within
// ~2 ulp; Phi (the normal CDF) within ~4e-7 relative everywhere, including the far left
// tail where 1 + erf(x/√2) would cancel.
#pragma once

#include <cstdint>

namespace vlserve::kernels::vmath {

// e^x. Inputs are clamped to [-110, 89]: below, the result is 0 (e^-104 is already under
// the smallest denormal); above, +inf. NaN propagates.
template <class S>
__attribute__((always_inline)) inline typename S::V Exp(typename S::V x) {
  using V = typename S::V;
  x = S::Max(S::Set(-110.0f), x);  // operand order keeps NaN (the 2nd operand wins)
  x = S::Min(S::Set(89.0f), x);
  const V n = S::Round(S::Mul(x, S::Set(1.44269504088896341f)));
  // Cody–Waite: ln2_hi has few enough bits that n*ln2_hi is exact for |n| < 256.
  V r = S::Fnma(n, S::Set(0.693145751953125f), x);
  r = S::Fnma(n, S::Set(1.42860682030941723212e-6f), r);
  // Taylor series to r^7: |r| <= ln2/2 gives a truncation error of 5e-9 relative.
  V p = S::Set(1.0f / 5040.0f);
  p = S::Fma(p, r, S::Set(1.0f / 720.0f));
  p = S::Fma(p, r, S::Set(1.0f / 120.0f));
  p = S::Fma(p, r, S::Set(1.0f / 24.0f));
  p = S::Fma(p, r, S::Set(1.0f / 6.0f));
  p = S::Fma(p, r, S::Set(0.5f));
  p = S::Fma(p, r, S::Set(1.0f));
  p = S::Fma(p, r, S::Set(1.0f));
  // 2^n in two factors so that n in [-159, 128] stays within normal exponents; the
  // final product rounds to a denormal, zero or infinity as it should.
  const V n1 = S::HalfFloor(n);
  const V n2 = S::Sub(n, n1);
  return S::Mul(S::Mul(p, S::Pow2(n1)), S::Pow2(n2));
}

// x / (1 + e^(-k x)) = x * sigmoid(k x). Finite for all finite x: for very negative
// k x the denominator becomes +inf and the result ±0.
template <class S>
typename S::V XSigmoid(typename S::V x, typename S::V kx) {
  const typename S::V e = Exp<S>(S::Sub(S::Zero(), kx));
  return S::Div(x, S::Add(S::Set(1.0f), e));
}

// Polynomial in t on [0, 1] with erf(t) = t * P(t²); least-squares fit (relative
// error 1.1e-8) made for this file.
template <class S>
typename S::V ErfSmall(typename S::V t) {
  const typename S::V t2 = S::Mul(t, t);
  typename S::V p = S::Set(7.537777855759487e-05f);
  p = S::Fma(p, t2, S::Set(-0.0007906169048510492f));
  p = S::Fma(p, t2, S::Set(0.005175135564059019f));
  p = S::Fma(p, t2, S::Set(-0.026845764368772507f));
  p = S::Fma(p, t2, S::Set(0.11283345520496368f));
  p = S::Fma(p, t2, S::Set(-0.3761259615421295f));
  p = S::Fma(p, t2, S::Set(1.1283791065216064f));
  return S::Mul(p, t);
}

// h(t) = t · e^(t²) · erfc(t) for t in [1, 10], as a degree-11 polynomial in
// w = (1/t - 0.55) / 0.45 ∈ [-1, 1] (fit: relative error 2.2e-8; 7.5e-8 in float).
template <class S>
typename S::V ErfcScaled(typename S::V inv_t) {
  using V = typename S::V;
  static constexpr float kC[12] = {
      0.5023534297943115f,     -0.07651582360267639f,   -0.004124009516090155f,
      0.00896321889013052f,    -0.003974222578108311f,  0.0009179944754578173f,
      8.037738734856248e-05f,  -0.00022154666658025235f, 0.0001774642732925713f,
      -7.680163253098726e-05f, -1.6276932001346722e-05f, 1.978314685402438e-05f};
  const V w = S::Fms(inv_t, S::Set(1.0f / 0.45f), S::Set(0.55f / 0.45f));
  V p = S::Set(kC[11]);
  for (int k = 10; k >= 0; --k) p = S::Fma(p, w, S::Set(kC[k]));
  return p;
}

// Phi(x) = 0.5 * (1 + erf(x / √2)), the standard normal CDF, accurate in relative terms
// on both tails: the left tail goes through erfc with an exactly rounded x² exponent.
template <class S>
typename S::V Phi(typename S::V x) {
  using V = typename S::V;
  x = S::Min(S::Set(20.0f), S::Max(S::Set(-20.0f), x));  // Phi is 0 or 1 in float beyond
  const V half = S::Set(0.5f);
  const V t = S::Mul(S::Abs(x), S::Set(0.70710678118654752f));
  // |x| <= √2: 0.5 ± 0.5 erf(t).
  const V e = S::Mul(half, ErfSmall<S>(S::Min(t, S::Set(1.0f))));
  // |x| > √2: erfc(t) = e^(-x²/2) h(t) / t, with x² = hx + ex exactly.
  const V hx = S::Mul(x, x);
  const V ex = S::Fms(x, x, hx);
  const V g = S::Mul(Exp<S>(S::Mul(S::Set(-0.5f), hx)), S::Fnma(half, ex, S::Set(1.0f)));
  const V tc = S::Min(S::Max(t, S::Set(1.0f)), S::Set(10.0f));
  const V inv_t = S::Div(S::Set(1.0f), tc);
  const V half_erfc = S::Mul(half, S::Mul(g, S::Mul(ErfcScaled<S>(inv_t), inv_t)));
  const typename S::M neg = S::Lt(x, S::Zero());
  const V small = S::Select(neg, S::Sub(half, e), S::Add(half, e));
  const V large = S::Select(neg, half_erfc, S::Sub(S::Set(1.0f), half_erfc));
  return S::Select(S::Gt(t, S::Set(1.0f)), large, small);
}

}  // namespace vlserve::kernels::vmath
