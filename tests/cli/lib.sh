# lib.sh: what the CLI test scripts share, sourced after they set `bin` and `tmp`: the pass/fail
# counters, `check LABEL EXIT-CODE`, and `one_error LABEL PATTERN -- ARGS...` (duovid ARGS exits 1 with
# exactly one stderr line, matching the extended regex PATTERN; on failure that stderr is shown).
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
