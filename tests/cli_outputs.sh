#!/bin/sh
# CLI tests of where outputs go: "-" is stdout; a symlink is written through and stays a
# link; a FIFO is written to, not replaced; an output that is an input of the same run is
# refused before anything is written; policy specs naming a key twice are refused; typos get
# "did you mean"; a run where nothing spills says so in one line.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_outputs
. "$(dirname "$0")/harness.sh"
expect_ok() { if [ "$rc" -eq 0 ]; then ok; else bad "$1: exit $rc"; fi; }
has() { if grep -q -- "$2" "$3"; then ok; else bad "$1: no match for $2 in $(basename "$3")"; fi; }
hasnt() { if grep -q -- "$2" "$3"; then bad "$1: $2 in $(basename "$3")"; else ok; fi; }
PY=$(command -v python3 || true)

# 2 layers, P 200, N 20, 100 slots per layer < P (as cli_reports.sh): the KV spills.
cat >"$T/small.ini" <<EOF
hbm_capacity = 1000819200
weight_bytes = 1000000000
layers = 2
prompt = 200
steps = 20
EOF
SMALL="--config $T/small.ini --policy static,unlimited -q"
mkdir "$T/w" && cd "$T/w" || exit 1

# --- "-" is stdout, and stdout then carries only the report -----------------------------
kv run $SMALL --json -
expect_ok "--json -"
if [ -e "$T/w/-" ]; then bad "--json - made a file named -"; else ok; fi
hasnt "--json -: no table on stdout" "vs static" "$T/out"
if [ -n "$PY" ]; then
    if "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["results"])==2' \
        "$T/out"; then ok; else bad "--json -: stdout is not the JSON report"; fi
fi
kv run $SMALL --csv -
expect_ok "--csv -"
if head -n 1 "$T/out" | grep -q '^hw,'; then ok; else bad "--csv -: no CSV header first"; fi
if [ "$(lines "$T/out")" -eq 3 ]; then ok; else bad "--csv -: $(lines "$T/out") lines, wanted 3"; fi
refused "two outputs to stdout" 2 "stdout" run $SMALL --json - --csv -

# --- a symbolic link is written through; the link stays ----------------------------------
ln -s real.json link.json
kv run $SMALL --json link.json
expect_ok "--json to a dangling link"
if [ -L link.json ] && [ -f real.json ] && grep -q '"results"' real.json; then ok
else bad "--json link.json: the link was not written through"; fi
echo old >real.csv
chmod 640 real.csv
ln -s "$T/w/real.csv" abs.csv
kv run $SMALL --csv abs.csv
if [ -L abs.csv ] && head -n 1 real.csv | grep -q '^hw,'; then ok
else bad "--csv abs.csv: the target was not replaced through the link"; fi
if [ "$(stat -c %a real.csv)" = 640 ]; then ok; else bad "the target lost its permissions"; fi
if [ -z "$(ls | grep tmp)" ]; then ok; else bad "temporary files left: $(ls)"; fi

ln -s real.ck link.ck
kv run $SMALL --policy sa:budget=2 --checkpoint link.ck
if [ -L link.ck ] && [ -s real.ck ]; then ok; else bad "--checkpoint through a link: $(ls -l)"; fi

# --- a FIFO is written to, not replaced by a file ---------------------------------------
if mkfifo fifo 2>/dev/null; then
    timeout 20 cat fifo >got.csv &
    reader=$!
    kv run $SMALL --csv fifo
    wait $reader
    expect_ok "--csv FIFO"
    if [ -p fifo ]; then ok; else bad "--csv fifo replaced the FIFO"; fi
    if head -n 1 got.csv | grep -q '^hw,'; then ok; else bad "the FIFO's reader got no CSV"; fi
    rm -f fifo
fi
# /dev/stdout is a link to the process's stdout: the report goes there, the device stays
kv run $SMALL --csv /dev/stdout
expect_ok "--csv /dev/stdout"
if head -n 1 "$T/out" | grep -q '^hw,'; then ok; else bad "--csv /dev/stdout: not on stdout"; fi

# --- an output that is an input of the run is refused, and the input is untouched -----------
"$KVPLACE" trace gen --config "$T/small.ini" -q -o t.npy || bad "trace gen"
cp t.npy t.keep
cp "$T/small.ini" ini.keep
TR="--set hbm_capacity=1000819200 --set weight_bytes=1000000000 --set layers=2 -q"
refused "--json = --trace" 2 "--trace" run $TR --trace t.npy --json t.npy
refused "--csv = --trace by another name" 2 "never overwrites" run $TR --trace t.npy --csv ./../w/t.npy
ln -s t.npy tlink.npy
refused "--sa-log through a link to the trace" 2 "--trace" run $TR --trace t.npy --policy sa --sa-log tlink.npy
refused "--csv = --config" 2 "--config" run --config "$T/small.ini" -q --csv "$T/small.ini"
refused "trace gen -o = --config" 2 "--config" trace gen --config "$T/small.ini" -o "$T/small.ini"
refused "--json = --checkpoint (not yet written)" 2 "--checkpoint" run $SMALL --policy sa --checkpoint new.ck --json "$T/w/./new.ck"
if cmp -s t.npy t.keep && cmp -s "$T/small.ini" ini.keep; then ok; else bad "an input was changed"; fi
if [ -e new.ck ]; then bad "a refused run wrote its checkpoint"; else ok; fi
refused "--json and --csv the same file by two names" 2 "same file" run $SMALL --json x.out --csv ./x.out

# --- policy specs and typos ---------------------------------------------------------------
refused "a policy key given twice" 1 "twice" run $SMALL --policy lookahead:W=3:W=4
refused "policy name typo" 1 'did you mean "lookahead"' run --policy lookahed
refused "policy parameter typo" 1 'did you mean "R"' run --policy lookahead:r=0.5
refused "command typo" 2 'did you mean "run"' rnu
refused "option typo" 2 "did you mean --json" run --jsn x.json
refused "trace option typo" 2 "did you mean --output" trace gen --ouptut x.npy
refused "study option typo" 2 "did you mean --out" study sparsity --ot x
refused "hardware preset typo" 1 'did you mean "gh200-paper"' run --hw gh200-papr
refused "model preset typo" 1 'did you mean "llama-3.1-8b"' run --model llama-3.1-8

# --- nothing spills: one line instead of a table of 1.000s ------------------------------------
# 2 layers of the GH200 preset: 7.94 GB of KV budget holds 969174 tokens per layer >> 220.
kv run --set layers=2 --set prompt=200 --set steps=20 --policy static,unlimited,reactive -q
expect_ok "a run where nothing spills"
has "nothing spills said" "^nothing spills: .* 220 tokens per layer" "$T/out"
hasnt "no table of 1.000s" "vs static" "$T/out"
kv run --set layers=2 --set prompt=200 --set steps=20 --policy static,unlimited -q -v
has "-v prints the table" "vs static" "$T/out"
kv run $SMALL
hasnt "a run that spills has no such line" "nothing spills" "$T/out"
has "a run that spills has its table" "vs static" "$T/out"

# --- a config file holding a whole experiment: [run] options; the command line wins -----------
mkdir -p "$T/exp" && cd "$T/exp" || exit 1
cat >exp.ini <<EOF
hbm_capacity = 1000819200
weight_bytes = 1000000000
layers = 2
prompt = 200
steps = 20

[run]
policy = static,reactive,unlimited
json = out.json
timeline = tl.csv   # per step
EOF
kv run --config exp.ini -q
expect_ok "a run from an experiment file"
if [ -s out.json ] && [ -s tl.csv ]; then ok; else bad "[run] outputs not written: $(ls)"; fi
if [ "$(grep -c '"policy":' out.json)" -eq 3 ]; then ok; else bad "[run] policy not applied"; fi
rm -f out.json tl.csv
kv run --config exp.ini -q --policy static --json cli.json
if [ -s cli.json ] && [ ! -e out.json ] && [ "$(grep -c '"policy":' cli.json)" -eq 1 ]; then ok
else bad "the command line does not override [run]: $(ls)"; fi
if [ -s tl.csv ]; then ok; else bad "[run] timeline not kept when other options were given"; fi
printf '[run]\njsno = x.json\n' >typo.ini
refused "[run] key typo" 1 'typo.ini:2: [run] has no key "jsno" (did you mean "json"?)' run --config typo.ini
printf '[run]\njson = self.ini\n' >self.ini
refused "[run] output over the config itself" 2 "never overwrites" run --config self.ini
cd "$T/w" || exit 1

# --- progress: a bar on a terminal, naming sa's evaluations; nothing for a short run elsewhere
kv run $SMALL --policy static,reactive
if [ ! -s "$T/err" ]; then ok; else bad "a short run wrote progress to a non-terminal"; fi
if command -v script >/dev/null 2>&1; then
    # (the label comes with the search's events; sa's level 0 is one pass before its first
    # event, so the budget reaches past level 0's points: its later passes show the label)
    script -qc "'$KVPLACE' run --config '$T/small.ini' --policy static,sa:budget=6 >/dev/null" \
        /dev/null </dev/null | tr '\r' '\n' >"$T/tty.txt" 2>/dev/null
    has "terminal: the sa phase counts evaluations" '^kvplace: \[2/2\] sa evaluation [1-6]/6 ' "$T/tty.txt"
    has "terminal: a bar with a percentage" '#* *[0-9]*%' "$T/tty.txt"
    # the dual's phase: polled once as it starts and once when every layer is done
    script -qc "'$KVPLACE' run --config '$T/small.ini' --policy plan:grid=0 >/dev/null" \
        /dev/null </dev/null | tr '\r' '\n' >"$T/tty.txt" 2>/dev/null
    has "terminal: the dual's layers" '^kvplace: \[1/1\] dual' "$T/tty.txt"
    has "terminal: the dual's last layer, its iteration and the bound on the layers done" \
        '^kvplace: \[1/1\] dual layer [0-9]*/\([0-9]*\) it [0-9]*/[0-9]*, >= [0-9.e+-]* s on \1 done' \
        "$T/tty.txt"
    has "terminal: plan's certificate while its candidates replay" \
        "^kvplace: \[1/1\] lpbound [0-9.e+-]* s; replaying plan's candidates" "$T/tty.txt"
fi

# --- nothing the program prints points outside the repository ------------------------------
: >"$T/all_help"
for args in "--help" "run --help" "trace --help" "study --help" "plot --help" \
    "compare --help" "presets" "params" "policies" "help run"; do
    # shellcheck disable=SC2086
    "$KVPLACE" $args >>"$T/all_help" 2>&1
done
if [ "$(lines "$T/all_help")" -gt 100 ]; then ok; else bad "the help texts are missing"; fi
if grep -n 'DESIG''N\.md\|PAPE''R\.md\|\.\./share''d' "$T/all_help" >"$T/cites"; then
    bad "help or presets cite files outside the repository: $(head -n 3 "$T/cites")"
else ok; fi

# --- a preset changed by --set is reported as modified, with the values -----------------------
kv run --hw gh200-paper --set hbm_capacity=1000819200 --set weight_bytes=1000000000 \
    --set layers=2 --set prompt=200 --set steps=20 --policy static,unlimited -q -v --json "$T/m.json"
has "table: hardware modified" "^hardware  gh200-paper (modified: hbm_capacity):" "$T/out"
has "table: model modified" "^model     llama-3.1-8b (modified: layers, weight_bytes):" "$T/out"
has "-v: per-tier table" "^static: tier  *KV read  *read  *written  *moved in  *moved out  *busy (s)" "$T/out"
has "-v: link 1" "^ *link 1: .* up (busy [0-9.]* s), .* down (busy [0-9.]* s)" "$T/out"
if [ -n "$PY" ]; then
    if "$PY" - "$T/m.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["scenario"]
assert s["hw"] == "gh200-paper" and s["hw_modified"] == {"hbm_capacity": 1000819200}, s
assert s["model_modified"] == {"layers": 2, "weight_bytes": 1000000000}, s
EOF
    then ok; else bad "JSON: modified presets"; fi
fi
kv run --hw gh200-paper --set layers=2 --set prompt=200 --set steps=20 --policy static -q --json "$T/u.json"
has "an unchanged preset: empty hw_modified" '"hw_modified":[[:space:]]*{' "$T/u.json"
hasnt "an unchanged preset: no modified in the table" "gh200-paper (modified" "$T/out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
