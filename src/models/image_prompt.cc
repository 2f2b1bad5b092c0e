// Image-marker expansion and positions (see image_prompt.h).
#include "models/image_prompt.h"

#include <fmt/format.h>

#include <algorithm>

namespace vlserve::models {
namespace {

Status CheckVocabulary(const tokenizer::Tokenizer& tok, const VisionFamily& family,
                       const ImageLayout& layout) {
  for (const std::string& s : family.RequiredTokens(layout)) {
    if (tok.FindToken(s) < 0) {
      return InvalidArgumentError(fmt::format(
          "the text model's vocabulary has no '{}' token, which {} image prompts need; use "
          "the text model that belongs to this mmproj",
          s, family.name()));
    }
  }
  return OkStatus();
}

using Ranges = std::vector<std::pair<size_t, size_t>>;

// `text` as tokenizer spans: special tokens parsed outside `content` (sorted byte ranges
// relative to text, clipped to it), not inside.
std::vector<tokenizer::TextSpan> SpansOf(std::string_view text, const Ranges& content) {
  std::vector<tokenizer::TextSpan> spans;
  size_t pos = 0;
  for (auto [b, e] : content) {
    b = std::min(b, text.size());
    e = std::min(e, text.size());
    if (b > pos) spans.push_back({text.substr(pos, b - pos), true});
    if (e > b) spans.push_back({text.substr(b, e - b), false});
    pos = std::max(pos, e);
  }
  if (pos < text.size()) spans.push_back({text.substr(pos), true});
  return spans;
}

bool Overlaps(std::span<const std::pair<size_t, size_t>> ranges, size_t begin, size_t end) {
  for (const auto& [b, e] : ranges) {
    if (begin < e && b < end) return true;
  }
  return false;
}

}  // namespace

std::vector<int32_t> AssignRopePositions(int64_t num_tokens,
                                         const std::vector<PromptImageSpan>& spans,
                                         const std::vector<std::pair<int, int>>& grids,
                                         int64_t* next_position) {
  std::vector<int32_t> out(4 * num_tokens);
  int64_t p = 0, i = 0;
  auto text_until = [&](int64_t end) {
    for (; i < end; ++i, ++p) {
      for (int a = 0; a < 3; ++a) out[4 * i + a] = static_cast<int32_t>(p);
    }
  };
  for (size_t s = 0; s < spans.size(); ++s) {
    const PromptImageSpan& span = spans[s];
    text_until(span.position);
    const auto [rows, cols] = grids[s];
    if (rows * cols == 0) {  // no grid: 1-D, like text
      text_until(span.position + span.num_tokens);
      continue;
    }
    for (int64_t k = 0; k < span.num_tokens; ++k, ++i) {
      out[4 * i + 0] = static_cast<int32_t>(p);
      out[4 * i + 1] = static_cast<int32_t>(p + k / cols);
      out[4 * i + 2] = static_cast<int32_t>(p + k % cols);
    }
    p += std::max(rows, cols);
  }
  text_until(num_tokens);
  *next_position = p;
  return out;
}

StatusOr<ExpandedPrompt> ExpandImagePrompt(const tokenizer::Tokenizer& tok,
                                           const VisionModel& vision, const TextConfig& text,
                                           std::string_view prompt,
                                           const std::vector<ImageLayout>& layouts,
                                           const ImagePromptOptions& o) {
  const VisionFamily& family = vision.family();
  std::vector<std::string_view> texts;  // prompt split at the markers
  for (size_t pos = 0;;) {
    size_t at = prompt.find(o.marker, pos);
    // A marker inside message content is text a user typed, not an image.
    while (at != std::string_view::npos && Overlaps(o.content, at, at + o.marker.size())) {
      at = prompt.find(o.marker, at + 1);
    }
    texts.push_back(
        prompt.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    pos = at + o.marker.size();
  }
  const size_t markers = texts.size() - 1;
  if (markers != layouts.size()) {
    return InvalidArgumentError(fmt::format(
        "the prompt has {} image placeholder(s) '{}' but {} image(s) were given; give one "
        "image per placeholder",
        markers, o.marker, layouts.size()));
  }
  PromptPieces list;
  std::vector<Ranges> piece_content;  // per piece of `list`: its message-content ranges
  for (size_t i = 0; i <= markers; ++i) {
    list.Text(texts[i]);
    piece_content.resize(list.pieces().size());
    const size_t base = list.pieces().back().text.size() - texts[i].size();
    const size_t offset = static_cast<size_t>(texts[i].data() - prompt.data());
    for (const auto& [b, e] : o.content) {
      const size_t lo = std::max(b, offset), hi = std::min(e, offset + texts[i].size());
      if (lo < hi) piece_content.back().emplace_back(base + lo - offset, base + hi - offset);
    }
    if (i == markers) break;
    RETURN_IF_ERROR(CheckVocabulary(tok, family, layouts[i]));
    if (layouts[i].merged_rows * layouts[i].merged_cols > 0 && !text.rope_sections.active()) {
      return InvalidArgumentError(fmt::format(
          "{} images need multi-axis RoPE positions, but the text model ({}) has no "
          "'{}.rope.dimension_sections'; reconvert it with a current llama.cpp "
          "convert_hf_to_gguf.py",
          family.name(), text.arch, text.arch));
    }
    family.AppendPrompt(layouts[i], static_cast<int>(i), &list);
  }
  piece_content.resize(std::max<size_t>(list.pieces().size(), 1));
  ExpandedPrompt out;
  std::vector<std::pair<int, int>> grids;
  bool any_grid = false;
  const int32_t placeholder_id = tok.FindToken(family.placeholder());
  const int32_t placeholder = placeholder_id >= 0 ? placeholder_id : 0;
  // BOS as the tokenizer wants it, never twice: the template may already begin with the
  // BOS text (SmolVLM's <|im_start|>).
  const std::string_view first_text =
      list.pieces().empty() || list.pieces()[0].run_tokens > 0 ? "" : list.pieces()[0].text;
  if (o.add_special && tok.add_bos() && tok.bos_id() >= 0) {
    std::vector<int32_t> head;
    tok.EncodeSpans(SpansOf(first_text.substr(0, 64), piece_content[0]), {.add_special = false},
                    &head);
    if (head.empty() || head.front() != tok.bos_id()) out.tokens.push_back(tok.bos_id());
  }
  for (size_t k = 0; k < list.pieces().size(); ++k) {
    const PromptPieces::Piece& p = list.pieces()[k];
    if (p.run_tokens > 0) {
      out.spans.push_back(PromptImageSpan{static_cast<int64_t>(out.tokens.size()), p.run_tokens,
                                          p.image, p.first_row});
      grids.emplace_back(p.grid_rows, p.grid_cols);
      any_grid |= p.grid_rows * p.grid_cols > 0;
      out.tokens.insert(out.tokens.end(), p.run_tokens, placeholder);
    } else {
      tok.EncodeSpans(SpansOf(p.text, piece_content[k]), {.add_special = false}, &out.tokens);
    }
  }
  if (any_grid) {
    out.rope_positions = AssignRopePositions(static_cast<int64_t>(out.tokens.size()), out.spans,
                                             grids, &out.next_rope_position);
  }
  return out;
}

}  // namespace vlserve::models
