# lib.sh: what the CLI test scripts share, sourced after they set `bin` and `tmp`: the pass/fail
# counters, `check LABEL EXIT-CODE`, and `one_error LABEL PATTERN -- ARGS...` (duovid ARGS exits 1 with
# exactly one stderr line, matching the extended regex PATTERN; on failure that stderr is shown);
# for the VLM fixtures `fixture_meta REF KEY` (a safetensors file's metadata value) and
# `chat_and_summarize ANSWER QUESTION CLIP ARGS...` (chat: an answer, /reset, the same, a second turn;
# summarize: one ok line); for the Qwen-VL fixtures `qwenvl_fixture NAME` (model/ref/clip, skip when
# missing, tmp, the greedy f32 `common` flags and the question `q`) and `ask_matches_hf PLAN ARGS...`
# (ask answers with HF's 16 greedy tokens, prints a plan matching PLAN, and a second ask hits the
# context cache with the same answer; sets a1, leaves ask's stderr in $tmp/err1).
# Not a test itself (ctest registers tests/cli/*.sh except this file).
pass=0 fail=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "ok   $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi; }
one_error() {
  local label=$1 pat=$2; shift 3
  "$bin" "$@" >/dev/null 2>"$tmp/e"; local rc=$?
  [ $rc = 1 ] && [ "$(wc -l <"$tmp/e")" = 1 ] && grep -Eq -- "$pat" "$tmp/e"; local ok=$?
  check "$label" $ok
  [ $ok = 0 ] || sed 's/^/     | /' "$tmp/e"
}
fixture_meta() { # safetensors: 8-byte header length, JSON header
  python3 -c '
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
sys.stdout.write(json.loads(f.read(n))["__metadata__"][sys.argv[2]])' "$1" "$2"
}
chat_and_summarize() {
  local a1=$1 q=$2 clip=$3 rc; shift 3
  printf '%s\n/reset\n%s\nWhat colour is it?\n/quit\n' "$q" "$q" |
    "$bin" chat "$@" -v "$clip" >"$tmp/chat.out" 2>"$tmp/chat.err"; rc=$?
  [ $rc = 0 ] && [ "$(wc -l <"$tmp/chat.out")" = 3 ] && [ "$(sed -n 1p "$tmp/chat.out")" = "$a1" ] &&
    [ "$(sed -n 2p "$tmp/chat.out")" = "$a1" ] && grep -q "conversation cleared" "$tmp/chat.err"
  check "chat: an answer, /reset, the same answer, a second turn" $?
  [ $rc = 0 ] || sed 's/^/     | /' "$tmp/chat.err"
  "$bin" summarize "$@" -o "$tmp/s.jsonl" "$clip" >/dev/null 2>"$tmp/serr"; rc=$?
  [ $rc = 0 ] && python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).read()); assert r['status']=='ok' and r['summary']" "$tmp/s.jsonl"
  check "summarize: one ok line" $?
}
qwenvl_fixture() {
  model=tests/fixtures/qwenvl/$1 ref=tests/fixtures/qwenvl/$1.ref.safetensors clip=tests/fixtures/vlm/clip.mp4
  [ -f "$model/model.safetensors" ] && [ -f "$clip" ] && [ -f "$ref" ] || { echo "SKIPPED: $model or $clip missing"; exit 77; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  export DUOVID_LOG=warn
  common=(-m "$model" -n 16 --temp 0 --kv-type f32 --cache-dir "$tmp/cache")
  q="What is moving in this video?"
}
ask_matches_hf() {
  local plan=$1 want rc a2; shift
  want=$(fixture_meta "$ref" answer_turn1) # HF's greedy answer, from the fixture's metadata
  want=${want%%<|im_end|>*} # the CLI stops at the end-of-turn token HF generated through
  a1=$(DUOVID_LOG=info "$bin" ask "${common[@]}" "$@" -v "$clip" "$q" 2>"$tmp/err1"); rc=$?
  [ $rc = 0 ] && [ "$a1" = "$want" ]; check "ask: HF's greedy answer" $?
  [ "$a1" = "$want" ] || { printf '     | got  %q\n     | want %q\n' "$a1" "$want"; sed 's/^/     | /' "$tmp/err1"; }
  grep -q -- "$plan" "$tmp/err1"; check "ask: the plan prints frames, grid and tokens per frame" $?
  a2=$(DUOVID_LOG=info "$bin" ask "${common[@]}" -v "$clip" "$q" 2>"$tmp/err2")
  [ "$a2" = "$a1" ] && grep -q "context cache hit" "$tmp/err2"; check "ask again: context cache hit, same answer" $?
}
