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
    const std::vector<float> x = f32->Encode(tiles.data(), 2);
    const std::vector<float> y = bf16->Encode(tiles.data(), 2);
    ASSERT_EQ(x.size(), y.size());
    double err = 0, max = 0, sq_err = 0, sq = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err = std::max(err, double{std::fabs(x[i] - y[i])});
      max = std::max(max, double{std::fabs(x[i])});
      sq_err += double{x[i] - y[i]} * (x[i] - y[i]);
      sq += double{x[i]} * x[i];
    }
    // bf16 keeps 8 significant bits (relative rounding ≤ 2⁻⁹ per weight and activation);
    // through 2 layers + projector the relative RMS error stays ~1%.
    EXPECT_LE(err, 5e-2 * max);
    EXPECT_LE(std::sqrt(sq_err / sq), 2e-2);
    EXPECT_GT(err, 0.0);  // the matrices really were converted
  }
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
