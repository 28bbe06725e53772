#!/bin/sh
# The fingerprint scenarios of docs/PERF.md §21.3 and §29: run with the fingerprint binary
# built from the code before a change and after it, and compare the outputs (md5sum).
#     sh bench/fingerprint.sh build/bench/fingerprint > after.txt
F=${1:-build/bench/fingerprint}
RL="reactive,reactive:g=2,reactive:g=3,reactive:g=16,page:page_tokens=2,page"
for a in "2000 300 4 actual 0.6 400 7" "500 200 2 high 0.99 30 1" "3000 300 2 low 0 100 5" \
         "1000 200 3 actual 0.6 40 9" "6000 300 2 low 0.95 400 8"; do
    $F $a || exit 1
done
for a in "8000 500 2 actual 0.6 255 37" "3000 600 2 actual 0.6 1000 43" "300 60 2 actual 0.6 4 3" \
         "500 400 2 high 0.99 60 11" "4000 800 2 low 0.3 300 5" "2000 1000 2 actual 0.6 120 21" \
         "20000 400 2 high 0.1 400 3" "37 50 2 actual 0.5 3 2" "100 40 1 high 0.9 20 4"; do
    $F $a $RL || exit 1
done
