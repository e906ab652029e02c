#!/usr/bin/env bash
# run.sh: build the libFuzzer targets with clang (build-fuzz/) and run each for a fixed time (CI).
#   tests/fuzz/run.sh            # 60 s for the video target, 30 s for the context cache loader,
#                                # 20 s each for the BPE tokenizer loader and encoder
#   tests/fuzz/run.sh 300        # longer
# The seed corpus (tiny MP4/WebM/AVI/MOV/Y4M files) is made with the ffmpeg CLI on first use and kept
# in build-fuzz/corpus/ so later runs start from what earlier ones found. Exits nonzero on a finding
# (crash-*/leak-*/timeout-* files are left in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found (scripts/setup.sh --with-fuzz installs it); skipped" >&2
  exit 0
fi
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DDUOVID_FUZZ=ON -DDUOVID_CUDA=OFF \
  -DDUOVID_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_video_open fuzz_ctx_cache fuzz_bpe_load fuzz_bpe_encode -j"$(nproc 2>/dev/null || echo 2)"

# run TARGET SECONDS MAX_LEN CORPUS: one libFuzzer target for a fixed time, findings left in build-fuzz/
run() {
  echo "fuzz: $1 for $2 s" >&2
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build-fuzz/tests/fuzz/$1" -max_total_time="$2" -max_len="$3" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/ "$4"
}

corpus=build-fuzz/corpus/video_open
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ] && command -v ffmpeg >/dev/null; then
  src="color=c=black:s=32x24:r=10:d=0.5,format=yuv420p,geq=lum='mod(N*40+X*8,256)':cb=128:cr=128"
  ff() { ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "$src" "$@"; }
  ff -c:v libx264 -preset ultrafast -g 3 "$corpus/seed.mp4"
  ff -c:v libvpx-vp9 -deadline realtime -cpu-used 8 "$corpus/seed.webm"
  ff -c:v mpeg4 "$corpus/seed.avi"
  ff -c:v mjpeg -pix_fmt yuvj420p "$corpus/seed.mov"
  ff -frames:v 2 "$corpus/seed.y4m"
  ff -c:v libx264 -preset ultrafast -f mpegts "$corpus/seed.ts"
fi
run fuzz_video_open "$secs" 65536 "$corpus"

corpus=build-fuzz/corpus/ctx_cache
mkdir -p "$corpus"
[ -n "$(ls -A "$corpus")" ] || DV_FUZZ_WRITE_SEED="$corpus/seed.dvctx" build-fuzz/tests/fuzz/fuzz_ctx_cache
run fuzz_ctx_cache "$((secs / 2))" 65536 "$corpus"

# The BPE tokenizer: tokenizer.json bytes (seeds: the committed fixtures) and text on fixed fixtures
# (seeds: the committed corpus, one string per file)
corpus=build-fuzz/corpus/bpe_load
mkdir -p "$corpus"
for d in tests/fixtures/bpe/*/; do
  [ -f "$d/tokenizer.json" ] && cp -n "$d/tokenizer.json" "$corpus/$(basename "$d").json"
done
run fuzz_bpe_load "$((secs / 3))" 65536 "$corpus"

corpus=build-fuzz/corpus/bpe_encode
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ] && command -v python3 >/dev/null; then
  python3 -c 'import json, sys
for i, e in enumerate(json.load(open(sys.argv[1]))):
    b = e.encode() if isinstance(e, str) else bytes.fromhex(e["hex"])
    open(f"{sys.argv[2]}/s{i:03d}", "wb").write(b)' tests/fixtures/bpe/corpus.json "$corpus"
fi
run fuzz_bpe_encode "$((secs / 3))" 4096 "$corpus"
