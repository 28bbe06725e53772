#!/bin/sh
# `optimal` through the CLI, and its model cross-checked with a second solver: the model of
# one small case, written by GLPK as a CPLEX LP file (build/tests/test_optimal lp), solved by
# CBC (coinor-cbc) when it is installed, must have GLPK's optimum, as an integer program and
# as its relaxation.  Run by tests/run.sh with KVPLACE=path/to/kvplace.
NAME=cli_optimal
. "$(dirname "$0")/harness.sh"
TEST_OPTIMAL=$(dirname "$KVPLACE")/tests/test_optimal

# 1 layer x 40 tokens x 12 steps on the study's machine, 20 slots: within the size limit.
cat >"$T/small.ini" <<EOT
hbm_capacity = 81920
weight_bytes = 0
layers = 1
prompt = 40
steps = 12
EOT
kv run --config "$T/small.ini" --policy static,bound,optimal:relax=1,optimal --csv "$T/r.csv" -q
# the columns by name (schema 2: the scenario's columns come first)
col() { head -1 "$T/r.csv" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
PC=$(col policy)
TC=$(col total_time_s)
if [ "$rc" -eq 0 ] && [ "$(awk -F, -v p="$PC" 'NR > 1 && $p == "optimal"' "$T/r.csv" | wc -l)" -eq 2 ]
then ok; else
    bad "optimal runs on 1 x 40 x 12 (exit $rc)"; fi
# static >= optimal >= optimal:relax=1 >= bound
if awk -F, -v c="$TC" 'NR > 1 { t[NR - 1] = $c } END { exit !(t[1] >= t[4] && t[4] >= t[3] && t[3] >= t[2]) }' \
    "$T/r.csv"; then ok; else bad "static >= optimal >= relax >= bound"; cat "$T/r.csv"; fi

if ! command -v cbc >/dev/null 2>&1; then
    echo "cbc not installed: the cross-check is skipped"
else
    # lp: the two-tier program; lp3: the three-tier one (docs/BOUNDS.md "More than two tiers")
    for mode in lp lp3; do
    for kind in mip relax; do
        if ! "$TEST_OPTIMAL" $mode "$T/m.lp" $kind >"$T/glpk" 2>"$T/err"; then
            bad "test_optimal $mode $kind: $(cat "$T/err")"; continue; fi
        cbc "$T/m.lp" solve quit >"$T/cbc" 2>&1
        g=$(awk '/^objective/ { print $2 }' "$T/glpk")
        c=$(sed -n 's/^Objective value: *//p; s/^Optimal - objective value *//p' "$T/cbc" | head -n 1)
        if [ -n "$g" ] && [ -n "$c" ] &&
            awk -v g="$g" -v c="$c" 'BEGIN { d = g - c; if (d < 0) d = -d; exit !(d <= 1e-6 * g) }'
        then ok; else bad "$mode $kind: GLPK $g, CBC $c"; sed 's/^/    cbc: /' "$T/cbc" | tail -n 5; fi
    done
    done
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
