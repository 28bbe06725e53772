#!/bin/sh
# CLI tests of --timeline and --placement: a case worked by hand, per-step times that add up
# to the run's total, occupancy within the slots, independence from --threads, and the plot.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_timeline
. "$(dirname "$0")/harness.sh"
expect_ok() { if [ "$rc" -eq 0 ]; then ok; else bad "$1: exit $rc"; fi; }
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then echo "python3 not found: skipped"; echo "0 passed, 0 failed"; exit 0; fi

# --- worked by hand -------------------------------------------------------------------------
# A bool trace, N = 3 steps, L = 1, C = 4 so P = 2; reads: step 0 {1}, step 1 {0, 2},
# step 2 {0, 1, 2, 3}.  tok_bytes = 2 x 1 head x 1 dim x 1 byte x batch 1 = 2 bytes; no
# weights; HBM 2 bytes = 1 slot; HBM 2 B/s, DRAM 4 B/s, link 1 B/s each way.
# static keeps position 0 in HBM; every new token goes to DRAM (no free slot):
#   step 0: read 1 from DRAM (2 B DRAM, 2 B up), new token 2 to DRAM (2 B DRAM, 2 B down):
#           HBM 0 s, DRAM 4/4 = 1 s, up 2 s, down 2 s -> 2 s
#   step 1: read 0 from HBM (2 B: 1 s), 2 from DRAM; new 3 to DRAM: HBM 1, DRAM 1, up 2,
#           down 2 -> 2 s
#   step 2: 0 from HBM (1 s), 1, 2, 3 from DRAM (6 B: up 6 s), new 4 to DRAM (DRAM 8 B: 2 s,
#           down 2 s) -> 6 s
# unlimited holds everything in HBM: (reads + new token) bytes / 2 B/s = 4/2, 6/2, 10/2 s,
# and 3, 4, 5 positions in HBM after steps 0, 1, 2; it has no slot limit (-1).
"$PY" - "$T/hand.npy" <<'EOF'
import struct, sys
rows = [[0, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]
d = "{'descr': '|b1', 'fortran_order': False, 'shape': (3, 1, 4), }"
tot = (10 + len(d) + 1 + 63) // 64 * 64
h = b"\x93NUMPY\x01\x00" + struct.pack("<H", tot - 10) + d.encode() + b" " * (tot - 11 - len(d)) + b"\n"
open(sys.argv[1], "wb").write(h + bytes(v for r in rows for v in r))
EOF
HAND="--trace $T/hand.npy --set layers=1 --set kv_heads=1 --set head_dim=1 --set dtype_bytes=1
 --set batch=1 --set weight_bytes=0 --set hbm_capacity=2 --set hbm_bandwidth=2
 --set dram_bandwidth=4 --set link_bandwidth=1 -q"
kv run $HAND --policy static,unlimited --timeline "$T/hand.csv" --placement "$T/static.npy"
expect_ok "the hand-worked run"
cat >"$T/want.csv" <<'EOF'
policy,step,time_s,hbm_busy_s,dram_busy_s,link_up_busy_s,link_down_busy_s,kv_read_hbm_bytes,kv_read_dram_bytes,promoted_bytes,demoted_bytes,hbm_blocks,hbm_slots,block_tokens
static,0,2,0,1,2,2,0,2,0,0,1,1,1
static,1,2,1,1,2,2,2,2,0,0,1,1,1
static,2,6,1,2,6,2,2,6,0,0,1,1,1
unlimited,0,2,2,0,0,0,2,0,0,0,3,-1,1
unlimited,1,3,3,0,0,0,4,0,0,0,4,-1,1
unlimited,2,5,5,0,0,0,8,0,0,0,5,-1,1
EOF
if cmp -s "$T/hand.csv" "$T/want.csv"; then ok
else bad "hand-worked timeline differs:"; diff "$T/want.csv" "$T/hand.csv" | head; fi
kv run $HAND --policy static,unlimited --placement "$T/unl.npy" --placement-policy unlimited
expect_ok "--placement-policy unlimited"
# (N, P + N) = (3, 5): static holds position 0 only; unlimited holds 0..P+n after step n.
check_npy() {
    "$PY" - "$1" "$2" <<'EOF'
import sys, ast
b = open(sys.argv[1], "rb").read()
hl = b[8] | (b[9] << 8)
hd = ast.literal_eval(b[10:10 + hl].decode())
assert hd["descr"] == "|b1" and hd["shape"] == (3, 5), hd
body = b[10 + hl:]
rows = [[body[5 * n + x] for x in range(5)] for n in range(3)]
want = ast.literal_eval(sys.argv[2])
assert rows == want, (rows, want)
EOF
}
if check_npy "$T/static.npy" "[[1,0,0,0,0],[1,0,0,0,0],[1,0,0,0,0]]"; then ok; else bad "static's placement"; fi
if check_npy "$T/unl.npy" "[[1,1,1,0,0],[1,1,1,1,0],[1,1,1,1,1]]"; then ok
else bad "unlimited's placement"; fi

# --- per-step times add up to the total ------------------------------------------------------
# One layer: the engine's total is the sum over steps in step order, which is what the
# timeline's rows add up to, so the sums must match to the last bit.  With several layers
# the total sums each layer first, the rows each step first: the same to rounding.
sums() { # $1 timeline, $2 JSON, $3 tolerance (0: exact)
    "$PY" - "$1" "$2" "$3" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
res = json.load(open(sys.argv[2]))["results"]
tol = float(sys.argv[3])
seen = 0
for r in res:
    mine = [x for x in rows if x["policy"].split(" ")[0].split(":")[0] == r["policy"]]
    if r["policy"] in ("bound", "lpbound", "plan"):  # not simulated step by step: no rows
        assert not mine, r["policy"]
        continue
    assert len(mine) == json.load(open(sys.argv[2]))["trace"]["steps"], (r["policy"], len(mine))
    assert [int(x["step"]) for x in mine] == list(range(len(mine)))
    t = 0.0
    for x in mine:
        t += float(x["time_s"])
        assert float(x["time_s"]) == max(float(x[k]) for k in
            ("hbm_busy_s", "dram_busy_s", "link_up_busy_s", "link_down_busy_s")), x
        slots = int(x["hbm_slots"])
        assert slots == -1 or 0 <= int(x["hbm_blocks"]) <= slots, x
    want = r["total_time_s"]
    assert (t == want) if tol == 0 else abs(t - want) <= tol * want, (r["policy"], t, want)
    for k in ("promoted_bytes", "demoted_bytes", "kv_read_hbm_bytes", "kv_read_dram_bytes"):
        assert sum(int(x[k]) for x in mine) == r[k], (r["policy"], k)
    seen += 1
assert seen >= 5, seen
EOF
}
cat >"$T/small.ini" <<EOF
hbm_capacity = 1000819200
weight_bytes = 1000000000
prompt = 200
steps = 20
EOF
ALL="--config $T/small.ini --policy static,lpbound,reactive,page,lookahead,sa,unlimited,bound,plan -q"
kv run $ALL --set layers=1 --timeline "$T/one.csv" --json "$T/one.json"
expect_ok "one layer"
if sums "$T/one.csv" "$T/one.json" 0; then ok; else bad "one layer: the steps do not add up exactly"; fi
kv run $ALL --set layers=2 --timeline "$T/two.csv" --json "$T/two.json" --threads 2
expect_ok "two layers"
if sums "$T/two.csv" "$T/two.json" 1e-12; then ok; else bad "two layers: the steps do not add up"; fi
# and to the table's time, digit for digit as printed (six decimals)
if "$PY" - "$T/two.csv" "$T/out" <<'EOF'
import csv, sys
tot = {}
for r in csv.DictReader(open(sys.argv[1])):
    tot[r["policy"]] = tot.get(r["policy"], 0.0) + float(r["time_s"])
seen = 0
for line in open(sys.argv[2]):
    for label, t in tot.items():
        if line.startswith(label + "  "):
            printed = line[len(label):].split()[0]
            assert printed == "%.6f" % t, (label, printed, t)
            seen += 1
assert seen == len(tot), (seen, tot)
EOF
then ok; else bad "the timeline's steps do not add up to the table's times"; fi
kv run $ALL --set layers=2 --timeline "$T/two1.csv" --threads 1
if cmp -s "$T/two.csv" "$T/two1.csv"; then ok; else bad "the timeline depends on --threads"; fi
# sa's rows are lookahead's at sa's best point
if "$PY" - "$T/two.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sa = [r for r in rows if r["policy"].startswith("sa (")]
assert len(sa) == 20, len(sa)
EOF
then ok; else bad "sa has no timeline"; fi

# --- refusals -----------------------------------------------------------------------------------
mkdir "$T/reports"
refused "--placement-layer out of range" 1 "--placement-layer 2" run --config "$T/small.ini" --set layers=2 -q --placement "$T/reports/p.npy" --placement-layer 2
refused "--placement-policy not run" 1 "page" run --config "$T/small.ini" --set layers=2 -q --policy static --placement "$T/reports/p.npy" --placement-policy page
refused "--placement of bound" 1 "not simulated step by step" run --config "$T/small.ini" --set layers=2 -q --policy bound --placement "$T/reports/p.npy"

# --- the plot -----------------------------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1; then
    kv plot timeline "$T/two.csv" -o "$T/tl"
    expect_ok "plot timeline"
    for e in png svg pdf gp; do
        if [ -s "$T/tl.$e" ]; then ok; else bad "plot timeline made no tl.$e"; fi
    done
fi
refused "plot a missing file" 1 "nofile.csv" plot timeline "$T/nofile.csv" -o "$T/reports/x"
printf 'a,b\n1,2\n' >"$T/notl.csv"
refused "plot a file that is not a timeline" 1 "not a timeline" plot timeline "$T/notl.csv" -o "$T/reports/x"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
