#include "kernels/ref/matmul_ref.h"

#include <vector>

#include "kernels/ref/quant_ref.h"

namespace vlserve::kernels::ref {

void MatMulRows(const WeightView& w, const float* x, int64_t n, float* y, int64_t r0,
                int64_t r1) {
  std::vector<float> row(w.cols);
  const int64_t row_bytes = RowBytes(w.type, w.cols);
  for (int64_t r = r0; r < r1; ++r) {
    Dequantize(w.type, static_cast<const uint8_t*>(w.data) + r * row_bytes, row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      double sum = 0;
      for (int64_t k = 0; k < w.cols; ++k) sum += static_cast<double>(row[k]) * xt[k];
      y[t * w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace vlserve::kernels::ref
