// Resize against Pillow's Image.resize (tests/golden/media/resize_*.npy).
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/kernels.h"
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

// Every resize code path this CPU can run: SSE4.1 ("scalar"), AVX2, AVX-512.
std::vector<kernels::Isa> AvailableIsas() {
  std::vector<kernels::Isa> isas;
  for (auto isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (kernels::IsaAvailable(isa)) isas.push_back(isa);
  }
  return isas;
}

// Runs each test body once per ISA and restores the process-wide choice afterwards.
class ResizeIsaTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = kernels::ActiveIsa(); }
  void TearDown() override { kernels::ForceIsa(saved_); }
  kernels::Isa saved_ = kernels::Isa::kScalar;
};

// Resizes the 200x150 photo fixture to 5 sizes with 3 filters; every sample must equal
// Pillow's (tests/golden/media/resize_*.npy).
void ExpectPillowFixtures() {
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
      const Image out = Resize(photo, w, h, c.filter);
      ASSERT_EQ(out.pixels.size(), ref.data.size());
      int mismatches = 0;
      for (size_t i = 0; i < ref.data.size(); ++i) mismatches += out.pixels[i] != ref.data[i];
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST_F(ResizeIsaTest, BitExactWithPillowOnEveryIsa) {
  for (kernels::Isa isa : AvailableIsas()) {
    SCOPED_TRACE(std::string(kernels::IsaName(isa)));
    kernels::ForceIsa(isa);
    ExpectPillowFixtures();
  }
}

// Pillow's two passes written out plainly (int64 sums, clip after each pass) from the
// fixed-point weights, which BitExactWithPillowOnEveryIsa checks against Pillow itself.
std::vector<uint8_t> ReferenceResize(const Image& src, int out_w, int out_h,
                                     ResampleFilter filter) {
  auto clip = [](int64_t s) { return static_cast<uint8_t>(std::clamp<int64_t>(s >> 22, 0, 255)); };
  std::vector<uint8_t> mid = src.pixels;
  int w = src.width;
  if (out_w != src.width) {
    const ResampleWeights k = ComputeResampleWeights(src.width, out_w, filter);
    mid.assign(static_cast<size_t>(out_w) * src.height * 3, 0);
    for (int y = 0; y < src.height; ++y) {
      for (int x = 0; x < out_w; ++x) {
        for (int c = 0; c < 3; ++c) {
          int64_t s = 1 << 21;
          for (int t = 0; t < k.count[x]; ++t) {
            s += int64_t{src.pixels[(static_cast<size_t>(y) * src.width + k.first[x] + t) * 3 + c]} *
                 k.weights[static_cast<size_t>(x) * k.taps + t];
          }
          mid[(static_cast<size_t>(y) * out_w + x) * 3 + c] = clip(s);
        }
      }
    }
    w = out_w;
  }
  if (out_h == src.height) return mid;
  const ResampleWeights k = ComputeResampleWeights(src.height, out_h, filter);
  std::vector<uint8_t> out(static_cast<size_t>(w) * out_h * 3);
  const size_t row = static_cast<size_t>(w) * 3;
  for (int y = 0; y < out_h; ++y) {
    for (size_t i = 0; i < row; ++i) {
      int64_t s = 1 << 21;
      for (int t = 0; t < k.count[y]; ++t) {
        s += int64_t{mid[(k.first[y] + t) * row + i]} * k.weights[static_cast<size_t>(y) * k.taps + t];
      }
      out[y * row + i] = clip(s);
    }
  }
  return out;
}

// Random images (including hard 0/255 edges that make Lanczos/bicubic overshoot and clip)
// at sizes that hit every wide-path corner: row tails that are not a multiple of the
// vector width, fewer output pixels than one group, downscales beyond the vpermb span
// (> 5x, gather path), integer 3x upscales (a weight of exactly 1.0), one-axis resizes.
TEST_F(ResizeIsaTest, WidePathsMatchPlainReference) {
  std::mt19937 rng(7);
  const std::pair<int, int> in_sizes[] = {{203, 61}, {97, 130}, {31, 7}, {640, 9}};
  const std::pair<int, int> out_sizes[] = {{1, 1},   {3, 2},   {5, 200}, {609, 183},
                                           {37, 61}, {29, 13}, {93, 41}, {203, 17}};
  for (auto [iw, ih] : in_sizes) {
    Image src = MakeImage(iw, ih);
    for (size_t i = 0; i < src.pixels.size(); ++i) {
      const int x = static_cast<int>(i / 3 % iw);
      src.pixels[i] = (x / 5 + i / (3 * iw)) % 3 == 0 ? static_cast<uint8_t>(rng() % 256)
                                                      : ((x / 3) % 2 ? 255 : 0);
    }
    for (auto [ow, oh] : out_sizes) {
      for (auto filter : {ResampleFilter::kBilinear, ResampleFilter::kBicubic,
                          ResampleFilter::kLanczos}) {
        const std::vector<uint8_t> want = ReferenceResize(src, ow, oh, filter);
        for (kernels::Isa isa : AvailableIsas()) {
          kernels::ForceIsa(isa);
          const Image got = Resize(src, ow, oh, filter);
          ASSERT_EQ(got.pixels, want) << kernels::IsaName(isa) << " " << iw << "x" << ih
                                      << " -> " << ow << "x" << oh << " filter "
                                      << static_cast<int>(filter);
        }
      }
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

// Weight tables grow with the source side (taps ~ in/out per output pixel); the cache
// kept 32 of them whatever their size (~240 MB after one 10,000,000-wide strip). Now it is
// bounded by bytes: many distinct wide resizes leave at most 8 MiB behind.
TEST(ResizeTest, WeightCacheIsBoundedInBytes) {
  const Image src = MakeImage(20000, 2);
  size_t last_32 = 0;  // what the old 32-entry cache would have kept
  for (int out = 1; out <= 40; ++out) {
    const Image dst = Resize(src, out, 2, ResampleFilter::kBicubic);
    ASSERT_EQ(dst.width, out);
    const ResampleWeights w = ComputeResampleWeights(20000, out, ResampleFilter::kBicubic);
    if (out > 8) last_32 += w.weights.size() * sizeof(int32_t);
    EXPECT_LE(ResampleWeightCacheBytes(), size_t{8} << 20);
  }
  EXPECT_GT(last_32, size_t{9} << 20);  // the case is big enough to matter
  EXPECT_GT(ResampleWeightCacheBytes(), 0u);
}

}  // namespace
}  // namespace vlserve::media
