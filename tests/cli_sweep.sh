#!/bin/sh
# CLI tests of `kvplace sweep` and `kvplace sweep merge`: the points a spec expands to (lists,
# ranges, crossed and zipped keys), each point's rows equal to `kvplace run` of the same
# scenario, the same merged bytes for any --jobs, --threads and --shard K/N (a property over
# N = 1..7, shards run in any order), resume after lost points and after SIGTERM, and every
# bad input refused with one line and nothing merged.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_sweep
. "$(dirname "$0")/harness.sh"

# Tiny points (as in cli_study.sh): 2 layers, prompt 300, 30 steps; HBM 13276800 - weights
# 10 MB = a KV budget of 3276800 bytes, a third of the prompt at batch 4, so static spills.
tiny_base() {
    cat <<EOF
[base]
hw = gh200-paper
model = llama-3.1-8b
layers = 2
prompt = 300
steps = 30
hbm_capacity = 13276800
weight_bytes = 10MB
EOF
}

# The main spec: 3 sparsities (a range) x 2 batches (a list) x 2 zipped (seed, variation)
# = 12 points, 4 policies each.
{
    echo "[sweep]"
    echo "policies = static,reactive,lookahead:W=4:R=0.5,bound"
    tiny_base
    echo "[vary]"
    echo "sparsity = range 0.4 0.8 0.2"
    echo "batch = 2, 4"
    echo "[zip]"
    echo "seed = 1, 2"
    echo "variation = low, high"
} >"$T/spec.ini"

column() {
    awk -F, -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
                          { print (c ? $c : "MISSING") }' "$2"
}
rows() { echo $(($(lines "$1") - 1)); }

# --- a whole sweep -------------------------------------------------------------------
kv sweep "$T/spec.ini" --out "$T/a" --jobs 2 -q
[ "$rc" -eq 0 ] && ok || bad "sweep: exit $rc"
[ ! -s "$T/out" ] && ok || bad "sweep wrote to stdout"
[ ! -s "$T/err" ] && ok || bad "sweep -q wrote to stderr"
for f in sweep.csv sweep.json sweep.points spec.ini; do
    [ -s "$T/a/$f" ] && ok || bad "sweep: no $f"
done
[ "$(ls "$T/a/points" | wc -l)" -eq 12 ] && ok || bad "sweep: $(ls "$T/a/points" | wc -l) point files, wanted 12"
[ "$(rows "$T/a/sweep.csv")" -eq 48 ] && ok || bad "sweep.csv: $(rows "$T/a/sweep.csv") rows, wanted 12 points x 4 policies"
[ -z "$(find "$T/a" -name '*.tmp*')" ] && ok || bad "temporary files left"
# The crossed and zipped values, in the spec's order (the last axis fastest).
got=$(column sparsity "$T/a/sweep.csv" | uniq | tr '\n' ' ')
[ "$got" = "0.4 0.6 0.8 " ] && ok || bad "sparsity column: $got, wanted the range 0.4 0.6 0.8"
got=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
              $c["policy"] == "static" { printf "%s,%s,%s,%s ", $c["batch"], $c["sparsity"],
                                          $c["seed"], $c["variation"] }' "$T/a/sweep.csv")
want="2,0.4,1,low 2,0.4,2,high 4,0.4,1,low 4,0.4,2,high 2,0.6,1,low 2,0.6,2,high 4,0.6,1,low 4,0.6,2,high 2,0.8,1,low 2,0.8,2,high 4,0.8,1,low 4,0.8,2,high "
[ "$got" = "$want" ] && ok || bad "points (batch,sparsity,seed,variation): $got"
[ "$(column policy "$T/a/sweep.csv" | head -4 | tr '\n' ' ')" = "static reactive lookahead bound " ] &&
    ok || bad "policies per point: $(column policy "$T/a/sweep.csv" | head -4 | tr '\n' ' ')"
# Every row carries the spec's hash, and the JSON says nothing is missing.
hash=$(sed -n 's/^spec //p' "$T/a/sweep.points")
[ "$(column sweep "$T/a/sweep.csv" | sort -u)" = "$hash" ] && ok || bad "sweep column is not the spec hash $hash"
grep -Eq '"missing":[[:space:]]*\[\]' "$T/a/sweep.json" && ok || bad "sweep.json: missing is not empty"
grep -Eq '"rows_count":[[:space:]]*48,' "$T/a/sweep.json" && ok || bad "sweep.json: rows_count is not 48"
# Typed JSON: numbers as numbers, the variation a string, unlimited-less so no null slots.
grep -Eq '"batch":[[:space:]]*2,' "$T/a/sweep.json" && ok || bad "sweep.json: batch is not a number"
grep -Eq '"variation":[[:space:]]*"low",' "$T/a/sweep.json" && ok || bad "sweep.json: variation is not a string"

# --- a point's rows are kvplace run's ------------------------------------------------
# Point 7 (index = 4 x sparsity + 2 x batch + zip) is sparsity 0.6, batch 4, seed 2, high;
# run computes it through another path.
"$KVPLACE" run -q --hw gh200-paper --model llama-3.1-8b --set layers=2 --set prompt=300 \
    --set steps=30 --set hbm_capacity=13276800 --set weight_bytes=10MB --set sparsity=0.6 \
    --set batch=4 --set seed=2 --set variation=high \
    --policy static,reactive,lookahead:W=4:R=0.5,bound --csv "$T/run.csv" >/dev/null 2>&1
id9=$(sed -n '11p' "$T/a/sweep.points")
case $id9 in 0007-*) ok ;; *) bad "the manifest's eighth point is $id9" ;; esac
# The sweep's result columns (from "policy" on) are its own flat, round-trippable cells; every
# one that run's CSV (schema 2) also has must hold the same text, row for row, and they must
# include the headline numbers and every byte counter.
pcol=$(head -n 1 "$T/a/sweep.csv" | tr ',' '\n' | grep -n '^policy$' | cut -d: -f1)
ncol=$(head -n 1 "$T/a/sweep.csv" | tr ',' '\n' | wc -l)
{ head -n 1 "$T/a/sweep.csv"; grep "^$hash,$id9," "$T/a/sweep.csv"; } >"$T/p9.csv"
[ "$(lines "$T/p9.csv")" -eq 5 ] && ok || bad "point $id9 has $(($(lines "$T/p9.csv") - 1)) rows, not 4"
awk -F, 'NR == FNR { if (FNR == 1) for (i = 1; i <= NF; i++) rc[$i] = i; else run[FNR - 1] = $0; next }
         FNR == 1 { for (i = 1; i <= NF; i++) if ($i == "policy") p = i
                    for (i = p; i <= NF; i++) name[i] = $i; nf = NF; hdr = $0; next }
         { r++; split(run[r], v, ",")
           for (i = p; i <= nf; i++) if (rc[name[i]]) { shared++; if ($i != v[rc[name[i]]]) {
               print "row " r " " name[i] ": sweep " $i ", run " v[rc[name[i]]]; d++ } } }
         END { need = "total_time_s,throughput_tok_s,hbm_hit_rate_kv,spec,promoted_bytes,kv_read_dram_bytes,link_down_bytes,slots"
               n = split(need, w, ","); for (k = 1; k <= n; k++) if (!rc[w[k]] || index("," hdr ",", "," w[k] ",") == 0) {
                   print "column " w[k] " not in both"; d++ }
               if (shared < 4 * 20) { print "only " shared " shared cells"; d++ }
               exit d != 0 }' "$T/run.csv" "$T/p9.csv" >"$T/cmp9.txt" 2>&1 && ok ||
    bad "point $id9's rows differ from kvplace run's: $(head -n 3 "$T/cmp9.txt")"
# After sa_evaluations, every tier's and link's columns (docs/SWEEP.md): tiers 0..7, links
# 1..7, the two-tier machine's tier0, tier1 and link1 filled (and compared with run's above),
# the others empty.
sacol=$(head -n 1 "$T/a/sweep.csv" | tr ',' '\n' | grep -n '^sa_evaluations$' | cut -d: -f1)
[ "$((ncol - sacol))" -eq $((8 * 6 + 7 * 4)) ] && ok || bad "$((ncol - sacol)) columns after sa_evaluations, not 76"
[ "$(head -n 1 "$T/a/sweep.csv" | cut -d, -f"$((sacol + 1)),$((sacol + 12)),$((sacol + 49)),$ncol")" = \
  "tier0_kv_read_bytes,tier1_busy_s,link1_up_bytes,link7_down_busy_s" ] && ok ||
    bad "tier columns: $(head -n 1 "$T/a/sweep.csv" | cut -d, -f"$((sacol + 1)),$((sacol + 12)),$((sacol + 49)),$ncol")"
got=$(grep "^$hash,$id9," "$T/a/sweep.csv" | head -n 1 | cut -d, -f"$((sacol + 12)),$((sacol + 13)),$((sacol + 52)),$((sacol + 53))")
case $got in [0-9]*,,[0-9]*,) ok ;; *) bad "tier1_busy_s, tier2_kv_read_bytes, link1_down_busy_s, link2_up_bytes: $got" ;; esac
# Before the results: the lead columns, every parameter of kvplace params, tok_bytes, kv_budget.
nparams=$("$KVPLACE" params | grep -cE '^  [a-z0-9_]+ +default')
[ "$pcol" -eq $((5 + nparams + 2 + 1)) ] && ok || bad "policy is column $pcol, wanted 5 + $nparams parameters + 2 + 1"

# --- same bytes for any --jobs, --threads, --shard -----------------------------------
kv sweep "$T/spec.ini" --out "$T/b" --jobs 1 --threads 2 -q
cmp -s "$T/a/sweep.csv" "$T/b/sweep.csv" && cmp -s "$T/a/sweep.json" "$T/b/sweep.json" &&
    ok || bad "--jobs 1 --threads 2 gives other bytes than --jobs 2"
for n in 1 2 3 4 5 6 7 13; do
    d="$T/shard$n"
    # The shards in reverse order, as a job array may finish them.
    k=$((n - 1))
    while [ "$k" -ge 0 ]; do
        "$KVPLACE" sweep "$T/spec.ini" --out "$d" --shard "$k/$n" --jobs 2 -q 2>"$T/err" ||
            bad "--shard $k/$n: exit $?"
        k=$((k - 1))
    done
    kv sweep merge "$d" -q
    [ "$rc" -eq 0 ] && ok || bad "merge after $n shards: exit $rc"
    cmp -s "$T/a/sweep.csv" "$d/sweep.csv" && cmp -s "$T/a/sweep.json" "$d/sweep.json" &&
        ok || bad "$n shards merge to other bytes than the unsharded sweep"
done
# --list: the shards partition the points.
"$KVPLACE" sweep "$T/spec.ini" --list | tail -n +2 | cut -d' ' -f1 | sort >"$T/all.ids"
: >"$T/parts.ids"
for k in 0 1 2; do
    "$KVPLACE" sweep "$T/spec.ini" --list --shard "$k/3" | tail -n +2 | cut -d' ' -f1 >>"$T/parts.ids"
done
sort "$T/parts.ids" | cmp -s - "$T/all.ids" && ok || bad "--list: the shards of 3 do not partition the points"
[ "$(lines "$T/all.ids")" -eq 12 ] && ok || bad "--list: $(lines "$T/all.ids") points, wanted 12"

# A list continued on indented lines (a trailing comma allowed) is one list.
printf '[base]\nlayers = 2\n[vary]\nsparsity = 0.4, 0.5, 0.6,\n    0.7, 0.8\nbatch = 1,\n  2\n' >"$T/cont.ini"
[ "$("$KVPLACE" sweep "$T/cont.ini" --list | tail -n +2 | wc -l)" -eq 10 ] && ok ||
    bad "continued lists: not 5 x 2 points"

# --- resume --------------------------------------------------------------------------
"$KVPLACE" sweep "$T/spec.ini" --out "$T/r" --shard 0/2 -q
refused "merge with points missing" 1 "6 of 12 points missing" sweep merge "$T/r"
[ ! -e "$T/r/sweep.csv" ] && ok || bad "merge with points missing wrote sweep.csv"
kv sweep merge "$T/r" --partial -q
[ "$rc" -eq 0 ] && [ "$(rows "$T/r/sweep.csv")" -eq 24 ] && ok || bad "merge --partial: exit $rc, $(rows "$T/r/sweep.csv") rows"
grep -q "\"$(sed -n '5p' "$T/a/sweep.points")\"" "$T/r/sweep.json" && ok || bad "merge --partial: the JSON does not list point 1 as missing"
ino() { ls -i "$1" | cut -d' ' -f1; }
first=$(ls "$T/r/points" | head -n 1)
before=$(ino "$T/r/points/$first")
kv sweep "$T/spec.ini" --out "$T/r" --jobs 2
[ "$rc" -eq 0 ] && ok || bad "resume: exit $rc"
grep -q "6 to run, 6 already done" "$T/err" && ok || bad "resume: does not say 6 to run, 6 done"
[ "$(ino "$T/r/points/$first")" = "$before" ] && ok || bad "resume rewrote a finished point"
cmp -s "$T/a/sweep.csv" "$T/r/sweep.csv" && cmp -s "$T/a/sweep.json" "$T/r/sweep.json" &&
    ok || bad "a resumed sweep merges to other bytes"
# A lost point file is made again, the same bytes.
cp "$T/r/points/$first" "$T/first.json"
rm "$T/r/points/$first"
kv sweep "$T/spec.ini" --out "$T/r" -q
cmp -s "$T/first.json" "$T/r/points/$first" && ok || bad "a remade point file differs"

# SIGTERM: the finished points are kept, the same command continues, the bytes are the same.
# Deterministic: the third point's trace is a FIFO with no writer, so its worker blocks in
# open() until the stop (which cuts the open short); the test signals once the first two
# points' files are there.  Should the stop reach that worker before its open(), opening the
# FIFO's other end unblocks it (its read then fails, as a stop's doing).
mkdir -p "$T/stop"
"$KVPLACE" trace gen --set layers=2 --set prompt=300 --set steps=30 -o "$T/stop/real.npy" -q \
    2>/dev/null
mkfifo "$T/stop/t.npy"
{
    echo "[sweep]"
    echo "policies = static,reactive"
    tiny_base
    echo "[zip]"
    echo "seed = 1, 2, 3, 4"
    echo "trace = synthetic, synthetic, t.npy, real.npy" # files run last, in spec order
} >"$T/stop/slow.ini"
"$KVPLACE" sweep "$T/stop/slow.ini" --out "$T/s" --jobs 1 -q 2>"$T/err" &
pid=$!
i=0
while [ "$(ls "$T/s/points" 2>/dev/null | grep -c '\.json$')" -lt 2 ] && [ "$i" -lt 600 ]; do
    sleep 0.1; i=$((i + 1))
done
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then
    (exec 3>"$T/stop/t.npy") & # the worker missed the stop in open(): unblock it
fi
wait "$pid"
rc=$?
[ "$rc" -eq 143 ] && ok || bad "SIGTERM: exit $rc, wanted 143"
grep -q "interrupted; 2 of 4 points" "$T/err" && ok ||
    bad "SIGTERM: no \"interrupted; 2 of 4 points\" line: $(cat "$T/err")"
[ "$(lines "$T/err")" -eq 1 ] && ok || bad "SIGTERM: $(lines "$T/err") lines on stderr, wanted 1"
[ "$(ls "$T/s/points" | wc -l)" -eq 2 ] && ok ||
    bad "SIGTERM: $(ls "$T/s/points" | wc -l) point files kept, wanted the 2 finished"
[ -z "$(find "$T/s" -name '*.tmp*')" ] && ok || bad "SIGTERM left temporary files"
rm "$T/stop/t.npy" && cp "$T/stop/real.npy" "$T/stop/t.npy"
kv sweep "$T/stop/slow.ini" --out "$T/s" -q
[ "$rc" -eq 0 ] && ok || bad "after SIGTERM: exit $rc"
kv sweep "$T/stop/slow.ini" --out "$T/s2" -q
cmp -s "$T/s/sweep.csv" "$T/s2/sweep.csv" && cmp -s "$T/s/sweep.json" "$T/s2/sweep.json" &&
    ok || bad "an interrupted sweep merges to other bytes"

# --- a trace file, beside the spec -----------------------------------------------------
mkdir -p "$T/tdir"
"$KVPLACE" trace gen --set layers=2 --set prompt=300 --set steps=30 -o "$T/tdir/t.npy" -q 2>/dev/null
{
    echo "[sweep]"
    echo "policies = static,lookahead"
    tiny_base | grep -v -e prompt -e steps
    echo "trace = t.npy"
    echo "[vary]"
    echo "batch = 2, 4"
} >"$T/tdir/file.ini"
(cd "$T" && "$KVPLACE" sweep tdir/file.ini --out "$T/f" -q 2>"$T/err")
[ $? -eq 0 ] && ok || bad "a spec with a trace file beside it: failed"
[ "$(column trace "$T/f/sweep.csv" | sort -u)" = "t.npy" ] && ok || bad "trace column: $(column trace "$T/f/sweep.csv" | sort -u)"
{
    echo "[sweep]"
    echo "policies = static,lookahead"
    tiny_base
    echo "[vary]"
    echo "batch = 2, 4"
} >"$T/tdir/syn.ini"
kv sweep "$T/tdir/syn.ini" --out "$T/g" -q
cut -d, -f6- "$T/g/sweep.csv" >"$T/g.cut"
cut -d, -f6- "$T/f/sweep.csv" | cmp -s - "$T/g.cut" && ok || bad "the trace file's points differ from the same synthetic trace's"

# --- a study's points as a sweep: the numbers of kvplace study ------------------------
TINY_SET="--set layers=2 --set prompt=300 --set steps=30 --set hbm_capacity=13276800 --set weight_bytes=10MB"
# shellcheck disable=SC2086
"$KVPLACE" study sparsity $TINY_SET --sa-budget 3 --threads 1 -q --out "$T/study" 2>"$T/err"
# shellcheck disable=SC2086
kv sweep "$(dirname "$0")/../examples/studies/sparsity.ini" $TINY_SET \
    --policy static,reactive,page,lookahead,sa:budget=3,unlimited,bound --out "$T/ss" -q
[ "$rc" -eq 0 ] && ok || bad "examples/studies/sparsity.ini: exit $rc"
# Each sweep row's throughput against the study's <policy>_tok_s at that sparsity.
awk -F, 'NR == FNR { if (FNR == 1) { for (i = 1; i <= NF; i++) col[$i] = i; next }
                     for (i = 1; i <= NF; i++) st[$1, i] = $i; next }
         FNR == 1 { for (i = 1; i <= NF; i++) sw[$i] = i; next }
         { s = $sw["sparsity"]; p = $sw["policy"]; c = col[p "_tok_s"]
           n++; if (!c || sprintf("%.15g", st[s, c]) != sprintf("%.15g", $sw["throughput_tok_s"])) {
               print "differs: sparsity " s " " p ": study " st[s, c] ", sweep " $sw["throughput_tok_s"]; d++ } }
         END { if (n != 42) print "rows: " n ", wanted 6 x 7"; exit (d || n != 42) }' \
    "$T/study/sparsity.csv" "$T/ss/sweep.csv" >"$T/cmp.txt" && ok ||
    bad "the sparsity study as a sweep differs from kvplace study sparsity: $(head -n 3 "$T/cmp.txt")"
# kvplace study --from DIR: the study's files from the sweep's points, the same bytes as the
# study running them itself.
# shellcheck disable=SC2086
kv study sparsity $TINY_SET --sa-budget 3 --from "$T/ss" -q --out "$T/from"
[ "$rc" -eq 0 ] && ok || bad "study sparsity --from: exit $rc"
for e in csv json md gp; do
    cmp -s "$T/study/sparsity.$e" "$T/from/sparsity.$e" && ok || bad "study sparsity --from: sparsity.$e differs from the study's own"
done
# shellcheck disable=SC2086
"$KVPLACE" study variation $TINY_SET --sa-budget 3 --threads 1 -q --out "$T/study" 2>"$T/err"
# shellcheck disable=SC2086
"$KVPLACE" sweep "$(dirname "$0")/../examples/studies/variation.ini" $TINY_SET \
    --policy static,reactive,page,lookahead,sa:budget=3,unlimited,bound --out "$T/sv" --jobs 2 -q
# shellcheck disable=SC2086
kv study variation $TINY_SET --sa-budget 3 --from "$T/sv" -q --out "$T/from"
cmp -s "$T/study/variation.csv" "$T/from/variation.csv" && cmp -s "$T/study/variation.json" "$T/from/variation.json" &&
    ok || bad "study variation --from: differs from the study's own"
# shellcheck disable=SC2086
refused "study --from, another size" 1 "is not in the sweep" study sparsity $TINY_SET --set steps=31 --sa-budget 3 --from "$T/ss" -q --out "$T/reports"
# shellcheck disable=SC2086
refused "study --from, other policies" 1 "the sweep ran other policies" study sparsity $TINY_SET --sa-budget 4 --from "$T/ss" -q --out "$T/reports"
refused "study --from with --trace" 2 "not with --trace" study sparsity --trace "$T/tdir/t.npy" --from "$T/ss" --out "$T/reports"
refused "--set of a varied key" 1 "sparsity varies in" sweep "$(dirname "$0")/../examples/studies/sparsity.ini" --set sparsity=0.5 --list
refused "--set of an unknown parameter" 1 "unknown parameter \"stepz\"" sweep "$T/spec.ini" --set stepz=4 --list

# --- bad input ---------------------------------------------------------------------------
mkdir -p "$T/reports"
spec() { printf '%s\n' "$@" >"$T/bad.ini"; }
spec "[base]" "prompt = 300" "[vary]" "sparsty = 0.4, 0.6"
refused "unknown parameter" 1 "bad.ini:4: unknown parameter \"sparsty\"" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "sparsity = range 0.8 0.4 0.1"
refused "empty range" 1 "empty range" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "batch = geom 8 1 2"
refused "empty geom" 1 "empty range" sweep "$T/bad.ini" --out "$T/reports/d"
# 100,000 points at most (docs/SWEEP.md): one value over, in one range or in a product
spec "[vary]" "seed = range 1 100001 1"
refused "a range past the points limit" 1 "the range has 100001 values, more than a sweep may have (100000)" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "seed = range 1 50001 1" "batch = 1, 2"
refused "a product past the points limit" 1 "more than 100000 points" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "sparsity = range 0.4 0.8 0"
refused "range step 0" 1 "step must be above 0" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "batch = geom 1 8 1"
refused "geom factor 1" 1 "factor must be above 1" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "batch = range 1 8"
refused "range with two numbers" 1 "range START STOP STEP" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "batch = 1, , 4"
refused "empty list item" 1 "empty value" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[vary]" "batch = 1.5, 2"
refused "bad value names its line" 1 "bad.ini:2: batch = 1.5" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[zip]" "seed = 1, 2, 3" "batch = 1, 2"
refused "zip of unequal lengths" 1 "need as many values" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[base]" "batch = 2" "[vary]" "batch = 1, 2"
refused "a key set twice" 1 "batch is set twice" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[extra]" "batch = 2"
refused "unknown section" 1 "unknown section [extra]" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[sweep]" "policy = static"
refused "unknown key in [sweep]" 1 "unknown key \"policy\"" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[sweep]" "policies = static,lru"
refused "unknown policy" 1 "lru" sweep "$T/bad.ini" --out "$T/reports/d"
spec "batch = 2"
refused "key outside a section" 1 "outside any section" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[base]" "trace = nosuch.npy"
refused "missing trace file" 1 "nosuch.npy" sweep "$T/bad.ini" --out "$T/reports/d"
spec "[base]" "hw = nosuch-gpu"
refused "unknown preset" 1 "nosuch-gpu" sweep "$T/bad.ini" --out "$T/reports/d"
# A point that fails validation (weights above HBM at one point) is refused before any run.
spec "[base]" "hbm_capacity = 20GB" "[vary]" "weight_bytes = 10GB, 30GB"
refused "an invalid point" 1 "point 1 (weight_bytes=30GB)" sweep "$T/bad.ini" --out "$T/reports/d"
refused "no spec file" 1 "nosuch.ini: cannot open" sweep "$T/nosuch.ini" --out "$T/reports/d"
refused "no --out" 2 "--out DIR" sweep "$T/spec.ini"
refused "no spec" 2 "which spec" sweep --out "$T/reports/d"
refused "shard K = N" 1 "K must be below N" sweep "$T/spec.ini" --out "$T/reports/d" --shard 3/3
refused "shard K > N" 1 "K must be below N" sweep "$T/spec.ini" --out "$T/reports/d" --shard 5/2
refused "shard N = 0" 1 "expected K/N" sweep "$T/spec.ini" --out "$T/reports/d" --shard 0/0
refused "shard malformed" 1 "expected K/N" sweep "$T/spec.ini" --out "$T/reports/d" --shard 1-2
refused "shard negative" 1 "expected K/N" sweep "$T/spec.ini" --out "$T/reports/d" --shard=-1/2
refused "jobs 0" 1 "--jobs 0" sweep "$T/spec.ini" --out "$T/reports/d" --jobs 0
refused "unknown option" 2 "--frobnicate" sweep "$T/spec.ini" --out "$T/reports/d" --frobnicate

# Two specs, one directory: the second sweep is refused, nothing of it written.
{ cat "$T/spec.ini"; echo "[vary]"; echo "page_tokens = 8, 16"; } >"$T/other.ini"
ls "$T/a/points" >"$T/before.ls"
refused "a directory of another spec" 1 "holds the points of another sweep" sweep "$T/other.ini" --out "$T/a"
ls "$T/a/points" | cmp -s - "$T/before.ls" && ok || bad "the refused sweep wrote points"
# Merging two specs' outputs: a point of the other spec copied in is refused by name.
kv sweep "$T/other.ini" --out "$T/o" -q
[ "$rc" -eq 0 ] && ok || bad "the other spec: exit $rc"
stray=$(ls "$T/o/points" | head -n 1)
cp "$T/o/points/$stray" "$T/a/points/"
cp "$T/a/sweep.csv" "$T/a.csv.before"
refused "merging two specs' points" 1 "$stray: a point of another sweep" sweep merge "$T/a"
cmp -s "$T/a/sweep.csv" "$T/a.csv.before" && ok || bad "the refused merge changed sweep.csv"
rm "$T/a/points/$stray"
# A point file of the right name but another spec (copied over it) is refused too.
victim=$(ls "$T/a/points" | head -n 1)
cp "$T/a/points/$victim" "$T/victim.json"
sed 's/"spec":[^,]*,/"spec":\t"0123456789abcdef",/' "$T/victim.json" >"$T/a/points/$victim"
refused "a point file of another spec under this name" 1 "another sweep" sweep merge "$T/a"
refused "resume over a point of another spec" 1 "another sweep" sweep "$T/spec.ini" --out "$T/a"
printf 'not json' >"$T/a/points/$victim"
refused "a corrupt point file" 1 "not a kvplace sweep point file" sweep merge "$T/a"
cp "$T/victim.json" "$T/a/points/$victim"
refused "merge of a directory with no sweep" 1 "no sweep" sweep merge "$T/reports"
# A worker that fails (a trace file that is not .npy) fails the sweep, one line, no merge.
printf 'junk' >"$T/tdir/junk.npy"
{ echo "[base]"; echo "trace = junk.npy"; } >"$T/tdir/junk.ini"
refused "a failing point" 1 "point 0000-" sweep "$T/tdir/junk.ini" --out "$T/j" -q
[ ! -e "$T/j/sweep.csv" ] && [ -z "$(ls "$T/j/points")" ] && ok || bad "a failing point left files"
# The heaviest points first (steps x context): with one job the progress lines give the
# order of the runs, so steps 10, 40, 20 (points 0, 1, 2) run as 1, 2, 0; sequences=3 (three
# prompts of about 300) is heavier than one sequence of the same steps.
{
    echo "[sweep]"
    echo "policies = static"
    tiny_base | grep -v '^steps'
    echo "[zip]"
    echo "steps = 10, 40, 20, 20"
    echo "sequences = 1, 1, 1, 3"
} >"$T/order.ini"
kv sweep "$T/order.ini" --out "$T/order" --jobs 1
order=$(sed -n 's/^kvplace: \[[0-9]*\/4\] \(....\)-.*/\1/p' "$T/err" | tr '\n' ' ')
[ "$rc" -eq 0 ] && [ "$order" = "0003 0001 0002 0000 " ] && ok ||
    bad "sweep order: '$order', not the heaviest first (0003 0001 0002 0000)"
# Points that are accountings of one run (weights counted, not counted, half counted: the
# same KV budget) run as one job, and write each point's file as a run of its own does: six
# shards run every point alone; a lost point of a group runs alone on resume.
{
    echo "[sweep]"
    echo "policies = static,reactive,page,lookahead:W=4:R=0.5,sa:W_max=6:W0=3:budget=6,unlimited,bound"
    tiny_base | grep -v '^weight_bytes'
    echo "[vary]"
    echo "sparsity = 0.4, 0.8"
    echo "[zip]"
    echo "weight_bytes = 10MB, 0, 5MB"
    echo "reserve = 0, 10MB, 5MB"
} >"$T/acct.ini"
kv sweep "$T/acct.ini" --out "$T/acct" --jobs 2
[ "$rc" -eq 0 ] && [ "$(grep -c 'one run of its accountings' "$T/err")" -eq 6 ] && ok ||
    bad "accountings: exit $rc, $(grep -c 'one run of its accountings' "$T/err") points run together, wanted 6"
for k in 0 1 2 3 4 5; do
    kv sweep "$T/acct.ini" --out "$T/acct1" --shard "$k/6" -q
    [ "$rc" -eq 0 ] || bad "accountings: shard $k/6 exit $rc"
done
! grep -q 'one run of its accountings' "$T/err" && ok || bad "a shard of one point ran two"
kv sweep merge "$T/acct1" -q
diff -r "$T/acct/points" "$T/acct1/points" >/dev/null && cmp -s "$T/acct/sweep.csv" "$T/acct1/sweep.csv" &&
    ok || bad "accountings run together differ from each run alone"
lost=$(ls "$T/acct1/points" | sed -n 2p)
rm "$T/acct1/points/$lost"
kv sweep "$T/acct.ini" --out "$T/acct1"
[ "$rc" -eq 0 ] && grep -q "1 to run, 5 already done" "$T/err" &&
    ! grep -q 'one run of its accountings' "$T/err" && cmp -s "$T/acct/points/$lost" "$T/acct1/points/$lost" &&
    ok || bad "accountings: resume of one lost point (exit $rc)"
kv sweep --help
[ "$rc" -eq 0 ] && grep -q "sweep merge DIR" "$T/out" && [ ! -s "$T/err" ] && ok || bad "sweep --help"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
