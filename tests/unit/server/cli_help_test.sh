#!/usr/bin/env bash
# The help and output of the serve-side commands (issue 18): flags that are on by default
# read as such, every command's usage line names `vlserve`, and `tokenize --detokenize` ends
# its line.   tests/unit/server/cli_help_test.sh path/to/vlserve
set -euo pipefail
bin="$1"
fail=0
check() {  # check DESCRIPTION COMMAND...: fails the test when COMMAND fails
  local what="$1"; shift
  if ! "$@"; then echo "FAIL: $what" >&2; fail=1; fi
}
help="$("$bin" serve --help)"
check "serve --help prints no {false}" bash -c '! grep -q "{false}" <<<"$0"' "$help"
check "serve --help: --no-prefix-cache listed" grep -q -- "--no-prefix-cache" <<<"$help"
check "serve --help: --prefix-cache on by default" \
  grep -Eq -- "--prefix-cache .*\(default: on\)" <<<"$(tr -s ' \n' ' ' <<<"$help")"
check "serve --help: --warmup on by default" \
  grep -Eq -- "--warmup .*\(default: on\)" <<<"$(tr -s ' \n' ' ' <<<"$help")"
check "serve --help: --alias" grep -q -- "--alias" <<<"$help"
for cmd in serve render bench-render bench-media tokenize; do
  check "$cmd --help usage names vlserve" \
    grep -q "^Usage: vlserve $cmd " <<<"$("$bin" "$cmd" --help)"
done
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$bin" make-test-model -o "$dir" >/dev/null 2>&1
ids="$(printf 'Hello world' | "$bin" tokenize -m "$dir/text.gguf" --no-bos)"
text="$(printf '%s' "$ids" | "$bin" tokenize -m "$dir/text.gguf" --detokenize; echo x)"
check "tokenize --detokenize round trip ends with a newline" \
  test "$text" = "Hello world
x"
exit $fail
