#!/usr/bin/env bash
# llm_bad_input.sh: broken model folders give one clear error line naming the file, exit 1, no crash.
#   bash tests/cli/llm_bad_input.sh build/duovid
set -u
bin=${1:?usage: llm_bad_input.sh path/to/duovid}
src=assets/models/tiny-llama
[ -f "$src/model.safetensors" ] || { echo "SKIPPED: $src missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

fresh() { rm -rf "$tmp/m"; cp -r "$src" "$tmp/m"; }
# expect LABEL PATTERN -- ARGS...: exit 1, exactly one stderr line, it matches PATTERN.
expect() {
  local label=$1 pattern=$2; shift 3
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" = 1 ] && [ "$lines" = 1 ] && grep -Eq -- "$pattern" "$tmp/err"; then
    pass=$((pass + 1)); echo "ok   $label: $(cat "$tmp/err")"
  else
    fail=$((fail + 1)); echo "FAIL $label: exit $rc, $lines stderr lines:"; cat "$tmp/err"
  fi
}
gen=(generate -m "$tmp/m" -p hello -n 2 --temp 0)
st="$tmp/m/model.safetensors"
# Edit the JSON header in place keeping its length (perl is part of every Debian base system).
edit_header() { perl -0777 -pi -e "$1" "$st"; }

fresh; rm "$tmp/m/config.json"
expect "missing config.json" "config.json.*(not found|No such)" -- "${gen[@]}"
fresh; head -c 40 "$src/config.json" >"$tmp/m/config.json"
expect "malformed config.json" "config.json: malformed JSON" -- "${gen[@]}"
fresh; perl -pi -e 's/"hidden_size": *64/"hidden_size": "x"/' "$tmp/m/config.json"
expect "config field of the wrong type" "config.json.*hidden_size" -- "${gen[@]}"
fresh; perl -pi -e 's/"intermediate_size": *176/"intermediate_size": 160/' "$tmp/m/config.json"
expect "tensor shape vs config" "model.safetensors.*gate_proj.*shape" -- "${gen[@]}"
fresh; rm "$st"
expect "missing weights" "no model.safetensors" -- "${gen[@]}"
fresh; head -c 3000 "$src/model.safetensors" >"$st"
expect "truncated safetensors" "model.safetensors" -- "${gen[@]}"
fresh; printf '\x00\x00\x00\x00\x01\x00\x00\x00{}' >"$st"
expect "header length past the end" "model.safetensors.*header" -- "${gen[@]}"
fresh; : >"$st"
expect "empty safetensors" "model.safetensors" -- "${gen[@]}"
fresh; edit_header 's/"model\.norm\.weight"/"model.norX.weight"/'
expect "missing tensor" "m(/model.safetensors)?: missing tensor .model\.norm\.weight" -- "${gen[@]}"
fresh; edit_header 's/"shape":\[64\]/"shape":[65]/'
expect "byte length != shape" "model.safetensors.*(bytes|size|length)" -- "${gen[@]}"
fresh; rm "$tmp/m/tokenizer.model"
expect "missing tokenizer" "tokenizer.model" -- "${gen[@]}"
expect "missing model folder" "nonexistent: no such model folder" -- generate -m "$tmp/nonexistent" -p hi
expect "bad flag value" "--n-predict" -- generate -m "$src" -p hi -n -5
expect "unknown flag" "unknown option" -- generate -m "$src" -p hi --bogus
expect "info on a missing folder" "nonexistent: no such model folder" -- info "$tmp/nonexistent"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
