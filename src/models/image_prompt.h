// Prompt assembly for vision-language models: the chat-templated prompt holds one image
// marker ("<image>") per image; each marker is expanded into the family's image tokens,
// and the result is tokenized with the spans where the encoder's embedding rows go.
//
// SmolVLM (projector idefics3), as transformers' Idefics3Processor (_prompt_split_image /
// _prompt_single_image) writes it, N = tokens per tile, rows/cols numbered from 1:
//   split image (grid R x C):
//     for r in 1..R: for c in 1..C: "<fake_token_around_image><row_r_col_c>" + N x "<image>"
//                    then "\n" after each row
//     "\n<fake_token_around_image><global-img>" + N x "<image>" + "<fake_token_around_image>"
//   single tile (not split):
//     "<fake_token_around_image><global-img>" + N x "<image>" + "<fake_token_around_image>"
// LLaVA-1.5 (projector mlp): the marker becomes N = 576 embedding rows, nothing else.
//
// Text between embedding runs is tokenized piecewise with special-token parsing; every
// piece boundary is an image token, which the HF tokenizer also splits at, so this equals
// tokenizing the fully expanded string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "media/preprocess.h"
#include "models/vision_model.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::models {

enum class ImagePromptStyle { kSmolVlm, kLlava };

// kSmolVlm for idefics3, kLlava for mlp.
ImagePromptStyle PromptStyleFor(const VisionModel& vision);

// How one image was tiled (from media::PixelTiles): grid_rows = grid_cols = 0 when not
// split (one tile); else grid_rows * grid_cols tiles + the global image.
struct ImageTiling {
  int grid_rows = 0;
  int grid_cols = 0;
  int num_tiles() const { return grid_rows * grid_cols > 0 ? grid_rows * grid_cols + 1 : 1; }
};

// One run of embedding rows in the expanded prompt.
struct PromptImageSpan {
  int64_t position = 0;    // index of the first placeholder token
  int64_t num_tokens = 0;  // rows
  int image = 0;           // which image (order of the markers)
  int64_t first_row = 0;   // row offset into that image's Encode output
};

struct ExpandedPrompt {
  std::vector<int32_t> tokens;         // placeholder id (`<image>` or 0) inside spans
  std::vector<PromptImageSpan> spans;  // in position order
};

struct ImagePromptOptions {
  ImagePromptStyle style = ImagePromptStyle::kSmolVlm;
  int64_t tokens_per_tile = 0;
  std::string_view marker = "<image>";
  bool add_special = true;  // BOS etc. as the tokenizer's add_bos says (first piece only)
};

// InvalidArgument when the number of markers in `prompt` differs from images.size()
// ("more images than placeholders"), or a tiling needs a <row_r_col_c> token the
// vocabulary does not have.
StatusOr<ExpandedPrompt> ExpandImagePrompt(const tokenizer::Tokenizer& tok, std::string_view prompt,
                                           const std::vector<ImageTiling>& images,
                                           const ImagePromptOptions& options);

// Preprocessing the model expects, from its mmproj: SmolVLM tiles of image_size with a
// longest edge of preproc_image_size (default 4 x image_size); LLaVA pad-to-square +
// resize to image_size. Both normalize with clip.vision.image_mean/std.
media::PixelTiles PreprocessForModel(const VisionModel& vision, const media::Image& image,
                                     media::BufferPool* pool, media::PreprocessScratch* scratch,
                                     media::PreprocessTimings* timings = nullptr);
// Long-edge decode hint for media::DecodeOptions::target_long_edge.
int DecodeHintForModel(const VisionModel& vision);

}  // namespace vlserve::models
