#!/bin/bash
# Regenerates tests/golden/glm4v/: builds each tiny GLM-4.1V test model (glm4 text + glm4v
# mmproj) with `vlserve make-test-model` and runs the PyTorch reference
# (glm4v_reference.py, written from Hugging Face's modeling_glm4v.py) on it; also the
# preprocessing fixtures (GLM-4.1V smart_resize + PIL bicubic + normalize), which need no
# vlserve.
#
# usage: tools/reference/regen_glm4v_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
#        VLSERVE=none tools/reference/regen_glm4v_fixtures.sh  -> preprocessing fixtures only
# Needs /usr/bin/python3 with numpy, torch (Debian python3-torch) and Pillow. Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-${VLSERVE:-$ROOT/build/vlserve}}"
OUT="$ROOT/tests/golden/glm4v"
MEDIA="$ROOT/tests/golden/media"
Q2="$ROOT/tests/golden/qwen2vl"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
PY=(/usr/bin/python3 "$ROOT/tools/reference/glm4v_reference.py")
cd "$ROOT/tools/reference"

# --- preprocessing (Glm4vImageProcessor, PIL path), OpenAI CLIP mean/std as GLM-4.1V's ---
# Pixel bounds are HF's: compared with 2 frames x h_bar x w_bar (defaults 112*112 and
# 28*28*15000); multiples of 2 * 28 * 28 so the C++ test can pass them as token bounds.
MEAN=0.48145466,0.4578275,0.40821073
STD=0.26862954,0.26130258,0.27577711
# name | input image | smart_resize limits
PREPROCESS=(
  "pre_photo|$MEDIA/photo.png|--min-pixels 12544 --max-pixels 11760000"     # 150x200 -> 140x196
  "pre_photo_max|$MEDIA/photo.png|--min-pixels 12544 --max-pixels 25088"    # max: 84x112
  "pre_tall|$Q2/qwen2vl_tall.png|--min-pixels 12544 --max-pixels 11760000"  # 300x40 -> 308x28
  "pre_ties|$Q2/qwen2vl_ties.png|--min-pixels 12544 --max-pixels 11760000"  # 98x70 -> 112x56
  "pre_ties_min|$Q2/qwen2vl_ties.png|--min-pixels 18816 --max-pixels 11760000" # min: 140x84
)
for entry in "${PREPROCESS[@]}"; do
  IFS='|' read -r name image limits <<< "$entry"
  # shellcheck disable=SC2086
  "${PY[@]}" --preprocess "$image" "$OUT/$name" --mean "$MEAN" --std "$STD" $limits
  echo "wrote $OUT/$name.{json,pixels.bin}"
done
"${PY[@]}" --smart-resize-table "$OUT/smart_resize_cases.json"
echo "wrote $OUT/smart_resize_cases.json"

if [ "$VLSERVE" = none ]; then
  exit 0
fi

# --- models ---
# name | make-test-model arguments | images (H x W after resize, multiples of 28)
# (must match the fixture list of the C++ golden test). The tiny tower's position table is
# 4 x 4 (56 px): the images resample it up, down and at its own size.
FIXTURES=(
  "glm4v_f32|--arch glm4 --vision glm4v|56x84,84x56"
  "glm4v_mixed_f32|--arch glm4 --vision glm4v|112x28,56x56"
)
for entry in "${FIXTURES[@]}"; do
  IFS='|' read -r name args images <<< "$entry"
  # shellcheck disable=SC2086
  "$VLSERVE" make-test-model $args -o "$TMP/$name"
  "${PY[@]}" --self-test "$TMP/$name/text.gguf" "$TMP/$name/mmproj.gguf"
  "${PY[@]}" "$TMP/$name/text.gguf" "$TMP/$name/mmproj.gguf" "$OUT/$name" \
    --images "$images" --command "vlserve make-test-model $args"
  echo "wrote $OUT/$name.{json,embd.bin,logits.bin}"
done
