#!/usr/bin/env bash
# slurm_summarize.sh: scripts/slurm/summarize.sbatch on a real single-node Slurm. Starts a private
# munged and slurmctld + slurmd on localhost (Debian slurm-wlm and munge; config, state, sockets and
# logs in a temporary folder, free ports), submits a 4-task array over 6 small videos with the tiny
# model and then the merge as a job depending on it (the README's recipe), and checks that each
# video was summarized exactly once: in one shard file, by the task k mod 4, and once in the merged
# file. The daemons are stopped at the end whatever happens (trap); every wait is bounded. Needs
# root (slurmd runs jobs as their user); says SKIPPED (exit 77) and why when Slurm cannot start.
#   bash tests/cli/slurm_summarize.sh build/duovid
set -u
bin=$(realpath "${1:?usage: slurm_summarize.sh path/to/duovid}")
root=$(pwd)
model=$root/assets/models/tiny-llava-next-video
clip=$root/tests/fixtures/vlm/clip.mp4
skip() { echo "SKIPPED: $*"; exit 77; }
[ -f "$model/model.safetensors" ] && [ -f "$clip" ] || skip "$model or $clip missing"
[ "$(id -u)" = 0 ] || skip "not root (slurmd must run as root to start jobs)"
for c in munged munge slurmctld slurmd sbatch sinfo scancel python3; do
  command -v $c >/dev/null || skip "$c not installed (Debian packages slurm-wlm and munge: scripts/setup.sh)"
done
tmp=$(mktemp -d /tmp/duovid-slurm.XXXXXX)
chmod 755 "$tmp" # munged wants every folder up to its socket searchable
export SLURM_CONF=$tmp/slurm.conf
stop() {
  [ -f "$tmp/slurmctld.pid" ] && scancel --quiet --name=duovid-test 2>/dev/null
  for p in slurmd slurmctld munged; do
    [ -f "$tmp/$p.pid" ] && kill "$(cat "$tmp/$p.pid")" 2>/dev/null
  done
  for _ in $(seq 50); do # up to 5 s for them to go
    alive=0
    for p in slurmd slurmctld munged; do [ -f "$tmp/$p.pid" ] && kill -0 "$(cat "$tmp/$p.pid")" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in slurmd slurmctld munged; do [ -f "$tmp/$p.pid" ] && kill -9 "$(cat "$tmp/$p.pid")" 2>/dev/null; done
  rm -rf "$tmp"
}
trap stop EXIT
fail_start() { # Slurm did not come up: show why, and skip
  for f in "$tmp"/munged.log "$tmp"/slurmctld.log "$tmp"/slurmd.log; do [ -f "$f" ] && tail -n 5 "$f" | sed "s|^|  $(basename "$f"): |"; done
  skip "$*"
}
source tests/cli/lib.sh
export DUOVID_LOG=warn

# ---- a private munge and Slurm ----
mkdir -m 700 "$tmp/munge" && mkdir "$tmp/state" "$tmp/spool" "$tmp/jobs"
head -c 1024 /dev/urandom >"$tmp/munge/key" && chmod 600 "$tmp/munge/key"
munged --force --socket="$tmp/munge.sock" --key-file="$tmp/munge/key" --log-file="$tmp/munged.log" \
  --pid-file="$tmp/munged.pid" --seed-file="$tmp/munge/seed" 2>>"$tmp/munged.log" || fail_start "munged does not start"
echo probe | munge -S "$tmp/munge.sock" | unmunge -S "$tmp/munge.sock" >/dev/null 2>&1 || fail_start "munge does not round-trip a credential"
read -r p1 p2 < <(python3 -c "
import socket; s = [socket.socket() for _ in range(2)]
[x.bind(('127.0.0.1', 0)) for x in s]; print(*[x.getsockname()[1] for x in s])")
host=$(hostname -s)
node=$(slurmd -C 2>/dev/null | head -n 1 | sed -E 's/ (UpTime|RealMemory)=[^ ]*//g; s/^NodeName=[^ ]*//')
[ -n "$node" ] || node="CPUs=$(nproc)"
cat >"$SLURM_CONF" <<EOF
ClusterName=duovidtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$p1
SlurmdPort=$p2
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=10 State=UP
EOF
slurmctld -f "$SLURM_CONF" 2>>"$tmp/slurmctld.log" || fail_start "slurmctld does not start"
slurmd -f "$SLURM_CONF" 2>>"$tmp/slurmd.log" || fail_start "slurmd does not start"
state=
for _ in $(seq 60); do # the node registers within seconds
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail_start "the Slurm node is not idle after 30 s (state '${state:-none}')"
echo "ok   Slurm is up: node $host ($node), ports $p1/$p2"

# ---- the array, then the merge as a dependent job ----
for v in v1 v2 v3 v4 v5 v6; do cp "$clip" "$tmp/jobs/$v.mp4"; done
ls "$tmp"/jobs/v*.mp4 >"$tmp/jobs/list.txt"
cd "$tmp/jobs"
mkdir out # the shard files' folder must exist (summarize checks it before it loads the model)
jid=$(DUOVID=$bin sbatch --parsable --job-name=duovid-test --array=0-3 --output="$tmp/jobs/task-%a.log" \
  "$root/scripts/slurm/summarize.sbatch" -m "$model" --frames 4 -n 6 --cache-dir cache --list list.txt -o out/sum.jsonl 2>"$tmp/err")
check "sbatch --array=0-3 summarize.sbatch: job ${jid:-none}" $?
[ -n "$jid" ] || cat "$tmp/err"
timeout 300 sbatch --wait --job-name=duovid-test --dependency=afterok:"${jid:-0}" --kill-on-invalid-dep=yes --output="$tmp/jobs/merge.log" \
  --wrap "'$bin' summarize --merge out/sum.jsonl --list list.txt out/sum.shard-*-of-4.jsonl" >/dev/null 2>"$tmp/err"
check "the merge job ran after the array (sbatch --wait exit 0)" $?
for f in task-0 task-1 task-2 task-3 merge; do
  [ -f "$f.log" ] && grep -q "duovid: " "$f.log" || { echo "     | $f.log:"; sed 's/^/     | /' "$f.log" 2>/dev/null | tail -n 5; }
done
python3 - "$tmp/jobs" <<'EOF'; check "4 tasks, each video summarized exactly once (task k mod 4), merged once each" $?
import glob, json, os, sys
d = sys.argv[1]
want = [l.strip() for l in open(d + "/list.txt")]
files = sorted(glob.glob(d + "/out/sum.shard-*-of-4.jsonl"))
assert [os.path.basename(f) for f in files] == [f"sum.shard-{i}-of-4.jsonl" for i in range(4)], files
seen = []
for i, f in enumerate(files):
    rows = [json.loads(l) for l in open(f)]
    assert all(r["status"] == "ok" for r in rows), rows
    assert [r["video"] for r in rows] == want[i::4], (f, rows)
    seen += [r["video"] for r in rows]
assert sorted(seen) == sorted(want), seen
merged = [json.loads(l)["video"] for l in open(d + "/out/sum.jsonl")]
assert merged == want, merged
for i in range(4):
    log = open(f"{d}/task-{i}.log").read()
    assert f"task {i} of 4" in log, log
EOF
grep -q "merged 6 videos (6 ok, 0 failed) from 4 files" merge.log; check "merge.log reports 6 videos from 4 files" $?
cd "$root"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
