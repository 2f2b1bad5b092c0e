// Vision towers, projectors and image prompts against the PyTorch reference
// (tools/reference/vision_reference.py, run by tools/reference/regen_vision_fixtures.sh),
// which is written from the Hugging Face model and processor code and runs in float64.
// Both sides get the same closed-form normalized tiles (TileValues), so this checks the
// model half only: tower + projector embeddings, prompt token ids and spans, and 16
// greedy tokens with the embeddings in the prompt.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "vision_test_util.h"

namespace vlserve::models {
namespace {

using vision_testing::Fnv1a64Hex;
using vision_testing::Greedy;
using vision_testing::ReadFile;
using vision_testing::TileValues;

struct Fixture {
  const char* name;       // tests/golden/vision/<name>.json + .embd.bin
  const char* projector;  // make-test-model --vision
  int grid_rows, grid_cols;
};

const Fixture kFixtures[] = {
    {"idefics3_f32", "idefics3", 1, 2},
    {"idefics3_single_f32", "idefics3", 0, 0},
    {"mlp_f32", "mlp", 0, 0},
};

class VisionGoldenTest : public ::testing::TestWithParam<Fixture> {};

void CheckFixture(const Fixture& fx, bool check_greedy) {
  const std::string dir = std::string(VLSERVE_SOURCE_DIR) + "/tests/golden/vision/";
  const std::string json_text = ReadFile(dir + fx.name + ".json");
  ASSERT_FALSE(json_text.empty()) << "missing fixture " << dir << fx.name << ".json";
  const boost::json::object meta = boost::json::parse(json_text).as_object();

  vision_testing::Vlm vlm = vision_testing::MakeVlm(fx.projector);
  ASSERT_TRUE(vlm.ok());
  ASSERT_EQ(std::string(meta.at("mmproj_fnv1a64").as_string().c_str()), vlm.mmproj_digest)
      << "the mmproj generator now writes different bytes than when the fixture was made; "
         "if intended, rerun tools/reference/regen_vision_fixtures.sh";
  ASSERT_EQ(std::string(meta.at("text_fnv1a64").as_string().c_str()), vlm.text_digest);

  const VisionModel& vision = *vlm.vision;
  const ImageLayout layout = vision_testing::GridLayout(vision, fx.grid_rows, fx.grid_cols);
  const int num_tiles = layout.num_tiles;
  ASSERT_EQ(meta.at("num_tiles").as_int64(), num_tiles);
  ASSERT_EQ(meta.at("tokens_per_tile").as_int64(), vision.tokens_per_tile());
  const std::vector<float> tiles = TileValues(num_tiles, vision.config().image_size);
  const std::vector<float> got = vision.Encode(tiles.data(), num_tiles);

  const std::string raw = ReadFile(dir + meta.at("embd_file").as_string().c_str());
  ASSERT_EQ(raw.size(), got.size() * sizeof(float));
  std::vector<float> want(got.size());
  std::memcpy(want.data(), raw.data(), raw.size());
  float err = 0;
  for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::fabs(got[i] - want[i]));
  std::printf("[ %s on %s ] embeddings max abs err %.3g (max |embd| %.3f)\n", fx.name,
              std::string(kernels::IsaName(kernels::ActiveIsa())).c_str(), err,
              meta.at("max_abs_embd").to_number<double>());
  EXPECT_LE(err, 1e-4);
  if (!check_greedy) return;

  // Prompt assembly: same token ids and spans as the HF-processor strings + BPE.
  const std::string prompt = meta.at("prompt").as_string().c_str();
  auto expanded =
      ExpandImagePrompt(*vlm.tok, vision, vlm.text->config(), prompt, {layout}, {});
  ASSERT_TRUE(expanded.ok()) << expanded.status().ToString();
  std::vector<int32_t> want_tokens;
  for (const auto& v : meta.at("prompt_tokens").as_array()) want_tokens.push_back(v.as_int64());
  EXPECT_EQ(expanded->tokens, want_tokens);
  const auto& want_spans = meta.at("spans").as_array();
  ASSERT_EQ(expanded->spans.size(), want_spans.size());
  for (size_t i = 0; i < want_spans.size(); ++i) {
    EXPECT_EQ(expanded->spans[i].position, want_spans[i].as_array()[0].as_int64());
    EXPECT_EQ(expanded->spans[i].num_tokens, want_spans[i].as_array()[1].as_int64());
    EXPECT_EQ(expanded->spans[i].first_row, static_cast<int64_t>(i) * vision.tokens_per_tile());
  }

  std::vector<int32_t> want_greedy;
  for (const auto& v : meta.at("greedy").as_array()) want_greedy.push_back(v.as_int64());
  const std::vector<int32_t> greedy =
      Greedy(*vlm.text, *expanded, got, static_cast<int>(want_greedy.size()));
  EXPECT_EQ(greedy, want_greedy);
}

TEST_P(VisionGoldenTest, MatchesPyTorchReference) { CheckFixture(GetParam(), true); }

INSTANTIATE_TEST_SUITE_P(Fixtures, VisionGoldenTest, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) { return std::string(info.param.name); });

// Every ISA the CPU has must produce the reference embeddings.
TEST(VisionGoldenIsaTest, EveryIsaMatchesReference) {
  const kernels::Isa saved = kernels::ActiveIsa();
  for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (!kernels::IsaAvailable(isa)) continue;
    kernels::ForceIsa(isa);
    for (const Fixture& fx : kFixtures) {
      SCOPED_TRACE(std::string(fx.name) + " " + std::string(kernels::IsaName(isa)));
      CheckFixture(fx, false);
    }
  }
  kernels::ForceIsa(saved);
}

}  // namespace
}  // namespace vlserve::models
