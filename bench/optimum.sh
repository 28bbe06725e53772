#!/bin/sh
# lpbound + plan at a tenth of the study's size (docs/BOUNDS.md, "What it finds"): the
# scenario of the study with prompt, steps and the HBM's KV budget cut tenfold, so that the
# slots per token of context are the study's.  Prints each run's table, and its wall time,
# CPU time and peak memory.  Full size: FULL=1 (prompt 31,299, 10,239 steps, the study's HBM).
# Full length on four layers: FOUR=1 (the study's prompt, steps and 15,143 slots a layer;
# weights not counted only, since counting them would change the weights per layer).
# usage: sh bench/optimum.sh [build dir]
B=${1:-build}
ACC="counted not_counted"
if [ "${FULL:-0}" = 1 ]; then
    SIZE="--set prompt=31299 --set steps=10239"
elif [ "${FOUR:-0}" = 1 ]; then
    SIZE="--set prompt=31299 --set steps=10239 --set layers=4 --set hbm_capacity=17052942336"
    ACC="not_counted"
else
    SIZE="--set prompt=3130 --set steps=1024 --set hbm_capacity=16854122496"
fi
for w in $ACC; do
    X=""
    [ $w = not_counted ] && X="--set reserve=16060522496 --set weight_bytes=0"
    echo "== weights $w"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e s wall, %U s user, %M KB peak" "$B/kvplace" run -q --hw gh200-paper \
        --model llama-3.1-8b $SIZE --set batch=4 --set sparsity=0.6 $X --policy bound,plan
done
