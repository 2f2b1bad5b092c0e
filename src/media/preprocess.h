// Model-family image preprocessing: resize, pad, tile and normalize into float32 CHW
// tiles, following the Hugging Face image processors (docs/media.md has each rule with
// its source). All sizes come from the model (GGUF clip.vision.* keys), not constants.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "media/buffer_pool.h"
#include "media/image.h"
#include "media/resize.h"

namespace vlserve::media {

// (x / 255 - mean) / std per channel.
struct NormalizeParams {
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> std{0.5f, 0.5f, 0.5f};
};

// transformers Idefics3ImageProcessor (SmolVLM).
struct SmolVlmPreprocessConfig {
  bool do_resize = true;
  int longest_edge = 2048;        // size["longest_edge"]: first, aspect-keeping resize
  int upper_bound = 4096;         // MAX_IMAGE_SIZE cap applied after that resize
  bool do_image_splitting = true;
  int tile_size = 512;            // max_image_size["longest_edge"] = vision image_size
  ResampleFilter filter = ResampleFilter::kLanczos;
  NormalizeParams norm;
};

// LLaVA-1.5: expand2square with the mean colour, then CLIPImageProcessor.
struct LlavaPreprocessConfig {
  bool pad_to_square = true;
  int image_size = 336;           // shortest_edge resize and centre crop
  ResampleFilter filter = ResampleFilter::kBicubic;
  NormalizeParams norm{{0.48145466f, 0.4578275f, 0.40821073f},
                       {0.26862954f, 0.26130258f, 0.27577711f}};
};

struct PreprocessTimings {
  double resize_ms = 0;
  double normalize_ms = 0;  // tiling + normalization (one fused pass)
};

// Output tiles: pixels is [num_tiles, 3, tile_height, tile_width], float32,
// channel-planar. SmolVLM order: grid_rows x grid_cols tiles row-major, then the global
// image last; grid_rows = grid_cols = 0 when the image was not split (one tile).
// Dynamic-resolution families (Qwen2-VL) have one tile of the resized image's size.
struct PixelTiles {
  int tile_width = 0;
  int tile_height = 0;
  int grid_rows = 0;
  int grid_cols = 0;
  int num_tiles = 0;
  BufferPool::Lease pixels;

  size_t tile_floats() const { return static_cast<size_t>(3) * tile_width * tile_height; }
  const float* Tile(int i) const { return pixels.data() + i * tile_floats(); }
  float* MutableTile(int i) { return pixels.data() + i * tile_floats(); }
};

// Output size (width, height) of each SmolVLM resize step for a source size.
struct SmolVlmSizes {
  int resized_width, resized_height;  // after the longest-edge resize
  int encoder_width, encoder_height;  // after resize_for_vision_encoder
};
SmolVlmSizes ComputeSmolVlmSizes(int width, int height, const SmolVlmPreprocessConfig& config);

// The long-edge hint to pass to Decode (DecodeOptions::target_long_edge) for each family.
int SmolVlmDecodeHint(const SmolVlmPreprocessConfig& config);
int LlavaDecodeHint(const LlavaPreprocessConfig& config);

// Reusable intermediate images, so a worker thread preprocesses without allocating.
struct PreprocessScratch {
  Image a, b, c;
  std::vector<uint8_t> resize_tmp;
};

PixelTiles PreprocessSmolVlm(const Image& image, const SmolVlmPreprocessConfig& config,
                             BufferPool* pool, PreprocessScratch* scratch,
                             PreprocessTimings* timings = nullptr);

PixelTiles PreprocessLlava(const Image& image, const LlavaPreprocessConfig& config,
                           BufferPool* pool, PreprocessScratch* scratch,
                           PreprocessTimings* timings = nullptr);

// Resizes `image` to exactly width x height with `filter` and normalizes it into one tile
// (dynamic-resolution families; the size comes from the family's resize rule).
PixelTiles PreprocessResized(const Image& image, int width, int height, ResampleFilter filter,
                             const NormalizeParams& norm, BufferPool* pool,
                             PreprocessScratch* scratch, PreprocessTimings* timings = nullptr);

// Writes [x0, x0 + width) x [y0, y0 + height) of `src` as normalized CHW floats into `out`
// ([3, height, width]); pixels outside `src` become 0.0.
void NormalizeRegion(const Image& src, int x0, int y0, int width, int height,
                     const NormalizeParams& norm, float* out);

// Writes the region [x0, x0 + tile) x [y0, y0 + tile) of `src` as normalized CHW floats
// into `out` ([3, tile, tile]); pixels outside `src` become 0.0 (HF's zero padding,
// which happens after normalization).
void NormalizeTile(const Image& src, int x0, int y0, int tile, const NormalizeParams& norm,
                   float* out);

}  // namespace vlserve::media
