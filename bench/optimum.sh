#!/bin/sh
# lpbound + plan at a tenth of the study's size (docs/BOUNDS.md, "What it finds"): the
# scenario of the study with prompt, steps and the HBM's KV budget cut tenfold, so that the
# slots per token of context are the study's.  Prints each run's table, and its wall time,
# CPU time and peak memory.  Full size: FULL=1 (prompt 31,299, 10,239 steps, the study's HBM).
# usage: sh bench/optimum.sh [build dir]
B=${1:-build}
if [ "${FULL:-0}" = 1 ]; then
    SIZE="--set prompt=31299 --set steps=10239"
else
    SIZE="--set prompt=3130 --set steps=1024 --set hbm_capacity=16854122496"
fi
for w in counted not_counted; do
    X=""
    [ $w = not_counted ] && X="--set reserve=16060522496 --set weight_bytes=0"
    echo "== weights $w"
    /usr/bin/time -f "%e s wall, %U s user, %M KB peak" "$B/kvplace" run -q --hw gh200-paper \
        --model llama-3.1-8b $SIZE --set batch=4 --set sparsity=0.6 $X --policy bound,plan
done
