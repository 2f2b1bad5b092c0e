#!/usr/bin/env bash
# Installs dependencies, builds vlserve, and runs it on the embedded default model.
# Until the HTTP server lands, "running" means: generate a deterministic tiny test model
# and stream a short greedy completion from it (its text is noise: the weights are random).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build vlserve
bin=build/vlserve
model_dir=build/demo-model
if [ ! -f "$model_dir/text.gguf" ]; then
  "$bin" make-test-model --arch llama --seed 1 -o "$model_dir"
fi
"$bin" inspect "$model_dir/text.gguf" | head -n 20
"$bin" generate -m "$model_dir/text.gguf" -p "The quick brown fox" -n 24 --temp 0 "$@"
