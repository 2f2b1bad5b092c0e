#!/bin/bash
# Regenerates tests/golden/qwen2vl/: builds each tiny Qwen2-VL test model (qwen2vl text +
# qwen2vl_merger mmproj) with `vlserve make-test-model` and runs the PyTorch reference
# (qwen2vl_reference.py) on it; also the preprocessing fixtures (smart_resize + PIL bicubic
# + normalize), which need no vlserve.
#
# usage: tools/reference/regen_qwen2vl_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
#        VLSERVE=none tools/reference/regen_qwen2vl_fixtures.sh  -> preprocessing fixtures only
# Needs /usr/bin/python3 with numpy, torch (Debian python3-torch) and Pillow. Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-${VLSERVE:-$ROOT/build/vlserve}}"
OUT="$ROOT/tests/golden/qwen2vl"
MEDIA="$ROOT/tests/golden/media"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
PY=(/usr/bin/python3 "$ROOT/tools/reference/qwen2vl_reference.py")
cd "$ROOT/tools/reference"

# --- preprocessing (Qwen2VLImageProcessor with PIL), OpenAI CLIP mean/std as Qwen2-VL's ---
MEAN=0.48145466,0.4578275,0.40821073
STD=0.26862954,0.26130258,0.27577711
"${PY[@]}" --make-inputs "$OUT"
# name | input image | smart_resize limits
PREPROCESS=(
  "pre_photo|$MEDIA/photo.png|--min-pixels 3136 --max-pixels 1003520"   # 150x200 -> 140x196
  "pre_photo_max|$MEDIA/photo.png|--min-pixels 3136 --max-pixels 12544" # max branch: 84x112
  "pre_tall|$OUT/qwen2vl_tall.png|--min-pixels 3136 --max-pixels 1003520" # 300x40 -> 308x28
  "pre_ties|$OUT/qwen2vl_ties.png|--min-pixels 3136 --max-pixels 1003520" # 98x70 -> 112x56
  "pre_ties_min|$OUT/qwen2vl_ties.png|--min-pixels 9408 --max-pixels 1003520" # min: 140x84
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
# (must match the fixture list of the C++ golden test)
FIXTURES=(
  "qwen2vl_f32|--arch qwen2vl --vision qwen2vl_merger|56x84,84x56"
  "qwen2vl_mixed_f32|--arch qwen2vl --vision qwen2vl_merger|112x28,56x28"
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
