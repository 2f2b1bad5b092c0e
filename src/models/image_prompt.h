// Prompt assembly for vision-language models: the chat-templated prompt holds one image
// marker ("<image>") per image; the image's family (family.h) expands each marker into
// its wrapper tokens around runs of embedding rows, the result is tokenized with the spans
// where the encoder's rows go, and — for M-RoPE text models — every token gets its RoPE
// position per axis (docs/architecture.md "Positions"):
//   text tokens take (p, p, p, 0) and advance p by one;
//   an embedding run with an M-RoPE grid of R x C rows starting at p gives row-major token
//   (r, c) the position (p, p + r, p + c, 0), and the text after it resumes at
//   p + max(R, C) (transformers' get_rope_index for Qwen2-VL / Qwen2.5-VL images,
//   GLM-4.1V and Qwen3-VL);
//   a run without a grid takes consecutive positions like text.
//
// Text between embedding runs is tokenized piecewise with special-token parsing (except in
// message content, see ImagePromptOptions::content); every
// piece boundary is an image token, which the HF tokenizer also splits at, so this equals
// tokenizing the fully expanded string.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "models/family.h"
#include "models/text_model.h"
#include "models/vision_model.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::models {

// One run of embedding rows in the expanded prompt.
struct PromptImageSpan {
  int64_t position = 0;    // index of the first placeholder token
  int64_t num_tokens = 0;  // rows
  int image = 0;           // which image (order of the markers)
  int64_t first_row = 0;   // row offset into that image's Encode output
};

struct ExpandedPrompt {
  std::vector<int32_t> tokens;         // the family's placeholder id inside spans
  std::vector<PromptImageSpan> spans;  // in position order
  // M-RoPE text models with grid runs: [tokens.size(), 4] positions, and the position of
  // the token after the prompt (generated tokens continue from it on every axis). Empty
  // otherwise: a token's position is its index.
  std::vector<int32_t> rope_positions;
  int64_t next_rope_position = 0;
};

struct ImagePromptOptions {
  std::string_view marker = "<image>";
  // Byte ranges [begin, end) of the prompt that are message content (ChatPrompt::content,
  // sorted): markers there are plain text and special tokens are not parsed there.
  std::span<const std::pair<size_t, size_t>> content;
  // BOS when the tokenizer's add_bos says so, never twice (a template that already starts
  // with the BOS text keeps one).
  bool add_special = true;
};

// InvalidArgument when the number of markers differs from layouts.size(), when the
// vocabulary lacks a token the family's prompt needs (the mmproj does not belong to this
// text model), or when the family gives image tokens grid positions but the text model
// has no M-RoPE sections (a GGUF converted without rope.dimension_sections).
StatusOr<ExpandedPrompt> ExpandImagePrompt(const tokenizer::Tokenizer& tok,
                                           const VisionModel& vision, const TextConfig& text,
                                           std::string_view prompt,
                                           const std::vector<ImageLayout>& layouts,
                                           const ImagePromptOptions& options);

// The positions rule above over an already expanded token list (exposed for tests).
// Spans' grids come from `grids` ([spans.size()] of (rows, cols); (0, 0) = 1-D).
std::vector<int32_t> AssignRopePositions(int64_t num_tokens,
                                         const std::vector<PromptImageSpan>& spans,
                                         const std::vector<std::pair<int, int>>& grids,
                                         int64_t* next_position);

}  // namespace vlserve::models
