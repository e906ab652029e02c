#!/usr/bin/env bash
# test.sh: set up (scripts/setup.sh), build, and run every test with ctest:
#   1. the Release build (CUDA code compiled too when nvcc is present; CUDA tests skip without a GPU;
#      the `real` tests use SmolLM2-135M-Instruct from scripts/fetch_smollm2.sh, skipped offline),
#   2. the libFuzzer targets for a short fixed time (when clang is available),
#   3. an AddressSanitizer + UBSan build running the unit tests.
#   scripts/test.sh            # everything (what CI runs)
#   scripts/test.sh --quick    # step 1 only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$a' (see --help)" >&2; exit 1 ;;
  esac
done
jobs=$(nproc 2>/dev/null || echo 2)

if ((quick)); then
  scripts/setup.sh
else
  scripts/setup.sh --with-fuzz
fi
# the real model of the `real` tests (outside the repo; says why and carries on when offline)
scripts/fetch_smollm2.sh >/dev/null || true
# the serve tests' Python packages (openai, websocket-client, schemathesis) in a venv outside the repo
scripts/test_venv.sh >/dev/null || true
echo "== tests (Release build) ==" >&2
ctest --test-dir build -j"$jobs" --output-on-failure
((quick)) && exit 0

if [ -x tests/fuzz/run.sh ]; then
  echo "== fuzzing (short fixed time) ==" >&2
  tests/fuzz/run.sh
fi

echo "== tests (AddressSanitizer + UBSan build) ==" >&2
scripts/setup.sh --sanitize
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit -j"$jobs" --output-on-failure
