#!/bin/sh
# CLI tests of `kvplace compare`: policies matched by spec across runs, ratios to the first run
# worked from the runs' own JSON, the differing scenario parameters named, missing policies
# shown as -, and bad input refused with one line.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_compare
. "$(dirname "$0")/harness.sh"
expect_ok() { if [ "$rc" -eq 0 ]; then ok; else bad "$1: exit $rc"; fi; }
has() { if grep -q -- "$2" "$3"; then ok; else bad "$1: no match for $2 in $(basename "$3")"; fi; }
PY=$(command -v python3 || true)

cat >"$T/small.ini" <<EOF
hbm_capacity = 1000819200
weight_bytes = 1000000000
layers = 2
prompt = 200
steps = 20
EOF
kv run --config "$T/small.ini" -q --policy static,reactive,lookahead:W=8,unlimited --json "$T/a.json"
kv run --config "$T/small.ini" -q --set sparsity=0.8 --policy static,reactive,page,unlimited --json "$T/b.json"
kv compare "$T/a.json" "$T/b.json"
expect_ok "compare two runs"
has "the runs named" "^A = $T/a.json" "$T/out"
has "the parameter that differs" "^  sparsity  *A: 0.6  B: 0.8" "$T/out"
has "a policy only in A" "^lookahead:W=8:R=1 .* - *-$" "$T/out"
has "a policy only in B" "^page:page_tokens=16  *- " "$T/out"
kv compare "$T/a.json" "$T/b.json" --metric total_time_s --csv "$T/c.csv"
expect_ok "compare --csv"
if [ -n "$PY" ]; then
    if "$PY" - "$T/a.json" "$T/b.json" "$T/c.csv" "$T/out" <<'EOF'
import csv, json, sys
a = {r["spec"]: r for r in json.load(open(sys.argv[1]))["results"]}
b = {r["spec"]: r for r in json.load(open(sys.argv[2]))["results"]}
rows = list(csv.DictReader(open(sys.argv[3])))
for r in rows:
    src = a if r["run"] == "A" else b
    assert float(r["total_time_s"]) == src[r["spec"]]["total_time_s"], r
    if r["spec"] in a:
        assert abs(float(r["ratio_to_first"]) - src[r["spec"]]["total_time_s"] /
                   a[r["spec"]]["total_time_s"]) < 1e-15, r
    else:
        assert r["ratio_to_first"] == "-1", r
assert len(rows) == 4 + 4, len(rows)
# the table's ratio for static, to 4 decimals
want = "%.4f" % (b["static"]["total_time_s"] / a["static"]["total_time_s"])
line = [l for l in open(sys.argv[4]) if l.startswith("static ")][0]
assert line.split()[-1] == want, (line, want)
EOF
    then ok; else bad "compare's numbers"; fi
fi
kv compare "$T/a.json" "$T/b.json" --csv -
if head -n 1 "$T/out" | grep -q '^policy,spec,run,file,throughput_tok_s,ratio_to_first$'; then ok
else bad "--csv -: stdout is not the CSV alone"; fi

mkdir "$T/reports"
echo '{"x": 1}' >"$T/reports/../notrun.json"
refused "not a run report" 1 "not a kvplace run report" compare "$T/a.json" "$T/notrun.json"
echo 'nope' >"$T/bad.json"
refused "not JSON" 1 "bad.json: not JSON" compare "$T/bad.json"
refused "a missing file" 1 "missing.json" compare "$T/missing.json"
refused "an unknown metric" 1 "no numeric field wat" compare "$T/a.json" --metric wat
refused "the CSV over an input" 2 "never overwrites" compare "$T/a.json" "$T/b.json" --csv "$T/b.json"
refused "no files" 2 "missing" compare

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
