#include "render/font.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ot.h>
#include <hb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/log.h"

namespace vlserve::render {

struct Face::FtState {
  FT_Library library = nullptr;
  FT_Face face = nullptr;
  ~FtState() {
    if (face) FT_Done_Face(face);
    if (library) FT_Done_FreeType(library);
  }
};

namespace {

constexpr size_t kEntryBlock = 1024;
constexpr size_t kPixelBlock = 64 * 1024;
// Hinting: vertical-only native hinting (FreeType's v40 interpreter) keeps horizontal
// advances as HarfBuzz computes them while snapping stems to the pixel rows; embedded
// bitmaps are skipped so every face renders anti-aliased.
constexpr FT_Int32 kLoadFlags = FT_LOAD_DEFAULT | FT_LOAD_NO_BITMAP;

StatusOr<std::vector<char>> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFoundError("cannot open font file '" + path + "'");
  const std::streamsize size = in.tellg();
  std::vector<char> data(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(data.data(), size)) {
    return DataLossError("cannot read font file '" + path + "'");
  }
  return data;
}

}  // namespace

StatusOr<std::unique_ptr<Face>> Face::Open(const std::string& path, double size_px,
                                           double x_scale) {
  if (!(size_px >= 1 && size_px <= 1000)) {
    return InvalidArgumentError("font size must be 1..1000 pixels, got " +
                                std::to_string(size_px));
  }
  std::unique_ptr<Face> face(new Face());
  face->path_ = path;
  ASSIGN_OR_RETURN(face->file_, ReadFile(path));
  face->ft_ = std::make_unique<FtState>();
  if (FT_Init_FreeType(&face->ft_->library) != 0) return InternalError("FT_Init_FreeType failed");
  if (FT_New_Memory_Face(face->ft_->library,
                         reinterpret_cast<const FT_Byte*>(face->file_.data()),
                         static_cast<FT_Long>(face->file_.size()), 0, &face->ft_->face) != 0) {
    return InvalidArgumentError("'" + path + "' is not a font FreeType can read");
  }
  FT_Face ft = face->ft_->face;
  if (FT_Set_Char_Size(ft, 0, static_cast<FT_F26Dot6>(std::lround(size_px * 64)), 72, 72) != 0) {
    return InvalidArgumentError("cannot set size " + std::to_string(size_px) + " px on '" + path +
                                "'");
  }
  FT_Matrix matrix{static_cast<FT_Fixed>(std::lround(x_scale * 65536)), 0, 0, 0x10000};
  FT_Set_Transform(ft, &matrix, nullptr);

  face->hb_blob_ = hb_blob_create(face->file_.data(), static_cast<unsigned>(face->file_.size()),
                                  HB_MEMORY_MODE_READONLY, nullptr, nullptr);
  face->hb_face_ = hb_face_create(face->hb_blob_, 0);
  face->hb_font_ = hb_font_create(face->hb_face_);
  hb_ot_font_set_funcs(face->hb_font_);
  // Positions come back in 26.6 pixels.
  const double em_26_6 = size_px * 64;
  hb_font_set_scale(face->hb_font_, static_cast<int>(std::lround(em_26_6 * x_scale)),
                    static_cast<int>(std::lround(em_26_6)));
  hb_font_make_immutable(face->hb_font_);

  hb_font_extents_t extents{};
  hb_font_get_h_extents(face->hb_font_, &extents);
  face->ascent_px_ = extents.ascender / 64.0;
  face->descent_px_ = -extents.descender / 64.0;

  face->num_glyphs_ = static_cast<uint32_t>(ft->num_glyphs);
  face->slots_ = std::make_unique<std::atomic<const GlyphBitmap*>[]>(face->num_glyphs_ + 1);
  for (uint32_t i = 0; i <= face->num_glyphs_; ++i) face->slots_[i].store(nullptr);
  return face;
}

Face::~Face() {
  if (hb_font_) hb_font_destroy(hb_font_);
  if (hb_face_) hb_face_destroy(hb_face_);
  if (hb_blob_) hb_blob_destroy(hb_blob_);
}

uint32_t Face::NominalGlyph(char32_t c) const {
  hb_codepoint_t glyph = 0;
  return hb_font_get_nominal_glyph(hb_font_, c, &glyph) ? glyph : 0;
}

int32_t Face::Advance(uint32_t glyph) const {
  return hb_font_get_glyph_h_advance(hb_font_, glyph);
}

const GlyphBitmap* Face::Glyph(uint32_t glyph) {
  if (glyph > num_glyphs_) glyph = 0;  // out-of-range ids render as .notdef
  const GlyphBitmap* cached = slots_[glyph].load(std::memory_order_acquire);
  if (cached) return cached;
  std::lock_guard<std::mutex> lock(mu_);
  cached = slots_[glyph].load(std::memory_order_relaxed);
  if (cached) return cached;
  cached = Rasterise(glyph);
  slots_[glyph].store(cached, std::memory_order_release);
  return cached;
}

uint8_t* Face::AllocPixels(size_t bytes) {
  if (bytes > kPixelBlock / 4) {  // large glyphs get their own block
    pixel_blocks_.push_back(std::make_unique<uint8_t[]>(bytes));
    return pixel_blocks_.back().get();
  }
  if (pixel_used_ + bytes > pixel_capacity_) {
    // The current big-glyph block (if any) stays where it is; open a fresh shared one.
    pixel_blocks_.push_back(std::make_unique<uint8_t[]>(kPixelBlock));
    pixel_used_ = 0;
    pixel_capacity_ = kPixelBlock;
    shared_block_ = pixel_blocks_.back().get();
  }
  uint8_t* p = shared_block_ + pixel_used_;
  pixel_used_ += bytes;
  return p;
}

const GlyphBitmap* Face::Rasterise(uint32_t glyph) {
  if (entries_used_ % kEntryBlock == 0) {
    entry_blocks_.push_back(std::make_unique<GlyphBitmap[]>(kEntryBlock));
  }
  GlyphBitmap* entry = &entry_blocks_.back()[entries_used_ % kEntryBlock];
  ++entries_used_;
  ++cached_glyphs_;
  FT_Face ft = ft_->face;
  if (FT_Load_Glyph(ft, glyph, kLoadFlags) != 0 ||
      FT_Render_Glyph(ft->glyph, FT_RENDER_MODE_NORMAL) != 0) {
    return entry;  // an empty bitmap: the glyph is skipped, its advance still counts
  }
  const FT_Bitmap& bm = ft->glyph->bitmap;
  if (bm.pixel_mode != FT_PIXEL_MODE_GRAY || bm.width == 0 || bm.rows == 0) return entry;
  const size_t bytes = static_cast<size_t>(bm.width) * bm.rows;
  uint8_t* pixels = AllocPixels(bytes);
  for (unsigned y = 0; y < bm.rows; ++y) {
    std::memcpy(pixels + y * bm.width, bm.buffer + static_cast<ptrdiff_t>(y) * bm.pitch,
                bm.width);
  }
  entry->left = static_cast<int16_t>(ft->glyph->bitmap_left);
  entry->top = static_cast<int16_t>(ft->glyph->bitmap_top);
  entry->width = static_cast<uint16_t>(bm.width);
  entry->height = static_cast<uint16_t>(bm.rows);
  entry->pixels = pixels;
  return entry;
}

const std::vector<std::string>& DefaultFontPaths() {
  static const std::vector<std::string> paths = {
      "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
      "/usr/share/fonts/TTF/DejaVuSans.ttf",
      "/usr/share/fonts/dejavu/DejaVuSans.ttf",
      "/usr/local/share/fonts/DejaVuSans.ttf",
  };
  return paths;
}

const std::vector<std::string>& DefaultCjkFontPaths() {
  static const std::vector<std::string> paths = {
      "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
      "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
      "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
      "/usr/share/fonts/truetype/arphic/uming.ttc",
  };
  return paths;
}

namespace {

StatusOr<std::string> FindFont(const std::string& explicit_path,
                               const std::vector<std::string>& defaults, const char* what) {
  if (!explicit_path.empty()) {
    if (std::filesystem::is_regular_file(explicit_path)) return explicit_path;
    return NotFoundError(std::string(what) + " file '" + explicit_path +
                         "' does not exist; pass an existing .ttf/.otf/.ttc path");
  }
  std::string tried;
  for (const std::string& p : defaults) {
    if (std::filesystem::is_regular_file(p)) return p;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  return NotFoundError(std::string("no ") + what + " found; tried " + tried +
                       " (install fonts-dejavu-core / fonts-wqy-zenhei or pass a path)");
}

}  // namespace

StatusOr<FontSet> OpenFontSet(const std::string& font_path, const std::string& cjk_path,
                              double size_px, double x_scale) {
  FontSet set;
  ASSIGN_OR_RETURN(std::string primary, FindFont(font_path, DefaultFontPaths(), "font"));
  ASSIGN_OR_RETURN(set.primary, Face::Open(primary, size_px, x_scale));
  StatusOr<std::string> cjk = FindFont(cjk_path, DefaultCjkFontPaths(), "CJK font");
  if (!cjk.ok()) {
    if (!cjk_path.empty()) return cjk.status();  // an explicit path must exist
    LOG_WARN("{}; CJK characters will render as boxes", cjk.status().message());
    return set;
  }
  ASSIGN_OR_RETURN(set.fallback, Face::Open(*cjk, size_px, x_scale));
  return set;
}

}  // namespace vlserve::render
