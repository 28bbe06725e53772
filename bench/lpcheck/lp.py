# The LP relaxation (or, with "mip", the integer program) of the one-layer placement problem
# of docs/BOUNDS.md, written as a CPLEX LP file and solved by glpsol (Debian glpk-utils): an
# oracle independent of kvplace for lpbound and plan (bench/lpcheck/run.sh).  Prints the
# optimal value in seconds.
# usage: lp.py trace.npy slots tok_bytes w_layer B_hbm B_dram B_link sparsity [mip]
import math, os, subprocess, sys, tempfile

import numpy as np

t = np.load(sys.argv[1])
S, tok, w = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
bh, bd, bl = map(float, sys.argv[5:8])
sp = float(sys.argv[8])
mip = len(sys.argv) > 9
N, L, C = t.shape
P = C - N + 1
SCALE = 1e6  # the objective in microseconds, for the solver's tolerances

# access sets: the top k by score, ties to the lower position (docs/MODEL.md)
reads = []
for n in range(N):
    ctx = P + n
    k = max(0, min(ctx, math.ceil((1 - sp) * ctx - 1e-9)))
    sc = t[n, 0, :ctx].astype(np.float64)
    reads.append(set(sorted(range(ctx), key=lambda x: (-sc[x], x))[:k]))


def y(x, n):  # token x in HBM after the placement of step n (n = -1: initially)
    return f"y{x}_{n + 1}"


cons, bounds, ints = [], [], []
for n in range(-1, N):
    exist = P if n < 0 else P + n + 1
    cons.append(" + ".join(y(x, n) for x in range(exist)) + f" <= {S}")
for n in range(N):
    ctx, A = P + n, reads[n]
    terms = {"h": [], "d": [], "u": [], "n": []}  # (coef, var or 1)
    for x in A:  # reads from y(x, n-1)
        terms["h"].append((1, y(x, n - 1)))
        for k in "du":
            terms[k] += [(1, 1), (-1, y(x, n - 1))]
    for x in range(ctx):  # moves, linearised: p >= y' - y, d >= y - y'
        a = 1 if x in A else 0
        p, d = f"p{x}_{n}", f"d{x}_{n}"
        cons.append(f"{p} - {y(x, n)} + {y(x, n - 1)} >= 0")
        cons.append(f"{d} - {y(x, n - 1)} + {y(x, n)} >= 0")
        if not a:
            terms["d"].append((1, p))
            terms["u"].append((1, p))
            terms["h"].append((1, d))
        terms["h"].append((1, p))
        terms["n"].append((1, d))
        terms["d"].append((1, d))
    xn = P + n  # the new token
    terms["h"].append((1, y(xn, n)))
    for k in "dn":
        terms[k] += [(1, 1), (-1, y(xn, n))]
    for k, bw, const in (("h", bh, w / bh), ("d", bd, 0), ("u", bl, 0), ("n", bl, 0)):
        c0, parts = const * SCALE, []
        for cc, v in terms[k]:
            coef = cc * tok / bw * SCALE
            if v == 1:
                c0 += coef
            else:
                parts.append(f"{'-' if coef >= 0 else '+'} {abs(coef):.17g} {v}")
        cons.append(f"t{n} " + " ".join(parts) + f" >= {c0:.17g}")
for x in range(P + N):
    for n in range(-1, N):
        if (n < 0 and x < P) or (n >= 0 and x <= P + n):
            bounds.append(f" 0 <= {y(x, n)} <= 1")
            ints.append(y(x, n))
lines = ["Minimize", " obj: " + " + ".join(f"t{n}" for n in range(N)), "Subject To"]
lines += [f" c{i}: {c}" for i, c in enumerate(cons)] + ["Bounds"] + bounds
if mip:
    lines += ["General"] + [" " + v for v in ints]
lines.append("End")
with tempfile.TemporaryDirectory() as d:
    lp, sol = os.path.join(d, "m.lp"), os.path.join(d, "sol.txt")
    with open(lp, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["glpsol", "--lp", lp, "-o", sol], capture_output=True, check=True)
    for line in open(sol):
        if line.startswith("Objective:"):
            print(float(line.split("=")[1].split()[0]) / SCALE)
