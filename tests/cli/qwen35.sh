#!/usr/bin/env bash
# qwen35.sh: the hybrid Qwen3.5 text model (tiny-qwen35: Gated DeltaNet + gated attention) through
# the CLI: `info` names the linear and attention layers and the skipped MTP layer, `generate` runs
# and reports the recurrent state with --verbose, `identify` writes a pattern over the attention
# layers that `pattern -m` maps to model layers and `generate --duo` uses, `synth-model` writes a
# Qwen3.5 shape; a pattern of the wrong shape is a one-line error. The same text model inside a
# Qwen3_5ForConditionalGeneration folder (tiny-qwen35-vlm) runs, its video side without the video
# processor config is a one-line error (tests/cli/qwen35vl.sh runs a whole one);
# the MoE model (tiny-qwen35-moe) shows its experts and runs; Qwen3-Next is refused by name.
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

# a Qwen3_5ForConditionalGeneration folder: its text model runs; no video processor config: one line
vlm=tests/fixtures/llm/tiny-qwen35-vlm
"$bin" info $vlm >"$tmp/o" 2>&1 && grep -q "6 Gated DeltaNet layers (0-2,4-6)" "$tmp/o" &&
  grep -q "the text model of Qwen3_5ForConditionalGeneration" "$tmp/o" &&
  grep -q "vision:.*unusable: .*no video_preprocessor_config.json or preprocessor_config.json" "$tmp/o"
check "info on a Qwen3.5 VLM folder without its video processor: the text model, the vision side unusable" $?
"$bin" generate -m $vlm -p "Once upon a time" -n 6 --temp 0 --chunk 5 >"$tmp/o" 2>/dev/null && [ -s "$tmp/o" ]
check "generate on the Qwen3.5 VLM folder's text model" $?
one_error "ask with a video on a Qwen3.5 VLM folder lacking its video processor" "no video_preprocessor_config.json or preprocessor_config.json" -- \
  ask -m $vlm -v tests/fixtures/vlm/clip.mp4 "what happens?"

# the MoE text model: info shows the experts, generate runs (chunked prefill); Qwen3-Next is refused
moe=tests/fixtures/llm/tiny-qwen35-moe
"$bin" info $moe >"$tmp/o" 2>&1 && grep -q "8 routed experts of 40, top 2 per token" "$tmp/o" &&
  grep -q "shared expert of 56" "$tmp/o"
check "info shows the experts and top-k" $?
"$bin" info $moe --json | grep -q '"experts":8,"experts_per_token":2,"expert_intermediate_size":40'
check "info --json carries the experts" $?
"$bin" generate -m $moe -p "Once upon a time" -n 6 --temp 0 --chunk 5 --threads 1 >"$tmp/o" 2>/dev/null && [ -s "$tmp/o" ]
check "generate on the MoE model" $?
mkdir -p "$tmp/next" && cp $moe/model.safetensors $moe/tokenizer* $moe/added_tokens.json "$tmp/next/" &&
  sed 's/"model_type": "qwen3_5_moe_text"/"model_type": "qwen3_next"/; s/Qwen3_5MoeForCausalLM/Qwen3NextForCausalLM/' \
    $moe/config.json >"$tmp/next/config.json"
one_error "a Qwen3-Next checkpoint is refused by name" "mixture-of-experts model whose layout" -- info "$tmp/next"
one_error "generate on the Qwen3-Next checkpoint" "mixture-of-experts" -- generate -m "$tmp/next" -p x -n 1

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
