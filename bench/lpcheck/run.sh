#!/bin/sh
# lpbound and plan against the LP relaxation solved by glpsol, on small synthetic cases
# (docs/BOUNDS.md).  Needs python3 with numpy, and glpsol (Debian: python3-numpy glpk-utils).
# usage: sh bench/lpcheck/run.sh [build dir]
B=${1:-build}
PY=${PYTHON:-python3}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
here=$(dirname "$0")
for cfg in "40 12 0.6 2 0 20" "60 15 0.6 3 0 25" "80 20 0.4 4 0 30" "80 20 0.8 5 0 20" \
           "60 15 0.6 6 4000000 25" "100 25 0.6 7 0 40" "80 20 0.7 8 1000000 20" \
           "120 20 0.6 9 0 30"; do
    set -- $cfg
    P=$1 N=$2 sp=$3 seed=$4 w=$5 S=$6
    cap=$((w + S * 4096))  # llama-3.1-8b at batch 1: 4096 bytes a token
    "$B/kvplace" trace gen -q --set prompt=$P --set steps=$N --set layers=1 --set seed=$seed \
        -o "$D/t.npy" || exit 1
    lp=$($PY "$here/lp.py" "$D/t.npy" $S 4096 $w 4.9e12 5e11 9e11 $sp) || exit 1
    "$B/kvplace" run -q --trace "$D/t.npy" --set layers=1 --set sparsity=$sp \
        --set weight_bytes=$w --set hbm_capacity=$cap \
        --policy bound,lpbound,plan,lookahead:W=4:R=0.5 --json "$D/r.json" >/dev/null || exit 1
    $PY - "$D/r.json" "$lp" "$cfg" <<'P'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
r = [x["total_time_s"] for x in res]
lp = float(sys.argv[2])
print("P N sp seed w S = %-24s bound/LP %.4f lpbound/LP %.5f (%d iterations) plan/LP %.4f "
      "lookahead:W=4:R=0.5/LP %.4f"
      % (sys.argv[3], r[0] / lp, r[1] / lp, res[1]["dual_iterations"], r[2] / lp, r[3] / lp))
P
done
