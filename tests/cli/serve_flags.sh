#!/usr/bin/env bash
# serve_flags.sh: `duovid serve` from the command line: --help; bad flags (port, queue, limits, a
# media folder that is not there, a host that is not an address, a port already taken, a stray
# argument, a missing model) each give one error line and exit 1 without leaving a temporary folder.
# The HTTP API itself is tested by tests/serve/serve_test.py.
#   bash tests/cli/serve_flags.sh build/duovid
set -u
bin=${1:?usage: serve_flags.sh path/to/duovid}
model=assets/models/tiny-llava-next-video
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DUOVID_LOG=warn TMPDIR=$tmp
. "$(dirname "$0")/lib.sh"

"$bin" serve --help >"$tmp/help"
check "--help exits 0" $?
check "--help lists the server flags" "$(grep -c -- '--media-path\|--api-key\|--queue\|--max-body\|--conversations' "$tmp/help" | awk '{print ($1 >= 5) ? 0 : 1}')"
one_error "no model" "-m MODEL_DIR is required" -- serve
one_error "model folder missing" "no such model folder" -- serve -m "$tmp/nope"
one_error "port out of range" "--port" -- serve -m "$model" --port 70000
one_error "queue zero" "--queue" -- serve -m "$model" --queue 0
one_error "max-body tiny" "--max-body" -- serve -m "$model" --max-body 10
one_error "conversations not a number" "--conversations" -- serve -m "$model" --conversations many
one_error "media path missing" "--media-path: .*not a folder" -- serve -m "$model" --media-path "$tmp/none"
one_error "stray argument" "unexpected argument 'extra'" -- serve -m "$model" extra
one_error "empty api key" "--api-key is empty" -- serve -m "$model" --api-key ""
one_error "host not an address" "--host: 'localhost-ish' is not an IPv4 or IPv6 address" -- serve -m "$model" --host localhost-ish --port 0
# a port in use: bind a listener first
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$tmp/port" &
holder=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
one_error "port in use" "cannot listen on 127.0.0.1 port $(cat "$tmp/port")" -- serve -m "$model" --port "$(cat "$tmp/port")"
kill $holder 2>/dev/null
check "no temporary upload folder left" "$(ls -d "$tmp"/duovid-serve-* 2>/dev/null | wc -l | awk '{print ($1 == 0) ? 0 : 1}')"
echo "serve_flags: $pass passed, $fail failed"
[ "$fail" = 0 ]
