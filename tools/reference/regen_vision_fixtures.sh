#!/bin/bash
# Regenerates tests/golden/vision/: builds each tiny VLM test model (text + mmproj) with
# `vlserve make-test-model --vision` and runs the PyTorch reference (vision_reference.py).
#
# usage: tools/reference/regen_vision_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
# Needs /usr/bin/python3 with numpy and torch (Debian python3-torch). Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-$ROOT/build/vlserve}"
OUT="$ROOT/tests/golden/vision"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

# name | make-test-model arguments | tile grid (rows cols; 0 0 = single tile)
# (must match kFixtures in tests/unit/vision/vision_golden_test.cc)
FIXTURES=(
  "idefics3_f32|--arch llama --vision idefics3|1 2"
  "idefics3_single_f32|--arch llama --vision idefics3|0 0"
  "mlp_f32|--arch llama --vision mlp|0 0"
)

for entry in "${FIXTURES[@]}"; do
  IFS='|' read -r name args grid <<< "$entry"
  # shellcheck disable=SC2086
  "$VLSERVE" make-test-model $args -o "$TMP/$name"
  # shellcheck disable=SC2086
  (cd "$ROOT/tools/reference" &&
   /usr/bin/python3 vision_reference.py "$TMP/$name/text.gguf" "$TMP/$name/mmproj.gguf" \
     "$OUT/$name" --grid $grid --command "vlserve make-test-model $args")
  echo "wrote $OUT/$name.{json,embd.bin}"
done
