// Resize against Pillow's Image.resize (tests/golden/media/resize_*.npy).
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>

#include "media/resize.h"
#include "npy.h"

namespace vlserve::media {
namespace {

using testing::GoldenPath;
using testing::LoadNpy;
using testing::Npy;

Image LoadRgb(const std::string& name) {
  Npy npy;
  EXPECT_TRUE(LoadNpy(GoldenPath(name), &npy)) << name;
  Image image = MakeImage(static_cast<int>(npy.shape[1]), static_cast<int>(npy.shape[0]));
  image.pixels = npy.data;
  return image;
}

struct Case {
  const char* name;
  ResampleFilter filter;
};

TEST(ResizeTest, BitExactWithPillow) {
  const Image photo = LoadRgb("photo_rgb.npy");  // 200x150
  const Case filters[] = {{"bilinear", ResampleFilter::kBilinear},
                          {"bicubic", ResampleFilter::kBicubic},
                          {"lanczos", ResampleFilter::kLanczos}};
  const std::pair<int, int> sizes[] = {{77, 58}, {37, 150}, {200, 61}, {211, 157}, {9, 5}};
  for (const Case& c : filters) {
    for (auto [w, h] : sizes) {
      const std::string name =
          "resize_" + std::string(c.name) + "_" + std::to_string(w) + "x" + std::to_string(h);
      SCOPED_TRACE(name);
      Npy ref;
      ASSERT_TRUE(LoadNpy(GoldenPath(name + ".npy"), &ref));
      Image out = Resize(photo, w, h, c.filter);
      ASSERT_EQ(out.pixels.size(), ref.data.size());
      int max_diff = 0, mismatches = 0;
      for (size_t i = 0; i < ref.data.size(); ++i) {
        const int d = std::abs(int{out.pixels[i]} - int{ref.data[i]});
        max_diff = std::max(max_diff, d);
        mismatches += d != 0;
      }
      EXPECT_EQ(max_diff, 0) << mismatches << " samples differ";
    }
  }
}

TEST(ResizeTest, WeightsAreNormalisedFixedPoint) {
  for (auto filter : {ResampleFilter::kBilinear, ResampleFilter::kBicubic,
                      ResampleFilter::kLanczos}) {
    for (auto [in, out] : {std::pair{1000, 17}, {17, 1000}, {512, 512}, {3, 1}}) {
      ResampleWeights w = ComputeResampleWeights(in, out, filter);
      for (int i = 0; i < out; ++i) {
        ASSERT_GE(w.first[i], 0);
        ASSERT_LE(w.first[i] + w.count[i], in);
        ASSERT_LE(w.count[i], w.taps);
        const int32_t* k = &w.weights[static_cast<size_t>(i) * w.taps];
        const int64_t sum = std::accumulate(k, k + w.count[i], int64_t{0});
        EXPECT_NEAR(sum, 1 << 22, w.count[i]) << in << "->" << out << " at " << i;
      }
    }
  }
}

TEST(ResizeTest, SameSizeIsACopyAndOnePixelWorks) {
  Image src = MakeImage(5, 4);
  for (size_t i = 0; i < src.pixels.size(); ++i) src.pixels[i] = static_cast<uint8_t>(i * 7);
  EXPECT_EQ(Resize(src, 5, 4, ResampleFilter::kLanczos).pixels, src.pixels);
  Image one = Resize(src, 1, 1, ResampleFilter::kBicubic);
  EXPECT_EQ(one.pixels.size(), 3u);
  Image big = Resize(one, 7, 3, ResampleFilter::kLanczos);
  for (size_t i = 0; i < big.pixels.size(); ++i) EXPECT_EQ(big.pixels[i], one.pixels[i % 3]);
}

}  // namespace
}  // namespace vlserve::media
