#!/usr/bin/env bash
# `vlserve render --render-preset glyph --vision-preset glm41v-9b`: Glyph's page geometry
# and GLM-4.1V's token estimate per page, against hand-computed values and a transcription
# of transformers' Glm4vImageProcessor smart_resize (factor 28, Python round-half-even):
# a full page of filled lines is 842 px tall (82 lines of 10 px + 2 x 10 px margins) and
# cropped to > 574 px wide -> round(842/28) x round(w/28) = 30 x 21 = 630 tokens.
#   tests/unit/render/render_cli_glyph_test.sh path/to/vlserve
set -euo pipefail
bin="$1"
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || { echo "no DejaVu Sans; skipped"; exit 0; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
printf 'word %.0s' $(seq 1 2800) > "$dir/in.txt"  # one paragraph: every line is filled
"$bin" render "$dir/in.txt" -o "$dir/out" --render-preset glyph --vision-preset glm41v-9b \
    --json > "$dir/m.json"
/usr/bin/env python3 - "$dir/m.json" <<'PY'
import json, sys
def smart_resize_tokens(h, w, factor=28):  # no pixel bound is reached by these pages
    return round(h / factor) * round(w / factor)
m = json.load(open(sys.argv[1]))
p = m["page_list"]
assert m["pages"] == 2, m["pages"]
assert p[0]["lines"] == 82 and p[0]["height"] == 842, (p[0]["lines"], p[0]["height"])
assert 574 < p[0]["width"] <= 595, p[0]["width"]
assert p[0]["image_tokens"] == 630, p[0]["image_tokens"]
assert p[1]["height"] == 20 + 10 * p[1]["lines"], (p[1]["height"], p[1]["lines"])
for q in p:
    assert q["image_tokens"] == smart_resize_tokens(q["height"], q["width"]), q
assert m["image_tokens"] == sum(q["image_tokens"] for q in p)
print("ok", [(q["width"], q["height"], q["image_tokens"]) for q in p])
PY
