#!/bin/bash
# Regenerates tests/golden/internvl/: builds the tiny InternVL test model (qwen2 text +
# internvl mmproj) with `vlserve make-test-model` and runs the PyTorch reference
# (internvl_reference.py) on it; also the preprocessing fixtures (dynamic_preprocess + PIL
# bicubic + ToTensor/Normalize) and the tile-grid table, which need no vlserve.
#
# usage: tools/reference/regen_internvl_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
#        VLSERVE=none tools/reference/regen_internvl_fixtures.sh  -> preprocessing fixtures only
# Needs /usr/bin/python3 with numpy, torch (Debian python3-torch) and Pillow. Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-${VLSERVE:-$ROOT/build/vlserve}}"
OUT="$ROOT/tests/golden/internvl"
MEDIA="$ROOT/tests/golden/media"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
PY=(/usr/bin/python3 "$ROOT/tools/reference/internvl_reference.py")
cd "$ROOT/tools/reference"

# --- preprocessing (the model card's load_image), ImageNet mean/std as InternVL's ---
# 56-pixel tiles (4 x 4 patches of 14) keep the fixtures small; the tiling rule at 448 is
# in grid_cases.json.
"${PY[@]}" --make-inputs "$OUT"
# name | input image | settings
PREPROCESS=(
  "pre_photo|$MEDIA/photo.png|--tile 56 --min-tiles 1 --max-tiles 6"        # 200x150 -> 3 x 2
  "pre_tall|$OUT/internvl_tall.png|--tile 56 --min-tiles 1 --max-tiles 12"  # 60x300 -> 1 x 5
  "pre_square|$OUT/internvl_square.png|--tile 56 --min-tiles 1 --max-tiles 12" # tie -> 2 x 2
  "pre_small|$OUT/internvl_small.png|--tile 56 --min-tiles 1 --max-tiles 12"   # one tile
)
for entry in "${PREPROCESS[@]}"; do
  IFS='|' read -r name image settings <<< "$entry"
  # shellcheck disable=SC2086
  "${PY[@]}" --preprocess "$image" "$OUT/$name" $settings
  echo "wrote $OUT/$name.{json,pixels.bin}"
done
"${PY[@]}" --grid-table "$OUT/grid_cases.json"
echo "wrote $OUT/grid_cases.json"

if [ "$VLSERVE" = none ]; then
  exit 0
fi

# --- models ---
# name | make-test-model arguments | per image: tile grid rows x cols (0x0 = one tile)
# (must match the fixture list of the C++ golden test)
FIXTURES=(
  "internvl_f32|--arch qwen2 --vision internvl|2x3,0x0"
  "internvl_tall_f32|--arch qwen2 --vision internvl|3x1,1x2"
)
for entry in "${FIXTURES[@]}"; do
  IFS='|' read -r name args grids <<< "$entry"
  # shellcheck disable=SC2086
  "$VLSERVE" make-test-model $args -o "$TMP/$name"
  "${PY[@]}" --self-test "$TMP/$name/mmproj.gguf"
  "${PY[@]}" "$TMP/$name/text.gguf" "$TMP/$name/mmproj.gguf" "$OUT/$name" \
    --grids "$grids" --command "vlserve make-test-model $args"
  echo "wrote $OUT/$name.{json,embd.bin,logits.bin}"
done
