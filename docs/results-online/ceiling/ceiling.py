#!/usr/bin/env python3
"""How much can any online rule gain on the synthetic trace, weights not counted?

Layer 0 of a trace written by `kvplace trace gen` (float32 scores, shape (steps, layers, C)).
With the weights not counted DRAM sets every step's time, so a step costs, in tokens, its
misses plus its demotions (a DRAM write each) plus the new token when it goes to DRAM; a
promotion rides on the read (an HBM write).  Each rule keeps in HBM the `slots` tokens of
highest value among the resident ones, this step's reads and the new token (a resident token
is credited `thr`: moving it out costs a write); it never fetches an unread token (that costs
a DRAM read, as a miss does).  Rules:
  reactive  the reads and the new token first, then the most recently read (LRU)
  index     online: a read token is worth its expected run c/(1-c) + H q, an unread one H q,
            q from the past read frequency (EMA 0.98), c = 0.72 + 0.25 q (measured below)
  qoracle   index with q = each token's read frequency over the whole run (known to no
            online rule: the ceiling of a rule that knew each token's base importance)
  oracle    offline: a token is worth its reads in the next H steps (lookahead)
Prints the per-token statistics, then each rule's cost per step (tokens; lower is better).
Usage: ceiling.py TRACE.npy PROMPT SLOTS SPARSITY
"""
import math
import sys
from collections import defaultdict

import numpy as np

path, P, SLOTS, SP = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
a = np.load(path, mmap_mode="r")
N, _, C = a.shape
R = np.zeros((N, C), bool)
for n in range(N):
    ctx = P + n
    s = np.array(a[n, 0, :ctx])
    k = math.ceil((1 - SP) * ctx)
    R[n, np.argsort(-s, kind="stable")[:k]] = True

# Statistics: does a token stay in the read set, does it come back?
run = np.zeros(C, int)
gap = np.zeros(C, int)
freq = np.zeros(C)
cont = defaultdict(lambda: [0, 0])
ret = defaultdict(lambda: [0, 0])
byq = defaultdict(lambda: [0, 0])
for n in range(N - 1):
    r, nx = R[n], R[n + 1]
    run = np.where(r, run + 1, 0)
    if n > 100:
        for j in (1, 2, 4, 8):
            m = r & (run == j) if j < 8 else r & (run >= 8)
            cont[j][0] += m.sum()
            cont[j][1] += (m & nx).sum()
        for g in (1, 2, 5, 10, 20, 50):
            m = ~r & (gap == g)
            ret[g][0] += m.sum()
            ret[g][1] += (m & nx).sum()
        fb = np.minimum((freq * 10).astype(int), 9)
        for b in range(10):
            for key, m in ((("new run", b), r & (run == 1) & (fb == b)), (("unread", b), ~r & (fb == b))):
                byq[key][0] += m.sum()
                byq[key][1] += (m & nx).sum()
    gap = np.where(r, 0, gap + 1)
    freq = 0.98 * freq + 0.02 * r
share = lambda c: f"{c[1] / max(c[0], 1):.3f}"
print("read again next step, by run length so far:", {j: share(c) for j, c in cont.items()})
print("read next step, unread for g steps:", {g: share(c) for g, c in ret.items()})
print("read next step, by past frequency (EMA 0.98) decile:")
for key in sorted(byq):
    print("  ", key, share(byq[key]))

QALL = np.zeros(C)
for j in range(C):
    born = max(0, j - P + 1)
    QALL[j] = R[born:, j].mean() if born < N else 0


def run_rule(rule, H, thr):
    S = np.zeros(C, bool)
    S[:SLOTS] = True
    cost = miss = dem = 0
    gap = np.full(C, 1e9)
    freq = np.zeros(C)
    for n in range(N):
        ctx, r = P + n, R[n]
        miss += (r & ~S).sum()
        gap = np.where(r, 0, gap + 1)
        freq = 0.98 * freq + 0.02 * r
        new = min(P + n, C - 1)
        if rule == "reactive":
            v = -gap.copy()
        elif rule == "index":
            c = 0.72 + 0.25 * freq
            q = 0.03 + 0.3 * freq
            v = np.where(r, c / (1 - c) + q * H, q * H)
        elif rule == "qoracle":
            t = np.arange(1, H + 1)[:, None]
            keep = 0.67 ** t
            v = np.where(r, (keep + (1 - keep) * QALL).sum(0), ((1 - keep) * QALL).sum(0))
        else:
            v = R[n + 1:n + 1 + H].sum(0).astype(float) if n + 1 < N else np.zeros(C)
        v = v.astype(float)
        v[new] = 1e9
        allowed = S | r
        allowed[new] = True
        allowed[ctx + 1:] = False
        score = np.where(S, v + thr, v) if rule != "reactive" else v
        score = np.where(r, score + (1e6 if rule == "reactive" else 0), score)
        score[~allowed] = -1e18
        k = min(SLOTS, int(allowed.sum()))
        S2 = np.zeros(C, bool)
        S2[np.argpartition(-score, k - 1)[:k]] = True
        dem += (S & ~S2).sum()
        cost += 0 if S2[new] else 1
        S = S2
    return (cost + miss + dem) / N, miss / N, dem / N


print("rule H thr: tokens per step (cost, misses, demotions)")
for rule, H, thr in (("reactive", 0, 0), ("index", 8, 1), ("qoracle", 2, 0.5), ("qoracle", 4, 0.25),
                     ("oracle", 4, 1), ("oracle", 8, 1)):
    c = run_rule(rule, H, thr)
    print(f"{rule} {H} {thr}: {c[0]:.1f} ({c[1]:.1f}, {c[2]:.1f})", flush=True)
