#!/usr/bin/env bash
# cuda_module.sh: the CUDA backend is a run-time module (libduovid-cuda.so). A missing module, a file
# that is not a shared library, or a module without the registration symbol never crashes duovid:
# `--device auto` prints one warning line naming the file and gives the CPU's results; `--device
# cuda` (explicitly asked) is one error line and exit 1. A module that finds no GPU: auto falls back
# quietly (the normal case of a CUDA build on a CPU machine), --device cuda is one error line.
#   bash tests/cli/cuda_module.sh build/duovid
set -u
bin=${1:?usage: cuda_module.sh path/to/duovid}
model=assets/models/tiny-llama
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
gen() { "$bin" generate -m $model -p "Once upon a time" -n 8 --temp 0 -t 2 "$@"; }

gen --device cpu >"$tmp/cpu" 2>/dev/null; check "CPU reference run" $?
printf 'this is not an ELF file\n' >"$tmp/garbage.so"
printf 'int nothing_here(void) { return 0; }\n' >"$tmp/nosym.c"
have_nosym=0
if cc -shared -fPIC -o "$tmp/nosym.so" "$tmp/nosym.c" 2>/dev/null; then have_nosym=1; fi
for m in "$tmp/missing/libduovid-cuda.so" "$tmp/garbage.so" "$tmp/nosym.so"; do
  [ "$m" = "$tmp/nosym.so" ] && [ $have_nosym = 0 ] && continue
  name=$(basename "$m")
  DUOVID_CUDA_MODULE=$m DUOVID_LOG=info gen --device auto >"$tmp/out" 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && cmp -s "$tmp/out" "$tmp/cpu"; check "$name: --device auto runs on the CPU, same output" $?
  [ "$(grep -c 'warning' "$tmp/err")" = 1 ] && grep -q "warning: .*CUDA.*$name.*using the CPU" "$tmp/err"
  check "$name: one warning line naming the module" $?
  DUOVID_CUDA_MODULE=$m gen --device cuda >"$tmp/out" 2>"$tmp/err"; rc=$?
  [ $rc = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "$name" "$tmp/err" && [ ! -s "$tmp/out" ]
  check "$name: --device cuda is one error line, exit 1, no output" $?
done

# a module that loads but finds no device (the fake one of test_backend_module, as the real module on a
# machine without a GPU): --device auto falls back quietly, --device cuda is one error line
fake=$(dirname "$bin")/tests/libdv_fake_module.so
if [ -f "$fake" ]; then
  DUOVID_CUDA_MODULE=$fake DUOVID_LOG=info gen --device auto >"$tmp/out" 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && cmp -s "$tmp/out" "$tmp/cpu" && ! grep -q warning "$tmp/err"
  check "no device: --device auto runs on the CPU without a warning" $?
  DUOVID_CUDA_MODULE=$fake gen --device cuda >"$tmp/out" 2>"$tmp/err"; rc=$?
  [ $rc = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "no device 0" "$tmp/err" && [ ! -s "$tmp/out" ]
  check "no device: --device cuda is one error line, exit 1" $?
fi

# a machine without an NVIDIA driver: --device auto does not even try the module (no CUDA runtime mapped)
if [ ! -e /proc/driver/nvidia/version ] && [ ! -e /dev/nvidiactl ] && [ ! -e /dev/dxg ]; then
  (unset DUOVID_CUDA_MODULE; DUOVID_LOG=debug gen --device auto) >"$tmp/out" 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && cmp -s "$tmp/out" "$tmp/cpu" && grep -q "no NVIDIA driver" "$tmp/err" && ! grep -q warning "$tmp/err"
  check "no driver: --device auto uses the CPU without loading the module" $?
fi

echo "cuda_module: $pass passed, $fail failed"
[ $fail = 0 ]
