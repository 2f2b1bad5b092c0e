// Scalar reference MatMul: dequantize each weight row to float, dot in double.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace vlserve::kernels::ref {

// y[t, r] for rows [r0, r1) and all n tokens; x: [n][w.cols], y: [n][w.rows].
void MatMulRows(const WeightView& w, const float* x, int64_t n, float* y, int64_t r0,
                int64_t r1);

}  // namespace vlserve::kernels::ref
