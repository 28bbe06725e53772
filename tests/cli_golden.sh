#!/bin/sh
# Golden outputs (tests/golden/README.md): fixed scenarios whose numbers are committed in
# tests/golden/*.golden, as extracted from the JSON report by golden_extract; any change to
# any of them fails here with the diff.  After an intended change:
#     GOLDEN_UPDATE=1 sh tests/cli_golden.sh    (with KVPLACE=build/kvplace)
# rewrites the files; the diff is then reviewed and committed with the reason.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_golden
. "$(dirname "$0")/harness.sh"
DIR=$(cd "$(dirname "$0")" && pwd)/golden
EXTRACT=${GOLDEN_EXTRACT:-$(dirname "$KVPLACE")/tests/golden_extract}

# mknpy FILE N L C MARKS: a bool .npy (version 1.0) of shape (N, L, C); MARKS holds the
# N * L * C elements in C order as characters 0 and 1.
mknpy() {
    f=$1 h="{'descr': '|b1', 'fortran_order': False, 'shape': ($2, $3, $4), }" m=$5
    # magic (6) + version (2) + length (2) + header + '\n': a multiple of 64 bytes
    pad=$(( (64 - (${#h} + 11) % 64) % 64 )); hl=$(( ${#h} + pad + 1 ))
    { printf '\223NUMPY\001\000'
      printf "\\$(printf %03o $((hl % 256)))\\$(printf %03o $((hl / 256)))"
      printf '%s%*s\n' "$h" "$pad" ''
      printf '%s' "$m" | sed 's/0/\\000/g; s/1/\\001/g' | xargs -0 printf
    } >"$f"
}

# golden NAME ARGS...: kvplace run ARGS --json, extracted, against tests/golden/NAME.golden.
golden() {
    name=$1
    shift
    kv run -q "$@" --check --json "$T/$name.json"
    if [ "$rc" -ne 0 ]; then bad "$name: exit $rc"; return; fi
    if ! "$EXTRACT" "$T/$name.json" >"$T/$name.golden"; then
        bad "$name: golden_extract failed"; return
    fi
    if [ -n "$GOLDEN_UPDATE" ]; then
        cp "$T/$name.golden" "$DIR/$name.golden"; echo "wrote $DIR/$name.golden"; ok
    elif diff -u "$DIR/$name.golden" "$T/$name.golden" >"$T/diff"; then ok
    else bad "$name: numbers differ from tests/golden/$name.golden:"; cat "$T/diff"
    fi
}

# The toy machine (README.md: every number worked by hand): tok_bytes 2 B, one layer,
# weights 100 B, KV budget 8 B; HBM 1000 B/s, DRAM 100 B/s, link 50 B/s.  Trace: P = 4,
# N = 3, reads {0,2,3}, {1,4}, {0,5} (position 5 also marked at step 0, where it does not
# exist yet: it must be ignored).
TOY="--set layers=1 --set kv_heads=1 --set head_dim=1 --set dtype_bytes=1 --set batch=1
     --set weight_bytes=100 --set hbm_capacity=108 --set reserve=0 --set hbm_bandwidth=1000
     --set dram_bandwidth=100 --set link_bandwidth=50 --set dram_capacity=1000"
mknpy "$T/toy.npy" 3 1 6 101101010010100001
# shellcheck disable=SC2086
golden toy $TOY --trace "$T/toy.npy" \
    --policy unlimited,static,reactive,page:page_tokens=2,lookahead,bound
# The same at batch 2: every KV byte doubles (tok_bytes 4), the weights do not.
# shellcheck disable=SC2086
golden toy_batch2 $TOY --set batch=2 --set hbm_capacity=116 --trace "$T/toy.npy" \
    --policy unlimited,static,bound

# A small synthetic run, KV-bound so that the policies differ: 2 layers, P = 64, N = 12,
# batch 8 (tok_bytes 32768), weights 1 MB, KV budget 2097152 B = 32 slots per layer.
golden synthetic --set layers=2 --set prompt=64 --set steps=12 --set seed=7 --set batch=8 \
    --set weight_bytes=1000000 --set hbm_capacity=3097152 --set sparsity=0.5 --synthetic high \
    --policy unlimited,static,reactive,reactive:g=4,page:page_tokens=8,lookahead:W=4:R=0.5,lookahead:W=16:R=0.5,sa:budget=6,bound

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
