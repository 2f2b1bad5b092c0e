// `vlserve render INPUT.txt -o DIR`: text -> page images plus a manifest.json.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "models/test_model.h"
#include "models/vision_model.h"
#include "tokenizer/gguf_config.h"
#include "command.h"
#include "render/png_write.h"
#include "render/renderer.h"
#include "render/vision_tokens.h"
#include "render_flags.h"

namespace vlserve::app {
namespace {

struct PageRecord {
  std::string file;
  render::PageLayout layout;  // glyphs dropped after writing
  render::VisionCost cost;
};

bool ReadInput(const std::string& path, std::string* text, std::string* error) {
  if (path == "-") {
    text->assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open input '" + path + "'";
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *text = std::move(ss).str();
  return true;
}

// exact_text_tokens: the text's token count under the model's own tokenizer (-m), if given.
std::string Manifest(const std::vector<PageRecord>& pages, const render::RenderSummary& summary,
                     const RenderFlags& flags, std::optional<int64_t> exact_text_tokens) {
  int64_t image_tokens = 0;
  for (const PageRecord& p : pages) image_tokens += p.cost.tokens;
  const int64_t text_tokens =
      exact_text_tokens ? *exact_text_tokens
                        : render::EstimateTextTokens(summary.text.chars - summary.text.cjk_chars,
                                                     summary.text.cjk_chars);
  const char* method = exact_text_tokens ? "exact (the -m model's tokenizer)"
                                         : "chars/4 + CJK chars (no tokenizer given)";
  std::string out = fmt::format(
      "{{\n  \"pages\": {},\n  \"chars\": {},\n  \"invalid_utf8_bytes\": {},\n"
      "  \"dpi\": {},\n  \"seconds\": {:.4f},\n"
      "  \"vision\": {{\"tile_size\": {}, \"tokens_per_tile\": {}, \"max_edge\": {}}},\n"
      "  \"image_tokens\": {},\n  \"text_tokens_estimate\": {},\n"
      "  \"text_tokens_method\": \"{}\",\n"
      "  \"compression_ratio_estimate\": {:.3f},\n  \"page_list\": [",
      pages.size(), summary.text.chars, summary.text.invalid_bytes, flags.options.dpi,
      summary.seconds, flags.vision.tile_size, flags.vision.tokens_per_tile,
      flags.vision.max_long_edge, image_tokens, text_tokens, method,
      image_tokens ? static_cast<double>(text_tokens) / image_tokens : 0.0);
  for (size_t i = 0; i < pages.size(); ++i) {
    const PageRecord& p = pages[i];
    out += fmt::format(
        "{}\n    {{\"file\": \"{}\", \"width\": {}, \"height\": {}, \"char_begin\": {}, "
        "\"char_end\": {}, \"chars\": {}, \"lines\": {}, \"tiles\": {}, \"image_tokens\": {}}}",
        i ? "," : "", p.file, p.layout.width_px, p.layout.height_px, p.layout.char_begin,
        p.layout.char_end, p.layout.chars(), p.layout.lines, p.cost.images, p.cost.tokens);
  }
  out += "\n  ]\n}\n";
  return out;
}

// A tower with `preset`'s image geometry (image size, patch, merge / scale factor, pixel
// bounds) but tiny random weights: its Plan is the real model's, its features are noise.
StatusOr<std::unique_ptr<models::VisionModel>> GeometryOnlyVision(const std::string& preset) {
  ASSIGN_OR_RETURN(models::VisionTestOptions o, models::VisionTestPreset(preset));
  o.hidden = 32, o.heads = 2, o.ffn = 64, o.text_hidden = 64, o.merger_ffn = 0;
  ASSIGN_OR_RETURN(gguf::Writer writer, models::BuildTestMmproj(o));
  ASSIGN_OR_RETURN(auto file, gguf::File::FromBytes(writer.WriteToString(), "vision-preset"));
  return models::VisionModel::Load(std::move(file));
}

int RunRender(int argc, char** argv) {
  CLI::App cli("Render text into page images (Glyph-style visual context compression)",
               "vlserve render");
  std::string input, out_dir, format = "png", model, mmproj, vision_preset;
  bool json = false, rgb = false;
  int threads = 0;
  RenderFlags flags;
  cli.add_option("input", input, "UTF-8 text file ('-' = stdin)")->required();
  cli.add_option("-o,--out", out_dir, "output directory (created)")->required();
  cli.add_option("--format", format, "png | pgm")->capture_default_str();
  cli.add_flag("--json", json, "print the manifest to stdout");
  cli.add_flag("--rgb", rgb, "RGB output instead of 8-bit grey");
  cli.add_option("-t,--threads", threads, "threads (0 = all)");
  cli.add_option("-m,--model", model, "text model GGUF (for the exact text-token count)");
  cli.add_option("--mmproj", mmproj, "vision projector GGUF (for the exact vision config)");
  cli.add_option("--vision-preset", vision_preset,
                 "estimate image tokens with this model's resize rule, no file needed: "
                 "smolvlm-256m, qwen2vl-2b, internvl3-1b, glm41v-9b (Glyph), ...")
      ->excludes("--mmproj");
  flags.Add(cli);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (std::string err = flags.Finish(); !err.empty()) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 2;
  }
  if (format != "png" && format != "pgm") {
    std::fprintf(stderr, "error: --format must be png or pgm, got '%s'\n", format.c_str());
    return 2;
  }
  // With --mmproj, each page's token cost is the loaded family's own layout rule.
  std::unique_ptr<models::VisionModel> vision;
  if (!mmproj.empty() || !vision_preset.empty()) {
    auto loaded =
        mmproj.empty() ? GeometryOnlyVision(vision_preset) : models::VisionModel::Load(mmproj);
    if (!loaded.ok()) {
      std::fprintf(stderr, "error: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    vision = std::move(*loaded);
    const models::VisionConfig& vc = vision->config();
    flags.vision.tile_size = static_cast<int>(vc.image_size);
    flags.vision.tokens_per_tile = static_cast<int>(vision->tokens_per_tile());
  }
  std::string text, error;
  if (!ReadInput(input, &text, &error)) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  std::optional<int64_t> exact_text_tokens;
  if (!model.empty()) {
    auto tok = tokenizer::LoadTokenizerFromGguf(model);
    if (!tok.ok()) {
      std::fprintf(stderr, "error: %s\n", tok.status().ToString().c_str());
      return 1;
    }
    exact_text_tokens = static_cast<int64_t>((*tok)->Encode(text).size());
  }
  auto renderer = render::Renderer::Create(flags.options);
  if (!renderer.ok()) {
    std::fprintf(stderr, "error: %s\n", renderer.status().ToString().c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    std::fprintf(stderr, "error: cannot create '%s': %s\n", out_dir.c_str(), ec.message().c_str());
    return 1;
  }
  ThreadPool pool(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<PageRecord> pages;
  render::RenderSummary summary;
  Status status = (*renderer)->RenderAll(
      text, rgb ? render::PixelFormat::kRgb8 : render::PixelFormat::kGrey8, &pool,
      [&](const render::PageLayout& page, const render::ImageView& image) {
        PageRecord rec;
        rec.file = fmt::format("page_{:04d}.{}", page.index, format == "png" ? "png" : (rgb ? "ppm" : "pgm"));
        const std::string path = (std::filesystem::path(out_dir) / rec.file).string();
        RETURN_IF_ERROR(format == "png" ? render::WritePng(path, image) : render::WritePnm(path, image));
        rec.layout.index = page.index;
        rec.layout.width_px = page.width_px;
        rec.layout.height_px = page.height_px;
        rec.layout.char_begin = page.char_begin;
        rec.layout.char_end = page.char_end;
        rec.layout.lines = page.lines;
        rec.cost = render::EstimateVisionTokens(page.width_px, page.height_px, flags.vision);
        if (vision != nullptr) {
          ASSIGN_OR_RETURN(models::ImageLayout l, vision->Plan(page.width_px, page.height_px));
          rec.cost.tokens = l.tokens;
          rec.cost.images = l.num_tiles;
          rec.cost.tiles_x = l.grid_cols;
          rec.cost.tiles_y = l.grid_rows;
          rec.cost.resized_width = l.tile_width;
          rec.cost.resized_height = l.tile_height;
        }
        pages.push_back(std::move(rec));
        return OkStatus();
      },
      &summary);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
    return 1;
  }
  if (summary.text.invalid_bytes > 0) {
    std::fprintf(stderr, "warning: %lld invalid UTF-8 bytes were replaced by U+FFFD\n",
                 static_cast<long long>(summary.text.invalid_bytes));
  }
  if (pages.empty()) std::fprintf(stderr, "warning: no visible text; no pages written\n");
  const std::string manifest = Manifest(pages, summary, flags, exact_text_tokens);
  std::ofstream(std::filesystem::path(out_dir) / "manifest.json") << manifest;
  if (json) {
    std::fputs(manifest.c_str(), stdout);
  } else {
    std::fprintf(stderr, "%zu pages, %lld chars in %.3f s -> %s\n", pages.size(),
                 static_cast<long long>(summary.text.chars), summary.seconds, out_dir.c_str());
  }
  return 0;
}

}  // namespace

VLSERVE_COMMAND("render", "render text into page images (Glyph-style)", RunRender);

}  // namespace vlserve::app
