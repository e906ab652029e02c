#!/usr/bin/env bash
# qwen25vl.sh: the tiny Qwen2.5-VL checkpoint (tests/fixtures/qwenvl/tiny-qwen2_5-vl) through the CLI:
# `info` describes its vision tower; `ask` samples the processor's frames (2 fps: 8 frames, grid 4 x 6
# x 10), prints the plan and answers
# with HF's 16 greedy tokens (the fixture's answer_turn1); a second run loads the context cache for the
# same answer; --max-pixels changes the grid (and the cache file); `chat` answers, forgets with /reset
# and answers the same again, then a second turn; `summarize` writes its line. A folder with only the
# image processor's preprocessor_config.json (older checkpoints; transformers builds the video processor
# from it) answers the same. Bad input: a Qwen folder with neither processor file, absurd pixel bounds,
# a video smaller than one patch and one too short for the temporal patch give one error line and exit 1.
#   bash tests/cli/qwen25vl.sh build/duovid
set -u
bin=${1:?usage: qwen25vl.sh path/to/duovid}
. "$(dirname "$0")/lib.sh"
qwenvl_fixture tiny-qwen2_5-vl

"$bin" info "$model" >"$tmp/info" 2>&1 && grep -q "^vision: *qwen2_5_vl vision, 3 blocks x 32 .*pixels 3136..15680" "$tmp/info" &&
  grep -q "^prompt format: *chatml" "$tmp/info"
check "info: the Qwen2.5-VL vision tower, its pixel bounds and the chatml prompt" $?

ask_matches_hf "plan: 8 frames .*grid 4 x 6 x 10 .*frames 140x84), 15 tokens/2 frames (7.5/frame), 91 context tokens"
DUOVID_LOG=info "$bin" ask "${common[@]}" --max-pixels 6000 -v "$clip" "$q" >/dev/null 2>"$tmp/err3"
grep -q "grid 4 x 4 x 6 .*frames 84x56), 6 tokens/2 frames" "$tmp/err3" && ! grep -q "context cache hit" "$tmp/err3"
check "ask --max-pixels 6000: grid 4 x 4 x 6, another cache file" $?
"$bin" ask "${common[@]}" -v "$clip" --json "$q" >"$tmp/j" 2>/dev/null
python3 - "$tmp/j" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["cache"] == "hit" and j["frames"]["count"] == 8, j
assert j["tokens"]["video_context"] == 30 + 60 + 1, j["tokens"]  # prefix (with <|vision_start|>) + 4 x 15 + <|vision_end|>
PY
check "ask --json: 91 context cells (30 prefix + 4 x 15 + vision_end)" $?

chat_and_summarize "$a1" "$q" "$clip" "${common[@]}"

mkdir "$tmp/noproc" && cp "$model"/* "$tmp/noproc/" && rm "$tmp/noproc/video_preprocessor_config.json"
a3=$("$bin" ask -m "$tmp/noproc" -n 16 --temp 0 --kv-type f32 --no-cache -v "$clip" "$q" 2>"$tmp/e3")
[ "$a3" = "$a1" ]; check "ask: Qwen folder with only preprocessor_config.json: the same answer" $?
[ "$a3" = "$a1" ] || sed 's/^/     | /' "$tmp/e3"
rm "$tmp/noproc/preprocessor_config.json"
one_error "ask: Qwen folder without a processor file" "noproc: no video_preprocessor_config.json or preprocessor_config.json" -- \
  ask -m "$tmp/noproc" -v "$clip" "hi"
one_error "ask: --max-pixels 0" "--max-pixels" -- ask -m "$model" -v "$clip" --max-pixels 0 "hi"
one_error "ask: --max-pixels -5" "--max-pixels" -- ask -m "$model" -v "$clip" --max-pixels -5 "hi"
one_error "ask: --min-pixels above --max-pixels" "--min-pixels 20000 is above --max-pixels 10000" -- \
  ask -m "$model" -v "$clip" --min-pixels 20000 --max-pixels 10000 "hi"
one_error "ask: --max-pixels below the file's min_pixels" "video_preprocessor_config.json: bad values" -- \
  ask -m "$model" -v "$clip" --max-pixels 100 "hi"
one_error "ask: --max-pixels on a LLaVA model" "Qwen-VL models only" -- \
  ask -m tests/fixtures/vlm/tiny-llava-next-video -v "$clip" --max-pixels 6000 "hi"
if command -v ffmpeg >/dev/null; then
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=red:s=12x12:r=10:d=1,format=yuv420p" \
    -c:v libx264 -preset veryfast "$tmp/tiny.mp4" &&
    one_error "ask: a frame smaller than one patch" "12x12 is smaller than one 14x14 patch" -- \
      ask -m "$model" -v "$tmp/tiny.mp4" --no-cache "hi"
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=red:s=64x48:r=10:d=0.1,format=yuv420p" \
    -frames:v 1 -c:v libx264 -preset veryfast "$tmp/one.mp4" &&
    one_error "ask: a video too short for the temporal patch" "too short for the temporal patch" -- \
      ask -m "$model" -v "$tmp/one.mp4" --no-cache "hi"
else
  echo "skip bad-video checks: no ffmpeg CLI"
fi
ls "$tmp/cache" | grep -v '\.dvctx$' | grep -q . && check "no temporary files in the cache dir" 1 || check "no temporary files in the cache dir" 0

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
