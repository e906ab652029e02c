#!/usr/bin/env bash
# eval_duo_smollm2.sh: the DuoAttention accuracy figures of docs/PERF.md on SmolLM2-135M-Instruct:
# identify (attention mass), 5 random patterns, NIAH for full / identified / random patterns, and
# perplexity at 2K with and without DuoAttention. Every figure is one JSON line in OUT/*.json.
#   scripts/eval_duo_smollm2.sh [OUT_DIR] [NIAH_CTX] [NIAH_DEPTHS] [SAMPLES]
# PART=niah|ppl runs one half. Defaults: OUT_DIR=eval-out, NIAH_CTX=1k, NIAH_DEPTHS=0,0.5,1, SAMPLES=1, WINDOWS=1 (2048-token
# perplexity windows): small, as a loaded 2-core CPU answers a 1K-token prompt in 1-3 minutes. Needs build/duovid (or $DUOVID), scripts/fetch_smollm2.sh's model
# and Debian's jargon-text (the public-domain Jargon File, for perplexity).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-eval-out} ctx=${2:-1k} depths=${3:-0,0.5,1} samples=${4:-1} windows=${WINDOWS:-1}
bin=${DUOVID:-build/duovid}
model=${XDG_CACHE_HOME:-$HOME/.cache}/duovid/models/SmolLM2-135M-Instruct
hay=assets/text/jargon-essays.txt
mkdir -p "$out"
[ -f "$out/jargon.txt" ] || zcat /usr/share/doc/jargon-text/jargon.txt.gz >"$out/jargon.txt"
t=(-t "${THREADS:-2}")
niah() { # NAME [duo flags...]
  local name=$1; shift
  [ -s "$out/niah-$name.json" ] || "$bin" eval niah -m "$model" --haystack $hay --ctx "$ctx" --depths "$depths" \
    --samples "$samples" "${t[@]}" --json --png "$out/niah-$name.png" -v "$@" >"$out/niah-$name.json" 2>"$out/niah-$name.log"
}
ppl() { # NAME [duo flags...]
  local name=$1; shift
  [ -s "$out/ppl-$name.json" ] || "$bin" perplexity -m "$model" -f "$out/jargon.txt" --ctx 2048 --windows $windows "${t[@]}" \
    --json "$@" >"$out/ppl-$name.json" 2>"$out/ppl-$name.log"
}
[ -f "$out/pat-mass/full_attention_heads.tsv" ] || { /usr/bin/time -f "identify: %e s wall, %U s user" \
  "$bin" identify -m "$model" -o "$out/pat-mass" --method attention-mass "${t[@]}" >"$out/identify.txt"; } 2>"$out/identify.log"
for s in 1 2 3 4 5; do "$bin" identify -m "$model" -o "$out/pat-rand$s" --method random --seed $s --filler assets/text/filler.txt >/dev/null; done
part=${PART:-all} # niah | ppl | all: the two halves can run side by side
if [ "$part" != ppl ]; then
  niah full
  # the patterns at the depth that discriminates (0.5: the needle is outside the sink and the recent
  # window; at 0 it sits next to the sink, at 1 inside the recent window); BASE_DEPTHS to change
  bd=${BASE_DEPTHS:-0.5}
  depths=$bd niah mass-0.5 --duo "$out/pat-mass" --duo-sparsity 0.5
  for s in 1 2 3 4 5; do depths=$bd niah rand$s-0.5 --duo "$out/pat-rand$s" --duo-sparsity 0.5; done
  depths=$bd niah mass-0.75 --duo "$out/pat-mass" --duo-sparsity 0.75
  for s in 1 2 3 4 5; do depths=$bd niah rand$s-0.75 --duo "$out/pat-rand$s" --duo-sparsity 0.75; done
fi
if [ "$part" != niah ]; then
  ppl full
  ppl mass-0.5 --duo "$out/pat-mass" --duo-sparsity 0.5
fi
grep -h . "$out"/*.json
