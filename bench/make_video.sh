#!/usr/bin/env bash
# make_video.sh: sourced by the bench scripts: dv_bench_make_video FILE SECS CODEC_ARGS... makes FILE
# (if missing): SECS seconds of testsrc2 1280x720 at 25 fps. Encoding an hour of 720p takes ~10 min of
# both cores; instead one minute is encoded (every segment starts with a keyframe: pass a GOP that
# divides it) and stream-copied back to back with the concat demuxer, which rewrites the timestamps:
# the result decodes and seeks exactly like a real file of that length (the picture repeats every
# minute, which costs the decoder the same).
dv_bench_make_video() {
  local file=$1 secs=$2 dir seg start i
  shift 2
  [ -s "$file" ] && return 0
  dir=$(dirname "$file")
  echo "bench: generating $file (${secs} s of 1280x720 at 25 fps: $*)..." >&2
  start=$(date +%s)
  seg=$(( secs < 60 ? secs : 60 ))
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=1280x720:r=25:d=$seg" \
    "$@" -pix_fmt yuv420p "$file.segment.mp4" || return 1
  : >"$file.concat.txt"
  for ((i = 0; i < (secs + seg - 1) / seg; i++)); do echo "file '$(basename "$file").segment.mp4'" >>"$file.concat.txt"; done
  ffmpeg -nostdin -hide_banner -loglevel error -y -f concat -safe 0 -i "$file.concat.txt" -t "$secs" -c copy \
    "$file.part.mp4" || return 1
  mv "$file.part.mp4" "$file"
  rm -f "$file.segment.mp4" "$file.concat.txt"
  echo "bench: generated in $(( $(date +%s) - start )) s" >&2
}
