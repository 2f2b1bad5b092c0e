#!/usr/bin/env bash
# libFuzzer runs of the parsers that take untrusted input (tests/fuzz/<name>_fuzz.cc).
#   scripts/fuzz.sh --list             the targets
#   scripts/fuzz.sh --smoke            gguf: corpus replay + 30 s of fuzzing (CI)
#   scripts/fuzz.sh NAME [SECONDS]     one target (default 600 s)
#   scripts/fuzz.sh [SECONDS]          gguf, as before targets had names
# Builds only that target with clang in build-fuzz (coverage + ASan + UBSan); exits
# non-zero if the fuzzer finds a crash, leak, sanitizer report or timeout. New inputs go to
# build-fuzz/corpus-NAME (the checked-in seeds in tests/fuzz/corpus/NAME are only read);
# crash reproducers to build-fuzz/artifacts/NAME-*. Replay one with build-fuzz/tests/fuzz/NAME_fuzz FILE.
# The normal build also runs every target over its seeds and fixed mutations, without
# clang: the CTest tests fuzz_replay_NAME.
set -euo pipefail
cd "$(dirname "$0")/.."

targets="gguf chat_request image_decode data_url render_options tokenizer"
# Longest input per target: long enough for the format, short enough to stay fast.
max_len() {
  case "$1" in
    gguf|image_decode) echo 65536 ;;
    chat_request|render_options) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

name=gguf
seconds=600
case "${1:-}" in
  --list) echo "$targets" | tr ' ' '\n'; exit 0 ;;
  --smoke) seconds=30 ;;
  "") ;;
  *[!0-9]*)
    name="$1"
    seconds="${2:-600}"
    if ! echo " $targets " | grep -q " $name "; then
      echo "unknown fuzz target '$name'; known: $targets" >&2
      exit 2
    fi
    ;;
  *) seconds="$1" ;;
esac

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVLSERVE_FUZZ=ON -DVLSERVE_BUILD_TESTS=OFF -DVLSERVE_BUILD_BENCH=OFF >/dev/null
ninja -C build-fuzz -j2 "${name}_fuzz"

mkdir -p "build-fuzz/corpus-$name" build-fuzz/artifacts
dict=()
if [ -f "tests/fuzz/$name.dict" ]; then dict=(-dict="tests/fuzz/$name.dict"); fi
echo "== ${name}_fuzz: corpus replay + ${seconds} s"
"build-fuzz/tests/fuzz/${name}_fuzz" "build-fuzz/corpus-$name" "tests/fuzz/corpus/$name" \
  "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -max_len="$(max_len "$name")" -artifact_prefix="build-fuzz/artifacts/$name-" \
  -print_final_stats=1
echo "== ${name}_fuzz: no findings"
