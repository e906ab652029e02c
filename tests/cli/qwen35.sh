#!/usr/bin/env bash
# qwen35.sh: the hybrid Qwen3.5 text model (tiny-qwen35: Gated DeltaNet + gated attention) through
# the CLI: `info` names the linear and attention layers and the skipped MTP layer, `generate` runs
# and reports the recurrent state with --verbose, `identify` writes a pattern over the attention
# layers that `pattern -m` maps to model layers and `generate --duo` uses, `synth-model` writes a
# Qwen3.5 shape; the MoE variant and a pattern of the wrong shape are one-line errors.
#   bash tests/cli/qwen35.sh build/duovid
set -u
bin=${1:?usage: qwen35.sh path/to/duovid}
model=tests/fixtures/llm/tiny-qwen35
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error

"$bin" info $model >"$tmp/o" 2>&1 && grep -q "6 Gated DeltaNet layers (0-2,4-6)" "$tmp/o" &&
  grep -q "2 gated attention layers (3,7)" "$tmp/o" && grep -q "mtp: .*skipped" "$tmp/o" &&
  grep -q "on the first 8 of 32 dims" "$tmp/o"
check "info names the linear and attention layers and the skipped MTP layer" $?
"$bin" info $model --json | grep -q '"linear_layers":"0-2,4-6","attention_layers":"3,7","mtp_layers_skipped":1'
check "info --json carries the layer map" $?

"$bin" generate -m $model -p "Once upon a time" -n 6 --temp 0 --chunk 5 --verbose >"$tmp/o" 2>"$tmp/e" &&
  grep -q "linear layers 0-2,4-6: Gated DeltaNet" "$tmp/e" && grep -q "attention layers 3,7" "$tmp/e"
check "generate (chunked prefill) with the KV report naming the linear layers" $?

"$bin" identify -m $model -o "$tmp/p" --length 64 --passkeys 2 --passkey-words 3 --sink 4 --recent 8 \
  >"$tmp/o" 2>/dev/null && grep -q "2 layers x 2 KV heads" "$tmp/o" && grep -q "hybrid model" "$tmp/o" &&
  grep -q "(model layer 7)" "$tmp/o"
check "identify scores the attention layers only" $?
"$bin" pattern "$tmp/p" -m $model --duo-sparsity 0.5 >"$tmp/o" && grep -q "(model layer   3)" "$tmp/o" &&
  grep -q "Gated DeltaNet layers (0-2,4-6) are linear" "$tmp/o" && grep -q "retrieval heads: 2/4" "$tmp/o"
check "pattern -m maps the pattern to model layers" $?
"$bin" generate -m $model -p "Once upon a time" -n 4 --temp 0 --duo "$tmp/p" --duo-sparsity 0.5 >/dev/null 2>&1
check "generate --duo uses the hybrid model's pattern" $?
one_error "pattern -m with a model of another shape" "layers" -- pattern "$tmp/p" -m tests/fixtures/llm/tiny-smollm2

"$bin" synth-model --shape qwen3.5-tiny --layers 8 -o "$tmp/s" 2>/dev/null &&
  "$bin" info "$tmp/s" | grep -q "6 Gated DeltaNet layers (0-2,4-6)"
check "synth-model writes a Qwen3.5 shape that info reads" $?
one_error "synth-model qwen3.5 with too few layers" "at least 4 layers" -- synth-model --shape qwen3.5-tiny --layers 3 -o "$tmp/s3"

mkdir -p "$tmp/moe" && cp $model/model.safetensors $model/tokenizer* $model/added_tokens.json "$tmp/moe/" &&
  sed 's/"model_type": "qwen3_5_text"/"model_type": "qwen3_5_moe_text"/; s/Qwen3_5ForCausalLM/Qwen3_5MoeForCausalLM/' \
    $model/config.json >"$tmp/moe/config.json"
one_error "a Qwen3.5 MoE checkpoint is refused by name" "mixture-of-experts" -- info "$tmp/moe"
one_error "generate on the MoE checkpoint" "mixture-of-experts" -- generate -m "$tmp/moe" -p x -n 1

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
