#!/usr/bin/env bash
# video_bench.sh: video sampling speed and peak RSS on a generated 720p H.264 file, next to
# `ffmpeg -i FILE -vf fps=1 -f null -` measured in the same run (the figures in docs/PERF.md).
#   bench/video_bench.sh                 # 1-hour file (made once, ~2.9 GB, cached in build/bench-video/)
#   bench/video_bench.sh 600             # a 10-minute file instead
#   bench/video_bench.sh 3600 build-x/duovid
# Rows: ffmpeg decode at 1 fps; `duovid frames --fps 1 --null` (decode + RGB conversion of every
# sampled frame, nothing written); `duovid frames --frames 32 --null` (seeks). Time and peak RSS come
# from /usr/bin/time -v (Debian package `time`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3600}
bin=${2:-build/duovid}
[ -x "$bin" ] || { echo "video_bench: $bin not found (build first: scripts/setup.sh)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "video_bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "video_bench: ffmpeg CLI missing" >&2; exit 1; }

dir=build/bench-video
file=$dir/testsrc2_720p25_${secs}s.mp4
mkdir -p "$dir"
. bench/make_video.sh
dv_bench_make_video "$file" "$secs" -c:v libx264 -preset ultrafast -g 250

# run LABEL CMD...: prints "LABEL|wall seconds|peak RSS MiB".
run() {
  local label=$1; shift
  /usr/bin/time -v "$@" >/dev/null 2>"$dir/time.txt" || { echo "video_bench: '$*' failed:" >&2; tail -5 "$dir/time.txt" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$dir/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$dir/time.txt")
  echo "$label|$wall|$rss"
}

echo "video_bench: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(date -u +%Y-%m-%d), file $file ($(du -h "$file" | cut -f1))" >&2
ff=$(run "ffmpeg -i FILE -vf fps=1 -f null -" ffmpeg -nostdin -hide_banner -loglevel error -i "$file" -vf fps=1 -f null -)
fps1=$(run "duovid frames --fps 1 --null" "$bin" frames "$file" --fps 1 --null)
u32=$(run "duovid frames --frames 32 --null" "$bin" frames "$file" --frames 32 --null)
ffwall=$(cut -d'|' -f2 <<<"$ff")
echo
echo "| command | wall time | speed-up (ffmpeg time / this) | peak RSS |"
echo "|---|---|---|---|"
for row in "$ff" "$fps1" "$u32"; do
  IFS='|' read -r label wall rss <<<"$row"
  ratio=$(awk -v a="$ffwall" -v b="$wall" 'BEGIN {printf "%.1fx", a / b}')
  echo "| \`$label\` | $wall s | $ratio | $rss MiB |"
done
