#!/bin/sh
# Checkpoints through the CLI (docs/ROBUSTNESS.md): a run of sa stopped by a real SIGINT or
# SIGTERM says how many evaluations it saved and exits 130 or 143, leaving no report; the
# resumed run writes a JSON byte-identical to an uninterrupted run's; a corrupt, truncated,
# foreign or mismatched checkpoint is refused with one line naming the file; `trace gen`
# stopped by a signal leaves no file.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_ck
. "$(dirname "$0")/harness.sh"
recs() { n=$(grep -c '^rec ' "$1" 2>/dev/null); echo "${n:-0}"; }

# Evaluations slow enough to interrupt (about 0.1 s each since the lookahead grid's AVX-512
# kernels; 2 layers were too few then: the run could end before the signal), seconds under
# the sanitizers: 8 layers of a 20000-token prompt, 3000 steps; batch 64 makes the KV overflow HBM
# (15143 slots per layer), so the search has something to find.  moves=10 makes the search
# stop on its budget of 10 rather than converge.
S="--hw gh200-paper --model llama-3.1-8b --set layers=8 --set prompt=20000 --set steps=3000
   --set batch=64 --policy sa:budget=10:moves=10 -q"

"$KVPLACE" run $S --json "$T/a.json" >/dev/null 2>"$T/err"
[ $? -eq 0 ] && [ -s "$T/a.json" ] && ok || bad "uninterrupted run"

# interrupt SIGNAL STATUS: starts a run with --checkpoint, sends SIGNAL once the checkpoint
# holds 3 evaluations, expects STATUS and the one line; then resumes and compares.
interrupt() {
    sig=$1 want=$2 ck="$T/ck.$1"
    rm -f "$ck" "$T/b.json"
    "$KVPLACE" run $S --checkpoint "$ck" --json "$T/b.json" >"$T/stdout" 2>"$T/err" &
    pid=$!
    waited=0
    while [ "$(recs "$ck")" -lt 3 ] && [ $waited -lt 6000 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.02
        waited=$((waited + 1))
    done
    kill -s "$sig" $pid
    wait $pid
    rc=$?
    n=$(recs "$ck")
    if [ "$rc" -ne "$want" ]; then bad "SIG$sig: exit $rc, wanted $want"
    elif [ -s "$T/stdout" ] || [ -e "$T/b.json" ]; then bad "SIG$sig: output written"
    elif [ "$(lines "$T/err")" -ne 1 ]; then bad "SIG$sig: stderr has $(lines "$T/err") lines"
    elif ! grep -qxF \
        "kvplace: interrupted; $n evaluations saved to $ck; continue with --resume $ck" \
        "$T/err"; then bad "SIG$sig: the message"
    elif [ "$n" -ge 10 ]; then bad "SIG$sig: the run ended before the signal ($n saved)"
    else ok
    fi
    ls "$T" | grep -q '\.tmp' && bad "SIG$sig: a temporary file was left" || ok
    "$KVPLACE" run $S --resume "$ck" --json "$T/b.json" >/dev/null 2>"$T/err"
    rc=$?
    [ "$rc" -eq 0 ] && ok || bad "SIG$sig: resumed run: exit $rc"
    cmp -s "$T/a.json" "$T/b.json" && ok || bad "SIG$sig: resumed JSON differs"
    [ "$(recs "$ck")" -eq 10 ] && ok || bad "SIG$sig: $(recs "$ck") evaluations saved, wanted 10"
}
interrupt INT 130
interrupt TERM 143

CK="$T/ck.INT"
# Everything saved: resuming again runs nothing new and gives the same bytes.
"$KVPLACE" run $S --resume "$CK" --json "$T/c.json" >/dev/null 2>"$T/err"
cmp -s "$T/a.json" "$T/c.json" && ok || bad "second resume differs"

# Refusals.
refused "--checkpoint over an existing file" 1 "--checkpoint $CK: the file exists" \
    run $S --checkpoint "$CK"
sed 's/^rec \([0-9]\)/rec 1\1/' "$CK" >"$T/flip.ck"   # one record's W changed
cp "$T/flip.ck" "$T/flip.orig"
refused "corrupt record" 1 "checksum mismatch: the file is corrupt" run $S --resume "$T/flip.ck"
grep -q "flip.ck:[0-9]*: " "$T/err" && ok || bad "the corrupt file and line are named"
cmp -s "$T/flip.ck" "$T/flip.orig" && ok || bad "a refused checkpoint was rewritten"
sed '$d' "$CK" >"$T/cut.ck"
refused "no end line" 1 "cut.ck: cut short" run $S --resume "$T/cut.ck"
printf 'hello\n' >"$T/magic.ck"
refused "bad magic" 1 "magic.ck: not a kvplace checkpoint" run $S --resume "$T/magic.ck"
: >"$T/empty.ck"
refused "empty" 1 "empty.ck: file is empty" run $S --resume "$T/empty.ck"
W="--resume $CK: checkpoint saved for another scenario or trace"
refused "another scenario" 1 "$W (sparsity=0.59999999999999998 there, sparsity=0.5 here)" \
    run $S --set sparsity=0.5 --resume "$CK"
refused "a directory" 1 "is a directory" run $S --resume "$T"
refused "unwritable checkpoint" 1 "nodir/ck" run $S --checkpoint "$T/nodir/ck"

# trace gen stopped by SIGTERM: exit 143, one line, and neither the file nor its temporary.
# (352 MB if the signal came too late; the trap removes it.)
mkdir "$T/gen"
"$KVPLACE" trace gen --set layers=2 --set prompt=20000 --set steps=2000 -q -o "$T/gen/t.npy" \
    >"$T/stdout" 2>"$T/err" &
pid=$!
waited=0
while [ -z "$(ls -A "$T/gen")" ] && [ $waited -lt 600 ] && kill -0 $pid 2>/dev/null; do
    sleep 0.05
    waited=$((waited + 1))
done
kill -s TERM $pid
wait $pid
rc=$?
[ "$rc" -eq 143 ] && ok || bad "trace gen SIGTERM: exit $rc, wanted 143"
[ -z "$(ls -A "$T/gen")" ] && ok || bad "trace gen SIGTERM left $(ls -A "$T/gen")"
grep -qx 'kvplace: interrupted' "$T/err" && [ "$(lines "$T/err")" -eq 1 ] && ok ||
    bad "trace gen SIGTERM: the message"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
