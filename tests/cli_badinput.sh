#!/bin/sh
# Hostile input through the CLI (docs/ROBUSTNESS.md): every bad .npy, parameter, policy and
# option gives a non-zero exit (1 bad input, 2 bad usage), exactly one line on stderr that
# names the file or option at fault, nothing on stdout, and no report file or temporary file
# left behind.  Run by tests/run.sh with KVPLACE=path/to/kvplace; ends "N passed, N failed".
NAME=cli_bad
. "$(dirname "$0")/harness.sh"
mkdir "$T/reports"
J="$T/reports/r.json"
C="$T/reports/r.csv"

# A small scenario: 2 layers; KV does not fit (see tests/cli_basic.sh).
cat >"$T/small.ini" <<EOF
hbm_capacity = 1000819200
weight_bytes = 1000000000
layers = 2
prompt = 20
steps = 4
EOF
SMALL="--config $T/small.ini"
RUN="run $SMALL --policy static --json $J --csv $C"

# --- .npy files ----------------------------------------------------------------------
zeros() { head -c "$2" /dev/zero >>"$1"; }

# shape (4, 2, 23): 4 steps, 2 layers, 23 positions -> P = 20; 184 floats = 736 bytes.
npy "$T/good.npy" '<f4' False '(4, 2, 23)'; zeros "$T/good.npy" 736
"$KVPLACE" run $SMALL --trace "$T/good.npy" --policy static -q >/dev/null 2>"$T/err" &&
    ok || bad "the good .npy runs"

: >"$T/empty.npy"
printf 'not a trace\n' >"$T/magic.npy"
printf '\223NUMPY\001' >"$T/prelude.npy"
printf '\223NUMPY\001\000\350\003{}' >"$T/hlen.npy"          # header length 1000
npy "$T/short.npy" '<f4' False '(4, 2, 23)'; zeros "$T/short.npy" 700
npy "$T/long.npy" '<f4' False '(4, 2, 23)'; zeros "$T/long.npy" 740
npy "$T/i8.npy" '<i8' False '(4, 2, 23)'; zeros "$T/i8.npy" 1472
npy "$T/c8.npy" '<c8' False '(4, 2, 23)'; zeros "$T/c8.npy" 1472
npy "$T/be.npy" '>f4' False '(4, 2, 23)'; zeros "$T/be.npy" 736
npy "$T/f8.npy" '<f8' False '(4, 2, 23)'; zeros "$T/f8.npy" 1472
npy "$T/fortran.npy" '<f4' True '(4, 2, 23)'; zeros "$T/fortran.npy" 736
npy "$T/dims2.npy" '<f4' False '(4, 46)'; zeros "$T/dims2.npy" 736
npy "$T/dims5.npy" '<f4' False '(4, 2, 23, 1, 1)'; zeros "$T/dims5.npy" 736
npy "$T/fewpos.npy" '<f4' False '(4, 2, 3)'; zeros "$T/fewpos.npy" 96
npy "$T/nosteps.npy" '<f4' False '(0, 2, 23)'
npy "$T/nolayers.npy" '<f4' False '(4, 0, 23)'
npy "$T/huge.npy" '<f4' False '(4294967295, 4294967295, 4294967295)'; zeros "$T/huge.npy" 64
npy "$T/u64.npy" '<f4' False '(18446744073709551616, 2, 23)'; zeros "$T/u64.npy" 64
npy "$T/neg.npy" '<f4' False '(-4, 2, 23)'; zeros "$T/neg.npy" 736
npy "$T/bighdr.npy" '<f4' False '(4, 2, 23)'; zeros "$T/bighdr.npy" 736
printf '\223NUMPY\004\000\010\000{}      ' >"$T/v4.npy"
npy "$T/garbled.npy" '<f4' False '(4, 2, 23'; zeros "$T/garbled.npy" 736
# NaN and +inf at step 1, layer 0, position 3 (row 2 of the file, in the used part: P+1 =
# 21 positions), float32 little-endian.
for v in nan inf; do
    npy "$T/$v.npy" '<f4' False '(4, 2, 23)'
    zeros "$T/$v.npy" $(((2 * 23 + 3) * 4))
    if [ $v = nan ]; then printf '\000\000\300\177' >>"$T/$v.npy"
    else printf '\000\000\200\177' >>"$T/$v.npy"; fi
    zeros "$T/$v.npy" $((736 - (2 * 23 + 4) * 4))
done
# The same NaN in the padding (position 22 of step 1 is past P+1 = 21) is not an error.
npy "$T/padnan.npy" '<f4' False '(4, 2, 23)'
zeros "$T/padnan.npy" $(((2 * 23 + 22) * 4)); printf '\000\000\300\177' >>"$T/padnan.npy"
zeros "$T/padnan.npy" $((736 - (2 * 23 + 23) * 4))
"$KVPLACE" run $SMALL --trace "$T/padnan.npy" --policy static -q >/dev/null 2>"$T/err" &&
    ok || bad "NaN in the padding is ignored"
# A layer count that is not the model's: shape (4, 3, 23) with a 2-layer model.
npy "$T/layers3.npy" '<f4' False '(4, 3, 23)'; zeros "$T/layers3.npy" 1104
mkdir "$T/dir.npy"
if [ "$(id -u)" -ne 0 ]; then
    cp "$T/good.npy" "$T/noperm.npy"; chmod 000 "$T/noperm.npy"
fi

# Each file through both paths that read traces: run --trace and trace info.
for cmd in run info; do
    t() { # WHAT NEEDLE FILE
        if [ $cmd = run ]; then refused "run: $1" 1 "$2" $RUN --trace "$3"
        else refused "trace info: $1" 1 "$2" trace info "$3"; fi
    }
    t "missing file" "none.npy: No such file" "$T/none.npy"
    [ -e "$T/noperm.npy" ] && t "unreadable file" "noperm.npy: Permission denied" "$T/noperm.npy"
    t "a directory" "dir.npy: is a directory" "$T/dir.npy"
    t "empty file" "empty.npy: file is empty" "$T/empty.npy"
    t "bad magic" "magic.npy: not a NumPy .npy file" "$T/magic.npy"
    t "truncated prelude" "prelude.npy: file too short" "$T/prelude.npy"
    t "header length past the end" "hlen.npy: header length 1000 runs past" "$T/hlen.npy"
    t "truncated data" "short.npy: shape (4, 2, 23) needs 736 bytes" "$T/short.npy"
    t "trailing data" "long.npy: shape (4, 2, 23) needs 736 bytes" "$T/long.npy"
    t "dtype int64" "i8.npy: dtype '<i8' is not supported" "$T/i8.npy"
    t "dtype complex" "c8.npy: dtype '<c8' is not supported" "$T/c8.npy"
    t "big-endian" "be.npy: dtype '>f4' is not supported" "$T/be.npy"
    t "dtype float64" "f8.npy: dtype '<f8' is not supported" "$T/f8.npy"
    t "Fortran order" "fortran.npy: array is in Fortran order" "$T/fortran.npy"
    t "2 dimensions" "dims2.npy: shape (4, 46) has 2 dimensions" "$T/dims2.npy"
    t "5 dimensions" "dims5.npy: shape (4, 2, 23, 1, 1) has 5 dimensions" "$T/dims5.npy"
    t "fewer positions than steps" "fewpos.npy: shape (4, 2, 3): 4 steps need" "$T/fewpos.npy"
    t "zero steps" "nosteps.npy: shape (0, 2, 23) has no steps" "$T/nosteps.npy"
    t "zero layers" "nolayers.npy: shape (4, 0, 23) has no layers" "$T/nolayers.npy"
    t "byte size overflows" "huge.npy: shape (4294967295, 4294967295, 4294967295) is too large" \
        "$T/huge.npy"
    t "dimension overflows" "u64.npy: a shape dimension overflows 64 bits" "$T/u64.npy"
    t "negative dimension" "neg.npy: shape has a negative dimension" "$T/neg.npy"
    t "version 4.0" "v4.npy: .npy format version 4.0 is not supported" "$T/v4.npy"
    t "malformed header" "garbled.npy: malformed .npy header" "$T/garbled.npy"
    t "NaN score" "nan.npy: step 1, layer 0, position 3: score is NaN" "$T/nan.npy"
    t "infinite score" "inf.npy: step 1, layer 0, position 3: score is +inf" "$T/inf.npy"
done
refused "layers not the model's" 1 "layers3.npy: trace has 3 layers; model" \
    $RUN --trace "$T/layers3.npy"

# --- parameters, through --set and through a config file ------------------------------
# p NAME=VALUE NEEDLE
p() {
    refused "--set $1" 1 "$2" $RUN --set "$1"
    printf '# bad value on line 2\n%s\n' "$(echo "$1" | sed 's/=/ = /')" >"$T/bad.ini"
    refused "config $1" 1 "bad.ini:2: $2" $RUN --config "$T/bad.ini"
}
# tiers beyond two: K out of range, a tier with no bandwidth, a link with none, a tier with
# no link, capacities that cannot hold the KV (one line, exit 1, no report left)
p tiers=9 "tiers: 9 is out of range [2, 8]"
p tiers=1 "tiers: 1 is out of range [2, 8]"
p tier2_link=0 "tier2_link: 0 is out of range [1, 7]"
refused "a tier with no bandwidth" 1 "tier 2 has no bandwidth (set tier2_bandwidth" \
    $RUN --set tiers=3
refused "a link with no bandwidth" 1 "tier 2 sits behind link 2, which has no bandwidth" \
    $RUN --set tiers=3 --set tier2_bandwidth=10GB/s
refused "capacities too small" 1 "the capacities cannot hold the KV" $RUN --set tiers=3 \
    --set tier2_bandwidth=10GB/s --set tier2_link=1 --set dram_capacity=50kB \
    --set tier2_capacity=50kB
printf 'tiers = 3\n[tier 2]\nbandwidth = 10GB/s\nlink = 0\n' >"$T/bad.ini"
refused "config [tier 2] link = 0" 1 "bad.ini:4: tier2_link: 0 is out of range" \
    $RUN --config "$T/bad.ini"
refused "lpbound on three tiers that cannot hold the KV" 1 "the capacities cannot hold the KV" \
    run $SMALL --hw x86-h100-cxl --set dram_capacity=1KB --set tier2_capacity=1KB \
    --policy lpbound --json $J

p sparsity=1 "sparsity: 1 is out of range [0, 1)"
p sparsity=1.5 "sparsity: 1.5 is out of range"
p sparsity=-0.1 "sparsity: -0.1 is out of range"
p topk=-1 "topk: \"-1\" is negative"
p topk=1.5 "topk: \"1.5\" is not a whole number"
p topk=4294967296 "topk: 4294967296 is out of range"
# topk replaces sparsity: both given is refused, in either order and from any source
refused "topk and sparsity" 1 "topk (64) and sparsity (0.5) are both set" \
    $RUN --set topk=64 --set sparsity=0.5
refused "sparsity and topk" 1 "set only one of them" $RUN --set sparsity=0.6 --set topk=64
printf 'sparsity = 0.5\n' >"$T/sp.ini"
refused "sparsity in a config, topk on the line" 1 "topk (8) and sparsity (0.5)" \
    $RUN --config "$T/sp.ini" --set topk=8
refused "study sparsity with topk" 1 "study sparsity varies sparsity" \
    study sparsity --set topk=64 --set prompt=20 --set steps=2 --out "$T/reports"
refused "trace info: a file and --synthetic" 2 "FILE.npy or --synthetic, not both" \
    trace info --synthetic actual "$T/good.npy"
refused "trace info --heads on a file" 2 "--heads makes one synthetic trace per KV head" \
    trace info --heads "$T/good.npy"
refused "trace info without a trace" 2 "missing the trace FILE.npy (or --synthetic" \
    trace info --heads
refused "trace info --heads, one KV head" 1 "--heads: kv_heads is 1" \
    trace info --synthetic actual --heads --set kv_heads=1 --set prompt=20 --set steps=2
refused "tp that does not divide kv_heads" 1 "tp: 3 does not divide kv_heads (8)" \
    $RUN --set tp=3
p tp=0 "tp: 0 is out of range"
refused "a 70B model on one GH200" 1 "exceed HBM capacity (96 GB); tp=2 would fit them" \
    run --hw gh200 --model llama-3.1-70b --set prompt=20 --set steps=2 --json $J
p hbm_bandwidth=0 "hbm_bandwidth: \"0\" is not greater than 0"
p dram_bandwidth=-500GB/s "dram_bandwidth: \"-500GB/s\" is not greater than 0"
p link_bandwidth=0.5 "link_bandwidth: 0.5 is out of range"
p batch=0 "batch: 0 is out of range"
p batch=-1 "batch: \"-1\" is negative"
p batch=2.5 "batch: \"2.5\" is not a whole number"
p batch=abc "batch: \"abc\" is not a number"
p batch=4x "batch: \"4x\" has trailing junk \"x\""
p hbm_capacity=24GBx "hbm_capacity: \"24GBx\" has trailing junk \"x\""
p hbm_capacity=24GB/s "hbm_capacity: \"24GB/s\" is a bandwidth"
p hbm_bandwidth=500GB "hbm_bandwidth: \"500GB\" is not a bandwidth"
p hbm_capacity=18446744073709551616 "hbm_capacity: \"18446744073709551616\" overflows 64 bits"
p seed=99999999999999999999 "seed: \"99999999999999999999\" overflows 64 bits"
p hbm_bandwidth=1e999 "hbm_bandwidth: \"1e999\" is too large"
p layers=5000 "layers: 5000 is out of range"
p variation=wild "variation: \"wild\" is not one of low, actual, high"
p hbmcap=24GB "unknown parameter \"hbmcap\""
refused "weights larger than HBM" 1 "exceed HBM capacity" $RUN --set weight_bytes=2GB
refused "reserve past HBM" 1 "exceed HBM capacity" $RUN --set reserve=1GB
refused "--set without =" 2 "--set batch" $RUN --set batch
refused "--set without a name" 2 "--set =4" $RUN --set =4
refused "--set empty value" 1 "batch: empty value" $RUN --set batch=
printf 'batch 4\n' >"$T/noeq.ini"
refused "config line without =" 1 "noeq.ini:1:" $RUN --config "$T/noeq.ini"
refused "missing config" 1 "nope.ini: cannot open" $RUN --config "$T/nope.ini"
refused "config is a directory" 1 "dir.npy" $RUN --config "$T/dir.npy"

# --- the command line: options, policies, presets -------------------------------------
refused "unknown option" 2 "unknown option --frob" $RUN --frob
refused "unknown command" 2 "unknown command \"frob\"" frob
refused "unknown policy" 1 "unknown policy \"nosuch\"" $RUN --policy nosuch
refused "empty policy list" 1 "--policy: bad policy list" $RUN --policy static,,unlimited
refused "unknown hw preset" 1 "gh300" $RUN --hw gh300
refused "unknown model preset" 1 "llama-9" $RUN --model llama-9
refused "a model as hw" 1 "llama-3.1-8b" $RUN --hw llama-3.1-8b
refused "lookahead W=0" 1 "policy lookahead: W=0 is out of range" $RUN --policy lookahead:W=0
refused "lookahead W=-3" 1 "policy lookahead: W=-3 is out of range" $RUN --policy lookahead:W=-3
refused "lookahead W=2.5" 1 "W=2.5 is not a whole number" $RUN --policy lookahead:W=2.5
refused "lookahead W=abc" 1 "W=\"abc\" is not a number" $RUN --policy lookahead:W=abc
refused "lookahead W=" 1 "W needs a value" $RUN --policy lookahead:W=
refused "lookahead R=1.5" 1 "policy lookahead: R=1.5 is out of range" $RUN --policy lookahead:R=1.5
refused "lookahead R=-0.1" 1 "policy lookahead: R=-0.1 is out of range" \
    $RUN --policy lookahead:R=-0.1
refused "lookahead R=nan" 1 "R=\"nan\" is not a number" $RUN --policy lookahead:R=nan
refused "lookahead X=1" 1 "policy lookahead has no parameter \"X\"" $RUN --policy lookahead:X=1
refused "lookahead:W" 1 "\"W\" is not key=value" $RUN --policy lookahead:W
refused "sa W0 past W_max" 1 "W0=20 exceeds W_max=10" $RUN --policy sa:W_max=10:W0=20
refused "sa budget=0" 1 "budget=0 is out of range" $RUN --policy sa:budget=0
# SMALL is 2 layers x (20 + 4) x 4 = 192, within optimal's size limit; 200 x 20 is not.
refused "optimal too large" 1 "optimal: " $RUN --policy optimal --set prompt=200 --set steps=20
refused "optimal relax too large" 1 "is too large for the exact solver" \
    $RUN --policy optimal:relax=1 --set prompt=200 --set steps=20
refused "optimal relax=2" 1 "relax=2 is out of range" $RUN --policy optimal:relax=2
refused "optimal tlim=0" 1 "tlim=0 is out of range" $RUN --policy optimal:tlim=0
refused "--trace with --synthetic" 2 "--trace and --synthetic" \
    $RUN --trace "$T/good.npy" --synthetic low
refused "--trace with --set steps" 2 "--set steps conflicts with --trace" \
    $RUN --trace "$T/good.npy" --set steps=4
refused "--synthetic unknown" 1 "--synthetic wild" $RUN --synthetic wild
refused "--threads 0" 1 "--threads 0" $RUN --threads 0
refused "--threads junk" 1 "--threads 2x" $RUN --threads 2x
refused "--threads huge" 1 "--threads 99999999999999999999" $RUN --threads 99999999999999999999
refused "--json and --csv alike" 2 "--json and --csv name the same file" \
    run $SMALL --json "$T/reports/x" --csv "$T/reports/x"
refused "--json without a value" 2 "--json needs a value" run $SMALL --json
refused "--checkpoint without sa" 2 "--checkpoint applies to the sa search" \
    $RUN --checkpoint "$T/reports/ck"
refused "--resume of a missing file" 1 "none.ck: No such file" \
    $RUN --policy sa --resume "$T/none.ck"
refused "trace gen without -o" 2 "-o" trace gen $SMALL
refused "trace gen to a missing directory" 1 "nodir/t.npy" trace gen $SMALL -o "$T/reports/nodir/t.npy"
ls "$T" | grep -q '\.tmp' && bad "a temporary file was left in $T" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
