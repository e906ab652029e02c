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
. "$(dirname "$0")/lib.sh"
qwenvl_fixture tiny-qwen3-vl

ask_matches_hf "plan: 7 frames .*grid 4 x 6 x 8 .*frames 128x96), 12 tokens/2 frames"
DUOVID_LOG=info "$bin" ask "${common[@]}" --max-pixels 40000 -v "$clip" "$q" >/dev/null 2>"$tmp/err3"
grep "plan:" "$tmp/err3" | grep -v -q "grid 4 x 6 x 8" && ! grep -q "context cache hit" "$tmp/err3"
check "ask --max-pixels 40000: a smaller grid, another cache file" $?

chat_and_summarize "$a1" "$q" "$clip" "${common[@]}"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
