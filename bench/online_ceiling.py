#!/usr/bin/python3
"""A ceiling on what any online placement rule can reach, weights not counted (docs/RESULTS.md
"What a deployable scheduler gets", docs/POLICIES.md "whittle").

Cost model (docs/MODEL.md, weights not counted): HBM is nearly idle, so a step's time is at
least its DRAM time, and in tokens a step costs its misses (DRAM reads), its demotions (DRAM
writes) and its promotions of tokens not read at that step (a DRAM read); a promotion of a
token read at that step rides on the read (an HBM write).  The new token is left out (it costs
at most one token a step, for every rule alike).

Read model (the two-state renewal model whittle's index assumes): token x is read at a step
or not; at every step, with chance r, its state is drawn afresh, read with chance q_x, else it
stays.  So P(read at n+1 | read at n) = 1 - r + r q_x and P(read at n+1 | unread) = r q_x.
q_x is the token's read share over its life in the trace (known to no online rule: giving it
away only lowers the bound), r is fitted to the trace's P(read again | read).

The bound.  Relax the capacity (at most S tokens in HBM at every step) to "S x N token-steps
over the run, in expectation" with a price lam >= 0 per token-step.  The relaxed problem splits
by token: each token is a two-location decision process whose state (read now or not, where it
is) the rule sees, solved exactly by backward induction over the token's life.  For every lam,
sum_x V_x(lam) - lam S N is at most the expected cost of ANY rule that decides from the past
(weak duality; an online rule restricted to one token is one of that token's policies), so its
maximum over lam is a lower bound on the online cost under the model, and plan's measured time
over that bound's time caps every online rule's share of plan's throughput.

The same split with each token's reads known in advance (hindsight) gives the offline optimum's
Lagrangian bound in the same cost model; it is printed for the trace and for a trace sampled
from the fitted model, to show how much of the gap the model itself carries.

Usage: online_ceiling.py TRACE.npy PROMPT SLOTS SPARSITY [PLAN_TOKENS]
  TRACE.npy   float32 scores (steps, layers, C) from `kvplace trace gen`; layers 0.. are used
  PLAN_TOKENS plan's time per layer and step in DRAM-token units:
              total_time_s / (steps x layers) / (tok_bytes / dram_bandwidth)
Deterministic (seeded); numpy only.
"""
import math
import sys

import numpy as np


def read_sets(a, layer, P, sp):
    N, _, C = a.shape
    R = np.zeros((N, C), bool)
    for n in range(N):
        ctx = P + n
        s = np.asarray(a[n, layer, :ctx])
        k = math.ceil((1 - sp) * ctx - 1e-9)
        # the top k, ties to the lower position (docs/MODEL.md): a stable sort of -score
        R[n, np.argsort(-s, kind="stable")[:k]] = True
    return R


def lifetimes(P, N, C):
    born = np.maximum(0, np.arange(C) - P + 1)  # position P + n - 1 is written at step n
    return np.minimum(born, N)


def fit(R, born):
    N, C = R.shape
    life = np.maximum(N - born, 1)
    q = R.sum(0) / life
    # r from P(read again | read) = 1 - r (1 - q): least squares over all (read, next) pairs
    rd = R[:-1]
    nxt = R[1:]
    qq = np.broadcast_to(q, rd.shape)[rd]
    again = nxt[rd].astype(float)
    # 1 - again = r (1 - q)  ->  r = sum (1 - again)(1 - q) / sum (1 - q)^2
    r = float(((1 - again) * (1 - qq)).sum() / ((1 - qq) ** 2).sum())
    return q, r


def online_value(q, r, born, N, lam):
    """sum over tokens of the optimal expected cost of the relaxed one-token problem."""
    C = q.size
    ph = np.stack([r * q, 1 - r + r * q])  # P(read next | h = 0, 1)
    # V[h, loc] at the end: 0
    V = np.zeros((2, 2, C))
    total = np.zeros(C)
    for t in range(N - 2, -1, -1):
        # state at step t after its reads: h (read at t), loc (where it was at t); action a:
        # where it is at t + 1.  Cost of the decision: lam a + move + the read of t + 1 if in DRAM.
        W = np.empty_like(V)
        for h in (0, 1):
            p = ph[h]
            cont = [p * V[1, a] + (1 - p) * V[0, a] for a in (0, 1)]
            for loc in (0, 1):
                stay0 = (1.0 if loc == 1 else 0.0) + p + cont[0]  # in DRAM at t + 1
                up = 0.0 if (loc == 1 or h == 1) else 1.0
                stay1 = lam + up + cont[1]
                W[h, loc] = np.minimum(stay0, stay1)
        V = W
        # a token born at step t starts here: its state at t is drawn from q, its place is the
        # better of the two (the initial placement is free)
        start = born == t
        if start.any():
            v0 = q * V[1, 0] + (1 - q) * V[0, 0]
            v1 = q * V[1, 1] + (1 - q) * V[0, 1]
            total[start] = np.minimum(v0, v1)[start]
    return total.sum()


def offline_value(R, born, lam):
    """the same relaxation with each token's reads known: a shortest path per token."""
    N, C = R.shape
    V = np.zeros((2, C))  # V[loc] after the last step
    total = np.zeros(C)
    for t in range(N - 2, -1, -1):
        h = R[t]
        rn = R[t + 1].astype(float)
        W = np.empty_like(V)
        for loc in (0, 1):
            stay0 = (1.0 if loc == 1 else 0.0) + rn + V[0]
            up = np.where((loc == 1) | h, 0.0, 1.0)
            stay1 = lam + up + V[1]
            W[loc] = np.minimum(stay0, stay1)
        V = W
        start = born == t
        total[start] = np.minimum(V[0], V[1])[start]
    return total.sum()


def maximise(f, lo, hi, iters=40):
    """max of a concave function of lam on [lo, hi] (golden section), and its argmax."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (fc, c) if fc > fd else (fd, d)


def sample_model(q, r, born, N, seed):
    rng = np.random.default_rng(seed)
    C = q.size
    R = np.zeros((N, C), bool)
    h = rng.random(C) < q
    for n in range(N):
        renew = rng.random(C) < r
        h = np.where(renew, rng.random(C) < q, h)
        R[n] = h & (born <= n)
    return R


def main():
    path, P, S, sp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    plan_tokens = float(sys.argv[5]) if len(sys.argv) > 5 else None
    a = np.load(path, mmap_mode="r")
    N, L, C = a.shape
    for layer in range(L):
        R = read_sets(a, layer, P, sp)
        born = lifetimes(P, N, C)
        q, r = fit(R, born)
        per = lambda v, lam: (v - lam * S * N) / N  # tokens per step
        on, lam_on = maximise(lambda lam: per(online_value(q, r, born, N, lam), lam), 0, 4)
        off, lam_off = maximise(lambda lam: per(offline_value(R, born, lam), lam), 0, 4)
        Rm = sample_model(q, r, born, N, 1 + layer)
        offm, _ = maximise(lambda lam: per(offline_value(Rm, born, lam), lam), 0, 4)
        print(f"layer {layer}: N {N}, C {C}, slots {S}, reads/step {R.sum() / N:.1f}, "
              f"fitted renew r = {r:.3f}")
        print(f"  online bound (any rule that sees the past, under the model): "
              f"{on:.1f} tokens/step (price {lam_on:.3f})")
        print(f"  offline Lagrangian bound, the trace:                 {off:.1f} tokens/step "
              f"(price {lam_off:.3f})")
        print(f"  offline Lagrangian bound, a trace drawn from the model: {offm:.1f} tokens/step")
        print(f"  online bound / offline bound: trace {on / off:.3f}, model {on / offm:.3f}; "
              f"ceiling on an online share of the offline optimum (model): {offm / on:.3f}")
        if plan_tokens:
            print(f"  plan: {plan_tokens:.1f} tokens/step -> no online rule above "
                  f"{plan_tokens / on:.3f} of plan's throughput (under the model)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
