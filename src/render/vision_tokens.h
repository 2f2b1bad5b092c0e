// How many VLM tokens a page image will cost, for a tiling vision preprocessor. The
// defaults are SmolVLM-256M's (Idefics3 processor): the longest edge is resized to 2048
// (up or down), each side rounded up to a multiple of 512, 512-px tiles of
// (512/16)^2 / 4^2 = 64 tokens each, plus one global 512-px image when there is more
// than one tile. The server passes the loaded model's numbers instead.
#pragma once

#include <cstdint>

namespace vlserve::render {

struct VisionConfig {
  int tile_size = 512;        // vision encoder input side (pixels)
  int tokens_per_tile = 64;   // tokens one tile becomes after projection
  int max_long_edge = 2048;   // the processor resizes the longest edge to this
  bool upscale = true;        // also resize images whose longest edge is smaller
  bool global_image = true;   // add a downscaled whole-image tile when split
};

struct VisionCost {
  int resized_width = 0, resized_height = 0;
  int tiles_x = 0, tiles_y = 0;
  int images = 0;  // tiles plus the global image
  int64_t tokens = 0;
};

VisionCost EstimateVisionTokens(int width, int height, const VisionConfig& config);

// Text-token estimate used when no tokenizer is given: 1 token per 4 characters of
// non-CJK text plus 1 per CJK character (BPE vocabularies of small models rarely merge
// Han characters).
int64_t EstimateTextTokens(int64_t non_cjk_chars, int64_t cjk_chars);

}  // namespace vlserve::render
