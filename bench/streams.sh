#!/bin/sh
# Streams against one stream (docs/PERF.md "Streams: the issue's target"): for each policy,
# `kvplace run` on 4 distinct synthetic sequences of 8 KV-head streams each (`--heads --set
# sequences=4 --set batch=4`, 32 streams) and on the one stream of the same scenario at
# `batch=16` (the same KV bytes), in turn, RUNS pairs, each timed by /usr/bin/time (user + sys
# seconds); prints the median of each and of the paired ratios streams / one stream.  The one
# stream runs ONEX times the layers and its time is divided by ONEX (a run of 4 layers of one
# stream takes some 0.03 s, too little to time).  The streams read some 37.5x the positions
# of the one stream (8 heads, 4 prompts summing to 4.7x the scenario's).  KVPLACE_B=B times
# build B on the same streams instead of the one stream (an A/B of two builds).
#
#   sh bench/streams.sh                                     prompt 8000, 256 steps, 4 layers
#   BENCH_STEPS=1024 BENCH_LAYERS=32 BENCH_RUNS=3 sh bench/streams.sh
#
# Knobs: BENCH_PROMPT (8000), BENCH_STEPS (256), BENCH_LAYERS (4), BENCH_ONEX (8), BENCH_THREADS (1),
# BENCH_RUNS (3), BENCH_POLICIES ("static unlimited bound reactive page lookahead
# unlimited,static,reactive,page,lookahead,bound").
set -eu
KVP=${KVPLACE:-build/kvplace}
KVPB=${KVPLACE_B:-}
PROMPT=${BENCH_PROMPT:-8000}
STEPS=${BENCH_STEPS:-256}
LAYERS=${BENCH_LAYERS:-4}
ONEX=${BENCH_ONEX:-8}
THREADS=${BENCH_THREADS:-1}
RUNS=${BENCH_RUNS:-3}
POLICIES=${BENCH_POLICIES:-"static unlimited bound reactive page lookahead unlimited,static,reactive,page,lookahead,bound"}
[ -x "$KVP" ] || { echo "bench/streams.sh: $KVP not built (make)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/streams.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
args="run -q --set prompt=$PROMPT --set steps=$STEPS --set layers=$LAYERS --threads $THREADS"
streams="--heads --set sequences=4 --set batch=4"
one="--set batch=16 --set layers=$((LAYERS * ONEX))"
cpu() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ print $1 + $2 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for p in $POLICIES; do
    a=""; b=""; r=""
    i=0
    while [ $i -lt "$RUNS" ]; do
        ta=$(cpu "$KVP" $args $streams --policy "$p")
        if [ -n "$KVPB" ]; then tb=$(cpu "$KVPB" $args $streams --policy "$p")
        else tb=$(cpu "$KVP" $args $one --policy "$p" | awk -v x="$ONEX" '{ print $1 / x }'); fi
        a="$a$ta
"; b="$b$tb
"; r="$r$(echo "$ta $tb" | awk '{ printf "%.4f", ($2 > 0 ? $1 / $2 : 0) }')
"
        i=$((i + 1))
    done
    printf '%-40s streams cpu s %s, %s %s, ratio %s\n' "$p" "$(printf '%s' "$a" | median)" \
        "${KVPB:+B}${KVPB:-one stream}" "$(printf '%s' "$b" | median)" "$(printf '%s' "$r" | median)"
done
