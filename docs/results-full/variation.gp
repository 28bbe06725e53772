# kvplace study variation: re-plot with `gnuplot variation.gp` in this directory.
if (!exists("data")) data = "variation.csv"
if (!exists("out")) out = "variation"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "Throughput over unlimited HBM by variation\ngh200-paper, llama-3.1-8b, prompt 31299, 10239 steps, batch 4, sparsity 0.6, synthetic trace"
set xlabel "token-importance variation of the synthetic trace"
set ylabel "throughput / unlimited-HBM throughput (x)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set xtics nomirror
plot data using "static_vs_unlimited":xtic(1) title "static" lc rgb "#7f7f7f", \
     data using "reactive_vs_unlimited" title "reactive" lc rgb "#ff7f0e", \
     data using "page_vs_unlimited" title "page" lc rgb "#2ca02c", \
     data using "lookahead_vs_unlimited" title "lookahead" lc rgb "#9467bd", \
     data using "sa_vs_unlimited" title "sa" lc rgb "#1f77b4", \
     data using "unlimited_vs_unlimited" title "unlimited" lc rgb "#303030", \
     data using "bound_vs_unlimited" title "bound (cap)" fs pattern 4 border lc rgb "#d62728"
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
