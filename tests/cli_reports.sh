#!/bin/sh
# CLI tests of what a run produces: the JSON and CSV reports (fields, exact integers,
# determinism, independence from --threads), the default scenario, and the key consistency
# property: a synthetic trace written by `trace gen` and run with --trace gives the same
# results as the synthetic run itself.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_reports
. "$(dirname "$0")/harness.sh"
expect_ok() { if [ "$rc" -eq 0 ]; then ok; else bad "$1: exit $rc"; fi; }
has() { if grep -q -- "$2" "$3"; then ok; else bad "$1: no match for $2 in $(basename "$3")"; fi; }
PY=$(command -v python3 || true)

# Small scenario (see cli_basic.sh): 2 layers, P 200, N 20, 100 slots per layer < P.
cat >"$T/small.ini" <<EOF
hbm_capacity = 1000819200
weight_bytes = 1000000000
layers = 2
prompt = 200
steps = 20
EOF
SMALL="--config $T/small.ini"

# --- JSON: every field, numbers as numbers ---------------------------------------------
kv run $SMALL --policy static,unlimited,bound --json "$T/a.json" --csv "$T/a.csv" -q
expect_ok "run with --json and --csv"
for f in kvplace_version scenario trace source seed results hw model tok_bytes kv_budget \
    hbm_capacity hbm_bandwidth dram_capacity dram_bandwidth link_bandwidth reserve layers \
    kv_heads head_dim dtype_bytes weight_bytes batch sparsity page_tokens prompt steps \
    variation policy spec params total_time_s hbm_busy_s dram_busy_s link_up_busy_s \
    link_down_busy_s chosen sa_best sa_evaluations schema_version hw_modified \
    model_modified total_time_s throughput_tok_s hbm_hit_rate_kv hbm_hit_rate_all \
    promoted_bytes demoted_bytes speedup_vs_static speedup_vs_unlimited block_tokens slots \
    kv_read_hbm_bytes kv_read_dram_bytes hbm_read_bytes hbm_write_bytes dram_read_bytes \
    dram_write_bytes link_up_bytes link_down_bytes weight_read_bytes; do
    has "JSON field $f" "\"$f\":" "$T/a.json"
done
# tok_bytes = 2 * 8 KV heads * 128 dims * 2 bytes * batch 1 = 4096 (worked by hand);
# kv_budget = 1000819200 - 1000000000 = 819200.
has "tok_bytes" '"tok_bytes":[[:space:]]*4096,' "$T/a.json"
has "kv_budget" '"kv_budget":[[:space:]]*819200$' "$T/a.json"
has "variation as a string" '"variation":[[:space:]]*"actual"' "$T/a.json"
has "sparsity as a number" '"sparsity":[[:space:]]*0.6,' "$T/a.json"
has "slots: kv_budget / (2 layers * 4096) = 100" '"slots":[[:space:]]*100,' "$T/a.json"
has "unlimited has no slot limit" '"slots":[[:space:]]*null' "$T/a.json"
has "static is online" '"online":[[:space:]]*1,\{0,1\}$' "$T/a.json"
has "bound is not" '"online":[[:space:]]*0,\{0,1\}$' "$T/a.json"
grep -q 'inf\|nan\|NaN' "$T/a.json" && bad "JSON holds a non-finite number" || ok
if [ -n "$PY" ]; then
    if "$PY" - "$T/a.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"]
assert [x["policy"] for x in r] == ["static", "unlimited", "bound"], r
st = r[0]
# static against itself: exactly 1; everything is read once, from one tier or the other.
assert st["speedup_vs_static"] == 1.0, st
assert st["kv_read_hbm_bytes"] + st["kv_read_dram_bytes"] > 0
assert r[1]["speedup_vs_unlimited"] == 1.0
# the KV does not fit (100 slots < 200 prompt tokens), so static reads some KV from DRAM
assert st["kv_read_dram_bytes"] > 0, st
for x in r:
    for k, v in x.items():
        if k.endswith("_bytes") and k != "weight_read_bytes":
            assert isinstance(v, int) and v % 4096 == 0, (k, v)  # whole tokens of KV
assert all(x["weight_read_bytes"] == 1000000000 * 20 for x in r)  # weights x steps
assert d["trace"] == {"source": "synthetic:actual", "prompt": 200, "steps": 20, "layers": 2}
# docs/MODEL.md §10: static is online; the bound is not a policy an engine could run
assert [x["online"] for x in r] == [1, 1, 0], [x["online"] for x in r]
EOF
    then ok; else bad "JSON content (python3 check)"; fi
fi

# --- CSV: long format, the scenario on every row, a header with units ------------------
HEADER='hw,hw_modified,model,model_modified,trace,hbm_capacity,hbm_bandwidth'
RHEAD='tok_bytes,kv_budget,policy,spec,total_time_s,throughput_tok_s,speedup_vs_static'
head -n 1 "$T/a.csv" | grep -q "^$HEADER," && ok || bad "CSV header: $(head -n 1 "$T/a.csv")"
head -n 1 "$T/a.csv" | grep -q ",$RHEAD," && ok || bad "CSV header: $(head -n 1 "$T/a.csv")"
[ "$(wc -l <"$T/a.csv" | tr -d ' ')" -eq 4 ] && ok || bad "CSV has a header and 3 rows"
# the scenario's columns repeat on every row: config-file values, the preset names
grep -q '^gh200-paper,hbm_capacity=1000819200,llama-3.1-8b,layers=2;weight_bytes=1000000000,synthetic:actual,1000819200,' \
    "$T/a.csv" && ok || bad "CSV scenario columns: $(sed -n 2p "$T/a.csv")"
[ "$(cut -d, -f1-25 "$T/a.csv" | sed 1d | sort -u | wc -l | tr -d ' ')" -eq 1 ] && ok ||
    bad "the scenario columns differ between rows"
# no empty numeric cell: only the string columns hw_modified ... chosen may be empty
if [ -n "$PY" ]; then
    if "$PY" - "$T/a.csv" "$T/a.json" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
d = json.load(open(sys.argv[2]))
strings = {"hw", "hw_modified", "model", "model_modified", "trace", "variation", "policy",
           "spec", "chosen"}
for r in rows:
    for k, v in r.items():
        if k not in strings:
            float(v)  # a number, never empty
assert [r["policy"] for r in rows] == ["static", "unlimited", "bound"]
assert rows[1]["slots"] == "-1" and rows[0]["slots"] == "100"
assert rows[0]["sa_best_W"] == "-1" and rows[0]["sa_evaluations"] == "0"
# the CSV and the JSON carry the same numbers, digit for digit, under the same names
for r, j in zip(rows, d["results"]):
    for k, v in j.items():
        if k in ("params", "sa_best"):
            continue
        want = "-1" if v is None and k == "slots" else "" if v is None else str(v)
        if isinstance(v, float):
            assert float(r[k]) == v, (k, r[k], v)
        else:
            assert r[k] == want, (k, r[k], want)
EOF
    then ok; else bad "CSV content (python3 check)"; fi
fi

# --- only the policies asked for; speedups even so ------------------------------------
kv run $SMALL --policy bound --json "$T/b.json" -q
expect_ok "run --policy bound"
[ "$(grep -c '"policy":' "$T/b.json")" -eq 1 ] && ok || bad "one result when one is asked for"
grep '"speedup_vs_static"' "$T/b.json" | grep -q ':[[:space:]]*0,' &&
    bad "bound has no speedup" || ok
# bound's speedup over static in b.json equals the one computed with static in the run
s1=$(grep '"speedup_vs_static"' "$T/b.json")
s2=$(grep '"speedup_vs_static"' "$T/a.json" | sed -n 3p)
[ -n "$s1" ] && [ "$s1" = "$s2" ] && ok || bad "speedup of bound: alone $s1, with static $s2"

# --- determinism ----------------------------------------------------------------------
kv run $SMALL --json "$T/c1.json" --csv "$T/c1.csv" -q; expect_ok "run 1"
kv run $SMALL --json "$T/c2.json" --csv "$T/c2.csv" -q; expect_ok "run 2"
cmp -s "$T/c1.json" "$T/c2.json" && ok || bad "two identical runs differ (JSON)"
cmp -s "$T/c1.csv" "$T/c2.csv" && ok || bad "two identical runs differ (CSV)"
kv run $SMALL --threads 1 --json "$T/c3.json" -q; expect_ok "run with 1 thread"
kv run $SMALL --threads 3 --json "$T/c4.json" -q; expect_ok "run with 3 threads"
cmp -s "$T/c1.json" "$T/c3.json" && ok || bad "--threads 1 changes the JSON"
cmp -s "$T/c1.json" "$T/c4.json" && ok || bad "--threads 3 changes the JSON"
kv run $SMALL --set seed=2 --json "$T/c5.json" -q; expect_ok "run with seed 2"
cmp -s "$T/c1.json" "$T/c5.json" && bad "the seed has no effect on the JSON" || ok
has "seed recorded" '^	"seed":[[:space:]]*2,' "$T/c5.json"

# --- 64-bit integers beyond 2^53 are exact ---------------------------------------------
# 2^60 + 1 = 1152921504606846977 has no double; kv_budget = it - 1000000000 (by hand).
kv run $SMALL --set hbm_capacity=1152921504606846977 --policy static --json "$T/d.json" -q
expect_ok "run with a 2^60+1 byte HBM"
has "hbm_capacity exact" '"hbm_capacity":[[:space:]]*1152921504606846977,' "$T/d.json"
has "kv_budget exact" '"kv_budget":[[:space:]]*1152921503606846977$' "$T/d.json"

# --- trace gen -> trace info -> run --trace == run --synthetic ------------------------
kv trace gen $SMALL --set seed=7 --synthetic high -o "$T/t.npy"
expect_ok "trace gen"
[ ! -s "$T/out" ] && ok || bad "trace gen wrote to stdout"
# float32 (N, L, C) = (20, 2, 219): 20 * 2 * 219 * 4 = 35040 bytes of data plus the header
size=$(wc -c <"$T/t.npy" | tr -d ' ')
[ "$size" -gt 35040 ] && [ "$size" -le $((35040 + 4096)) ] && ok || bad "trace size $size"
kv trace info "$T/t.npy"
expect_ok "trace info"
has "info shape" '(20, 2, 219)' "$T/out"
has "info prompt" '^prompt *200 ' "$T/out"
has "info steps" '^steps *20$' "$T/out"
has "info layers" '^layers *2$' "$T/out"
has "info reads" '^reads ' "$T/out"
has "info overlap" '^overlap ' "$T/out"
# reads: k = ceil(0.4 * (200 + n)) summed over n = 0..19, times 2 layers.  0.4 * (200 + n)
# = 80 + 0.4 n, so k = 80 + ceil(0.4 n): n = 0..19 gives ceil(0.4 n) summing to 84
# (0,1,1,2,2,2,3,3,4,4,4,5,5,6,6,6,7,7,8,8); (20 * 80 + 84) * 2 = 3368.
has "info reads = 3368" '^reads *3368 ' "$T/out"
kv trace info --set sparsity=0.5 "$T/t.npy"
# k = ceil(0.5 * (200 + n)) = 100 + ceil(n / 2): sum over n = 0..19 is 2000 + 100 = 2100;
# times 2 layers = 4200.
has "info reads at sparsity 0.5 = 4200" '^reads *4200 ' "$T/out"
kv trace info --set topk=210 "$T/t.npy"
# topk (docs/MODEL.md "A fixed token budget"): k = min(210, 200 + n) = 200 + n for n <= 10,
# then 210: 11 * 200 + 55 + 9 * 210 = 4145 per layer; times 2 layers = 8290.
has "info reads at topk 210 = 8290" '^reads *8290 ' "$T/out"
has "info names topk" '^topk *210 ' "$T/out"
# trace info of a synthetic trace, and of its heads: one per KV head (8), half retrieval
kv trace info $SMALL --set seed=7 --synthetic high
expect_ok "trace info --synthetic"
has "synthetic info reads = 3368" '^reads *3368 ' "$T/out"
kv trace info $SMALL --set seed=7 --synthetic high --heads
expect_ok "trace info --synthetic --heads"
has "heads line" '^heads *8 streams, one per KV head; in layer 0, 4 retrieval and 4 streaming' \
    "$T/out"
# every head reads as many as the one stream: 8 x 3368
has "heads reads = 26944" '^reads *26944 ' "$T/out"
awk '$1 == "jaccard" { j = $2 + 0; ok = (j > 0 && j < 1) } END { exit !ok }' "$T/out" &&
    ok || bad "jaccard in (0, 1): $(grep jaccard "$T/out")"
awk '$1 == "union" { u = $2 + 0; ok = (u > 1 && u < 8) } END { exit !ok }' "$T/out" &&
    ok || bad "union in (1, 8): $(grep union "$T/out")"
# reports: topk recorded (in place of sparsity) when on, not at all when off
kv run --config "$T/small.ini" --trace "$T/t.npy" --set topk=81 --policy static \
    --json "$T/tk.json" -q
expect_ok "run --set topk"
has "topk in the report" '"topk":[[:space:]]*81,' "$T/tk.json"
grep -q '"sparsity":' "$T/tk.json" && bad "sparsity reported beside topk" || ok
# tp (docs/MODEL.md "Tensor parallelism"): one of 2 GPUs: tok_bytes = 2 * (8 / 2) heads * 128
# * 2 bytes = 2048; kv_budget = 1000819200 - 1000000000 / 2 = 500819200; weight reads per
# step 5e8, times 20 steps = 1e10.
kv run --config "$T/small.ini" --trace "$T/t.npy" --set tp=2 --policy static --json "$T/tp.json" -q
expect_ok "run --set tp=2"
has "tp in the report" '"tp":[[:space:]]*2,' "$T/tp.json"
has "tok_bytes per GPU" '"tok_bytes":[[:space:]]*2048,' "$T/tp.json"
has "kv_budget per GPU" '"kv_budget":[[:space:]]*500819200$' "$T/tp.json"
has "weight reads per GPU" '"weight_read_bytes":[[:space:]]*10000000000,' "$T/tp.json"
grep -q '"tp":' "$T/tk.json" && bad "tp reported at 1" || ok
kv run --config "$T/small.ini" --trace "$T/t.npy" --json "$T/tf.json" -q
expect_ok "run --trace on the generated file"
kv run $SMALL --set seed=7 --synthetic high --json "$T/ts.json" -q
expect_ok "run --synthetic with the same parameters"
sed -n '/"results"/,$p' "$T/tf.json" >"$T/tf.res"
sed -n '/"results"/,$p' "$T/ts.json" >"$T/ts.res"
[ -s "$T/tf.res" ] && cmp -s "$T/tf.res" "$T/ts.res" && ok ||
    bad "trace file and synthetic differ: $(diff "$T/tf.res" "$T/ts.res" | head -n 4)"
has "trace source is the file" "\"source\":[[:space:]]*\"$T/t.npy\"" "$T/tf.json"
grep -q '"topk":' "$T/tf.json" && bad "topk reported while off" || ok

# --- the default scenario -------------------------------------------------------------
kv
expect_ok "kvplace with no command"
NOTE='^kvplace: no command given; running the default scenario (.*)\. See kvplace --help\.$'
head -n 1 "$T/err" | grep -q "$NOTE" &&
    ok || bad "the default run's note: $(head -n 1 "$T/err")"
# (a loaded machine may add progress lines, "kvplace: [1/1] ...", every 30 s: not notes)
[ "$(grep -vc '^kvplace: \[[0-9]*/[0-9]*\] ' "$T/err")" -eq 1 ] && ok || bad "the default run prints one note"
# tok_bytes = 2 * 8 * 128 * 2 * 32 = 131072; slots = floor(7939477504 / (32 * 131072)) = 1892
for w in gh200-paper llama-3.1-8b 'P = 4096' 'N = 256' 'L = 32' 'batch 32' \
    'tok_bytes 131072' 'slots per layer 1892' '^static ' '^unlimited '; do
    grep -q -- "$w" "$T/out" && ok || bad "the default run shows $w"
done
# the KV does not fit, so static reads some of it from DRAM: its KV hit rate is below 100%
awk '$1 == "static" { found = 1; ok = ($6 != "100.00%") } END { exit !(found && ok) }' \
    "$T/out" && ok || bad "default: static reads all its KV from HBM"

# --- --sa-log: the search's trajectory --------------------------------------------
kv run $SMALL --policy sa:budget=5:moves=3 --sa-log "$T/sa.csv" --json "$T/sa.json"
expect_ok "run --sa-log"
[ "$(head -n 1 "$T/sa.csv")" = \
    "search,level,move,temperature_s,W,R,time_s,accepted,best_time_s,evaluations" ] && ok ||
    bad "sa log header: $(head -n 1 "$T/sa.csv")"
# the start (level 0, move 0, accepted), then at least the 3 initial-temperature samples
sed -n 2p "$T/sa.csv" | grep -q '^0,0,0,0,16,0.5,.*,1,' && ok || bad "sa log starts at W0 R0"
[ "$(lines "$T/sa.csv")" -ge 5 ] && ok || bad "sa log has $(lines "$T/sa.csv") lines"
# the last best time is the result's total time
best=$(tail -n 1 "$T/sa.csv" | cut -d, -f9)
grep -q "\"total_time_s\":[[:space:]]*$best," "$T/sa.json" && ok ||
    bad "sa log's best $best is not the result's time"
# sa's result: its own settings as typed params, its best point apart, its evaluations
if [ -n "$PY" ]; then
    if "$PY" - "$T/sa.json" "$T/sa.csv" <<'EOF'
import csv, json, sys
sa = json.load(open(sys.argv[1]))["results"][0]
assert sa["policy"] == "sa"
assert sa["spec"] == "sa:W_max=64:W0=16:R0=0.5:moves=3:budget=5:seed=1", sa["spec"]
p = sa["params"]
assert p == {"W_max": 64, "W0": 16, "R0": 0.5, "moves": 3, "budget": 5, "seed": 1}, p
assert isinstance(p["W0"], int) and isinstance(p["R0"], float)
b = sa["sa_best"]
assert set(b) == {"W", "R"} and isinstance(b["W"], int), b
assert sa["chosen"] == "lookahead:W=%d:R=%s" % (b["W"], b["R"]), (sa["chosen"], b)
# the log's last row counts the evaluations the result reports (budget 5 at most)
last = list(csv.DictReader(open(sys.argv[2])))[-1]
assert sa["sa_evaluations"] == int(last["evaluations"]) and 1 <= sa["sa_evaluations"] <= 5
EOF
    then ok; else bad "sa's JSON fields"; fi
fi
# plan: its spec is its settings, what it chose (its winning candidate) apart
kv run $SMALL --policy plan,static --json "$T/plan.json" -q
if [ -n "$PY" ]; then
    if "$PY" - "$T/plan.json" <<'EOF'
import json, sys
plan, st = json.load(open(sys.argv[1]))["results"]
assert plan["spec"].startswith("plan:") and plan["params"] and plan["chosen"], plan
assert plan["chosen"] != plan["spec"] and st["chosen"] is None, (plan["chosen"], st["chosen"])
EOF
    then ok; else bad "plan's spec and choice"; fi
fi
kv run $SMALL --policy static --sa-log "$T/nosa.csv"
[ "$rc" -eq 2 ] && [ ! -e "$T/nosa.csv" ] && ok || bad "--sa-log without sa: exit $rc"

# --- tiers beyond two: the tier and link columns, -v, the machine in the JSON ------------
# Three tiers, the third behind a link of its own: tier0..2 and link1..2 columns appended.
kv run $SMALL --policy static,reactive --set tiers=3 --set tier2_capacity=1GB \
    --set tier2_bandwidth=10GB/s --set link2_bandwidth=5GB/s --set dram_capacity=1MB \
    --json "$T/k3.json" --csv "$T/k3.csv" -q -v
expect_ok "run with three tiers"
for c in tier0_kv_read_bytes tier1_read_bytes tier2_write_bytes tier2_moved_in_bytes \
    tier2_busy_s link1_up_bytes link2_down_bytes link2_up_busy_s; do
    head -n 1 "$T/k3.csv" | tr ',' '\n' | grep -qx "$c" && ok || bad "k3.csv lacks $c"
    has "k3.json has $c" "\"$c\"" "$T/k3.json"
done
head -n 1 "$T/k3.csv" | tr ',' '\n' | grep -q '^tier3_' && bad "k3.csv has a tier 3" || ok
has "k3.json records tiers" '"tiers":[[:space:]]*3' "$T/k3.json"
has "k3.json records tier2_link" '"tier2_link":[[:space:]]*2' "$T/k3.json"
has "-v prints tier 2" "^ *2 " "$T/out"
has "-v prints link 2" "link 2: " "$T/out"
has "header shows tier 2" "^tier 2 " "$T/out"
# a two-tier run records no tier parameter but has tier0, tier1 and link1 columns
head -n 1 "$T/a.csv" | grep -q ',tier1_write_bytes,' && ok || bad "a.csv lacks tier1 columns"
grep -q '"tier2_link"\|"tiers"' "$T/a.json" && bad "a.json records tier parameters" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
