#include "models/gelu_mlp.h"

#include <fmt/format.h>

#include "models/vision_model.h"

namespace vlserve::models {

StatusOr<GeluMlp> GeluMlp::Load(const gguf::File& f, int64_t in, const char* family,
                                const std::string& first, const std::string& second) {
  const gguf::TensorInfo* t0 = f.FindTensor(first + ".weight");
  const gguf::TensorInfo* t2 = f.FindTensor(second + ".weight");
  if (t0 == nullptr || t2 == nullptr || t0->shape.size() != 2 || t2->shape.size() != 2) {
    return NotFoundError(
        fmt::format("{} mmproj: tensors '{}.weight' and '{}.weight' must be present and 2-D",
                    family, first, second));
  }
  GeluMlp m;
  const int64_t mid = t0->shape[1], out = t2->shape[1];
  ASSIGN_OR_RETURN(m.w0, VisionMatrix(f, first + ".weight", mid, in));
  ASSIGN_OR_RETURN(m.b0, VisionVector(f, first + ".bias", mid));
  ASSIGN_OR_RETURN(m.w2, VisionMatrix(f, second + ".weight", out, mid));
  ASSIGN_OR_RETURN(m.b2, VisionVector(f, second + ".bias", out));
  return m;
}

void GeluMlp::Run(const float* x, int64_t n, float* y, AlignedBuffer<float>& tmp,
                  ThreadPool* pool) const {
  const int64_t mid = w0.rows, out = w2.rows;
  tmp.Resize(n * mid);
  kernels::MatMul(w0, x, n, tmp.data(), pool);
  for (int64_t r = 0; r < n; ++r) {
    kernels::Add(tmp.data() + r * mid, b0.data(), tmp.data() + r * mid, mid);
    kernels::GeluErf(tmp.data() + r * mid, mid);
  }
  kernels::MatMul(w2, tmp.data(), n, y, pool);
  for (int64_t r = 0; r < n; ++r) kernels::Add(y + r * out, b2.data(), y + r * out, out);
}

}  // namespace vlserve::models
