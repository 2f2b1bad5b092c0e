"""Synthetic tasks for vlserve's demo VLM: every sample is drawn on the fly from a seed.

Three tasks a small model can learn and a person can judge:
  read   a 4-8 character word, number or code -> the text itself;
  scene  one or two groups of coloured shapes -> "Two red circles and a blue square";
  kv     a small page of "City:  CODE" lines -> "What is the code for Oslo?" -> "K7P2".

Text is set on a character grid, as a terminal or a ticket printer sets it: every character
sits in its own cell 8 px wide on a line 16 px high (the model's image tokens are 16 x 16 px,
so one token holds two cells), a glyph wider than its cell is narrowed to fit, and lines
start on an even cell. Faces: DejaVu Sans Mono, Sans and Serif, regular and bold, at 11-13
px; backgrounds plain or noisy. That grid is what lets a 4-layer model read exactly after an
hour of CPU training; free proportional text at any offset did not (docs/demo-model.md).

sample(rng) returns (PIL.Image 128x128 RGB, question, answer, task). img.info["cells"] lists
(character, cell column, line) of every character drawn, img.info["answer_cells"] those of
the answer, img.info["anchor"] the (column, line) where reading starts (the word's first
cell, or the first cell of the asked city) and img.info["shapes"] the (colour, shape, centre
x, centre y) of every shape (training uses them for auxiliary losses, see train.py). The same seed gives the same samples on every machine with the same Pillow and
fonts (fonts-dejavu-core).
"""
import io
import json
import os
import random
import subprocess
import tempfile

from PIL import Image, ImageDraw, ImageFont

SIZE = 128
CELL = 8     # px per character cell
LINE = 16    # px per line: one row of image tokens
COLS = SIZE // CELL
LINES = SIZE // LINE
BASELINE = 12  # px below the line's top
FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
FONTS = ["DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSans.ttf",
         "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"]
SIZES = [11, 12, 13]
# Glyphs can also come from vlserve's own renderer (`vlserve render`, the document pages'
# rasteriser: lighter anti-aliasing than Pillow's). A share of RENDER_SHARE of the texts
# uses one of RENDER_FONTS that way (0 draws exactly what the first training phases drew).
RENDER_SHARE = 0.0
RENDER_FONTS = ["DejaVuSansMono.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf"]
RENDERER = os.environ.get("VLSERVE_BIN") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "vlserve"))
READ_QUESTIONS = ["What does the image say?", "Read the text in the image.",
                  "What is written here?"]
SCENE_QUESTIONS = ["Describe the picture.", "What is in the image?"]
# No two share their first two letters: a line's first image token tells them apart.
CITIES = ["Oslo", "Paris", "Rome", "Lima", "Cairo", "Tokyo", "Delhi", "Quito", "Dakar",
          "Hanoi", "Seoul", "Bern", "Riga", "Kyiv", "Minsk", "Sofia", "Baku", "Doha",
          "Accra", "Lagos", "Perth", "Porto", "Nice", "Lyon", "Turin", "Bonn", "Graz",
          "Malmo", "Split"]
KV_CODE_COL = 8  # codes start 8 cells (64 px) after their line's first cell
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (40, 70, 220),
           "yellow": (235, 200, 20)}
SHAPES = ["circle", "square", "triangle"]
NUMBERS = {1: "a", 2: "two", 3: "three"}
LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
# Codes mix letters and digits, so I/1 and O/0 would be guesses in most fonts: left out.
CODE = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

_font_cache = {}
_glyph_cache = {}


def font(name, size):
    key = (name, size)
    if key not in _font_cache:
        _font_cache[key] = ImageFont.truetype(FONT_DIR + name, size)
    return _font_cache[key]


def fit(m):
    """A glyph's coverage (L image, LINE px high) cropped to its ink horizontally and
    narrowed to CELL - 1 px when wider."""
    x0, _, x1, _ = m.getbbox()
    g = m.crop((x0, 0, x1, LINE))
    return g.resize((CELL - 1, LINE), Image.LANCZOS) if g.width > CELL - 1 else g


def rendered_glyphs(name, size):
    """{character: coverage} of every character the tasks draw, set one per 16-px line by
    `vlserve render` (72 dpi, so points are pixels) in font `name` at `size` px."""
    chars = sorted(set(LOWER + UPPER + DIGITS + CODE + ":"))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "chars.txt")
        with open(src, "w") as f:
            f.write("\n".join(chars) + "\n")
        out = subprocess.run(
            [RENDERER, "render", src, "-o", os.path.join(tmp, "p"), "--page", "64", "--dpi",
             "72", "--font", FONT_DIR + name, "--font-size", str(size), "--line-height",
             str(LINE), "--margin", "0", "--no-crop", "--json"],
            check=True, capture_output=True, text=True).stdout
        assert json.loads(out)["pages"] == 1, "the characters must fit one auto-height page"
        with open(os.path.join(tmp, "p", "page_0000.png"), "rb") as f:
            page = Image.open(io.BytesIO(f.read())).convert("L")
    ink = page.point(lambda v: 255 - v)
    return {ch: fit(ink.crop((0, i * LINE, ink.width, (i + 1) * LINE)))
            for i, ch in enumerate(chars)}


def glyph(face, size, ch):
    """The glyph's coverage as an L image LINE px high, at most CELL - 1 px wide. face: a
    DejaVu file name drawn by Pillow (baseline at BASELINE), or ("vlserve", file name) drawn
    by vlserve's renderer."""
    key = (face, size, ch)
    if key not in _glyph_cache:
        if isinstance(face, tuple):
            for c, g in rendered_glyphs(face[1], size).items():
                _glyph_cache[(face, size, c)] = g
        else:
            m = Image.new("L", (3 * LINE, 2 * LINE), 0)
            ImageDraw.Draw(m).text((LINE // 2, LINE + BASELINE), ch, font=font(face, size),
                                   fill=255, anchor="ls")
            _glyph_cache[key] = fit(m.crop((0, LINE, m.width, 2 * LINE)))
    return _glyph_cache[key]


def pick_face(rng):
    if RENDER_SHARE and rng.random() < RENDER_SHARE:
        return ("vlserve", rng.choice(RENDER_FONTS))
    return rng.choice(FONTS)


def background(rng):
    """A light plain colour, or the same with pixel noise and a few faint lines."""
    base = tuple(rng.randint(225, 255) for _ in range(3))
    img = Image.new("RGB", (SIZE, SIZE), base)
    if rng.random() < 0.5:
        return img
    noise = Image.effect_noise((SIZE, SIZE), rng.uniform(10, 30)).convert("RGB")
    img = Image.blend(img, noise, rng.uniform(0.1, 0.25))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 3)):
        pts = [rng.randrange(SIZE) for _ in range(4)]
        shade = rng.randint(150, 210)
        d.line(pts, fill=(shade, shade, shade), width=1)
    return img


def draw_cells(img, col, line, text, face, size, fill):
    """Sets text from cell (col, line), one character per cell; records the cells in
    img.info["cells"] and returns them."""
    out = []
    for i, ch in enumerate(text):
        if ch == " ":
            continue
        g = glyph(face, size, ch)
        x = (col + i) * CELL + (CELL - g.width) // 2
        img.paste(fill, (x, line * LINE, x + g.width, (line + 1) * LINE), g)
        out.append((ch, col + i, line))
    img.info.setdefault("cells", []).extend(out)
    return out


def ink(rng):
    return tuple(rng.randint(0, 70) for _ in range(3))


def random_word(rng):
    n = rng.randint(4, 8)
    kind = rng.randrange(4)
    if kind == 0:
        return "".join(rng.choice(LOWER) for _ in range(n))
    if kind == 1:
        return rng.choice(UPPER.replace("I", "")) + "".join(rng.choice(LOWER) for _ in range(n - 1))
    if kind == 2:
        return "".join(rng.choice(DIGITS) for _ in range(n))
    return "".join(rng.choice(CODE) for _ in range(n))


def read_sample(rng):
    word = random_word(rng)
    img = background(rng)
    col = 2 * rng.randint(0, (COLS - len(word)) // 2)
    line = rng.randrange(LINES)
    cells = draw_cells(img, col, line, word, pick_face(rng), rng.choice(SIZES), ink(rng))
    img.info["answer_cells"] = cells
    img.info["anchor"] = (col, line)
    return img, rng.choice(READ_QUESTIONS), word, "read"


def plural(shape, n):
    return shape + "s" if n > 1 else shape


def scene_sample(rng):
    kinds = rng.sample([(c, s) for c in COLOURS for s in SHAPES], rng.randint(1, 2))
    groups = [(c, s, rng.randint(1, 3)) for c, s in kinds]
    img = Image.new("RGB", (SIZE, SIZE), tuple(rng.randint(235, 255) for _ in range(3)))
    d = ImageDraw.Draw(img)
    placed = []
    for c, s, n in groups:
        for _ in range(n):
            for _attempt in range(200):
                r = rng.randint(9, 14)
                cx, cy = rng.randint(r + 2, SIZE - r - 3), rng.randint(r + 2, SIZE - r - 3)
                if all((cx - px) ** 2 + (cy - py) ** 2 > (r + pr + 4) ** 2
                       for px, py, pr in placed):
                    break
            placed.append((cx, cy, r))
            img.info.setdefault("shapes", []).append((c, s, cx, cy))
            box = [cx - r, cy - r, cx + r, cy + r]
            if s == "circle":
                d.ellipse(box, fill=COLOURS[c])
            elif s == "square":
                d.rectangle(box, fill=COLOURS[c])
            else:
                d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=COLOURS[c])
    order = sorted(groups, key=lambda g: (list(COLOURS).index(g[0]), SHAPES.index(g[1])))
    answer = " and ".join(f"{NUMBERS[n]} {c} {plural(s, n)}" for c, s, n in order)
    return img, rng.choice(SCENE_QUESTIONS), answer[0].upper() + answer[1:], "scene"


def kv_sample(rng):
    keys = rng.sample(CITIES, rng.randint(3, 4))
    codes = ["".join(rng.choice(CODE) for _ in range(4)) for _ in keys]
    img = background(rng) if rng.random() < 0.5 else Image.new("RGB", (SIZE, SIZE), "white")
    face, size, colour = pick_face(rng), rng.choice(SIZES), ink(rng)
    col = 2 * rng.randint(0, (COLS - KV_CODE_COL - 4) // 2)
    lines = sorted(rng.sample(range(LINES), len(keys)))
    i = rng.randrange(len(keys))
    for j, (k, v, line) in enumerate(zip(keys, codes, lines)):
        draw_cells(img, col, line, k + ":", face, size, colour)
        cells = draw_cells(img, col + KV_CODE_COL, line, v, face, size, colour)
        if j == i:
            img.info["answer_cells"] = cells
            img.info["anchor"] = (col, line)
    return img, f"What is the code for {keys[i]}?", codes[i], "kv"


TASKS = {"read": read_sample, "scene": scene_sample, "kv": kv_sample}


MIX = (0.4, 0.2, 0.4)  # read, scene, kv


def sample(rng, task=None, mix=MIX):
    if task is None:
        task = rng.choices(["read", "scene", "kv"], weights=mix)[0]
    return TASKS[task](rng)


def demo_pictures(out_dir, scale=2):
    """The pictures of the README and web UI demo (drawn as the tasks draw, then enlarged
    `scale` times so they read well on a page; the server scales them back to 128 px)."""
    import os
    pics = {}
    img = Image.new("RGB", (SIZE, SIZE), "white")
    for line, (k, v) in zip((1, 2, 4, 5), (("Oslo", "K7P2"), ("Lima", "4XQ9"),
                                          ("Cairo", "B3T8"), ("Seoul", "R5DW"))):
        draw_cells(img, 2, line, k + ":", "DejaVuSans.ttf", 12, (20, 20, 40))
        draw_cells(img, 2 + KV_CODE_COL, line, v, "DejaVuSans.ttf", 12, (20, 20, 40))
    pics["demo-page.png"] = img
    img = Image.new("RGB", (SIZE, SIZE), (248, 248, 244))
    d = ImageDraw.Draw(img)
    for cx, cy in ((34, 36), (90, 84)):
        d.ellipse([cx - 12, cy - 12, cx + 12, cy + 12], fill=COLOURS["red"])
    d.rectangle([78, 20, 102, 44], fill=COLOURS["blue"])
    pics["demo-shapes.png"] = img
    img = Image.new("RGB", (SIZE, SIZE), (240, 244, 250))
    draw_cells(img, 4, 3, "Hello", "DejaVuSerif-Bold.ttf", 13, (30, 30, 60))
    pics["demo-word.png"] = img
    for name, im in pics.items():
        im.resize((SIZE * scale, SIZE * scale), Image.LANCZOS).save(os.path.join(out_dir, name))
    return sorted(pics)


if __name__ == "__main__":
    import sys
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for i in range(9):
        img, q, a, t = sample(rng, ["read", "scene", "kv"][i % 3])
        img.save(f"/tmp/demo_sample_{i}.png")
        print(i, t, repr(q), repr(a))
