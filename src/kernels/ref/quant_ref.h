// Scalar reference (de)quantization for every supported weight type, bit-exact with
// ggml's dequantize_row_* and with the semantics of its quantize_row_*_ref.
#pragma once

#include <cstdint>

#include "kernels/quant_blocks.h"
#include "kernels/types.h"

namespace vlserve::kernels::ref {

// n values, a multiple of the type's block size. CHECK-fails on an unsupported type.
void Dequantize(DType type, const void* src, float* dst, int64_t n);
void Quantize(DType type, const float* src, void* dst, int64_t n);

// True for the types MatMul / Dequantize / Quantize accept.
bool IsSupportedWeightType(DType type);

// Activation quantization for the integer dot products (n a multiple of 32 / 256).
void QuantizeActQ8(const float* x, ActQ8* dst, int64_t n);
void QuantizeActQ8K(const float* x, ActQ8K* dst, int64_t n);

}  // namespace vlserve::kernels::ref
