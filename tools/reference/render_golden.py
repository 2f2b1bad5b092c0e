#!/usr/bin/python3
"""Regenerates tests/golden/render/hello_16px.pgm, the golden image for
tests/unit/render/golden_test.cc, by an independent path: Pillow's FreeType text
drawing (raqm/HarfBuzz layout when available) instead of vlserve's renderer.

Geometry (must match golden_test.cc): DejaVu Sans 12 pt at 96 dpi = 16 px em, page
300 x 30 pt = 400 x 40 px, margins 6 pt = 8 px, line height 14 pt = 18.667 px; the
first baseline is the line box's top + (line height + ascent - descent) / 2 with
ascent/descent from the font's hhea table, rounded to a pixel.

Run: /usr/bin/python3 tools/reference/render_golden.py
"""
import os
import struct

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TEXT = "Hello, world! AVAWAY fi 0123 (Glyph)."
EM_PX = 16
WIDTH, HEIGHT, MARGIN, LINE = 400, 40, 8, 14 * 96 / 72
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "render",
                   "hello_16px.pgm")


def hhea_metrics(path):
    data = open(path, "rb").read()
    num_tables = struct.unpack(">H", data[4:6])[0]
    tables = {}
    for i in range(num_tables):
        tag, _, offset, _ = struct.unpack(">4sIII", data[12 + 16 * i: 28 + 16 * i])
        tables[tag] = offset
    upem = struct.unpack(">H", data[tables[b"head"] + 18: tables[b"head"] + 20])[0]
    asc, desc = struct.unpack(">hh", data[tables[b"hhea"] + 4: tables[b"hhea"] + 8])
    return asc / upem, -desc / upem


def main():
    asc, desc = hhea_metrics(FONT)
    baseline = round(MARGIN + (LINE + EM_PX * asc - EM_PX * desc) / 2)
    engine = ImageFont.Layout.RAQM if ImageFont.core.HAVE_RAQM else ImageFont.Layout.BASIC
    font = ImageFont.truetype(FONT, EM_PX, layout_engine=engine)
    img = Image.new("L", (WIDTH, HEIGHT), 255)
    ImageDraw.Draw(img).text((MARGIN, baseline), TEXT, font=font, fill=0, anchor="ls")
    with open(OUT, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (WIDTH, HEIGHT))
        f.write(img.tobytes())
    print("wrote", os.path.normpath(OUT), "baseline", baseline, "engine", engine)


if __name__ == "__main__":
    main()
