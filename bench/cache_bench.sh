#!/usr/bin/env bash
# cache_bench.sh: time to first token of `duovid ask` on a generated 10-minute video, without and with
# the video context cache (the second question on the same video loads the KV cache and skips decode,
# encode and prefill). Prints one markdown table for docs/PERF.md and checks that both answers agree.
#   bench/cache_bench.sh [build/duovid] [MODEL_DIR] [extra ask flags...]
# Defaults: build/duovid, assets/models/tiny-llava-next-video, 1 frame per second (600 frames) in a
# 32K context. A real checkpoint makes the prefill (and so the ratio) far larger.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/duovid}
model=${2:-assets/models/tiny-llava-next-video}
shift $(($# > 2 ? 2 : $#))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v ffmpeg >/dev/null || { echo "cache_bench: needs the ffmpeg CLI to make the test video" >&2; exit 1; }

# 10 minutes, 320x240, 10 fps, H.264 with a keyframe every 2 s: moving test pattern + a bouncing box
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=320x240:r=10:d=600" \
  -vf "drawbox=x='mod(t*40,280)':y='120+60*sin(t)':w=40:h=40:color=red:t=fill" \
  -c:v libx264 -preset ultrafast -g 20 -pix_fmt yuv420p "$tmp/ten_minutes.mp4"

flags=(-m "$model" -v "$tmp/ten_minutes.mp4" --fps 1 --ctx 32768 -n 16 --cache-dir "$tmp/cache" --json "$@")
q1="What is moving in this video?"
q2="What colour is the box?"
"$bin" ask "${flags[@]}" "$q1" >"$tmp/cold.json" 2>"$tmp/cold.err" || { cat "$tmp/cold.err" >&2; exit 1; }
"$bin" ask "${flags[@]}" "$q2" >"$tmp/warm.json" 2>"$tmp/warm.err" || { cat "$tmp/warm.err" >&2; exit 1; }
"$bin" ask "${flags[@]}" --no-cache "$q2" >"$tmp/nocache.json" 2>/dev/null

python3 - "$tmp/cold.json" "$tmp/warm.json" "$tmp/nocache.json" "$model" <<'EOF'
import json, sys
cold, warm, nocache = (json.load(open(p)) for p in sys.argv[1:4])
assert cold["cache"] == "miss" and warm["cache"] == "hit", (cold["cache"], warm["cache"])
assert warm["answer"] == nocache["answer"], "the cached context gave another answer than a fresh one"
c, w = cold["timings_sec"], warm["timings_sec"]
print(f"| video | frames | context tokens | first question (builds the context) | second question (cache hit) | ratio |")
print(f"|---|---|---|---|---|---|")
print(f"| 10 min 320x240 H.264, {sys.argv[4].rstrip('/').split('/')[-1]} | {cold['frames']['count']} | "
      f"{cold['tokens']['video_context']} | {c['time_to_first_token']:.2f} s (decode {c['decode']:.2f}, encode "
      f"{c['encode']:.2f}, prefill {c['prefill']:.2f}, cache write {c['cache_save']:.2f}) | "
      f"{w['time_to_first_token']:.3f} s (load {w['load']:.3f}, cache read {w['cache_load']:.3f}) | "
      f"{c['time_to_first_token'] / w['time_to_first_token']:.1f}x |")
print(f"second answer identical to a run without the cache: yes; KV cache {cold['kv_bytes']['total'] / 2**20:.1f} MiB")
EOF
