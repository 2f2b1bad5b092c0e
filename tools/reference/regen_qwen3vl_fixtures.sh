#!/bin/bash
# Regenerates tests/golden/qwen3vl/: builds the tiny Qwen3-VL test model (qwen3vl text +
# qwen3vl_merger mmproj) with `vlserve make-test-model` and runs the PyTorch reference
# (qwen3vl_reference.py, written from Hugging Face's modeling_qwen3_vl.py) on it; also the
# preprocessing fixtures (Qwen2-VL's smart_resize at factor 32 + PIL bicubic + mean/std
# 0.5), which need no vlserve.
#
# usage: tools/reference/regen_qwen3vl_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
#        VLSERVE=none tools/reference/regen_qwen3vl_fixtures.sh  -> preprocessing fixtures only
# Needs /usr/bin/python3 with numpy, torch (Debian python3-torch) and Pillow. Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-${VLSERVE:-$ROOT/build/vlserve}}"
OUT="$ROOT/tests/golden/qwen3vl"
MEDIA="$ROOT/tests/golden/media"
Q2="$ROOT/tests/golden/qwen2vl"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
PY=(/usr/bin/python3 "$ROOT/tools/reference/qwen3vl_reference.py")
cd "$ROOT/tools/reference"

# --- preprocessing (Qwen2VLImageProcessor with Qwen3-VL's preprocessor config) ---
# A 112x80 image whose sides are 2.5 and 3.5 times 32 (round half to even).
if [ ! -f "$OUT/qwen3vl_ties.png" ]; then
  /usr/bin/python3 - "$OUT/qwen3vl_ties.png" <<'PYEOF'
import sys
import numpy as np
from PIL import Image
y, x = np.mgrid[0:80, 0:112]
rgb = np.stack([(x * 7 + y * 3) % 256, (x * 2 + y * 11) % 256, (x * y) % 256], -1)
Image.fromarray(rgb.astype(np.uint8)).save(sys.argv[1])
PYEOF
fi
# (HF's default bounds and plain rounding of photo.png are in the smart_resize table only:
# their pixel files would be large.) Bounds in pixels, multiples of 32 * 32 so the C++ test can pass them as token bounds.
U=1024
# name | input image | smart_resize limits
PREPROCESS=(
  "pre_photo_max|$MEDIA/photo.png|--min-pixels $((4 * U)) --max-pixels $((16 * U))"  # floor: 96x128
  "pre_tall|$Q2/qwen2vl_tall.png|--min-pixels $((4 * U)) --max-pixels $((16384 * U))"  # 300x40 -> 288x32
  "pre_ties|$OUT/qwen3vl_ties.png|--min-pixels $((4 * U)) --max-pixels $((16384 * U))" # 80x112 -> 64x128
)
for entry in "${PREPROCESS[@]}"; do
  IFS='|' read -r name image limits <<< "$entry"
  # shellcheck disable=SC2086
  "${PY[@]}" --preprocess "$image" "$OUT/$name" $limits
  echo "wrote $OUT/$name.{json,pixels.bin}"
done
"${PY[@]}" --smart-resize-table "$OUT/smart_resize_cases.json"
echo "wrote $OUT/smart_resize_cases.json"

if [ "$VLSERVE" = none ]; then
  exit 0
fi

# --- models ---
# name | make-test-model arguments | images (H x W, multiples of 32)
# (must match the fixture list of the C++ golden test). The tiny tower's position table is
# 4 x 4 (64 px): the images resample it up, down and at its own size.
FIXTURES=(
  "qwen3vl_f32|--arch qwen3vl --vision qwen3vl_merger|64x96,96x64"
  "qwen3vl_mixed_f32|--arch qwen3vl --vision qwen3vl_merger|128x32,64x64"
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
