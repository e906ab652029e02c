#!/usr/bin/env bash
# pull.sh: `duovid pull` against tests/fixtures/hub/serve.py, a fake Hub on 127.0.0.1 (no other traffic):
# a full pull is byte-identical and skips .bin/.onnx/README; a sharded repo gets exactly its index's
# shards; a dropped connection resumes in-process and across runs, fetching only the missing bytes; a
# server ignoring Range restarts cleanly; a bad .part fails the sha256 check and is removed; a rerun
# downloads nothing; Ctrl-C leaves only a .part; 500 is retried; 401/404/bin-only/unwritable -o/bad
# flags give one error line, exit 1 and no partial final file; --help, --dry-run, --json, --include.
#   bash tests/cli/pull.sh build/duovid
set -u
bin=${1:?usage: pull.sh path/to/duovid}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
command -v python3 >/dev/null || { echo "SKIPPED: python3 missing"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
serve="$here/../fixtures/hub/serve.py"
model="$here/../../assets/models/tiny-llama"
tmp=$(mktemp -d)
srv_pid=""
stop_server() { if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""; fi; }
trap 'stop_server; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; sed 's/^/     | /' "$tmp/err" 2>/dev/null | tail -5; fi; }
unset HF_TOKEN HF_ENDPOINT
export DUOVID_LOG=info

# start_server [serve.py switches]: a fresh server and log; sets $ep. Bounded wait for its port.
start_server() {
  stop_server
  : >"$tmp/log"
  rm -f "$tmp/port"
  python3 "$serve" --model-dir "$model" --log "$tmp/log" "$@" >"$tmp/port" 2>"$tmp/srv_err" &
  srv_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  [ -s "$tmp/port" ] || { echo "FAIL: the fixture server did not start"; cat "$tmp/srv_err"; exit 1; }
  ep="http://127.0.0.1:$(head -1 "$tmp/port")"
}
# pull ARGS...: runs duovid pull against the current server (60 s at most); exit code in $rc.
pull() { timeout 60 "$bin" pull --endpoint "$ep" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }
# same_as_model DIR: DIR holds exactly the model's files, byte for byte, and nothing else.
same_as_model() {
  [ "$(ls -A "$1" | sort | tr '\n' ' ')" = "$(ls -A "$model" | sort | tr '\n' ' ')" ] || return 1
  for f in "$model"/*; do cmp -s "$f" "$1/$(basename "$f")" || return 1; done
}
# log_q PYTHON-EXPR: evaluates EXPR over `reqs` (the logged requests) and prints the result.
log_q() { python3 -c "import json,sys; reqs=[json.loads(l) for l in open(sys.argv[1])]; print($1)" "$tmp/log"; }
# one_error LABEL PATTERN DIR: exit 1, one error line "duovid: error: ..." matching PATTERN and no
# other line but info ones (no warnings, no stack), no final file in DIR (at most .part files).
one_error() {
  local n
  n=$( (grep -Ev '^duovid: ' "$tmp/err"; grep -E '^duovid: (error|warning):' "$tmp/err") | wc -l)
  if [ "$rc" = 1 ] && [ "$n" = 1 ] && grep -Eq -- "^duovid: error: .*$2" "$tmp/err" &&
     [ -z "$(find "$3" -type f ! -name '*.part' 2>/dev/null)" ]; then
    ok "$1: $(grep '^duovid: error:' "$tmp/err")"
  else
    bad "$1: exit $rc, $n stderr lines, files: $(find "$3" -type f 2>/dev/null | tr '\n' ' ')"
    cat "$tmp/err"
  fi
}
size=$(stat -c %s "$model/model.safetensors")

# ---- help and flags (no server needed) ----
help=$("$bin" pull --help) && rc=0 || rc=$?
missing=""
for f in --output --revision --endpoint --token --include --dry-run --retries --json --help HF_TOKEN HF_ENDPOINT; do
  grep -q -- "$f" <<<"$help" || missing="$missing $f"
done
check "pull --help lists every flag" '[ "$rc" = 0 ] && [ -z "$missing" ]'
"$bin" --help | grep -q "pull" && ok "duovid --help lists pull" || bad "duovid --help lists pull"
ep=http://127.0.0.1:9  # nothing listens; flag errors come first
pull; one_error "no REPO_ID" "REPO_ID is required" "$tmp/none"
pull test/a test/b; one_error "two repos" "one REPO_ID only" "$tmp/none"
pull 'bad repo!'; one_error "bad repo id" "is not a model repository id" "$tmp/none"
pull ../x; one_error "repo id with .." "is not a model repository id" "$tmp/none"
pull test/tiny-llama --bogus; one_error "unknown flag" "unknown option '--bogus'" "$tmp/none"
pull test/tiny-llama -o; one_error "flag without value" "needs a value" "$tmp/none"
pull test/tiny-llama --retries x; one_error "bad --retries" "--retries: 'x' is not an integer" "$tmp/none"
pull test/tiny-llama --retries 0 -o "$tmp/none"; one_error "nothing listening" "test/tiny-llama: listing: " "$tmp/none"
timeout 20 "$bin" pull test/tiny-llama --endpoint ftp://127.0.0.1/ >"$tmp/out" 2>"$tmp/err"; rc=$?
one_error "non-http endpoint" "--endpoint: 'ftp://127.0.0.1/' is not an http" "$tmp/none"
[ ! -e "$tmp/none" ] && ok "flag errors create no folder" || bad "flag errors created $tmp/none"

# ---- a full pull through a redirect hop, then a rerun ----
start_server --redirect
pull test/tiny-llama -o "$tmp/m"
check "full pull: exit 0, byte-identical files, no .bin/.onnx/README/.part" '[ "$rc" = 0 ] && same_as_model "$tmp/m"'
check "full pull: stdout empty" '[ ! -s "$tmp/out" ]'
check "full pull: says it skipped the .bin" 'grep -q "pytorch_model.bin" "$tmp/err" && grep -q "only safetensors" "$tmp/err"'
check "full pull: summary line" 'grep -q "pulled test/tiny-llama into .*: 5 files" "$tmp/err"'
check "full pull: went through the redirect" '[ "$(log_q "sum(r[\"path\"].startswith(\"/cdn/\") for r in reqs)")" = 5 ]'
check "full pull: never asked for the .bin" '[ "$(log_q "sum(\"pytorch_model\" in r[\"path\"] or \"onnx\" in r[\"path\"] for r in reqs)")" = 0 ]'
"$bin" info "$tmp/m" >/dev/null 2>&1 && ok "duovid info reads the pulled folder" || bad "duovid info on the pulled folder"
: >"$tmp/log"
pull test/tiny-llama -o "$tmp/m" --json
check "rerun: downloads nothing" '[ "$rc" = 0 ] && [ "$(log_q "sum(\"/resolve/\" in r[\"path\"] for r in reqs)")" = 0 ] && same_as_model "$tmp/m"'
check "rerun --json: one object, 5 files present, 0 bytes downloaded" \
  '[ "$(python3 -c "import json,sys; o=json.load(open(sys.argv[1])); print(len(o[\"files\"]), {f[\"status\"] for f in o[\"files\"]}, o[\"bytes_downloaded\"], o[\"bytes\"] > 0, o[\"seconds\"] >= 0)" "$tmp/out")" = "5 {'"'present'"'} 0 True True" ]'
printf 'X' | dd of="$tmp/m/model.safetensors" bs=1 seek=100 conv=notrunc status=none
: >"$tmp/log"
pull test/tiny-llama -o "$tmp/m"
check "a changed complete file (same size, other sha256) is fetched again" \
  '[ "$rc" = 0 ] && same_as_model "$tmp/m" && grep -q "sha256 differs" "$tmp/err" && [ "$(log_q "sum(\"model.safetensors\" in r[\"path\"] for r in reqs)")" = 2 ]'

# ---- --json, --dry-run, --include, -o default ----
pull test/tiny-llama -o "$tmp/d" --dry-run
check "--dry-run: lists files with sizes, downloads nothing" \
  '[ "$rc" = 0 ] && grep -q "model.safetensors" "$tmp/out" && grep -q "311.2 KiB" "$tmp/out" && ! grep -q "pytorch_model" "$tmp/out" && [ ! -e "$tmp/d" ]'
(cd "$tmp" && timeout 60 "$bin" pull --endpoint "$ep" test/tiny-llama --include 'README*' --include 'onnx/*' --json >"$tmp/out" 2>"$tmp/err"); rc=$?
check "-o defaults to ./NAME; --include fetches extra files (subfolders too)" \
  '[ "$rc" = 0 ] && cmp -s "$tmp/tiny-llama/model.safetensors" "$model/model.safetensors" && [ -s "$tmp/tiny-llama/README.md" ] && [ -s "$tmp/tiny-llama/onnx/model.onnx" ] && [ ! -e "$tmp/tiny-llama/pytorch_model.bin" ]'
check "--json: 7 files downloaded" '[ "$(python3 -c "import json,sys; o=json.load(open(sys.argv[1])); print(len(o[\"files\"]), o[\"bytes_downloaded\"] == o[\"bytes\"])" "$tmp/out")" = "7 True" ]'

# ---- sharded: exactly the shards the index names ----
pull test/sharded -o "$tmp/s"
check "sharded: index + its 2 shards, not consolidated.safetensors" \
  '[ "$rc" = 0 ] && [ "$(ls "$tmp/s" | tr "\n" " ")" = "config.json model-00001-of-00002.safetensors model-00002-of-00002.safetensors model.safetensors.index.json tokenizer.model " ]'

# ---- resume ----
start_server --drop-after 100000 --drop-times 1
pull test/tiny-llama -o "$tmp/r1"
check "dropped connection: retried in-process with Range, only the rest fetched" \
  '[ "$rc" = 0 ] && same_as_model "$tmp/r1" && grep -q "retrying" "$tmp/err" && [ "$(log_q "[(r[\"range\"], r[\"sent\"]) for r in reqs if r[\"path\"].endswith(\"model.safetensors\")]")" = "[(None, 100000), ('"'bytes=100000-'"', $((size - 100000)))]" ]'

start_server --drop-after 120000 --drop-times 99
pull test/tiny-llama -o "$tmp/r2" --retries 0
check "dropped connection, no retries: exit 1, a .part of 120000 bytes, no final file" \
  '[ "$rc" = 1 ] && [ "$(stat -c %s "$tmp/r2/model.safetensors.part" 2>/dev/null)" = 120000 ] && [ ! -e "$tmp/r2/model.safetensors" ] && [ -s "$tmp/r2/config.json" ]'
start_server
pull test/tiny-llama -o "$tmp/r2"
check "rerun resumes the .part: one request from byte 120000, identical result" \
  '[ "$rc" = 0 ] && same_as_model "$tmp/r2" && grep -q "resuming after" "$tmp/err" && [ "$(log_q "[(r[\"range\"], r[\"sent\"]) for r in reqs if \"/resolve/\" in r[\"path\"]]")" = "[('"'bytes=120000-'"', $((size - 120000)))]" ]'

mkdir -p "$tmp/r3" && head -c 50000 "$model/model.safetensors" >"$tmp/r3/model.safetensors.part"
start_server --ignore-range
pull test/tiny-llama -o "$tmp/r3"
check "server ignores Range (200): restarts the file, result identical" \
  '[ "$rc" = 0 ] && same_as_model "$tmp/r3" && grep -q "ignored the resume request" "$tmp/err"'

mkdir -p "$tmp/r4" && head -c 50000 /dev/zero >"$tmp/r4/model.safetensors.part"
start_server
pull test/tiny-llama -o "$tmp/r4"
one_error "a .part with wrong bytes: sha256 mismatch" "model.safetensors: sha256 [0-9a-f]{64} differs from the Hub's" "$tmp/r4/model.safetensors"
check "the bad .part was removed" '[ ! -e "$tmp/r4/model.safetensors.part" ]'
pull test/tiny-llama -o "$tmp/r4"
check "and a rerun then succeeds" '[ "$rc" = 0 ] && same_as_model "$tmp/r4"'

# ---- Ctrl-C ----
start_server --rate 50000
# (not under timeout(1): it would take the SIGINT itself; the waits below are bounded instead)
"$bin" pull --endpoint "$ep" test/tiny-llama -o "$tmp/c" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 400); do [ "$(stat -c %s "$tmp/c/model.safetensors.part" 2>/dev/null || echo 0)" -gt 0 ] && break; sleep 0.05; done
kill -INT "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -KILL "$pid" 2>/dev/null && echo "     (duovid ignored Ctrl-C for 10 s; killed)"
wait "$pid"; rc=$?
echo "     (after Ctrl-C: exit $rc, $(ls "$tmp/c" | tr '\n' ' '))"
check "Ctrl-C: exit 1, says how to resume, leaves the .part and no final weights" \
  '[ "$rc" = 1 ] && grep -q "interrupted; run the same command again to resume" "$tmp/err" && [ -s "$tmp/c/model.safetensors.part" ] && [ ! -e "$tmp/c/model.safetensors" ]'
start_server
pull test/tiny-llama -o "$tmp/c"
check "after Ctrl-C a rerun resumes and completes" '[ "$rc" = 0 ] && same_as_model "$tmp/c" && [ "$(log_q "sum(r[\"range\"] is not None for r in reqs)")" = 1 ]'

# ---- transient 500 ----
start_server --fail-500 2
pull test/tiny-llama -o "$tmp/f" --json
check "HTTP 500 twice: retried with backoff, then OK" \
  '[ "$rc" = 0 ] && same_as_model "$tmp/f" && [ "$(grep -c "HTTP 500; retrying" "$tmp/err")" = 2 ]'
start_server --fail-500 99
pull test/tiny-llama -o "$tmp/f2" --retries 1
check "HTTP 500 past the retries: one warning, then one error line, exit 1" \
  '[ "$rc" = 1 ] && [ "$(grep -c "retrying" "$tmp/err")" = 1 ] && [ "$(tail -1 "$tmp/err")" = "duovid: error: test/tiny-llama: listing: HTTP 500" ] && [ ! -e "$tmp/f2" ]'


# ---- auth, 404, bin-only, unwritable ----
start_server
pull test/gated -o "$tmp/g"
one_error "gated without a token (401)" "test/gated: access denied \\(HTTP 401\\).*set HF_TOKEN" "$tmp/g"
[ ! -e "$tmp/g" ] && ok "gated: no folder left" || bad "gated: left $(ls -A "$tmp/g")"
pull test/gated -o "$tmp/g" --token wrong
one_error "gated with a wrong token" "test/gated: access denied.*token given has no access" "$tmp/g"
HF_TOKEN=hf_fixture_secret pull test/gated -o "$tmp/g"
check "gated with HF_TOKEN: works; the token is never printed" \
  '[ "$rc" = 0 ] && same_as_model "$tmp/g" && ! grep -q hf_fixture_secret "$tmp/err" "$tmp/out"'
pull test/private -o "$tmp/p"
one_error "private without a token (401 RepoNotFound)" "test/private: no such model repository, or a private one.*HF_TOKEN" "$tmp/p"
pull test/private -o "$tmp/p" --token hf_fixture_secret
check "private with --token" '[ "$rc" = 0 ] && same_as_model "$tmp/p" && ! grep -q hf_fixture_secret "$tmp/err"'
pull test/nope -o "$tmp/n"
one_error "404 repository" "test/nope: no such model repository \\(or revision main\\)$" "$tmp/n"
pull test/tiny-llama -o "$tmp/n" --revision v9
one_error "404 revision" "test/tiny-llama: no such model repository \\(or revision v9\\)$" "$tmp/n"
[ ! -e "$tmp/n" ] && ok "404: no folder" || bad "404: left $tmp/n"
DUOVID_LOG=warn pull test/bin-only -o "$tmp/b"
one_error "only .bin weights" "test/bin-only: no safetensors weights \\(duovid reads only safetensors\\)$" "$tmp/b"
[ ! -e "$tmp/b" ] && ok "bin-only: no folder" || bad "bin-only: left $tmp/b"
: >"$tmp/afile"
pull test/tiny-llama -o "$tmp/afile/sub"
one_error "-o under a regular file" "afile: exists and is not a folder" "$tmp/afile.d"
mkdir -p "$tmp/ro"
chmod 555 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then
  pull test/tiny-llama -o "$tmp/ro/m"
  one_error "-o in a read-only folder" "ro/m: cannot create \\(Permission denied\\)" "$tmp/ro"
fi
chmod 755 "$tmp/ro"

echo "pull: $pass passed, $fail failed"
[ "$fail" = 0 ]
