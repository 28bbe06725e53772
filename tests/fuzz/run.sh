#!/bin/sh
# Builds the libFuzzer harnesses with clang (-fsanitize=fuzzer,address,undefined) and runs
# each, one after the other, for SECONDS (default 60) on one core.
#   tests/fuzz/run.sh [SECONDS] [HARNESS...]     e.g. tests/fuzz/run.sh 25
# The corpora in tests/fuzz/corpus/NAME are read, never written; what a run finds goes to
# $FUZZ_OUT (default build-fuzz/out/NAME).  FUZZ_MERGE=1 merges the new inputs that add
# coverage back into tests/fuzz/corpus/NAME (do that by hand, then commit).  A crash leaves
# its input as $FUZZ_OUT/crash-* and makes this script fail.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
HARNESSES=${*:-npy config parse checkpoint buffer sweep}
CLANG=${CLANG:-clang}
B=${FUZZ_BUILD:-build-fuzz}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
# The usual libFuzzer convention: checksums are not verified, so that mutated checkpoints
# reach the parser behind them (src/report/checkpoint.c).
CFLAGS="-std=c11 -O1 -g -fno-omit-frame-pointer -D_POSIX_C_SOURCE=200809L -pthread \
    -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
    -Iinclude -Isrc $(pkg-config --cflags inih libcjson)"
LIBS="$(pkg-config --libs inih libcjson) -lglpk -lm -pthread"

mkdir -p "$B/obj"
for f in src/*/*.c; do
    o="$B/obj/$(echo "${f#src/}" | tr / _ | sed "s/\.c$//").o"
    if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ include/kvplace.h -nt "$o" ]; then
        $CLANG $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$f" -o "$o"
    fi
done
status=0
for h in $HARNESSES; do
    bin="$B/fuzz_$h"
    # The sweep spec reader is the CLI's: its file, help.c (the default policy list) and
    # util.c (cli_error and what help.c calls).
    extra=""
    [ "$h" = sweep ] && extra="-Icli cli/sweep_spec.c cli/help.c cli/util.c"
    # shellcheck disable=SC2086
    $CLANG $CFLAGS $SAN -fsanitize=fuzzer "tests/fuzz/fuzz_$h.c" $extra "$B"/obj/*.o $LIBS \
        -o "$bin"
    out=${FUZZ_OUT:-$B/out}/$h
    mkdir -p "$out"
    dict=""
    [ -e "tests/fuzz/$h.dict" ] && dict="-dict=tests/fuzz/$h.dict"
    echo "== fuzz_$h for ${SECONDS_EACH}s"
    if ! "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$out/" $dict \
        "$out" "tests/fuzz/corpus/$h" 2>"$out.log"; then
        tail -n 40 "$out.log"
        echo "fuzz_$h: FAILED (input in $out/)"
        status=1
    fi
    grep -E '^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+.*DONE' \
        "$out.log" || true
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$bin" -merge=1 "tests/fuzz/corpus/$h" "$out" 2>>"$out.log"
    fi
done
exit $status
