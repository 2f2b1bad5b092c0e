// EXIF orientation: read from a JPEG's APP1 segment and applied to decoded pixels.
#pragma once

#include <cstdint>
#include <span>

#include "media/image.h"

namespace vlserve::media {

// Returns the EXIF orientation (1..8) of a JPEG file, or 1 when there is no valid Exif
// APP1 segment or no orientation tag (0x0112) in IFD0. Never reads out of bounds.
int ReadJpegExifOrientation(std::span<const uint8_t> jpeg);

// Parses a TIFF header + IFD0 ("II*\0" or "MM\0*") and returns tag 0x0112, or 1.
int ReadTiffOrientation(std::span<const uint8_t> tiff);

// Applies orientation like PIL.ImageOps.exif_transpose (2: mirror, 3: rotate 180,
// 4: flip, 5: transpose, 6: rotate 90 clockwise, 7: transverse, 8: rotate 90
// counter-clockwise). Orientations 5-8 swap width and height.
Image ApplyOrientation(Image image, int orientation);

}  // namespace vlserve::media
