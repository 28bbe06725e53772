#!/bin/sh
# The online policies' cost against reactive's (docs/PERF.md §14): for each policy, runs
# `bench POLICY` and `bench reactive` in turn, RUNS pairs, each timed by /usr/bin/time (user +
# sys seconds), and prints the median of each and the median of the paired ratios.  Both
# processes generate the same synthetic trace, so the ratio is of whole runs per step;
# `bench gen` (the trace alone) is timed too, to tell the policy's own share.  It takes minutes.
#
#   sh bench/online.sh                                       512 steps, 5 pairs each
#   BENCH_STEPS=10239 BENCH_RUNS=3 sh bench/online.sh        full size
#
# Knobs: BENCH_PROMPT (31299), BENCH_STEPS (512), BENCH_THREADS (1: one core each, so that the
# two cores of the machine do not share a run), BENCH_RUNS (5), BENCH_POLICIES (hot balanced
# payback steer whittle).
set -eu
BUILD=${BUILD:-build}
BENCH="$BUILD/bench/bench"
PROMPT=${BENCH_PROMPT:-31299}
STEPS=${BENCH_STEPS:-512}
THREADS=${BENCH_THREADS:-1}
RUNS=${BENCH_RUNS:-5}
POLICIES=${BENCH_POLICIES:-"hot balanced payback steer whittle"}
[ -x "$BENCH" ] || { echo "bench/online.sh: $BENCH not built (make $BENCH)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/online.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
args="--prompt $PROMPT --steps $STEPS --threads $THREADS"
cpu() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ print $1 + $2 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# pair A: RUNS pairs of `bench A` and `bench reactive`, in turn.
pair() {
    a=""; b=""; r=""
    i=0
    while [ $i -lt "$RUNS" ]; do
        ta=$(cpu "$BENCH" "$1" $args); tb=$(cpu "$BENCH" reactive $args)
        a="$a$ta
"; b="$b$tb
"; r="$r$(echo "$ta $tb" | awk '{ printf "%.4f", $1 / $2 }')
"
        i=$((i + 1))
    done
    printf '%-9s cpu s median %s, reactive %s, paired ratio median %s\n' "$1" \
        "$(printf '%s' "$a" | median)" "$(printf '%s' "$b" | median)" "$(printf '%s' "$r" | median)"
}
echo "# bench/online.sh: prompt $PROMPT, steps $STEPS, threads $THREADS, $RUNS pairs"
pair gen
for p in $POLICIES; do
    pair "$p"
done
