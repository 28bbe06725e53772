#!/bin/sh
# A real Slurm, one node, started here: munged, slurmctld -D and slurmd -D -N localhost, all
# in a scratch directory, stopped by their PIDs at the end (even on failure).  A small sweep
# goes in as a job array through the shipped contrib/slurm/sweep.sbatch; the merged results
# must equal a local `kvplace sweep` of the same spec byte for byte.  Then a study in two
# shares through the same script: its report must equal a local study's byte for byte.
# Needs root and Debian's slurmctld slurmd slurm-client munge; without them it says so and
# exits 77 (tests/run.sh reports it as skipped).  Ends with "N passed, N failed".
# Run by tests/run.sh with KVPLACE=path/to/kvplace.
NAME=slurm
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SKIP=77

missing=""
for c in munged munge unmunge slurmctld slurmd sbatch squeue sinfo setpriv; do
    command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
if [ -n "$missing" ]; then
    echo "slurm: skipped: not installed:$missing (apt-get install slurmctld slurmd slurm-client munge)"
    exit $SKIP
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm: skipped: the daemons need root (run as root)"
    exit $SKIP
fi
id munge >/dev/null 2>&1 && id slurm >/dev/null 2>&1 || {
    echo "slurm: skipped: no munge or slurm user (the packages' install scripts make them)"
    exit $SKIP
}

. "$ROOT/tests/harness.sh"
S=$T/cluster
PIDS=""
stop_all() {
    # By PID, newest first; never by name (other Slurm or munge processes may exist).
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null
    done
    PIDS=""
}
show_logs() {
    for f in "$S"/log/*.log "$S"/job-*.out; do
        [ -s "$f" ] || continue
        echo "--- $f"; tail -n 15 "$f"
    done
}
trap 'stop_all; chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' 0
trap 'exit 1' INT TERM
# Fail: say why, show the daemons' logs, stop them (the EXIT trap), count the failure.
die() {
    bad "$*"
    show_logs
    echo "$pass passed, $fail failed"
    exit 1
}

# --- the cluster ----------------------------------------------------------------------
mkdir -p "$S/munge" "$S/state" "$S/spool" "$S/run" "$S/log" "$S/out"
chmod 755 "$T" "$S"
chown munge:munge "$S/munge"
chmod 755 "$S/munge"
chown slurm:slurm "$S/state" "$S/log"
# Ports of our own, away from a Slurm that may run here already.
base=$((20000 + $$ % 20000))
cpus=$(nproc)
mem=$(awk '/^MemTotal:/ { print int($2 / 1024 / 2) }' /proc/meminfo)
sed -e "s|@S@|$S|g" -e "s|@CTLD_PORT@|$base|" -e "s|@SLURMD_PORT@|$((base + 1))|" \
    -e "s|@CPUS@|$cpus|" -e "s|@MEM_MB@|$mem|" "$HERE/slurm.conf.in" >"$S/slurm.conf"
export SLURM_CONF="$S/slurm.conf"
started=$(date +%s)

setpriv --reuid=munge --regid=munge --clear-groups \
    munged -F --socket="$S/munge/munge.socket" --pid-file="$S/munge/munged.pid" \
    --log-file="$S/munge/munged.log" --seed-file="$S/munge/munged.seed" \
    >"$S/log/munged.out" 2>&1 &
PIDS="$! $PIDS"
i=0
until munge -n -S "$S/munge/munge.socket" 2>/dev/null | unmunge -S "$S/munge/munge.socket" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -gt 50 ] && { cat "$S/log/munged.out" "$S/munge/munged.log" 2>/dev/null; die "munged did not start"; }
    sleep 0.1
done
ok

slurmctld -D -f "$S/slurm.conf" >"$S/log/slurmctld.out" 2>&1 &
PIDS="$! $PIDS"
slurmd -D -N localhost -f "$S/slurm.conf" >"$S/log/slurmd.out" 2>&1 &
PIDS="$! $PIDS"
i=0
until [ "$(sinfo -h -N -o %t 2>/dev/null)" = "idle" ]; do
    i=$((i + 1))
    [ "$i" -gt 150 ] && die "the node is not idle after 15 s: $(sinfo -h -N -o %t 2>&1)"
    sleep 0.1
done
ok

# --- a sweep as a job array -------------------------------------------------------------
# 7 tiny points (a list crossed with a range) over 3 shares: shares of 3, 2 and 2 points.
cat >"$T/spec.ini" <<'EOF'
[sweep]
policies = static, reactive, lookahead:W=4:R=0.5, bound

[base]
layers = 2
prompt = 300
steps = 30
hbm_capacity = 13276800
weight_bytes = 10MB

[vary]
sparsity = range 0.5 0.8 0.05
batch = 4
EOF
job=$(sbatch --parsable --array=0-2 --chdir="$T" --output="$S/job-%A_%a.out" \
      --export=ALL,KVPLACE="$KVPLACE" "$ROOT/contrib/slurm/sweep.sbatch" "$T/spec.ini" \
      "$S/out" 2>"$T/err")
[ -n "$job" ] && ok || die "sbatch failed: $(cat "$T/err")"
# wait_job JOB WHAT: until the array has left the queue (60 s at most).
wait_job() {
    i=0
    while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
        i=$((i + 1))
        [ "$i" -gt 600 ] && die "$2 $1 has not ended after 60 s"
        sleep 0.1
    done
}
wait_job "$job" "the job array"
ok
for k in 0 1 2; do
    f="$S/job-${job}_$k.out"
    grep -q -- "--shard $k/3" "$f" 2>/dev/null && ok || die "task $k: its output does not say shard $k/3"
    grep -q "shard $k/3 done" "$f" && ok || die "task $k did not finish its shard"
done
# Every task ran on the node's CPUs as Slurm gave them (no --jobs: SLURM_CPUS_PER_TASK).
grep -q "; 2 jobs" "$S/job-${job}_0.out" && ok || bad "task 0 did not run 2 jobs from SLURM_CPUS_PER_TASK"

kv sweep merge "$S/out"
[ "$rc" -eq 0 ] && ok || die "merge after the array: exit $rc"
kv sweep "$T/spec.ini" --out "$T/local" -q
[ "$rc" -eq 0 ] && ok || die "the local sweep: exit $rc"
[ "$(($(lines "$T/local/sweep.csv") - 1))" -eq 28 ] && ok || bad "the local sweep has $(($(lines "$T/local/sweep.csv") - 1)) rows, wanted 7 points x 4 policies"
cmp "$S/out/sweep.csv" "$T/local/sweep.csv" && ok || bad "sweep.csv from Slurm differs from the local sweep's"
cmp "$S/out/sweep.json" "$T/local/sweep.json" && ok || bad "sweep.json from Slurm differs from the local sweep's"

# --- a study as a job array (the same script): two shares, then the report ----------------
STUDY_OPTS="--set layers=2 --set prompt=300 --set steps=30 --set hbm_capacity=13276800
            --set weight_bytes=10MB --sa-budget 3 -q"
# shellcheck disable=SC2086
job=$(sbatch --parsable --array=0-1 --chdir="$T" --output="$S/study-%A_%a.out" \
      --export=ALL,KVPLACE="$KVPLACE" "$ROOT/contrib/slurm/sweep.sbatch" study sparsity \
      "$S/study" $STUDY_OPTS 2>"$T/err")
[ -n "$job" ] && ok || die "sbatch of the study failed: $(cat "$T/err")"
wait_job "$job" "the study's job array"
for k in 0 1; do
    grep -q -- "study sparsity --out $S/study --shard $k/2" "$S/study-${job}_$k.out" 2>/dev/null &&
        ok || bad "study task $k: its output does not say shard $k/2"
done
[ ! -e "$S/study/sparsity.csv" ] && ok || bad "a share of the study wrote its report"
# shellcheck disable=SC2086
kv study sparsity $STUDY_OPTS --out "$S/study"
[ "$rc" -eq 0 ] && ok || die "the study's report after the array: exit $rc: $(cat "$T/err")"
# shellcheck disable=SC2086
kv study sparsity $STUDY_OPTS --out "$T/local-study"
for e in csv json md gp; do
    cmp "$S/study/sparsity.$e" "$T/local-study/sparsity.$e" && ok ||
        bad "sparsity.$e from the Slurm shares differs from the local study's"
done

stop_all
echo "slurm: cluster up, arrays of 3 (a sweep) and 2 (a study) run, merged and compared in" \
     "$(($(date +%s) - started)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
