#!/usr/bin/env bash
# Installs every Debian bookworm package that building, running and testing vlserve need.
# Idempotent: packages already present are skipped by apt-get.
#   scripts/install-deps.sh              build + run + test dependencies
#   scripts/install-deps.sh --reference  also the PyTorch reference tools (tools/reference)
#   scripts/install-deps.sh --browser    also Chromium for the web UI tests
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  g++ clang libclang-rt-14-dev clang-format
  libboost1.81-dev libboost-json1.81-dev
  libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libturbojpeg0-dev libspng-dev libwebp-dev
  libfreetype-dev libharfbuzz-dev fonts-dejavu-core fonts-wqy-zenhei
  libssl-dev libxxhash-dev
  python3 python3-numpy python3-pil
)
for arg in "$@"; do
  case "$arg" in
    --reference) packages+=(python3-torch) ;;
    --browser)
      packages+=(chromium)
      # Node may already come from another package source (it does on our CI image); only
      # install Debian's when there is none, so the two never conflict.
      command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
      ;;
    *) echo "install-deps.sh: unknown option '$arg' (known: --reference, --browser)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
