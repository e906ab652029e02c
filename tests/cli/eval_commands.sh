#!/usr/bin/env bash
# eval_commands.sh: `perplexity` and `eval niah` on the tiny SmolLM2-shaped fixture (random weights: the
# plumbing, not the figures, which tests/test_real_eval.c checks on the real model): window counts,
# JSON fields, the heat map PNG, --duo patterns from `identify --method random`; bad input gives one
# error line, exit 1 and no output file.
#   bash tests/cli/eval_commands.sh build/duovid
set -u
bin=${1:?usage: eval_commands.sh path/to/duovid}
model=tests/fixtures/llm/tiny-smollm2
text=assets/text/filler.txt
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error

"$bin" perplexity --help | grep -q "usage: duovid perplexity"; check "perplexity --help" $?
"$bin" eval --help | grep -q "usage: duovid eval niah"; check "eval --help" $?
"$bin" eval niah --help | grep -q -- "--duo PATH"; check "eval niah --help lists the duo flags" $?

# 64-token windows, the first 3: 3 x (64 - 1 - 32) = 93 scored tokens
"$bin" perplexity -m $model -f $text --ctx 64 --windows 3 --json -t 1 >"$tmp/p" 2>/dev/null; rc=$?
[ $rc = 0 ] && grep -q '"windows":3,"scored":93,' "$tmp/p" && grep -q '"attention":"full attention"' "$tmp/p"
check "perplexity --json: 3 windows, 93 tokens scored" $?
"$bin" perplexity -m $model -f $text --ctx 64 --windows 2 -t 1 >"$tmp/p" 2>"$tmp/e"; rc=$?
[ $rc = 0 ] && grep -Eq '^perplexity [0-9.]+ .*62 tokens scored in 2 windows of 64' "$tmp/p" &&
  [ "$(grep -c 'running ppl' "$tmp/e")" = 2 ]
check "perplexity text summary, a progress line per window" $?
"$bin" identify -m $model -o "$tmp/rand" --method random --seed 3 >/dev/null 2>&1
check "identify --method random writes a pattern" $?
"$bin" perplexity -m $model -f $text --ctx 64 --windows 1 --duo "$tmp/rand" --duo-sparsity 0.5 --sink 4 \
  --recent 8 --duo-prefill strict --json -t 1 >"$tmp/p" 2>/dev/null; rc=$?
[ $rc = 0 ] && grep -q '"attention":".*1/2 retrieval heads, sink 4, recent 8, strict prefill' "$tmp/p"
check "perplexity --duo uses the pattern" $?

"$bin" eval niah -m $model --ctx 512,1k --depths 0,0.5,1 --samples 1 --json --png "$tmp/h.png" -t 1 \
  >"$tmp/n" 2>/dev/null; rc=$?
[ $rc = 0 ] && grep -q '"lengths":\[512,1024\],"depths":\[0,0.5,1\],"accuracy":\[\[[0-9.]*,[0-9.]*,[0-9.]*\],\[' "$tmp/n" &&
  [ "$(head -c 8 "$tmp/h.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
check "eval niah --json and --png" $?
"$bin" eval niah -m $model --ctx 512 --depths 0.5 --samples 2 --duo "$tmp/rand" --sink 4 --recent 8 -t 1 \
  >"$tmp/n" 2>/dev/null; rc=$?
[ $rc = 0 ] && grep -q "2 samples per cell" "$tmp/n" && grep -Eq '^ +512 +[0-9.]+%' "$tmp/n"
check "eval niah table with --duo" $?

one_error "perplexity without -f" "-f TEXT_FILE are required" -- perplexity -m $model
one_error "perplexity missing text" "nope.txt: cannot open" -- perplexity -m $model -f "$tmp/nope.txt"
one_error "perplexity text shorter than a window" "fewer than one window of --ctx 4096" -- \
  perplexity -m $model -f $text --ctx 4096
one_error "perplexity missing model" "nope: no such model folder" -- perplexity -m "$tmp/nope" -f $text
one_error "perplexity --duo-sparsity without --duo" "need --duo PATTERN" -- perplexity -m $model -f $text --duo-sparsity 0.5
one_error "perplexity bad --ctx" "--ctx: 'x' is not" -- perplexity -m $model -f $text --ctx x
one_error "eval unknown evaluation" "unknown evaluation 'foo'" -- eval foo
one_error "eval niah depth out of range" "--depths: 2 is out of range" -- eval niah -m $model --depths 0,2
one_error "eval niah length too short" "--ctx: 16 is out of range" -- eval niah -m $model --ctx 16
one_error "eval niah prompt too short for the needle" "leaves no room|does not fit" -- \
  eval niah -m $model --ctx 64 --depths 0 --samples 1
one_error "eval niah missing haystack" "nope.txt: cannot open" -- eval niah -m $model --haystack "$tmp/nope.txt"
one_error "eval niah png into a missing folder" "nodir/h.png" -- \
  eval niah -m $model --ctx 512 --depths 0 --samples 1 --png "$tmp/nodir/h.png"
[ ! -e "$tmp/nodir" ]; check "no PNG left after the error" $?

# V-NIAH on the tiny LLaVA-NeXT-Video: the plumbing (a needle frame per depth, the answer, --expect)
vlm=assets/models/tiny-llava-next-video
"$bin" eval vniah --help | grep -q "usage: duovid eval vniah"; check "eval vniah --help" $?
"$bin" eval vniah -m $vlm -v assets/video/demo.mp4 --needle tests/fixtures/encoder/frame0.png --frames 6 \
  --depths 0,1 -n 3 --expect zzz --json -t 1 >"$tmp/v" 2>/dev/null; rc=$?
[ $rc = 0 ] && grep -q '"results":\[{"depth":0,"frame":0,"frames":6,"answer":".*"found":false},{"depth":1,"frame":5,' "$tmp/v" &&
  grep -q '"accuracy":0}' "$tmp/v"
check "eval vniah --json: the needle as frame 0 and 5 of 6" $?
one_error "eval vniah missing needle" "nope.png" -- eval vniah -m $vlm -v assets/video/demo.mp4 --needle "$tmp/nope.png"
one_error "eval vniah without --needle" "--needle IMG.png are required" -- eval vniah -m $vlm -v assets/video/demo.mp4
one_error "eval vniah bad depth" "--depths: -1 is out of range" -- eval vniah -m $vlm -v assets/video/demo.mp4 \
  --needle tests/fixtures/encoder/frame0.png --depths -1

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
