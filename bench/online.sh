#!/bin/sh
# The online policies' cost against reactive's (docs/PERF.md §14): for each policy, farm-bench
# runs `bench POLICY` and `bench reactive` in turn, pairs them and prints the medians and the
# median of the paired ratios.  Both processes generate the same synthetic trace, so the
# ratio is of whole runs per step; `bench gen` (the trace alone) is timed too, to tell the
# policy's own share.  Run it under the heavy lock: it takes minutes.
#
#   flock /tmp/kvp-heavy.lock sh bench/online.sh            512 steps, 5 pairs each
#   BENCH_STEPS=10239 BENCH_RUNS=3 sh bench/online.sh        full size
#
# Knobs: BENCH_PROMPT (31299), BENCH_STEPS (512), BENCH_THREADS (1: one core each, so that the
# two cores of the machine do not share a run), BENCH_RUNS (5), BENCH_POLICIES (hot balanced
# payback steer), BENCH_TIMEOUT (3600).
set -eu
BUILD=${BUILD:-build}
BENCH="$BUILD/bench/bench"
PROMPT=${BENCH_PROMPT:-31299}
STEPS=${BENCH_STEPS:-512}
THREADS=${BENCH_THREADS:-1}
RUNS=${BENCH_RUNS:-5}
POLICIES=${BENCH_POLICIES:-"hot balanced payback steer"}
TIMEOUT=${BENCH_TIMEOUT:-3600}
[ -x "$BENCH" ] || { echo "bench/online.sh: $BENCH not built (make $BENCH)" >&2; exit 1; }
command -v farm-bench >/dev/null || { echo "bench/online.sh: farm-bench not found" >&2; exit 1; }
args="--prompt $PROMPT --steps $STEPS --threads $THREADS"
echo "# bench/online.sh: prompt $PROMPT, steps $STEPS, threads $THREADS, $RUNS runs"
echo "## gen vs reactive"
farm-bench -n "$RUNS" --timeout "$TIMEOUT" --vs "$BENCH reactive $args" -- $BENCH gen $args
for p in $POLICIES; do
    echo "## $p vs reactive"
    farm-bench -n "$RUNS" --timeout "$TIMEOUT" --vs "$BENCH reactive $args" -- $BENCH "$p" $args
done
