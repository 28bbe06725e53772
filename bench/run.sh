#!/bin/sh
# kvplace benchmarks (docs/PERF.md): each phase of the study's scenario in a process of its
# own (so that peak RSS is the phase's), then the scaling series, then its plot.
#
#   make bench                                   everything, full size (about half an hour)
#   BENCH_STEPS=1000 BENCH_SA=0 make bench       a quick look
#   BENCH_PHASES="ref lookahead" make bench      some phases only
#   BENCH_SCALING=0 make bench                   no scaling series
#   BENCH_SWEEP=0 make bench                     no sweep benchmark (bench/sweep.sh)
#
# Knobs (environment): BENCH_PROMPT (31299), BENCH_STEPS (10239), BENCH_THREADS (2),
# BENCH_PHASES (all below; empty: none), BENCH_SA (1: include the sa search), BENCH_SCALING (1),
# BENCH_GRID (0; 1: add grid-cached, the 704-point (W, R) grid), BENCH_SCALING_STEPS (512),
# BENCH_SCALING_PROMPTS ("8192 16384 32768 65536 131072"),
# BENCH_OUT (build/bench-out): where the tables, the series and the plots go.
# BENCH_NPY (1): the .npy section: a float32 trace of prompt 8192, 512 steps (570 MB, made
# once in BENCH_OUT), one streaming pass over it, mapped and read (build/bench/stream and
# stream --read), kvplace's `static` on
# it through the fast path and through the engine's pass, and bench/npy_model.py (NumPy, from
# Debian's python3-numpy, run by /usr/bin/python3), at batch 4 (slots above the context) and
# batch 8 (slots below it); one core; npy.txt, with the ratios to the streaming pass.
# Output columns: phase prompt steps layers reads wall_s reads_per_s peak_rss_mib model_s
# cpu_s, then the load average when the phase ended (the machine may be shared: cpu_s /
# threads is then the better guess of the wall time on idle cores).
set -eu
BUILD=${BUILD:-build}
BENCH="$BUILD/bench/bench"
PROMPT=${BENCH_PROMPT:-31299}
STEPS=${BENCH_STEPS:-10239}
THREADS=${BENCH_THREADS:-2}
PHASES=${BENCH_PHASES-"gen ref reactive page lookahead ref-cached lookahead-cached"}
SA=${BENCH_SA:-1}
SCALING=${BENCH_SCALING:-1}
SC_STEPS=${BENCH_SCALING_STEPS:-512}
SC_PROMPTS=${BENCH_SCALING_PROMPTS:-"8192 16384 32768 65536 131072"}
OUT=${BENCH_OUT:-$BUILD/bench-out}

[ -x "$BENCH" ] || { echo "bench/run.sh: $BENCH not built (make $BENCH)" >&2; exit 1; }
mkdir -p "$OUT"

load() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?'; }

# run_phase FILE PHASE ARGS...: one process, its lines (with the load) appended to FILE.
run_phase() {
    file=$1; shift
    tmp="$OUT/.phase.$$"
    if ! "$BENCH" "$@" --threads "$THREADS" > "$tmp" 2> "$tmp.err"; then
        cat "$tmp.err" >&2
        echo "bench/run.sh: bench $* failed" >&2
        rm -f "$tmp" "$tmp.err"
        exit 1
    fi
    l=$(load)
    sed "s/\$/  load $l/" "$tmp" | tee -a "$file"
    sed 's/^/# /' "$tmp.err" | tee -a "$file" # notes, e.g. sa's evaluations
    rm -f "$tmp" "$tmp.err"
}

header='phase            prompt  steps   L        reads    wall_s  reads_per_s  rss_MiB'
header="$header model_s        cpu_s"
{
    echo "# kvplace bench, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
         "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "# $header"
} > "$OUT/phases.txt"
cat "$OUT/phases.txt"
list=$PHASES
[ "$SA" = 1 ] && list="$list sa"
# The (W, R) grid, W 1..64 x R 0..1 (704 points) on a trace cache: minutes at full size.
[ "${BENCH_GRID:-0}" = 1 ] && list="$list grid-cached"
for p in $list; do
    run_phase "$OUT/phases.txt" "$p" --prompt "$PROMPT" --steps "$STEPS"
done

if [ "$SCALING" = 1 ]; then
    echo "# scaling: steps $SC_STEPS, prompt varies" > "$OUT/scaling.txt"
    echo "# $header" >> "$OUT/scaling.txt"
    for p in ref lookahead; do
        for P in $SC_PROMPTS; do
            run_phase "$OUT/scaling.txt" "$p" --prompt "$P" --steps "$SC_STEPS"
        done
    done
    if command -v gnuplot >/dev/null 2>&1; then
        gnuplot -e "data='$OUT/scaling.txt'; out='$OUT/scaling'" bench/scaling.gp &&
            echo "plots: $OUT/scaling.png $OUT/scaling.svg"
    else
        echo "bench/run.sh: gnuplot not found; no plot" >&2
    fi
fi
if [ "${BENCH_NPY:-1}" = 1 ]; then
    NPY="$OUT/trace-8192x512.npy"
    [ -f "$NPY" ] || "$BUILD/kvplace" trace gen -q --set prompt=8192 --set steps=512 -o "$NPY"
    "$BUILD/bench/stream" "$NPY" > /dev/null # into the page cache
    {
        echo "# npy: $(date -u '+%Y-%m-%d %H:%M UTC'), one core, cpu seconds"
        for b in 4 8; do
            s=$("$BUILD/bench/stream" "$NPY" | awk '{print $5}')
            r=$("$BUILD/bench/stream" --read "$NPY" | awk '{print $5}')
            fast=$("$BENCH" npy-static --file "$NPY" --batch $b --threads 1 2> "$OUT/.model")
            eng=$("$BENCH" npy-engine --file "$NPY" --batch $b --threads 1 2> /dev/null)
            set -- $(cat "$OUT/.model")
            np=$(/usr/bin/python3 bench/npy_model.py "$NPY" $2 $3 $4 $5 $6 $7 $8 2>&1 ||
                 echo "numpy - - - failed")
            f_cpu=$(echo "$fast" | awk '{print $10}')
            e_cpu=$(echo "$eng" | awk '{print $10}')
            n_cpu=$(echo "$np" | awk '{print $4}')
            echo "batch $b: stream $s, read $r | static fast $f_cpu T $(echo "$fast" | awk '{print $9}')" \
                 "| static engine $e_cpu | numpy $n_cpu T $(echo "$np" | awk '{print $5}')"
            echo "$s $f_cpu $e_cpu $n_cpu $r" | awk '{printf "  ratios: fast/stream %.2f, " \
                "fast/read %.2f, engine/stream %.2f, numpy/fast %.1f\n", $2/$1, $2/$5, $3/$1,
                $4/$2}'
        done
        rm -f "$OUT/.model"
    } | tee "$OUT/npy.txt"
fi
if [ "${BENCH_SWEEP:-1}" = 1 ]; then
    BUILD=$BUILD sh bench/sweep.sh | tee "$OUT/sweep.txt"
fi
echo "table: $OUT/phases.txt"
[ "$SCALING" = 1 ] && echo "series: $OUT/scaling.txt"
exit 0
