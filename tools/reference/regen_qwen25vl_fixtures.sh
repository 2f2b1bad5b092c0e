#!/bin/bash
# Regenerates tests/golden/qwen25vl/: builds the tiny Qwen2.5-VL test model (qwen2vl text +
# qwen2.5vl_merger mmproj) with `vlserve make-test-model`, runs the reference's self-test on
# it and the PyTorch reference (qwen25vl_reference.py, on top of qwen2vl_reference.py).
# Preprocessing is Qwen2-VL's (tests/golden/qwen2vl/pre_*), so there are no pre_* files here.
#
# usage: tools/reference/regen_qwen25vl_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
# Needs /usr/bin/python3 with numpy and torch (Debian python3-torch). Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-${VLSERVE:-$ROOT/build/vlserve}}"
OUT="$ROOT/tests/golden/qwen25vl"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
PY=(/usr/bin/python3 "$ROOT/tools/reference/qwen25vl_reference.py")
cd "$ROOT/tools/reference"

# name | make-test-model arguments | images (H x W, multiples of 28)
# (must match the fixture list of the C++ golden test; sizes picked so that every greedy
# step's top-1 / top-2 margin is > 0.05 on the tiny model)
#   196x252: 14x18 patches, 7x9 merge units -> 2x3 windows of 4x4 units, edge windows
#            4x1, 3x4, 3x1; 56x84: 2x3 units, one partial window (windowed == full).
#   224x112: 8x4 units, exactly 2x1 windows (HF's get_window_index pads a whole empty
#            window row/column; unique_consecutive drops them); 252x140: 9x5 units, 3x2
#            windows, a 1-unit bottom row and right column.
FIXTURES=(
  "qwen25vl_f32|--arch qwen2vl --vision qwen2.5vl_merger|196x252,56x84"
  "qwen25vl_windows_f32|--arch qwen2vl --vision qwen2.5vl_merger|224x112,252x140"
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
