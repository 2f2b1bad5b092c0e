// MatMul over several weight matrices that read the same activations (Q/K/V, gate/up):
// the activations are converted once and the rows of all matrices are handed to the
// threads as one job, so a decode step pays one fork/join for the group instead of one
// per matrix. Results are bit-identical to separate MatMul calls.
#pragma once

#include <cstdint>

#include "base/thread_pool.h"
#include "kernels/kernels.h"

namespace vlserve::kernels {

// ys[i][n, ws[i].rows] = x[n, cols] · ws[i]ᵀ for i in [0, count). Every ws[i] must have
// the same cols. pool == nullptr: DefaultThreadPool().
void MatMulFused(const WeightView* ws, float* const* ys, int count, const float* x, int64_t n,
                 ThreadPool* pool = nullptr);

}  // namespace vlserve::kernels
