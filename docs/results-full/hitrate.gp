# kvplace study hitrate: re-plot with `gnuplot hitrate.gp` in this directory.
if (!exists("data")) data = "hitrate.csv"
if (!exists("out")) out = "hitrate"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "HBM hit rate per policy, the weights' share apart\ngh200-paper, llama-3.1-8b, prompt 31299, 10239 steps, batch 4, sparsity 0.6, synthetic trace"
set xlabel "policy"
set ylabel "share of all bytes read (weights + KV)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set style data histogram
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set yrange [0:1.05]
plot data using "weights_share":xtic(1) title "weights, read from HBM" lc rgb "#bbbbbb", \
     '' using "kv_hbm_share" title "KV read from HBM" lc rgb "#1f77b4", \
     '' using "kv_dram_share" title "KV read from DRAM" lc rgb "#ff7f0e", \
     '' using 0:"hbm_hit_rate_kv" with points pt 7 ps 1.6 lc rgb "black" title "HBM hit rate of KV alone"
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
