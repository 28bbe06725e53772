# kvplace study heads: re-plot with `gnuplot heads.gp` in this directory.
if (!exists("data")) data = "heads.csv"
if (!exists("out")) out = "heads"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "Per-head placement against per-token placement\ngh200-paper, llama-3.1-8b, prompt 8000, 256 steps, batch 16, synthetic trace"
set xlabel "sparsity (share of the context not read)"
set ylabel "throughput / static throughput (x), weights counted"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set xrange [0.35:0.95]
plot data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "token" ? column("bound_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#d62728" title "bound, per token", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "token" ? column("lookahead_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#9467bd" title "lookahead, per token", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "token" ? column("page_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#2ca02c" title "page, per token", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "token" ? column("reactive_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#ff7f0e" title "reactive, per token", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "head" ? column("bound_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#d62728" title "bound, per head", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "head" ? column("lookahead_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#9467bd" title "lookahead, per head", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "head" ? column("page_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#2ca02c" title "page, per head", \
     data using "sparsity":(strcol("weights") eq "counted" && strcol("placement") eq "head" ? column("reactive_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#ff7f0e" title "reactive, per head", \
     1 with lines dt 3 lc rgb "#555555" title "static"
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
set terminal pdfcairo noenhanced size 7in,3.8in font "sans,8"
set output out.".pdf"
replot
set output
