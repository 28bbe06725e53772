# The scaling series of bench/run.sh (docs/PERF.md): CPU time against token reads, and reads
# per CPU second against the prompt, for ref (unlimited + static + bound) and lookahead.  CPU
# time (user + system, all threads), not wall time: the machine may be shared, and the
# question is how the work grows.
#   gnuplot -e "data='build/bench-out/scaling.txt'; out='build/bench-out/scaling'" bench/scaling.gp
# Columns of data: phase prompt steps layers reads wall_s reads_per_s peak_rss_mib model_s
# cpu_s (then "load" and the load average).
if (!exists("data")) data = 'build/bench-out/scaling.txt'
if (!exists("out")) out = 'build/bench-out/scaling'

sel(name, col) = strcol(1) eq name ? column(col) : 1/0

# Least-squares lines through the origin, time = reads / rate, one per phase.
ka(x) = a * x
kb(x) = b * x
a = 1e-8
b = 1e-8
set fit quiet
set fit logfile '/dev/null'
fit ka(x) data using (sel("ref", 5)):(sel("ref", 10)) via a
fit kb(x) data using (sel("lookahead", 5)):(sel("lookahead", 10)) via b

do for [fmt in "png svg"] {
    if (fmt eq "png") { set terminal pngcairo size 1100,460 font ",10" } \
    else { set terminal svg size 1100,460 font ",10" }
    set output out . "." . fmt
    set multiplot layout 1,2 title "kvplace: work grows with the reads, not with context squared (512 steps, prompt 8K to 128K, 32 layers)"
    set key top left Left reverse
    set grid
    set xrange [0:*]
    set yrange [0:*]
    set xlabel "token reads (billions)"
    set ylabel "CPU time, user + system (s)"
    plot data using (sel("ref", 5) / 1e9):(sel("ref", 10)) with linespoints pt 7 title "ref (unlimited+static+bound)", \
         data using (sel("lookahead", 5) / 1e9):(sel("lookahead", 10)) with linespoints pt 5 title "lookahead W=16", \
         ka(x * 1e9) with lines dt 2 lc rgb "gray40" title sprintf("ref: a line through 0, %.3g reads per CPU s", 1 / a), \
         kb(x * 1e9) with lines dt 2 lc rgb "gray60" title sprintf("lookahead: a line through 0, %.3g reads per CPU s", 1 / b)
    set logscale x 2
    set xrange [*:*]
    set key bottom left Left reverse
    set xlabel "prompt (tokens)"
    set ylabel "token reads per CPU second (millions)"
    plot data using (sel("ref", 2)):(sel("ref", 5) / sel("ref", 10) / 1e6) with linespoints pt 7 title "ref", \
         data using (sel("lookahead", 2)):(sel("lookahead", 5) / sel("lookahead", 10) / 1e6) with linespoints pt 5 title "lookahead W=16"
    unset logscale x
    set xrange [*:*]
    set yrange [*:*]
    unset multiplot
    unset output
}
