#!/usr/bin/env bash
# qwen3vl.sh: the tiny Qwen3-VL checkpoint (tests/fixtures/qwenvl/tiny-qwen3-vl) through the CLI:
# `ask` samples the processor's frames (1.75 fps: 7 frames, grid 4 x 6 x 8), prints the plan (with
# the per-group timestamp text) and answers with HF's 16 greedy tokens (the fixture's answer_turn1);
# a second run loads the context cache for the same answer; --max-pixels changes the grid; `chat`
# answers, forgets with /reset and answers the same again, then a second turn; `summarize` writes its
# line.
#   bash tests/cli/qwen3vl.sh build/duovid
set -u
bin=${1:?usage: qwen3vl.sh path/to/duovid}
model=tests/fixtures/qwenvl/tiny-qwen3-vl
ref=tests/fixtures/qwenvl/tiny-qwen3-vl.ref.safetensors
clip=tests/fixtures/vlm/clip.mp4
[ -f "$model/model.safetensors" ] && [ -f "$clip" ] && [ -f "$ref" ] || { echo "SKIPPED: $model or $clip missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"
export DUOVID_LOG=warn
common=(-m "$model" -n 16 --temp 0 --kv-type f32 --cache-dir "$tmp/cache")
q="What is moving in this video?"

# HF's greedy answer, from the fixture's metadata
want=$(fixture_meta "$ref" answer_turn1)
want=${want%%<|im_end|>*} # the CLI stops at the end-of-turn token HF generated through

a1=$(DUOVID_LOG=info "$bin" ask "${common[@]}" -v "$clip" "$q" 2>"$tmp/err1"); rc=$?
[ $rc = 0 ] && [ "$a1" = "$want" ]; check "ask: HF's greedy answer" $?
[ "$a1" = "$want" ] || { printf '     | got  %q\n     | want %q\n' "$a1" "$want"; sed 's/^/     | /' "$tmp/err1"; }
grep -q "plan: 7 frames .*grid 4 x 6 x 8 .*frames 128x96), 12 tokens/2 frames" "$tmp/err1"
check "ask: the plan prints frames, grid and tokens per frame" $?
[ $rc = 0 ] || sed 's/^/     | /' "$tmp/err1"
a2=$(DUOVID_LOG=info "$bin" ask "${common[@]}" -v "$clip" "$q" 2>"$tmp/err2")
[ "$a2" = "$a1" ] && grep -q "context cache hit" "$tmp/err2"; check "ask again: context cache hit, same answer" $?
DUOVID_LOG=info "$bin" ask "${common[@]}" --max-pixels 40000 -v "$clip" "$q" >/dev/null 2>"$tmp/err3"
grep "plan:" "$tmp/err3" | grep -v -q "grid 4 x 6 x 8" && ! grep -q "context cache hit" "$tmp/err3"
check "ask --max-pixels 40000: a smaller grid, another cache file" $?

chat_and_summarize "$a1" "$q" "$clip" "${common[@]}"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
