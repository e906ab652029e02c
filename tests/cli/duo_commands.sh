#!/usr/bin/env bash
# duo_commands.sh: `identify` (each method, gates for 4 steps) writes a pattern folder that `pattern` and `generate --duo` accept (Llama,
# Qwen2, Qwen3, SmolLM2);
# `bench duo` and `bench encoder` run on tiny settings and print their JSON; bad input gives one
# error line, exit 1, and no output folder.
#   bash tests/cli/duo_commands.sh build/duovid
set -u
bin=${1:?usage: duo_commands.sh path/to/duovid}
model=assets/models/tiny-llama
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error

for m in ablation attention-mass deviation gates random; do
  steps=(); [ $m = gates ] && steps=(--steps 4)
  "$bin" identify -m $model -o "$tmp/p-$m" --method $m --length 64 --passkeys 2 --passkey-words 3 \
    --sink 4 --recent 8 "${steps[@]}" >"$tmp/o" 2>/dev/null; rc=$?
  [ $rc = 0 ] && grep -q "2 layers x 2 KV heads ($m)" "$tmp/o" && [ -f "$tmp/p-$m/full_attention_heads.tsv" ] \
    && grep -q "\"method\":.*\"$m\"" "$tmp/p-$m/config.json"
  check "identify --method $m writes a pattern folder" $?
done
# the other text families: Qwen2 (biases), Qwen3 (q/k norm), SmolLM2 (1 KV head per layer)
for m in tiny-qwen2:2 tiny-qwen3:2 tiny-smollm2:1; do
  name=${m%:*} kv=${m#*:}
  "$bin" identify -m tests/fixtures/llm/$name -o "$tmp/p-$name" --length 64 --passkeys 2 --passkey-words 3 \
    --sink 4 --recent 8 >"$tmp/o" 2>/dev/null && grep -q "2 layers x $kv KV heads" "$tmp/o" &&
    "$bin" generate -m tests/fixtures/llm/$name -p "Once upon a time" -n 4 --temp 0 --duo "$tmp/p-$name" \
      --duo-sparsity 0.5 >/dev/null 2>&1
  check "identify writes a pattern for $name that generate --duo uses" $?
done
"$bin" pattern "$tmp/p-ablation" --duo-sparsity 0.5 | grep -q "retrieval heads: 2/4"; check "pattern reads it" $?
"$bin" generate -m $model -p "Once upon a time" -n 4 --temp 0 --duo "$tmp/p-ablation" >/dev/null 2>&1
check "generate --duo uses it" $?
one_error "identify without -o" "-o PATTERN_DIR" -- identify -m $model
one_error "identify on a missing model" "nope: no such model folder" -- identify -m "$tmp/nope" -o "$tmp/x"
one_error "identify bad method" "not one of ablation, attention-mass, deviation" -- identify -m $model -o "$tmp/x" --method magic
one_error "identify bad stride" "--stride" -- identify -m $model -o "$tmp/x" --method deviation --stride 0
one_error "identify bad supervision" "--supervise: 'most' is not answers or all" -- identify -m $model -o "$tmp/x" --method gates --supervise most
one_error "identify gates, bad lr" "--lr" -- identify -m $model -o "$tmp/x" --method gates --lr 0
one_error "identify gates on a hybrid model" "not a dense Llama-family text model" -- identify -m tests/fixtures/llm/tiny-qwen35-moe -o "$tmp/x" --method gates --length 64
[ ! -e "$tmp/x" ]; check "no pattern folder left after the errors" $?

"$bin" bench duo -m $model --contexts 64,128 --sparsities 0.5 --chunk 32 --gen-tokens 4 --sink 4 --recent 8 \
  --json >"$tmp/b" 2>/dev/null; rc=$?
# per context: full, then reference and strict at 0.5 -> 6 JSON lines
[ $rc = 0 ] && [ "$(grep -c '"kv_ratio":' "$tmp/b")" = 6 ] && grep -q '"prefill":"strict"' "$tmp/b"
check "bench duo --json" $?
one_error "bench duo bad sparsity list" "--sparsities: 2 is out of range" -- bench duo --sparsities 0.5,2
one_error "bench encoder without a model" "bench encoder" -- bench encoder
"$bin" bench duo --help | grep -q "usage: duovid bench duo"; check "bench duo --help" $?
"$bin" identify --help | grep -q "usage: duovid identify"; check "identify --help" $?
"$bin" bench encoder --help | grep -q "usage: duovid bench encoder"; check "bench encoder --help" $?

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
