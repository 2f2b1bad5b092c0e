"""Synthetic tasks for vlserve's demo VLM: every sample is drawn on the fly from a seed.

Three tasks a small model can learn and a person can judge:
  read   a 4-8 character word, number or code in one of the DejaVu fonts at 14-18 px, on a
         plain or a noisy background -> the text itself;
  scene  one or two groups of coloured shapes -> "two red circles and a blue square";
  kv     a small page of "City: CODE" lines -> "What is the code for Oslo?" -> "K7P2".

sample(rng) returns (PIL.Image 128x128 RGB, question, answer, task). The image's
info["chars"] lists (character, centre x, centre y) of every character drawn and
info["answer_chars"] those of the answer (training uses them for auxiliary losses, see
train.py). The same seed gives the same samples on every
machine with the same Pillow and fonts (fonts-dejavu-core).
"""
import random

from PIL import Image, ImageDraw, ImageFont

SIZE = 128
FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf",
         "DejaVuSansMono-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"]
READ_SIZES = [14, 16, 18]
KV_SIZES = [12, 13]
READ_QUESTIONS = ["What does the image say?", "Read the text in the image.",
                  "What is written here?"]
SCENE_QUESTIONS = ["Describe the picture.", "What is in the image?"]
CITIES = ["Oslo", "Paris", "Rome", "Lima", "Cairo", "Tokyo", "Delhi", "Quito", "Dakar",
          "Hanoi", "Seoul", "Bern", "Riga", "Kyiv", "Minsk", "Sofia", "Baku", "Doha",
          "Accra", "Lagos", "Perth", "Milan", "Porto", "Nice", "Lyon", "Turin", "Bonn",
          "Graz", "Malmo", "Split"]
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


def font(name, size):
    key = (name, size)
    if key not in _font_cache:
        _font_cache[key] = ImageFont.truetype(FONT_DIR + name, size)
    return _font_cache[key]


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


def draw_text(img, d, xy, text, f, fill):
    """Draws text and records each character's box centre in img.info["chars"]."""
    d.text(xy, text, font=f, fill=fill)
    chars = img.info.setdefault("chars", [])
    x, y = xy
    for i, ch in enumerate(text):
        if ch == " ":
            continue
        b = d.textbbox((x + f.getlength(text[:i]), y), ch, font=f)
        chars.append((ch, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2))


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
    d = ImageDraw.Draw(img)
    f = font(rng.choice(FONTS), rng.choice(READ_SIZES))
    x0, y0, x1, y1 = d.textbbox((0, 0), word, font=f)
    x = rng.randint(2, max(2, SIZE - 2 - (x1 - x0))) - x0
    y = rng.randint(2, max(2, SIZE - 2 - (y1 - y0))) - y0
    draw_text(img, d, (x, y), word, f, ink(rng))
    img.info["answer_chars"] = list(img.info["chars"])
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
    d = ImageDraw.Draw(img)
    f = font(rng.choice(FONTS), rng.choice(KV_SIZES))
    colour = ink(rng)
    y = rng.randint(3, 12)
    x = rng.randint(2, 10)
    i = rng.randrange(len(keys))
    for j, (k, v) in enumerate(zip(keys, codes)):
        draw_text(img, d, (x, y), f"{k}: {v}", f, colour)
        if j == i:
            img.info["answer_chars"] = img.info["chars"][-len(v):]
        y += f.size + rng.randint(4, 7)
    return img, f"What is the code for {keys[i]}?", codes[i], "kv"


TASKS = {"read": read_sample, "scene": scene_sample, "kv": kv_sample}


def sample(rng, task=None):
    if task is None:
        task = rng.choices(["read", "scene", "kv"], weights=[0.4, 0.2, 0.4])[0]
    return TASKS[task](rng)


if __name__ == "__main__":
    import sys
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for i in range(9):
        img, q, a, t = sample(rng, ["read", "scene", "kv"][i % 3])
        img.save(f"/tmp/demo_sample_{i}.png")
        print(i, t, repr(q), repr(a))


def demo_pictures(out_dir, scale=2):
    """The pictures of the README and web UI demo (drawn as the tasks draw, then enlarged
    `scale` times so they read well on a page; the server scales them back to 128 px)."""
    import os
    pics = {}
    img = Image.new("RGB", (SIZE, SIZE), "white")
    d = ImageDraw.Draw(img)
    f = font("DejaVuSans.ttf", 13)
    y = 8
    for k, v in (("Oslo", "K7P2"), ("Lima", "4XQ9"), ("Cairo", "B3T8"), ("Seoul", "R5DW")):
        d.text((6, y), f"{k}: {v}", font=f, fill=(20, 20, 40))
        y += f.size + 6
    pics["demo-page.png"] = img
    img = Image.new("RGB", (SIZE, SIZE), (248, 248, 244))
    d = ImageDraw.Draw(img)
    for cx, cy in ((34, 36), (90, 84)):
        d.ellipse([cx - 12, cy - 12, cx + 12, cy + 12], fill=COLOURS["red"])
    d.rectangle([78, 20, 102, 44], fill=COLOURS["blue"])
    pics["demo-shapes.png"] = img
    img = Image.new("RGB", (SIZE, SIZE), (240, 244, 250))
    d = ImageDraw.Draw(img)
    f = font("DejaVuSerif-Bold.ttf", 18)
    d.text((36, 52), "Hello", font=f, fill=(30, 30, 60))
    pics["demo-word.png"] = img
    for name, im in pics.items():
        im.resize((SIZE * scale, SIZE * scale), Image.LANCZOS).save(os.path.join(out_dir, name))
    return sorted(pics)
