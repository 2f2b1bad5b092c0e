// GLM-4.1V family (families/glm4v.cc) with independent expectations: smart_resize layouts
// from transformers' glm4v smart_resize (values printed by that function, transcribed in
// the comment of each case), the position-table resampling against torch grid_sample
// constants, the merger against a direct transcription of Glm4vVisionModel.downsample +
// Glm4vVisionPatchMerger, the prompt wrapper, and the errors a bad file gives. The
// whole-model numbers are checked against PyTorch by the golden test.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "vision_test_util.h"

namespace vlserve::models {
namespace {

std::unique_ptr<VisionModel> LoadTiny(VisionTestOptions vo = TinyVisionTestOptions("glm4v")) {
  return vision_testing::LoadMmproj(vo);
}

// The tiny mmproj rewritten: tensors `drop` selects left out, `extra` added.
StatusOr<std::unique_ptr<VisionModel>> LoadRewritten(
    const std::function<bool(const std::string&)>& drop,
    const std::function<Status(gguf::Writer&)>& extra = nullptr) {
  return vision_testing::LoadRewrittenMmproj(TinyVisionTestOptions("glm4v"), drop, extra);
}

struct Size {
  int w, h;
  ImageTokenLimits limits;
  int want_h, want_w;
};

TEST(Glm4vTest, SmartResizeMatchesTransformers) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->family().name(), "GLM-4.1V");
  EXPECT_EQ(v->family().placeholder(), "<|image|>");
  EXPECT_EQ(v->config().pos_resize_side, 4);
  EXPECT_TRUE(v->config().fused_qkv && v->config().embd_norm && v->config().patch_pair);
  // transformers.models.glm4v.image_processing_glm4v.smart_resize(2, h, w, factor=28,
  // min_pixels=112*112, max_pixels=28*28*15000) -> (h, w); the limits' cases pass
  // max_pixels = 2 * 100 * 784 and min_pixels = 2 * 64 * 784.
  const Size cases[] = {
      {1024, 768, {}, 756, 1036},    // round(27.4) = 27, round(36.6) = 37
      {112, 84, {}, 84, 112},        // 2 * 84 * 112 >= 12544: kept
      {10, 100, {}, 280, 28},        // a side < 28: scaled by 2.8 first (int(28.000001))
      {20, 20, {}, 84, 84},          // -> 28x28, then 2 * 784 < 12544: beta = sqrt(8)
      {4000, 3000, {}, 2100, 2800},  // 2 * 2996 * 4004 > max: beta = 1.4286 -> 75 x 100
      {1024, 768, {.max_tokens = 100}, 224, 308},
      {200, 150, {.min_tokens = 64}, 196, 280},
  };
  for (const Size& c : cases) {
    auto l = v->Plan(c.w, c.h, c.limits);
    ASSERT_TRUE(l.ok()) << c.w << "x" << c.h << ": " << l.status().ToString();
    EXPECT_EQ(l->tile_height, c.want_h) << c.w << "x" << c.h;
    EXPECT_EQ(l->tile_width, c.want_w) << c.w << "x" << c.h;
    EXPECT_EQ(l->merged_rows, c.want_h / 28);
    EXPECT_EQ(l->merged_cols, c.want_w / 28);
    EXPECT_EQ(l->tokens, int64_t{c.want_h / 28} * (c.want_w / 28));
    EXPECT_EQ(l->num_tiles, 1);
  }
  // 3000x9 scales to 9333x28: sides more than 200x apart are refused, as HF does.
  auto bad = v->Plan(3000, 9);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("200x"), std::string::npos) << bad.status().message();
}

// The 4 x 4 x 2 table of gs.py below, resampled to 6 x 8, 3 x 5 and 4 x 4 (identity) by
//   F.grid_sample(table.view(4, 4, 2).permute(2, 0, 1)[None], grid, mode="bicubic",
//                 align_corners=False, padding_mode="border")
// at the normalized centres ((c + 0.5) / W * 2 - 1, (r + 0.5) / H * 2 - 1), as HF's
// Glm4vVisionEmbeddings does (torch 1.13, /usr/bin/python3).
//   table[i][c] = 0.3 * ((7i + 3c) % 11) - 1.2 + 0.05 i
TEST(Glm4vTest, PositionTableResizeMatchesTorchGridSample) {
  constexpr int kSide = 4, kD = 2;
  std::vector<float> table(kSide * kSide * kD);
  for (int i = 0; i < kSide * kSide; ++i) {
    for (int c = 0; c < kD; ++c) {
      table[i * kD + c] = static_cast<float>(0.3 * ((i * 7 + c * 3) % 11) - 1.2 + 0.05 * i);
    }
  }
  struct Case {
    int rows, cols;
    std::vector<float> want;
  };
  const Case cases[] = {
      {6, 8, {-1.630582f, -0.730582f, -0.771101f, 0.118829f, 0.662339f,  1.532127f, 0.908713f,
              2.009772f,  -0.219477f, 1.310553f,  0.026898f, 0.366111f,  1.460337f, -0.338593f,
              2.319818f,  -0.775113f, -0.098230f, 0.769141f, -0.063391f, 0.986462f, -0.016052f,
              1.362512f,  0.298401f,  1.015515f,  0.692468f, 0.125354f,  1.120520f, -0.108044f,
              1.337048f,  0.437195f,  1.474609f,  0.757239f, 0.847823f,  1.803818f, 0.480158f,
              1.348633f,  -0.149052f, 0.606600f,  0.233480f, -0.142901f, 1.440254f, -0.514454f,
              1.627845f,  -0.036809f, 0.708297f,  1.048823f, 0.164356f,  1.703293f, -0.653291f,
              0.575017f,  0.011249f,  0.105152f,  1.117021f, -0.693098f, 1.491496f, -0.410394f,
              0.947174f,  0.811597f,  0.178651f,  1.205095f, -0.417915f, 0.571857f, -0.786938f,
              0.202178f,  0.292761f,  1.399414f,  0.554797f, 0.989124f,  0.984021f, 0.303308f,
              1.356482f,  0.183508f,  1.484680f,  0.693591f, 1.137683f,  1.066052f, 0.495374f,
              1.113391f,  0.106836f,  1.148230f,  1.825112f, 2.694900f,  1.262507f, 2.363564f,
              0.305630f,  1.835659f,  0.678091f,  0.891218f, 2.192389f,  0.015201f, 2.670034f,
              0.387662f,  1.869814f,  1.821101f,  1.402322f, 2.680581f}},
      {3, 5, {-0.988754f, -0.092234f, 0.345231f, 1.351387f,  0.413784f, 1.297552f,
              0.509063f,  0.172872f,  1.887836f, -0.178004f, 0.119625f, 1.138657f,
              0.455375f,  -0.091443f, 1.083691f, -0.188379f, 0.797960f, 0.628733f,
              -0.398032f, 0.930375f,  1.228004f, 2.160257f,  0.565519f, 1.329499f,
              1.430617f,  0.371242f,  2.048050f, 0.704769f,  0.970532f, 2.038754f}},
      {4, 4, {}},  // the table itself
  };
  for (const Case& c : cases) {
    const std::vector<float>& want = c.want.empty() ? table : c.want;
    std::vector<float> got(c.rows * c.cols * kD, -99.0f);
    ResizePositionTable(table.data(), kSide, kD, c.rows, c.cols, got.data());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], 2e-6f) << c.rows << "x" << c.cols << " value " << i;
    }
  }
}

// The projector on the tower's own features, against Glm4vVisionModel's tail written out
// directly: downsample = Conv2d(d, D, 2, 2) over each 2x2 patch block, merger.proj,
// LayerNorm (eps 1e-5), exact GELU, down(silu(gate(x)) * up(x)).
TEST(Glm4vTest, MergerMatchesDirectConvolution) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  const VisionConfig& c = v->config();
  const int64_t rows = 4, cols = 6, d = c.hidden, out = v->output_width();
  std::vector<float> tile = vision_testing::TileValues(1, 84);  // [3, 84, 84]; crop 56 x 84
  std::vector<float> pixels(3 * 56 * 84);
  for (int ch = 0; ch < 3; ++ch) {
    for (int y = 0; y < 56; ++y) {
      for (int x = 0; x < 84; ++x) pixels[(ch * 56 + y) * 84 + x] = tile[(ch * 84 + y) * 84 + x];
    }
  }
  VisionScratch scratch;
  std::vector<float> got(6 * out);
  v->EncodeTiles(pixels.data(), 1, 56, 84, got.data(), scratch);
  v->RunTower(pixels.data(), 1, 56, 84, scratch, nullptr);
  const std::vector<float> feat(scratch.features.data(), scratch.features.data() + rows * cols * d);

  const gguf::File& f = v->file();
  auto tensor = [&](const std::string& name) {
    const gguf::TensorInfo* t = f.FindTensor(name);
    EXPECT_NE(t, nullptr) << name;
    int64_t n = 1;
    for (int64_t s : t->shape) n *= s;
    std::vector<float> vals(n);
    kernels::Dequantize(t->type, t->data, vals.data(), n);
    return vals;
  };
  // PyTorch [out, in, ky, kx] = GGUF ne [kx, ky, in, out].
  const auto ds = tensor("mm.patch_merger.weight"), ds_b = tensor("mm.patch_merger.bias");
  const auto fc = tensor("mm.model.fc.weight"), nw = tensor("mm.post_norm.weight"),
             nb = tensor("mm.post_norm.bias");
  const auto gate = tensor("mm.gate.weight"), up = tensor("mm.up.weight"),
             down = tensor("mm.down.weight");
  const int64_t inter = static_cast<int64_t>(up.size()) / out;
  auto linear = [](const std::vector<float>& w, const std::vector<double>& x, int64_t n_out) {
    std::vector<double> y(n_out, 0.0);
    const int64_t n_in = static_cast<int64_t>(x.size());
    for (int64_t o = 0; o < n_out; ++o) {
      for (int64_t i = 0; i < n_in; ++i) y[o] += w[o * n_in + i] * x[i];
    }
    return y;
  };
  for (int64_t ty = 0; ty < rows / 2; ++ty) {
    for (int64_t tx = 0; tx < cols / 2; ++tx) {
      std::vector<double> h(out);
      for (int64_t o = 0; o < out; ++o) {
        double acc = ds_b[o];
        for (int64_t ch = 0; ch < d; ++ch) {
          for (int64_t ky = 0; ky < 2; ++ky) {
            for (int64_t kx = 0; kx < 2; ++kx) {
              const int64_t patch = (2 * ty + ky) * cols + 2 * tx + kx;
              acc += ds[((o * d + ch) * 2 + ky) * 2 + kx] * feat[patch * d + ch];
            }
          }
        }
        h[o] = acc;
      }
      std::vector<double> p = linear(fc, h, out);
      double mean = 0, var = 0;
      for (double x : p) mean += x / out;
      for (double x : p) var += (x - mean) * (x - mean) / out;
      for (int64_t i = 0; i < out; ++i) {
        const double n = (p[i] - mean) / std::sqrt(var + 1e-5) * nw[i] + nb[i];
        p[i] = 0.5 * n * (1 + std::erf(n / std::sqrt(2.0)));
      }
      const std::vector<double> g = linear(gate, p, inter), u = linear(up, p, inter);
      std::vector<double> act(inter);
      for (int64_t i = 0; i < inter; ++i) act[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      const std::vector<double> want = linear(down, act, out);
      const int64_t token = ty * (cols / 2) + tx;
      for (int64_t i = 0; i < out; ++i) {
        EXPECT_NEAR(got[token * out + i], want[i], 1e-4 * (1 + std::abs(want[i])))
            << "token " << token << " value " << i;
      }
    }
  }
}

TEST(Glm4vTest, PromptWrapsImageRowsInBeginEndTokens) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  auto l = v->Plan(112, 84);
  ASSERT_TRUE(l.ok());
  PromptPieces pieces;
  v->family().AppendPrompt(*l, 0, &pieces);
  ASSERT_EQ(pieces.pieces().size(), 3u);
  EXPECT_EQ(pieces.pieces()[0].text, "<|begin_of_image|>");
  EXPECT_EQ(pieces.pieces()[1].run_tokens, 12);  // 3 x 4 merged tokens
  EXPECT_EQ(pieces.pieces()[1].grid_rows, 3);
  EXPECT_EQ(pieces.pieces()[1].grid_cols, 4);
  EXPECT_EQ(pieces.pieces()[2].text, "<|end_of_image|>");
  const auto required = v->family().RequiredTokens(*l);
  EXPECT_EQ(required, (std::vector<std::string>{"<|begin_of_image|>", "<|end_of_image|>"}));
}

TEST(Glm4vErrorsTest, MissingOrMisshapenTensors) {
  ASSERT_TRUE(LoadRewritten([](const std::string&) { return false; }).ok());
  auto no_merger =
      LoadRewritten([](const std::string& n) { return n == "mm.patch_merger.weight"; });
  ASSERT_FALSE(no_merger.ok());
  EXPECT_EQ(no_merger.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_merger.status().message().find("mm.patch_merger.weight"), std::string::npos)
      << no_merger.status().message();
  auto no_norm = LoadRewritten([](const std::string& n) { return n == "v.norm_embd.weight"; });
  ASSERT_FALSE(no_norm.ok());
  EXPECT_NE(no_norm.status().message().find("'v.norm_embd.weight' is missing"), std::string::npos)
      << no_norm.status().message();
  auto no_down = LoadRewritten([](const std::string& n) { return n == "mm.down.weight"; });
  ASSERT_FALSE(no_down.ok());
  EXPECT_NE(no_down.status().message().find("mm.down.weight"), std::string::npos);
  // A 15-position table is no square grid.
  auto odd_pos = LoadRewritten([](const std::string& n) { return n == "v.position_embd.weight"; },
                               [](gguf::Writer& w) {
                                 std::vector<float> z(32 * 15, 0.0f);
                                 return w.AddTensor("v.position_embd.weight", DType::kF32, {32, 15},
                                                    z.data(), z.size() * sizeof(float));
                               });
  ASSERT_FALSE(odd_pos.ok());
  EXPECT_EQ(odd_pos.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(odd_pos.status().message().find("square"), std::string::npos)
      << odd_pos.status().message();
  // A fused qkv that is not [hidden, 3 * hidden].
  auto bad_qkv = LoadRewritten([](const std::string& n) { return n == "v.blk.1.attn_qkv.weight"; },
                               [](gguf::Writer& w) {
                                 std::vector<float> z(32 * 64, 0.0f);
                                 return w.AddTensor("v.blk.1.attn_qkv.weight", DType::kF32,
                                                    {32, 64}, z.data(), z.size() * sizeof(float));
                               });
  ASSERT_FALSE(bad_qkv.ok());
  EXPECT_EQ(bad_qkv.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_qkv.status().message().find("v.blk.1.attn_qkv.weight"), std::string::npos)
      << bad_qkv.status().message();
  EXPECT_TRUE(FindVisionFamily("glm4v").ok());
}

TEST(Glm4vTest, PresetHasGlm41vShapes) {
  auto p = VisionTestPreset("glm41v-9b");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->projector, "glm4v");
  EXPECT_EQ(p->hidden, 1536);
  EXPECT_EQ(p->layers, 24);
  EXPECT_EQ(p->heads, 12);
  EXPECT_EQ(p->image_size / p->patch_size, 24);  // 576 positions
  EXPECT_EQ(p->ffn, 4096);
  EXPECT_EQ(p->text_hidden, 4096);
  EXPECT_EQ(p->merger_ffn, 13696);
}

}  // namespace
}  // namespace vlserve::models
