// Tensor element types, numbered as ggml numbers them so GGUF type ids map directly.
// Quantized types store `block_size` values in `type_size` bytes (ggml's block layouts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace vlserve {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct DTypeInfo {
  DType type;
  std::string_view name;  // ggml's lower-case name: "f32", "q4_k", ...
  int64_t block_size;     // values per block
  int64_t type_size;      // bytes per block
  bool supported;         // vlserve has kernels (dequantize + matmul) for it
};

// nullopt for ids ggml never assigned or has removed.
std::optional<DTypeInfo> LookupDType(uint32_t id);
const DTypeInfo& Info(DType type);
std::optional<DType> DTypeFromName(std::string_view name);  // case-insensitive

// Bytes of one row of `n` values; n must be a multiple of the block size.
inline int64_t RowBytes(DType type, int64_t n) {
  const DTypeInfo& info = Info(type);
  return n / info.block_size * info.type_size;
}

}  // namespace vlserve
