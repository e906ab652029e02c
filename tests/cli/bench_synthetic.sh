#!/usr/bin/env bash
# bench_synthetic.sh: `bench llm|duo --synthetic SHAPE` build random weights in memory (no file) and
# run on the CPU with a tiny shape: plain prefill/decode, a synthetic KV fill with DuoAttention, and
# the same numbers' JSON fields; a synthetic model equals the `synth-model` checkpoint of the same
# shape (same parameter count and weight bytes); bad input gives one error line and exit 1.
#   bash tests/cli/bench_synthetic.sh build/duovid
set -u
bin=${1:?usage: bench_synthetic.sh path/to/duovid}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
gpu_sh=$(cd "$(dirname "${BASH_SOURCE[0]}")/../gpu" && pwd)/run.sh
field() { grep -Eo "\"$1\":[^,}]+" "$2" | cut -d: -f2; }

cd "$tmp" || exit 1
"$bin" bench llm --synthetic tiny --device cpu -t 2 --prompt-tokens 40 --gen-tokens 4 --batch 16 --json >o1 2>/dev/null
[ $? = 0 ] && grep -q '"synthetic":true' o1 && [ "$(field prompt_tokens o1)" = 40 ] && [ "$(field context o1)" = 40 ]
check "bench llm --synthetic tiny (prefill + decode)" $?
[ -z "$(ls -A "$tmp" | grep -v '^o1$')" ]; check "no file written" $?
"$bin" bench llm --synthetic tiny --device cpu -t 2 --fill 3000 --prompt-tokens 0 --gen-tokens 4 --sparsity 0.5 \
  --sink 4 --recent 64 --json >o2 2>/dev/null
[ $? = 0 ] && [ "$(field context o2)" = 3000 ] && [ "$(field fill_tokens o2)" = 3000 ]
check "bench llm --fill 3000 --sparsity 0.5 (decode at a filled context)" $?
"$bin" bench llm --synthetic tiny --device cpu -t 2 --fill 3000 --prompt-tokens 0 --gen-tokens 4 --json >o3 2>/dev/null
kv_duo=$(field kv_bytes o2); kv_full=$(field kv_bytes o3)
[ -n "$kv_duo" ] && [ -n "$kv_full" ] && awk -v a="$kv_duo" -v b="$kv_full" 'BEGIN { exit !(a < 0.7 * b) }'
check "DuoAttention fill keeps fewer KV bytes ($kv_duo < $kv_full)" $?
# the memory floor: weights (less the untied embedding table but its one row: 514 x 64 bf16 less 64)
# + the context's K/V rows (mean context of the 4 timed steps after the warm-up step: 3003) read per
# step, over the read bandwidth
# measured in the same run; floor_ratio = floor tok/s / decode tok/s
awk -v w="$(field weight_bytes o3)" -v dw="$(field decode_weight_bytes o3)" -v b="$(field kv_bytes_per_token o3)" \
    -v r="$(field decode_read_bytes o3)" \
    -v g="$(field read_gb_s o3)" -v f="$(field memory_floor_tok_s o3)" -v d="$(field decode_tok_s o3)" \
    -v x="$(field floor_ratio o3)" 'BEGIN { exit !(dw == w - 513 * 64 * 2 && r == dw + 3003 * b && g > 0 && f > 0 &&
    (f - g * 1e9 / r) ^ 2 < (1e-6 * f) ^ 2 && (x - f / d) ^ 2 < (1e-6 * x) ^ 2) }'
check "bench llm memory floor = (weights + KV bytes read) / read bandwidth, and its ratio" $?
"$bin" synth-model --shape tiny -o "$tmp/m" --dtype bf16 >/dev/null 2>&1
"$bin" bench llm -m "$tmp/m" --device cpu -t 2 --prompt-tokens 8 --gen-tokens 1 --json >o4 2>/dev/null
[ "$(field parameters o4)" = "$(field parameters o1)" ] && [ "$(field weight_bytes o4)" -ge "$(field weight_bytes o1)" ] 2>/dev/null
check "same shape as the synth-model checkpoint" $?
"$bin" bench duo --synthetic tiny --device cpu -t 2 --contexts 128 --chunk 64 --gen-tokens 2 --sink 4 --recent 16 \
  --sparsities 0.5 --json >o5 2>/dev/null
[ $? = 0 ] && [ "$(grep -c '"context":128' o5)" = 3 ]; check "bench duo --synthetic tiny" $?
[ "$(grep -c '"floor_ratio":[0-9]' o5)" = 3 ] && [ "$(grep -c '"read_gb_s":0.000' o5)" = 0 ]
check "bench duo reports the memory floor per row" $?

# tests/gpu/run.sh never runs here (no GPU): it must parse, and name only shapes bench llm builds
bash -n "$gpu_sh"; check "tests/gpu/run.sh parses (bash -n)" $?
shapes=$("$bin" bench llm --help 2>&1 | grep -Eo 'no file \([^)]*\)' | sed 's/^no file (/, /; s/)$/,/')
gpu_bad=
for m in $(grep -Eo '"[a-z0-9.-]+ [0-9.]+"' "$gpu_sh" | tr -d '"' | cut -d' ' -f1 | sort -u); do
  case "$shapes" in *", $m,"*) ;; *) gpu_bad="$gpu_bad $m" ;; esac
done
[ -n "$shapes" ] && [ -z "$gpu_bad" ] && grep -q '"qwen3-vl-8b 0.5"' "$gpu_sh"
check "tests/gpu/run.sh's table shapes are bench llm shapes (the Qwen-VL ones included)${gpu_bad:+:$gpu_bad}" $?

one_error "unknown shape" "unknown model shape 'nope'" -- bench llm --synthetic nope --device cpu
one_error "both -m and --synthetic" "exactly one of" -- bench llm --synthetic tiny -m "$tmp/m" --device cpu
one_error "bad dtype" "--dtype: 'q4'" -- bench llm --synthetic tiny --dtype q4 --device cpu
one_error "prompt 0 without fill" "needs --fill" -- bench llm --synthetic tiny --prompt-tokens 0 --device cpu
one_error "bad sparsity" "sparsity" -- bench llm --synthetic tiny --sparsity 2 --device cpu
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
