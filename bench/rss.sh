#!/usr/bin/env bash
# rss.sh: start-up memory of the duovid binary: peak RSS (/usr/bin/time -v) of `duovid --help` and of
# `duovid frames CLIP --frames 32` on a short generated 720p clip, with `ffmpeg -version` for scale
# (the figures and targets in docs/PERF.md: <= 40 MiB and <= 64 MiB with CUDA compiled in). Builds
# nothing; the clip is made once under /tmp with the ffmpeg CLI.
#   bench/rss.sh                    # build/duovid
#   bench/rss.sh build-cuda/duovid  # the CUDA build (libduovid-cuda.so beside it is not loaded)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/duovid}
[ -x "$bin" ] || { echo "rss: $bin not found (build first)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "rss: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "rss: ffmpeg CLI missing" >&2; exit 1; }

clip=/tmp/duovid-rss-720p.mp4
if [ ! -s "$clip" ]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=1280x720:r=25:d=20" \
    -c:v libx264 -preset ultrafast -g 250 -pix_fmt yuv420p "$clip"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# max RSS in MiB of a command (its output discarded)
rss() {
  /usr/bin/time -v "$@" >/dev/null 2>"$out/time" || { echo "rss: '$*' failed:" >&2; tail -5 "$out/time" >&2; exit 1; }
  awk '/Maximum resident set size/ { printf "%.1f", $NF / 1024 }' "$out/time"
}

printf '| command | peak RSS (MiB) |\n|---|---|\n'
printf '| `ffmpeg -version` | %s |\n' "$(rss ffmpeg -version)"
printf '| `duovid --help` | %s |\n' "$(rss "$bin" --help)"
printf '| `duovid frames 720p.mp4 --frames 32 -o DIR` | %s |\n' "$(rss "$bin" frames "$clip" --frames 32 -o "$out/frames")"
printf '| `duovid frames 720p.mp4 --frames 32 --null` | %s |\n' "$(rss "$bin" frames "$clip" --frames 32 --null)"
if ldd "$bin" | grep -Eq 'libcudart|libcublas'; then
  echo "rss: note: $bin links the CUDA runtime directly" >&2
fi
