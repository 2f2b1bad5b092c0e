// Model families (docs/architecture.md "Model families"). Everything that differs between
// vision-language families — how an image becomes encoder inputs (a tile grid or one
// dynamic-size patch grid) and how many tokens, the exact Hugging Face preprocessing, the
// wrapper tokens around image embeddings in the prompt, whether image tokens take 2-D
// M-RoPE positions, and the projector after the tower — lives in one VisionFamily per
// family (families/<name>.cc), found in one table by clip.projector_type (family.cc).
// Nothing outside src/models names a family or compares a projector string.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "gguf/gguf.h"
#include "media/image.h"
#include "media/preprocess.h"

namespace vlserve::models {

struct VisionConfig;
class Projector;

// How one image is laid out for the vision tower and the prompt. Decided by the family from
// the image's size; travels unchanged through media, the engine and the encoder cache
// (a cache hit rebuilds the same prompt without decoding the image again).
struct ImageLayout {
  int num_tiles = 1;                 // encoder inputs, each [3, tile_height, tile_width]
  int tile_height = 0, tile_width = 0;
  int grid_rows = 0, grid_cols = 0;  // tile grid (SmolVLM, InternVL); 0 = not split
  // M-RoPE families: the image's merged token grid; its tokens take (t, row, col)
  // positions. 0 = the tokens take consecutive 1-D positions.
  int merged_rows = 0, merged_cols = 0;
  int64_t tokens = 0;                // embedding rows of the whole image

  int64_t tile_floats() const { return int64_t{3} * tile_height * tile_width; }
  bool operator==(const ImageLayout&) const = default;
};

// Per-image token bounds (llama.cpp's --image-min-tokens / --image-max-tokens), applied
// through the family's resize rule. 0 = the family's own default.
struct ImageTokenLimits {
  int64_t min_tokens = 0;
  int64_t max_tokens = 0;
};

// The expanded prompt being built: text pieces and runs of embedding rows.
class PromptPieces {
 public:
  struct Piece {
    std::string text;        // when run_tokens == 0
    int64_t run_tokens = 0;  // > 0: a run of embedding rows
    int image = 0;
    int64_t first_row = 0;
    int grid_rows = 0, grid_cols = 0;  // M-RoPE grid of the run (0 = 1-D positions)
  };
  void Text(std::string_view s);
  void Run(int64_t rows, int image, int64_t first_row, int grid_rows = 0, int grid_cols = 0);
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<Piece> pieces_;
};

class VisionFamily {
 public:
  virtual ~VisionFamily() = default;
  virtual std::string_view name() const = 0;            // "SmolVLM", shown in logs and /v1/models
  virtual std::string_view projector_type() const = 0;  // clip.projector_type
  // The tower's last layer goes through v.post_ln before the projector.
  virtual bool uses_post_ln() const = 0;
  // Family-specific tower settings read from the mmproj (positions, norms, MLP kind...).
  virtual Status Configure(const gguf::File& file, VisionConfig* config) const;
  virtual StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& file,
                                                             const VisionConfig& config) const = 0;

  // Layout of an image of width x height pixels (decoded, EXIF applied). InvalidArgument /
  // OutOfRange for sizes the family cannot take.
  virtual StatusOr<ImageLayout> Plan(const VisionConfig& config, int width, int height,
                                     const ImageTokenLimits& limits) const = 0;
  // Long-edge hint for the decoder's DCT-domain downscaling (0 = decode at full size).
  virtual int DecodeHint(const VisionConfig& config) const = 0;
  // Pixels for `layout`, which Plan returned for this image's size.
  virtual media::PixelTiles Preprocess(const VisionConfig& config, const ImageLayout& layout,
                                       const media::Image& image, media::BufferPool* pool,
                                       media::PreprocessScratch* scratch,
                                       media::PreprocessTimings* timings) const = 0;
  // The image's part of the prompt (wrapper text around embedding runs), and the special
  // tokens it needs from the text vocabulary.
  virtual void AppendPrompt(const ImageLayout& layout, int image, PromptPieces* out) const = 0;
  // The token id the prompt holds where embedding rows go ("<image>", "<|image_pad|>"; 0
  // when the vocabulary has none).
  virtual std::string_view placeholder() const { return "<image>"; }
  virtual std::vector<std::string> RequiredTokens(const ImageLayout& layout) const = 0;
};

// The table (family.cc), in order; "idefics3, mlp, qwen2vl_merger, qwen2.5vl_merger,
// internvl, glm4v, qwen3vl_merger".
const std::vector<const VisionFamily*>& VisionFamilies();
std::string SupportedProjectorList();
// Unimplemented "mmproj projector_type 'x' is not supported; supported: ...".
StatusOr<const VisionFamily*> FindVisionFamily(std::string_view projector_type);

// Shared by the dynamic-resolution families (Qwen-VL, GLM-4.1V), whose resize rules differ:
// the pixel bound a per-request token limit gives (`tokens` x factor², or the config's
// `config_pixels` when the request sets none), and the layout of one tile of the resized
// height x width with its merged token grid (each side / factor).
int64_t PixelBound(int64_t tokens, int64_t factor, int64_t config_pixels);
ImageLayout DynamicGridLayout(int64_t height, int64_t width, int64_t factor);

// One file each under families/.
const VisionFamily& SmolVlmFamily();
const VisionFamily& LlavaFamily();
const VisionFamily& Qwen2VlFamily();
const VisionFamily& Qwen25VlFamily();
const VisionFamily& InternVlFamily();
const VisionFamily& Glm4vFamily();
const VisionFamily& Qwen3VlFamily();

}  // namespace vlserve::models
