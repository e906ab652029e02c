#!/usr/bin/env bash
# qwen35vl.sh: the tiny Qwen3.5 checkpoint (tests/fixtures/qwenvl/tiny-qwen3_5-vl: Gated DeltaNet +
# gated attention text model, the Qwen3-VL tower without DeepStack) through the CLI: `info` names the
# linear and attention layers, the skipped MTP layer and the tower; `ask` samples the processor's
# frames (1.75 fps: 7 frames, grid 4 x 6 x 8), prints the plan and answers with HF's 16 greedy tokens
# (the fixture's answer_turn1), its --verbose KV report names the linear layers and their state; a
# second run loads the context cache (with the recurrent states) for the same answer; a pattern over the
# 2 attention layers maps to model layers 3 and 7 (`pattern -m`) and answers (`ask --duo`); `chat`
# answers, forgets with /reset, answers the same again, then a second turn; `summarize` writes its line.
# A folder with neither processor file, a frame smaller than one patch and a video too short
# for the temporal patch give one error line and exit 1.
#   bash tests/cli/qwen35vl.sh build/duovid
set -u
bin=${1:?usage: qwen35vl.sh path/to/duovid}
. "$(dirname "$0")/lib.sh"
qwenvl_fixture tiny-qwen3_5-vl

"$bin" info "$model" >"$tmp/o" 2>&1 && grep -q "6 Gated DeltaNet layers (0-2,4-6)" "$tmp/o" &&
  grep -q "2 gated attention layers (3,7)" "$tmp/o" && grep -q "mtp: .*skipped" "$tmp/o" &&
  grep -q "the text model of Qwen3_5ForConditionalGeneration" "$tmp/o" &&
  grep -q "vision: *qwen3 vision, 3 blocks .* 0 deepstack" "$tmp/o" && grep -q "on the first 64 of 256 dims" "$tmp/o"
check "info: linear and attention layers, the skipped MTP layer, the tower without DeepStack" $?

ask_matches_hf "plan: 7 frames .*grid 4 x 6 x 8 .*frames 128x96), 12 tokens/2 frames" --verbose
grep -q "linear layers 0-2,4-6: Gated DeltaNet" "$tmp/err1" && grep -q "attention layers 3,7" "$tmp/err1"
check "ask --verbose: the KV report names the linear layers and their state" $?

# a DuoAttention pattern covers the 2 attention layers (1 KV head each)
printf '0.9\n0.1\n' >"$tmp/p.tsv"
"$bin" pattern "$tmp/p.tsv" -m "$model" --duo-sparsity 0.5 >"$tmp/o" 2>&1 && grep -q "(model layer   3)" "$tmp/o" &&
  grep -q "(model layer   7)" "$tmp/o" && grep -q "Gated DeltaNet layers (0-2,4-6) are linear" "$tmp/o" &&
  grep -q "retrieval heads: 1/2" "$tmp/o"
check "pattern -m: the attention layers' heads, the linear layers named" $?
"$bin" ask "${common[@]}" --no-cache --duo "$tmp/p.tsv" --duo-sparsity 0.5 --sink 4 --recent 16 -v "$clip" "$q" \
  >"$tmp/o" 2>"$tmp/e" && [ -s "$tmp/o" ]
check "ask --duo at sparsity 0.5 answers" $?
one_error "ask --duo with a pattern of all 8 layers" "layers" -- \
  ask -m "$model" --duo <(printf '1\n1\n1\n1\n1\n1\n1\n1\n') -v "$clip" --no-cache "$q"

chat_and_summarize "$a1" "$q" "$clip" "${common[@]}"

mkdir "$tmp/noproc" && cp "$model"/* "$tmp/noproc/" && rm "$tmp/noproc/"*preprocessor_config.json
one_error "ask: Qwen3.5 folder without a processor file" "noproc: no video_preprocessor_config.json or preprocessor_config.json" -- \
  ask -m "$tmp/noproc" -v "$clip" "hi"
if command -v ffmpeg >/dev/null; then
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=red:s=12x12:r=10:d=1,format=yuv420p" \
    -c:v libx264 -preset veryfast "$tmp/tiny.mp4" &&
    one_error "ask: a frame smaller than one patch" "12x12 is smaller than one 16x16 patch" -- \
      ask -m "$model" -v "$tmp/tiny.mp4" --no-cache "hi"
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=red:s=64x48:r=10:d=0.1,format=yuv420p" \
    -frames:v 1 -c:v libx264 -preset veryfast "$tmp/one.mp4" &&
    one_error "ask: a video too short for the temporal patch" "too short for the temporal patch" -- \
      ask -m "$model" -v "$tmp/one.mp4" --no-cache "hi"
else
  echo "skip bad-video checks: no ffmpeg CLI"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
