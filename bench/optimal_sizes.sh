#!/bin/sh
# How `optimal`'s solve time grows (docs/BOUNDS.md "Exact optima"): one layer of the study's
# machine (gh200-paper, llama-3.1-8b, tok_bytes 4096), synthetic traces, for each size PxN given
# (default 40x12 60x15): weights not counted and counted (w_layer = half the prompt's KV),
# sparsity 0.6 and 0.85, slots P/4 and P/2, variation low and high (low only with weights).
# Prints: P N variation sparsity slots weight_bytes seconds time_s|ERROR.  Sizes above the
# policy's limit are refused; measure them with a build whose limit was raised.
#   sh bench/optimal_sizes.sh [PxN ...]      KVPLACE=build/kvplace TLIM=60
K=${KVPLACE:-build/kvplace}
TLIM=${TLIM:-60}
[ $# -gt 0 ] || set -- 40x12 60x15
out=$(mktemp) || exit 1
trap 'rm -f "$out"' 0
for size in "$@"; do
  P=${size%x*}; N=${size#*x}
  for w in 0 1; do for sp in 0.6 0.85; do for frac in 4 2; do for v in low high; do
    [ $w = 1 ] && [ $v = high ] && continue
    slots=$((P / frac)); wb=$((w * P * 4096 / 2)); cap=$((wb + slots * 4096))
    s=$(date +%s.%N)
    if "$K" run --set layers=1 --set prompt=$P --set steps=$N --set variation=$v \
        --set sparsity=$sp --set weight_bytes=$wb --set hbm_capacity=$cap \
        --policy optimal:tlim=$TLIM --csv "$out" -q >/dev/null 2>&1; then
      r=$(awk -F, 'NR == 2 { print $3 }' "$out")
    else
      r=ERROR
    fi
    e=$(date +%s.%N)
    printf '%s %s %s %s %s %s %.2f %s\n' $P $N $v $sp $slots $wb "$(echo "$e - $s" | bc)" "$r"
  done; done; done; done
done
