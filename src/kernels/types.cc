#include "kernels/types.h"

#include <array>
#include <cctype>

#include "base/check.h"

namespace vlserve {
namespace {

// Sizes follow ggml's block structs (ggml-common.h); a test pins the quantized ones.
constexpr DTypeInfo kTypes[] = {
    {DType::kF32, "f32", 1, 4, true},
    {DType::kF16, "f16", 1, 2, true},
    {DType::kQ4_0, "q4_0", 32, 18, true},
    {DType::kQ4_1, "q4_1", 32, 20, true},
    {DType::kQ5_0, "q5_0", 32, 22, true},
    {DType::kQ5_1, "q5_1", 32, 24, true},
    {DType::kQ8_0, "q8_0", 32, 34, true},
    {DType::kQ8_1, "q8_1", 32, 36, false},
    {DType::kQ2_K, "q2_k", 256, 84, false},
    {DType::kQ3_K, "q3_k", 256, 110, false},
    {DType::kQ4_K, "q4_k", 256, 144, true},
    {DType::kQ5_K, "q5_k", 256, 176, true},
    {DType::kQ6_K, "q6_k", 256, 210, true},
    {DType::kQ8_K, "q8_k", 256, 292, false},
    {DType::kIQ2_XXS, "iq2_xxs", 256, 66, false},
    {DType::kIQ2_XS, "iq2_xs", 256, 74, false},
    {DType::kIQ3_XXS, "iq3_xxs", 256, 98, false},
    {DType::kIQ1_S, "iq1_s", 256, 50, false},
    {DType::kIQ4_NL, "iq4_nl", 32, 18, false},
    {DType::kIQ3_S, "iq3_s", 256, 110, false},
    {DType::kIQ2_S, "iq2_s", 256, 82, false},
    {DType::kIQ4_XS, "iq4_xs", 256, 136, false},
    {DType::kI8, "i8", 1, 1, false},
    {DType::kI16, "i16", 1, 2, false},
    {DType::kI32, "i32", 1, 4, false},
    {DType::kI64, "i64", 1, 8, false},
    {DType::kF64, "f64", 1, 8, false},
    {DType::kIQ1_M, "iq1_m", 256, 56, false},
    {DType::kBF16, "bf16", 1, 2, true},
    {DType::kTQ1_0, "tq1_0", 256, 54, false},
    {DType::kTQ2_0, "tq2_0", 256, 66, false},
    {DType::kMXFP4, "mxfp4", 32, 17, false},
};

}  // namespace

std::optional<DTypeInfo> LookupDType(uint32_t id) {
  for (const DTypeInfo& info : kTypes) {
    if (static_cast<uint32_t>(info.type) == id) return info;
  }
  return std::nullopt;
}

const DTypeInfo& Info(DType type) {
  for (const DTypeInfo& info : kTypes) {
    if (info.type == type) return info;
  }
  CHECK(false) << "unknown DType " << static_cast<uint32_t>(type);
  return kTypes[0];
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const DTypeInfo& info : kTypes) {
    if (info.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(name[i])) != info.name[i]) same = false;
    }
    if (same) return info.type;
  }
  return std::nullopt;
}

}  // namespace vlserve
