// SmolVLM and LLaVA preprocessing against the HF processors re-implemented with PIL +
// numpy in tools/reference/media_fixtures.py (scaled-down sizes, same rules).
#include <gtest/gtest.h>

#include <cmath>

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
      static_cast<int64_t>(tiles.num_tiles) * 3 * tiles.tile_size * tiles.tile_size;
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
