#!/usr/bin/env bash
# setup.sh: install the Debian packages duovid needs (only the missing ones) and build into build/.
#   scripts/setup.sh                 # deps + Release build in build/
#   scripts/setup.sh --sanitize      # deps + ASan/UBSan build in build-asan/
#   scripts/setup.sh --deps-only     # deps only
# Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=release
extra_pkgs=()
for a in "$@"; do
  case "$a" in
    --sanitize) mode=asan ;;
    --deps-only) mode=none ;;
    --with-fuzz) extra_pkgs+=(clang libclang-rt-14-dev) ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$a' (see --help)" >&2; exit 1 ;;
  esac
done

pkgs=(build-essential cmake pkg-config
      libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg
      libpng-dev libsentencepiece-dev libcjson-dev libopenblas-dev libcurl4-openssl-dev libssl-dev libxxhash-dev libpcre2-dev libutf8proc-dev time
      jargon-text
      python3 python3-venv
      libmicrohttpd-dev chromium fonts-dejavu-core # duovid serve; its page test (headless) and screenshot fonts
      "${extra_pkgs[@]}")
# test-only: a single-node Slurm for tests/cli/slurm_summarize.sh (the test skips without them)
pkgs+=(slurm-wlm munge)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

jobs=$(nproc 2>/dev/null || echo 2)
case "$mode" in
  release)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2
    cmake --build build -j"$jobs" >&2 ;;
  asan)
    # CUDA code is compiled by the release build; the sanitizer build checks the host code.
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDUOVID_SANITIZE=ON -DDUOVID_CUDA=OFF >&2
    cmake --build build-asan -j"$jobs" >&2 ;;
  none) ;;
esac
