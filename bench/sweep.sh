#!/bin/sh
# The sweep benchmark (docs/PERF.md §11): the 24 points of bench/sweep.ini (1/20 of the
# study's size), sequential (--jobs 1) and parallel (--jobs JOBS, default 2), in turn, after
# one warm-up of each, RUNS times.  Prints each run's wall and CPU seconds (user + sys of the
# sweep and its workers), the medians of each arm, and the ratios of the medians: wall (the
# target: parallel <= 0.6 x sequential on 2 cores) and CPU (about 1: the parallel sweep does
# no extra work).  Both arms write the same bytes (checked).
#   sh bench/sweep.sh            (BUILD=build, RUNS=5, JOBS=2)
set -eu
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
JOBS=${JOBS:-2}
KVPLACE="$BUILD/kvplace"
SPEC=${SPEC:-$(dirname "$0")/sweep.ini}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/kvp_bench_sweep.XXXXXX")
trap 'rm -rf "$OUT"' 0

now() { date +%s.%N; }
# timed DIR JOBS: "wall cpu" seconds of one sweep into a fresh DIR; cpu is the user + sys time
# of the sweep and its workers (the shell's `times`: its children's, in a subshell of its own).
timed() {
    rm -rf "$1"
    t0=$(now)
    cpu=$( ("$KVPLACE" sweep "$SPEC" --out "$1" -q --jobs "$2" && times) | tail -n 1 |
        awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]);
                                                  n += a[1] * 60 + a[2] } printf "%.2f", n }')
    t1=$(now)
    echo "$t0 $t1 $cpu" | awk '{ printf "%.2f %s", $2 - $1, $3 }'
}
median() {
    sort -n | awk '{ v[NR] = $1 }
                   END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m }'
}

echo "# kvplace sweep bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load" \
     "$(cut -d' ' -f1 /proc/loadavg); --jobs 1 against --jobs $JOBS, $RUNS runs each"
timed "$OUT/seq" 1 >/dev/null
timed "$OUT/par" "$JOBS" >/dev/null
echo "# run  seq_wall_s  seq_cpu_s  par_wall_s  par_cpu_s"
: >"$OUT/runs"
i=1
while [ "$i" -le "$RUNS" ]; do
    s=$(timed "$OUT/seq" 1)
    p=$(timed "$OUT/par" "$JOBS")
    cmp -s "$OUT/seq/sweep.csv" "$OUT/par/sweep.csv" ||
        { echo "bench/sweep.sh: the parallel sweep wrote other bytes" >&2; exit 1; }
    echo "$i  $s  $p" | tee -a "$OUT/runs"
    i=$((i + 1))
done
sw=$(awk '{ print $2 }' "$OUT/runs" | median); sc=$(awk '{ print $3 }' "$OUT/runs" | median)
pw=$(awk '{ print $4 }' "$OUT/runs" | median); pc=$(awk '{ print $5 }' "$OUT/runs" | median)
echo "median --jobs 1: wall $sw s, cpu $sc s; --jobs $JOBS: wall $pw s, cpu $pc s"
echo "$pw $sw $pc $sc" | awk '{ printf "ratio of medians parallel / sequential: wall %.3f (target <= 0.6), cpu %.3f\n", $1 / $2, $3 / $4 }'
