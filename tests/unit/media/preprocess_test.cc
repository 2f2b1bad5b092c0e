// SmolVLM and LLaVA preprocessing against the HF processors re-implemented with PIL +
// numpy in tools/reference/media_fixtures.py (scaled-down sizes, same rules).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "media/preprocess.h"
#include "npy.h"

namespace vlserve::media {
namespace {

using testing::GoldenPath;
using testing::LoadNpy;
using testing::Npy;

Image LoadRgb(const std::string& name, bool transpose = false) {
  Npy npy;
  EXPECT_TRUE(LoadNpy(GoldenPath(name), &npy)) << name;
  const int h = static_cast<int>(npy.shape[0]), w = static_cast<int>(npy.shape[1]);
  Image image = transpose ? MakeImage(h, w) : MakeImage(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        const uint8_t v = npy.data[(static_cast<size_t>(y) * w + x) * 3 + c];
        if (transpose) {
          image.pixels[(static_cast<size_t>(x) * h + y) * 3 + c] = v;
        } else {
          image.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = v;
        }
      }
    }
  }
  return image;
}

// Max |ours - reference| over all tiles; shape must be [tiles, 3, s, s] or [3, s, s].
double MaxDiff(const PixelTiles& tiles, const std::string& ref_name) {
  Npy ref;
  EXPECT_TRUE(LoadNpy(GoldenPath(ref_name), &ref)) << ref_name;
  const int64_t count =
      static_cast<int64_t>(tiles.num_tiles) * static_cast<int64_t>(tiles.tile_floats());
  EXPECT_EQ(ref.count(), count) << ref_name;
  if (ref.count() != count) return 1e9;
  double max_diff = 0;
  for (int64_t i = 0; i < count; ++i) {
    max_diff = std::max(max_diff, std::fabs(double{tiles.pixels.data()[i]} - ref.f32()[i]));
  }
  return max_diff;
}

TEST(SmolVlmTest, SizesFollowIdefics3Processor) {
  SmolVlmPreprocessConfig config;  // longest_edge 2048, tiles of 512
  SmolVlmSizes s = ComputeSmolVlmSizes(1920, 1080, config);
  EXPECT_EQ(s.resized_width, 2048);
  EXPECT_EQ(s.resized_height, 1152);
  EXPECT_EQ(s.encoder_width, 2048);
  EXPECT_EQ(s.encoder_height, 1536);
  s = ComputeSmolVlmSizes(333, 1000, config);  // portrait: width int(2048*0.333)=681 -> 682
  EXPECT_EQ(s.resized_height, 2048);
  EXPECT_EQ(s.resized_width, 682);
  EXPECT_EQ(s.encoder_height, 2048);
  EXPECT_EQ(s.encoder_width, 1024);
  config.longest_edge = 512;
  s = ComputeSmolVlmSizes(1920, 1080, config);
  EXPECT_EQ(s.resized_width, 512);
  EXPECT_EQ(s.resized_height, 288);
  EXPECT_EQ(s.encoder_width, 512);
  EXPECT_EQ(s.encoder_height, 512);
}

struct SmolCase {
  const char* ref;
  bool portrait;
  int longest_edge, tile, rows, cols;
};

TEST(SmolVlmTest, TilesMatchReference) {
  BufferPool pool;
  PreprocessScratch scratch;
  const SmolCase cases[] = {{"smolvlm_128_32.npy", false, 128, 32, 3, 4},
                            {"smolvlm_portrait_96_32.npy", true, 96, 32, 3, 3},
                            {"smolvlm_single_48_48.npy", false, 48, 48, 0, 0}};
  for (const SmolCase& c : cases) {
    SCOPED_TRACE(c.ref);
    const Image photo = LoadRgb("photo_rgb.npy", c.portrait);
    SmolVlmPreprocessConfig config;
    config.longest_edge = c.longest_edge;
    config.tile_size = c.tile;
    PixelTiles tiles = PreprocessSmolVlm(photo, config, &pool, &scratch);
    EXPECT_EQ(tiles.grid_rows, c.rows);
    EXPECT_EQ(tiles.grid_cols, c.cols);
    EXPECT_EQ(tiles.num_tiles, c.rows * c.cols + 1);
    // Resizes are bit-exact and the normalisation table reproduces HF's float32 math.
    EXPECT_LE(MaxDiff(tiles, c.ref), 1e-6);
  }
}

TEST(LlavaTest, MatchesReference) {
  BufferPool pool;
  PreprocessScratch scratch;
  for (auto [ref, portrait, size, pad] :
       {std::tuple{"llava_64.npy", false, 64, true}, {"llava_portrait_64.npy", true, 64, true},
        {"llava_nopad_48.npy", false, 48, false}}) {
    SCOPED_TRACE(ref);
    LlavaPreprocessConfig config;
    config.image_size = size;
    config.pad_to_square = pad;
    PixelTiles tiles = PreprocessLlava(LoadRgb("photo_rgb.npy", portrait), config, &pool, &scratch);
    EXPECT_EQ(tiles.num_tiles, 1);
    EXPECT_LE(MaxDiff(tiles, ref), 1e-6);
  }
}

// NormalizeTile on every ISA against HF's arithmetic written out per sample (float64
// multiply by 1/255, cast to float32, float32 subtract and divide), compared bit for bit:
// SmolVLM's 0.5/0.5 (where the AVX-512 path multiplies by 1/std) and CLIP's mean/std
// (where it must divide), widths that are not a multiple of 16, tiles hanging over the
// image edge (zero padding).
TEST(NormalizeTest, EveryIsaIsBitExact) {
  Image src = MakeImage(53, 37);
  for (size_t i = 0; i < src.pixels.size(); ++i) {
    src.pixels[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  }
  for (int v = 0; v < 256; ++v) src.pixels[v * 3 % src.pixels.size()] = static_cast<uint8_t>(v);
  const NormalizeParams params[] = {NormalizeParams{}, LlavaPreprocessConfig{}.norm};
  const int origins[][3] = {{0, 0, 32}, {5, 3, 31}, {40, 30, 16}, {0, 0, 53}};  // x0, y0, tile
  const kernels::Isa saved = kernels::ActiveIsa();
  for (auto isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (!kernels::IsaAvailable(isa)) continue;
    kernels::ForceIsa(isa);
    for (const NormalizeParams& norm : params) {
      for (const auto& o : origins) {
        const int x0 = o[0], y0 = o[1], tile = o[2];
        std::vector<float> got(3 * tile * tile, -7.0f);
        NormalizeTile(src, x0, y0, tile, norm, got.data());
        int mismatches = 0;
        for (int c = 0; c < 3; ++c) {
          for (int y = 0; y < tile; ++y) {
            for (int x = 0; x < tile; ++x) {
              float want = 0.0f;
              if (x0 + x < src.width && y0 + y < src.height) {
                const int p = src.Row(y0 + y)[3 * (x0 + x) + c];
                want = (static_cast<float>(p * (1.0 / 255.0)) - norm.mean[c]) / norm.std[c];
              }
              const float g = got[(static_cast<size_t>(c) * tile + y) * tile + x];
              mismatches += std::memcmp(&g, &want, sizeof(float)) != 0;
            }
          }
        }
        EXPECT_EQ(mismatches, 0) << kernels::IsaName(isa) << " tile " << tile << " at " << x0
                                 << "," << y0 << " mean " << norm.mean[0];
      }
    }
  }
  kernels::ForceIsa(saved);
}

TEST(BufferPoolTest, ReusesReturnedBuffers) {
  BufferPool pool(2);
  const float* first;
  {
    BufferPool::Lease a = pool.Acquire(1000);
    first = a.data();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  }
  EXPECT_EQ(pool.idle(), 1u);
  BufferPool::Lease b = pool.Acquire(500);  // smaller: same storage
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(b.size(), 500u);
  EXPECT_EQ(pool.idle(), 0u);
}

}  // namespace
}  // namespace vlserve::media
