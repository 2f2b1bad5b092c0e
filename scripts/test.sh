#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs every test with CTest, then
# rebuilds with AddressSanitizer + UBSan and runs the unit tests again.
# Tests that need ../shared (tokenizer goldens) skip cleanly when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh --browser   # Chromium + Node for the web UI / e2e tests

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build
echo "== tests (release)"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)

echo "== sanitizer build (address, undefined)"
# -g1 (line tables: enough for sanitizer stack traces) keeps this second build and its links
# short on 2 cores; full -g costs minutes of CI for nothing a report needs. -O1 compiles
# faster than -O2 (the per-ISA kernel files keep -O2, which their intrinsics need; see
# VLSERVE_ISA_EXTRA_OPTIONS in CMakeLists.txt).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVLSERVE_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DVLSERVE_BUILD_BENCH=OFF >/dev/null
ninja -C build-asan
echo "== unit tests (ASan/UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest -L unit --output-on-failure -j"$jobs" --timeout 1800)

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzz smoke run"
  scripts/fuzz.sh --smoke
fi
echo "== all tests passed"
