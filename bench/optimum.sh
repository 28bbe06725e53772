#!/bin/sh
# lpbound + plan at a tenth of the study's size (docs/BOUNDS.md, "What it finds"): the
# scenario of the study with prompt, steps and the HBM's KV budget cut tenfold, so that the
# slots per token of context are the study's.  Prints each run's table, and its wall time,
# CPU time and peak memory.  Full size: FULL=1 (prompt 31,299, 10,239 steps, the study's HBM).
# Full length on four layers: FOUR=1 (the study's prompt and steps, its 15,143 slots a layer
# and, weights counted, its weights per layer: the study's problem for four of its layers).
# usage: sh bench/optimum.sh [build dir]
B=${1:-build}
for w in counted not_counted; do
    if [ "${FULL:-0}" = 1 ]; then
        SIZE="--set prompt=31299 --set steps=10239"
    elif [ "${FOUR:-0}" = 1 ]; then
        SIZE="--set prompt=31299 --set steps=10239 --set layers=4"
        if [ $w = counted ]; then
            SIZE="$SIZE --set weight_bytes=2007565312 --set hbm_capacity=3000009728"
        else
            SIZE="$SIZE --set hbm_capacity=17052942336"
        fi
    else
        SIZE="--set prompt=3130 --set steps=1024 --set hbm_capacity=16854122496"
    fi
    X=""
    [ $w = not_counted ] && X="--set reserve=16060522496 --set weight_bytes=0"
    echo "== weights $w"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e s wall, %U s user, %M KB peak" "$B/kvplace" run -q --hw gh200-paper \
        --model llama-3.1-8b $SIZE --set batch=4 --set sparsity=0.6 $X --policy bound,plan
done
