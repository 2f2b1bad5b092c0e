// Image-marker expansion and model-specific preprocessing (see image_prompt.h).
#include "models/image_prompt.h"

#include <fmt/format.h>

namespace vlserve::models {
namespace {

// The expanded prompt as alternating text pieces and embedding runs.
struct Piece {
  std::string text;        // when run_tokens == 0
  int64_t run_tokens = 0;  // > 0: an embedding run
  int image = 0;
  int64_t first_row = 0;
};

class PieceList {
 public:
  void Text(std::string_view s) {
    if (pieces_.empty() || pieces_.back().run_tokens > 0) pieces_.push_back(Piece{});
    pieces_.back().text += s;
  }
  void Run(int64_t n, int image, int64_t first_row) {
    pieces_.push_back(Piece{"", n, image, first_row});
  }
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<Piece> pieces_;
};

void AppendSmolVlmImage(const ImageTiling& t, int image, int64_t n, PieceList* out) {
  if (t.grid_rows * t.grid_cols == 0) {
    out->Text("<fake_token_around_image><global-img>");
    out->Run(n, image, 0);
    out->Text("<fake_token_around_image>");
    return;
  }
  int64_t row = 0;
  for (int r = 0; r < t.grid_rows; ++r) {
    for (int c = 0; c < t.grid_cols; ++c) {
      out->Text(fmt::format("<fake_token_around_image><row_{}_col_{}>", r + 1, c + 1));
      out->Run(n, image, row);
      row += n;
    }
    out->Text("\n");
  }
  out->Text("\n<fake_token_around_image><global-img>");
  out->Run(n, image, row);
  out->Text("<fake_token_around_image>");
}

Status CheckSmolVlmTokens(const tokenizer::Tokenizer& tok, const ImageTiling& t) {
  std::vector<std::string> needed = {"<fake_token_around_image>", "<global-img>"};
  if (t.grid_rows * t.grid_cols > 0) {
    needed.push_back(fmt::format("<row_{}_col_{}>", t.grid_rows, t.grid_cols));
  }
  for (const std::string& s : needed) {
    if (tok.FindToken(s) < 0) {
      return InvalidArgumentError(fmt::format(
          "the text model's vocabulary has no '{}' token, which SmolVLM image prompts need; "
          "use the text model that belongs to this mmproj",
          s));
    }
  }
  return OkStatus();
}

}  // namespace

ImagePromptStyle PromptStyleFor(const VisionModel& vision) {
  return vision.config().projector_type == "mlp" ? ImagePromptStyle::kLlava
                                                 : ImagePromptStyle::kSmolVlm;
}

StatusOr<ExpandedPrompt> ExpandImagePrompt(const tokenizer::Tokenizer& tok, std::string_view prompt,
                                           const std::vector<ImageTiling>& images,
                                           const ImagePromptOptions& o) {
  std::vector<std::string_view> texts;  // prompt split at the markers
  for (size_t pos = 0;;) {
    const size_t at = prompt.find(o.marker, pos);
    texts.push_back(
        prompt.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    pos = at + o.marker.size();
  }
  const size_t markers = texts.size() - 1;
  if (markers != images.size()) {
    return InvalidArgumentError(fmt::format(
        "the prompt has {} image placeholder(s) '{}' but {} image(s) were given; give one "
        "image per placeholder",
        markers, o.marker, images.size()));
  }
  if (o.tokens_per_tile <= 0) return InvalidArgumentError("tokens_per_tile must be positive");
  PieceList list;
  for (size_t i = 0; i <= markers; ++i) {
    list.Text(texts[i]);
    if (i == markers) break;
    if (o.style == ImagePromptStyle::kSmolVlm) {
      RETURN_IF_ERROR(CheckSmolVlmTokens(tok, images[i]));
      AppendSmolVlmImage(images[i], static_cast<int>(i), o.tokens_per_tile, &list);
    } else {
      list.Run(o.tokens_per_tile, static_cast<int>(i), 0);
    }
  }
  ExpandedPrompt out;
  const int32_t image_id = tok.FindToken(o.marker);
  const int32_t placeholder = image_id >= 0 ? image_id : 0;
  bool first = true;
  for (const Piece& p : list.pieces()) {
    if (p.run_tokens > 0) {
      out.spans.push_back(PromptImageSpan{static_cast<int64_t>(out.tokens.size()), p.run_tokens,
                                          p.image, p.first_row});
      out.tokens.insert(out.tokens.end(), p.run_tokens, placeholder);
    } else {
      tok.Encode(p.text, {.add_special = o.add_special && first, .parse_special = true},
                 &out.tokens);
    }
    first = false;
  }
  return out;
}

media::PixelTiles PreprocessForModel(const VisionModel& vision, const media::Image& image,
                                     media::BufferPool* pool, media::PreprocessScratch* scratch,
                                     media::PreprocessTimings* timings) {
  const VisionConfig& c = vision.config();
  media::NormalizeParams norm{c.image_mean, c.image_std};
  if (PromptStyleFor(vision) == ImagePromptStyle::kLlava) {
    media::LlavaPreprocessConfig cfg;
    cfg.image_size = static_cast<int>(c.image_size);
    cfg.norm = norm;
    return media::PreprocessLlava(image, cfg, pool, scratch, timings);
  }
  media::SmolVlmPreprocessConfig cfg;
  cfg.tile_size = static_cast<int>(c.image_size);
  cfg.longest_edge =
      static_cast<int>(c.preproc_image_size > 0 ? c.preproc_image_size : 4 * c.image_size);
  cfg.norm = norm;
  return media::PreprocessSmolVlm(image, cfg, pool, scratch, timings);
}

int DecodeHintForModel(const VisionModel& vision) {
  const VisionConfig& c = vision.config();
  if (PromptStyleFor(vision) == ImagePromptStyle::kLlava) {
    return static_cast<int>(c.image_size);
  }
  return static_cast<int>(c.preproc_image_size > 0 ? c.preproc_image_size : 4 * c.image_size);
}

}  // namespace vlserve::models
