// vlserve make-test-model: writes a deterministic random-weight model (DIR/text.gguf).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "command.h"
#include "kernels/types.h"
#include "models/test_model.h"

namespace vlserve::app {
namespace {

int RunMakeTestModel(int argc, char** argv) {
  CLI::App cli("Write a deterministic random-weight model in llama.cpp's GGUF conventions "
               "(DIR/text.gguf, and DIR/mmproj.gguf with --vision); the same options give the "
               "same bytes on every machine.",
               "vlserve make-test-model");
  std::string arch = "llama", dims, type = "f32", preset, out_dir, name;
  uint64_t seed = 1;
  bool tied = false, untied = false;
  cli.add_option("--arch", arch, "architecture: llama | qwen2 | qwen2vl | glm4 | qwen3vl")
      ->capture_default_str();
  cli.add_option("--preset", preset,
                 "real model shapes: smolvlm-256m | smolvlm-500m | qwen2vl-2b | qwen25vl-3b | "
                 "internvl3-1b | glm41v-9b (GLM-4.1V-9B / Glyph; with --vision glm4v) | "
                 "qwen3vl-2b (Qwen3-VL-2B) "
                 "(random weights)");
  bool no_rope_sections = false;
  cli.add_flag("--no-rope-sections", no_rope_sections,
               "qwen2vl, glm4, qwen3vl: omit rope.dimension_sections (a file that must be "
               "reconverted to serve images)");
  cli.add_option("--dims", dims,
                 "comma-separated key=N: hidden, layers, heads, kv_heads, ffn, vocab "
                 "(0 = built-in BPE vocabulary, ~512), context, head_dim (qwen3vl; 0 = "
                 "hidden / heads)");
  cli.add_option("--type", type, "matrix weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 "
                 "q4_k q5_k q6_k (norms/biases stay f32). As llama.cpp does, a matrix whose "
                 "width is not a multiple of 256 falls back from q4_k/q5_k/q6_k to "
                 "q5_0/q5_1/q8_0 (f16 if not a multiple of 32 either)")->capture_default_str();
  std::string vocab_from;
  cli.add_option("--vocab-from", vocab_from,
                 "take the byte-level BPE vocabulary (tokens, merges, pre-tokenizer) of this "
                 "GGUF, e.g. llama.cpp's models/ggml-vocab-gpt-2.gguf, instead of the built-in "
                 "~512-token one, so English text costs what a real tokenizer makes of it; the "
                 "family's special tokens are added, dummies pad to the preset's vocab size");
  cli.add_option("--seed", seed, "PRNG seed")->capture_default_str();
  cli.add_option("--name", name, "general.name");
  cli.add_flag("--tied", tied, "no output.weight (logits use token_embd); llama default");
  cli.add_flag("--untied", untied, "write output.weight; qwen2 default");
  std::string vision, vision_type = "f32";
  cli.add_option("--vision", vision,
                 "also write DIR/mmproj.gguf with this projector: idefics3 (SigLIP-style, "
                 "SmolVLM) | mlp (CLIP-style, LLaVA-1.5) | qwen2vl_merger (Qwen2-VL) | "
                 "qwen2.5vl_merger (Qwen2.5-VL) | "
                 "internvl (InternViT, InternVL; use --arch qwen2) | "
                 "glm4v (GLM-4.1V; use --arch glm4) | "
                 "qwen3vl_merger (Qwen3-VL; use --arch qwen3vl); tiny dims, or the preset's "
                 "tower");
  cli.add_option("--vision-type", vision_type, "mmproj matrix type: f32 | f16 | bf16 | q8_0 (matrices whose rows do not split into 32-blocks stay f16, as llama.cpp does)")
      ->capture_default_str();
  cli.add_option("-o,--output", out_dir, "output directory")->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  models::TestModelOptions options;
  if (!preset.empty()) {
    auto p = models::TestModelPreset(preset);
    if (!p.ok()) {
      std::fprintf(stderr, "error: %s\n", p.status().message().c_str());
      return 2;
    }
    options = *p;
  } else {
    options.arch = arch;
  }
  if (auto s = models::ParseTestModelDims(dims, &options); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }
  if ((options.arch == "qwen2vl" || options.arch == "glm4" || options.arch == "qwen3vl") &&
      !options.rope_sections && options.heads > 0) {
    options.rope_sections = models::TestRopeSections(options);
  }
  if (no_rope_sections) options.rope_sections.reset();
  auto dtype = DTypeFromName(type);
  if (!dtype) {
    std::fprintf(stderr, "error: unknown --type '%s'\n", type.c_str());
    return 2;
  }
  options.type = *dtype;
  options.seed = seed;
  options.vocab_from = vocab_from;
  if (!name.empty()) options.name = name;
  if (tied && untied) {
    std::fprintf(stderr, "error: --tied and --untied exclude each other\n");
    return 2;
  }
  if (tied || untied) options.tied = tied;
  if (auto s = models::WriteTestModel(options, out_dir); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s/text.gguf\n", out_dir.c_str());
  if (vision.empty()) return 0;
  models::VisionTestOptions v = models::TinyVisionTestOptions(vision);
  if (!preset.empty()) {
    auto p = models::VisionTestPreset(preset);
    if (!p.ok()) {
      std::fprintf(stderr, "error: %s\n", p.status().message().c_str());
      return 2;
    }
    v = *p;
    if (vision != v.projector) {
      std::fprintf(stderr, "error: --preset %s has a %s projector, not %s\n", preset.c_str(),
                   v.projector.c_str(), vision.c_str());
      return 2;
    }
  }
  v.projector = vision;
  v.text_hidden = options.hidden;
  if (v.projector == "qwen3vl_merger" && options.arch == "qwen3vl") {
    // One deepstack merger per text deepstack layer, spread over the tower as Qwen3-VL's.
    v.deepstack_layers =
        models::SpreadDeepstackLayers(v.layers, models::TestDeepstackLayers(options));
  }
  v.seed = seed;
  auto vtype = DTypeFromName(vision_type);
  if (!vtype || (*vtype != DType::kF32 && *vtype != DType::kF16 && *vtype != DType::kBF16 &&
                 *vtype != DType::kQ8_0)) {
    std::fprintf(stderr, "error: --vision-type must be f32, f16, bf16 or q8_0, not '%s'\n",
                 vision_type.c_str());
    return 2;
  }
  v.type = *vtype;
  if (auto s = models::WriteTestMmproj(v, out_dir); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s/mmproj.gguf\n", out_dir.c_str());
  return 0;
}

}  // namespace

VLSERVE_COMMAND("make-test-model", "write a deterministic random-weight test model",
                RunMakeTestModel);

}  // namespace vlserve::app
