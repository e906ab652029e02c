#!/usr/bin/env bash
# llamacpp_compare.sh: decode speed of duovid against llama.cpp on the same synthetic checkpoint, with
# the same threads and context, in one run (issue 13's comparison), printed as one markdown table.
#
# llama.cpp is built from the PyPI llama-cpp-python source distribution (its vendored llama.cpp) in a
# cache folder outside the repository: pip downloads the sdist, cmake builds only llama-bench with
# GGML_NATIVE=OFF and the host's AVX/AVX2/FMA/F16C (AVX-512 and its VBMI, VNNI and BF16 extensions
# only where the CPU has them, never AMX), -j2.
# Never run in CI (it refuses when $CI is set). The checkpoint is `duovid synth-model --shape 100m`
# (12 layers, hidden 768, GQA 12/4, head dim 64, bf16), converted to a bf16 (or, --gguf-type f16, f16)
# GGUF by bench/synth_to_gguf.py. Runs, each decoding --gen tokens after --ctx tokens of context:
#   - llama.cpp: llama-bench -d CTX -n GEN -p 0 with f16 KV both without and with flash attention (-fa 0
#     / -fa 1: on a CPU the first is faster, and the targets are judged against the faster), and with
#     q8_0 KV (-fa 1, which a quantized V cache requires); each does a real prefill of CTX tokens first,
#     not timed;
#   - duovid: bench llm --fill CTX (the KV cache filled with random rows, no model run: decode reads
#     the same bytes whatever their values) with bf16 KV, q8 KV, and bf16 KV at DuoAttention sparsity 0.5.
# usage: bench/llamacpp_compare.sh [--ctx N] [--threads N] [--gen N] [--gguf-type bf16|f16] [--cache-dir DIR] [--duovid BIN]
#        [--build-only]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    cat <<EOF
usage: bench/llamacpp_compare.sh [options]

Builds llama.cpp (llama-bench) from the llama-cpp-python sdist into a cache folder, writes duovid's
100m synthetic checkpoint and its GGUF, then times decode of both engines at one context with the
same threads and prints a markdown table (duovid bf16 / q8 / sparsity 0.5 vs llama.cpp f16 KV with
-fa 0 and -fa 1, q8_0 KV).

  --ctx N          context length before decoding (default 16384)
  --threads N      threads for both engines (default: all cores)
  --gen N          decode steps timed (default 16)
  --gguf-type T    llama.cpp's weights: bf16 (the checkpoint's own bits, default) or f16 (rounded; on a
                   host without AVX-512 BF16 ggml widens bf16 in software, so try both)
  --cache-dir DIR  where llama.cpp, the checkpoint and the GGUF live (default ~/.cache/duovid/llamacpp;
                   must be outside the repository)
  --duovid BIN     the duovid binary (default build/duovid)
  --version V      llama-cpp-python version to build (default 0.3.36)
  --build-only     only download and build llama-bench (e.g. while the machine is busy), then exit
  -h, --help       this help
Environment: PYTHON (default /work/venv/bin/python, else python3) runs pip and bench/synth_to_gguf.py.
EOF
}

die() { echo "llamacpp_compare: $*" >&2; exit 1; }
posint() { [[ $2 =~ ^[1-9][0-9]{0,7}$ ]] || die "$1 wants a positive integer, got '$2'"; }

ctx=16384 threads=$(nproc) gen=16 version=0.3.36 gtype=bf16 build_only=0
cache=${XDG_CACHE_HOME:-$HOME/.cache}/duovid/llamacpp
bin=$repo/build/duovid
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --build-only) build_only=1; shift; continue ;;
    --ctx | --threads | --gen | --gguf-type | --cache-dir | --duovid | --version)
        [ $# -ge 2 ] || die "$1 needs a value"
        case $1 in
        --ctx) posint "$1" "$2"; ctx=$2 ;;
        --threads) posint "$1" "$2"; threads=$2 ;;
        --gen) posint "$1" "$2"; gen=$2 ;;
        --gguf-type) [ "$2" = bf16 ] || [ "$2" = f16 ] || die "--gguf-type wants bf16 or f16, got '$2'"; gtype=$2 ;;
        --cache-dir) cache=$2 ;;
        --duovid) bin=$2 ;;
        --version) [[ $2 =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "--version wants a version number, got '$2'"; version=$2 ;;
        esac
        shift 2 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ "$ctx" -ge 256 ] && [ "$ctx" -le 1048576 ] || die "--ctx must be in 256 .. 1048576, got $ctx"
[ -z "${CI:-}" ] || die "not run in CI (it downloads and builds llama.cpp)"
[ -x "$bin" ] || die "$bin: no duovid binary (build it first, or pass --duovid)"
py=${PYTHON:-/work/venv/bin/python}
[ -x "$py" ] || py=$(command -v python3) || die "no python (set PYTHON)"
mkdir -p "$cache" || die "$cache: cannot create the cache folder"
cache=$(cd "$cache" && pwd -P)
case "$cache/" in "$(cd "$repo" && pwd -P)/"*) die "$cache: the cache folder must be outside the repository" ;; esac

# ---- llama.cpp from the llama-cpp-python sdist ----
sdist=$cache/llama_cpp_python-$version.tar.gz
if [ ! -f "$sdist" ]; then
    echo "llamacpp_compare: downloading llama-cpp-python $version (sdist)" >&2
    "$py" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$cache" >&2 ||
        die "pip download of llama-cpp-python==$version failed"
fi
src=$cache/llama_cpp_python-$version/vendor/llama.cpp
[ -f "$src/CMakeLists.txt" ] || tar -xzf "$sdist" -C "$cache" || die "$sdist: cannot unpack"
[ -f "$src/CMakeLists.txt" ] || die "$sdist: no vendor/llama.cpp inside"
has() { grep -qw "$1" /proc/cpuinfo; }
onoff() { if has "$1"; then echo ON; else echo OFF; fi; }
avx512=OFF
has avx512f && has avx512bw && has avx512vl && avx512=ON
# AVX-512 extensions only with AVX-512 itself (ggml's BF16 path turns bf16 weights into native dot products)
ext() { if [ "$avx512" = ON ] && has "$1"; then echo ON; else echo OFF; fi; }
isa_flags="-DGGML_AVX=$(onoff avx) -DGGML_AVX2=$(onoff avx2) -DGGML_FMA=$(onoff fma) -DGGML_F16C=$(onoff f16c)
 -DGGML_BMI2=$(onoff bmi2) -DGGML_AVX512=$avx512 -DGGML_AVX512_VBMI=$(ext avx512vbmi)
 -DGGML_AVX512_VNNI=$(ext avx512_vnni) -DGGML_AVX512_BF16=$(ext avx512_bf16)"
# one build folder per version and instruction-set choice (a VM that moved hosts gets its own)
bdir=$cache/build-$version-$(echo "$isa_flags" | cksum | cut -d' ' -f1)
lb=$bdir/bin/llama-bench
if [ ! -x "$lb" ]; then
    echo "llamacpp_compare: building llama-bench in $bdir (this takes a while on 2 cores)" >&2
    # shellcheck disable=SC2086 # isa_flags: one word per flag
    cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
        $isa_flags -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2 || die "cmake configure of llama.cpp failed"
    cmake --build "$bdir" --target llama-bench -j2 >&2 || die "llama-bench build failed"
fi
if [ "$build_only" = 1 ]; then
    echo "llamacpp_compare: llama-bench is $lb" >&2
    exit 0
fi

# ---- the same checkpoint for both ----
model=$cache/m100
gguf=$cache/m100-$gtype.gguf
[ -f "$model/model.safetensors" ] || "$bin" synth-model --shape 100m -o "$model" --dtype bf16 >&2 ||
    die "duovid synth-model failed"
[ -f "$gguf" ] || "$py" "$repo/bench/synth_to_gguf.py" --type "$gtype" "$model" "$gguf" >&2 || die "GGUF conversion failed"

# ---- the runs, one after the other in this process ----
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date -u '+%Y-%m-%d %H:%M')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rows=()
# duovid first (its rows take seconds; llama.cpp's q8_0 row prefills for minutes at full load).
# `bench llm` times decode after one untimed step, as llama-bench warms up: without it, the first
# step's page faults on the mapped weights (from disk when the page cache was cold) cost a 16-step
# run at 16K up to half its speed (31-47 tok/s against 73).
for cfg in "bf16 0" "q8 0" "bf16 0.5"; do
    set -- $cfg
    echo "llamacpp_compare: duovid, $1 KV, sparsity $2, $ctx context" >&2
    "$bin" bench llm -m "$model" --device cpu -t "$threads" --fill "$ctx" --prompt-tokens 0 --gen-tokens "$gen" \
        --kv-type "$1" --sparsity "$2" --json >"$tmp/duovid.json" 2>"$tmp/duovid.err" ||
        { tail -3 "$tmp/duovid.err" >&2; die "duovid bench llm ($1 KV, sparsity $2) failed"; }
    tps=$("$py" -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["decode_tok_s"])' "$tmp/duovid.json")
    rows+=("duovid|$1|$2|$tps")
done
for run in "f16 0" "f16 1" "q8_0 1"; do
    set -- $run
    echo "llamacpp_compare: llama.cpp, $1 KV, -fa $2, $ctx context" >&2
    "$lb" -m "$gguf" -p 0 -n "$gen" -d "$ctx" -t "$threads" -ctk "$1" -ctv "$1" -fa "$2" -r 1 -o json \
        >"$tmp/llama.json" 2>"$tmp/llama.err" || { tail -3 "$tmp/llama.err" >&2; die "llama-bench ($1 KV, -fa $2) failed"; }
    tps=$("$py" -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))[0]["avg_ts"])' "$tmp/llama.json")
    rows+=("llama.cpp|$1 (-fa $2)|0|$tps")
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ----
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "Decode at a $ctx-token context, $gen tokens, $threads threads, 100m synthetic Llama (duovid: bf16 weights, llama.cpp: $gtype GGUF);"
echo "$cpu, $(nproc) cores; $t0 UTC; load average $load0 before, $load1 after; llama.cpp from llama-cpp-python $version."
echo
echo "| engine | KV | sparsity | decode tok/s | vs llama.cpp f16 (the faster -fa) |"
echo "|---|---|---:|---:|---:|"
rows=("${rows[@]:3}" "${rows[@]:0:3}") # llama.cpp's rows first in the table
ref=$(awk -v a="${rows[0]##*|}" -v b="${rows[1]##*|}" 'BEGIN { print (a > b) ? a : b }')
for r in "${rows[@]}"; do
    IFS='|' read -r e kv sp tps <<<"$r"
    printf "| %s | %s | %s | %s | %s |\n" "$e" "$kv" "$sp" "$tps" "$(awk -v a="$tps" -v b="$ref" 'BEGIN { printf "%.2fx", a / b }')"
done
q8ref=${rows[2]##*|}
d_bf16=${rows[3]##*|} d_q8=${rows[4]##*|} d_duo=${rows[5]##*|}
echo
verdict() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { print (a >= f * b) ? "met" : "not met" }'; }
echo "Targets (issue 13): duovid bf16 full >= llama.cpp f16: $(verdict "$d_bf16" "$ref" 1);" \
     "duovid q8 >= llama.cpp q8_0: $(verdict "$d_q8" "$q8ref" 1);" \
     "duovid sparsity 0.5 >= 1.8x llama.cpp f16: $(verdict "$d_duo" "$ref" 1.8)."
