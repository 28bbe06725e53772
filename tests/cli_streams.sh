#!/bin/sh
# Streams through the CLI (docs/MODEL.md "Streams"): a 4-D trace (one stream per KV head),
# --trace repeated (one file per sequence), --set sequences; the per-sequence cells of the
# reports; the refusals.  Run by tests/run.sh; ends "N passed, N failed".
NAME=cli_streams
. "$(dirname "$0")/harness.sh"
mkdir "$T/reports"
J="$T/reports/r.json"

cat >"$T/small.ini" <<EOF2
hbm_capacity = 1000300000
weight_bytes = 1000000000
layers = 2
EOF2
SMALL="--config $T/small.ini"

ones() { head -c "$2" /dev/zero | tr '\0' '\1' >>"$1"; }

# bool marks (every position read): a: 4 steps, P = 20; b: 2 steps, P = 9; 4-D: 8 heads
npy "$T/a.npy" '|b1' False '(4, 2, 23)'; ones "$T/a.npy" 184
npy "$T/b.npy" '|b1' False '(2, 2, 10)'; ones "$T/b.npy" 40
npy "$T/c3.npy" '|b1' False '(2, 3, 10)'; ones "$T/c3.npy" 60
npy "$T/h8.npy" '|b1' False '(4, 2, 8, 23)'; ones "$T/h8.npy" 1472
npy "$T/h3.npy" '|b1' False '(4, 2, 3, 23)'; ones "$T/h3.npy" 552

# two sequences: the report names them, decoded tokens summed
kv run $SMALL --trace "$T/a.npy" --trace "$T/b.npy" --policy static,reactive,lookahead \
    --json "$J" -q
if [ "$rc" -ne 0 ]; then bad "two sequences run (exit $rc)"; else ok; fi
python3 - "$J" <<'PY' && ok || bad "two sequences: report"
import json, sys
d = json.load(open(sys.argv[1]))
t = d["trace"]
assert t["sequences"] == 2 and t["streams"] == 2 and t["heads"] == 1, t
for r in d["results"]:
    assert (r["seq0_prompt"], r["seq0_steps"], r["seq1_prompt"], r["seq1_steps"]) == (20, 4, 9, 2)
    # every position read: (20+21+22+23) + (9+10) tokens per layer, 4096 B each, 2 layers
    reads = r["seq0_kv_read_hbm_bytes"] + r["seq0_kv_read_dram_bytes"]
    assert reads == 86 * 4096 * 2, reads
    reads = r["seq1_kv_read_hbm_bytes"] + r["seq1_kv_read_dram_bytes"]
    assert reads == 19 * 4096 * 2, reads
    assert abs(r["throughput_tok_s"] * r["total_time_s"] - 6) < 1e-9
PY

# a 4-D trace: one stream per head, a stream's token is tok_bytes / 8
kv run $SMALL --trace "$T/h8.npy" --policy static,bound --json "$J" -q
if [ "$rc" -ne 0 ]; then bad "4-D run (exit $rc)"; else ok; fi
python3 - "$J" <<'PY' && ok || bad "4-D: report"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["trace"]["heads"] == 8 and d["trace"]["sequences"] == 1, d["trace"]
r = d["results"][0]
# 300 kB budget over 2 layers of 512-byte stream tokens: 292 slots shared by the heads
assert r["slots"] == 292, r["slots"]
assert r["kv_read_hbm_bytes"] + r["kv_read_dram_bytes"] == 86 * 4096 * 2
PY

# synthetic sequences: deterministic, their own prompts
kv run $SMALL --set prompt=40 --set steps=6 --set sequences=3 --policy static --json "$J" -q
cp "$J" "$T/first.json"
kv run $SMALL --set prompt=40 --set steps=6 --set sequences=3 --policy static --json "$J" -q
cmp -s "$J" "$T/first.json" && ok || bad "sequences=3: same output twice"
python3 - "$J" <<'PY' && ok || bad "sequences=3: report"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"][0]
assert d["scenario"]["sequences"] == 3
assert [r["seq%d_steps" % q] for q in range(3)] == [6, 6, 6]
assert r["seq0_prompt"] == 40 and all(r["seq%d_prompt" % q] >= 1 for q in range(3))
assert "seq3_prompt" not in r
PY

# per-head synthetic sequences: 2 sequences x 8 heads
kv run $SMALL --heads --set prompt=40 --set steps=6 --set sequences=2 --policy static,lookahead \
    --json "$J" -q
python3 - "$J" <<'PY' && ok || bad "--heads with sequences: report"
import json, sys
d = json.load(open(sys.argv[1]))
assert (d["trace"]["streams"], d["trace"]["heads"], d["trace"]["sequences"]) == (16, 8, 2)
assert d["results"][0]["seq1_steps"] == 6
PY
rm -f "$T/reports/"*
refused "--heads with --trace" 2 "--heads makes one synthetic trace per KV head" \
    run $SMALL --heads --trace "$T/a.npy" --policy static --json "$J"

# one stream: the reports are as before streams (no sequence cells, no sequences column)
kv run $SMALL --trace "$T/a.npy" --policy static --json "$J" --csv "$T/reports/r.csv" -q
if grep -q 'seq0_\|"streams"\|sequences' "$J" "$T/reports/r.csv"; then
    bad "one stream: sequence cells in the reports"
else ok; fi
rm -f "$T/reports/"*

# refusals: one line, exit 1 (bad input) or 2 (usage), no report left
refused "traces of different layers" 1 "c3.npy: trace has 3 layers; $T/a.npy has 2" \
    run $SMALL --trace "$T/a.npy" --trace "$T/c3.npy" --policy static --json "$J"
refused "4-D heads not kv_heads" 1 "h3.npy: 4-D trace has 3 heads; model llama-3.1-8b has kv_heads 8" \
    run $SMALL --trace "$T/h3.npy" --policy static --json "$J"
refused "3-D beside 4-D" 1 "h8.npy: 4-D; $T/a.npy is 3-D" \
    run $SMALL --trace "$T/a.npy" --trace "$T/h8.npy" --policy static --json "$J"
refused "sequences with --trace" 2 "--set sequences makes synthetic sequences" \
    run $SMALL --trace "$T/a.npy" --set sequences=2 --policy static --json "$J"
refused "streams with three tiers" 1 "several streams (KV heads or sequences) with more than two tiers are not supported yet" \
    run $SMALL --set tiers=3 --set tier2_capacity=1GB --set tier2_bandwidth=50GB/s \
    --set link2_bandwidth=20GB/s --trace "$T/h8.npy" --policy static,lpbound --json "$J"
refused "optimal: too large on streams" 1 "optimal: $T/h8.npy is too large for the exact solver: 8 streams x up to 24 positions x steps 4 = 768 per layer (at most 700)" \
    run $SMALL --trace "$T/h8.npy" --policy optimal --json "$J"
refused "sequences out of range" 1 "sequences: 65 is out of range" \
    run $SMALL --set sequences=65 --policy static --json "$J"

refused "placement on streams" 1 "a placement is one stream's positions" \
    run $SMALL --trace "$T/h8.npy" --policy static --placement "$T/reports/p.npy"

# the dual, plan, the exact optimum and the online family on two sequences and on 8 heads
kv run $SMALL --trace "$T/a.npy" --trace "$T/b.npy" \
    --policy bound,lpbound,optimal:relax=1,optimal,plan,hot,balanced,payback,steer,whittle --json "$J" -q
if [ "$rc" -ne 0 ]; then bad "newer policies on two sequences (exit $rc)"; else ok; fi
python3 - "$J" <<'PY' && ok || bad "newer policies on two sequences: report"
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["policy"]: x for x in d["results"]}
assert set(r) == {"bound", "lpbound", "optimal", "plan", "hot", "balanced", "payback", "steer",
                  "whittle"}, set(r)
t = lambda p: r[p]["total_time_s"]
assert t("bound") <= t("lpbound") * (1 + 1e-9) <= t("optimal") * (1 + 2e-9) <= t("plan") * (1 + 3e-9)
for p in ("plan", "hot", "balanced", "payback", "steer", "whittle"):
    assert t("optimal") <= t(p) * (1 + 1e-9), p
    assert r[p]["seq1_steps"] == 2
PY
kv run $SMALL --trace "$T/h8.npy" --policy lpbound,plan,hot,steer --json "$J" -q
if [ "$rc" -ne 0 ]; then bad "newer policies on 8 heads (exit $rc)"; else ok; fi

# trace info on a 4-D file: the heads' agreement (all read everything here: 1)
kv trace info "$T/h8.npy"
if [ "$rc" -eq 0 ] && grep -q '^heads      8 streams' "$T/out" && grep -q '^jaccard    1:' "$T/out" &&
    grep -q 'shape      (4, 2, 8, 23)' "$T/out"; then ok; else bad "trace info on 4-D"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
