// Vision model behaviour that needs no reference: batching, prompt layout, and the errors
// a user can cause (wrong mmproj, mismatched widths, image/placeholder count).
#include <gtest/gtest.h>

#include <cmath>

#include "vision_test_util.h"

namespace vlserve::models {
namespace {

using vision_testing::MakeVlm;
using vision_testing::GridLayout;
using vision_testing::TileValues;

TEST(VisionModelTest, BatchedTilesEqualOneAtATime) {
  for (const char* projector : {"idefics3", "mlp"}) {
    SCOPED_TRACE(projector);
    auto vlm = MakeVlm(projector);
    ASSERT_TRUE(vlm.ok());
    const VisionModel& v = *vlm.vision;
    const int64_t tile_floats = 3 * v.config().image_size * v.config().image_size;
    const int64_t rows = v.tokens_per_tile() * v.output_width();
    const std::vector<float> tiles = TileValues(3, v.config().image_size);
    const std::vector<float> batched = v.Encode(tiles.data(), 3);
    ASSERT_EQ(static_cast<int64_t>(batched.size()), 3 * rows);
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> one = v.Encode(tiles.data() + t * tile_floats, 1);
      float err = 0;
      for (int64_t i = 0; i < rows; ++i)
        err = std::max(err, std::fabs(one[i] - batched[t * rows + i]));
      EXPECT_LE(err, 1e-5) << "tile " << t;
    }
    // Different tiles give different embeddings (the tower is not ignoring its input).
    EXPECT_NE(std::vector<float>(batched.begin(), batched.begin() + rows),
              std::vector<float>(batched.begin() + rows, batched.begin() + 2 * rows));
  }
}

// F16 / BF16 towers (what real mmproj files ship) stay close to the F32 one; the F32 one
// is checked against the PyTorch reference in vision_golden_test.cc.
TEST(VisionModelTest, HalfPrecisionTowersTrackF32) {
  for (DType type : {DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(std::string(Info(type).name));
    VisionTestOptions half;
    half.type = type;
    auto a = MakeVlm("idefics3");
    auto b = MakeVlm("idefics3", half);
    ASSERT_TRUE(a.ok() && b.ok());
    const std::vector<float> tiles = TileValues(2, a.vision->config().image_size);
    const std::vector<float> x = a.vision->Encode(tiles.data(), 2);
    const std::vector<float> y = b.vision->Encode(tiles.data(), 2);
    float err = 0, max = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err = std::max(err, std::fabs(x[i] - y[i]));
      max = std::max(max, std::fabs(x[i]));
    }
    EXPECT_LE(err, (type == DType::kF16 ? 5e-3 : 5e-2) * max);
    EXPECT_GT(err, 0.0f);  // the weights really were rounded
  }
}

TEST(VisionModelTest, ConfigFromMetadata) {
  auto vlm = MakeVlm("idefics3");
  ASSERT_TRUE(vlm.ok());
  const VisionConfig& c = vlm.vision->config();
  EXPECT_EQ(c.projector_type, "idefics3");
  EXPECT_EQ(c.patches_per_side, 4);
  EXPECT_FALSE(c.class_token);
  EXPECT_TRUE(c.post_ln);
  EXPECT_TRUE(c.use_gelu);
  EXPECT_EQ(vlm.vision->tokens_per_tile(), 4);  // (4/2)²
  EXPECT_EQ(vlm.vision->output_width(), 64);
  auto mlp = MakeVlm("mlp");
  ASSERT_TRUE(mlp.ok());
  EXPECT_TRUE(mlp.vision->config().class_token);
  EXPECT_TRUE(mlp.vision->config().pre_ln);
  EXPECT_FALSE(mlp.vision->config().post_ln);  // present in the file, not used by LLaVA
  EXPECT_EQ(mlp.vision->tokens_per_tile(), 16);
  EXPECT_NEAR(mlp.vision->config().image_mean[0], 0.48145466f, 1e-7);
}

TEST(VisionModelTest, SmolVlmPromptLayout) {
  auto vlm = MakeVlm("idefics3");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  auto split = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), "A<image>B",
                                 {GridLayout(v, 2, 1, 2)}, {});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  const std::string img2 = "<image><image>";
  EXPECT_EQ(vlm.tok->Decode(split->tokens, {.render_special = true}),
            "A<fake_token_around_image><row_1_col_1>" + img2 + "\n" +
                "<fake_token_around_image><row_2_col_1>" + img2 + "\n" +
                "\n<fake_token_around_image><global-img>" + img2 + "<fake_token_around_image>B");
  ASSERT_EQ(split->spans.size(), 3u);
  EXPECT_EQ(split->spans[2].first_row, 4);
  EXPECT_TRUE(split->rope_positions.empty());  // a 1-D family: positions are indices
  auto single = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), "<image>x",
                                  {GridLayout(v, 0, 0, 2)}, {});
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(vlm.tok->Decode(single->tokens, {.render_special = true}),
            "<fake_token_around_image><global-img>" + img2 + "<fake_token_around_image>x");
  ASSERT_EQ(single->spans.size(), 1u);
  EXPECT_EQ(single->spans[0].position, 2);
}

// Decoded image -> the family's plan and preprocessing -> Encode -> prompt spans: the spans
// cover exactly the rows Encode produced, one span per tile (SmolVLM) or per image.
TEST(VisionModelTest, PreprocessEncodeAndSpansAgree) {
  media::Image image = media::MakeImage(100, 70);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = (i * 37) % 251;
  for (const char* projector : {"idefics3", "mlp", "qwen2vl_merger"}) {
    SCOPED_TRACE(projector);
    auto vlm = MakeVlm(projector);
    ASSERT_TRUE(vlm.ok());
    const VisionModel& v = *vlm.vision;
    media::BufferPool pool;
    media::PreprocessScratch scratch;
    auto layout = v.Plan(image.width, image.height);
    ASSERT_TRUE(layout.ok()) << layout.status().ToString();
    media::PixelTiles tiles = v.Preprocess(*layout, image, &pool, &scratch);
    ASSERT_EQ(tiles.tile_width, layout->tile_width);
    ASSERT_EQ(tiles.tile_height, layout->tile_height);
    ASSERT_EQ(tiles.num_tiles, layout->num_tiles);
    const std::string p(projector);
    if (p == "idefics3") {
      // 100x70 -> longest edge 4 x 32 = 128 -> 128x90 -> rounded up to tiles: 4 x 3 + global.
      EXPECT_EQ(layout->grid_cols, 4);
      EXPECT_EQ(layout->grid_rows, 3);
    } else if (p == "mlp") {
      EXPECT_EQ(layout->num_tiles, 1);
    } else {
      // smart_resize(70, 100, 28): round(2.5) = 2 (half to even) -> 56, round(3.57) = 4 ->
      // 112; 56*112 = 6272 in [3136, 12845056]; 2x4 merged tokens.
      EXPECT_EQ(layout->tile_height, 56);
      EXPECT_EQ(layout->tile_width, 112);
      EXPECT_EQ(layout->merged_rows, 2);
      EXPECT_EQ(layout->merged_cols, 4);
      EXPECT_EQ(layout->tokens, 8);
    }
    std::vector<float> embd(layout->tokens * v.output_width());
    VisionScratch vs;
    v.EncodeImage(tiles.Tile(0), *layout, embd.data(), vs);
    const std::string prompt = p == "qwen2vl_merger" ? "<image>describe" : "<image>describe";
    auto e = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), prompt, {*layout}, {});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    int64_t rows = 0;
    for (const PromptImageSpan& s : e->spans) {
      EXPECT_EQ(s.first_row, rows);
      rows += s.num_tokens;
    }
    EXPECT_EQ(rows * v.output_width(), static_cast<int64_t>(embd.size()));
    EXPECT_EQ(e->spans.size(), p == "idefics3" ? 13u : 1u);
    EXPECT_EQ(e->rope_positions.empty(), p != "qwen2vl_merger");
  }
}

TEST(VisionErrorsTest, MoreImagesThanPlaceholders) {
  auto vlm = MakeVlm("idefics3");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  auto r = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), "one <image> only",
                             {GridLayout(v, 0, 0), GridLayout(v, 0, 0)}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("1 image placeholder"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("2 image(s)"), std::string::npos);
  // A grid larger than the vocabulary's <row_r_col_c> tokens (6 x 6 in test models).
  auto big = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), "<image>",
                               {GridLayout(v, 7, 1)}, {});
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("<row_7_col_1>"), std::string::npos);
}

TEST(VisionErrorsTest, EmbeddingWidthMismatch) {
  VisionTestOptions vo;
  vo.projector = "mlp";
  vo.text_hidden = 32;  // the text model is 64 wide
  auto w = BuildTestMmproj(vo);
  ASSERT_TRUE(w.ok());
  auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
  ASSERT_TRUE(f.ok());
  auto v = VisionModel::Load(std::move(*f));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  TextConfig text;
  text.hidden = 64;
  Status s = (*v)->CheckCompatible(text);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("32-wide"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("64"), std::string::npos);
  text.hidden = 32;
  EXPECT_TRUE((*v)->CheckCompatible(text).ok());
}

TEST(VisionErrorsTest, UnsupportedProjectorListsSupported) {
  auto w = BuildTestMmproj({});
  ASSERT_TRUE(w.ok());
  w->Set("clip.projector_type", gguf::Value::String("resampler"));
  auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
  ASSERT_TRUE(f.ok());
  auto v = VisionModel::Load(std::move(*f));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(v.status().message().find("'resampler' is not supported; supported: idefics3 "
                                      "(SmolVLM), mlp (LLaVA-1.5), qwen2vl_merger (Qwen2-VL)"),
            std::string::npos)
      << v.status().message();
}

TEST(VisionErrorsTest, TextModelPassedAsMmproj) {
  auto w = BuildTestModel({});
  ASSERT_TRUE(w.ok());
  auto f = gguf::File::FromBytes(w->WriteToString(), "text");
  ASSERT_TRUE(f.ok());
  auto v = VisionModel::Load(std::move(*f));
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("'clip'"), std::string::npos) << v.status().message();
}

TEST(VisionErrorsTest, MultiLayerFeaturesAreRefused) {
  auto w = BuildTestMmproj({});
  ASSERT_TRUE(w.ok());
  w->Set("clip.vision.feature_layer", gguf::Value::I32Array({1, 2}));
  auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
  ASSERT_TRUE(f.ok());
  auto v = VisionModel::Load(std::move(*f));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(v.status().message().find("clip.vision.feature_layer"), std::string::npos)
      << v.status().message();
}

// One feature layer F (llama.cpp's LLaVA converter): the tower runs F layers. A 2-layer
// LLaVA-style file read at feature layer 1 encodes like the same file cut to 1 layer.
TEST(VisionModelTest, SingleFeatureLayerRunsThatManyLayers) {
  VisionTestOptions vo;
  vo.projector = "mlp";
  auto load = [&](int32_t feature_layer, uint32_t blocks) {
    auto w = BuildTestMmproj(vo);
    EXPECT_TRUE(w.ok());
    w->Set("clip.vision.feature_layer", gguf::Value::I32Array({feature_layer}));
    w->Set("clip.vision.block_count", gguf::Value::U32(blocks));
    auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
    EXPECT_TRUE(f.ok());
    return VisionModel::Load(std::move(*f));
  };
  auto at1 = load(1, 2), cut = load(1, 1), all = load(2, 2), bad = load(3, 2);
  ASSERT_TRUE(at1.ok() && cut.ok() && all.ok()) << at1.status().ToString();
  EXPECT_EQ((*at1)->config().num_layers, 1);
  const std::vector<float> tiles = TileValues(1, vo.image_size);
  EXPECT_EQ((*at1)->Encode(tiles.data(), 1), (*cut)->Encode(tiles.data(), 1));
  EXPECT_NE((*at1)->Encode(tiles.data(), 1), (*all)->Encode(tiles.data(), 1));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(VisionErrorsTest, MissingOrMisshapenTensor) {
  VisionTestOptions vo;
  vo.layers = 2;
  auto w = BuildTestMmproj(vo);
  ASSERT_TRUE(w.ok());
  w->Set("clip.vision.block_count", gguf::Value::U32(3));  // no v.blk.2.*
  auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
  ASSERT_TRUE(f.ok());
  auto v = VisionModel::Load(std::move(*f));
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("v.blk.2.ln1.weight"), std::string::npos)
      << v.status().message();
}

}  // namespace
}  // namespace vlserve::models
