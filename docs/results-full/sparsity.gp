# kvplace study sparsity: re-plot with `gnuplot sparsity.gp` in this directory.
if (!exists("data")) data = "sparsity.csv"
if (!exists("out")) out = "sparsity"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "Throughput over static at each sparsity\ngh200-paper, llama-3.1-8b, prompt 31299, 10239 steps, batch 4, synthetic trace"
set xlabel "attention sparsity (share of past tokens not read per step)"
set ylabel "throughput / static throughput (x)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set xtics nomirror
plot data using "static_vs_static":xtic(1) title "static" lc rgb "#7f7f7f", \
     data using "reactive_vs_static" title "reactive" lc rgb "#ff7f0e", \
     data using "page_vs_static" title "page" lc rgb "#2ca02c", \
     data using "lookahead_vs_static" title "lookahead" lc rgb "#9467bd", \
     data using "sa_vs_static" title "sa" lc rgb "#1f77b4", \
     data using "unlimited_vs_static" title "unlimited" lc rgb "#303030", \
     data using "bound_vs_static" title "bound (cap)" fs pattern 4 border lc rgb "#d62728", \
     5.87 with lines dt 2 lw 2 lc rgb "black" title "study: sa up to 5.87x over static"
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
