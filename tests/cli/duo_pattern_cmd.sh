#!/usr/bin/env bash
# duo_pattern_cmd.sh: `duovid pattern` counts retrieval heads with the quantile rule, reports the KV
# fraction by the formula, writes a PNG heat map, and leaves nothing behind on bad input.
#   bash tests/cli/duo_pattern_cmd.sh build/duovid
set -u
bin=${1:?usage: duo_pattern_cmd.sh path/to/duovid}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # pass/fail counters, check, one_error
# 2 layers x 4 heads, distinct gates: sparsity 0.5 keeps the 4 largest (0.9 0.8 0.7 0.6)
printf '0.9\t0.1\t0.6\t0.2\n0.3\t0.8\t0.4\t0.7\n' >"$tmp/p.tsv"
"$bin" pattern "$tmp/p.tsv" --duo-sparsity 0.5 --sink 10 --recent 90 --context 1000 --png "$tmp/p.png" >"$tmp/o" 2>/dev/null
rc=$?
[ $rc = 0 ] && grep -q "retrieval heads: 4/8" "$tmp/o"; check "retrieval heads: K/N" $?
grep -q "layer   0:  2/4 retrieval  #.#." "$tmp/o" && grep -q "layer   1:  2/4 retrieval  .#.#" "$tmp/o"
check "per-layer counts and map" $?
# (4 * 1000 + 4 * 100) / (8 * 1000) = 0.55
grep -q "KV fraction at 1000 tokens (sink 10, recent 90): 0.5500" "$tmp/o"; check "KV fraction formula" $?
[ "$(head -c 8 "$tmp/p.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; check "PNG written" $?
"$bin" pattern "$tmp/p.tsv" --duo-threshold 0.75 | grep -q "retrieval heads: 2/8"; check "--duo-threshold" $?
"$bin" pattern "$tmp/missing.tsv" --png "$tmp/x.png" 2>"$tmp/e"; rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$tmp/e")" = 1 ] && [ ! -e "$tmp/x.png" ]; check "missing pattern: one error line, no PNG" $?
"$bin" pattern "$tmp/p.tsv" --png /proc/nope/x.png >/dev/null 2>"$tmp/e"; rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$tmp/e")" = 1 ]; check "unwritable PNG: one error line" $?
"$bin" pattern --help | grep -q "usage: duovid pattern"; check "--help" $?
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
