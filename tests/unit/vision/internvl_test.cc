// InternVL family behaviour with hand-computed expectations: dynamic_preprocess's tile
// grids (find_closest_aspect_ratio and its area rule on ties), token limits, the tiles and
// thumbnail Preprocess cuts, the <img>...</img> prompt, and the errors a user or a file can
// cause. The PyTorch reference fixtures (internvl_golden_test.cc) check the numbers.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "media/resize.h"
#include "vision_test_util.h"

namespace vlserve::models {
namespace {

using vision_testing::MakeVlm;
using vision_testing::PlanOrDie;

// An mmproj GGUF rewritten without the tensors `drop` selects.
StatusOr<std::unique_ptr<VisionModel>> LoadWithout(
    const std::function<bool(const std::string&)>& drop) {
  VisionTestOptions vo;
  vo.projector = "internvl";
  return vision_testing::LoadRewrittenMmproj(vo, drop);
}

// Test tower: 32-pixel tiles of 4 x 4 patches, scale factor 2 -> 4 rows a tile, 1..12 tiles.
TEST(InternVlTest, TileGridsByHand) {
  auto vlm = MakeVlm("internvl");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  EXPECT_EQ(v.family().name(), "InternVL");
  EXPECT_EQ(v.tokens_per_tile(), 4);
  EXPECT_EQ(v.config().min_tiles, 1);
  EXPECT_EQ(v.config().max_tiles, 12);
  EXPECT_TRUE(v.config().layer_scale);
  EXPECT_EQ(v.config().mlp, VisionMlp::kGeluErf);
  // 200x150: 4:3 is exactly 4 x 3 (12 tiles) -> 12 + thumbnail.
  ImageLayout l = PlanOrDie(v, 200, 150);
  EXPECT_EQ(l.grid_cols, 4);
  EXPECT_EQ(l.grid_rows, 3);
  EXPECT_EQ(l.num_tiles, 13);
  EXPECT_EQ(l.tokens, 52);
  EXPECT_EQ(l.tile_width, 32);
  EXPECT_EQ(l.tile_height, 32);
  // 100x100: 1 x 1 first; 2 x 2 ties (difference 0) and wins as 10000 > 0.5 * 32² * 4 =
  // 2048; 3 x 3 wins again as 10000 > 4608 -> 9 + thumbnail.
  l = PlanOrDie(v, 100, 100);
  EXPECT_EQ(l.grid_cols, 3);
  EXPECT_EQ(l.grid_rows, 3);
  EXPECT_EQ(l.num_tiles, 10);
  // 40x40: 1600 <= 2048, so 1 x 1 stays: one tile, no thumbnail, no grid.
  l = PlanOrDie(v, 40, 40);
  EXPECT_EQ(l.grid_cols, 0);
  EXPECT_EQ(l.grid_rows, 0);
  EXPECT_EQ(l.num_tiles, 1);
  EXPECT_EQ(l.tokens, 4);
  // 64x32: 2 x 1; 4 x 2 needs 2048 > 0.5 * 32² * 8 = 4096: no -> 3 tiles.
  l = PlanOrDie(v, 64, 32);
  EXPECT_EQ(l.grid_cols, 2);
  EXPECT_EQ(l.grid_rows, 1);
  EXPECT_EQ(l.num_tiles, 3);
  // 130x65: the same tie, 8450 > 4096 -> 4 x 2.
  l = PlanOrDie(v, 130, 65);
  EXPECT_EQ(l.grid_cols, 4);
  EXPECT_EQ(l.grid_rows, 2);
  // 1000x300 (3.33): 3 x 1 (diff 1/3) ties with 6 x 2 (diff 1/3) and the larger wins.
  l = PlanOrDie(v, 1000, 300);
  EXPECT_EQ(l.grid_cols, 6);
  EXPECT_EQ(l.grid_rows, 2);
  // 2000x100 (20:1): 12 x 1, the widest grid.
  l = PlanOrDie(v, 2000, 100);
  EXPECT_EQ(l.grid_cols, 12);
  EXPECT_EQ(l.grid_rows, 1);
  // 100x2000: 1 x 12.
  l = PlanOrDie(v, 100, 2000);
  EXPECT_EQ(l.grid_cols, 1);
  EXPECT_EQ(l.grid_rows, 12);
}

TEST(InternVlTest, TokenLimitsNarrowTheTileRange) {
  auto vlm = MakeVlm("internvl");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  // max 20 tokens = 5 tiles: at most 4 grid tiles + thumbnail. 200x150 (1.33) among 1..4
  // tiles: 1 x 1 and 2 x 2 tie at 1/3 and 2 x 2 wins (30000 > 2048) -> 5 tiles, 20 tokens.
  ImageLayout l = PlanOrDie(v, 200, 150, {.max_tokens = 20});
  EXPECT_EQ(l.grid_cols, 2);
  EXPECT_EQ(l.grid_rows, 2);
  EXPECT_EQ(l.tokens, 20);
  // max 11 tokens: 2 tiles would need a thumbnail (12 tokens) -> one tile.
  l = PlanOrDie(v, 200, 150, {.max_tokens = 11});
  EXPECT_EQ(l.num_tiles, 1);
  EXPECT_EQ(l.tokens, 4);
  // min 30 tokens: at least 7 grid tiles (8 x 4 = 32); 40x40 (1.0) -> 3 x 3.
  l = PlanOrDie(v, 40, 40, {.min_tokens = 30});
  EXPECT_EQ(l.grid_cols, 3);
  EXPECT_EQ(l.grid_rows, 3);
  EXPECT_EQ(l.tokens, 40);
  // Fewer tokens than one tile.
  auto bad = v.Plan(200, 150, {.max_tokens = 3});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(bad.status().message().find("4 tokens a tile"), std::string::npos)
      << bad.status().message();
}

// Tile (r, c) is that square of the image resized to the grid (PIL bicubic); the thumbnail,
// last, is the whole image resized to one tile.
TEST(InternVlTest, PreprocessCutsTilesAndThumbnail) {
  auto vlm = MakeVlm("internvl");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  media::Image image = media::MakeImage(70, 45);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = (i * 37 + i / 211) % 251;
  const ImageLayout l = PlanOrDie(v, 70, 45);  // 1.56: 3 x 2 (1.5) -> 7 tiles
  ASSERT_EQ(l.grid_cols, 3);
  ASSERT_EQ(l.grid_rows, 2);
  media::BufferPool pool;
  media::PreprocessScratch scratch;
  media::PixelTiles tiles = v.Preprocess(l, image, &pool, &scratch);
  ASSERT_EQ(tiles.num_tiles, 7);
  ASSERT_EQ(tiles.tile_width, 32);
  const media::NormalizeParams norm{v.config().image_mean, v.config().image_std};
  const media::Image grid = media::Resize(image, 96, 64, media::ResampleFilter::kBicubic);
  std::vector<float> want(3 * 32 * 32);
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 3; ++c) {
      media::NormalizeRegion(grid, 32 * c, 32 * r, 32, 32, norm, want.data());
      EXPECT_EQ(std::vector<float>(tiles.Tile(3 * r + c), tiles.Tile(3 * r + c) + want.size()),
                want)
          << "tile " << r << ", " << c;
    }
  }
  const media::Image thumb = media::Resize(image, 32, 32, media::ResampleFilter::kBicubic);
  media::NormalizeRegion(thumb, 0, 0, 32, 32, norm, want.data());
  EXPECT_EQ(std::vector<float>(tiles.Tile(6), tiles.Tile(6) + want.size()), want);
  // ImageNet mean/std from the mmproj.
  EXPECT_FLOAT_EQ(v.config().image_mean[0], 0.485f);
  EXPECT_FLOAT_EQ(v.config().image_std[2], 0.225f);
}

TEST(InternVlTest, PromptWrapsAllTilesInOneRun) {
  auto vlm = MakeVlm("internvl");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  const ImageLayout a = PlanOrDie(v, 96, 64), b = PlanOrDie(v, 20, 20);  // 3 x 2 + 1; 1
  ASSERT_EQ(a.tokens, 28);
  ASSERT_EQ(b.tokens, 4);
  auto e = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), "A<image>B<image>C", {a, b}, {});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  std::string want = "A<img>";
  for (int i = 0; i < 28; ++i) want += "<IMG_CONTEXT>";
  want += "</img>B<img>";
  for (int i = 0; i < 4; ++i) want += "<IMG_CONTEXT>";
  want += "</img>C";
  EXPECT_EQ(vlm.tok->Decode(e->tokens, {.render_special = true}), want);
  ASSERT_EQ(e->spans.size(), 2u);
  EXPECT_EQ(e->spans[0].num_tokens, 28);
  EXPECT_EQ(e->spans[0].first_row, 0);
  EXPECT_EQ(e->spans[0].image, 0);
  EXPECT_EQ(e->spans[1].num_tokens, 4);
  EXPECT_EQ(e->spans[1].image, 1);
  EXPECT_EQ(e->tokens[e->spans[0].position], vlm.tok->FindToken("<IMG_CONTEXT>"));
  EXPECT_EQ(e->tokens[e->spans[0].position - 1], vlm.tok->FindToken("<img>"));
  EXPECT_TRUE(e->rope_positions.empty());  // 1-D positions
}

TEST(InternVlErrorsTest, VocabularyWithoutImageTokens) {
  auto vlm = MakeVlm("internvl");
  ASSERT_TRUE(vlm.ok());
  // A llama test model's (SmolLM-style) vocabulary has no <img>.
  auto llama = BuildTestModel({});
  ASSERT_TRUE(llama.ok());
  auto file = gguf::File::FromBytes(llama->WriteToString(), "text");
  ASSERT_TRUE(file.ok());
  auto config = tokenizer::TokenizerConfigFromGguf(**file);
  ASSERT_TRUE(config.ok());
  auto tok = tokenizer::Tokenizer::Create(std::move(*config));
  ASSERT_TRUE(tok.ok());
  auto e = ExpandImagePrompt(**tok, *vlm.vision, vlm.text->config(), "<image>x",
                             {PlanOrDie(*vlm.vision, 32, 32)}, {});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("'<img>'"), std::string::npos) << e.status().message();
  EXPECT_NE(e.status().message().find("InternVL"), std::string::npos);
}

TEST(InternVlErrorsTest, MissingOrForeignTensors) {
  ASSERT_TRUE(LoadWithout([](const std::string&) { return false; }).ok());
  auto no_ls = LoadWithout([](const std::string& n) { return n == "v.blk.1.ls2.weight"; });
  ASSERT_FALSE(no_ls.ok());
  EXPECT_EQ(no_ls.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_ls.status().message().find("'v.blk.1.ls2.weight' is missing"), std::string::npos)
      << no_ls.status().message();
  // The 6B tower's layers have RMSNorm (no norm biases): refused by name.
  auto rms = LoadWithout([](const std::string& n) {
    return n.find("ln1.bias") != std::string::npos || n.find("ln2.bias") != std::string::npos;
  });
  ASSERT_FALSE(rms.ok());
  EXPECT_EQ(rms.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(rms.status().message().find("InternViT-6B"), std::string::npos)
      << rms.status().message();
  auto no_cls = LoadWithout([](const std::string& n) { return n == "v.class_embd"; });
  ASSERT_FALSE(no_cls.ok());
  EXPECT_NE(no_cls.status().message().find("v.class_embd"), std::string::npos);
  auto no_norm = LoadWithout([](const std::string& n) { return n == "mm.model.mlp.0.bias"; });
  ASSERT_FALSE(no_norm.ok());
  EXPECT_NE(no_norm.status().message().find("mm.model.mlp.0.bias"), std::string::npos);
  auto no_fc = LoadWithout([](const std::string& n) { return n == "mm.model.mlp.3.weight"; });
  ASSERT_FALSE(no_fc.ok());
  EXPECT_NE(no_fc.status().message().find("mm.model.mlp.3.weight"), std::string::npos);
  EXPECT_TRUE(FindVisionFamily("internvl").ok());
}

}  // namespace
}  // namespace vlserve::models
