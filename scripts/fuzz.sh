#!/usr/bin/env bash
# libFuzzer run of the GGUF reader (tests/fuzz/gguf_fuzz.cc).
#   scripts/fuzz.sh --smoke     corpus replay + 60 s of fuzzing (CI)
#   scripts/fuzz.sh [SECONDS]   longer run (default 600 s)
# Builds with clang in build-fuzz; exits non-zero if the fuzzer finds a crash, leak,
# sanitizer report or timeout. New inputs go to build-fuzz/corpus-gguf (the checked-in
# corpus in tests/fuzz/corpus/gguf is only read); crash reproducers to build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
if [ "${1:-}" = "--smoke" ]; then
  seconds=60
elif [ -n "${1:-}" ]; then
  seconds="$1"
fi

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVLSERVE_FUZZ=ON -DVLSERVE_BUILD_TESTS=OFF -DVLSERVE_BUILD_BENCH=OFF >/dev/null
ninja -C build-fuzz -j2 gguf_fuzz

mkdir -p build-fuzz/corpus-gguf build-fuzz/artifacts
echo "== gguf_fuzz: corpus replay + ${seconds} s"
build-fuzz/tests/fuzz/gguf_fuzz build-fuzz/corpus-gguf tests/fuzz/corpus/gguf \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
  -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1
echo "== gguf_fuzz: no findings"
