#!/bin/sh
# The sweep benchmark (docs/PERF.md §11): the 24 points of bench/sweep.ini (1/20 of the
# study's size), sequential (--jobs 1) and on every core (--jobs, default the cores), in
# turn, RUNS times; prints each pair's wall times and ratio, and the median ratio.  The
# target: parallel <= 0.6 x sequential on 2 cores.  Both write the same bytes (checked).
#   sh bench/sweep.sh            (BUILD=build, RUNS=3, JOBS=the cores)
set -eu
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
KVPLACE="$BUILD/kvplace"
SPEC=$(dirname "$0")/sweep.ini
OUT=$(mktemp -d "${TMPDIR:-/tmp}/kvp_bench_sweep.XXXXXX")
trap 'rm -rf "$OUT"' 0
jobs_opt=""
[ -n "${JOBS:-}" ] && jobs_opt="--jobs $JOBS"

now() { date +%s.%N; }
# timed DIR ARGS...: the wall seconds of one sweep into a fresh DIR.
timed() {
    d=$1; shift
    rm -rf "$d"
    t0=$(now)
    "$KVPLACE" sweep "$SPEC" --out "$d" -q "$@"
    t1=$(now)
    echo "$t0 $t1" | awk '{ printf "%.2f", $2 - $1 }'
}

echo "# kvplace sweep bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "# run  sequential_s  parallel_s  ratio"
ratios=""
i=1
while [ "$i" -le "$RUNS" ]; do
    s=$(timed "$OUT/seq" --jobs 1)
    # shellcheck disable=SC2086
    p=$(timed "$OUT/par" $jobs_opt)
    cmp -s "$OUT/seq/sweep.csv" "$OUT/par/sweep.csv" ||
        { echo "bench/sweep.sh: the parallel sweep wrote other bytes" >&2; exit 1; }
    r=$(echo "$p $s" | awk '{ printf "%.3f", $1 / $2 }')
    echo "$i  $s  $p  $r"
    ratios="$ratios $r"
    i=$((i + 1))
done
echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -n |
    awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                              printf "median ratio parallel / sequential: %.3f (target <= 0.6)\n", m }'
