#!/usr/bin/env bash
# duo_flags.sh: the DuoAttention and KV-type flags of `generate`: a pattern runs and reports its KV memory,
# sparsity 0 equals no pattern, bad patterns/flags give one error line and exit 1.
#   bash tests/cli/duo_flags.sh build/duovid
set -u
bin=${1:?usage: duo_flags.sh path/to/duovid}
model=assets/models/tiny-llama
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
mkdir -p "$tmp/pat"
printf '0.9\t0.1\n0.2\t0.8\n' >"$tmp/pat/full_attention_heads.tsv"
echo '{"sink_size": 128, "recent_size": 256}' >"$tmp/pat/config.json"
gen=(generate -m $model -p "Once upon a time there was" -n 12 --temp 0)

"${bin}" "${gen[@]}" >"$tmp/full" 2>/dev/null
"${bin}" "${gen[@]}" --duo "$tmp/pat" --duo-sparsity 0 >"$tmp/s0" 2>/dev/null
cmp -s "$tmp/full" "$tmp/s0"; check "sparsity 0 generates exactly what full attention does" $?
for mode in reference strict; do
  "$bin" "${gen[@]}" --duo "$tmp/pat" --sink 1 --recent 2 --duo-prefill $mode -v >"$tmp/o" 2>"$tmp/e"; rc=$?
  [ $rc = 0 ] && grep -q "2 retrieval + 2 streaming KV heads (sink 1, recent 2)" "$tmp/e"
  check "--duo-prefill $mode runs and reports the KV split" $?
done
"$bin" "${gen[@]}" --duo "$tmp/pat/full_attention_heads.tsv" --duo-threshold 0.85 -v >/dev/null 2>"$tmp/e"
grep -q "1 retrieval + 3 streaming" "$tmp/e"; check "--duo-threshold on a bare .tsv" $?

official=../shared/duo_patterns/Mistral-7B-Instruct-v0.2.tsv
if [ -f "$official" ]; then
  one_error "official pattern of another model" "32 layers x 8 KV heads, the model has 2 x 2" -- "${gen[@]}" --duo "$official"
else
  echo "skipped: official pattern check ($official is absent)"
fi
printf '0.9\t0.1\t0.5\n' >"$tmp/wide.tsv"
one_error "pattern of another shape" "1 layers x 3 KV heads, the model has 2 x 2" -- "${gen[@]}" --duo "$tmp/wide.tsv"
one_error "missing pattern" "nope: no such pattern" -- "${gen[@]}" --duo "$tmp/nope"
printf '0.9\tx\n' >"$tmp/bad.tsv"
one_error "malformed pattern" "bad.tsv: line 1, value 2 is not a number" -- "${gen[@]}" --duo "$tmp/bad.tsv"
# KV row types: every type that fits the head dim (16) runs and is reported; f32 / bf16 are the
# ones named; q4 needs a head dim that is a multiple of 32
for t in f32 bf16 f16 q8; do
  "$bin" "${gen[@]}" --kv-type $t -v >/dev/null 2>"$tmp/e"; rc=$?
  [ $rc = 0 ] && grep -q "K $t + V $t" "$tmp/e"; check "--kv-type $t runs and is reported" $?
done
"$bin" "${gen[@]}" --kv-type q8 --kv-type-v bf16 --duo "$tmp/pat" --sink 1 --recent 2 -v >/dev/null 2>"$tmp/e"
grep -q "K q8 + V bf16, 104 bytes per token" "$tmp/e"; check "--kv-type-v after --kv-type; bytes per token" $?
one_error "unknown KV type" "--kv-type: 'q2' is not one of f32, bf16, f16, q8, q4" -- "${gen[@]}" --kv-type q2
one_error "q4 on head dim 16" "K type q4 needs a head dim that is a multiple of 32 \\(it is 16\\)" -- "${gen[@]}" --kv-type q4
one_error "sparsity without --duo" "need --duo" -- "${gen[@]}" --duo-sparsity 0.5
one_error "sparsity out of range" "--duo-sparsity: 1.5 is out of range" -- "${gen[@]}" --duo "$tmp/pat" --duo-sparsity 1.5
one_error "both sparsity and threshold" "not both" -- "${gen[@]}" --duo "$tmp/pat" --duo-sparsity 0.5 --duo-threshold 0.5
one_error "bad prefill mode" "not one of reference, strict" -- "${gen[@]}" --duo "$tmp/pat" --duo-prefill fast
"$bin" generate --help | grep -q -- "--duo-prefill"; check "generate --help documents the duo flags" $?

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
