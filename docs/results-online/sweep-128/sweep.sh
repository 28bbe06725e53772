#!/bin/sh
# Run in this directory with kvplace on PATH as ./kvplace; 54 small runs (128 steps each, a few seconds of CPU apiece): online policies vs static.
for w in counted not_counted; do
 extra=""; [ $w = not_counted ] && extra="--set weight_bytes=0 --set reserve=16060522496"
 for v in low actual high; do for s in 0.4 0.5 0.6 0.8 0.85 0.9 topk512 topk2048 topk8192; do
  case $s in topk*) b="--set topk=${s#topk}";; *) b="--set sparsity=$s";; esac
  ./kvplace run --set prompt=31299 --set steps=128 --set batch=4 $b --set variation=$v $extra \
    --policy static,reactive,hot,balanced,payback,steer,whittle,bound --threads 1 --csv r_${w}_${v}_${s}.csv -q > /dev/null
 done; done
done
echo done
