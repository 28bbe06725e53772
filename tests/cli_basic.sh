#!/bin/sh
# CLI tests: exit codes (0 ok, 1 bad input, 2 bad usage), which stream each message goes to,
# help, presets, parameter order, and that no report file is left behind by a failure.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_basic
. "$(dirname "$0")/harness.sh"

# --help and friends: exit 0, text on stdout, nothing on stderr.
expect_help() {
    if [ "$rc" -eq 0 ] && [ -s "$T/out" ] && [ ! -s "$T/err" ]; then ok; else
        bad "$1: exit $rc, stdout $(lines "$T/out") lines, stderr $(lines "$T/err") lines"
    fi
}
# A failure: exit status $2, nothing on stdout, one line "kvplace: ..." on stderr that
# contains $3.
expect_fail() {
    if [ "$rc" -ne "$2" ]; then bad "$1: exit $rc, wanted $2"; return; fi
    if [ -s "$T/out" ]; then bad "$1: wrote to stdout"; return; fi
    if [ "$(lines "$T/err")" -ne 1 ]; then bad "$1: stderr has $(lines "$T/err") lines"; return; fi
    if ! grep -q '^kvplace: ' "$T/err"; then bad "$1: stderr lacks the kvplace: prefix"; return; fi
    if ! grep -qF -- "$3" "$T/err"; then bad "$1: stderr does not name \"$3\""; return; fi
    ok
}
expect_usage() {
    expect_fail "$1" 2 "$2"
    if [ "$rc" -eq 2 ] && ! grep -q -- '--help)' "$T/err"; then bad "$1: no --help hint"; fi
}
expect_absent() {
    if [ -e "$2" ]; then bad "$1: $2 exists"; rm -f "$2"; else ok; fi
}

# A small scenario: 2 layers, 200 prompt tokens, 20 steps; HBM leaves a KV budget of
# 819200 bytes = 100 slots of tok_bytes 2*8*128*2 = 4096 per layer, fewer than the prompt.
cat >"$T/small.ini" <<EOF
; written by tests/cli_basic.sh
hbm_capacity = 1000819200
weight_bytes = 1000000000
layers = 2
prompt = 200
steps = 20
EOF
SMALL="--config $T/small.ini"

# --- help and version ----------------------------------------------------------------
kv --help;               expect_help "--help"
kv -h;                   expect_help "-h"
kv run --help;           expect_help "run --help"
grep -q 'sparsity' "$T/out" && ok || bad "run --help lists the parameters (sparsity)"
grep -q 'page_tokens' "$T/out" && ok || bad "run --help lists page_tokens"
kv run $SMALL -h;        expect_help "run ... -h"
kv trace --help;         expect_help "trace --help"
kv trace gen --help;     expect_help "trace gen --help"
kv presets --help;       expect_help "presets --help"
kv params --help;        expect_help "params --help"
kv policies --help;      expect_help "policies --help"
kv help run;             expect_help "help run"
kv help;                 expect_help "help"
kv --version;            expect_help "--version"
grep -q '^kvplace [0-9]' "$T/out" && ok || bad "--version prints kvplace N.N.N"

# --- lists from the library's tables -------------------------------------------------
kv presets;              expect_help "presets"
grep -q 'gh200-paper' "$T/out" && ok || bad "presets lists gh200-paper"
grep -q 'llama-3.1-8b' "$T/out" && ok || bad "presets lists llama-3.1-8b"
kv params;               expect_help "params"
for p in hbm_capacity hbm_bandwidth dram_capacity dram_bandwidth link_bandwidth reserve \
    layers kv_heads head_dim dtype_bytes weight_bytes batch sparsity page_tokens prompt \
    steps seed variation; do
    grep -q "^  $p " "$T/out" && ok || bad "params lists $p"
done
kv policies;             expect_help "policies"
for p in unlimited static; do grep -q "^  $p " "$T/out" && ok || bad "policies lists $p"; done

# --- usage errors: exit 2 ------------------------------------------------------------
kv frobnicate;                        expect_usage "unknown command" "frobnicate"
kv --frobnicate;                      expect_usage "unknown top-level option" "--frobnicate"
kv run --frobnicate;                  expect_usage "unknown run option" "--frobnicate"
kv run $SMALL stray;                  expect_usage "stray argument" "stray"
kv run --policy;                      expect_usage "--policy without a value" "--policy"
kv run --json;                        expect_usage "--json without a value" "--json"
kv run --json --csv x.csv;            expect_usage "--json followed by an option" "--json"
kv run --set;                         expect_usage "--set without a value" "--set"
kv run --set sparsity;                expect_usage "--set without =" "sparsity"
kv run --set =3;                      expect_usage "--set without a name" "=3"
kv run --check=yes;                   expect_usage "flag given a value" "--check"
kv run --trace "$T/x.npy" --synthetic low;  expect_usage "--trace with --synthetic" "--synthetic"
kv run --trace "$T/x.npy" --set prompt=10
expect_usage "--trace with --set prompt" "--set prompt conflicts with --trace"
kv run --trace "$T/x.npy" --set steps=10
expect_usage "--trace with --set steps" "--set steps conflicts with --trace"
kv trace;                             expect_usage "trace without a subcommand" "gen or info"
kv trace frob;                        expect_usage "unknown trace subcommand" "frob"
kv trace gen $SMALL;                  expect_usage "trace gen without -o" "-o"
kv trace info;                        expect_usage "trace info without a file" "FILE"
kv help frob;                         expect_usage "help on an unknown command" "frob"

# --- bad input: exit 1 ---------------------------------------------------------------
kv run $SMALL --policy nosuch;        expect_fail "unknown policy" 1 "nosuch"
kv run $SMALL --policy static:W=3;    expect_fail "unknown policy parameter" 1 "W"
kv run $SMALL --hw nosuch;            expect_fail "unknown hw preset" 1 "nosuch"
kv run $SMALL --model nosuch;         expect_fail "unknown model preset" 1 "nosuch"
kv run $SMALL --config "$T/none.ini"; expect_fail "missing config file" 1 "none.ini"
kv run $SMALL --set frob=1;           expect_fail "unknown parameter" 1 "frob"
kv run $SMALL --set sparsity=1.5;     expect_fail "sparsity out of range" 1 "sparsity"
kv run $SMALL --set batch=abc;        expect_fail "batch not a number" 1 "batch"
kv run $SMALL --synthetic wild;       expect_fail "unknown variation" 1 "wild"
kv run $SMALL --threads 0;            expect_fail "--threads 0" 1 "--threads"
kv run $SMALL --trace "$T/none.npy";  expect_fail "missing trace file" 1 "none.npy"
printf 'not a trace\n' >"$T/junk.npy"
kv run $SMALL --trace "$T/junk.npy";  expect_fail "not a .npy file" 1 "junk.npy"
kv trace info "$T/junk.npy";          expect_fail "trace info on junk" 1 "junk.npy"
# weights larger than HBM: validation names the problem
kv run $SMALL --set weight_bytes=2GB; expect_fail "weights over HBM" 1 "weight"

# --- no report file survives a failure -----------------------------------------------
kv run $SMALL --policy nosuch --json "$T/f.json" --csv "$T/f.csv"
expect_fail "bad policy with reports" 1 "nosuch"
expect_absent "no JSON after a bad policy" "$T/f.json"
expect_absent "no CSV after a bad policy" "$T/f.csv"
# A failure discovered only when the run starts: a trace with 2 layers, a model with 3.
kv trace gen $SMALL -q -o "$T/two.npy"
[ "$rc" -eq 0 ] && [ -s "$T/two.npy" ] && ok || bad "trace gen for the layer check: exit $rc"
kv run $SMALL --set layers=3 --trace "$T/two.npy" --json "$T/f.json" --csv "$T/f.csv"
expect_fail "trace layers differ from the model" 1 "layers"
expect_absent "no JSON after a failed run" "$T/f.json"
expect_absent "no CSV after a failed run" "$T/f.csv"
# The report's directory does not exist.
kv run $SMALL --policy static --json "$T/nodir/f.json"
expect_fail "unwritable JSON path" 1 "nodir/f.json"
ls "$T" | grep -q '\.tmp' && bad "a temporary file was left in $T" || ok
# A good CSV after a failed JSON is no better: both go.
kv run $SMALL --policy static --csv "$T/f.csv" --json "$T/nodir/f.json"
expect_fail "unwritable JSON with a CSV" 1 "nodir"
expect_absent "no CSV when the JSON failed" "$T/f.csv"

# --- success: data on stdout, stderr quiet when it is not a terminal -------------------
kv run $SMALL --policy static,unlimited
if [ "$rc" -eq 0 ] && [ -s "$T/out" ] && [ ! -s "$T/err" ]; then ok; else
    bad "a run with --policy: exit $rc, stderr $(lines "$T/err") lines"
fi
for w in gh200-paper llama-3.1-8b 'tok_bytes 4096' 'slots per layer 100' 'P = 200' \
    'N = 20' 'L = 2' 'sparsity 0.6' 'batch 1'; do
    grep -qF "$w" "$T/out" && ok || bad "the header names \"$w\""
done
for p in static unlimited; do grep -q "^$p " "$T/out" && ok || bad "a table row for $p"; done
grep -q "^bound " "$T/out" && bad "a row for bound, which was not asked for" || ok
tr -d '\n' <"$T/err" | grep -q "$(printf '\r')" && bad "progress drawn on a non-terminal" || ok
kv run $SMALL --policy static --check --threads 1 -q
[ "$rc" -eq 0 ] && ok || bad "run --check --threads 1 -q: exit $rc"

# --- order of application: every --set comes after the presets ------------------------
# Here --set precedes --hw on the command line and still wins; a preset given after a
# config file overrides the config's value.
kv run --set hbm_capacity=30GB --hw gh200-paper --model llama-3.1-8b --set prompt=100 \
    --set steps=2 --set layers=2 --policy static --json "$T/o.json" -q
[ "$rc" -eq 0 ] && ok || bad "order run: exit $rc"
grep -q '"hbm_capacity":[[:space:]]*30000000000,' "$T/o.json" && ok ||
    bad "--set hbm_capacity=30GB applies after --hw"
kv run $SMALL --model llama-3.1-8b --set hbm_capacity=24GB --set prompt=100 --set steps=2 \
    --policy static --json "$T/o.json" -q
[ "$rc" -eq 0 ] && ok || bad "config then model: exit $rc"
grep -q '"layers":[[:space:]]*32,' "$T/o.json" && ok || bad "--model after --config wins"

# --- kvplace policies --json: every policy, its parameters and its online flag ---------
kv policies --json
[ "$rc" -eq 0 ] && [ ! -s "$T/err" ] && ok || bad "policies --json: exit $rc"
if command -v python3 >/dev/null 2>&1; then
    if python3 - "$T/out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p = {x["name"]: x for x in d["policies"]}
# docs/MODEL.md §10: these are online, these are not
for n in ("static", "reactive", "page", "hot", "balanced", "payback", "steer", "whittle"):
    assert p[n]["online"] is True, n
for n in ("lookahead", "sa", "bound"):
    assert p[n]["online"] is False, n
assert [q["name"] for q in p["lookahead"]["params"]] == ["W", "R"]
for x in d["policies"]:
    for q in x["params"]:
        assert q["min"] <= q["default"] <= q["max"], (x["name"], q)
EOF
    then ok; else bad "policies --json content"; fi
fi
kv policies
grep -q '^  steer .*\[online\]$' "$T/out" && ok || bad "policies marks steer [online]"
grep -q '^  lookahead .*\[online\]' "$T/out" && bad "policies marks lookahead online" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
