// A font face at one pixel size: HarfBuzz for shaping (OpenType functions, thread-safe),
// FreeType for rasterising, and a cache holding each glyph's coverage bitmap once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"

struct hb_font_t;
struct hb_blob_t;
struct hb_face_t;

namespace vlserve::render {

// 8-bit coverage of one glyph; (left, top) is the bitmap's offset from the pen position
// on the baseline (top grows upward, as in FreeType). Immutable once published.
struct GlyphBitmap {
  int16_t left = 0, top = 0;
  uint16_t width = 0, height = 0;
  const uint8_t* pixels = nullptr;  // [height, width], row-major, no padding
};

class Face {
 public:
  // size_px is the em size in pixels (pt * dpi / 72); x_scale stretches horizontally.
  static StatusOr<std::unique_ptr<Face>> Open(const std::string& path, double size_px,
                                               double x_scale);
  ~Face();
  Face(const Face&) = delete;
  Face& operator=(const Face&) = delete;

  hb_font_t* hb_font() const { return hb_font_; }
  const std::string& path() const { return path_; }
  // Nominal glyph for a code point, 0 if the face lacks it.
  uint32_t NominalGlyph(char32_t c) const;
  // Horizontal advance of a glyph in 26.6 pixels (unhinted, scaled).
  int32_t Advance(uint32_t glyph) const;

  // Ascent / descent (both positive) in pixels.
  double ascent_px() const { return ascent_px_; }
  double descent_px() const { return descent_px_; }

  // The cached bitmap of a glyph, rasterised on first use. Safe to call from several
  // threads; returned pointers stay valid for the Face's lifetime.
  const GlyphBitmap* Glyph(uint32_t glyph);

  int64_t cached_glyphs() const { return cached_glyphs_; }

 private:
  Face() = default;
  const GlyphBitmap* Rasterise(uint32_t glyph);  // under mu_
  uint8_t* AllocPixels(size_t bytes);

  std::string path_;
  std::vector<char> file_;
  hb_blob_t* hb_blob_ = nullptr;
  hb_face_t* hb_face_ = nullptr;
  hb_font_t* hb_font_ = nullptr;
  struct FtState;
  std::unique_ptr<FtState> ft_;
  double ascent_px_ = 0, descent_px_ = 0;

  std::mutex mu_;  // guards FreeType and the pools below
  // One slot per glyph id; null until rasterised. Lock-free reads.
  std::unique_ptr<std::atomic<const GlyphBitmap*>[]> slots_;
  uint32_t num_glyphs_ = 0;
  std::vector<std::unique_ptr<GlyphBitmap[]>> entry_blocks_;
  size_t entries_used_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> pixel_blocks_;
  size_t pixel_used_ = 0, pixel_capacity_ = 0;
  uint8_t* shared_block_ = nullptr;
  int64_t cached_glyphs_ = 0;
};

// The primary face plus an optional fallback (CJK) face.
struct FontSet {
  std::unique_ptr<Face> primary;
  std::unique_ptr<Face> fallback;  // may be null when no CJK font was found
  Face* face(int index) const { return index == 0 ? primary.get() : fallback.get(); }
};

// Default search lists (Debian paths). The first existing file wins.
const std::vector<std::string>& DefaultFontPaths();
const std::vector<std::string>& DefaultCjkFontPaths();

// Opens the primary font (path, or the default list) and the CJK fallback. A primary
// font that cannot be found is NotFound listing the paths tried; a missing CJK font
// only means CJK text renders as missing-glyph boxes (logged once).
StatusOr<FontSet> OpenFontSet(const std::string& font_path, const std::string& cjk_path,
                              double size_px, double x_scale);

}  // namespace vlserve::render
