# lib.sh: what the CLI test scripts share, sourced after they set `bin` and `tmp`: the pass/fail
# counters, `check LABEL EXIT-CODE`, and `one_error LABEL PATTERN -- ARGS...` (duovid ARGS exits 1 with
# exactly one stderr line, matching the extended regex PATTERN; on failure that stderr is shown);
# for the VLM fixtures `fixture_meta REF KEY` (a safetensors file's metadata value) and
# `chat_and_summarize ANSWER QUESTION CLIP ARGS...` (chat: an answer, /reset, the same, a second turn;
# summarize: one ok line).
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
