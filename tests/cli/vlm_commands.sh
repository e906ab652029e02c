#!/usr/bin/env bash
# vlm_commands.sh: `duovid ask`, `chat` and `summarize` from the command line with the tiny
# LLaVA-NeXT-Video model: every --help; bad model folder, bad video, bad flags, unwritable outputs give
# one error line and exit 1; --json is one valid object; the context cache gives the same answer, and
# a corrupt cache file is ignored with a warning and rebuilt; chat driven through a pipe (/info,
# /save, /reset, /quit); summarize records a bad video and goes on, resumes after an interruption
# (a torn last line), splits with --shard and reads --list.
#   bash tests/cli/vlm_commands.sh build/duovid
set -u
bin=${1:?usage: vlm_commands.sh path/to/duovid}
model=assets/models/tiny-llava-next-video
clip=tests/fixtures/vlm/clip.mp4
[ -f "$model/model.safetensors" ] && [ -f "$clip" ] || { echo "SKIPPED: $model or $clip missing"; exit 77; }
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
export DUOVID_LOG=warn
common=(-m "$model" --frames 4 -n 6 --cache-dir "$tmp/cache")

# expect LABEL PATTERN -- ARGS...: exit 1, exactly one stderr line, matching PATTERN.
expect() {
  local label=$1 pattern=$2; shift 3
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" = 1 ] && [ "$lines" = 1 ] && grep -Eq -- "$pattern" "$tmp/err"; then
    ok "$label: $(cat "$tmp/err")"
  else
    bad "$label: exit $rc, $lines stderr lines:"; cat "$tmp/err"
  fi
}

for cmd in ask chat summarize; do
  if "$bin" $cmd --help >"$tmp/help" 2>&1 && grep -q -- "--max-tokens-context" "$tmp/help" && grep -q -- "--duo" "$tmp/help" &&
     grep -q -- "--cache-dir" "$tmp/help" && grep -q "usage: duovid $cmd" "$tmp/help"; then ok "$cmd --help"; else bad "$cmd --help"; fi
done
"$bin" --help | grep -q "^  ask " && ok "duovid --help lists ask" || bad "duovid --help lists ask"
# the model list names every Qwen VL family the video commands run
"$bin" ask --help >"$tmp/help" 2>&1 && grep -q "Qwen2.5-VL, Qwen3-VL" "$tmp/help" && grep -q "Qwen3.5 (dense or MoE" "$tmp/help" &&
  ok "ask --help names Qwen2.5-VL, Qwen3-VL and Qwen3.5" || bad "ask --help names Qwen2.5-VL, Qwen3-VL and Qwen3.5"

"$bin" info "$model" >"$tmp/info" 2>&1 && grep -q "^vision: *llava_next_video" "$tmp/info" && grep -q "^prompt format: *vicuna" "$tmp/info" \
  && ok "info: a LLaVA folder shows its vision tower and prompt format" || { bad "info on $model"; cat "$tmp/info"; }

# ---- bad input ----
printf 'not a video at all' >"$tmp/junk.mp4"
head -c 3000 "$clip" >"$tmp/trunc.mp4"
expect "ask: missing model folder" "nope: no such model folder" -- ask -m "$tmp/nope" -v "$clip" "hi"
expect "ask: text-only model folder" "tiny-llama.*(vision|config)" -- ask -m assets/models/tiny-llama -v "$clip" "hi"
expect "ask: missing video" "missing.mp4" -- ask "${common[@]}" -v "$tmp/missing.mp4" "hi"
expect "ask: not a video" "junk.mp4" -- ask "${common[@]}" -v "$tmp/junk.mp4" "hi"
expect "ask: truncated video" "trunc.mp4" -- ask "${common[@]}" -v "$tmp/trunc.mp4" "hi"
expect "ask: no question" "QUESTION is missing" -- ask "${common[@]}" -v "$clip"
expect "ask: no video" "-v VIDEO is required" -- ask "${common[@]}" "hi"
expect "ask: --fps with --frames" "either --fps or --frames" -- ask "${common[@]}" --fps 2 -v "$clip" "hi"
expect "ask: bad --temp" "--temp" -- ask "${common[@]}" --temp -1 -v "$clip" "hi"
expect "ask: bad --template" "--template: 'nosuchformat'" -- ask "${common[@]}" --template nosuchformat -v "$clip" "hi"
expect "ask: budget too small" "not even one frame fits" -- ask "${common[@]}" --max-tokens-context 40 -v "$clip" "hi"
expect "ask: start past the end" "start" -- ask "${common[@]}" --start 100 -v "$clip" "hi"
expect "ask: unknown flag" "unknown option '--bogus'" -- ask "${common[@]}" --bogus -v "$clip" "hi"
expect "chat: stray argument" "questions are read from stdin" -- chat "${common[@]}" -v "$clip" "hi"
expect "summarize: no -o" "-o OUT.jsonl is required" -- summarize "${common[@]}" "$clip"
expect "summarize: bad --shard" "--shard: '2/2'" -- summarize "${common[@]}" -o "$tmp/s.jsonl" --shard 2/2 "$clip"
expect "summarize: unwritable output" "nodir/out.jsonl" -- summarize "${common[@]}" -o "$tmp/nodir/out.jsonl" "$clip"
[ ! -e "$tmp/nodir" ] && ok "summarize: nothing created for an unwritable output" || bad "summarize: created $tmp/nodir"
expect "summarize: missing --list" "nolist.txt" -- summarize "${common[@]}" -o "$tmp/s.jsonl" --list "$tmp/nolist.txt"
[ ! -e "$tmp/s.jsonl" ] && ok "summarize: no output file after usage errors" || bad "summarize: left $tmp/s.jsonl"

# ---- ask, --json, the context cache ----
a1=$("$bin" ask "${common[@]}" -v "$clip" "What is moving?" 2>"$tmp/err1"); rc=$?
[ $rc = 0 ] && [ -n "$a1" ] && ok "ask answers (exit 0)" || { bad "ask: exit $rc"; cat "$tmp/err1"; }
n_cache=$(ls "$tmp/cache" 2>/dev/null | grep -c '\.dvctx$')
[ "$n_cache" = 1 ] && ok "ask wrote one context cache file" || bad "ask: $n_cache cache files"
"$bin" ask "${common[@]}" -v "$clip" --json "What is moving?" >"$tmp/j" 2>"$tmp/err2"
if python3 - "$tmp/j" "$a1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["cache"] == "hit", j["cache"]
assert j["answer"] == sys.argv[2], (j["answer"], sys.argv[2])
assert j["frames"]["count"] == 4 and len(j["frames"]["times"]) == 4
assert j["tokens"]["answer"] == 6 and j["tokens"]["video_context"] > 4 * 36
for k in ("decode", "encode", "prefill", "generate", "time_to_first_token", "total"): assert k in j["timings_sec"], k
assert j["kv_bytes"]["total"] > 0
EOF
then ok "ask --json: one object, cache hit, same answer as without the cache"; else bad "ask --json"; cat "$tmp/j"; fi
a3=$("$bin" ask "${common[@]}" --no-cache -v "$clip" "What is moving?" 2>/dev/null)
[ "$a3" = "$a1" ] && ok "ask --no-cache: same answer" || bad "ask --no-cache: '$a3' != '$a1'"
f=$(ls "$tmp/cache"/*.dvctx)
head -c 2000 "$f" >"$tmp/t" && cat "$tmp/t" >"$f"
a4=$("$bin" ask "${common[@]}" -v "$clip" "What is moving?" 2>"$tmp/err4"); rc=$?
if [ $rc = 0 ] && [ "$a4" = "$a1" ] && grep -q "ignored, rebuilding" "$tmp/err4"; then ok "truncated cache file: warned, rebuilt, same answer"
else bad "truncated cache file: exit $rc"; cat "$tmp/err4"; fi
[ "$(stat -c %s "$f")" -gt 2000 ] && ok "the cache file was rewritten whole" || bad "cache file still truncated"
printf 'garbage' >"$f"
a5=$("$bin" ask "${common[@]}" -v "$clip" "What is moving?" 2>"$tmp/err5")
[ "$a5" = "$a1" ] && grep -q "ignored, rebuilding" "$tmp/err5" && ok "garbage cache file: warned, rebuilt" || { bad "garbage cache file"; cat "$tmp/err5"; }
mkdir -p "$tmp/ro" && chmod 555 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then
  a6=$("$bin" ask "${common[@]}" --cache-dir "$tmp/ro/c" -v "$clip" "What is moving?" 2>"$tmp/err6"); rc=$?
  [ $rc = 0 ] && [ "$a6" = "$a1" ] && grep -q "context cache not written" "$tmp/err6" && ok "unwritable cache dir: warned, answered" || bad "unwritable cache dir"
fi
ls "$tmp/cache" | grep -v '\.dvctx$' | grep -q . && bad "temporary files left in the cache dir" || ok "no temporary files left in the cache dir"

# ---- chat through a pipe ----
printf 'What is moving?\n/info\nWhat colour is it?\n/save %s\n/save %s\n/reset\nWhat is moving?\n/bogus\n/quit\nnot read\n' \
  "$tmp/chat.json" "$tmp/nodir/chat.json" | "$bin" chat "${common[@]}" -v "$clip" >"$tmp/chat.out" 2>"$tmp/chat.err"; rc=$?
n_ans=$(wc -l <"$tmp/chat.out")
first=$(sed -n 1p "$tmp/chat.out"); again=$(sed -n 3p "$tmp/chat.out")
if [ $rc = 0 ] && [ "$n_ans" = 3 ] && [ "$first" = "$a1" ] && [ "$again" = "$a1" ]; then ok "chat: 3 answers, the first as ask's, the same again after /reset"
else bad "chat: exit $rc, $n_ans answer lines"; cat "$tmp/chat.out" "$tmp/chat.err"; fi
grep -q "tokens left" "$tmp/chat.err" && ok "chat /info" || bad "chat /info"
grep -q "unknown command '/bogus'" "$tmp/chat.err" && ok "chat: unknown command reported" || bad "chat /bogus"
grep -q "nodir/chat.json" "$tmp/chat.err" && ok "chat: /save to a missing folder reported, session went on" || bad "chat /save error"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert len(j['turns'])==2 and j['turns'][0]['answer']==sys.argv[2]" \
  "$tmp/chat.json" "$a1" && ok "chat /save: the transcript as JSON" || bad "chat /save JSON"
ls -A "$tmp" | grep -q 'chat.json.tmp' && bad "chat /save left a temporary file" || ok "chat /save: no temporary file"

# ---- summarize ----
cp "$clip" "$tmp/a.mp4"; cp "$clip" "$tmp/b.mp4"
out="$tmp/sum.jsonl"
"$bin" summarize "${common[@]}" -o "$out" "$tmp/a.mp4" "$tmp/junk.mp4" "$tmp/b.mp4" >/dev/null 2>"$tmp/serr"; rc=$?
python3 - "$out" <<'EOF' && [ $rc = 1 ] && ok "summarize: 2 ok + 1 error line, exit 1" || { bad "summarize: exit $rc"; cat "$out" "$tmp/serr"; }
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["status"] for r in rows] == ["ok", "error", "ok"], rows
assert "junk.mp4" in rows[1]["error"] and rows[0]["summary"] == rows[2]["summary"]
assert rows[0]["frames"] == 4 and rows[2]["cache"] == "hit"  # b.mp4 is a.mp4's content: the cache is by content
EOF
"$bin" summarize "${common[@]}" -o "$out" "$tmp/a.mp4" "$tmp/junk.mp4" "$tmp/b.mp4" >/dev/null 2>"$tmp/serr"
[ "$(wc -l <"$out")" = 3 ] && grep -q "3 already done" "$tmp/serr" && ok "summarize: rerun skips every video" || { bad "summarize rerun"; cat "$tmp/serr"; }
# an interrupted run: the last line torn in half
head -n 2 "$out" >"$tmp/torn"; tail -n 1 "$out" | head -c 25 >>"$tmp/torn"; cp "$tmp/torn" "$out"
"$bin" summarize "${common[@]}" -o "$out" "$tmp/a.mp4" "$tmp/junk.mp4" "$tmp/b.mp4" >/dev/null 2>"$tmp/serr"
python3 -c "
import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]
assert [r['video'].split('/')[-1] for r in rows]==['a.mp4','junk.mp4','b.mp4'] and rows[2]['status']=='ok', rows" "$out" \
  && grep -q "incomplete" "$tmp/serr" && ok "summarize: torn last line dropped, that video redone" || { bad "summarize resume"; cat "$out" "$tmp/serr"; }
"$bin" summarize "${common[@]}" -o "$out" --retry-errors "$tmp/a.mp4" "$tmp/junk.mp4" "$tmp/b.mp4" >/dev/null 2>"$tmp/serr"
[ "$(wc -l <"$out")" = 4 ] && ok "summarize --retry-errors redoes the failed video only" || bad "summarize --retry-errors"
printf '# videos\n%s\n\n%s\n%s\n' "$tmp/a.mp4" "$tmp/b.mp4" "$tmp/junk.mp4" >"$tmp/list.txt"
"$bin" summarize "${common[@]}" -o "$tmp/s0.jsonl" --shard 0/2 --list "$tmp/list.txt" >/dev/null 2>&1
"$bin" summarize "${common[@]}" -o "$tmp/s1.jsonl" --shard 1/2 --list "$tmp/list.txt" >/dev/null 2>&1
python3 -c "
import json,sys; a=[json.loads(l)['video'].split('/')[-1] for l in open(sys.argv[1])]; b=[json.loads(l)['video'].split('/')[-1] for l in open(sys.argv[2])]
assert a==['a.mp4','junk.mp4'] and b==['b.mp4'], (a,b)" "$tmp/s0.jsonl" "$tmp/s1.jsonl" && ok "summarize --shard 0/2, 1/2 with --list" || bad "summarize --shard"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
