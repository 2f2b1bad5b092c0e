#!/usr/bin/env bash
# End-to-end tests of a built vlserve, as a process: starts `vlserve serve` (built-in tiny
# test model) on a free loopback port, waits for /health 200, runs the node tests
# (OpenAI client + headless Chromium), then stops the server. Builds nothing. The demo-model
# browser test (demo_ui.test.js) starts a second server of its own on models/demo.
#
#   tests/e2e/run.sh [path/to/vlserve]      (default: build/vlserve)
#
# Needs node >= 20 and npm (deps are installed from package-lock.json when missing).
# The browser test is skipped with a message when Chromium is absent
# (scripts/install-deps.sh --browser installs it). Screenshots go to tests/e2e/artifacts/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/build/vlserve}"
[[ "$bin" = /* ]] || bin="$PWD/$bin"

if [[ ! -x "$bin" ]]; then
  echo "e2e: $bin is not an executable; build it first (ninja -C build vlserve) or pass its path" >&2
  exit 2
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "e2e: node and npm are needed (apt-get install -y nodejs npm)" >&2
  exit 2
fi

cd "$here"
if [[ ! -d node_modules/openai || ! -d node_modules/playwright-core ]]; then
  echo "e2e: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund >&2
fi

if [[ -n "${CHROMIUM:-}" && ! -x "${CHROMIUM:-}" ]] || { [[ -z "${CHROMIUM:-}" ]] && \
   [[ ! -x /usr/bin/chromium && ! -x /usr/bin/chromium-browser && ! -x /usr/bin/google-chrome ]]; }; then
  echo "e2e: SKIPPING the browser test: no Chromium (apt-get install -y chromium," \
       "or scripts/install-deps.sh --browser)"
fi

log="$(mktemp -t vlserve-e2e.XXXXXX.log)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$log"
}
trap cleanup EXIT

# --port 0: the kernel picks a free port; the server logs the address it bound.
"$bin" serve --host 127.0.0.1 --port 0 >"$log" 2>&1 &
server_pid=$!

url=""
for _ in $(seq 1 600); do   # 60 s
  url="$(grep -o -m1 'listening on http://[0-9.:]*' "$log" | sed 's/^listening on //' || true)"
  if [[ -n "$url" ]] && curl -fs -o /dev/null "$url/health"; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "e2e: the server exited during start-up:" >&2; cat "$log" >&2; exit 1
  fi
  url=""
  sleep 0.1
done
if [[ -z "$url" ]]; then
  echo "e2e: the server did not become healthy in 60 s:" >&2; cat "$log" >&2; exit 1
fi
echo "e2e: server $bin ready at $url"

status=0
# One file at a time: the files share one server and check its metrics.
VLSERVE_URL="$url" VLSERVE_BIN="$bin" node --test --test-concurrency=1 "$here"/*.test.js || status=$?
if [[ $status -ne 0 ]]; then
  echo "e2e: FAILED (exit $status); server log:" >&2
  tail -n 50 "$log" >&2
fi
exit $status
