#!/usr/bin/env bash
# Installs dependencies, builds vlserve, and starts the OpenAI-compatible server on the
# embedded default model: the tiny demo VLM trained by tools/demo/train.py (models/demo; it
# reads short text and key-value pages and describes coloured shapes in 128-px pictures, see
# docs/demo-model.md). Extra arguments go to `vlserve serve`; with -m/--model the demo model
# is not loaded, e.g. scripts/run.sh -m text.gguf --mmproj mmproj.gguf --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build vlserve
for a in "$@"; do
  case "$a" in -m|--model|--model=*) exec build/vlserve serve "$@" ;; esac
done
exec build/vlserve serve -m models/demo/text.gguf --mmproj models/demo/mmproj.gguf "$@"
