// The two-layer projector MLP that several families share: mm.0 (+bias) -> exact erf-GELU
// -> mm.2 (+bias), llama.cpp's names for LLaVA's linear_1/linear_2 and Qwen2-VL's
// merger.mlp.0/merger.mlp.2 (InternVL's mlp1.1/mlp1.3 are mm.model.mlp.1/.3).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

namespace vlserve::models {

struct GeluMlp {
  kernels::WeightView w0{}, w2{};  // [mid, in], [out, mid]
  std::vector<float> b0, b2;       // [mid], [out]

  // Loads <first>.weight/.bias and <second>.weight/.bias for inputs of `in` values;
  // `family` names the file kind in errors.
  static StatusOr<GeluMlp> Load(const gguf::File& file, int64_t in, const char* family,
                                const std::string& first = "mm.0",
                                const std::string& second = "mm.2");
  int64_t out_width() const { return w2.rows; }
  int64_t macs_per_row() const { return w0.rows * w0.cols + w2.rows * w2.cols; }
  // x: [n, in] -> y: [n, out]; tmp grown to [n, mid].
  void Run(const float* x, int64_t n, float* y, AlignedBuffer<float>& tmp,
           ThreadPool* pool) const;
};

}  // namespace vlserve::models
