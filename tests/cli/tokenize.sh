#!/usr/bin/env bash
# tokenize.sh: `duovid tokenize` on the BPE fixtures: --ids equal to the Python tokenizers reference
# (tests/fixtures/bpe/ref_*.json), --pieces, stdin, the default listing, and bad input (a missing
# folder, a corrupt tokenizer.json, an unknown pre-tokenizer, conflicting flags): one error line
# naming the file, exit 1, nothing on stdout.
#   bash tests/cli/tokenize.sh build/duovid
set -u
bin=${1:?usage: tokenize.sh path/to/duovid}
fx=tests/fixtures/bpe
command -v python3 >/dev/null || { echo "SKIPPED: python3 (the standard library only) reads the reference"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# reference ids of corpus string K in style S, printed as duovid --ids prints them
ref() { python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(json.dumps(json.load(open(sys.argv[2]))["ids"][int(sys.argv[3])]))' \
          "$fx/corpus.json" "$fx/ref_$1.json" "$2"; }
text() { python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))[int(sys.argv[2])])' "$fx/corpus.json" "$1"; }
index() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).index(sys.argv[2]))' "$fx/corpus.json" "$1"; }

for style in qwen2 qwen35 gpt2 smollm2 llama3; do
  for s in "Hello, world!" "I'm here, you're there, they've gone, we'll see, he'd know." "hello<|im_end|>world" "👨‍👩‍👧‍👦 family"; do
    k=$(index "$s")
    got=$("$bin" tokenize -m "$fx/$style" --ids "$(text "$k")")
    [ "$got" = "$(ref "$style" "$k")" ] && ok "$style --ids string $k" || bad "$style --ids string $k: $got vs $(ref "$style" "$k")"
  done
done
# stdin: the exact bytes (tabs, trailing newline) as the reference has them
k=$(index "def f(x):
    return x * 2
")
got=$(text "$k" | "$bin" tokenize -m "$fx/qwen2" --ids -)
[ "$got" = "$(ref qwen2 "$k")" ] && ok "stdin" || bad "stdin: $got"
# --pieces: the vocabulary spellings, one per id
got=$("$bin" tokenize -m "$fx/gpt2" --pieces "Hello world")
[ "$got" = '["Hello","Ġworld"]' ] && ok "--pieces $got" || bad "--pieces: $got"
# the default listing: one line per token, special tokens by name, Llama-3's BOS first
"$bin" tokenize -m "$fx/llama3" "Hello<|eot_id|>" >"$tmp/out"
[ "$(wc -l <"$tmp/out")" = 3 ] && head -1 "$tmp/out" | grep -q "> '<|begin_of_text|>'" && grep -q "> '<|eot_id|>'" "$tmp/out" &&
  ok "listing" || { bad "listing:"; cat "$tmp/out"; }
k=$(index "Hello world")
want=$(ref llama3 "$k" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[1:]))')
got=$("$bin" tokenize -m "$fx/llama3" --no-bos --ids "Hello world")
[ "$got" = "$want" ] && ok "--no-bos $got" || bad "--no-bos: $got vs $want"
# SentencePiece folders list through the same command: BOS shown by its spelling
"$bin" tokenize -m assets/tokenizer "river" >"$tmp/out"
head -1 "$tmp/out" | grep -q "1 -> (piece '<s>')" && ok "sentencepiece listing" || { bad "sentencepiece listing"; cat "$tmp/out"; }

# expect LABEL PATTERN ARGS...: exit 1, one stderr line matching PATTERN, empty stdout
expect() {
  local label=$1 pattern=$2; shift 2
  "$bin" "$@" >"$tmp/o" 2>"$tmp/e" </dev/null
  local rc=$?
  if [ "$rc" = 1 ] && [ "$(wc -l <"$tmp/e")" = 1 ] && [ ! -s "$tmp/o" ] && grep -Eq -- "$pattern" "$tmp/e"; then
    ok "$label: $(cat "$tmp/e")"
  else
    bad "$label: exit $rc"; cat "$tmp/e"
  fi
}
expect "missing folder" "/nonexistent: no such model folder" tokenize -m /nonexistent --ids x
mkdir -p "$tmp/empty"
expect "no tokenizer files" "empty/tokenizer.model: not found, nor tokenizer.json" tokenize -m "$tmp/empty" x
cp -r "$fx/qwen2" "$tmp/corrupt"
head -c 5000 "$fx/qwen2/tokenizer.json" >"$tmp/corrupt/tokenizer.json"
expect "corrupt tokenizer.json" "corrupt/tokenizer.json: malformed JSON" tokenize -m "$tmp/corrupt" x
cp -r "$fx/qwen2" "$tmp/meta"
sed -i 's/"type":"Split"/"type":"Metaspace"/' "$tmp/meta/tokenizer.json"
expect "unknown pre-tokenizer" "meta/tokenizer.json: pre-tokenizer 'Metaspace' is not supported" tokenize -m "$tmp/meta" x
expect "--ids with --pieces" "exclude each other" tokenize -m "$fx/qwen2" --ids --pieces x
expect "no text" "expected one TEXT" tokenize -m "$fx/qwen2"
printf 'a\0b' >"$tmp/nul"
"$bin" tokenize -m "$fx/qwen2" - <"$tmp/nul" >"$tmp/o" 2>"$tmp/e"
[ $? = 1 ] && grep -q "NUL byte" "$tmp/e" && [ ! -s "$tmp/o" ] && ok "NUL on stdin: $(cat "$tmp/e")" || bad "NUL on stdin"
# the benchmark runs on the fixture
printf 'Hello world, 你好 🙂\n%.0s' $(seq 50) >"$tmp/text"
"$bin" bench tokenize -m "$fx/qwen2" -f "$tmp/text" --repeat 2 --json >"$tmp/o" 2>"$tmp/e" &&
  grep -q '"mb_per_s"' "$tmp/o" && ok "bench tokenize: $(cat "$tmp/o")" || { bad "bench tokenize"; cat "$tmp/e"; }
expect "bench without -f" "-f FILE are required" bench tokenize -m "$fx/qwen2"

echo "tokenize: $pass passed, $fail failed"
[ "$fail" = 0 ]
