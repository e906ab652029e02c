#!/usr/bin/env bash
# moved_binary.sh: no build paths in the binary. A copy of `duovid` in another folder (with the data it
# ships in PREFIX/share/duovid, as an install lays it out) runs from another working directory and finds
# assets/text/filler.txt for `identify` next to itself; a lone copy without the data says what is
# missing and which flag replaces it, and works with that flag.
#   bash tests/cli/moved_binary.sh build/duovid
set -u
bin=${1:?usage: moved_binary.sh path/to/duovid}
src=$(pwd)
model=$src/assets/models/tiny-llama
[ -f "$model/model.safetensors" ] || { echo "SKIPPED: $model missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
id_args=(identify -m "$model" --length 64 --passkeys 2 --passkey-words 3 --sink 4 --recent 8)

mkdir -p "$tmp/opt/bin" "$tmp/opt/share/duovid/assets/text" "$tmp/work" "$tmp/lone"
cp "$bin" "$tmp/opt/bin/duovid"
cp "$src/assets/text/filler.txt" "$tmp/opt/share/duovid/assets/text/"
cp "$bin" "$tmp/lone/duovid"
cd "$tmp/work" || exit 1

"$tmp/opt/bin/duovid" "${id_args[@]}" -o "$tmp/work/p" >"$tmp/o" 2>"$tmp/e"; rc=$?
[ $rc = 0 ] && [ -f "$tmp/work/p/full_attention_heads.tsv" ]; check "moved binary finds its data (PREFIX/share/duovid)" $?
"$tmp/opt/bin/duovid" generate -m "$model" -p "Once upon a time" -n 4 --temp 0 >/dev/null 2>&1
check "moved binary generates" $?

"$tmp/lone/duovid" "${id_args[@]}" -o "$tmp/work/q" >/dev/null 2>"$tmp/e"; rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$tmp/e")" = 1 ] && grep -q "assets/text/filler.txt not found next to the executable" "$tmp/e" \
  && grep -q -- "--filler FILE" "$tmp/e" && [ ! -e "$tmp/work/q" ]
check "a lone binary says which data is missing and which flag gives it" $?
"$tmp/lone/duovid" "${id_args[@]}" -o "$tmp/work/q" --filler "$src/assets/text/filler.txt" >/dev/null 2>&1 \
  && [ -f "$tmp/work/q/full_attention_heads.tsv" ]
check "a lone binary works with --filler" $?
if strings "$bin" | grep -qF "$src/assets"; then check "no source path baked into the binary" 1; else check "no source path baked into the binary" 0; fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
