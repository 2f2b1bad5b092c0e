// Qwen3-VL family (families/qwen3vl.cc) with independent expectations: smart_resize layouts
// at factor 32 from transformers' qwen2_vl smart_resize (values printed by that function,
// transcribed per case), the bilinear position-table resampling against constants from
// Qwen3VLVisionModel.fast_pos_embed_interpolate run in torch (script in the comment), the
// deepstack merger against a direct scalar transcription of Qwen3VLVisionPatchMerger
// (use_postshuffle_norm=True), the layout of the wide output rows, resumable encoding with
// taps, the prompt wrapper, and the errors a bad file or a mismatched text model gives.
// Whole-model numbers are checked against PyTorch by the reference fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "vision_test_util.h"

namespace vlserve::models {
namespace {

std::unique_ptr<VisionModel> LoadTiny(VisionTestOptions vo = TinyVisionTestOptions("qwen3vl_merger")) {
  return vision_testing::LoadMmproj(vo);
}

// The tiny mmproj rewritten: tensors `drop` selects left out, `extra` added.
StatusOr<std::unique_ptr<VisionModel>> LoadRewritten(
    const std::function<bool(const std::string&)>& drop,
    const std::function<Status(gguf::Writer&)>& extra = nullptr) {
  return vision_testing::LoadRewrittenMmproj(TinyVisionTestOptions("qwen3vl_merger"), drop, extra);
}

const float* F32(const VisionModel& v, const std::string& name) {
  const gguf::TensorInfo* t = v.file().FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  EXPECT_EQ(t->type, DType::kF32) << name;
  return reinterpret_cast<const float*>(t->data);
}

TEST(Qwen3VlTest, SmartResizeMatchesTransformersAtFactor32) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->family().name(), "Qwen3-VL");
  EXPECT_EQ(v->config().patch_size * v->config().merge, 32);
  // smart_resize(h, w, factor=32, min_pixels=65536, max_pixels=16777216) printed (h, w):
  //   640x480 -> (480, 640); 100x50 -> (192, 384); 5000x5000 -> (4096, 4096);
  //   1000x333 -> (320, 992); 300x700 -> (704, 288); 48x80 -> (352, 224);
  //   max_pixels = 100 * 32² for 640x480 -> (256, 352); min_pixels = 64 * 32² for 64x64 ->
  //   (256, 256).
  struct Case {
    int w, h;
    ImageTokenLimits limits;
    int want_h, want_w;
  };
  const Case cases[] = {{640, 480, {}, 480, 640},   {100, 50, {}, 192, 384},
                        {5000, 5000, {}, 4096, 4096}, {1000, 333, {}, 320, 992},
                        {300, 700, {}, 704, 288},   {48, 80, {}, 352, 224},
                        {640, 480, {0, 100}, 256, 352}, {64, 64, {64, 0}, 256, 256}};
  for (const Case& c : cases) {
    auto l = v->Plan(c.w, c.h, c.limits);
    ASSERT_TRUE(l.ok()) << c.w << "x" << c.h << ": " << l.status().ToString();
    EXPECT_EQ(l->tile_height, c.want_h) << c.w << "x" << c.h;
    EXPECT_EQ(l->tile_width, c.want_w) << c.w << "x" << c.h;
    EXPECT_EQ(l->merged_rows, c.want_h / 32);
    EXPECT_EQ(l->merged_cols, c.want_w / 32);
    EXPECT_EQ(l->tokens, int64_t{c.want_h / 32} * (c.want_w / 32));
  }
  EXPECT_FALSE(v->Plan(4000, 10).ok());  // sides differ by more than 200x
}

TEST(Qwen3VlTest, PositionInterpolationMatchesTorch) {
  // Generated with /usr/bin/python3 (torch 1.13): the table below as an nn.Embedding, and
  // fast_pos_embed_interpolate's body for one image (h, w) —
  //   h_idxs = torch.linspace(0, side - 1, h); w_idxs likewise; floor = .int(),
  //   ceil = (floor + 1).clip(max=side - 1); dh = h_idxs - floor; dw likewise;
  //   the four (index, weight) pairs (1-dh)(1-dw), (1-dh)dw, dh(1-dw), dh dw summed in order —
  // printed before HF's spatial-merge permute (row-major patches). The script also checked
  // them against F.interpolate(mode="bilinear", align_corners=True) within 1e-5.
  constexpr int64_t side = 4, d = 3;
  std::vector<float> table(side * side * d);
  for (int64_t p = 0; p < side * side; ++p) {
    for (int64_t i = 0; i < d; ++i) {
      table[p * d + i] = static_cast<float>(std::sin(0.37 * p + 1.3 * i) + 0.1 * p);
    }
  }
  struct Case {
    int64_t rows, cols;
    std::vector<float> want;
  };
  const Case cases[] = {
      {2, 6, {0.f, 0.963558197f, 0.51550138f, 0.276969284f, 1.04247332f, 0.368651628f,
              0.544149935f, 1.09445238f, 0.21717982f, 0.791753411f, 1.09255958f, 0.0564638413f,
              1.00285232f, 1.04237938f, -0.0935811251f, 1.19569874f, 0.968055606f,
              -0.238290504f, 0.236869067f, 0.683134556f, 1.88660908f, 0.277603745f,
              0.949861288f, 2.07647276f, 0.345278621f, 1.22125268f, 2.24189162f, 0.466833889f,
              1.50197303f, 2.35842133f, 0.636715412f, 1.77210689f, 2.4209609f, 0.830760121f,
              2.03694749f, 2.45650554f}},
      {5, 3, {0.f, 0.963558197f, 0.51550138f, 0.667951703f, 1.09350598f, 0.136821836f,
              1.19569874f, 0.968055606f, -0.238290504f, 1.04691064f, 0.806212783f,
              -0.176087976f, 1.23867822f, 0.544183433f, -0.288290232f, 1.21695793f,
              0.256659478f, -0.200644299f, 1.1882385f, 0.327179462f, -0.134196907f,
              1.01017749f, 0.1666549f, 0.177734256f, 0.761688769f, 0.164036363f, 0.644572377f,
              0.794664443f, 0.096229583f, 0.575320244f, 0.54508996f, 0.319578618f,
              1.16413629f, 0.432189941f, 0.740645826f, 1.72205663f, 0.236869067f,
              0.683134556f, 1.88660908f, 0.406056225f, 1.3616128f, 2.30015659f, 0.830760121f,
              2.03694749f, 2.45650554f}},
      {1, 4, {0.f, 0.963558197f, 0.51550138f, 0.461615443f, 1.09508336f, 0.270751834f,
              0.874287903f, 1.0919286f, 0.00289182714f, 1.19569874f, 0.968055606f,
              -0.238290504f}},
  };
  for (const Case& c : cases) {
    std::vector<float> out(c.rows * c.cols * d, std::numeric_limits<float>::quiet_NaN());
    ResizePositionTableBilinear(table.data(), side, d, c.rows, c.cols, out.data());
    ASSERT_EQ(out.size(), c.want.size());
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], c.want[i], 2e-6) << c.rows << "x" << c.cols << " at " << i;
    }
  }
}

// Qwen3VLVisionPatchMerger(use_postshuffle_norm=True).forward, transcribed: each 2x2 block
// of x ([rows * cols, d], row-major) concatenated (dy outer, dx inner), LayerNorm over the
// 4d values (eps 1e-6), linear_fc1, erf GELU, linear_fc2. Double precision throughout.
std::vector<double> ScalarDeepstackMerger(const VisionModel& v, int64_t layer, const float* x,
                                          int64_t rows, int64_t cols) {
  const int64_t d = v.config().hidden, w = 4 * d;
  const std::string b = "v.deepstack." + std::to_string(layer) + ".";
  const float* nw = F32(v, b + "norm.weight");
  const float* nb = F32(v, b + "norm.bias");
  const float* w1 = F32(v, b + "fc1.weight");
  const float* b1 = F32(v, b + "fc1.bias");
  const float* w2 = F32(v, b + "fc2.weight");
  const float* b2 = F32(v, b + "fc2.bias");
  const int64_t out_w = v.file().FindTensor(b + "fc2.bias")->shape[0];
  std::vector<double> out;
  for (int64_t ty = 0; ty < rows / 2; ++ty) {
    for (int64_t tx = 0; tx < cols / 2; ++tx) {
      std::vector<double> m;
      for (int64_t dy = 0; dy < 2; ++dy) {
        for (int64_t dx = 0; dx < 2; ++dx) {
          const float* src = x + ((2 * ty + dy) * cols + 2 * tx + dx) * d;
          m.insert(m.end(), src, src + d);
        }
      }
      double mean = 0, var = 0;
      for (double a : m) mean += a / w;
      for (double a : m) var += (a - mean) * (a - mean) / w;
      for (int64_t i = 0; i < w; ++i) m[i] = (m[i] - mean) / std::sqrt(var + 1e-6) * nw[i] + nb[i];
      std::vector<double> h(w);
      for (int64_t o = 0; o < w; ++o) {
        double acc = b1[o];
        for (int64_t i = 0; i < w; ++i) acc += static_cast<double>(w1[o * w + i]) * m[i];
        h[o] = 0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0)));
      }
      for (int64_t o = 0; o < out_w; ++o) {
        double acc = b2[o];
        for (int64_t i = 0; i < w; ++i) acc += static_cast<double>(w2[o * w + i]) * h[i];
        out.push_back(acc);
      }
    }
  }
  return out;
}

TEST(Qwen3VlTest, DeepstackMergerMatchesScalarTranscription) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  const VisionConfig& c = v->config();
  ASSERT_EQ(c.deepstack_layers, (std::vector<int64_t>{0, 1}));
  auto projector = v->family().LoadProjector(v->file(), c);
  ASSERT_TRUE(projector.ok()) << projector.status().ToString();
  const int64_t rows = 4, cols = 6, d = c.hidden, text = 64;
  EXPECT_EQ((*projector)->output_width(), 3 * text);
  EXPECT_EQ(v->output_width(), 3 * text);
  std::vector<float> x(rows * cols * d);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.61 * i) * 2 + 0.3);
  const int64_t tokens = (rows / 2) * (cols / 2), width = 3 * text;
  for (int64_t tap = 0; tap < 2; ++tap) {
    std::vector<float> out(tokens * width, 7.0f);
    VisionScratch scratch;
    (*projector)->ProjectTap(tap, x.data(), 1, rows, cols, out.data(), scratch, nullptr);
    const std::vector<double> want = ScalarDeepstackMerger(*v, c.deepstack_layers[tap], x.data(),
                                                           rows, cols);
    for (int64_t r = 0; r < tokens; ++r) {
      for (int64_t j = 0; j < width; ++j) {
        const int64_t slice = j / text;
        if (slice == 1 + tap) {
          EXPECT_NEAR(out[r * width + j], want[r * text + j % text], 1e-4)
              << "tap " << tap << " row " << r << " col " << j;
        } else {
          EXPECT_EQ(out[r * width + j], 7.0f) << "tap " << tap << " wrote outside its slice";
        }
      }
    }
  }
}

TEST(Qwen3VlTest, EncodeWritesMainThenDeepstackSlicesAndResumes) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  auto l = v->Plan(96, 64);  // scaled up to the 64-token minimum: 224 x 320
  ASSERT_TRUE(l.ok());
  const ImageLayout& layout = *l;
  const std::vector<float> pixels = [&] {
    std::vector<float> p(layout.tile_floats());
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(std::sin(0.013 * i));
    return p;
  }();
  const int64_t width = v->output_width(), text = width / 3;
  VisionScratch scratch;
  std::vector<float> out(layout.tokens * width, std::numeric_limits<float>::quiet_NaN());
  v->EncodeImage(pixels.data(), layout, out.data(), scratch);
  for (float x : out) ASSERT_TRUE(std::isfinite(x));  // every slice written
  // The main slice is the projector over the tower's post-LN features.
  v->RunTower(pixels.data(), 1, layout.tile_height, layout.tile_width, scratch, nullptr);
  auto projector = v->family().LoadProjector(v->file(), v->config());
  ASSERT_TRUE(projector.ok());
  const int64_t p = v->config().patch_size;
  std::vector<float> main(layout.tokens * width, 0.0f);
  (*projector)->Project(scratch.features.data(), 1, layout.tile_height / p,
                        layout.tile_width / p, main.data(), scratch, nullptr);
  for (int64_t r = 0; r < layout.tokens; ++r) {
    for (int64_t j = 0; j < text; ++j) EXPECT_EQ(out[r * width + j], main[r * width + j]);
    for (int64_t j = text; j < width; ++j) EXPECT_EQ(main[r * width + j], 0.0f);
  }
  // The two taps differ from each other and from the main slice.
  EXPECT_NE(out[text], out[0]);
  EXPECT_NE(out[2 * text], out[text]);
  // Resumable encoding, one layer a call (taps land in calls of their own): same bits.
  std::vector<float> resumed(out.size(), std::numeric_limits<float>::quiet_NaN());
  EncodeProgress progress;
  VisionScratch other;
  int calls = 0;
  while (!progress.done(layout)) {
    v->EncodeSome(pixels.data(), layout, resumed.data(), progress, /*budget=*/1, other);
    ++calls;
  }
  EXPECT_EQ(calls, 3);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(resumed[i], out[i]) << i;
}

TEST(Qwen3VlTest, PromptIsQwenVisionStartEnd) {
  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  auto l = v->Plan(640, 480);
  ASSERT_TRUE(l.ok());
  PromptPieces pieces;
  v->family().AppendPrompt(*l, 0, &pieces);
  ASSERT_EQ(pieces.pieces().size(), 3u);
  EXPECT_EQ(pieces.pieces()[0].text, "<|vision_start|>");
  EXPECT_EQ(pieces.pieces()[1].run_tokens, 300);  // 15 x 20 merged tokens
  EXPECT_EQ(pieces.pieces()[1].grid_rows, 15);
  EXPECT_EQ(pieces.pieces()[1].grid_cols, 20);
  EXPECT_EQ(pieces.pieces()[2].text, "<|vision_end|>");
  EXPECT_EQ(v->family().placeholder(), "<|image_pad|>");
  auto f = FindVisionFamily("qwen3vl_merger");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, &v->family());
}

TEST(Qwen3VlErrorsTest, BadFilesAndMismatchedTextModels) {
  // A deepstack layer without its fc2.
  auto s = LoadRewritten([](const std::string& n) { return n == "v.deepstack.1.fc2.weight"; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("v.deepstack.1.fc2.weight"), std::string::npos)
      << s.status().message();
  // A position table that is not a square grid.
  s = LoadRewritten([](const std::string& n) { return n == "v.position_embd.weight"; },
                    [](gguf::Writer& w) {
                      std::vector<float> t(32 * 10, 0.1f);
                      return w.AddTensor("v.position_embd.weight", DType::kF32, {32, 10},
                                         t.data(), t.size() * sizeof(float));
                    });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("square"), std::string::npos) << s.status().message();
  // A main merger missing.
  s = LoadRewritten([](const std::string& n) { return n == "mm.2.weight"; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("mm.2.weight"), std::string::npos);

  auto v = LoadTiny();
  ASSERT_NE(v, nullptr);
  TextConfig text;
  text.arch = "qwen3vl";
  text.hidden = 64;
  text.deepstack_layers = 2;
  EXPECT_TRUE(v->CheckCompatible(text).ok());
  text.deepstack_layers = 1;  // another deepstack count
  Status st = v->CheckCompatible(text);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("deepstack"), std::string::npos) << st.message();
  text.deepstack_layers = 2, text.hidden = 96;  // another width
  st = v->CheckCompatible(text);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("192-wide"), std::string::npos) << st.message();
  text.arch = "qwen2vl", text.hidden = 64, text.deepstack_layers = 0;  // no deepstack at all
  EXPECT_FALSE(v->CheckCompatible(text).ok());
}

TEST(Qwen3VlTest, PresetHasQwen3Vl2bShapes) {
  auto o = VisionTestPreset("qwen3vl-2b");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->projector, "qwen3vl_merger");
  EXPECT_EQ(o->patch_size, 16);
  EXPECT_EQ(o->hidden, 1024);
  EXPECT_EQ(o->layers, 24);
  EXPECT_EQ(o->heads, 16);
  EXPECT_EQ(o->ffn, 4096);
  EXPECT_EQ(o->text_hidden, 2048);
  EXPECT_EQ((o->image_size / o->patch_size) * (o->image_size / o->patch_size), 2304);
  EXPECT_EQ(o->deepstack_layers, (std::vector<int64_t>{5, 11, 17}));
  EXPECT_EQ(SpreadDeepstackLayers(24, 3), o->deepstack_layers);
}

}  // namespace
}  // namespace vlserve::models
