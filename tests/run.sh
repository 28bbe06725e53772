#!/bin/sh
# Runs every test binary and the CLI tests; sums their "N passed, N failed" lines.
BUILD=${BUILD:-build}
total_p=0; total_f=0; status=0
# tally NAME RC OUT: adds OUT's "N passed, N failed" line to the totals and prints it (OUT
# whole when it failed, or has no such line); a SKIPPED: line of OUT is shown beside it.
tally() {
    name=$1 rc=$2 out=$3
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    skip=$(printf '%s\n' "$out" | grep -E '^SKIPPED: ' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out"; echo "$name: no result line (exit $rc)"; status=1; total_f=$((total_f + 1)); return
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    total_p=$((total_p + p)); total_f=$((total_f + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then printf '%s\n' "$out"; status=1; fi
    printf '%-28s %s%s\n' "$name" "$line" "${skip:+ ($skip)}"
}
for t in "$BUILD"/tests/test_* tests/cli_*.sh tests/py_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.o|*.d) continue;; esac
    case "$t" in
        *.sh) out=$(KVPLACE="$BUILD/kvplace" sh "$t" 2>&1); rc=$? ;;
        *) out=$("$t" 2>&1); rc=$? ;;
    esac
    tally "$(basename "$t")" "$rc" "$out"
done
# The vector forms wider than SSE2 (the generator's passes over the keys, the lookahead grid's
# word loops, the .npy band pass, reactive's lists of a bitset's blocks, the streams' merge,
# the blocks' score sums)
# are chosen at run time; their tests run again with KVPLACE_SSE2_ONLY, which takes the SSE2
# and plain forms (src/base/simd.h), so that both are tested on a CPU that has the wider
# ones.  Elsewhere the same forms run twice.
for t in "$BUILD"/tests/test_synth "$BUILD"/tests/test_synth_heads \
         "$BUILD"/tests/test_lookahead_grid "$BUILD"/tests/test_fast "$BUILD"/tests/test_npy \
         "$BUILD"/tests/test_npy_read "$BUILD"/tests/test_policies "$BUILD"/tests/test_streams \
         "$BUILD"/tests/test_blocks; do
    [ -e "$t" ] || continue
    out=$(KVPLACE_SSE2_ONLY=1 "$t" 2>&1); rc=$?
    tally "$(basename "$t") (SSE2)" "$rc" "$out"
done
# A real one-node Slurm (tests/slurm/run.sh): only where Slurm is installed and we are root;
# it says why when it skips.
out=$(KVPLACE="$BUILD/kvplace" sh tests/slurm/run.sh 2>&1); rc=$?
if [ "$rc" -eq 77 ]; then
    printf '%-28s SKIPPED (%s)\n' "slurm/run.sh" "$(printf '%s\n' "$out" | tail -n 1 | sed 's/^slurm: skipped: //')"
else
    tally "slurm/run.sh" "$rc" "$out"
fi
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ] && [ "$status" -eq 0 ]
