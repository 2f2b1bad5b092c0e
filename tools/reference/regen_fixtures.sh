#!/bin/bash
# Regenerates tests/golden/models/: builds each test model with `vlserve make-test-model`
# and runs the PyTorch reference (text_reference.py) on it.
#
# usage: tools/reference/regen_fixtures.sh [path/to/vlserve]   (default: build/vlserve)
# Needs /usr/bin/python3 with numpy and torch (Debian python3-torch). Not run by CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VLSERVE="${1:-$ROOT/build/vlserve}"
OUT="$ROOT/tests/golden/models"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

# name | make-test-model arguments  (must match kFixtures in tests/unit/models/golden_test.cc)
FIXTURES=(
  "llama_f32|--arch llama --type f32"
  "qwen2_f32|--arch qwen2 --type f32"
  "llama_f16|--arch llama --type f16"
  "llama_bf16|--arch llama --type bf16"
  "llama_q8_0|--arch llama --type q8_0"
  "qwen2_q8_0|--arch qwen2 --type q8_0"
  "llama_q4_0|--arch llama --type q4_0"
  "llama_q4_k|--arch llama --type q4_k --dims hidden=256,ffn=512"
)

for entry in "${FIXTURES[@]}"; do
  name="${entry%%|*}"
  args="${entry#*|}"
  # shellcheck disable=SC2086
  "$VLSERVE" make-test-model $args -o "$TMP/$name"
  (cd "$ROOT/tools/reference" &&
   /usr/bin/python3 text_reference.py "$TMP/$name/text.gguf" "$OUT/$name" \
     --command "vlserve make-test-model $args")
  echo "wrote $OUT/$name.{json,logits.bin}"
done
