#!/usr/bin/env bash
# eval_duo_smollm2.sh: the DuoAttention accuracy figures of docs/PERF.md on SmolLM2-135M-Instruct:
# identify (METHOD, default deviation), 5 random patterns, NIAH for full attention / the identified
# pattern at sparsity 0.5 and 0.75 / the random patterns, and perplexity at 2K with and without
# DuoAttention. Every figure is one JSON line in OUT/*.json; finished figures are kept on a rerun.
#   scripts/eval_duo_smollm2.sh [OUT_DIR] [NIAH_CTX] [NIAH_DEPTHS] [SAMPLES]
# Defaults: OUT_DIR=eval-out, NIAH_CTX=1k,2k,4k, NIAH_DEPTHS=0,0.25,0.5,0.75,1, SAMPLES=1.
# Environment: PART=niah-full|niah-pat|niah-rand|ppl|all (one part; parts can run side by side),
# METHOD (identify --method), PAT_DEPTHS (depths of the pattern runs, default NIAH_DEPTHS),
# BASE_DEPTHS / BASE_CTX (the random baselines' cells, default 0.5 / NIAH_CTX: at depth 0.5 the
# needle is outside the sink and the recent window), SPARSITIES (default "0.5 0.75"), WINDOWS (2048-
# token perplexity windows, default 1), THREADS (default 2), SEED (NIAH data seed, default 1: each
# seed and sample its own passkey and haystack offset; files OUT/niah-NAME-LEN-sSEED.json, so runs
# with other seeds add samples), PATTERN (a pattern folder to evaluate instead of identifying one,
# e.g. assets/patterns/SmolLM2-135M-Instruct). Parts and seeds can run side by side on one core:
# `taskset -c 1 nice -n 10 env PART=... scripts/eval_duo_smollm2.sh ...`. Needs build/duovid (or $DUOVID),
# scripts/fetch_smollm2.sh's model and Debian's jargon-text (the public-domain Jargon File, for
# perplexity). On an idle 2-core machine a 1K-token NIAH trial takes a few seconds; under load minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-eval-out} ctx=${2:-1k,2k,4k} depths=${3:-0,0.25,0.5,0.75,1} samples=${4:-1} windows=${WINDOWS:-1}
method=${METHOD:-deviation} pdepths=${PAT_DEPTHS:-$depths} bd=${BASE_DEPTHS:-0.5} bctx=${BASE_CTX:-$ctx}
sps=${SPARSITIES:-0.5 0.75}
bin=${DUOVID:-build/duovid}
model=${XDG_CACHE_HOME:-$HOME/.cache}/duovid/models/SmolLM2-135M-Instruct
hay=assets/text/jargon-essays.txt
pat=${PATTERN:-$out/pat-$method} seed=${SEED:-1}
mkdir -p "$out"
[ -f "$out/jargon.txt" ] || zcat /usr/share/doc/jargon-text/jargon.txt.gz >"$out/jargon.txt"
t=(-t "${THREADS:-2}")
niah() { # NAME CTX_LIST DEPTHS [duo flags...]: one JSON per length and seed, OUT/niah-NAME-LEN-sSEED.json
  local name=$1 cs=$2 d=$3 c f; shift 3
  for c in ${cs//,/ }; do
    f=$out/niah-$name-$c-s$seed
    [ -s "$f.json" ] || "$bin" eval niah -m "$model" --haystack $hay --ctx "$c" --depths "$d" --samples "$samples" \
      --seed "$seed" "${t[@]}" --json --png "$f.png" -v "$@" >"$f.json" 2>"$f.log" || { rm -f "$f.json"; return 1; }
  done
}
ppl() { # NAME [duo flags...]
  local name=$1; shift
  [ -s "$out/ppl-$name.json" ] || "$bin" perplexity -m "$model" -f "$out/jargon.txt" --ctx 2048 --windows $windows "${t[@]}" \
    --json "$@" >"$out/ppl-$name.json" 2>"$out/ppl-$name.log" || { rm -f "$out/ppl-$name.json"; return 1; }
}
[ -n "${PATTERN:-}" ] || [ -f "$pat/full_attention_heads.tsv" ] || { /usr/bin/time -f "identify: %e s wall, %U s user, %M KiB peak RSS" \
  "$bin" identify -m "$model" -o "$pat" --method "$method" "${t[@]}" >"$out/identify-$method.txt"; } 2>"$out/identify-$method.log"
for s in 1 2 3 4 5; do
  [ -f "$out/pat-rand$s/config.json" ] ||
    "$bin" identify -m "$model" -o "$out/pat-rand$s" --method random --seed $s --filler assets/text/filler.txt >/dev/null
done
part=${PART:-all}
case $part in all | niah-full) niah full "$ctx" "$depths" ;; esac
case $part in all | niah-pat) for sp in $sps; do niah $method-$sp "$ctx" "$pdepths" --duo "$pat" --duo-sparsity $sp; done ;; esac
case $part in all | niah-rand)
  for sp in $sps; do for s in 1 2 3 4 5; do niah rand$s-$sp "$bctx" "$bd" --duo "$out/pat-rand$s" --duo-sparsity $sp; done; done ;;
esac
case $part in all | ppl)
  ppl full
  for sp in $sps; do ppl $method-$sp --duo "$pat" --duo-sparsity $sp; done ;;
esac
grep -h . "$out"/*.json
