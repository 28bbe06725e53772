#!/bin/sh
# CLI tests of `kvplace study`: every study at a tiny size writes its files, the same bytes
# twice (any --threads), with the expected rows and an exact 1 in the normalising column;
# usage errors exit 2 with one line; a failure leaves no file; no gnuplot costs only plots.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_study
. "$(dirname "$0")/harness.sh"

# Tiny: 2 layers, prompt 300, 30 steps, batch 4 (the study's default): tok_bytes =
# 2*8*128*2*4 = 16384; HBM 13276800 - weights 10 MB = KV budget 3276800 = 100 slots per layer
# (3276800 / (2 * 16384)), a third of the prompt, so static spills and the policies differ.
TINY="--set layers=2 --set prompt=300 --set steps=30 --set hbm_capacity=13276800
      --set weight_bytes=10MB --sa-budget 3 -q"
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1

# column NAME FILE: the values of the CSV column NAME, one per line.
column() {
    awk -F, -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
                          { print (c ? $c : "MISSING") }' "$2"
}

# --- the result object is run's: same keys, same order; variables are numbers ---------------
kv study sparsity $TINY --policy static,unlimited --out "$T/shape"
kv run $(echo "$TINY" | sed 's/--sa-budget 3//') --set batch=4 --set variation=actual \
    --policy static,unlimited --json "$T/shape/run.json"
if command -v python3 >/dev/null 2>&1; then
    if python3 - "$T/shape/sparsity.json" "$T/shape/run.json" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
run = json.load(open(sys.argv[2]))
import re
# a study's results have the run's keys but the per-tier and per-link ones, which only a
# run's report appends (docs/CLI.md); those must be there in the run, after the fixed keys
keys = [k for k in run["results"][0].keys() if not re.match(r"(tier|link)[0-9]+_", k)]
tail = list(run["results"][0].keys())[len(keys):]
assert tail and all(re.match(r"(tier|link)[0-9]+_", k) for k in tail), tail
for p in st["points"]:
    assert isinstance(p["vars"]["sparsity"], (int, float)), p["vars"]
    for r in p["results"]:
        assert list(r.keys()) == keys, (list(r.keys()), keys)
    assert list(p["scenario"].keys()) == list(run["scenario"].keys())
# the point at the run's sparsity gives the run's numbers, every one of them (the study's
# come back from its sweep's point files: this checks the round trip against a run)
pt = [p for p in st["points"] if p["vars"]["sparsity"] == 0.6][0]
assert len(pt["results"]) == len(run["results"])
for a, b in zip(pt["results"], run["results"]):
    for k in keys:
        assert a[k] == b[k], (k, a[k], b[k])
EOF
    then ok; else bad "study and run JSON differ in shape"; fi
fi

# --- the summaries cite nothing outside the repository -------------------------------------
if grep -l 'DESIG''N\.md\|PAPE''R\.md\|\.\./share''d' "$T/shape/"*.md "$T/shape/"*.gp >/dev/null 2>&1; then
    bad "a study's summary cites files outside the repository"
else ok; fi

# --- a study never writes over its own input; a mistyped name gets a suggestion ---------------
mkdir -p "$T/clash"
printf 'layers = 2\n' >"$T/clash/sparsity.csv"
cp "$T/clash/sparsity.csv" "$T/clash.keep"
kv study sparsity $TINY --config "$T/clash/sparsity.csv" --out "$T/clash"
[ "$rc" -eq 2 ] && grep -q "never overwrites" "$T/err" && cmp -s "$T/clash/sparsity.csv" "$T/clash.keep" &&
    ok || bad "study over its own --config: exit $rc"
kv study sparsty $TINY
[ "$rc" -eq 2 ] && grep -q 'did you mean "sparsity"' "$T/err" && ok || bad "study name typo: exit $rc"

# --- every study: exit 0, its files, the same bytes twice ----------------------------
for s in sparsity variation hitrate batch accounting; do
    kv study "$s" $TINY --threads 1 --out "$T/a"
    if [ "$rc" -ne 0 ]; then bad "study $s: exit $rc"; continue; fi
    [ ! -s "$T/out" ] && ok || bad "study $s wrote to stdout"
    [ ! -s "$T/err" ] && ok || bad "study $s -q wrote to stderr"
    exts="csv json md gp"
    [ "$have_gnuplot" -eq 1 ] && exts="$exts png svg pdf"
    for e in $exts; do
        [ -s "$T/a/$s.$e" ] && ok || bad "study $s: no $s.$e"
    done
    kv study "$s" $TINY --threads 2 --out "$T/b"
    for e in $exts; do
        cmp -s "$T/a/$s.$e" "$T/b/$s.$e" && ok || bad "study $s: $s.$e differs between runs"
    done
    grep -Eq "\"study\":[[:space:]]*\"$s\"" "$T/a/$s.json" && ok ||
        bad "study $s: json lacks its name"
    grep -Eq '"seed":[[:space:]]*1,' "$T/a/$s.json" && ok || bad "study $s: json lacks the seed"
    grep -Eq '"schema_version":[[:space:]]*2,' "$T/a/$s.json" && ok ||
        bad "study $s: json lacks its schema version"
done
ls "$T/a" | grep -q 'tmp' && bad "temporary files left in the output" || ok

# --- rows and normalisation ----------------------------------------------------------
rows() { echo $(($(lines "$1") - 1)); }
[ "$(rows "$T/a/sparsity.csv")" -eq 6 ] && ok ||
    bad "sparsity.csv: $(rows "$T/a/sparsity.csv") rows, wanted 6"
[ "$(column sparsity "$T/a/sparsity.csv" | tr '\n' ' ')" = "0.4 0.5 0.6 0.8 0.85 0.9 " ] && ok ||
    bad "sparsity.csv: sparsities $(column sparsity "$T/a/sparsity.csv" | tr '\n' ' ')"
[ "$(rows "$T/a/variation.csv")" -eq 3 ] && ok || bad "variation.csv: wanted 3 rows"
# 7 policies by default: static reactive page lookahead sa unlimited bound
[ "$(rows "$T/a/hitrate.csv")" -eq 7 ] && ok || bad "hitrate.csv: wanted 7 rows"
# batch: per weights mode, 6 batches of identical copies, then 4 of distinct sequences (1 to 8)
[ "$(rows "$T/a/batch.csv")" -eq 20 ] && ok || bad "batch.csv: wanted 20 rows ((6 + 4) x 2)"
[ "$(column series "$T/a/batch.csv" | tr '\n' ' ')" = "$(printf 'copies %.0s' 1 2 3 4 5 6; \
    printf 'distinct %.0s' 1 2 3 4; printf 'copies %.0s' 1 2 3 4 5 6; \
    printf 'distinct %.0s' 1 2 3 4)" ] && ok ||
    bad "batch.csv: series $(column series "$T/a/batch.csv" | tr '\n' ' ')"
# one distinct sequence is one copy: the same scenario, the same numbers; two distinct
# sequences are not two copies (their own seeds and prompts)
b1=$(awk -F, 'NR > 1 && $1 == 1 && $2 == "counted" { $3 = ""; print }' "$T/a/batch.csv" | sort -u | wc -l)
[ "$b1" -eq 1 ] && ok || bad "batch.csv: one distinct sequence differs from one copy"
b2=$(awk -F, 'NR > 1 && $1 == 2 && $2 == "counted" { $3 = ""; print }' "$T/a/batch.csv" | sort -u | wc -l)
[ "$b2" -eq 2 ] && ok || bad "batch.csv: two distinct sequences give two copies' numbers"
# accounting: 2 batches (1 and the scenario's 4) x weights counted or not x 2 KV countings
[ "$(rows "$T/a/accounting.csv")" -eq 8 ] && ok || bad "accounting.csv: wanted 8 rows"
# --- tiers: batches around the first that DRAM alone cannot hold ---------------------
# KV of the run at batch 1: (300 + 30) tokens x 4096 bytes x 2 layers = 2703360 bytes; DRAM
# 100 MB holds 36 batches (97320960 bytes), so batch 37 overflows it: batches 18, 37, 74, 148;
# DRAM alone only at 18, the CXL (1024 GB) and NVMe machines at all four: 1 + 4 + 4 + 4 rows,
# machine by machine.
kv study tiers $TINY --set dram_capacity=100MB --policy static,reactive,bound --out "$T/t"
[ "$rc" -eq 0 ] && ok || bad "study tiers: exit $rc: $(cat "$T/err")"
[ "$(column batch "$T/t/tiers.csv" | tr '\n' ' ')" = "18 18 37 74 148 18 37 74 148 18 37 74 148 " ] &&
    ok || bad "tiers.csv: batches $(column batch "$T/t/tiers.csv" | tr '\n' ' ')"
[ "$(column machine "$T/t/tiers.csv" | grep -c '^dram$')" -eq 1 ] && ok ||
    bad "tiers.csv: DRAM alone where it overflows"
kv study tiers $TINY --set dram_capacity=100MB --policy static,reactive,bound --out "$T/t2" \
    --threads 1
for e in csv json md; do
    cmp -s "$T/t/tiers.$e" "$T/t2/tiers.$e" && ok || bad "study tiers: tiers.$e differs"
done
refused "study tiers on three tiers" 1 "the base machine has 3 tiers" study tiers $TINY \
    --set tiers=3 --set tier2_bandwidth=10GB/s --set tier2_link=1 --out "$T/reports"

# x / x is exactly 1 in a double, so the column must say exactly "1".
for s in sparsity batch accounting; do
    v=$(column static_vs_static "$T/a/$s.csv" | sort -u)
    [ "$v" = "1" ] && ok || bad "$s.csv: static_vs_static is \"$v\", wanted 1"
done
v=$(column unlimited_vs_unlimited "$T/a/variation.csv" | sort -u)
[ "$v" = "1" ] && ok || bad "variation.csv: unlimited_vs_unlimited is \"$v\", wanted 1"
# The static policy never moves anything, so its hit rate is the same for any sa budget;
# and with 100 of >= 300 tokens per layer in HBM it must read some KV from DRAM.
v=$(column static_hit_rate_kv "$T/a/sparsity.csv" | awk '$1 >= 1' | wc -l | tr -d ' ')
[ "$v" -eq 0 ] && ok ||
    bad "sparsity.csv: static reads all KV from HBM; the scenario does not spill"
# Weights not counted: weight_bytes 0, reserve = the 10 MB of weights (HBM capacity kept).
grep -Eq '"reserve":[[:space:]]*10000000,' "$T/a/batch.json" && ok ||
    bad "batch.json: no point with reserve = the weights' bytes"
# Per query head: kv_heads 32 = 4 x 8, so tok_bytes 4 x (4096 at batch 1, 16384 at batch 4).
[ "$(column tok_bytes "$T/a/accounting.csv" | tr '\n' ' ')" = \
  "4096 16384 4096 16384 16384 65536 16384 65536 " ] && ok ||
    bad "accounting.csv: tok_bytes $(column tok_bytes "$T/a/accounting.csv" | tr '\n' ' ')"
grep -q '5.87' "$T/a/sparsity.md" && ok || bad "sparsity.md does not quote the study's 5.87x"

# --- all: the same files as the studies one by one -----------------------------------
kv study all $TINY --out "$T/c"
[ "$rc" -eq 0 ] && ok || bad "study all: exit $rc"
for s in sparsity variation hitrate batch accounting; do
    cmp -s "$T/a/$s.csv" "$T/c/$s.csv" && ok || bad "study all: $s.csv differs from study $s"
done

# --- study heads: 4 sparsities x per token, per head x weights counted and not -----------
[ ! -e "$T/c/heads.csv" ] && ok || bad "study all ran the heads study (it is run by name)"
kv study heads $TINY --set batch=4 --out "$T/h"
[ "$rc" -eq 0 ] && ok || bad "study heads: exit $rc: $(cat "$T/err")"
[ "$(rows "$T/h/heads.csv")" -eq 16 ] && ok || bad "heads.csv: wanted 16 rows"
[ "$(column placement "$T/h/heads.csv" | grep -c '^head$')" -eq 8 ] &&
    [ "$(column placement "$T/h/heads.csv" | grep -c '^token$')" -eq 8 ] && ok ||
    bad "heads.csv: placements"
# rows without the placement: per head differs from per token somewhere (8 heads, half of
# them streaming), and at one KV head the per-head trace is the 3-D one: equal, every number
nodiff() { awk -F, 'NR > 1 { $2 = ""; print }' "$1" | sort | uniq -u | wc -l; }
[ "$(nodiff "$T/h/heads.csv")" -gt 0 ] && ok || bad "heads.csv: per head equals per token at 8 heads"
kv study heads $TINY --set batch=4 --set kv_heads=1 --out "$T/h1"
[ "$rc" -eq 0 ] && [ "$(rows "$T/h1/heads.csv")" -eq 16 ] && [ "$(nodiff "$T/h1/heads.csv")" -eq 0 ] &&
    ok || bad "heads at one KV head: per head differs from per token (exit $rc)"
# a per-head point is kvplace run --heads (another path to the same streams)
kv run $(echo "$TINY" | sed 's/--sa-budget 3//') --set batch=4 --set variation=actual \
    --set sparsity=0.4 --heads --policy static,reactive,page,lookahead,unlimited,bound \
    --json "$T/h/run.json"
if command -v python3 >/dev/null 2>&1; then
    if python3 - "$T/h/heads.json" "$T/h/run.json" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
run = json.load(open(sys.argv[2]))
pt = [p for p in st["points"] if p["vars"]["sparsity"] == 0.4 and
      p["vars"]["placement"] == "head" and p["vars"]["weights"] == "counted"][0]
assert len(pt["results"]) == len(run["results"]) == 6
for a, b in zip(pt["results"], run["results"]):
    for k in a:
        if k in b:
            assert a[k] == b[k], (k, a[k], b[k])
EOF
    then ok; else bad "a heads study point differs from run --heads"; fi
fi
# examples/studies/heads.ini (trace = synthetic, synthetic-heads) is the study's sweep
# (its weights vary, so at the machine's own HBM: the HBM holds the weights)
HS="--set layers=2 --set prompt=300 --set steps=30 --set hbm_capacity=16070MB -q"
kv sweep "$(dirname "$0")/../examples/studies/heads.ini" $HS --out "$T/hs"
kv study heads $HS --from "$T/hs" --out "$T/hf"
kv study heads $HS --out "$T/hg"
[ "$rc" -eq 0 ] && cmp -s "$T/hg/heads.csv" "$T/hf/heads.csv" && ok ||
    bad "study heads --from examples/studies/heads.ini: exit $rc, or other numbers"
refused "study heads on a trace file" 2 "needs the synthetic traces" study heads \
    --trace "$T/none.npy" --out "$T/reports"

# --- study online: (6 sparsities + 3 topk) x 3 variations x 2 accountings; shares of the refs --
[ ! -e "$T/c/online.csv" ] && ok || bad "study all ran the online study (it is run by name)"
kv study online $TINY --out "$T/o"
[ "$rc" -eq 0 ] && ok || bad "study online: exit $rc"
[ "$(rows "$T/o/online.csv")" -eq 54 ] && ok || bad "online.csv: wanted 54 rows"
# the fixed budgets: 3 topk values x 3 variations x 2 accountings, each without a sparsity
v=$(column topk "$T/o/online.csv" | grep -c '^\(512\|2048\|8192\)$')
[ "$v" -eq 18 ] && ok || bad "online.csv: $v topk points, wanted 18"
v=$(awk -F, 'NR > 1 && ($1 == "-") != ($4 != "0")' "$T/o/online.csv" | wc -l)
[ "$v" -eq 0 ] && ok || bad "online.csv: $v points with both or neither of sparsity and topk"
# The reference is plan when registered, else a lookahead point of the grid.
v=$(column reference "$T/o/online.csv" | grep -cv '^\(plan\|lookahead\)')
[ "$v" -eq 0 ] && ok || bad "online.csv: $v references are neither plan nor lookahead"
# No policy passes the certificate (bound, or lpbound): every share of it is at most 1.
for p in static reactive page hot balanced payback steer whittle; do
    v=$(column "${p}_of_certificate" "$T/o/online.csv" | awk '$1 == "MISSING" || $1 > 1 + 1e-12' |
        wc -l | tr -d ' ')
    [ "$v" -eq 0 ] && ok || bad "online.csv: $p passes the certificate (or has no column) $v times"
done
# Offline policies have no share column: only the online ones are rows of the headline.
column lookahead_of_reference "$T/o/online.csv" | grep -q MISSING && ok ||
    bad "online.csv: an offline policy has a share column"
grep -q '^| steer |' "$T/o/online.md" && ok || bad "online.md: no per-policy row for steer"

# --- usage and failures ----------------------------------------------------------------
expect_fail() {
    if [ "$rc" -ne "$2" ]; then bad "$1: exit $rc, wanted $2"; return; fi
    if [ -s "$T/out" ]; then bad "$1: wrote to stdout"; return; fi
    if [ "$(lines "$T/err")" -ne 1 ]; then bad "$1: stderr has $(lines "$T/err") lines"; return; fi
    grep -q '^kvplace: ' "$T/err" && ok || bad "$1: stderr lacks the kvplace: prefix"
}
kv study nosuch --out "$T/d";          expect_fail "unknown study" 2
grep -q 'nosuch' "$T/err" && ok || bad "unknown study: message does not name it"
kv study --out "$T/d";                 expect_fail "no study name" 2
kv study sparsity --bogus;             expect_fail "unknown option" 2
kv study variation --trace x.npy;      expect_fail "variation with --trace" 2
kv study sparsity $TINY --set sparsity=2 --out "$T/d"; expect_fail "bad --set" 1
kv study sparsity $TINY --policy nosuch --out "$T/d";  expect_fail "unknown policy" 1
kv study sparsity $TINY --sa-budget 0 --out "$T/d";    expect_fail "--sa-budget 0" 1
[ ! -e "$T/d" ] && ok || bad "a failed study created its output directory"
: >"$T/file"
kv study sparsity $TINY --out "$T/file";             expect_fail "--out names a file" 1
# A file that cannot be renamed into place (a directory holds its name): nothing is left.
mkdir -p "$T/e/sparsity.md"
kv study sparsity $TINY --out "$T/e";                expect_fail "blocked output" 1
# (the study's sweep directory stays: its points are done, and a rerun reuses them)
left=$(ls "$T/e" | grep -v '^sparsity.md$' | grep -v '^sparsity.sweep$' | tr '\n' ' ')
[ -z "$left" ] && ok || bad "blocked output left files: $left"

# --- help, and no gnuplot ----------------------------------------------------------------
kv study --help
[ "$rc" -eq 0 ] && [ -s "$T/out" ] && [ ! -s "$T/err" ] && ok || bad "study --help"
kv help study
[ "$rc" -eq 0 ] && grep -q accounting "$T/out" && ok || bad "help study"
mkdir -p "$T/nobin"
PATH="$T/nobin" "$KVPLACE" study hitrate --set layers=2 --set prompt=300 --set steps=30 \
    --set hbm_capacity=13276800 --set weight_bytes=10MB --sa-budget 3 --out "$T/f" \
    >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 0 ] && ok || bad "no gnuplot: exit $rc"
[ -s "$T/f/hitrate.csv" ] && [ -s "$T/f/hitrate.md" ] && [ -s "$T/f/hitrate.gp" ] && ok ||
    bad "no gnuplot: data files missing"
[ ! -e "$T/f/hitrate.png" ] && ok || bad "no gnuplot: a png appeared"
grep -q 'gnuplot not found' "$T/err" && ok || bad "no gnuplot: no warning"
ls "$T/f" | grep -q tmp && bad "no gnuplot: temporary files left" || ok

# --- a study is a sweep: shares, merge and the report give the unsharded study's bytes ----
# Three shares of batch's 18 distinct points (its 20 less the two batch-1 distinct ones) run in reverse order; a share writes no report; the merge
# needs every share; the same command without --shard then runs nothing and writes the study.
for k in 2 1 0; do
    kv study batch $TINY --shard $k/3 --out "$T/sh"
    [ "$rc" -eq 0 ] && ok || bad "study batch --shard $k/3: exit $rc: $(cat "$T/err")"
    [ ! -e "$T/sh/batch.csv" ] && ok || bad "study --shard $k/3 wrote the report"
    if [ "$k" -eq 1 ]; then
        kv sweep merge "$T/sh/batch.sweep" -q
        [ "$rc" -eq 1 ] && grep -q '6 of 18 points missing' "$T/err" && ok ||
            bad "merge of a study's sweep with a share missing: exit $rc"
    fi
done
kv sweep merge "$T/sh/batch.sweep" -q
[ "$rc" -eq 0 ] && [ "$(rows "$T/sh/batch.sweep/sweep.csv")" -gt 0 ] && ok ||
    bad "merge of the study's shares: exit $rc"
kv study batch $(echo "$TINY" | sed 's/ -q//') --out "$T/sh"
[ "$rc" -eq 0 ] && grep -q '18 points, 0 to run, 18 already done' "$T/err" && ok ||
    bad "study after its shares ran points again (exit $rc): $(head -n 1 "$T/err")"
kv study batch $TINY --from "$T/sh/batch.sweep" --out "$T/sh2"
[ "$rc" -eq 0 ] && ok || bad "study --from a study's sweep: exit $rc"
for e in csv json md gp; do
    cmp -s "$T/a/batch.$e" "$T/sh/batch.$e" && cmp -s "$T/a/batch.$e" "$T/sh2/batch.$e" &&
        ok || bad "study batch in shares: batch.$e differs from the unsharded study's"
done
# study all in 2 shares: every study's files, and the points shared by two studies run once
# (sparsity's 0.6 is hitrate's point and batch's batch 4, ...: 6 + 3 + 1 + 20 + 8 = 38 listed,
# fewer distinct)
for k in 0 1; do kv study all $TINY --shard $k/2 --out "$T/sha"; done
kv study all $TINY --out "$T/sha"
[ "$rc" -eq 0 ] && ok || bad "study all after its shares: exit $rc"
n=$(sed -n 's/^points //p' "$T/sha/all.sweep/sweep.points")
[ "$n" -gt 0 ] && [ "$n" -lt 38 ] && ok || bad "study all: $n points in its sweep"
for s in sparsity variation hitrate batch accounting; do
    for e in csv json md; do
        cmp -s "$T/c/$s.$e" "$T/sha/$s.$e" && ok || bad "study all in shares: $s.$e differs"
    done
done
# Another scenario into the same directory: its sweep is another spec, refused before it runs
cp "$T/sh/batch.csv" "$T/batch.before"
kv study batch $TINY --set steps=31 --out "$T/sh"; expect_fail "a study of other settings" 1
grep -q "batch.sweep holds the points of another sweep" "$T/err" && cmp -s "$T/sh/batch.csv" \
    "$T/batch.before" && ok || bad "a study of other settings: not refused, or files changed"
kv study batch $TINY --shard 3/3 --out "$T/shx"; expect_fail "--shard 3/3" 1
kv study batch $TINY --shard 0/2 --from "$T/sh/batch.sweep" --out "$T/shx"
expect_fail "--shard with --from" 2
[ ! -e "$T/shx" ] && ok || bad "a refused --shard created the output directory"

# --- checkpoint and resume: the same files as a run without them ----------------------
kv study sparsity $TINY --out "$T/c0"
kv study sparsity $TINY --out "$T/c1" --checkpoint "$T/ck"
[ "$rc" -eq 0 ] && [ -s "$T/ck" ] && ok || bad "study --checkpoint: exit $rc or no file"
kv study sparsity $TINY --out "$T/c2" --resume "$T/ck"
[ "$rc" -eq 0 ] && ok || bad "study --resume: exit $rc"
for e in csv json md; do
    cmp -s "$T/c0/sparsity.$e" "$T/c1/sparsity.$e" && cmp -s "$T/c0/sparsity.$e" \
        "$T/c2/sparsity.$e" && ok || bad "study: checkpointed or resumed sparsity.$e differs"
done
# With a checkpoint the points run in this process, one after the other (into the study's
# sweep all the same): the same bytes, for every study with sa in its policies.
for s in variation hitrate batch accounting; do
    kv study "$s" $TINY --out "$T/cp" --checkpoint "$T/ck-$s"
    [ -s "$T/cp/$s.sweep/sweep.csv" ] && [ -s "$T/ck-$s" ] && ok ||
        bad "study $s --checkpoint: no sweep or no checkpoint"
    for e in csv json md gp; do
        cmp -s "$T/a/$s.$e" "$T/cp/$s.$e" && ok ||
            bad "study $s: $s.$e differs between the sweep and the in-process run"
    done
done
# tiers: its summary reads the per-tier counts, which the point files carry beside the rows
kv study tiers $TINY --set dram_capacity=100MB --policy static,reactive,bound,sa --out "$T/tq"
kv study tiers $TINY --set dram_capacity=100MB --policy static,reactive,bound,sa --out "$T/tp" \
    --checkpoint "$T/ck-tiers"
for e in csv json md gp; do
    cmp -s "$T/tq/tiers.$e" "$T/tp/tiers.$e" && ok ||
        bad "study tiers: tiers.$e differs between the sweep and the in-process run"
done
# four tiers, four shares of the KV reads (0 = no per-tier counts read back)
grep -Eq '^\| [0-9]+ \| dram\+cxl\+nvme \| static \| [0-9.]+% / [0-9.]+% / [0-9.]+% / [0-9.]+% \|' \
    "$T/tq/tiers.md" && ok || bad "tiers.md: no per-tier counts for four tiers"
kv study sparsity $TINY --out "$T/c3" --checkpoint "$T/ck"
[ "$rc" -ne 0 ] && [ "$(lines "$T/err")" -eq 1 ] && grep -q 'file exists' "$T/err" && ok ||
    bad "study --checkpoint over a saved file: exit $rc"
kv study sparsity $TINY --set prompt=301 --out "$T/c4" --resume "$T/ck"
[ "$rc" -eq 1 ] && [ "$(lines "$T/err")" -eq 1 ] && grep -q 'prompt=300 there' "$T/err" &&
    [ ! -e "$T/c4" ] && ok || bad "study --resume of another scenario: exit $rc"
kv study sparsity $TINY --policy static,bound --out "$T/c5" --checkpoint "$T/ck2"
[ "$rc" -ne 0 ] && grep -q 'no sa policy' "$T/err" && [ ! -e "$T/ck2" ] && ok ||
    bad "study --checkpoint without sa: exit $rc"

# --- study gap: its own policies, the certificate beside every point --------------------
# HBM for about 100 slots a layer, so that the KV spills at this size.
kv study gap --set prompt=200 --set steps=20 --set hbm_capacity=16112951296 --out "$T/g" -q
[ "$rc" -eq 0 ] && [ -s "$T/g/gap.md" ] && [ -s "$T/g/gap.csv" ] && ok || bad "study gap: exit $rc"
rows=$(sed -n '/## The certified optimum/,$p' "$T/g/gap.md" | grep -c '^| 0\.[0-9]')
[ "$rows" -eq 12 ] && ok || bad "study gap: $rows rows of the certified optimum, not 12"
# the certified gap is plan / lpbound - 1, never negative (a plan below its own bound is a bug)
sed -n '/## The certified optimum/,$p' "$T/g/gap.md" | grep '^| 0\.' |
    awk -F'|' '{ g = $10; sub(/%/, "", g); if (g + 0 < 0) exit 1 }' && ok ||
    bad "study gap: a negative certified gap"
grep -q 'lookahead:W=16:R=1' "$T/g/gap.md" && grep -q '`plan:' "$T/g/gap.md" && ok ||
    bad "study gap: not its own policy list"
kv study gap --set prompt=200 --set steps=20 --set hbm_capacity=16112951296 --out "$T/gc" -q \
    --checkpoint "$T/ck-gap"
for e in csv json md gp; do
    cmp -s "$T/g/gap.$e" "$T/gc/gap.$e" && ok ||
        bad "study gap: gap.$e differs between the sweep and the in-process run"
done
kv study all --set prompt=200 --set steps=20 --policy static --out "$T/g2" -q
[ ! -e "$T/g2/gap.md" ] && ok || bad "study all ran gap"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
