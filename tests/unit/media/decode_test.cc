// Decoders against Pillow (tests/golden/media, from tools/reference/media_fixtures.py),
// limits, and robustness on truncated and corrupted input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "media/exif.h"
#include "media/image.h"
#include "npy.h"

namespace vlserve::media {
namespace {

using testing::GoldenPath;
using testing::LoadNpy;
using testing::Npy;
using testing::ReadFile;

// Largest per-sample difference, or -1 when the shapes differ.
int MaxAbsDiff(const Image& image, const Npy& ref) {
  if (ref.shape.size() != 3 || ref.shape[0] != image.height || ref.shape[1] != image.width ||
      ref.shape[2] != 3) {
    return -1;
  }
  int max_diff = 0;
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(int{image.pixels[i]} - int{ref.data[i]}));
  }
  return max_diff;
}

TEST(DecodeTest, MatchesPillowConvertRgb) {
  std::ifstream manifest(GoldenPath("decode_cases.txt"));
  ASSERT_TRUE(manifest) << "missing tests/golden/media; run tools/reference/media_fixtures.py";
  std::string file, npy_name;
  int cases = 0;
  while (manifest >> file >> npy_name) {
    SCOPED_TRACE(file);
    std::vector<uint8_t> bytes = ReadFile(GoldenPath(file));
    Npy ref;
    ASSERT_TRUE(LoadNpy(GoldenPath(npy_name), &ref)) << npy_name;
    StatusOr<Image> image = Decode(bytes);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    // Pillow and TurboJPEG both use libjpeg-turbo's accurate integer IDCT with fancy
    // upsampling, and the same libwebp: every format matches exactly.
    EXPECT_EQ(MaxAbsDiff(*image, ref), 0);
    ++cases;
  }
  EXPECT_GE(cases, 29);
}

TEST(DecodeTest, JpegDctScalingMatchesPillowDraft) {
  std::vector<uint8_t> bytes = ReadFile(GoldenPath("photo.jpg"));  // 200x150
  for (auto [target, denom] : {std::pair{100, 2}, {50, 4}, {25, 8}, {20, 8}, {101, 1}, {0, 1}}) {
    SCOPED_TRACE(target);
    DecodeOptions options;
    options.target_long_edge = target;
    StatusOr<Image> image = Decode(bytes, options);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->dct_scale_denom, denom);
    EXPECT_EQ(image->source_width, 200);
    const std::string ref_name =
        denom == 1 ? "photo_jpg_rgb.npy" : "photo_jpg_draft" + std::to_string(denom) + "_rgb.npy";
    Npy ref;
    ASSERT_TRUE(LoadNpy(GoldenPath(ref_name), &ref));
    EXPECT_EQ(MaxAbsDiff(*image, ref), 0);
  }
}

TEST(DecodeTest, DetectsFormatByMagicOnly) {
  EXPECT_EQ(DetectImageFormat(ReadFile(GoldenPath("photo.jpg"))), ImageFormat::kJpeg);
  EXPECT_EQ(DetectImageFormat(ReadFile(GoldenPath("photo.png"))), ImageFormat::kPng);
  EXPECT_EQ(DetectImageFormat(ReadFile(GoldenPath("aux.bmp"))), ImageFormat::kBmp);
  EXPECT_EQ(DetectImageFormat(ReadFile(GoldenPath("aux_lossy.webp"))), ImageFormat::kWebp);
  const std::string text = "hello, this is not an image";
  std::vector<uint8_t> bytes(text.begin(), text.end());
  StatusOr<Image> image = Decode(bytes);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find("not a JPEG/PNG/WebP/BMP image (starts with 68 65"),
            std::string::npos)
      << image.status().message();
  EXPECT_EQ(Decode({}).status().code(), StatusCode::kInvalidArgument);
  const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
  EXPECT_EQ(Decode(gif).status().code(), StatusCode::kUnimplemented);
}

// Every prefix must fail cleanly (never crash, never read past the end: run under ASan).
TEST(DecodeTest, TruncatedInputIsAnErrorAtEveryOffset) {
  for (const char* name : {"photo.jpg", "aux_progressive.jpg", "photo.png", "aux.bmp",
                           "photo_lossless.webp", "aux_lossy.webp", "palette4.png", "exif_6.jpg"}) {
    SCOPED_TRACE(name);
    std::vector<uint8_t> bytes = ReadFile(GoldenPath(name));
    ASSERT_GT(bytes.size(), 100u);
    // All short prefixes, then ~250 offsets spread over the file. The last 16 bytes
    // are trailer-only (PNG IEND, JPEG EOI, BMP row padding) and may legitimately decode.
    const size_t stride = std::max<size_t>(1, bytes.size() / 250);
    for (size_t len = 0; len + 16 < bytes.size(); len += len < 64 ? 1 : stride) {
      StatusOr<Image> image = Decode(std::span(bytes.data(), len));
      ASSERT_FALSE(image.ok()) << "prefix of " << len << " bytes decoded";
      EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument) << image.status().ToString();
      if (len >= 16 && image.status().message().find("truncated") == std::string::npos) {
        ADD_FAILURE() << len << ": " << image.status().message();
      }
    }
  }
}

TEST(DecodeTest, CorruptedBytesNeverCrash) {
  std::mt19937 rng(1234);
  for (const char* name : {"photo.jpg", "photo.png", "aux.bmp", "photo_lossless.webp",
                           "aux_lossy.webp", "exif_8.jpg", "palette.png"}) {
    std::vector<uint8_t> original = ReadFile(GoldenPath(name));
    for (int trial = 0; trial < 150; ++trial) {
      std::vector<uint8_t> bytes = original;
      const int flips = 1 + trial % 4;
      for (int f = 0; f < flips; ++f) {
        // Bias towards the headers, where the interesting parsing is.
        size_t limit = trial % 2 ? std::min<size_t>(bytes.size(), 600) : bytes.size();
        bytes[rng() % limit] = static_cast<uint8_t>(rng());
      }
      StatusOr<Image> image = Decode(bytes);
      if (image.ok()) {
        EXPECT_EQ(image->pixels.size(), static_cast<size_t>(image->width) * image->height * 3);
      }
    }
  }
}

uint32_t Crc32(const uint8_t* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

TEST(DecodeTest, DecompressionBombsAreRejectedFromTheHeader) {
  // PNG declaring 50000 x 50000 (valid IHDR CRC), JPEG SOF and BMP header likewise.
  std::vector<uint8_t> png = ReadFile(GoldenPath("photo.png"));
  PutBe32(&png[16], 50000);
  PutBe32(&png[20], 50000);
  PutBe32(&png[29], Crc32(&png[12], 17));
  std::vector<uint8_t> jpeg = ReadFile(GoldenPath("photo.jpg"));
  size_t at = 2;  // walk the marker segments to the baseline frame header (SOF0)
  while (at + 4 < jpeg.size() && jpeg[at + 1] != 0xC0) at += 2 + (jpeg[at + 2] << 8 | jpeg[at + 3]);
  ASSERT_LT(at + 8, jpeg.size());
  jpeg[at + 5] = 50000 >> 8, jpeg[at + 6] = 50000 & 0xFF;  // height
  jpeg[at + 7] = 50000 >> 8, jpeg[at + 8] = 50000 & 0xFF;  // width
  std::vector<uint8_t> bmp = ReadFile(GoldenPath("aux.bmp"));
  bmp[18] = 0x50, bmp[19] = 0xC3, bmp[22] = 0x50, bmp[23] = 0xC3;  // 50000 little-endian
  for (const auto* bytes : {&png, &jpeg, &bmp}) {
    StatusOr<Image> image = Decode(*bytes);
    ASSERT_FALSE(image.ok());
    EXPECT_EQ(image.status().code(), StatusCode::kOutOfRange) << image.status().ToString();
    EXPECT_NE(image.status().message().find("50000x50000"), std::string::npos);
  }
  DecodeOptions tiny;
  tiny.max_pixels = 1000;
  for (const char* name : {"photo.jpg", "photo.png", "aux.bmp", "aux_lossy.webp"}) {
    EXPECT_EQ(Decode(ReadFile(GoldenPath(name)), tiny).status().code(), StatusCode::kOutOfRange)
        << name;
  }
  DecodeOptions few_bytes;
  few_bytes.max_bytes = 100;
  EXPECT_EQ(Decode(ReadFile(GoldenPath("photo.png")), few_bytes).status().code(),
            StatusCode::kOutOfRange);
}

// A 10,000,000 x 1 PNG is within the pixel limit, but resampling it cost ~1 GB: the
// header's aspect ratio is refused (400) before any pixel is allocated, like Qwen2-VL's
// processor does above 200:1.
TEST(DecodeTest, ExtremeAspectRatiosAreRejectedFromTheHeader) {
  const auto png_of = [](uint32_t width, uint32_t height) {
    std::vector<uint8_t> png = ReadFile(GoldenPath("photo.png"));
    PutBe32(&png[16], width);
    PutBe32(&png[20], height);
    PutBe32(&png[29], Crc32(&png[12], 17));
    return png;
  };
  for (auto [w, h] : {std::pair<uint32_t, uint32_t>{10'000'000, 1}, {1, 10'000'000}, {201, 1},
                      {20'100, 100}}) {
    StatusOr<Image> image = Decode(png_of(w, h));
    ASSERT_FALSE(image.ok());
    EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument) << image.status().ToString();
    EXPECT_NE(image.status().message().find("aspect ratio"), std::string::npos)
        << image.status().ToString();
  }
  // 200:1 passes (its one row is read from the photo's pixel data).
  StatusOr<Image> edge = Decode(png_of(200, 1));
  ASSERT_TRUE(edge.ok()) << edge.status().ToString();
  EXPECT_EQ(edge->width, 200);
}

TEST(ExifTest, ReadsBothByteOrdersAndRejectsBadOffsets) {
  for (int o = 1; o <= 8; ++o) {
    std::vector<uint8_t> bytes = ReadFile(GoldenPath("exif_" + std::to_string(o) + ".jpg"));
    EXPECT_EQ(ReadJpegExifOrientation(bytes), o);  // even: big-endian ("MM"), odd: "II"
  }
  // IFD0 with an orientation entry: "II", offset 8, 1 entry, tag 0x0112 SHORT 1 = 6.
  std::vector<uint8_t> tiff = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0,
                               1,   0,   0,  0, 6, 0, 0, 0, 0, 0, 0,    0};
  EXPECT_EQ(ReadTiffOrientation(tiff), 6);
  std::vector<uint8_t> bad = tiff;
  bad[4] = 0xF0;  // IFD offset past the end
  EXPECT_EQ(ReadTiffOrientation(bad), 1);
  bad = tiff;
  bad[8] = 0xFF, bad[9] = 0xFF;  // 65535 entries announced, only one present
  EXPECT_EQ(ReadTiffOrientation(bad), 6);
  bad = tiff;
  bad[18] = 9;  // orientation out of range
  EXPECT_EQ(ReadTiffOrientation(bad), 1);
  for (size_t n = 0; n < tiff.size(); ++n) {
    EXPECT_EQ(ReadTiffOrientation(std::span(tiff.data(), n)), n >= 20 ? 6 : 1) << n;
  }
}

}  // namespace
}  // namespace vlserve::media
