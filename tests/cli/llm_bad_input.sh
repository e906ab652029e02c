#!/usr/bin/env bash
# llm_bad_input.sh: broken model folders give one clear error line naming the file, exit 1, no crash.
#   bash tests/cli/llm_bad_input.sh build/duovid
set -u
bin=${1:?usage: llm_bad_input.sh path/to/duovid}
src=assets/models/tiny-llama
[ -f "$src/model.safetensors" ] || { echo "SKIPPED: $src missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error

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
# a sliding window the model really uses (Qwen2 with use_sliding_window, from layer 1 on): a context
# within it runs (and is the default), a longer one is refused; the fixture's own config (window set,
# use_sliding_window false) ignores it as HF does
rm -rf "$tmp/q"; cp -r tests/fixtures/llm/tiny-qwen2 "$tmp/q"
"$bin" generate -m "$tmp/q" -p hello -n 2 --temp 0 --ctx 64 >/dev/null 2>&1; check "unused sliding_window is ignored" $?
perl -pi -e 's/"use_sliding_window": *false/"use_sliding_window": true/' "$tmp/q/config.json"
expect "used sliding window, longer context" "config.json uses a sliding window of 32 tokens.*at most 32" -- \
  generate -m "$tmp/q" -p hello -n 2 --temp 0 --ctx 64
DUOVID_LOG=info "$bin" generate -m "$tmp/q" -p hello -n 2 --temp 0 >/dev/null 2>"$tmp/err"
[ $? = 0 ] && grep -q "context limited to the sliding window of 32 tokens" "$tmp/err"
check "used sliding window caps the default context" $?
perl -pi -e 's/"max_window_layers": *1/"max_window_layers": 2/' "$tmp/q/config.json"
"$bin" generate -m "$tmp/q" -p hello -n 2 --temp 0 --ctx 64 >/dev/null 2>&1
check "window past the last layer (max_window_layers = layers) is ignored" $?
expect "missing model folder" "nonexistent: no such model folder" -- generate -m "$tmp/nonexistent" -p hi
expect "bad flag value" "--n-predict" -- generate -m "$src" -p hi -n -5
expect "unknown flag" "unknown option" -- generate -m "$src" -p hi --bogus
expect "info on a missing folder" "nonexistent: no such model folder" -- info "$tmp/nonexistent"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
