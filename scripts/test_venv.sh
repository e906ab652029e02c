#!/usr/bin/env bash
# test_venv.sh: the Python packages the `duovid serve` tests drive the server with (the official
# `openai` client, websocket-client for the page test's Chromium, schemathesis for the OpenAPI test),
# pinned to the versions the tests were written against, in a venv outside the repository:
#   ${XDG_CACHE_HOME:-~/.cache}/duovid/venv-test
#   scripts/test_venv.sh          # prints the venv's python; idempotent (a second run does nothing)
# Python is never part of the build. When PyPI cannot be reached it says why, writes the reason to
# venv-test.unavailable and exits 0: the serve tests then say skipped for the parts that need a package.
set -uo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
  "") ;;
  *) echo "test_venv.sh: unknown option '$1' (see --help)" >&2; exit 1 ;;
esac

cache=${XDG_CACHE_HOME:-$HOME/.cache}/duovid
venv=$cache/venv-test
why=$cache/venv-test.unavailable
reqs="openai==3.57.0 websocket-client==1.9.2 schemathesis==4.32.5"
stamp=$venv/duovid-requirements.txt

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$reqs" ]; then
  echo "$venv/bin/python"
  exit 0
fi
unavailable() {
  mkdir -p "$cache" && echo "$*" >"$why"
  echo "test_venv: serve test packages not available: $* (those test parts will skip)" >&2
  exit 0
}
mkdir -p "$cache" || unavailable "cannot create $cache"
echo "test_venv: installing $reqs into $venv" >&2
python3 -m venv "$venv" >&2 || unavailable "python3 -m venv failed (install python3-venv)"
# shellcheck disable=SC2086 # $reqs is a list of requirement words
"$venv/bin/python" -m pip install -q --timeout 30 --retries 1 $reqs >&2 ||
  unavailable "pip could not install $reqs (PyPI unreachable?)"
echo "$reqs" >"$stamp"
rm -f "$why"
echo "$venv/bin/python"
