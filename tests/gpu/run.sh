#!/usr/bin/env bash
# tests/gpu/run.sh: everything that needs a GPU, in one call: build with CUDA into build-gpu/, run
# every ctest with label `cuda` (each CUDA op against the CPU op, the tiny LLM and ViT GPU vs CPU),
# then the GPU benchmarks on synthetic in-memory models, and print one table:
#   - decode ms/token and peak device GiB at 32K/128K/512K/1M contexts for llama2-7b (MHA) at
#     sparsity 0/0.75, llama3-8b (GQA) at 0/0.5 and the text models of Qwen2.5-VL-7B / Qwen3-VL-8B (GQA,
#     M-RoPE: positions per token, the long-video models) at 0/0.5, with the HBM floor (weights + KV bytes read per
#     token / measured copy bandwidth). The KV cache is filled synthetically (random keys/values, no
#     model run: a 1M-token prefill would not fit the time budget); decode is timed over 24 steps.
#     Contexts whose KV cache does not fit the GPU's memory are reported as "no fit".
#   - prefill seconds of one 32K chunk for the same eight configurations (a real prefill), and for the
#     two Qwen-VL shapes also 32K cells in 256-token chunks (duovid's default --chunk, the way a video
#     context is prefilled; the CPU figures in docs/PERF.md are for this form).
#   - ViT (clip-l336 shape) frames/s.
#   - KV row types (f32/bf16/f16/q8/q4): the op test's attention_kv cases per type (worst relative L2
#     vs the CPU over the same stored rows) and its kv_store checks, then decode ms/token of llama3-8b
#     at 128K filled tokens, sparsity 0 and 0.5, per type, with the KV bytes per token and the HBM
#     floor. The other decode rows use the default KV type (bf16 since the CUDA backend has kv_store).
# Sized to finish within 9 minutes on an H100 for the first four configurations; the four Qwen-VL ones
# (added without a GPU run) roughly double that. Run on a machine with an NVIDIA GPU:
#   tests/gpu/run.sh
# Exits non-zero when a CUDA test fails or was skipped (a skip here means no GPU was found).
set -uo pipefail
cd "$(dirname "$0")/../.."
jobs=$(nproc 2>/dev/null || echo 4)
scripts/setup.sh --deps-only
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDUOVID_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90" >&2 || exit 1
cmake --build build-gpu -j"$jobs" >&2 || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true

log=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$log"' EXIT
ctest --test-dir build-gpu -L cuda --output-on-failure -V >"$log" 2>&1
ctest_rc=$?
grep -E "^[0-9]+: (OK|FAIL)|SKIPPED|tests passed|Failed" "$log" >&2
if grep -q "SKIPPED" "$log"; then echo "CUDA tests were skipped: no usable GPU" >&2; ctest_rc=1; fi

B=build-gpu/duovid
field() { echo "$1" | grep -Eo "\"$2\":[^,}]+" | head -1 | cut -d: -f2 | tr -d '"'; }
bw=0 # device copy bandwidth (GB/s), from the first decode run, for the HBM floor
total_gib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1 | awk '{printf "%.0f", $1/1024}')
echo "| what | model | sparsity | context | result | peak GiB | HBM floor |"
echo "|---|---|---|---|---|---|---|"
echo "| cuda op + LLM + ViT tests | | | | $(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$log" | tr '\n' ' ') | | |"
# KV row types: the op test's attention_kv cases with K and V of one type, and kv_store
for t in f32 bf16 f16 q8 q4; do
  cases=$(grep -E "^[0-9]+: (OK  |FAIL) attention_kv K $t V $t " "$log")
  ok=$(echo "$cases" | grep -c ": OK") ; bad=$(echo "$cases" | grep -c ": FAIL")
  worst=$(echo "$cases" | grep -Eo "rel_l2 = [0-9.e+-]+" | awk '{ if ($3 > w) w = $3 } END { printf "%.2e", w }')
  st=$(grep -E "kv_store $t D=" "$log" | grep -Eo "[0-9]+/[0-9]+ rows bit-identical" | tr '\n' ' ')
  echo "| attention_kv ops, KV $t | | | | $ok ok, $bad failed, worst rel L2 $worst; kv_store: ${st:-n/a} | | |"
done
# decode per KV type (128K filled tokens; keys and values of one type)
for sp in 0 0.5; do
  for t in f32 bf16 f16 q8 q4; do
    r=$($B bench llm --synthetic llama3-8b --device cuda --sparsity "$sp" --fill 131072 --prompt-tokens 0 \
        --gen-tokens 24 --kv-type "$t" --json 2>"$tmp/err")
    if [ -z "$r" ]; then
      echo "| decode ms/tok, KV $t | llama3-8b | $sp | 131072 | error: $(tail -1 "$tmp/err" | cut -c1-60) | | |"
      continue
    fi
    [ "$bw" = 0 ] && bw=$(field "$r" copy_gb_s)
    floor=$(awk -v b="$(field "$r" decode_read_bytes)" -v g="$bw" 'BEGIN { if (g > 0) printf "%.2f ms", b / (g * 1e9) * 1e3; else print "n/a" }')
    printf "| decode ms/tok, KV %s (%s B/token) | llama3-8b | %s | 131072 | %.2f | %.1f | %s |\n" "$t" \
      "$(field "$r" kv_bytes_per_token)" "$sp" "$(field "$r" decode_ms)" "$(field "$r" device_peak_gib)" "$floor"
  done
done
# prefill_row LABEL BATCH: a real 32K-token prefill of $m at sparsity $sp in chunks of BATCH, one table row
prefill_row() {
  r=$($B bench llm --synthetic "$m" --device cuda --sparsity "$sp" --prompt-tokens 32768 --batch "$2" --gen-tokens 0 \
      --json 2>"$tmp/err")
  if [ -n "$r" ]; then
    printf "| prefill s (%s) | %s | %s | 32768 | %.2f | %.1f | |\n" "$1" "$m" "$sp" "$(field "$r" prefill_s)" \
      "$(field "$r" device_peak_gib)"
  else
    echo "| prefill s ($1) | $m | $sp | 32768 | error: $(tail -1 "$tmp/err" | cut -c1-60) | | |"
  fi
}
for cfg in "llama2-7b 0" "llama2-7b 0.75" "llama3-8b 0" "llama3-8b 0.5" \
           "qwen2.5-vl-7b 0" "qwen2.5-vl-7b 0.5" "qwen3-vl-8b 0" "qwen3-vl-8b 0.5"; do
  set -- $cfg; m=$1; sp=$2
  for ctx in 32768 131072 524288 1048576; do
    r=$($B bench llm --synthetic "$m" --device cuda --sparsity "$sp" --fill "$ctx" --prompt-tokens 0 --gen-tokens 24 \
        --json 2>"$tmp/err")
    if [ -z "$r" ]; then
      why=$(grep -q "memory" "$tmp/err" && echo "no fit" || echo "error: $(tail -1 "$tmp/err" | cut -c1-60)")
      echo "| decode ms/tok | $m | $sp | $ctx | $why | | |"
      continue
    fi
    ms=$(field "$r" decode_ms); gib=$(field "$r" device_peak_gib)
    [ "$bw" = 0 ] && bw=$(field "$r" copy_gb_s)
    wb=$(field "$r" weight_bytes); kb=$(field "$r" kv_bytes)
    floor=$(awk -v w="$wb" -v k="$kb" -v b="$bw" 'BEGIN { if (b > 0) printf "%.2f ms", (w + k) / (b * 1e9) * 1e3; else print "n/a" }')
    printf "| decode ms/tok (filled) | %s | %s | %s | %.2f | %.1f | %s |\n" "$m" "$sp" "$ctx" "$ms" "$gib" "$floor"
  done
  prefill_row "one 32K chunk" 32768
  case $m in qwen*) prefill_row "32K, 256-token chunks" 256 ;; esac
done
# ViT: clip-l336-shaped synthetic encoder (LLaVA-NeXT-Video-7B's tower), batches of 32 frames
r=$($B bench encoder --synthetic clip-l336 --device cuda --frames 256 --batch 32 --repeat 2 --json 2>"$tmp/err")
echo "| ViT frames/s | clip-l336 | | | ${r:+$(field "$r" frames_per_s)}${r:-error: $(tail -1 "$tmp/err" | cut -c1-60)} | | |"
echo "(GPU memory ${total_gib:-?} GiB; copy bandwidth ${bw} GB/s; HBM floor = (weights + KV bytes) / bandwidth)"
exit $ctest_rc
