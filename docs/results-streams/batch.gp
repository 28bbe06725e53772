# kvplace study batch: re-plot with `gnuplot batch.gp` in this directory.
if (!exists("data")) data = "batch.csv"
if (!exists("out")) out = "batch"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "Throughput over static by batch, weights counted and not\ngh200-paper, llama-3.1-8b, prompt 31299, 64 steps, sparsity 0.6, synthetic trace"
set xlabel "batch (sequences decoded together; KV bytes scale with it)"
set ylabel "throughput / static throughput (x)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set logscale x 2
set xrange [0.8:40]
set xtics (1,2,4,8,16,32)
plot data using "batch":(strcol("weights") eq "counted" && strcol("series") eq "copies" ? column("bound_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#d62728" title "bound, weights counted", \
     data using "batch":(strcol("weights") eq "counted" && strcol("series") eq "copies" ? column("page_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#2ca02c" title "page, weights counted", \
     data using "batch":(strcol("weights") eq "counted" && strcol("series") eq "copies" ? column("reactive_vs_static") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#ff7f0e" title "reactive, weights counted", \
     data using "batch":(strcol("weights") eq "not_counted" && strcol("series") eq "copies" ? column("bound_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#d62728" title "bound, weights not counted", \
     data using "batch":(strcol("weights") eq "not_counted" && strcol("series") eq "copies" ? column("page_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#2ca02c" title "page, weights not counted", \
     data using "batch":(strcol("weights") eq "not_counted" && strcol("series") eq "copies" ? column("reactive_vs_static") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#ff7f0e" title "reactive, weights not counted", \
     data using "batch":(strcol("weights") eq "counted" && strcol("series") eq "distinct" ? column("bound_vs_static") : NaN) with linespoints lw 2 pt 4 dt 4 lc rgb "#d62728" title "bound, distinct sequences", \
     data using "batch":(strcol("weights") eq "counted" && strcol("series") eq "distinct" ? column("page_vs_static") : NaN) with linespoints lw 2 pt 4 dt 4 lc rgb "#2ca02c" title "page, distinct sequences", \
     data using "batch":(strcol("weights") eq "counted" && strcol("series") eq "distinct" ? column("reactive_vs_static") : NaN) with linespoints lw 2 pt 4 dt 4 lc rgb "#ff7f0e" title "reactive, distinct sequences", \
     5.87 with lines dt 2 lw 2 lc rgb "black" title "study: sa up to 5.87x over static", \
     4 with lines dt 3 lc rgb "#555555" title "study: sa 4x to 5x ahead of the baselines", \
     5 with lines dt 3 lc rgb "#555555" notitle
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
set terminal pdfcairo noenhanced size 7in,3.8in font "sans,8"
set output out.".pdf"
replot
set output
