#!/usr/bin/python3
"""A straightforward NumPy implementation of kvplace's `static` on a float32 .npy trace
(docs/MODEL.md: the model; docs/PERF.md section 12: why it is here).  Every step and layer:
k = ceil((1 - sparsity) * context - 1e-9), the k-th highest score of the row (ties to the
lower positions), the reads below static's resident prefix min(context, slots), and the
step time max(HBM, DRAM, link up, link down); the layer sums in step order, T their sum in
layer order, as kvplace sums them.

    npy_model.py FILE.npy SPARSITY SLOTS TOK_BYTES W_LAYER HBM_BW DRAM_BW LINK_BW

prints `numpy FILE wall_s cpu_s T`.  The constants are the scenario's, as
`bench npy-static` prints them."""
import math
import sys
import time

import numpy as np


def main():
    path = sys.argv[1]
    sparsity, slots, tok = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    w_layer, hbm, dram, link = (float(x) for x in sys.argv[5:9])
    data = np.load(path, mmap_mode="r")
    steps, layers, cols = data.shape
    prompt = cols - steps + 1
    t0, c0 = time.perf_counter(), time.process_time()
    total = 0.0
    for l in range(layers):
        t_layer = 0.0
        for n in range(steps):
            ctx = prompt + n
            row = np.asarray(data[n, l, :ctx])
            k = min(max(math.ceil((1.0 - sparsity) * ctx - 1e-9), 0), ctx)
            pre = min(ctx, slots)
            if k == 0:
                hits = 0
            elif k == ctx:
                hits = pre
            else:
                thr = np.partition(row, ctx - k)[ctx - k]
                above = int(np.count_nonzero(row > thr))
                low = row[:pre]
                hits = int(np.count_nonzero(low > thr)) + min(
                    int(np.count_nonzero(low == thr)), k - above)
            hbm_write, dram_write, link_down = (1, 0, 0) if pre < slots else (0, 1, 1)
            t_hbm = (w_layer + float(hits + hbm_write) * tok) / hbm
            t_dram = float((k - hits) + dram_write) * tok / dram
            t_up = float(k - hits) * tok / link
            t_down = float(link_down) * tok / link
            t_layer += max(max(t_hbm, t_dram), max(t_up, t_down))
        total += t_layer
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"numpy {path} {wall:.3f} {cpu:.3f} {total:.9g}")


if __name__ == "__main__":
    main()
