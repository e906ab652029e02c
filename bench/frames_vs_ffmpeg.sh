#!/usr/bin/env bash
# frames_vs_ffmpeg.sh: writing 1-fps PNGs of a 20-minute 720p file, duovid against ffmpeg with the
# same thread count, measured in one run (the figure in docs/PERF.md):
#   duovid frames V --fps 1 --threads N -o DIR1
#   ffmpeg -threads N -i V -vf fps=1 DIR2/%05d.png
#   bench/frames_vs_ffmpeg.sh                    # 1200 s file, N = nproc, build/duovid
#   bench/frames_vs_ffmpeg.sh 300 2 build-x/duovid
# The test file is made once and cached in ${XDG_CACHE_HOME:-/tmp}/duovid-bench/ (never committed):
# testsrc2 1280x720 at 25 fps, libx264 ultrafast with GOP 250 (mpeg4 when there is no libx264), made
# as bench/make_video.sh says. Prints both wall and CPU times and the ratios duovid /
# ffmpeg (below 1: duovid is faster), and checks both wrote the same number of PNGs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1200}
threads=${2:-$(nproc)}
bin=${3:-build/duovid}
[ -x "$bin" ] || { echo "frames_vs_ffmpeg: $bin not found (build first)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "frames_vs_ffmpeg: ffmpeg CLI missing" >&2; exit 1; }

cache=${XDG_CACHE_HOME:-/tmp}/duovid-bench
mkdir -p "$cache"
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)
if grep -q ' libx264 ' <<<"$encoders"; then
  codec=(-c:v libx264 -preset ultrafast -g 250) tag=x264
else
  codec=(-c:v mpeg4 -q:v 4 -g 250) tag=mpeg4
fi
file=$cache/testsrc2_720p25_${secs}s_$tag.mp4
. bench/make_video.sh
dv_bench_make_video "$file" "$secs" "${codec[@]}"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/duovid" "$out/ffmpeg"
# measure CMD...: "wall cpu" seconds of CMD (cpu = user + sys of it and its threads; stdout/stderr
# dropped; a failure stops the script). On a machine shared with other jobs the wall time follows their
# load; the CPU time much less so: both are printed.
[ -x /usr/bin/time ] || { echo "frames_vs_ffmpeg: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
measure() {
  /usr/bin/time -f "%e %U %S" -o "$out/time" "$@" >/dev/null 2>"$out/err" ||
    { echo "frames_vs_ffmpeg: '$*' failed:" >&2; tail -5 "$out/err" >&2; exit 1; }
  awk '{printf "%.2f %.2f", $1, $2 + $3}' "$out/time"
}
echo "frames_vs_ffmpeg: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC'), $file ($(du -h "$file" | cut -f1)), $threads threads" >&2
read -r ff_wall ff_cpu <<<"$(measure ffmpeg -nostdin -hide_banner -loglevel error -threads "$threads" -i "$file" -vf fps=1 "$out/ffmpeg/%05d.png")"
read -r dv_wall dv_cpu <<<"$(measure "$bin" frames "$file" --fps 1 --threads "$threads" -o "$out/duovid")"
echo "frames_vs_ffmpeg: done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
n_ff=$(ls "$out/ffmpeg" | wc -l)
n_dv=$(ls "$out/duovid" | wc -l)
[ "$n_ff" -gt 0 ] && [ "$n_ff" = "$n_dv" ] || { echo "frames_vs_ffmpeg: $n_ff vs $n_dv PNGs" >&2; exit 1; }
echo "ffmpeg -threads $threads -i V -vf fps=1 DIR/%05d.png   wall $ff_wall s  cpu $ff_cpu s  ($n_ff PNGs, $(du -sh "$out/ffmpeg" | cut -f1))"
echo "duovid frames V --fps 1 --threads $threads -o DIR       wall $dv_wall s  cpu $dv_cpu s  ($n_dv PNGs, $(du -sh "$out/duovid" | cut -f1))"
awk -v a="$dv_wall" -v b="$ff_wall" -v c="$dv_cpu" -v d="$ff_cpu" \
  'BEGIN {printf "ratio duovid / ffmpeg: wall %.2f, cpu %.2f\n", a / b, c / d}'
