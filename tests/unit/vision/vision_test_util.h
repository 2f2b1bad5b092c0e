// Helpers shared by the vision tests: tiny VLMs built in memory, the closed-form tiles
// the reference script also uses, greedy decoding with image embeddings in the prompt.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "models/image_prompt.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "models/text_model.h"
#include "models/vision_model.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::models::vision_testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Fnv1a64Hex(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

// [num_tiles, 3, size, size]: 1.5 sin(0.37 x + 0.23 y + 1.1 c + 0.71 t), computed in double
// and rounded to float (tools/reference/vision_reference.py: tile_values).
inline std::vector<float> TileValues(int64_t num_tiles, int64_t size) {
  std::vector<float> v(num_tiles * 3 * size * size);
  size_t i = 0;
  for (int64_t t = 0; t < num_tiles; ++t)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x)
          v[i++] = static_cast<float>(1.5 * std::sin(0.37 * x + 0.23 * y + 1.1 * c + 0.71 * t));
  return v;
}

// The layout a tiling family (SmolVLM, LLaVA) gives an image of rows x cols tiles (0 x 0 =
// one tile), with `per_tile` embedding rows a tile.
inline ImageLayout GridLayout(const VisionModel& v, int rows, int cols, int64_t per_tile = 0) {
  ImageLayout l;
  l.tile_height = l.tile_width = static_cast<int>(v.config().image_size);
  l.grid_rows = rows;
  l.grid_cols = cols;
  l.num_tiles = rows * cols > 0 ? rows * cols + 1 : 1;
  l.tokens = l.num_tiles * (per_tile > 0 ? per_tile : v.tokens_per_tile());
  return l;
}

// v.Plan that must succeed (a failure is reported; the layout is then empty).
inline ImageLayout PlanOrDie(const VisionModel& v, int w, int h, ImageTokenLimits limits = {}) {
  auto l = v.Plan(w, h, limits);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? *l : ImageLayout{};
}

// The mmproj BuildTestMmproj writes for `vo`, loaded; null (and a failure) on an error.
inline std::unique_ptr<VisionModel> LoadMmproj(const VisionTestOptions& vo) {
  auto w = BuildTestMmproj(vo);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  if (!w.ok()) return nullptr;
  auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
  EXPECT_TRUE(f.ok());
  if (!f.ok()) return nullptr;
  auto v = VisionModel::Load(std::move(*f));
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? std::move(*v) : nullptr;
}

// The mmproj for `vo` rewritten (for the loader's errors): the tensors `drop` selects left
// out, what `extra` adds added.
inline StatusOr<std::unique_ptr<VisionModel>> LoadRewrittenMmproj(
    const VisionTestOptions& vo, const std::function<bool(const std::string&)>& drop,
    const std::function<Status(gguf::Writer&)>& extra = nullptr) {
  auto w = BuildTestMmproj(vo);
  if (!w.ok()) return w.status();
  auto f = gguf::File::FromBytes(w->WriteToString(), "mmproj");
  if (!f.ok()) return f.status();
  gguf::Writer out;
  for (const auto& [key, value] : (*f)->metadata()) {
    if (key != "general.alignment") out.Set(key, value);
  }
  for (const gguf::TensorInfo& t : (*f)->tensors()) {
    if (drop(t.name)) continue;
    RETURN_IF_ERROR(out.AddTensor(t.name, t.type, t.shape, t.data, t.num_bytes));
  }
  if (extra) RETURN_IF_ERROR(extra(out));
  auto g = gguf::File::FromBytes(out.WriteToString(), "mmproj");
  if (!g.ok()) return g.status();
  return VisionModel::Load(std::move(*g));
}

// A text model + mmproj + tokenizer as `make-test-model --arch A --vision P` writes (A:
// llama, qwen2vl for the qwen2vl_merger projector, qwen2 for internvl).
struct Vlm {
  std::unique_ptr<TextModel> text;
  std::unique_ptr<VisionModel> vision;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::string text_digest, mmproj_digest;
  bool ok() const { return text && vision && tok; }
};

inline Vlm MakeVlm(const std::string& projector, VisionTestOptions vo = {},
                   TestModelOptions to = {}) {
  Vlm out;
  if (projector == "qwen2vl_merger" || projector == "qwen2.5vl_merger") {
    // Sections as make-test-model writes them, unless the caller set the arch itself (a
    // qwen2vl file without sections).
    if (to.arch != "qwen2vl") {
      to.arch = "qwen2vl";
      to.rope_sections = DefaultRopeSections(to.hidden / to.heads);
    }
    vo.image_size = 56, vo.patch_size = 14;
  }
  if (projector == "internvl" && to.arch == "llama") to.arch = "qwen2";  // InternVL3's LM
  auto tw = BuildTestModel(to);
  EXPECT_TRUE(tw.ok()) << tw.status().ToString();
  if (!tw.ok()) return out;
  std::string text_bytes = tw->WriteToString();
  out.text_digest = Fnv1a64Hex(text_bytes);
  vo.projector = projector;
  vo.text_hidden = to.hidden;
  auto vw = BuildTestMmproj(vo);
  EXPECT_TRUE(vw.ok()) << vw.status().ToString();
  if (!vw.ok()) return out;
  std::string mm_bytes = vw->WriteToString();
  out.mmproj_digest = Fnv1a64Hex(mm_bytes);
  auto tf = gguf::File::FromBytes(std::move(text_bytes), "text");
  auto mf = gguf::File::FromBytes(std::move(mm_bytes), "mmproj");
  EXPECT_TRUE(tf.ok() && mf.ok());
  if (!tf.ok() || !mf.ok()) return out;
  auto config = tokenizer::TokenizerConfigFromGguf(**tf);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  if (!config.ok()) return out;
  auto tok = tokenizer::Tokenizer::Create(std::move(*config));
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  auto text = LoadTextModel(std::move(*tf));
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  auto vision = VisionModel::Load(std::move(*mf));
  EXPECT_TRUE(vision.ok()) << vision.status().ToString();
  if (!tok.ok() || !text.ok() || !vision.ok()) return out;
  out.tok = std::move(*tok);
  out.text = std::move(*text);
  out.vision = std::move(*vision);
  return out;
}

// Greedy continuation of `prompt` with the image rows fed through BatchItem::embeddings
// (negative ids), prefill in one Forward, then one token per step. `image_embd` holds the
// images' rows one image after the other, in image order.
inline std::vector<int32_t> Greedy(const TextModel& model, const ExpandedPrompt& prompt,
                                   const std::vector<float>& image_embd, int steps,
                                   DType kv_type = DType::kF32) {
  const int64_t hidden = model.config().hidden, vocab = model.config().vocab;
  const int64_t n = static_cast<int64_t>(prompt.tokens.size());
  // Where each image's rows start: the rows of image k are its spans' largest row end.
  std::vector<int64_t> image_rows;
  for (const PromptImageSpan& s : prompt.spans) {
    if (static_cast<int>(image_rows.size()) <= s.image) image_rows.resize(s.image + 1, 0);
    image_rows[s.image] = std::max(image_rows[s.image], s.first_row + s.num_tokens);
  }
  std::vector<int64_t> image_start(image_rows.size(), 0);
  for (size_t k = 1; k < image_rows.size(); ++k) {
    image_start[k] = image_start[k - 1] + image_rows[k - 1];
  }
  std::vector<int32_t> feed = prompt.tokens;
  std::vector<float> embd(n * hidden, 0.0f);
  for (const PromptImageSpan& s : prompt.spans) {
    for (int64_t i = 0; i < s.num_tokens; ++i) {
      feed[s.position + i] = -1;
      std::copy_n(image_embd.data() + (image_start[s.image] + s.first_row + i) * hidden, hidden,
                  embd.data() + (s.position + i) * hidden);
    }
  }
  const int64_t blocks_needed = (n + steps + kKvBlockSize - 1) / kKvBlockSize;
  KvBuffer kv(model.config(), blocks_needed, kv_type);
  std::vector<int32_t> blocks(blocks_needed);
  for (int64_t i = 0; i < blocks_needed; ++i) blocks[i] = static_cast<int32_t>(i);
  ForwardScratch scratch;
  std::vector<float> logits(vocab);
  const bool mrope = !prompt.rope_positions.empty();
  BatchItem item{blocks.data(), blocks_needed, 0, feed, embd.data(), false,
                 mrope ? prompt.rope_positions.data() : nullptr};
  Status s = model.Forward({item}, kv, scratch, logits.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<int32_t> out;
  for (int step = 0; step < steps && s.ok(); ++step) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    const int32_t one[1] = {next};
    const auto p = static_cast<int32_t>(prompt.next_rope_position + step);
    const int32_t rope[4] = {p, p, p, 0};
    BatchItem it{blocks.data(), blocks_needed, n + step, one, nullptr, false,
                 mrope ? rope : nullptr};
    s = model.Forward({it}, kv, scratch, logits.data());
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return out;
}

}  // namespace vlserve::models::vision_testing
