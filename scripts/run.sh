#!/usr/bin/env bash
# Installs dependencies, builds vlserve, and starts the OpenAI-compatible server on the
# embedded default model: a deterministic tiny random-weight model generated at start-up
# (its answers are noise; it exercises every stage). Extra arguments go to `vlserve serve`,
# e.g. scripts/run.sh -m text.gguf --mmproj mmproj.gguf --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build vlserve
exec build/vlserve serve "$@"
