# kvplace study accounting: re-plot with `gnuplot accounting.gp` in this directory.
if (!exists("data")) data = "accounting.csv"
if (!exists("out")) out = "accounting"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "Throughput over static under each accounting\ngh200-paper, llama-3.1-8b, prompt 31299, 10239 steps, sparsity 0.6, synthetic trace"
set xlabel "variant (not counted: weight_bytes=0, reserve kept; kv_heads 8: per KV head, 32: per query head)"
set ylabel "throughput / static throughput (x)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set bmargin 8
set xtics font ",9"
set xlabel offset 0,-3
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set xtics nomirror
plot data using "static_vs_static":xtic(sprintf("weights\n%s\nkv_heads %s\nbatch %s", strcol(1) eq "counted" ? "counted" : "not counted", strcol(3), strcol(4))) title "static" lc rgb "#7f7f7f", \
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
