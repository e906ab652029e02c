#!/usr/bin/env bash
# onevision.sh: the tiny LLaVA-OneVision checkpoint (tests/fixtures/vlm/tiny-llava-onevision, SigLIP +
# Qwen2) through the CLI: `info` shows its encoder and prompt format; `ask` answers with HF's greedy
# text (the fixture's first 16 tokens) and a second run loads the context cache for the same answer;
# `chat` answers two turns through a pipe; `summarize` writes its line; a folder missing its video
# processor config and a --template it cannot take give one error line and exit 1.
#   bash tests/cli/onevision.sh build/duovid
set -u
bin=${1:?usage: onevision.sh path/to/duovid}
model=tests/fixtures/vlm/tiny-llava-onevision
clip=tests/fixtures/vlm/clip.mp4
[ -f "$model/model.safetensors" ] && [ -f "$clip" ] || { echo "SKIPPED: $model or $clip missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"
export DUOVID_LOG=warn
common=(-m "$model" --frames 4 -n 16 --temp 0 --cache-dir "$tmp/cache")

"$bin" info "$model" >"$tmp/info" 2>&1 && grep -q "^vision: *llava_onevision, siglip tower 2 x 32" "$tmp/info" &&
  grep -q "pool bilinear" "$tmp/info" && grep -q "16 tokens x 64" "$tmp/info" && grep -q "^prompt format: *onevision" "$tmp/info"
check "info: llava_onevision, SigLIP tower, bilinear pooling, 16 tokens per frame, onevision prompt" $?

# HF's 16 greedy tokens decode to this text (make_onevision_fixture.py prints it); U+FFFD stands for
# the bytes of characters the 16 tokens leave unfinished
want=$(printf '_of\xef\xbf\xbd\xef\xbf\xbdereller\xe6\x96\x87\xef\xbf\xbdex\xef\xbf\xbd-ceifTh\xef\xbf\xbdumbb passkey')
a1=$(DUOVID_LOG=info "$bin" ask "${common[@]}" -v "$clip" "What is moving in this video?" 2>"$tmp/err1"); rc=$?
[ $rc = 0 ] && [ -n "$a1" ]; check "ask answers (exit 0)" $?
[ "$a1" = "$want" ]; check "ask: the answer is HF's greedy text" $?
[ "$a1" = "$want" ] || { printf '     | got  %q\n     | want %q\n' "$a1" "$want"; sed 's/^/     | /' "$tmp/err1"; }
grep -q "template onevision" "$tmp/err1"; check "ask: the plan names the onevision template" $?
a2=$(DUOVID_LOG=info "$bin" ask "${common[@]}" -v "$clip" "What is moving in this video?" 2>"$tmp/err2")
[ "$a2" = "$a1" ] && grep -q "context cache hit" "$tmp/err2"; check "ask again: context cache hit, same answer" $?
"$bin" ask "${common[@]}" -v "$clip" --json "What is moving in this video?" >"$tmp/j" 2>/dev/null
python3 - "$tmp/j" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["cache"] == "hit" and j["frames"]["count"] == 4, j
assert j["tokens"]["video_context"] == 4 + 4 * 16 + 1, j["tokens"]  # prefix + frames + image_newline
EOF
check "ask --json: 69 context tokens (4 prefix + 4 x 16 + the image_newline)" $?

printf 'What is moving in this video?\nWhat colour is it?\n/quit\n' |
  "$bin" chat "${common[@]}" -v "$clip" >"$tmp/chat.out" 2>"$tmp/chat.err"; rc=$?
[ $rc = 0 ] && [ "$(wc -l <"$tmp/chat.out")" = 2 ] && [ "$(sed -n 1p "$tmp/chat.out")" = "$a1" ]
check "chat: two answers through a pipe, the first as ask's" $?

"$bin" summarize "${common[@]}" -o "$tmp/s.jsonl" "$clip" >/dev/null 2>"$tmp/serr"; rc=$?
[ $rc = 0 ] && python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).read()); assert r['status']=='ok' and r['summary']" "$tmp/s.jsonl"
check "summarize: one ok line" $?

mkdir "$tmp/noproc" && cp "$model"/* "$tmp/noproc/" && rm "$tmp/noproc/video_preprocessor_config.json"
one_error "ask: OneVision folder without its video processor" "noproc/video_preprocessor_config.json: missing" -- \
  ask -m "$tmp/noproc" -v "$clip" --frames 4 "hi"
one_error "ask: --template nonsense" "--template: 'onevisio' is not one of .*onevision" -- \
  ask -m "$model" -v "$clip" --template onevisio "hi"
ls "$tmp/cache" | grep -v '\.dvctx$' | grep -q . && check "no temporary files in the cache dir" 1 || check "no temporary files in the cache dir" 0

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
