// Helpers shared by the golden tests of the vision families (qwen2vl, internvl, glm4v,
// qwen3vl): reading the fixtures tools/reference/*_reference.py writes (a JSON file plus raw
// float32 .bin files), and the checks each family makes the same way (file digests, the
// expanded prompt, all-position logits, greedy tokens with 16-bit KV caches, Pillow
// preprocessing, HF's smart_resize table). Only what is specific to a family (its sizes,
// tolerances' denominators, deepstack slices) stays in its test file.
//
// The Check* helpers use ASSERT_*, which ends only the helper: call them inside
// ASSERT_NO_FATAL_FAILURE so that a failed check still ends the test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "media/image.h"
#include "vision_test_util.h"

namespace vlserve::models::vision_testing {

inline const std::string kGoldenDir = std::string(VLSERVE_SOURCE_DIR) + "/tests/golden/";

// A raw little-endian float32 file (the fixtures' .bin files).
inline std::vector<float> ReadFloats(const std::string& path) {
  const std::string raw = ReadFile(path);
  std::vector<float> v(raw.size() / sizeof(float));
  std::memcpy(v.data(), raw.data(), v.size() * sizeof(float));
  return v;
}

// dir + name parsed; empty (and a failure naming the file) when it is missing.
inline boost::json::object ReadJson(const std::string& dir, const std::string& name) {
  const std::string text = ReadFile(dir + name);
  EXPECT_FALSE(text.empty()) << "missing fixture " << dir << name;
  return text.empty() ? boost::json::object{} : boost::json::parse(text).as_object();
}

inline std::string JsonString(const boost::json::object& o, const char* key) {
  return o.at(key).as_string().c_str();
}

inline std::vector<int32_t> JsonInts(const boost::json::value& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.as_array()) out.push_back(static_cast<int32_t>(x.as_int64()));
  return out;
}

inline float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float err = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) err = std::max(err, std::fabs(a[i] - b[i]));
  return err;
}

// Max |a - b| over the columns [begin, end) of rows `width` wide.
inline float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b, int64_t width,
                        int64_t begin, int64_t end) {
  float err = 0;
  for (size_t r = 0; (r + 1) * width <= a.size() && (r + 1) * width <= b.size(); ++r) {
    for (int64_t c = begin; c < end; ++c) {
      err = std::max(err, std::fabs(a[r * width + c] - b[r * width + c]));
    }
  }
  return err;
}

// Image k of [3, H, W]: 1.5 sin(0.37 x + 0.23 y + 1.1 c + 0.71 k) (the references' formula).
inline std::vector<float> ImageValues(int k, int h, int w) {
  std::vector<float> v(3 * h * w);
  size_t i = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        v[i++] = static_cast<float>(1.5 * std::sin(0.37 * x + 0.23 * y + 1.1 * c + 0.71 * k));
  return v;
}

// The fixture was made from the bytes our generators write now; else the fixture is stale.
inline void CheckDigests(const boost::json::object& meta, const Vlm& vlm,
                         const std::string& regen_script) {
  ASSERT_EQ(JsonString(meta, "mmproj_fnv1a64"), vlm.mmproj_digest)
      << "the mmproj generator now writes other bytes; if intended, rerun " << regen_script;
  ASSERT_EQ(JsonString(meta, "text_fnv1a64"), vlm.text_digest)
      << "the text-model generator now writes other bytes; if intended, rerun " << regen_script;
}

// The fixture's prompt with each HF `block` replaced by "<image>", as our chat layer writes it.
inline std::string WithImageMarkers(std::string prompt, const std::string& block) {
  for (size_t at; (at = prompt.find(block)) != std::string::npos;)
    prompt.replace(at, block.size(), "<image>");
  return prompt;
}

// The fixture's images (meta "images": [[h, w], ...], already at the processor's output
// size, `merge` pixels a token side) as ImageValues(k), encoded one after the other.
struct EncodedImages {
  std::vector<ImageLayout> layouts;
  std::vector<float> rows;  // [sum of tokens, width]
};

inline EncodedImages EncodeFixtureImages(const VisionModel& v, const boost::json::object& meta,
                                         int merge, int64_t width) {
  EncodedImages out;
  int k = 0;
  for (const auto& hw : meta.at("images").as_array()) {
    const int h = static_cast<int>(hw.as_array()[0].as_int64());
    const int w = static_cast<int>(hw.as_array()[1].as_int64());
    ImageLayout layout;
    layout.tile_height = h, layout.tile_width = w;
    layout.merged_rows = h / merge, layout.merged_cols = w / merge;
    layout.tokens = int64_t{layout.merged_rows} * layout.merged_cols;
    std::vector<float> rows(layout.tokens * width);
    VisionScratch scratch;
    v.EncodeImage(ImageValues(k++, h, w).data(), layout, rows.data(), scratch);
    out.rows.insert(out.rows.end(), rows.begin(), rows.end());
    out.layouts.push_back(layout);
  }
  return out;
}

// Embeddings within 1e-4 x the reference's max |embd|; *err is the max abs error.
inline void CheckEmbeddings(const std::string& dir, const boost::json::object& meta,
                            const std::vector<float>& embd, float* err) {
  const std::vector<float> want = ReadFloats(dir + JsonString(meta, "embd_file"));
  ASSERT_EQ(want.size(), embd.size());
  *err = MaxAbsDiff(embd, want);
  EXPECT_LE(*err, 1e-4 * meta.at("max_abs_embd").to_number<double>());
}

// The expanded prompt's token ids and image spans, exactly.
inline void CheckPrompt(const boost::json::object& meta, const ExpandedPrompt& e) {
  EXPECT_EQ(e.tokens, JsonInts(meta.at("prompt_tokens")));
  const auto& spans = meta.at("spans").as_array();
  ASSERT_EQ(e.spans.size(), spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(e.spans[i].position, spans[i].as_array()[0].as_int64());
    EXPECT_EQ(e.spans[i].num_tokens, spans[i].as_array()[1].as_int64());
  }
}

// The M-RoPE positions (t, h, w per token), exactly.
inline void CheckRopePositions(const boost::json::object& meta, const ExpandedPrompt& e) {
  const auto& positions = meta.at("positions").as_array();
  ASSERT_EQ(e.rope_positions.size(), 4 * positions.size());
  for (size_t i = 0; i < positions.size(); ++i) {
    for (int a = 0; a < 3; ++a) {
      ASSERT_EQ(e.rope_positions[4 * i + a], positions[i].as_array()[a].as_int64())
          << "token " << i << " axis " << a;
    }
  }
}

// The fixture's prompt expanded for `layouts` into *e (each HF `block` first replaced by
// "<image>", as our chat layer writes it; an empty block: the prompt as it is), its ids and
// spans checked, and its M-RoPE positions where `mrope` (else it must have none).
inline void ExpandAndCheckPrompt(const boost::json::object& meta, const Vlm& vlm,
                                 const std::vector<ImageLayout>& layouts, const std::string& block,
                                 bool mrope, ExpandedPrompt* e) {
  std::string prompt = JsonString(meta, "prompt");
  if (!block.empty()) prompt = WithImageMarkers(std::move(prompt), block);
  auto expanded = ExpandImagePrompt(*vlm.tok, *vlm.vision, vlm.text->config(), prompt, layouts, {});
  ASSERT_TRUE(expanded.ok()) << expanded.status().ToString();
  *e = std::move(*expanded);
  ASSERT_NO_FATAL_FAILURE(CheckPrompt(meta, *e));
  if (mrope) {
    ASSERT_NO_FATAL_FAILURE(CheckRopePositions(meta, *e));
  } else {
    EXPECT_TRUE(e->rope_positions.empty());
  }
}

// The prompt's ids with -1 at image tokens, and the rows fed there (`width` wide: image rows
// in span order, zeros at text tokens).
struct FedPrompt {
  std::vector<int32_t> ids;
  std::vector<float> rows;  // [tokens, width]
};

inline FedPrompt FeedImageRows(const ExpandedPrompt& e, const std::vector<float>& image_rows,
                               int64_t width) {
  const int64_t n = static_cast<int64_t>(e.tokens.size());
  FedPrompt out{e.tokens, std::vector<float>(n * width, 0.0f)};
  int64_t row = 0;
  for (const PromptImageSpan& s : e.spans) {
    for (int64_t i = 0; i < s.num_tokens; ++i, ++row) {
      out.ids[s.position + i] = -1;
      std::copy_n(image_rows.data() + row * width, width,
                  out.rows.data() + (s.position + i) * width);
    }
  }
  return out;
}

// Logits at every prompt position in one Forward (f32 KV), image rows (embedding_width()
// wide) fed through the embeddings hook; M-RoPE positions where the prompt has them.
inline void AllPositionLogits(const TextModel& text, const ExpandedPrompt& e,
                              const std::vector<float>& image_rows, std::vector<float>* logits) {
  const int64_t n = static_cast<int64_t>(e.tokens.size());
  const FedPrompt fed = FeedImageRows(e, image_rows, text.config().embedding_width());
  const int64_t nb = (n + kKvBlockSize - 1) / kKvBlockSize;
  KvBuffer kv(text.config(), nb);
  std::vector<int32_t> blocks(nb);
  for (int64_t i = 0; i < nb; ++i) blocks[i] = static_cast<int32_t>(i);
  ForwardScratch scratch;
  logits->assign(n * text.config().vocab, 0.0f);
  BatchItem item{blocks.data(),
                 nb,
                 0,
                 fed.ids,
                 fed.rows.data(),
                 true,
                 e.rope_positions.empty() ? nullptr : e.rope_positions.data()};
  ASSERT_TRUE(text.Forward({item}, kv, scratch, logits->data()).ok());
}

// Logits at every prompt position (AllPositionLogits) within 1e-4 x the reference's
// max |logit|; *err is the max abs error.
inline void CheckAllPositionLogits(const std::string& dir, const boost::json::object& meta,
                                   const TextModel& text, const ExpandedPrompt& e,
                                   const std::vector<float>& image_rows, float* err) {
  std::vector<float> logits;
  ASSERT_NO_FATAL_FAILURE(AllPositionLogits(text, e, image_rows, &logits));
  const std::vector<float> want = ReadFloats(dir + JsonString(meta, "logits_file"));
  ASSERT_EQ(want.size(), logits.size());
  *err = MaxAbsDiff(logits, want);
  EXPECT_LE(*err, 1e-4 * meta.at("max_abs_logit").to_number<double>());
}

// Greedy tokens with the server's 16-bit KV caches (--kv-type f16 default, bf16): the same
// as the reference's up to the first step whose reference top-1/top-2 margin is within
// their rounding (meta "greedy_margins"; the tiny random models have margins down to 0.007,
// and bf16 KV flips a 0.023 one in glm4v_f32). `greedy(kv_type)` decodes want.size() tokens.
inline void CheckKv16GreedyUpToMargins(const boost::json::object& meta,
                                       const std::vector<int32_t>& want,
                                       const std::function<std::vector<int32_t>(DType)>& greedy) {
  const auto& margins = meta.at("greedy_margins").as_array();
  const std::pair<DType, double> kv_types[] = {{DType::kF16, 0.005}, {DType::kBF16, 0.05}};
  for (const auto& [kv_type, min_margin] : kv_types) {
    size_t steps = 0;
    while (steps < margins.size() && margins[steps].to_number<double>() >= min_margin) ++steps;
    const std::vector<int32_t> got = greedy(kv_type);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + steps, want.begin()))
        << "kv " << Info(kv_type).name << ": the first " << steps << " greedy tokens differ";
  }
}

// The fixture's real image file (meta "image", checked against "image_fnv1a64"), decoded.
inline void DecodeFixtureImage(const boost::json::object& meta, media::Image* out) {
  const std::string bytes =
      ReadFile(std::string(VLSERVE_SOURCE_DIR) + "/" + JsonString(meta, "image"));
  ASSERT_EQ(Fnv1a64Hex(bytes), JsonString(meta, "image_fnv1a64"));
  auto image = media::Decode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
                             media::DecodeOptions{});
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  *out = std::move(*image);
}

// A smart_resize family (one tile at the resized size) on the fixture `dir` + name.json:
// the real PNG through decode + Plan + Preprocess vs Pillow. HF's pixel bounds become token
// bounds at `pixels_per_token`; pixels within 2/255 in the normalized units of `min_std`
// (the smallest of the processor's std).
inline void CheckPreprocessMatchesPillow(const VisionModel& v, const std::string& dir,
                                         const std::string& name, int64_t pixels_per_token,
                                         double min_std) {
  const boost::json::object meta = ReadJson(dir, name + ".json");
  ASSERT_FALSE(meta.empty());
  media::Image image;
  ASSERT_NO_FATAL_FAILURE(DecodeFixtureImage(meta, &image));
  const ImageTokenLimits limits{meta.at("min_pixels").as_int64() / pixels_per_token,
                                meta.at("max_pixels").as_int64() / pixels_per_token};
  auto layout = v.Plan(image.width, image.height, limits);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  const auto& hw = meta.at("resized_hw").as_array();
  ASSERT_EQ(layout->tile_height, hw[0].as_int64());
  ASSERT_EQ(layout->tile_width, hw[1].as_int64());
  EXPECT_EQ(layout->tokens, meta.at("num_tokens").as_int64());
  media::BufferPool pool;
  media::PreprocessScratch scratch;
  media::PixelTiles tiles = v.Preprocess(*layout, image, &pool, &scratch);
  const std::vector<float> got(tiles.Tile(0), tiles.Tile(0) + layout->tile_floats());
  const std::vector<float> want = ReadFloats(dir + JsonString(meta, "pixels_file"));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(MaxAbsDiff(got, want), (2.0 / 255.0) / min_std);
}

// HF's smart_resize table (dir + smart_resize_cases.json, incl. the aspect-ratio error)
// through Plan, pixel bounds as token bounds at `pixels_per_token`.
inline void CheckSmartResizeTable(const VisionModel& v, const std::string& dir,
                                  int64_t pixels_per_token) {
  const boost::json::object table = ReadJson(dir, "smart_resize_cases.json");
  ASSERT_FALSE(table.empty());
  for (const auto& c : table.at("cases").as_array()) {
    const auto& o = c.as_object();
    const int64_t h = o.at("height").as_int64(), w = o.at("width").as_int64();
    SCOPED_TRACE(::testing::Message() << h << "x" << w);
    const ImageTokenLimits limits{o.at("min_pixels").as_int64() / pixels_per_token,
                                  o.at("max_pixels").as_int64() / pixels_per_token};
    auto layout = v.Plan(static_cast<int>(w), static_cast<int>(h), limits);
    if (o.contains("error")) {
      EXPECT_FALSE(layout.ok());
      continue;
    }
    ASSERT_TRUE(layout.ok()) << layout.status().ToString();
    const auto& hw = o.at("resized_hw").as_array();
    EXPECT_EQ(layout->tile_height, hw[0].as_int64());
    EXPECT_EQ(layout->tile_width, hw[1].as_int64());
  }
}

}  // namespace vlserve::models::vision_testing
