#!/bin/sh
# run.sh: starts tests/serve/serve_test.py (ctest's serve_* tests) with the first Python that has the
# serve tests' packages: $DUOVID_TEST_PYTHON, an active virtualenv's, the project's test venv
# (scripts/test_venv.sh), else python3 (then the parts that need a missing package say skipped).
#   run.sh PART DUOVID_BIN WORKDIR
here=$(dirname "$0")
need='import openai, websocket, schemathesis'
venv=${XDG_CACHE_HOME:-$HOME/.cache}/duovid/venv-test
py=
for c in "${DUOVID_TEST_PYTHON:-}" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" "$venv/bin/python"; do
  if [ -n "$c" ] && [ -x "$c" ] && "$c" -c "$need" 2>/dev/null; then py=$c; break; fi
done
[ -n "$py" ] || py=${DUOVID_TEST_PYTHON:-python3}
exec "$py" "$here/serve_test.py" "$@"
