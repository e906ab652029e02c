#!/usr/bin/env bash
# video_frames.sh: `duovid frames` and `duovid info VIDEO`: help lists every flag; bad flags and bad
# files give one error line, exit 1 and leave no output behind; PNGs, contact sheet and --null work;
# a file with corrupt packets warns once and keeps going; asking for more frames than exist warns once.
#   bash tests/cli/video_frames.sh build/duovid
set -u
bin=${1:?usage: video_frames.sh path/to/duovid}
command -v ffmpeg >/dev/null || { echo "SKIPPED: ffmpeg CLI not found (needed to make test videos)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
pattern="geq=lum='if(mod(floor(N/pow(2,floor(Y*4/H)*4+floor(X*4/W))),2),235,16)':cb=128:cr=128"
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=black:s=64x48:r=10:d=3,format=yuv420p,$pattern" \
  -c:v libx264 -preset veryfast -g 10 "$tmp/v.mp4" || { echo "FAIL: ffmpeg could not make the test video"; exit 1; }

# expect LABEL PATTERN -- ARGS...: exit 1, exactly one stderr line matching PATTERN, nothing written.
expect() {
  local label=$1 pattern=$2; shift 3
  rm -rf "$tmp/out" "$tmp/sheet.png"
  "$bin" "$@" >"$tmp/stdout" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" = 1 ] && [ "$lines" = 1 ] && grep -Eq -- "$pattern" "$tmp/err" && [ ! -e "$tmp/out" ] && [ ! -e "$tmp/sheet.png" ]; then
    ok "$label: $(cat "$tmp/err")"
  else
    bad "$label: exit $rc, $lines stderr lines, outputs: $(ls "$tmp/out" "$tmp/sheet.png" 2>/dev/null | tr '\n' ' ')"
    cat "$tmp/err"
  fi
}

help=$("$bin" frames --help) && rc=0 || rc=$?
missing=""
for f in --fps --frames --start --end --max-frames --out --sheet --null --size --thumb --mode --threads --help; do
  grep -q -- "$f" <<<"$help" || missing="$missing $f"
done
[ "$rc" = 0 ] && [ -z "$missing" ] && ok "frames --help lists every flag" || bad "frames --help (exit $rc, missing:$missing)"

o=(-o "$tmp/out")
expect "negative fps" "--fps: -1 is out of range" -- frames "$tmp/v.mp4" --fps -1 "${o[@]}"
expect "zero fps" "--fps: 0 is out of range" -- frames "$tmp/v.mp4" --fps 0 "${o[@]}"
expect "fps not a number" "--fps: 'abc' is not a number" -- frames "$tmp/v.mp4" --fps abc "${o[@]}"
expect "--frames 0" "--frames: 0 is out of range" -- frames "$tmp/v.mp4" --frames 0 "${o[@]}"
expect "start >= end" "--start \\(2\\) must be before --end \\(2\\)" -- frames "$tmp/v.mp4" --start 2 --end 2 "${o[@]}"
expect "--fps and --frames" "exclusive" -- frames "$tmp/v.mp4" --fps 2 --frames 3 "${o[@]}"
expect "start past the end" "start 10 s is at or past the end of the video \\(3.000 s\\)" -- frames "$tmp/v.mp4" --start 10 "${o[@]}"
expect "no output chosen" "nothing to write" -- frames "$tmp/v.mp4"
expect "unknown flag" "unknown option '--bogus'" -- frames "$tmp/v.mp4" --bogus "${o[@]}"
expect "flag without value" "needs a value" -- frames "$tmp/v.mp4" -o
expect "bad --size" "--size" -- frames "$tmp/v.mp4" --size 12 "${o[@]}"
expect "sheet not .png" "must end in .png" -- frames "$tmp/v.mp4" --sheet "$tmp/sheet.jpg"
expect "sheet too many frames" "at most 1024" -- frames "$tmp/v.mp4" --fps 1000 --sheet "$tmp/sheet.png"
expect "missing file" "nope.mp4: cannot open \\(No such file" -- frames "$tmp/nope.mp4" "${o[@]}"
printf 'not a video\n' >"$tmp/text.mp4"
expect "text named .mp4" "text.mp4: not a video file" -- frames "$tmp/text.mp4" "${o[@]}"
: >"$tmp/zero.mp4"
expect "zero bytes" "zero.mp4: empty file" -- frames "$tmp/zero.mp4" --sheet "$tmp/sheet.png"
expect "info: missing video" "nope.mp4" -- info "$tmp/nope.mp4"

# PNGs: 4 uniform frames of 3 s at 10 fps -> frames 3, 11, 18, 26 (times 0.3, 1.1, 1.8, 2.6 s).
rm -rf "$tmp/out"
if "$bin" frames "$tmp/v.mp4" --frames 4 -o "$tmp/out" 2>"$tmp/err"; then
  names=$(cd "$tmp/out" && ls | tr '\n' ' ')
  want="frame_000001_t000000.300s.png frame_000002_t000001.100s.png frame_000003_t000001.800s.png frame_000004_t000002.600s.png "
  [ "$names" = "$want" ] && ok "4 PNGs named with their timestamps" || bad "PNG names: '$names' want '$want'"
  magic=$(head -c 8 "$tmp/out/frame_000001_t000000.300s.png" | od -An -tx1 | tr -d ' \n')
  [ "$magic" = 89504e470d0a1a0a ] && ok "PNG signature" || bad "PNG signature $magic"
else
  bad "frames -o: $(cat "$tmp/err")"
fi
# Contact sheet and --size.
if "$bin" frames "$tmp/v.mp4" --fps 2 --thumb 64 --sheet "$tmp/sheet.png" 2>"$tmp/err" && [ -s "$tmp/sheet.png" ] &&
   [ -z "$(ls -A "$tmp" | grep -E '\.tmp')" ]; then
  ok "contact sheet written (no temp files left)"
else
  bad "contact sheet: $(cat "$tmp/err")"
fi
rm -rf "$tmp/out"
"$bin" frames "$tmp/v.mp4" --size 32x0 --fps 1 -o "$tmp/out" 2>/dev/null
n=$(ls "$tmp/out" 2>/dev/null | wc -l)
[ "$n" = 3 ] && ok "--size 32x0 --fps 1: 3 frames" || bad "--size 32x0: $n frames"
# --null decodes, writes nothing, says how many frames.
if "$bin" frames "$tmp/v.mp4" --fps 5 --null >"$tmp/stdout" 2>"$tmp/err" && grep -q "15 frames" "$tmp/err" &&
   [ ! -s "$tmp/stdout" ]; then
  ok "--null: 15 frames, nothing on stdout"
else
  bad "--null: $(cat "$tmp/err")"
fi

# Corrupt packets in the middle: exit 0, exactly one warning, frames on both sides of the damage.
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=black:s=160x120:r=10:d=10,format=yuv420p,$pattern" \
  -c:v libx264 -preset veryfast -g 10 -movflags +faststart "$tmp/c.mp4"
size=$(stat -c %s "$tmp/c.mp4")
for k in 4 5 6; do
  head -c 300 /dev/urandom | dd of="$tmp/c.mp4" bs=1 seek=$((size * k / 10)) conv=notrunc status=none
done
if "$bin" frames "$tmp/c.mp4" --fps 10 --null 2>"$tmp/err"; then
  warnings=$(grep -c "warning" "$tmp/err")
  [ "$warnings" = 1 ] && ok "corrupt packets: one warning: $(grep warning "$tmp/err")" ||
    { bad "corrupt packets: $warnings warnings"; cat "$tmp/err"; }
else
  bad "corrupt packets: exit $?: $(cat "$tmp/err")"
fi

# More frames asked than the file has (30): every frame once, exit 0, one warning saying so.
rm -rf "$tmp/out"
if "$bin" frames "$tmp/v.mp4" --frames 40 -o "$tmp/out" 2>"$tmp/err"; then
  n=$(ls "$tmp/out" | wc -l)
  warnings=$(grep -c "warning" "$tmp/err")
  [ "$n" = 30 ] && [ "$warnings" = 1 ] && grep -q "40 frames asked, but only 30 distinct frames" "$tmp/err" &&
    ok "--frames 40 of 30: all 30 PNGs, one warning: $(grep warning "$tmp/err")" ||
    { bad "--frames 40 of 30: $n PNGs, $warnings warnings"; cat "$tmp/err"; }
else
  bad "--frames 40: exit $?: $(cat "$tmp/err")"
fi

# info VIDEO: aligned lines and JSON.
if out=$("$bin" info "$tmp/v.mp4" 2>"$tmp/err") && grep -q "codec: *h264" <<<"$out" && grep -q "frames: *30" <<<"$out" &&
   grep -q "duration: *3.000 s" <<<"$out"; then
  ok "info VIDEO"
else
  bad "info VIDEO: $out $(cat "$tmp/err")"
fi
if out=$("$bin" info "$tmp/v.mp4" --json 2>"$tmp/err") &&
   python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["width"]==64 and d["frames"]==30 and d["codec"]=="h264"' "$out"; then
  ok "info VIDEO --json"
else
  bad "info VIDEO --json: $out $(cat "$tmp/err")"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
