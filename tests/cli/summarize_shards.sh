#!/usr/bin/env bash
# summarize_shards.sh: `duovid summarize --shard auto` and `summarize --merge` without a Slurm
# cluster (the Slurm variables are set by hand, as slurmd sets them; tests/cli/slurm_summarize.sh runs
# a real job array): missing or inconsistent array variables are one error line; a 4-task array with
# ids 1-4 (SLURM_ARRAY_TASK_MIN = 1) writes one file per shard that covers every video once; the
# merge gives each video one line in the list's order, reports duplicates, lets an ok line beat an
# error line, and refuses (nothing written) conflicts, missing or extra videos, torn and foreign lines.
#   bash tests/cli/summarize_shards.sh build/duovid
set -u
bin=${1:?usage: summarize_shards.sh path/to/duovid}
model=assets/models/tiny-llava-next-video
clip=tests/fixtures/vlm/clip.mp4
[ -f "$model/model.safetensors" ] && [ -f "$clip" ] || { echo "SKIPPED: $model or $clip missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source tests/cli/lib.sh
export DUOVID_LOG=warn
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_MAX SLURM_ARRAY_TASK_STEP
common=(-m "$model" --frames 4 -n 6 --cache-dir "$tmp/cache")
for v in v1 v2 v3 v4 v5 v6; do cp "$clip" "$tmp/$v.mp4"; done
ls "$tmp"/v*.mp4 >"$tmp/list"

# ---- --shard auto: the Slurm variables ----
one_error "shard auto outside Slurm" "SLURM_ARRAY_TASK_ID is not set" -- summarize "${common[@]}" -o "$tmp/o.jsonl" --shard auto --list "$tmp/list"
SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=2 one_error "shard auto: no MIN" "SLURM_ARRAY_TASK_MIN is not set" -- \
  summarize "${common[@]}" -o "$tmp/o.jsonl" --shard auto --list "$tmp/list"
export SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=4 SLURM_ARRAY_TASK_STEP=1
one_error "shard auto: id past the array" "inconsistent Slurm array \(task 5 of 4" -- summarize "${common[@]}" -o "$tmp/o.jsonl" --shard auto "$clip"
SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MAX=7 one_error "shard auto: ids 1,3,7 (not one range)" "inconsistent Slurm array" -- \
  summarize "${common[@]}" -o "$tmp/o.jsonl" --shard auto "$clip"
SLURM_ARRAY_TASK_ID=x one_error "shard auto: not a number" "SLURM_ARRAY_TASK_ID='x' is not a task number" -- \
  summarize "${common[@]}" -o "$tmp/o.jsonl" --shard auto "$clip"
[ ! -e "$tmp/o.jsonl" ] && ls "$tmp" | grep -vq shard; check "shard auto errors leave no output file" $?

# ---- a 4-task array, ids 1-4 ----
for id in 1 2 3 4; do
  SLURM_ARRAY_TASK_ID=$id "$bin" summarize "${common[@]}" -o "$tmp/out.jsonl" --shard auto --list "$tmp/list" 2>>"$tmp/serr" >/dev/null
done
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_MAX SLURM_ARRAY_TASK_STEP
python3 - "$tmp" <<'EOF'; check "4 shard files (ids 1-4 -> shards 0-3), every video in exactly one" $?
import glob, json, os, sys
t = sys.argv[1]
files = sorted(glob.glob(t + "/out.shard-*-of-4.jsonl"))
assert [os.path.basename(f) for f in files] == [f"out.shard-{i}-of-4.jsonl" for i in range(4)], files
vids = [json.loads(l)["video"] for f in files for l in open(f)]
want = [l.strip() for l in open(t + "/list")]
assert sorted(vids) == sorted(want), (vids, want)
assert [json.loads(l)["video"] for l in open(files[1])] == [want[1], want[5]]  # video k -> shard k mod 4
EOF
s=("$tmp"/out.shard-*)
"$bin" summarize --merge "$tmp/all.jsonl" --list "$tmp/list" "${s[3]}" "${s[1]}" "${s[0]}" "${s[2]}" 2>"$tmp/merr"
check "merge: exit 0" $?
python3 - "$tmp/all.jsonl" "$tmp/list" <<'EOF'; check "merge: each listed video once, in the list's order, all ok" $?
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["video"] for r in rows] == [l.strip() for l in open(sys.argv[2])], rows
assert all(r["status"] == "ok" and r["summary"] for r in rows)
EOF
grep -q "merged 6 videos (6 ok, 0 failed) from 4 files (0 duplicates" "$tmp/merr"; check "merge: the report line" $?
(cat "$tmp/list"; head -n 2 "$tmp/list") >"$tmp/list2"
"$bin" summarize --merge "$tmp/m1.jsonl" --list "$tmp/list2" "${s[@]}" 2>/dev/null && cmp -s "$tmp/m1.jsonl" "$tmp/all.jsonl"
check "merge: a video listed twice is written once" $?

# duplicates: a shard given twice, and a copy of one line in another file
head -n 1 "${s[0]}" >"$tmp/dup.jsonl"
"$bin" summarize --merge "$tmp/m2.jsonl" "${s[@]}" "$tmp/dup.jsonl" 2>"$tmp/merr"
[ $? = 0 ] && [ "$(wc -l <"$tmp/m2.jsonl")" = 6 ] && grep -q "1 duplicates" "$tmp/merr" && grep -q "kept once" "$tmp/merr"
check "merge: a duplicate line is kept once and reported" $?
# an error line in one file, the ok line of the same video in another: ok wins
python3 - "${s[0]}" "$tmp/err.jsonl" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
open(sys.argv[2], "w").write(json.dumps({"video": r["video"], "status": "error", "error": "x: broken"}) + "\n")
EOF
"$bin" summarize --merge "$tmp/m3.jsonl" --list "$tmp/list" "$tmp/err.jsonl" "${s[@]}" 2>"$tmp/merr"
[ $? = 0 ] && grep -q "1 error lines replaced" "$tmp/merr" && ! grep -q '"error"' "$tmp/m3.jsonl"
check "merge: an ok line beats an error line of the same video" $?
# within one file the last line counts (a resumed run with --retry-errors appends the ok line)
cat "$tmp/err.jsonl" "${s[0]}" >"$tmp/resumed.jsonl"
"$bin" summarize --merge "$tmp/m4.jsonl" "$tmp/resumed.jsonl" 2>/dev/null && [ "$(wc -l <"$tmp/m4.jsonl")" = 2 ] && ! grep -q '"error"' "$tmp/m4.jsonl"
check "merge: within a file the later line of a video counts" $?

# ---- refused merges: one error line, nothing written ----
python3 - "${s[0]}" "$tmp/conflict.jsonl" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).readline()); r["summary"] = "something else entirely"
open(sys.argv[2], "w").write(json.dumps(r) + "\n")
EOF
one_error "merge: two different summaries" "v1.mp4: two different summaries, .*out.shard-0-of-4.jsonl:1 and .*conflict.jsonl:1; nothing written" -- \
  summarize --merge "$tmp/bad.jsonl" "${s[@]}" "$tmp/conflict.jsonl"
one_error "merge: a listed video missing" "list: 2 listed videos have no line in the shard files \(first: .*v2.mp4\)" -- \
  summarize --merge "$tmp/bad.jsonl" --list "$tmp/list" "${s[0]}" "${s[2]}" "${s[3]}"
head -n 3 "$tmp/list" >"$tmp/short"
one_error "merge: a video not in the list" "out.shard-3-of-4.jsonl:1: .*v4.mp4 is not in .*short" -- \
  summarize --merge "$tmp/bad.jsonl" --list "$tmp/short" "${s[@]}"
head -c 30 "${s[1]}" >"$tmp/torn.jsonl"
one_error "merge: a torn last line" "torn.jsonl: the last line is incomplete" -- summarize --merge "$tmp/bad.jsonl" "${s[0]}" "$tmp/torn.jsonl"
printf '{"video": "a.mp4", "status": "ok"}\n[1, 2]\n' >"$tmp/foreign.jsonl"
one_error "merge: a foreign line" "foreign.jsonl:2: not a duovid summary line" -- summarize --merge "$tmp/bad.jsonl" "$tmp/foreign.jsonl"
one_error "merge: a missing shard file" "nope.jsonl: cannot open" -- summarize --merge "$tmp/bad.jsonl" "${s[0]}" "$tmp/nope.jsonl"
one_error "merge: no shard files" "needs the shard files" -- summarize --merge "$tmp/bad.jsonl"
one_error "merge: unwritable output" "nodir/m.jsonl" -- summarize --merge "$tmp/nodir/m.jsonl" "${s[0]}"
one_error "merge: unknown option" "unknown option '--bogus'" -- summarize --merge "$tmp/bad.jsonl" --bogus "${s[0]}"
[ ! -e "$tmp/bad.jsonl" ] && ! ls -a "$tmp" | grep -q '\.tmp\.'; check "refused merges leave no output and no temporary" $?
"$bin" summarize --help | grep -q -- "--merge OUT.jsonl" && "$bin" summarize --help | grep -q -- "--shard auto"
check "summarize --help shows --merge and --shard auto" $?

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
