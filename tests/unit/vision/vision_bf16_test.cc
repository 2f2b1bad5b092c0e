// The BF16 compute path of the vision tower (VisionLoadOptions::compute = kBf16): the
// same mmproj loaded both ways must give embeddings within the documented error of the
// F32 path (which vision_golden_test.cc checks against PyTorch), and must really differ.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "gguf/gguf.h"
#include "models/test_model.h"
#include "models/vision_model.h"
#include "vision_test_util.h"

namespace vlserve::models {
namespace {

std::unique_ptr<VisionModel> LoadTiny(const VisionTestOptions& vo, VisionComputeType compute) {
  auto writer = BuildTestMmproj(vo);
  EXPECT_TRUE(writer.ok()) << writer.status().ToString();
  if (!writer.ok()) return nullptr;
  auto file = gguf::File::FromBytes(writer->WriteToString(), "mmproj");
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return nullptr;
  auto model = VisionModel::Load(std::move(*file), VisionLoadOptions{compute});
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(*model) : nullptr;
}

// How far y is from the reference x: max |x - y|, max |x|, relative RMS error.
struct Diff {
  double max_err = 0, max_abs = 0, rel_rms = 0;
};
Diff Compare(const std::vector<float>& x, const std::vector<float>& y) {
  EXPECT_EQ(x.size(), y.size());
  Diff d;
  double sq_err = 0, sq = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    d.max_err = std::max(d.max_err, double{std::fabs(x[i] - y[i])});
    d.max_abs = std::max(d.max_abs, double{std::fabs(x[i])});
    sq_err += double{x[i] - y[i]} * (x[i] - y[i]);
    sq += double{x[i]} * x[i];
  }
  d.rel_rms = sq > 0 ? std::sqrt(sq_err / sq) : 0.0;
  return d;
}

TEST(VisionBf16Test, TracksF32WithinBound) {
  for (DType stored : {DType::kF32, DType::kF16}) {
    SCOPED_TRACE(std::string(Info(stored).name));
    VisionTestOptions vo;  // 64 patches per tile, attention through the GEMM form
    vo.image_size = 64;
    vo.hidden = 64;
    vo.ffn = 128;
    vo.heads = 4;
    vo.type = stored;
    auto f32 = LoadTiny(vo, VisionComputeType::kF32);
    auto bf16 = LoadTiny(vo, VisionComputeType::kBf16);
    ASSERT_TRUE(f32 && bf16);
    EXPECT_EQ(f32->compute_type(), VisionComputeType::kF32);
    EXPECT_EQ(bf16->compute_type(), VisionComputeType::kBf16);
    const std::vector<float> tiles = vision_testing::TileValues(2, vo.image_size);
    const Diff d = Compare(f32->Encode(tiles.data(), 2), bf16->Encode(tiles.data(), 2));
    // bf16 keeps 8 significant bits (relative rounding ≤ 2⁻⁹ per weight and activation);
    // through 2 layers + projector the relative RMS error stays ~1%.
    EXPECT_LE(d.max_err, 5e-2 * d.max_abs);
    EXPECT_LE(d.rel_rms, 2e-2);
    EXPECT_GT(d.max_err, 0.0);  // the matrices really were converted
  }
}

// A Q8_0 mmproj (llama.cpp's common quantized mmproj; the patch embedding, whose rows are
// not 32-blocks, stays F16) quantized from the same random weights as an F32 one: its
// matrices run the int8 kernels (activations quantized to 8-bit blocks) and must stay
// within a bound of the F32 tower.
TEST(VisionQ8Test, TracksF32WithinBound) {
  VisionTestOptions vo;
  vo.image_size = 64;
  vo.hidden = 64;
  vo.ffn = 128;
  vo.heads = 4;
  vo.type = DType::kF32;
  auto f32 = LoadTiny(vo, VisionComputeType::kF32);
  vo.type = DType::kQ8_0;
  auto q8 = LoadTiny(vo, VisionComputeType::kF32);
  ASSERT_TRUE(f32 && q8);
  const std::vector<float> tiles = vision_testing::TileValues(2, vo.image_size);
  const Diff d = Compare(f32->Encode(tiles.data(), 2), q8->Encode(tiles.data(), 2));
  // 8-bit weights and activations per 32-block (relative rounding ~2⁻⁸ of the block's
  // largest value): ~1% relative RMS through 2 layers + projector.
  EXPECT_LE(d.max_err, 5e-2 * d.max_abs);
  EXPECT_LE(d.rel_rms, 2e-2);
  EXPECT_GT(d.max_err, 0.0);  // the quantized matrices were really used
  // Callers encode a quantized tower's tiles one forward each (measured faster), a float
  // tower's several at a time. A tile's embeddings do not depend on its batch beyond
  // float rounding (the F16 patch embedding takes the dot-product kernel below 96 rows
  // and the GEMM above, which sum in different orders).
  EXPECT_EQ(q8->tiles_per_forward(), 1);
  EXPECT_EQ(f32->tiles_per_forward(), 8);
  const std::vector<float> both = q8->Encode(tiles.data(), 2);
  const std::vector<float> second = q8->Encode(tiles.data() + tiles.size() / 2, 1);
  const std::vector<float> second_of_both(both.begin() + both.size() / 2, both.end());
  const Diff batch = Compare(second_of_both, second);
  EXPECT_LE(batch.max_err, 1e-4 * batch.max_abs);
}

TEST(VisionBf16Test, ParseComputeType) {
  EXPECT_EQ(*ParseVisionComputeType("f32"), VisionComputeType::kF32);
  EXPECT_EQ(*ParseVisionComputeType("bf16"), VisionComputeType::kBf16);
  auto bad = ParseVisionComputeType("fp8");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find("use f32 or bf16"), std::string::npos);
  EXPECT_EQ(VisionComputeTypeName(VisionComputeType::kBf16), "bf16");
}

}  // namespace
}  // namespace vlserve::models
