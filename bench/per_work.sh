#!/bin/sh
# A policy's time on distinct sequences against its work (docs/PERF.md §53): the time of a
# policy's own simulation (its `kvplace run` less the run of its references alone: `static`,
# which brings `static` and `unlimited`) on one stream at batch 4 and 4x the layers, at four
# HBM sizes (reserve 0, 3 GB, 6 GB; hbm_capacity 28 GB: the same reads, fewer or more
# moves), fitted as a x reads + b x moves (least squares, through 0); then the same on 8
# distinct sequences (batch 1, the study's layers), its time set against a x reads + b x
# moves of its own counts.  Reads and moves are in blocks: KV bytes read (promoted and
# demoted) over the bytes of a block.  Each time is the least of RUNS runs (user + sys).
#
#   sh bench/per_work.sh                              reactive, 128 steps
#   BENCH_POLICY=page BENCH_RUNS=5 sh bench/per_work.sh
#
# Knobs: BENCH_POLICY (reactive), BENCH_STEPS (128), BENCH_RUNS (3), KVPLACE (build/kvplace).
set -eu
KVP=${KVPLACE:-build/kvplace}
POLICY=${BENCH_POLICY:-reactive}
STEPS=${BENCH_STEPS:-128}
RUNS=${BENCH_RUNS:-3}
[ -x "$KVP" ] || { echo "bench/per_work.sh: $KVP not built (make)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/per_work.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
base="run -q --threads 1 --hw gh200-paper --model llama-3.1-8b --set prompt=31299
      --set steps=$STEPS --set sparsity=0.6 --set variation=actual"
cpu() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ print $1 + $2 }'; }
least() { # least CPU seconds of RUNS runs of kvplace ARGS
    best=""
    i=0
    while [ $i -lt "$RUNS" ]; do
        t=$(cpu "$KVP" "$@")
        best=$(printf '%s\n%s\n' "$t" "$best" | awk 'NF' | sort -g | head -n 1)
        i=$((i + 1))
    done
    echo "$best"
}
point() { # NAME ARGS...: its own time, and its counts in $out/NAME.json
    name=$1
    shift
    tp=$(least $base "$@" --policy "$POLICY" --json "$out/$name.json")
    tr=$(least $base "$@" --policy static)
    echo "$name $tp $tr" >>"$out/times"
}
one="--set batch=4 --set layers=128"
point one_r0 $one
point one_r3 $one --set reserve=3GB
point one_r6 $one --set reserve=6GB
point one_h28 $one --set hbm_capacity=28GB
point seq8 --set batch=1 --set sequences=8
/usr/bin/python3 - "$out" "$POLICY" <<'PY'
import json, sys
d, policy = sys.argv[1], sys.argv[2]
rows = {}
for line in open(d + "/times"):
    name, tp, tr = line.split()
    r = json.load(open("%s/%s.json" % (d, name)))
    res = [x for x in r["results"] if x["policy"] == policy][0]
    blk = r["scenario"]["tok_bytes"] * res["block_tokens"]
    reads = (res["kv_read_hbm_bytes"] + res["kv_read_dram_bytes"]) / r["scenario"]["tok_bytes"]
    moves = (res["promoted_bytes"] + res["demoted_bytes"]) / blk
    rows[name] = (reads, moves, float(tp) - float(tr))
    print("%-8s reads %7.1f M  moves %6.1f M  own %6.2f s" % (name, reads / 1e6, moves / 1e6,
                                                             float(tp) - float(tr)))
fit = [v for k, v in rows.items() if k != "seq8"]
sxx = sum(r * r for r, m, t in fit); sxy = sum(r * m for r, m, t in fit)
syy = sum(m * m for r, m, t in fit)
sxt = sum(r * t for r, m, t in fit); syt = sum(m * t for r, m, t in fit)
det = sxx * syy - sxy * sxy
a = (sxt * syy - syt * sxy) / det
b = (sxx * syt - sxy * sxt) / det
r, m, t = rows["seq8"]
pred = a * r + b * m
one = rows["one_r0"]
print("one stream: %.2f ns a read, %.2f ns a move" % (a * 1e9, b * 1e9))
print("8 sequences: %.2f s against %.2f s at one stream's costs: %.2fx per unit of work"
      % (t, pred, t / pred))
print("8 sequences per read: %.2fx one stream's (reserve 0); moves per read %.2fx its"
      % ((t / r) / (one[2] / one[0]), (m / r) / (one[1] / one[0])))
PY
