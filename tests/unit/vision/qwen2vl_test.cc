// Qwen2-VL family behaviour with hand-computed expectations: smart_resize layouts and
// token limits, M-RoPE positions of a mixed prompt (transformers' get_rope_index rule,
// worked by hand below), the text model's multi-axis RoPE path, and the errors a user can
// cause. The PyTorch reference fixtures (qwen2vl_golden_test.cc) check the numbers.
#include <gtest/gtest.h>

#include <cmath>

#include "vision_test_util.h"

namespace vlserve::models {
namespace {

using vision_testing::MakeVlm;
using vision_testing::PlanOrDie;

TEST(Qwen2VlTest, SmartResizeLayouts) {
  auto vlm = MakeVlm("qwen2vl_merger");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  EXPECT_EQ(v.family().name(), "Qwen2-VL");
  // 1024x768: round(768/28 = 27.4) = 27 -> 756, round(1024/28 = 36.6) = 37 -> 1036.
  ImageLayout l = PlanOrDie(v, 1024, 768);
  EXPECT_EQ(l.tile_height, 756);
  EXPECT_EQ(l.tile_width, 1036);
  EXPECT_EQ(l.merged_rows, 27);
  EXPECT_EQ(l.merged_cols, 37);
  EXPECT_EQ(l.tokens, 999);
  EXPECT_EQ(l.num_tiles, 1);
  // max_tokens 100 -> max_pixels 100 * 28²: beta = sqrt(786432 / 78400) = 3.167,
  // floor(768 / beta / 28) = 8 -> 224, floor(1024 / beta / 28) = 11 -> 308.
  l = PlanOrDie(v, 1024, 768, {.max_tokens = 100});
  EXPECT_EQ(l.tile_height, 224);
  EXPECT_EQ(l.tile_width, 308);
  EXPECT_EQ(l.tokens, 88);
  // Below min_pixels (3136): 40x30 rounds to 28x28 = 784, beta = sqrt(3136 / 1200) = 1.617,
  // ceil(30 beta / 28) = 2 -> 56, ceil(40 beta / 28) = 3 -> 84.
  l = PlanOrDie(v, 40, 30);
  EXPECT_EQ(l.tile_height, 56);
  EXPECT_EQ(l.tile_width, 84);
  // min_tokens 64 -> min_pixels 64 * 28²: 200x150 -> 196 x 280.
  l = PlanOrDie(v, 200, 150, {.min_tokens = 64});
  EXPECT_EQ(l.tile_height, 196);
  EXPECT_EQ(l.tile_width, 280);
  EXPECT_EQ(l.tokens, 70);
  // Sides more than 200x apart are refused, as the HF processor does.
  auto bad = v.Plan(201, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("200x"), std::string::npos) << bad.status().message();
}

TEST(Qwen2VlTest, PositionsOfTextAndTwoImages) {
  // 3 text, a 2x3 image, 2 text, a 1x2 image, 1 text. The first image starts at p = 3:
  // (3,3,3) (3,3,4) (3,3,5) (3,4,3) (3,4,4) (3,4,5); text resumes at 3 + max(2,3) = 6;
  // the second image at 8: (8,8,8) (8,8,9); text resumes at 8 + 2 = 10; next is 11.
  const std::vector<PromptImageSpan> spans = {{3, 6, 0, 0}, {11, 2, 1, 0}};
  int64_t next = 0;
  const std::vector<int32_t> p = AssignRopePositions(14, spans, {{2, 3}, {1, 2}}, &next);
  const std::vector<std::array<int32_t, 3>> want = {
      {0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {3, 3, 4}, {3, 3, 5}, {3, 4, 3},
      {3, 4, 4}, {3, 4, 5}, {6, 6, 6}, {7, 7, 7}, {8, 8, 8}, {8, 8, 9}, {10, 10, 10}};
  ASSERT_EQ(p.size(), 4 * want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    for (int a = 0; a < 3; ++a) EXPECT_EQ(p[4 * i + a], want[i][a]) << "token " << i << " axis " << a;
    EXPECT_EQ(p[4 * i + 3], 0);
  }
  EXPECT_EQ(next, 11);
  // A run without a grid (1-D family) counts like text.
  const std::vector<int32_t> flat = AssignRopePositions(5, {{1, 3, 0, 0}}, {{0, 0}}, &next);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(flat[4 * i + 1], i);
  EXPECT_EQ(next, 5);
}

TEST(Qwen2VlTest, PromptWrapsImagesAndAssignsGridPositions) {
  auto vlm = MakeVlm("qwen2vl_merger");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  const ImageLayout a = PlanOrDie(v, 84, 56), b = PlanOrDie(v, 56, 84);  // 2x3 and 3x2
  auto e = ExpandImagePrompt(*vlm.tok, v, vlm.text->config(), "A<image>B<image>C", {a, b}, {});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const std::string pad = "<|image_pad|>";
  std::string want = "A<|vision_start|>";
  for (int i = 0; i < 6; ++i) want += pad;
  want += "<|vision_end|>B<|vision_start|>";
  for (int i = 0; i < 6; ++i) want += pad;
  want += "<|vision_end|>C";
  EXPECT_EQ(vlm.tok->Decode(e->tokens, {.render_special = true}), want);
  ASSERT_EQ(e->spans.size(), 2u);
  ASSERT_EQ(e->rope_positions.size(), 4 * e->tokens.size());
  // The first image row starts after "A<|vision_start|>" (positions 0, 1 if each is one
  // token): its last token is at (p, p + 1, p + 2).
  const int64_t first = e->spans[0].position;
  const int64_t last = first + 5;
  EXPECT_EQ(e->rope_positions[4 * last + 1], e->rope_positions[4 * first] + 1);
  EXPECT_EQ(e->rope_positions[4 * last + 2], e->rope_positions[4 * first] + 2);
  EXPECT_EQ(e->next_rope_position,
            e->rope_positions[4 * (e->tokens.size() - 1)] + 1);
}

TEST(Qwen2VlTest, EqualAxesMatchPlainRope) {
  // A qwen2vl model fed (p, p, p) positions computes what it computes without positions.
  auto vlm = MakeVlm("qwen2vl_merger");
  ASSERT_TRUE(vlm.ok());
  const TextModel& m = *vlm.text;
  const std::vector<int32_t> tokens = vlm.tok->Encode("the quick brown fox jumps");
  const int64_t n = static_cast<int64_t>(tokens.size()), vocab = m.config().vocab;
  std::vector<int32_t> pos(4 * n);
  for (int64_t i = 0; i < n; ++i) pos[4 * i] = pos[4 * i + 1] = pos[4 * i + 2] = i;
  std::vector<float> a(n * vocab), b(n * vocab), c(n * vocab);
  std::vector<int32_t> blocks = {0, 1};
  for (auto [out, rp, shift] : {std::tuple{&a, pos.data(), 0}, {&b, nullptr, 0},
                                {&c, pos.data(), 1}}) {
    if (shift) for (int64_t i = 0; i < n; ++i) pos[4 * i + 1] += 3;  // rows move: differs
    KvBuffer kv(m.config(), 2);
    ForwardScratch s;
    BatchItem item{blocks.data(), 2, 0, tokens, nullptr, true, rp};
    ASSERT_TRUE(m.Forward({item}, kv, s, out->data()).ok());
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// Scheduled encoding splits a whole-image forward by layers: two images of different grids
// encoded a layer at a time, interleaved through one shared scratch, give exactly the
// one-shot embeddings (each keeps its own residual stream and RoPE tables).
TEST(Qwen2VlTest, LayerByLayerInterleavedEncodesEqualOneShot) {
  auto vlm = MakeVlm("qwen2vl_merger");
  ASSERT_TRUE(vlm.ok());
  const VisionModel& v = *vlm.vision;
  const ImageLayout la = PlanOrDie(v, 84, 56), lb = PlanOrDie(v, 56, 112);
  const std::vector<float> pa = TestRandomValues(3, "a", la.tile_floats(), 0, 1);
  const std::vector<float> pb = TestRandomValues(4, "b", lb.tile_floats(), 0, 1);
  const int64_t w = v.output_width();
  std::vector<float> want_a(la.tokens * w), want_b(lb.tokens * w);
  VisionScratch scratch;
  v.EncodeImage(pa.data(), la, want_a.data(), scratch);
  v.EncodeImage(pb.data(), lb, want_b.data(), scratch);
  std::vector<float> got_a(want_a.size()), got_b(want_b.size());
  EncodeProgress a, b;
  int calls = 0;
  int64_t spent = 0;
  while (!a.done(la) || !b.done(lb)) {
    if (!a.done(la)) spent += v.EncodeSome(pa.data(), la, got_a.data(), a, 1, scratch);
    if (!b.done(lb)) spent += v.EncodeSome(pb.data(), lb, got_b.data(), b, 1, scratch);
    ++calls;
  }
  EXPECT_EQ(calls, v.config().num_layers);  // one layer per call
  EXPECT_EQ(spent, v.TokenLayers(la) + v.TokenLayers(lb));
  EXPECT_EQ(got_a, want_a);
  EXPECT_EQ(got_b, want_b);
}

// Qwen2.5-VL's window attention: an image that fits one 8x8-patch window encodes the same
// with windowed layers as with full attention everywhere (n_wa_pattern 1); a larger one
// does not (its windows cut the attention).
TEST(Qwen25VlTest, WindowsMatterOnlyBeyondOneWindow) {
  VisionTestOptions vo;
  vo.projector = "qwen2.5vl_merger";
  vo.image_size = 56, vo.patch_size = 14;
  auto load = [&](int64_t pattern) {
    auto w = BuildTestMmproj(vo);
    EXPECT_TRUE(w.ok());
    w->Set("clip.vision.n_wa_pattern", gguf::Value::U32(static_cast<uint32_t>(pattern)));
    auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
    EXPECT_TRUE(f.ok());
    auto v = VisionModel::Load(std::move(*f));
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return std::move(*v);
  };
  const auto windowed = load(2), full = load(1);
  EXPECT_EQ(windowed->family().name(), "Qwen2.5-VL");
  EXPECT_EQ(windowed->config().window_patches, 8);
  for (auto [w, h, same] : {std::tuple{112, 112, true}, {224, 168, false}}) {
    SCOPED_TRACE(w);
    const ImageLayout l = PlanOrDie(*windowed, w, h);
    const std::vector<float> px = TestRandomValues(5, "px", l.tile_floats(), 0, 1);
    std::vector<float> a(l.tokens * windowed->output_width()), b(a.size());
    VisionScratch s;
    windowed->EncodeImage(px.data(), l, a.data(), s);
    full->EncodeImage(px.data(), l, b.data(), s);
    if (same) {
      EXPECT_EQ(a, b);
    } else {
      EXPECT_NE(a, b);
    }
  }
}

TEST(Qwen2VlErrorsTest, TextModelWithoutSectionsRefusesImages) {
  TestModelOptions to;
  to.arch = "qwen2vl";  // rope_sections left unset: a file converted without them
  auto vlm = MakeVlm("qwen2vl_merger", {}, to);
  ASSERT_TRUE(vlm.ok());
  EXPECT_FALSE(vlm.text->config().rope_sections.active());
  auto e = ExpandImagePrompt(*vlm.tok, *vlm.vision, vlm.text->config(), "<image>x",
                             {PlanOrDie(*vlm.vision, 56, 56)}, {});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("reconvert"), std::string::npos) << e.status().message();
  EXPECT_NE(e.status().message().find("qwen2vl.rope.dimension_sections"), std::string::npos);
  // Text alone still runs (every axis equal needs no sections).
  const std::vector<int32_t> tokens = vlm.tok->Encode("plain text");
  std::vector<int32_t> blocks = {0};
  KvBuffer kv(vlm.text->config(), 1);
  ForwardScratch s;
  std::vector<float> logits(vlm.text->config().vocab);
  BatchItem item{blocks.data(), 1, 0, tokens, nullptr, false};
  EXPECT_TRUE(vlm.text->Forward({item}, kv, s, logits.data()).ok());
}

TEST(Qwen2VlErrorsTest, ProjectorWidthAndUnknownProjector) {
  TestModelOptions wide;
  wide.hidden = 128;  // the mmproj below projects to 64
  wide.arch = "qwen2vl";
  wide.rope_sections = DefaultRopeSections(32);
  VisionTestOptions vo;
  vo.projector = "qwen2vl_merger";
  vo.image_size = 56, vo.patch_size = 14, vo.text_hidden = 64;
  auto mm = BuildTestMmproj(vo);
  ASSERT_TRUE(mm.ok());
  auto file = gguf::File::FromBytes(mm->WriteToString(), "mmproj");
  ASSERT_TRUE(file.ok());
  auto v = VisionModel::Load(std::move(*file));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  auto text = BuildTestModel(wide);
  ASSERT_TRUE(text.ok());
  auto tf = gguf::File::FromBytes(text->WriteToString(), "text");
  ASSERT_TRUE(tf.ok());
  auto tm = LoadTextModel(std::move(*tf));
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  const Status s = (*v)->CheckCompatible((*tm)->config());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("64-wide"), std::string::npos) << s.message();
  auto unknown = FindVisionFamily("resampler");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(unknown.status().message().find("qwen2vl_merger"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("idefics3"), std::string::npos);
}

}  // namespace
}  // namespace vlserve::models
