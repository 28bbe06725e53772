# kvplace study online: re-plot with `gnuplot online.gp` in this directory.
if (!exists("data")) data = "online.csv"
if (!exists("out")) out = "online"
set datafile separator comma
set key autotitle columnhead
set terminal pngcairo noenhanced size 1200,650 font "sans,11"
set output out.".png"
set title "Online policies against the best offline reference\ngh200-paper, llama-3.1-8b, prompt 31299, 32 steps, batch 4, sparsity 0.6, synthetic trace"
set xlabel "attention sparsity (share of past tokens not read per step)"
set ylabel "throughput / best offline reference (plan, else the best lookahead point)"
set grid ytics
set key outside right top Left reverse
set yrange [0:*]
set yrange [0:1.4]
plot data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("static_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#7f7f7f" title "static, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("reactive_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#ff7f0e" title "reactive, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("page_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 lc rgb "#2ca02c" title "page, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("hot_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 title "hot, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("balanced_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 title "balanced, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("payback_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 title "payback, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("steer_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 title "steer, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "counted" ? column("whittle_of_reference") : NaN) with linespoints lw 2 pt 7 dt 1 title "whittle, weights counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("static_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#7f7f7f" title "static, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("reactive_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#ff7f0e" title "reactive, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("page_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 lc rgb "#2ca02c" title "page, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("hot_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 title "hot, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("balanced_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 title "balanced, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("payback_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 title "payback, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("steer_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 title "steer, weights not counted", \
     data using "sparsity":(strcol("variation") eq "actual" && strcol("weights") eq "not_counted" ? column("whittle_of_reference") : NaN) with linespoints lw 2 pt 6 dt 2 title "whittle, weights not counted", \
     1 with lines dt 3 lc rgb "#555555" title "the reference"
set terminal svg noenhanced size 1200,650 font "sans,11"
set output out.".svg"
replot
set output
set terminal pdfcairo noenhanced size 7in,3.8in font "sans,8"
set output out.".pdf"
replot
set output
