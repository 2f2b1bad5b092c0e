#!/usr/bin/env bash
# Regenerates the committed demo model (models/demo) from scratch on the CPU, in three phases:
#   1. 3,200 steps on all three tasks (reading learns first, then the key-value pages);
#   2. 1,200 more at half the learning rate, drawing more key-value pages and scenes, with
#      the auxiliary head also naming each shape's colour and kind;
#   3. 600 more at a quarter, half of the texts drawn with glyphs from `vlserve render`.
# Needs python3-torch (scripts/install-deps.sh --reference) and build/vlserve (the
# vocabulary, the renderer's glyphs). About 90 minutes on 2 cores.
# usage: tools/demo/regenerate.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-build/demo-train}
mkdir -p "$work" models/demo
tools/demo/train.py --vlserve build/vlserve --out "$work/phase1" --steps 3200 --eval-every 400
tools/demo/train.py --vlserve build/vlserve --out "$work/phase2" --resume "$work/phase1" \
  --seed 1 --lr 1e-3 --steps 1200 --mix 0.2,0.3,0.5 --shape-aux --eval-every 400
tools/demo/train.py --vlserve build/vlserve --out "$work/phase3" --resume "$work/phase2" \
  --seed 2 --lr 5e-4 --steps 600 --mix 0.4,0.2,0.4 --shape-aux --render-share 0.5 --eval-every 300
cp "$work/phase3/text.gguf" "$work/phase3/mmproj.gguf" "$work/phase3/train_log.csv" models/demo/
cp "$work/phase3/loss.svg" docs/img/demo-loss.svg
sha256sum models/demo/*.gguf
