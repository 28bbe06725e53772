# kvplace study tiers: re-plot with `gnuplot tiers.gp` in this directory.
if (!exists("data")) data = "tiers.csv"
if (!exists("out")) out = "tiers"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "What a CXL or NVMe tier adds where DRAM alone overflows\ngh200-paper, llama-3.1-8b, prompt 8192, 256 steps, sparsity 0.6, synthetic trace"
set xlabel "batch (sequences decoded together)"
set ylabel "throughput (tokens/s)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set logscale x 2
plot data using "batch":(strcol("machine") eq "dram" ? column("static_tok_s") : NaN) with linespoints lw 2 pt 6 dt 2 lc 1 title "static, dram", \
     data using "batch":(strcol("machine") eq "dram" ? column("lookahead_tok_s") : NaN) with linespoints lw 2 pt 7 dt 1 lc 1 title "lookahead, dram", \
     data using "batch":(strcol("machine") eq "dram+cxl" ? column("static_tok_s") : NaN) with linespoints lw 2 pt 6 dt 2 lc 2 title "static, dram+cxl", \
     data using "batch":(strcol("machine") eq "dram+cxl" ? column("lookahead_tok_s") : NaN) with linespoints lw 2 pt 7 dt 1 lc 2 title "lookahead, dram+cxl", \
     data using "batch":(strcol("machine") eq "dram+nvme" ? column("static_tok_s") : NaN) with linespoints lw 2 pt 6 dt 2 lc 3 title "static, dram+nvme", \
     data using "batch":(strcol("machine") eq "dram+nvme" ? column("lookahead_tok_s") : NaN) with linespoints lw 2 pt 7 dt 1 lc 3 title "lookahead, dram+nvme", \
     data using "batch":(strcol("machine") eq "dram+cxl+nvme" ? column("static_tok_s") : NaN) with linespoints lw 2 pt 6 dt 2 lc 4 title "static, dram+cxl+nvme", \
     data using "batch":(strcol("machine") eq "dram+cxl+nvme" ? column("lookahead_tok_s") : NaN) with linespoints lw 2 pt 7 dt 1 lc 4 title "lookahead, dram+cxl+nvme"
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
set terminal pdfcairo noenhanced size 7in,3.8in font "sans,8"
set output out.".pdf"
replot
set output
