/*
 * `lpbound` and `plan`: a lower bound on the optimum that charges migration, and an offline
 * plan built from it (docs/BOUNDS.md has the derivation and the proofs).
 *
 * Per layer, the exact problem is an integer program over y(x, n) = token x in HBM after the
 * placement of step n.  Pricing the step's four terms with a convex combination lam(n) and
 * each step's capacity with mu(n) >= 0 splits it into one two-state shortest path per token;
 * every (lam, mu) gives a valid lower bound (weak duality), so the search over (lam, mu) may
 * be heuristic: the bound reported is the best value found, never an extrapolation.  The
 * first point is the dual of `bound` itself, so lpbound >= bound by construction.  Layers
 * after the first two start from the prices of the layer two before them (they are alike):
 * fewer iterations each, still a bound since each value is evaluated on the layer's own reads.
 *
 * A token's path only changes cost at its reads, its birth and its moves, so the shortest
 * path walks the token's reads (a token-major bitset of the layer, built in one pass over the
 * trace); a run of steps without a read is crossed in O(log N) with a segment tree over the
 * step prices (at most one demotion and one promotion pay inside such a gap).
 */
#include "base/parallel.h"
#include "base/error.h"
#include "engine/cost.h"
#include "engine/runner.h"
#include "policy/schedule.h"
#include "trace/trace.h"

#include <glpk.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_HBM, T_DRAM, T_UP, T_DOWN, NTERMS };
/* The ascent's rates (docs/BOUNDS.md: chosen on small cases against the LP's value). */
#define MU_RATE0 0.3  /* first step of a capacity price, in units of tok / B_hbm */
#define MU_UP 1.2     /* a price's step grows by this while its excess keeps its sign */
#define MU_DOWN 0.5   /* and shrinks by this when the sign flips */
#define LAM_RATE0 0.5 /* first step of a step's term weights, relative */
#define LAM_DOWN 0.7  /* shrinks by this when the binding term changes */

enum { P_ITERS, P_TOL, P_WARM, P_GRID, NPARAMS };
static const kvp_policy_param lg_params[] = {
    {"iters", 60, 1, 100000, 1, "dual iterations of the first two layers (the stopping rule's "
                                "cap)"},
    {"tol", 1e-4, 0, 1, 0, "stop a layer when 10 iterations raise its bound by less than this "
                           "share (0: run every iteration); a layer of at most 32 steps then "
                           "runs cutting planes until they promise under 10 x tol more"},
    {"warm", 20, 0, 100000, 1, "dual iterations of a later layer, which starts from the prices "
                               "of the layer two before it (0: every layer starts cold and "
                               "runs iters)"},
    {"grid", 1, 0, 1, 1, "plan: also replay lookahead at W 2, 4, .., 64 x R 0.1, 0.2, 0.3, "
                         "0.5, 1 (the study's grid) and static, and keep the best"},
};
/* lpbound takes the dual's parameters only */
#define LPBOUND_PARAMS 3
/* Layer l starts from the prices of layer l - WARM_LAG: a fixed lag, so that the results do
 * not depend on the threads, and 2 so that two threads never wait for each other. */
#define WARM_LAG 2

/* Segment-tree node over steps: A(i) = Q[i+1] + demN[i] (demote at i), B(j) = promN[j] -
 * Q[j+1] (promote at j), and the best pair i < j. */
typedef struct seg {
    double a, b, ab;
    uint32_t ia, ib, pi, pj;
} seg;

/* The minima of the segment tree's a, b and ab over [i, i + 2^k): values only (min is exact,
 * so overlapping ranges give the tree's values bit for bit; docs/PERF.md §16.4). */
typedef struct sp_entry {
    double a, b, ab;
} sp_entry;

/* What a token's path reads at a read of step n, in one 48-byte record instead of six
 * arrays: Q[n+1], the step's prices, mu[n+1]. */
typedef struct lg_price {
    double q1, ch, rd, cn, cd, mu1; /* rd = cd + cu */
} lg_price;

/* The paths' traffic at a step, in tokens. */
typedef struct lg_traffic {
    uint32_t h, d, u, dn;
} lg_traffic;

typedef struct lg_layer {
    uint32_t layer, P, N, X, S;
    /* Streams (docs/MODEL.md "Streams"): token x is position x / ns of stream x % ns, with
     * that stream's prompt and steps (ns = 1, sprompt = NULL: one stream, P and N). */
    uint32_t ns;
    const uint32_t *sprompt, *ssteps;
    double kh, kd, ku, kn, w; /* seconds per token on HBM, DRAM, link up and down; the
                               * layer's weights, s */
    uint64_t *off;        /* per token: first word of its read bitset; off[X] = words */
    uint64_t *bits;
    uint64_t reads;
    double (*lam)[NTERMS], (*best_lam)[NTERMS]; /* per step */
    double *mu, *best_mu;                       /* per step + 1 (0: the initial placement), s */
    double *eta;                                /* per step + 1: mu's step */
    double *lam_eta;                            /* per step: lam's rate */
    int8_t *mu_sign;
    int8_t *lam_arg;
    /* this iteration's prices, per step (seconds per token) */
    double *ch, *cd, *cu, *cn, *Q; /* Q[k] = sum of mu[0..k) */
    lg_price *pr;                  /* the same, per step, for the paths' reads */
    seg *tree;
    uint32_t tsize;
    sp_entry *sp; /* sparse table: level k at sp[k * N], ranges [i, i + 2^k) */
    uint32_t sp_levels;
    /* this iteration's traffic of the paths, per step, occupancy per step + 1 */
    lg_traffic *tr;
    int64_t *odiff;
    /* per-token scratch */
    uint32_t *ev;
    uint8_t *code;
    double min_dem, min_prom; /* the cheapest demotion and promotion of any step */
    double dram_share;        /* bound's split: the share of the reads DRAM serves */
    double bound_s;           /* bound's value on this layer (a proven bound too) */
    double hbias; /* primal extraction: HBM prices lowered by this share (ties go to HBM) */
    double best;
} lg_layer;

/* Token x's span: its stream's steps *N (it leaves both tiers, free, after step N - 1), its
 * birth (-1: a prompt token; else the step that writes it) and the first step that may read
 * it, *n0; returns 0 if x never exists (a position past its stream's last). */
static inline int tok_span(const lg_layer *g, uint32_t x, uint32_t *N, int64_t *birth,
                           uint32_t *n0)
{
    uint32_t P = g->P, pos = x;
    *N = g->N;
    if (g->sprompt) {
        pos = x / g->ns;
        P = g->sprompt[x % g->ns];
        *N = g->ssteps[x % g->ns];
    }
    *birth = pos < P ? -1 : (int64_t)pos - P;
    *n0 = pos < P ? 0 : pos - P + 1;
    return *birth < (int64_t)*N;
}

/* ---------------------------------------------------------------------------------------- */

static seg seg_leaf(const lg_layer *g, uint32_t i)
{
    seg s;
    s.a = g->Q[i + 1] + g->ch[i] + g->cn[i] + g->cd[i];
    s.b = g->cd[i] + g->cu[i] + g->ch[i] - g->Q[i + 1];
    s.ia = s.ib = i;
    s.ab = INFINITY;
    s.pi = s.pj = i;
    return s;
}

static seg seg_join(seg l, seg r)
{
    seg s;
    s.a = l.a <= r.a ? l.a : r.a;
    s.ia = l.a <= r.a ? l.ia : r.ia;
    s.b = l.b <= r.b ? l.b : r.b;
    s.ib = l.b <= r.b ? l.ib : r.ib;
    s.ab = l.ab;
    s.pi = l.pi;
    s.pj = l.pj;
    if (r.ab < s.ab) {
        s.ab = r.ab;
        s.pi = r.pi;
        s.pj = r.pj;
    }
    if (l.a + r.b < s.ab) {
        s.ab = l.a + r.b;
        s.pi = l.ia;
        s.pj = r.ib;
    }
    return s;
}

static void seg_build(lg_layer *g)
{
    uint32_t n = g->tsize;
    for (uint32_t i = 0; i < n; i++) {
        if (i < g->N) {
            g->tree[n + i] = seg_leaf(g, i);
        } else {
            seg e = {INFINITY, INFINITY, INFINITY, 0, 0, 0, 0};
            g->tree[n + i] = e;
        }
    }
    for (uint32_t i = n - 1; i >= 1; i--)
        g->tree[i] = seg_join(g->tree[2 * i], g->tree[2 * i + 1]);
}

/* The sparse table from the tree's leaves; the joins in seg_join's order. */
static void sp_build(lg_layer *g)
{
    const uint32_t N = g->N;
    sp_entry *s0 = g->sp;
    for (uint32_t i = 0; i < N; i++) {
        seg l = g->tree[g->tsize + i];
        s0[i] = (sp_entry){l.a, l.b, l.ab};
    }
    for (uint32_t k = 1; k < g->sp_levels; k++) {
        const uint32_t h = 1u << (k - 1);
        const sp_entry *p = g->sp + (size_t)(k - 1) * N;
        sp_entry *q = g->sp + (size_t)k * N;
        for (uint32_t i = 0; i + 2 * h <= N; i++) {
            sp_entry l = p[i], r = p[i + h], e;
            e.a = l.a <= r.a ? l.a : r.a;
            e.b = l.b <= r.b ? l.b : r.b;
            e.ab = l.ab;
            if (r.ab < e.ab)
                e.ab = r.ab;
            if (l.a + r.b < e.ab)
                e.ab = l.a + r.b;
            q[i] = e;
        }
    }
}

static inline uint32_t sp_level(uint32_t len) /* floor(log2(len)), len >= 1 */
{
    return 31u - (uint32_t)__builtin_clz(len);
}

/* The values seg_query would give for [lo, hi], lo <= hi < N, in O(1): the ab of the range is
 * the least of the two covering blocks' and of the pairs neither holds (i before the second
 * block, j after the first), min a of [lo, hi - 2^k] + min b of [lo + 2^k, hi]. */
static inline void sp_query(const sp_entry *sp, uint32_t N, uint32_t lo, uint32_t hi, double *a,
                            double *b, double *ab)
{
    const uint32_t len = hi - lo + 1, k = sp_level(len), h = 1u << k;
    const sp_entry *t = sp + (size_t)k * N;
    const sp_entry l = t[lo], r = t[hi + 1 - h];
    *a = l.a <= r.a ? l.a : r.a;
    *b = l.b <= r.b ? l.b : r.b;
    double v = l.ab;
    if (len != h) {
        if (r.ab < v)
            v = r.ab;
        const uint32_t m = len - h, k2 = sp_level(m), h2 = 1u << k2;
        const sp_entry *t2 = sp + (size_t)k2 * N;
        double ma = t2[lo].a, ma2 = t2[lo + m - h2].a;
        double mb = t2[lo + h].b, mb2 = t2[hi + 1 - h2].b;
        ma = ma <= ma2 ? ma : ma2;
        mb = mb <= mb2 ? mb : mb2;
        if (ma + mb < v)
            v = ma + mb;
    }
    *ab = v;
}

/* Steps [lo, hi], lo <= hi < N, joined left to right. */
static seg seg_query(const lg_layer *g, uint32_t lo, uint32_t hi)
{
    seg left = {INFINITY, INFINITY, INFINITY, 0, 0, 0, 0}, right = left;
    uint32_t l = lo + g->tsize, r = hi + g->tsize + 1;
    while (l < r) {
        if (l & 1)
            left = seg_join(left, g->tree[l++]);
        if (r & 1)
            right = seg_join(g->tree[--r], right);
        l >>= 1;
        r >>= 1;
    }
    return seg_join(left, right);
}

/* ---------------------------------------------------------------------------------------- */
/* One token's shortest path                                                                 */

/* Codes of an event, per state after it: bits 0-1 how the gap before it was crossed into the
 * state before the read (for gap end H: 0 stay H, 1 from D promoting, 2 H-D-H; for gap end D:
 * 0 stay D, 1 from H demoting), bit 2/3: the state before the read (1: H) for after = H/D. */
enum { G_STAY = 0, G_MOVE = 1, G_HDH = 2 };

static inline double hold(const lg_layer *g, int64_t a, int64_t b) /* steps a..b in HBM */
{
    return a > b ? 0 : g->Q[b + 2] - g->Q[a + 1];
}

/* Adds the token's traffic and occupancy for the path (gap moves found again by query). */
static void add_hold(lg_layer *g, int64_t a, int64_t b)
{
    if (a > b)
        return;
    g->odiff[a + 1] += 1;
    g->odiff[b + 2] -= 1;
}

static void add_demote_free(lg_layer *g, uint32_t i) /* demotion at i, token not read at i */
{
    g->tr[i].h++;
    g->tr[i].dn++;
    g->tr[i].d++;
}

static void add_promote_free(lg_layer *g, uint32_t j)
{
    g->tr[j].d++;
    g->tr[j].u++;
    g->tr[j].h++;
}

/* Callback for plan: an interval of HBM residency [s, e] (s = -1: initially) with the reads
 * it serves. */
typedef void (*interval_fn)(void *user, uint32_t x, int64_t s, int64_t e, uint32_t served);

/*
 * The shortest path of token x under this iteration's prices; returns its cost, adds its
 * traffic and occupancy to the layer's sums (the subgradient) and calls fn, if not NULL, for
 * each of its HBM intervals.
 */
static double token_path(lg_layer *g, uint32_t x, interval_fn fn, void *user)
{
    /* The layer's arrays in locals: a store to code[] (a char type) may alias any of g's
     * fields, so the compiler would load them again after each read otherwise. */
    const lg_price *const pr = g->pr;
    const uint64_t *const bits = g->bits;
    uint32_t *const ev = g->ev;
    uint8_t *const codes = g->code;
    lg_traffic *const tr = g->tr;
    const double min_dem = g->min_dem, min_prom = g->min_prom;
    const sp_entry *const spt = g->sp;
    const uint32_t steps = g->N; /* the layer's (the sparse table's rows); N: the token's */
    const uint64_t w0 = g->off[x], w1 = g->off[x + 1];
    uint32_t N, n0;
    int64_t birth;
    if (!tok_span(g, x, &N, &birth, &n0))
        return 0;
    uint32_t ne = 0;
    /* event 0: birth */
    double FH, FD;
    if (birth < 0) {
        FH = g->mu[0];
        FD = 0;
    } else {
        uint32_t m = (uint32_t)birth;
        FH = g->ch[m] + g->mu[m + 1];
        FD = g->cd[m] + g->cn[m];
    }
    ev[0] = (uint32_t)(birth + 1); /* stored as step + 1 */
    codes[0] = 0;
    ne = 1;
    int64_t c = birth;
    for (uint64_t w = w0; w < w1; w++) {
        uint64_t word = bits[w];
        while (word) {
            uint32_t r = n0 + (uint32_t)((w - w0) * 64) + (uint32_t)__builtin_ctzll(word);
            word &= word - 1;
            /* the gap: placements at steps c+1 .. r-1 */
            double GH, GD;
            uint8_t code = 0;
            if ((int64_t)r == c + 1) {
                GH = FH;
                GD = FD;
            } else {
                double qc = pr[c + 1].q1, qr = pr[r].q1, hh = qr - qc;
                /* A move in the gap costs at least the cheapest move of any step: most gaps
                 * need no query (exact: a query is skipped only when it cannot win). */
                if (FH + min_dem >= FD && FD + min_prom >= FH + hh &&
                    min_dem + min_prom >= hh) {
                    GH = FH + hh;
                    GD = FD;
                    goto read;
                }
                double qa, qb, qab;
                sp_query(spt, steps, (uint32_t)(c + 1), r - 1, &qa, &qb, &qab);
                double hdh = qab - qc + qr, hd = qa - qc, dh = qb + qr;
                int hcode = G_STAY;
                double best_h = FH + hh;
                if (FH + hdh < best_h) {
                    best_h = FH + hdh;
                    hcode = G_HDH;
                }
                if (FD + dh < best_h) {
                    best_h = FD + dh;
                    hcode = G_MOVE;
                }
                int dcode = G_STAY;
                double best_d = FD;
                if (FH + hd < best_d) {
                    best_d = FH + hd;
                    dcode = G_MOVE;
                }
                GH = best_h;
                GD = best_d;
                code = (uint8_t)(hcode | dcode << 2);
            }
        read:
            /* the read at r, then the placement at r */
            ;
            const lg_price *p = &pr[r];
            double rh = p->ch, rd = p->rd;
            double h_from_h = GH + rh, h_from_d = GD + rd + rh;
            double d_from_d = GD + rd, d_from_h = GH + rh + p->cn + p->cd;
            int hb = h_from_h <= h_from_d, db = d_from_h < d_from_d;
            FH = (hb ? h_from_h : h_from_d) + p->mu1;
            FD = db ? d_from_h : d_from_d;
            code = (uint8_t)(code | hb << 4 | db << 5);
            ev[ne] = r + 1;
            codes[ne] = code;
            ne++;
            c = r;
        }
    }
    /* the tail: placements at steps c+1 .. N-1 */
    double tail_h = hold(g, c + 1, (int64_t)N - 1);
    int tail_demote = 0;
    uint32_t tail_i = 0;
    if (c + 1 <= (int64_t)N - 1) {
        seg q = seg_query(g, (uint32_t)(c + 1), N - 1);
        double hd = q.a - g->Q[c + 2];
        if (hd < tail_h) {
            tail_h = hd;
            tail_demote = 1;
            tail_i = q.ia;
        }
    }
    int end_h = FH + tail_h < FD;
    double cost = end_h ? FH + tail_h : FD;

    /* Backtrack.  state: 1 = H after the event's placement. */
    int st = end_h;
    int64_t h_end = -2; /* last step of the HBM interval being built (-2: none) */
    uint32_t served = 0;
    if (st) {
        if (tail_demote) {
            add_demote_free(g, tail_i);
            h_end = (int64_t)tail_i - 1;
        } else {
            h_end = (int64_t)N - 1;
        }
    }
    for (uint32_t e = ne - 1; e >= 1; e--) {
        uint32_t r = ev[e] - 1;
        int64_t cprev = (int64_t)ev[e - 1] - 1;
        uint8_t code = codes[e];
        int before = st ? (code >> 4) & 1 : (code >> 5) & 1;
        /* placement at r: before -> st, with the read discount */
        if (before && !st) { /* demote a read token */
            tr[r].dn++;
            tr[r].d++;
        } else if (!before && st) { /* promote a read token */
            tr[r].h++;
        }
        if (st && !before) { /* an HBM interval starts at r */
            add_hold(g, r, h_end);
            if (fn)
                fn(user, x, r, h_end, served);
            h_end = -2;
            served = 0;
        } else if (!st && before) {
            h_end = (int64_t)r - 1; /* the interval ends before the placement of r */
        }
        /* the read at r from `before` */
        if (before) {
            tr[r].h++;
            served++;
        } else {
            tr[r].d++;
            tr[r].u++;
        }
        /* the gap (cprev, r) into `before` */
        int after_prev = before;
        if ((int64_t)r != cprev + 1) {
            int gc = before ? code & 3 : (code >> 2) & 3;
            seg q = {0, 0, 0, 0, 0, 0, 0};
            if (gc != G_STAY)
                q = seg_query(g, (uint32_t)(cprev + 1), r - 1);
            if (before && gc == G_MOVE) { /* D until promoted at q.ib */
                add_promote_free(g, q.ib);
                add_hold(g, q.ib, h_end);
                if (fn)
                    fn(user, x, q.ib, h_end, served);
                h_end = -2;
                served = 0;
                after_prev = 0;
            } else if (before && gc == G_HDH) { /* H, demoted at pi, promoted at pj */
                add_promote_free(g, q.pj);
                add_hold(g, q.pj, h_end);
                if (fn)
                    fn(user, x, q.pj, h_end, served);
                served = 0;
                add_demote_free(g, q.pi);
                h_end = (int64_t)q.pi - 1;
                after_prev = 1;
            } else if (!before && gc == G_MOVE) { /* H until demoted at q.ia */
                add_demote_free(g, q.ia);
                h_end = (int64_t)q.ia - 1;
                after_prev = 1;
            }
        }
        st = after_prev;
    }
    /* the birth */
    if (birth >= 0) {
        uint32_t m = (uint32_t)birth;
        if (st) {
            tr[m].h++;
        } else {
            tr[m].d++;
            tr[m].dn++;
        }
    }
    if (st) {
        add_hold(g, birth, h_end);
        if (fn)
            fn(user, x, birth, h_end, served);
    }
    return cost;
}

/* ---------------------------------------------------------------------------------------- */
/* One layer: the problem, the prices, the dual search                                       */

static void lg_free(lg_layer *g)
{
    free(g->off);
    free(g->bits);
    free(g->lam);
    free(g->best_lam);
    free(g->mu);
    free(g->best_mu);
    free(g->eta);
    free(g->lam_eta);
    free(g->mu_sign);
    free(g->lam_arg);
    free(g->ch);
    free(g->cd);
    free(g->cu);
    free(g->cn);
    free(g->Q);
    free(g->tree);
    free(g->sp);
    free(g->pr);
    free(g->tr);
    free(g->odiff);
    free(g->ev);
    free(g->code);
}

static int lg_alloc(lg_layer *g)
{
    const size_t N = g->N, X = g->X;
    g->tsize = 1;
    while (g->tsize < N)
        g->tsize *= 2;
    g->off = malloc((X + 1) * sizeof *g->off);
    g->lam = malloc(N * sizeof *g->lam);
    g->best_lam = malloc(N * sizeof *g->best_lam);
    g->mu = calloc(N + 1, sizeof *g->mu);
    g->best_mu = calloc(N + 1, sizeof *g->best_mu);
    g->eta = malloc((N + 1) * sizeof *g->eta);
    g->lam_eta = malloc(N * sizeof *g->lam_eta);
    g->mu_sign = calloc(N + 1, 1);
    g->lam_arg = calloc(N, 1);
    g->ch = malloc(N * sizeof *g->ch);
    g->cd = malloc(N * sizeof *g->cd);
    g->cu = malloc(N * sizeof *g->cu);
    g->cn = malloc(N * sizeof *g->cn);
    g->Q = malloc((N + 2) * sizeof *g->Q);
    g->tree = malloc(2 * (size_t)g->tsize * sizeof *g->tree);
    g->sp_levels = N ? sp_level((uint32_t)N) + 1 : 1;
    g->sp = malloc((size_t)g->sp_levels * (N ? N : 1) * sizeof *g->sp);
    g->pr = malloc(N * sizeof *g->pr);
    g->tr = malloc(N * sizeof *g->tr);
    g->odiff = malloc((N + 2) * sizeof *g->odiff);
    g->ev = malloc((N + 1) * sizeof *g->ev);
    g->code = malloc(N + 1);
    if (!g->off)
        return 0;
    uint64_t words = 0;
    for (uint32_t x = 0; x < X; x++) {
        g->off[x] = words;
        uint32_t Nx, n0;
        int64_t birth;
        tok_span(g, x, &Nx, &birth, &n0);
        words += (Nx - (n0 < Nx ? n0 : Nx) + 63) / 64;
    }
    g->off[X] = words;
    g->bits = calloc(words ? words : 1, sizeof *g->bits);
    return g->bits && g->lam && g->best_lam && g->mu && g->best_mu && g->eta && g->lam_eta &&
           g->mu_sign && g->lam_arg && g->ch && g->cd && g->cu && g->cn && g->Q && g->tree &&
           g->sp && g->pr && g->tr && g->odiff && g->ev && g->code;
}

/* The layer's reads, token-major: one pass over its cursor. */
static int lg_load(lg_layer *g, const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err)
{
    kvp_cursor *cur = NULL;
    int rc = kvp_cursor_create(&cur, tr, g->layer, kvp_scenario_budget(sc), err);
    if (rc < 0)
        return rc;
    kvp_cursor_sets_only(cur);
    for (uint32_t n = 0; n < g->N; n++) {
        kvp_access a;
        rc = kvp_cursor_next(cur, &a, err);
        if (rc <= 0) {
            if (rc == 0)
                rc = kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early", kvp_trace_name(tr));
            break;
        }
        rc = 0;
        for (uint32_t i = 0; i < a.count; i++) {
            uint32_t x = a.pos[i], Nx, n0;
            int64_t birth;
            if (x >= g->X || !tok_span(g, x, &Nx, &birth, &n0) || birth >= (int64_t)n ||
                n >= Nx) {
                rc = kvp_error_set(err, KVP_ECHECK, "%s: step %u reads position %u outside "
                                   "the context", kvp_trace_name(tr), n, x);
                break;
            }
            uint32_t bit = n - n0;
            g->bits[g->off[x] + bit / 64] |= 1ull << (bit % 64);
        }
        g->reads += a.count;
        if (rc < 0)
            break;
    }
    kvp_cursor_free(cur);
    return rc;
}

/* The dual of `bound` at each step: the first prices, so that lpbound >= bound. */
static void lg_start(lg_layer *g, const kvp_scenario *sc, const kvp_derived *d)
{
    const double bh = sc->hbm_bandwidth;
    const int slow = sc->dram_bandwidth <= d->link_up[1] ? T_DRAM : T_UP;
    const double bd = fmin(sc->dram_bandwidth, d->link_up[1]);
    const double tok = (double)d->tok_bytes;
    kvp_cost_model m;
    kvp_cost_model_of(&m, sc, d);
    for (uint32_t k = 0; k <= g->N; k++)
        g->mu[k] = 0;
    /* the reads of each step: a pass over the bitsets */
    for (uint32_t n = 0; n < g->N; n++) /* tr[].h as scratch */
        g->tr[n].h = 0;
    for (uint32_t x = 0; x < g->X; x++) {
        uint32_t Nx, n0;
        int64_t birth;
        tok_span(g, x, &Nx, &birth, &n0);
        for (uint64_t w = g->off[x]; w < g->off[x + 1]; w++) {
            uint64_t word = g->bits[w];
            while (word) {
                g->tr[n0 + (w - g->off[x]) * 64 + (uint64_t)__builtin_ctzll(word)].h++;
                word &= word - 1;
            }
        }
    }
    double all = 0, dram = 0;
    g->bound_s = 0;
    for (uint32_t n = 0; n < g->N; n++) {
        double h;
        double a = (double)g->tr[n].h * tok;
        g->bound_s += kvp_step_time_bound(&m, a, &h);
        all += a;
        dram += a - h;
        double hmax = fmin(a, d->cap_layer);
        double lh;
        if (h <= 0) {
            lh = 1; /* HBM-bound with nothing read from it */
        } else if (h >= hmax && hmax < a) {
            lh = 0; /* the capacity binds: price it */
            g->mu[n] = tok / bd;
        } else {
            lh = bh / (bh + bd);
        }
        for (int i = 0; i < NTERMS; i++)
            g->lam[n][i] = 0;
        g->lam[n][T_HBM] = lh;
        g->lam[n][slow] = 1 - lh;
        g->lam_eta[n] = LAM_RATE0;
    }
    g->dram_share = all > 0 ? dram / all : 0;
    for (uint32_t k = 0; k <= g->N; k++)
        g->eta[k] = MU_RATE0 * g->kh;
}

/* Prices of this iteration from (lam, mu). */
static void lg_prices(lg_layer *g)
{
    for (uint32_t n = 0; n < g->N; n++) {
        g->ch[n] = g->lam[n][T_HBM] * g->kh * (1 - g->hbias);
        g->cd[n] = g->lam[n][T_DRAM] * g->kd;
        g->cu[n] = g->lam[n][T_UP] * g->ku;
        g->cn[n] = g->lam[n][T_DOWN] * g->kn;
    }
    g->Q[0] = 0;
    for (uint32_t k = 0; k <= g->N; k++)
        g->Q[k + 1] = g->Q[k] + g->mu[k];
    for (uint32_t n = 0; n < g->N; n++)
        g->pr[n] = (lg_price){g->Q[n + 1], g->ch[n], g->cd[n] + g->cu[n], g->cn[n], g->cd[n],
                              g->mu[n + 1]};
    g->min_dem = g->min_prom = INFINITY;
    for (uint32_t n = 0; n < g->N; n++) {
        g->min_dem = fmin(g->min_dem, g->ch[n] + g->cn[n] + g->cd[n]);
        g->min_prom = fmin(g->min_prom, g->cd[n] + g->cu[n] + g->ch[n]);
    }
    seg_build(g);
    sp_build(g);
}

/* The dual value at (lam, mu), and the paths' traffic. */
static double lg_eval(lg_layer *g, interval_fn fn, void *user)
{
    lg_prices(g);
    memset(g->tr, 0, g->N * sizeof *g->tr);
    memset(g->odiff, 0, (g->N + 2) * sizeof *g->odiff);
    double v = 0;
    for (uint32_t x = 0; x < g->X; x++)
        v += token_path(g, x, fn, user);
    for (uint32_t n = 0; n < g->N; n++)
        v += g->lam[n][T_HBM] * g->w;
    for (uint32_t k = 0; k <= g->N; k++)
        v -= g->mu[k] * g->S;
    return v;
}

/* Euclidean projection of v onto the simplex. */
static void simplex(double *v)
{
    double u[NTERMS];
    memcpy(u, v, sizeof u);
    for (int i = 1; i < NTERMS; i++) /* sort descending */
        for (int j = i; j > 0 && u[j] > u[j - 1]; j--) {
            double t = u[j];
            u[j] = u[j - 1];
            u[j - 1] = t;
        }
    double css = 0, theta = 0;
    for (int i = 0; i < NTERMS; i++) {
        css += u[i];
        double t = (css - 1) / (i + 1);
        if (u[i] - t > 0)
            theta = t;
    }
    for (int i = 0; i < NTERMS; i++)
        v[i] = fmax(v[i] - theta, 0);
}

/* One ascent step from the traffic of the last lg_eval.  The prices of the
 * capacity move by a per-step rate that halves when the sign of the excess flips (the
 * excess is the subgradient); the term weights move toward the terms that bind. */
static void lg_ascend(lg_layer *g)
{
    int64_t occ = 0;
    for (uint32_t k = 0; k <= g->N; k++) {
        occ += g->odiff[k];
        double excess = (double)occ - g->S;
        int8_t sign = excess > 0 ? 1 : excess < 0 ? -1 : 0;
        if (sign && g->mu_sign[k] && sign != g->mu_sign[k])
            g->eta[k] *= MU_DOWN;
        else if (sign)
            g->eta[k] *= MU_UP;
        g->mu_sign[k] = sign;
        double scale = excess / (g->S > 0 ? g->S : 1);
        g->mu[k] = fmax(0, g->mu[k] + g->eta[k] * scale);
    }
    for (uint32_t n = 0; n < g->N; n++) {
        const lg_traffic *t = &g->tr[n];
        double f[NTERMS] = {g->w + (double)t->h * g->kh, (double)t->d * g->kd,
                            (double)t->u * g->ku, (double)t->dn * g->kn};
        double fmx = fmax(fmax(f[0], f[1]), fmax(f[2], f[3]));
        if (fmx <= 0)
            continue;
        int arg = 0;
        for (int i = 1; i < NTERMS; i++)
            if (f[i] > f[arg])
                arg = i;
        if (g->lam_arg[n] && g->lam_arg[n] - 1 != arg)
            g->lam_eta[n] *= LAM_DOWN;
        g->lam_arg[n] = (int8_t)(arg + 1);
        double v[NTERMS];
        for (int i = 0; i < NTERMS; i++)
            v[i] = g->lam[n][i] + g->lam_eta[n] * (f[i] - fmx) / fmx;
        simplex(v);
        memcpy(g->lam[n], v, sizeof v);
    }
}

static void lg_keep_best(lg_layer *g, double v)
{
    if (v > g->best) {
        g->best = v;
        memcpy(g->best_lam, g->lam, g->N * sizeof *g->lam);
        memcpy(g->best_mu, g->mu, (g->N + 1) * sizeof *g->mu);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Small layers: the dual solved by cutting planes (docs/BOUNDS.md "Small layers")             */

/* Layers of at most this many steps get the phase after the ascent; its cap of evaluations,
 * and the first half-width of its box (lam; the capacity prices' in units of BOX_MU). */
#define EXACT_STEPS 32
#define EXACT_CAP 1000
#define BOX0 0.25
/* it stops when the planes promise at most this times tol above the best value */
#define EXACT_GAP 10

/*
 * For fixed paths, L is linear in (lam, mu): L(lam, mu) <= sum_n lam(n).f(n) +
 * sum_k mu(k) (occ(k) - S) for every (lam, mu), with equality at the prices the paths were
 * found at.  So L is the minimum of the planes of all the paths evaluated, and its maximum
 * is approached by the boxstep method: maximise that minimum (an LP, by GLPK) within a box
 * around the best point, evaluate L exactly at the maximiser, add its plane, repeat.  Only
 * exact evaluations are kept as the bound (weak duality, as for the ascent); the LP's value
 * only decides when to stop: when the planes promise no more than tol of the best value in
 * the box around it (L is concave, so no more elsewhere either, up to that share).  Units:
 * times in kh (one token through HBM), so GLPK sees numbers near the token counts.
 */
static void exact_plane(const lg_layer *g, int *ind, double *val, int *cnt)
{
    const uint32_t N = g->N;
    int k = 0;
    ind[++k] = 1;
    val[k] = 1; /* z */
    for (uint32_t n = 0; n < N; n++) {
        const lg_traffic *t = &g->tr[n];
        const double f[NTERMS] = {g->w / g->kh + t->h, t->d * g->kd / g->kh,
                                  t->u * g->ku / g->kh, t->dn * g->kn / g->kh};
        for (int i = 0; i < NTERMS; i++)
            if (f[i] != 0) {
                ind[++k] = 2 + NTERMS * (int)n + i;
                val[k] = -f[i];
            }
    }
    int64_t occ = 0;
    for (uint32_t m = 0; m <= N; m++) {
        occ += g->odiff[m];
        if (occ != (int64_t)g->S) {
            ind[++k] = 2 + NTERMS * (int)N + (int)m;
            val[k] = -(double)(occ - (int64_t)g->S);
        }
    }
    *cnt = k;
}

/* The box around the best point: lam within d of it (and in [0, 1]), mu within d * mscale. */
static void exact_box(glp_prob *lp, const lg_layer *g, double d, double mscale)
{
    const uint32_t N = g->N;
    for (uint32_t n = 0; n < N; n++)
        for (int i = 0; i < NTERMS; i++) {
            double c = g->best_lam[n][i], lo = fmax(0, c - d), hi = fmin(1, c + d);
            glp_set_col_bnds(lp, 2 + NTERMS * (int)n + i, lo < hi ? GLP_DB : GLP_FX, lo, hi);
        }
    for (uint32_t m = 0; m <= N; m++) {
        double c = g->best_mu[m] / g->kh, lo = fmax(0, c - d * mscale), hi = c + d * mscale;
        glp_set_col_bnds(lp, 2 + NTERMS * (int)N + (int)m, GLP_DB, lo, hi);
    }
}

/* Runs the phase from the layer's best point; returns the evaluations it made. */
static uint32_t lg_exact(lg_layer *g, double tol, volatile sig_atomic_t *cancel)
{
    const uint32_t N = g->N;
    const int ncols = 1 + NTERMS * (int)N + (int)N + 1;
    /* GLPK's environment is per thread: free it after if this call made it (a worker thread
     * would leak it), keep it if the thread had one (its objects stay valid) */
    const int env = glp_init_env();
    if (env > 1)
        return 0;
    int *ind = malloc((size_t)(ncols + 1) * sizeof *ind);
    double *val = malloc((size_t)(ncols + 1) * sizeof *val);
    glp_prob *lp = glp_create_prob();
    uint32_t evals = 0;
    if (!ind || !val || !lp)
        goto done;
    glp_set_obj_dir(lp, GLP_MAX);
    glp_add_cols(lp, ncols);
    glp_set_col_bnds(lp, 1, GLP_FR, 0, 0);
    glp_set_obj_coef(lp, 1, 1);
    glp_add_rows(lp, (int)N);
    for (uint32_t n = 0; n < N; n++) { /* lam(n) in the simplex */
        for (int i = 0; i < NTERMS; i++) {
            ind[i + 1] = 2 + NTERMS * (int)n + i;
            val[i + 1] = 1;
        }
        glp_set_row_bnds(lp, (int)n + 1, GLP_FX, 1, 1);
        glp_set_mat_row(lp, (int)n + 1, NTERMS, ind, val);
    }
    /* a capacity price is worth at most what holding a token saves a step: a slow read */
    const double mscale = (g->kh + g->kd + (g->ku > g->kn ? g->ku : g->kn)) / g->kh;
    double d = BOX0;
    glp_smcp prm;
    glp_init_smcp(&prm);
    prm.msg_lev = GLP_MSG_OFF;
    prm.meth = GLP_DUALP; /* a new plane keeps the last basis dual feasible */
    int rebox = 1;        /* the box moved: set its bounds again */
    /* the plane of the best point */
    memcpy(g->lam, g->best_lam, N * sizeof *g->lam);
    memcpy(g->mu, g->best_mu, (N + 1) * sizeof *g->mu);
    lg_eval(g, NULL, NULL);
    evals++;
    for (;;) {
        int cnt;
        exact_plane(g, ind, val, &cnt);
        int r = glp_add_rows(lp, 1);
        glp_set_row_bnds(lp, r, GLP_UP, 0, 0);
        glp_set_mat_row(lp, r, cnt, ind, val);
        if (evals >= EXACT_CAP || (cancel && *cancel))
            break;
        if (rebox)
            exact_box(lp, g, d, mscale);
        rebox = 0;
        if (glp_simplex(lp, &prm) != 0 || glp_get_status(lp) != GLP_OPT) {
            glp_std_basis(lp);
            if (glp_simplex(lp, &prm) != 0 || glp_get_status(lp) != GLP_OPT)
                break; /* the bound so far stands */
        }
        const double best = g->best, promise = glp_get_obj_val(lp) * g->kh;
        if (promise - best <= fmax(EXACT_GAP * tol, 1e-9) * fabs(best))
            break;
        for (uint32_t n = 0; n < N; n++)
            for (int i = 0; i < NTERMS; i++)
                g->lam[n][i] = fmax(0, glp_get_col_prim(lp, 2 + NTERMS * (int)n + i));
        int edge = 0;
        for (uint32_t m = 0; m <= N; m++) {
            double v = fmax(0, glp_get_col_prim(lp, 2 + NTERMS * (int)N + (int)m));
            edge |= fabs(v - g->best_mu[m] / g->kh) >= 0.999 * d * mscale;
            g->mu[m] = v * g->kh;
        }
        for (uint32_t n = 0; n < N; n++)
            for (int i = 0; i < NTERMS; i++)
                edge |= fabs(g->lam[n][i] - g->best_lam[n][i]) >= 0.999 * d;
        double v = lg_eval(g, NULL, NULL);
        evals++;
        if (v > best + 0.1 * (promise - best) && edge && d < 1) {
            d = fmin(2 * d, 1); /* a good step to the box's edge: widen it */
            rebox = 1;
        }
        lg_keep_best(g, v);
        rebox |= g->best > best;
    }
done:
    if (lp)
        glp_delete_prob(lp);
    if (env == 0)
        glp_free_env();
    free(ind);
    free(val);
    return evals;
}

/* ---------------------------------------------------------------------------------------- */
/* plan: the paths at the best prices, made feasible step by step                           */

typedef struct ivl {
    uint32_t x;
    int32_t s, e; /* HBM after the placements of steps s..e */
    double prio;  /* reads served per step held */
} ivl;

typedef struct ivl_list {
    ivl *v;
    size_t n, cap;
    int fail;
    /* streams: token x is position x / ns of stream x % ns, which ends after ssteps[x % ns]
     * steps (ns = 1, ssteps = NULL: one stream) */
    uint32_t ns;
    const uint32_t *ssteps;
} ivl_list;

static void collect(void *user, uint32_t x, int64_t s, int64_t e, uint32_t served)
{
    ivl_list *l = user;
    if (l->fail)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4096;
        ivl *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->fail = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (ivl){x, (int32_t)s, (int32_t)e, served / (double)(e - s + 1)};
}

/* A min-heap of resident intervals by priority (ties: higher index first out). */
typedef struct heap {
    uint32_t *h;
    size_t n;
    const ivl *v;
} heap;

static int heap_less(const heap *hp, uint32_t a, uint32_t b)
{
    double pa = hp->v[a].prio, pb = hp->v[b].prio;
    return pa < pb || (pa == pb && a > b);
}

static void heap_push(heap *hp, uint32_t id)
{
    size_t i = hp->n++;
    hp->h[i] = id;
    while (i && heap_less(hp, hp->h[i], hp->h[(i - 1) / 2])) {
        uint32_t t = hp->h[i];
        hp->h[i] = hp->h[(i - 1) / 2];
        hp->h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static uint32_t heap_pop(heap *hp)
{
    uint32_t top = hp->h[0];
    hp->h[0] = hp->h[--hp->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < hp->n && heap_less(hp, hp->h[l], hp->h[m]))
            m = l;
        if (r < hp->n && heap_less(hp, hp->h[r], hp->h[m]))
            m = r;
        if (m == i)
            break;
        uint32_t t = hp->h[i];
        hp->h[i] = hp->h[m];
        hp->h[m] = t;
        i = m;
    }
    return top;
}

static int by_start(const void *a, const void *b)
{
    const ivl *p = a, *q = b;
    if (p->s != q->s)
        return p->s < q->s ? -1 : 1;
    if (p->prio != q->prio)
        return p->prio > q->prio ? -1 : 1;
    return p->x < q->x ? -1 : p->x > q->x;
}

/* Replays the intervals step by step within the slots: a wanted interval that finds no
 * slot takes the one of the resident interval of lowest priority if its own is higher, and
 * is dropped otherwise; the schedule gets the moves. */
/* A token's place in a fixed pseudo-random order, in [0, 1). */
static double token_hash(uint32_t x)
{
    return (double)(uint32_t)(x * 2654435761u) / 4294967296.0;
}

static int lg_plan(uint32_t layer, uint32_t N, const ivl_list *L, uint32_t cap, double pin,
                   kvp_schedule *sch, kvp_error *err)
{
    const size_t n = L->n, n1 = n ? n : 1, steps2 = (size_t)N + 2;
    uint8_t *state = calloc(n1, 1); /* 0 waiting or dropped, 1 resident, 2 left */
    uint32_t *ends = malloc(n1 * sizeof *ends);
    size_t *end_off = calloc(steps2 + 1, sizeof *end_off);
    uint32_t *dem = malloc(n1 * sizeof *dem), *prom = malloc(n1 * sizeof *prom);
    heap hp = {malloc(n1 * sizeof(uint32_t)), 0, L->v};
    int rc = 0;
    if (!state || !ends || !end_off || !dem || !prom || !hp.h) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory for the plan of layer %u", layer);
        goto done;
    }
    /* the intervals by the step that ends them, e + 1 in 0..N (N: never) */
    for (size_t i = 0; i < n; i++)
        end_off[L->v[i].e + 2]++;
    for (size_t k = 1; k <= steps2; k++)
        end_off[k] += end_off[k - 1];
    for (size_t i = 0; i < n; i++)
        ends[end_off[L->v[i].e + 1]++] = (uint32_t)i;
    for (size_t k = steps2; k > 0; k--) /* back to the starts */
        end_off[k] = end_off[k - 1];
    end_off[0] = 0;
    size_t next = 0;
    uint32_t resident = 0;
    for (int64_t step = -1; step < (int64_t)N && rc >= 0; step++) {
        uint32_t ndem = 0, nprom = 0;
        if (step >= 0)
            for (size_t k = end_off[step]; k < end_off[step + 1]; k++) {
                uint32_t id = ends[k];
                if (state[id] == 1) {
                    state[id] = 2;
                    /* a token whose sequence finished left HBM at no cost: no move */
                    if (!L->ssteps || (uint32_t)step != L->ssteps[L->v[id].x % L->ns])
                        dem[ndem++] = L->v[id].x;
                    resident--;
                }
            }
        for (; next < n && L->v[next].s == step; next++) {
            uint32_t id = (uint32_t)next;
            if (token_hash(L->v[id].x / L->ns) < pin) /* by position: a token's copies alike */
                continue; /* pinned to DRAM */
            while (resident >= cap && hp.n) {
                uint32_t low = hp.h[0];
                if (state[low] != 1) {
                    heap_pop(&hp);
                    continue;
                }
                if (heap_less(&hp, id, low))
                    break;
                heap_pop(&hp);
                state[low] = 2;
                dem[ndem++] = L->v[low].x;
                resident--;
            }
            if (resident >= cap)
                continue; /* dropped: the token stays where it is */
            state[id] = 1;
            resident++;
            heap_push(&hp, id);
            prom[nprom++] = L->v[id].x;
        }
        for (uint32_t k = 0; k < ndem && rc >= 0; k++)
            rc = kvp_schedule_add(sch, layer, step, dem[k], 0, err);
        for (uint32_t k = 0; k < nprom && rc >= 0; k++)
            rc = kvp_schedule_add(sch, layer, step, prom[k], 1, err);
    }
done:
    free(state);
    free(ends);
    free(end_off);
    free(dem);
    free(prom);
    free(hp.h);
    return rc;
}
/* The whole run                                                                              */

/* plan's candidates: 2 price sets x these shares of the slots. */
static const double plan_share[] = {1.0, 0.9, 0.8, 0.7, 0.6};
#define PLAN_SHARES ((int)(sizeof plan_share / sizeof *plan_share))
/* and shares of bound's DRAM share pinned to DRAM (below 1: a step's max punishes any
 * excess, and the steps' shares scatter around the mean) */
static const double plan_pin[] = {0.5, 0.7, 0.85};
#define PLAN_PINS ((int)(sizeof plan_pin / sizeof *plan_pin))
#define PLAN_CANDIDATES (2 * PLAN_SHARES + PLAN_PINS)
#define PLAN_HBIAS 1e-9

/* Per layer, what the dual leaves for plan: the best prices (the first ones are lg_start's,
 * which lg_setup computes again). */
typedef struct lg_keep {
    double (*lam)[NTERMS], *mu;
} lg_keep;

/* What a layer hands to the layer WARM_LAG after it: its best prices and its steps. */
typedef struct lg_warm {
    double (*lam)[NTERMS], *mu, *eta, *lam_eta;
    int8_t *mu_sign, *lam_arg;
} lg_warm;

typedef struct lg_run {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    kvp_derived d;
    uint32_t layers, iters, warm_iters; /* warm_iters 0: no warm starts */
    double tol;
    lg_warm *warm;     /* per layer */
    uint8_t *finished; /* per layer, under mx: its warm state is final */
    pthread_mutex_t mx;
    pthread_cond_t cv;
    kvp_dual_event ev; /* under mx: the search so far, for ro->dual_log */
    const kvp_run_options *ro;
    const kvp_cost_model *kbound; /* more than two tiers: the machine's own model, whose
                                   * `bound` is proven too; NULL with two */
    lg_keep *keep;     /* per layer, or NULL: the bound alone */
    double *best;      /* per layer */
    uint32_t *used;    /* per layer: iterations run */
    uint64_t *reads;   /* per layer: tokens read */
    kvp_error *err;    /* per layer */
    volatile sig_atomic_t *cancel;
} lg_run;

/* A layer's problem: its sizes and prices per token, and its reads (one pass over its
 * cursor). */
static int lg_setup(lg_layer *g, const kvp_scenario *sc, const kvp_derived *d,
                    const kvp_trace *tr, uint32_t l, kvp_error *err)
{
    memset(g, 0, sizeof *g);
    g->layer = l;
    g->P = kvp_trace_prompt(tr);
    g->N = kvp_trace_steps(tr);
    g->X = g->P + g->N;
    g->ns = 1;
    const kvp_streams *si = kvp_trace_streams(tr);
    if (si) { /* token x: position x / n of stream x % n, as the engine's blocks */
        g->ns = si->n;
        g->sprompt = si->prompt;
        g->ssteps = si->steps;
        g->X = si->n * si->positions; /* the engine checked it fits 32 bits */
    }
    g->S = kvp_slots(sc, d, 1);
    const double tok = (double)d->tok_bytes;
    g->kh = tok / sc->hbm_bandwidth;
    g->kd = tok / sc->dram_bandwidth;
    g->ku = tok / d->link_up[1]; /* link 1 each way (link_bandwidth unless asymmetric) */
    g->kn = tok / d->link_down[1];
    g->w = d->w_layer / sc->hbm_bandwidth;
    if (!lg_alloc(g))
        return kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
    int rc = lg_load(g, sc, tr, err);
    if (rc >= 0)
        lg_start(g, sc, d);
    return rc;
}

static void keep_free(lg_keep *k)
{
    free(k->lam);
    free(k->mu);
}

static void warm_free(lg_warm *w)
{
    free(w->lam);
    free(w->mu);
    free(w->eta);
    free(w->lam_eta);
    free(w->mu_sign);
    free(w->lam_arg);
    memset(w, 0, sizeof *w);
}

static int warm_from(uint32_t l, const lg_run *R)
{
    return R->warm_iters > 0 && l >= WARM_LAG;
}

static uint32_t layer_cap(uint32_t l, const lg_run *R)
{
    return warm_from(l, R) ? R->warm_iters : R->iters;
}

/* Layer l's state for layer l + WARM_LAG (none if l failed or no layer follows), then the
 * flag that wakes it. */
static void warm_publish(lg_run *R, uint32_t l, const lg_layer *g, int ok)
{
    lg_warm w = {0};
    if (ok && R->warm_iters > 0 && l + WARM_LAG < R->layers) {
        const size_t N = g->N;
        w.lam = malloc(N * sizeof *w.lam);
        w.mu = malloc((N + 1) * sizeof *w.mu);
        w.eta = malloc((N + 1) * sizeof *w.eta);
        w.lam_eta = malloc(N * sizeof *w.lam_eta);
        w.mu_sign = malloc(N + 1);
        w.lam_arg = malloc(N ? N : 1);
        if (w.lam && w.mu && w.eta && w.lam_eta && w.mu_sign && w.lam_arg) {
            memcpy(w.lam, g->best_lam, N * sizeof *w.lam);
            memcpy(w.mu, g->best_mu, (N + 1) * sizeof *w.mu);
            memcpy(w.eta, g->eta, (N + 1) * sizeof *w.eta);
            memcpy(w.lam_eta, g->lam_eta, N * sizeof *w.lam_eta);
            memcpy(w.mu_sign, g->mu_sign, N + 1);
            memcpy(w.lam_arg, g->lam_arg, N);
        } else {
            warm_free(&w); /* the next layer starts cold: slower, still a valid bound */
        }
    }
    pthread_mutex_lock(&R->mx);
    R->warm[l] = w;
    R->finished[l] = 1;
    if (ok) {
        R->ev.layers_done++;
        R->ev.bound_done_s += R->best[l];
    }
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mx);
}

/* Waits for layer l - WARM_LAG and starts from its state if it left one; returns 1 if so.
 * Layers are handed out in order, so the one waited for is running or done: no deadlock. */
static int warm_take(lg_run *R, uint32_t l, lg_layer *g)
{
    if (!warm_from(l, R))
        return 0;
    const uint32_t src = l - WARM_LAG;
    pthread_mutex_lock(&R->mx);
    while (!R->finished[src])
        pthread_cond_wait(&R->cv, &R->mx);
    lg_warm w = R->warm[src];
    memset(&R->warm[src], 0, sizeof w);
    pthread_mutex_unlock(&R->mx);
    if (!w.lam)
        return 0;
    const size_t N = g->N;
    memcpy(g->lam, w.lam, N * sizeof *w.lam);
    memcpy(g->mu, w.mu, (N + 1) * sizeof *w.mu);
    memcpy(g->eta, w.eta, (N + 1) * sizeof *w.eta);
    memcpy(g->lam_eta, w.lam_eta, N * sizeof *w.lam_eta);
    memcpy(g->mu_sign, w.mu_sign, N + 1);
    memcpy(g->lam_arg, w.lam_arg, N);
    warm_free(&w);
    return 1;
}

/* `bound` of the layer on cost model m, from the reads per step that lg_start leaves in
 * g->tr[].h. */
static double layer_bound(const lg_layer *g, const kvp_cost_model *m, double tok)
{
    double b = 0, h;
    for (uint32_t n = 0; n < g->N; n++)
        b += kvp_step_time_bound(m, (double)g->tr[n].h * tok, &h);
    return b;
}

static int lg_layer_run(uint32_t l, void *user, atomic_ullong *done)
{
    lg_run *R = user;
    kvp_error *err = &R->err[l];
    lg_layer g;
    const uint32_t cap = layer_cap(l, R);
    uint32_t it = 0;
    memset(&g, 0, sizeof g);
    int rc = 0;
    if (R->cancel && *R->cancel) { /* before the layer's pass over the trace */
        rc = kvp_error_set(err, KVP_EINTR, "interrupted before layer %u", l);
        goto done;
    }
    rc = lg_setup(&g, R->sc, &R->d, R->tr, l, err);
    if (rc < 0)
        goto done;
    if (R->kbound) /* the reads per step are still in g.tr[].h */
        g.bound_s = fmax(g.bound_s, layer_bound(&g, R->kbound, (double)R->d.tok_bytes));
    warm_take(R, l, &g);
    g.best = -INFINITY;
    double mark = -INFINITY; /* the best of 10 iterations ago */
    for (; it < cap; it++) {
        if (R->cancel && *R->cancel) {
            rc = kvp_error_set(err, KVP_EINTR, "interrupted at iteration %u of layer %u", it, l);
            goto done;
        }
        double v = lg_eval(&g, NULL, NULL);
        lg_keep_best(&g, v);
        atomic_fetch_add(done, 1ull);
        if (R->ro && R->ro->dual_log) {
            pthread_mutex_lock(&R->mx);
            R->ev.layer = l;
            R->ev.iteration = it + 1;
            R->ev.iterations = cap;
            pthread_mutex_unlock(&R->mx);
        }
        if (it % 10 == 9) {
            if (R->tol > 0 && g.best - mark <= R->tol * fabs(g.best)) {
                it++;
                break;
            }
            mark = g.best;
        }
        lg_ascend(&g);
    }
    uint32_t more = 0;
    lg_keep ascent = {NULL, NULL};
    if (g.N <= EXACT_STEPS && !(R->cancel && *R->cancel)) {
        /* plan rounds the ascent's prices, not the cutting planes' (docs/BOUNDS.md "Small
         * layers"): a copy of them first */
        int ok = 1;
        if (R->keep) {
            ascent.lam = malloc(g.N * sizeof *ascent.lam);
            ascent.mu = malloc((g.N + 1) * sizeof *ascent.mu);
            ok = ascent.lam && ascent.mu;
            if (ok) {
                memcpy(ascent.lam, g.best_lam, g.N * sizeof *ascent.lam);
                memcpy(ascent.mu, g.best_mu, (g.N + 1) * sizeof *ascent.mu);
            } else {
                keep_free(&ascent);
            }
        }
        if (ok) /* else out of memory: the ascent's bound stands */
            more = lg_exact(&g, R->tol, R->cancel);
    }
    /* bound's value is proven too: a warm start that fell below it never lowers the bound */
    R->best[l] = fmax(g.best, g.bound_s);
    R->used[l] = it + more;
    R->reads[l] = g.reads;
    warm_publish(R, l, &g, 1);
    if (R->keep && ascent.lam) {
        R->keep[l] = ascent;
    } else if (R->keep) { /* hand the prices over: the arrays move, no copy */
        lg_keep *k = &R->keep[l];
        k->lam = g.best_lam;
        k->mu = g.best_mu;
        g.best_lam = NULL;
        g.best_mu = NULL;
    }
done:
    if (rc < 0)
        warm_publish(R, l, &g, 0); /* wakes the layer that waits for this one */
    atomic_fetch_add(done, (unsigned long long)(cap - it));
    lg_free(&g);
    return rc;
}

/* The engine's progress poll, on the calling thread: the dual's state for ro->dual_log
 * first, then the caller's own progress. */
static void lg_progress(void *user, uint64_t done, uint64_t total)
{
    lg_run *R = user;
    pthread_mutex_lock(&R->mx);
    kvp_dual_event ev = R->ev;
    pthread_mutex_unlock(&R->mx);
    R->ro->dual_log(R->ro->dual_log_user, &ev);
    if (R->ro->progress)
        R->ro->progress(R->ro->progress_user, done, total);
}

/* Runs the dual search on every layer; *bound_s gets the proven bound, and keep (if not
 * NULL) each layer's prices for plan. */
static int lg_solve(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                    const kvp_run_options *ro, const kvp_cost_model *kbound, lg_keep *keep,
                    double *bound_s, uint32_t *iters_max, uint64_t *reads_out, kvp_error *err)
{
    lg_run R;
    memset(&R, 0, sizeof R);
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_derive_for(sc, tr, &R.d, err)) < 0 ||
        (rc = kvp_check_trace(sc, tr, err)) < 0 || (rc = kvp_streams_fit(sc, tr, err)) < 0)
        return rc;
    /* The dual prices two tiers' terms: more tiers come in relaxed (two_tier_of). */
    if (R.d.tiers > 2)
        return kvp_error_set(err, KVP_EINVAL, "policy %s: the dual models two tiers; this "
                             "machine has %u", ps->ops->name, R.d.tiers);
    R.kbound = kbound;
    const uint32_t L = kvp_trace_layers(tr);
    R.sc = sc;
    R.tr = tr;
    R.layers = L;
    R.iters = (uint32_t)ps->value[P_ITERS];
    R.warm_iters = (uint32_t)ps->value[P_WARM];
    R.tol = ps->value[P_TOL];
    R.keep = keep;
    R.cancel = ro ? ro->cancel : NULL;
    R.best = calloc(L, sizeof *R.best);
    R.used = calloc(L, sizeof *R.used);
    R.reads = calloc(L, sizeof *R.reads);
    R.err = calloc(L, sizeof *R.err);
    R.warm = calloc(L, sizeof *R.warm);
    R.finished = calloc(L, 1);
    int *lrc = calloc(L, sizeof *lrc);
    if (!R.best || !R.used || !R.reads || !R.err || !R.warm || !R.finished || !lrc) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    pthread_mutex_init(&R.mx, NULL);
    pthread_cond_init(&R.cv, NULL);
    uint64_t units = 0;
    for (uint32_t l = 0; l < L; l++)
        units += layer_cap(l, &R);
    R.ev.layers = L;
    kvp_run_options pro;
    if (ro && ro->dual_log) { /* the dual's state rides on the progress poll */
        R.ro = ro;
        pro = *ro;
        pro.progress = lg_progress;
        pro.progress_user = &R;
    }
    kvp_parallel_layers(L, ro && ro->dual_log ? &pro : ro, units, lg_layer_run, &R, lrc);
    pthread_cond_destroy(&R.cv);
    pthread_mutex_destroy(&R.mx);
    double sum = 0;
    uint32_t imax = 0;
    uint64_t reads = 0;
    for (uint32_t l = 0; l < L; l++) {
        if (lrc[l] < 0) {
            rc = lrc[l];
            if (err)
                *err = R.err[l];
            goto done;
        }
        sum += R.best[l];
        reads += R.reads[l];
        if (R.used[l] > imax)
            imax = R.used[l];
    }
    *bound_s = sum;
    *iters_max = imax;
    if (reads_out)
        *reads_out = reads;
done:
    for (uint32_t l = 0; R.warm && l < L; l++)
        warm_free(&R.warm[l]);
    free(R.warm);
    free(R.finished);
    free(R.best);
    free(R.used);
    free(R.reads);
    free(R.err);
    free(lrc);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* plan's candidates: policies that build their layer's schedule from the dual's prices in
 * their init (one more pass over the layer), then replay it.  Only the schedules of the
 * layers being simulated are held at a time, so the memory does not grow with the layers. */

/* A layer's dual paths at one price set, shared by that layer's candidates: the engine
 * initialises every policy of a layer in that layer's thread, one after the other, so the
 * first candidate that needs them computes them and the last one frees them. */
typedef struct plan_paths {
    ivl_list iv[2]; /* at the best prices, at the first */
    int have[2];
    int left; /* candidates of the layer still to start */
    uint32_t most; /* min(slots, tokens) */
    double dram_share;
} plan_paths;

typedef struct plan_shared {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    kvp_derived d;
    const lg_keep *keep;
    plan_paths *paths; /* per layer */
    uint32_t tiers, tslots[KVP_MAX_TIERS]; /* the machine's, for the tiers below HBM */
} plan_shared;

typedef struct plan_cand {
    const plan_shared *sh;
    int first;    /* 1: the first prices, 0: the best */
    double share; /* of min(slots, tokens) */
    double pin;   /* of the DRAM share at bound's split, pinned to DRAM */
} plan_cand;

typedef struct plan_state {
    kvp_schedule *sch;
    void *replay;
} plan_state;

static void plan_cand_free(void *state)
{
    plan_state *st = state;
    if (!st)
        return;
    kvp_replay_free(st->replay);
    kvp_schedule_free(st->sch);
    free(st);
}

/* The layer's dual paths at price set p (0 best, 1 first), computed once. */
static int plan_paths_get(const plan_shared *sh, uint32_t l, int p, kvp_error *err)
{
    plan_paths *pp = &sh->paths[l];
    if (pp->have[p])
        return 0;
    const lg_keep *k = &sh->keep[l];
    lg_layer g;
    int rc = lg_setup(&g, sh->sc, &sh->d, sh->tr, l, err);
    if (rc >= 0) {
        if (p == 0) { /* the best prices; the first are lg_setup's own */
            memcpy(g.lam, k->lam, g.N * sizeof *g.lam);
            memcpy(g.mu, k->mu, (g.N + 1) * sizeof *g.mu);
        }
        g.hbias = PLAN_HBIAS;
        pp->iv[p].ns = g.ns;
        pp->iv[p].ssteps = g.ssteps;
        lg_eval(&g, collect, &pp->iv[p]);
        if (pp->iv[p].fail)
            rc = kvp_error_set(err, KVP_ENOMEM, "out of memory for the plan of layer %u", l);
    }
    if (rc >= 0) {
        if (pp->iv[p].n > 0) /* qsort(NULL, 0, ...) is undefined (UBSan stops there) */
            qsort(pp->iv[p].v, pp->iv[p].n, sizeof *pp->iv[p].v, by_start);
        pp->most = g.S < g.X ? g.S : g.X;
        pp->dram_share = g.dram_share;
        pp->have[p] = 1;
    }
    lg_free(&g);
    return rc;
}

static void plan_paths_release(const plan_shared *sh, uint32_t l)
{
    plan_paths *pp = &sh->paths[l];
    if (--pp->left > 0)
        return;
    for (int p = 0; p < 2; p++) {
        free(pp->iv[p].v);
        pp->iv[p] = (ivl_list){NULL, 0, 0, 0, 1, NULL};
        pp->have[p] = 0;
    }
}

static int plan_cand_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                          uint8_t *resident, kvp_error *err)
{
    (void)first;
    const plan_cand *pc = li->ctx;
    const plan_shared *sh = pc->sh;
    const plan_paths *pp = &sh->paths[li->layer];
    plan_state *st = calloc(1, sizeof *st);
    int rc = st ? plan_paths_get(sh, li->layer, pc->first, err)
                : kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", li->layer);
    if (rc >= 0)
        rc = kvp_schedule_create(&st->sch, kvp_trace_layers(sh->tr), li->steps, err);
    if (rc >= 0) {
        rc = lg_plan(li->layer, li->steps, &pp->iv[pc->first],
                     (uint32_t)((double)pp->most * pc->share), pp->dram_share * pc->pin,
                     st->sch, err);
    }
    if (rc >= 0 && sh->tiers > 2) /* below HBM: fastest first (docs/BOUNDS.md) */
        rc = kvp_schedule_place_below(st->sch, li->layer, li->prompt, sh->tiers, sh->tslots,
                                      err);
    plan_paths_release(sh, li->layer);
    if (rc >= 0)
        rc = kvp_replay_init(&st->replay, st->sch, li, resident, err);
    if (rc < 0) {
        plan_cand_free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static int plan_cand_step(void *state, kvp_step *s, kvp_error *err)
{
    return kvp_replay_step(((plan_state *)state)->replay, s, err);
}

static const kvp_policy_ops plan_cand_ops = {
    .name = "plan-candidate",
    .doc = "a schedule from the dual's prices, made feasible, replayed",
    .caps = KVP_CAP_STREAMS | KVP_CAP_TIERS, /* it names the tiers below HBM when there
                                             * are more than two */
    .init = plan_cand_init,
    .step = plan_cand_step,
    .free = plan_cand_free,
};

static void dual_note(const kvp_run_options *ro, const kvp_dual_event *ev)
{
    if (ro && ro->dual_log)
        ro->dual_log(ro->dual_log_user, ev);
}

/* More than two tiers (docs/BOUNDS.md "lpbound and plan with more than two tiers"): two-tier
 * machines that can only be faster.  The relaxation at cut m merges tiers 0..m into one HBM
 * (capacities and bandwidths summed, the weights still read from it) and the tiers below m
 * that can hold a token (slots at g = 1) into one tier below it (capacities and bandwidths
 * summed), behind one link with the sums of their distinct links' bandwidths, each way on its
 * own.  Every term of a K-tier step is at least the relaxed step's term (a sum of bytes over a
 * sum of rates is at most the largest ratio; the relaxed terms drop what the merged tiers
 * move among themselves and what the upper tiers' links carry), so each relaxation's dual
 * bounds every K-tier placement.  Cut 0 gives plan its prices; lpbound is the largest of
 * every cut's, never below `bound`. */
typedef struct two_tier {
    kvp_scenario rel, cut; /* cut 0's relaxation; the other cuts', one at a time */
    kvp_cost_model km;
    kvp_derived d;
    const kvp_scenario *two; /* sc itself with two tiers, else rel */
    uint32_t tiers, tslots[KVP_MAX_TIERS]; /* the machine's own, at g = 1 */
} two_tier;

/* The relaxation at cut m into *rel; 0 if no tier below m holds a token. */
static int relax_at(const kvp_scenario *sc, const two_tier *t, uint32_t m, kvp_scenario *rel)
{
    const kvp_derived *d = &t->d;
    double hbw = sc->hbm_bandwidth, bw = 0, up = 0, down = 0;
    uint64_t hcap = sc->hbm_capacity, cap = 0;
    int counted[KVP_MAX_TIERS] = {0}, below = 0;
    for (uint32_t k = 1; k < d->tiers; k++) {
        if (t->tslots[k] == 0)
            continue; /* holds no token: its bandwidth is of no use */
        if (k <= m) {
            hbw += d->tier_bandwidth[k];
            if (hcap + d->tier_capacity[k] < hcap)
                return 0; /* past 2^64 bytes: no cut here */
            hcap += d->tier_capacity[k];
            continue;
        }
        uint32_t j = d->tier_link[k];
        bw += d->tier_bandwidth[k];
        cap = cap + d->tier_capacity[k] < cap ? UINT64_MAX : cap + d->tier_capacity[k];
        below = 1;
        if (!counted[j]) { /* a shared link carries all its tiers' bytes once */
            counted[j] = 1;
            up += d->link_up[j];
            down += d->link_down[j];
        }
    }
    if (!below)
        return 0;
    *rel = *sc;
    rel->hbm_capacity = hcap;
    rel->hbm_bandwidth = hbw;
    rel->tiers = 2;
    rel->dram_capacity = cap;
    rel->dram_bandwidth = bw;
    rel->tier_link[1] = 1;
    rel->link_bandwidth = up;
    rel->link_up_bw[1] = up;
    rel->link_down_bw[1] = down;
    return 1;
}

static int two_tier_of(const kvp_scenario *sc, const kvp_trace *tr, two_tier *t,
                       kvp_error *err)
{
    int rc;
    memset(t, 0, sizeof *t);
    t->two = sc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 ||
        (rc = kvp_scenario_derive(sc, &t->d, err)) < 0)
        return rc;
    t->tiers = t->d.tiers;
    if (t->tiers <= 2)
        return 0;
    if ((rc = kvp_check_trace(sc, tr, err)) < 0 ||
        (rc = kvp_check_tier_capacity(sc, &t->d, tr, 1, err)) < 0)
        return rc;
    kvp_cost_model_of(&t->km, sc, &t->d);
    for (uint32_t k = 1; k < t->tiers; k++)
        t->tslots[k] = kvp_tier_slots(sc, &t->d, 1, k);
    relax_at(sc, t, 0, &t->rel); /* the tiers hold the KV: some tier below HBM holds one */
    t->two = &t->rel;
    return 0;
}

/* With more than two tiers, after cut 0's dual in *b: the other cuts' duals, and `bound`'s
 * own sum (each layer's value is already at least its bound, up to the order of the sums). */
static int more_cuts(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_run_options *ro, two_tier *t, double *b, uint32_t *it,
                     kvp_error *err)
{
    int rc = 0;
    for (uint32_t m = 1; t->tiers > 2 && m + 1 < t->tiers && rc >= 0; m++) {
        double bm;
        uint32_t im;
        if (!relax_at(sc, t, m, &t->cut))
            continue;
        rc = lg_solve(&t->cut, tr, ps, ro, &t->km, NULL, &bm, &im, NULL, err);
        if (rc >= 0) {
            *b = fmax(*b, bm);
            *it = im > *it ? im : *it;
        }
    }
    if (t->tiers <= 2 || rc < 0)
        return rc;
    kvp_pass_sums sums;
    rc = kvp_engine_pass(sc, tr, ro, &sums, err);
    if (rc >= 0)
        *b = fmax(*b, sums.bound_time_s);
    return rc;
}

static int lpbound_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                       const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    double b;
    uint32_t it;
    uint64_t reads;
    two_tier tt;
    int rc = two_tier_of(sc, tr, &tt, err);
    if (rc >= 0)
        rc = lg_solve(tt.two, tr, ps, ro, tt.tiers > 2 ? &tt.km : NULL, NULL, &b, &it, &reads,
                      err);
    if (rc >= 0)
        rc = more_cuts(sc, tr, ps, ro, &tt, &b, &it, err);
    if (rc < 0)
        return rc;
    /* Like `bound`, it moves nothing: the counters hold the reads alone. */
    kvp_counters c = {0};
    c.kv_read[1] = reads;
    kvp_derived d;
    if ((rc = kvp_derive_for(sc, tr, &d, err)) < 0 ||
        (rc = kvp_result_fill(res, sc, tr, ps, 1, kvp_slots(sc, &d, 1), b, &c, err)) < 0)
        return rc;
    res->lower_bound_s = b;
    res->dual_iterations = it;
    return 0;
}

/* plan's lookahead candidates */
static const char *const plan_grid[] = {
    /* the study's grid (docs/RESULTS.md §7): W 2, 4, .., 64 x R 0.1, 0.2, 0.3, 0.5, 1; each
     * W is one pass of the grid (src/policy/lookahead_grid.c) that serves its five R */
#define PLAN_W(w)                                                                            \
    "lookahead:W=" #w ":R=0.1", "lookahead:W=" #w ":R=0.2", "lookahead:W=" #w ":R=0.3",     \
        "lookahead:W=" #w ":R=0.5", "lookahead:W=" #w ":R=1"
    PLAN_W(2), PLAN_W(4), PLAN_W(8), PLAN_W(16), PLAN_W(32), PLAN_W(64),
#undef PLAN_W
    "static", /* last: it wins only where every schedule that moves loses to it */
};
#define PLAN_GRID ((int)(sizeof plan_grid / sizeof *plan_grid))

static int plan_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                    const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    enum { MAXC = PLAN_CANDIDATES + PLAN_GRID };
    const uint32_t L = kvp_trace_layers(tr);
    two_tier tt;
    plan_shared sh = {sc, tr, {0}, NULL, calloc(L ? L : 1, sizeof(plan_paths)), 0, {0}};
    plan_cand pc[PLAN_CANDIDATES];
    kvp_policy_spec rs[MAXC];
    kvp_result *cand = calloc(MAXC, sizeof *cand);
    lg_keep *keep = calloc(L ? L : 1, sizeof *keep);
    const int nc = PLAN_CANDIDATES + (ps->value[P_GRID] != 0 ? PLAN_GRID : 0);
    double b = 0;
    uint32_t it;
    int rc = cand && keep && sh.paths ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (uint32_t l = 0; sh.paths && l < L; l++)
        sh.paths[l].left = PLAN_CANDIDATES;
    if (rc >= 0)
        rc = two_tier_of(sc, tr, &tt, err);
    if (rc >= 0) { /* the dual and its paths on the two-tier machine, the replays on sc */
        sh.sc = tt.two;
        sh.tiers = tt.tiers;
        memcpy(sh.tslots, tt.tslots, sizeof sh.tslots);
        rc = lg_solve(tt.two, tr, ps, ro, tt.tiers > 2 ? &tt.km : NULL, keep, &b, &it, NULL,
                      err);
    }
    if (rc >= 0) /* plan's paths are cut 0's (sh.sc); its certificate, the best cut's */
        rc = more_cuts(sc, tr, ps, ro, &tt, &b, &it, err);
    kvp_dual_event ev = {L, L, 0, 0, 0, b, b, 0};
    if (rc >= 0)
        dual_note(ro, &ev);
    if (rc >= 0)
        rc = kvp_derive_for(sh.sc, tr, &sh.d, err);
    sh.keep = keep;
    /* the candidates: both price sets within shares of the slots, the best prices with
     * shares of the tokens pinned to DRAM, and (grid=1) the lookahead grid; every one
     * replayed exactly, in one pass over the trace */
    for (int c = 0; c < PLAN_CANDIDATES && rc >= 0; c++) {
        int pinned = c >= 2 * PLAN_SHARES;
        pc[c] = (plan_cand){&sh, !pinned && c >= PLAN_SHARES,
                            pinned ? 1.0 : plan_share[c % PLAN_SHARES],
                            pinned ? plan_pin[c - 2 * PLAN_SHARES] : 0};
        memset(&rs[c], 0, sizeof rs[c]);
        rs[c].ops = &plan_cand_ops;
        rs[c].ctx = &pc[c];
    }
    for (int c = PLAN_CANDIDATES; c < nc && rc >= 0; c++)
        rc = kvp_policy_parse(&rs[c], plan_grid[c - PLAN_CANDIDATES], err);
    if (rc >= 0)
        rc = kvp_run_many(sc, tr, rs, (size_t)nc, ro, cand, err);
    if (rc >= 0) {
        int best = 0;
        for (int c = 1; c < nc; c++)
            if (cand[c].total_time_s < cand[best].total_time_s)
                best = c;
        *res = cand[best];
        snprintf(res->policy, sizeof res->policy, "%s", ps->ops->name);
        /* like sa, plan names what it ran: the winning candidate */
        if (best < 2 * PLAN_SHARES)
            snprintf(res->params, sizeof res->params, "dual:prices=%s:share=%.1f",
                     best < PLAN_SHARES ? "best" : "first", plan_share[best % PLAN_SHARES]);
        else if (best < PLAN_CANDIDATES)
            snprintf(res->params, sizeof res->params, "dual:prices=best:pinned=%.2f",
                     plan_pin[best - 2 * PLAN_SHARES]);
        else
            snprintf(res->params, sizeof res->params, "%s", plan_grid[best - PLAN_CANDIDATES]);
        res->lower_bound_s = b;
        res->dual_iterations = it;
        ev.plan_s = res->total_time_s;
        dual_note(ro, &ev);
    }
    for (uint32_t l = 0; keep && l < L; l++)
        keep_free(&keep[l]);
    for (uint32_t l = 0; sh.paths && l < L; l++) /* a run that stopped early */
        for (int p = 0; p < 2; p++)
            free(sh.paths[l].iv[p].v);
    free(sh.paths);
    free(keep);
    free(cand);
    return rc;
}

const kvp_policy_ops kvp_policy_lpbound = {
    .name = "lpbound",
    .doc = "proven lower bound on the optimum that charges migration (Lagrangian dual)",
    .params = lg_params,
    .nparams = LPBOUND_PARAMS,
    .caps = KVP_CAP_BOUND | KVP_CAP_STREAMS,
    .run = lpbound_run,
};

const kvp_policy_ops kvp_policy_plan = {
    .name = "plan",
    .doc = "offline plan from lpbound's dual solution (perfect foresight), with its certificate",
    .params = lg_params,
    .nparams = NPARAMS,
    .caps = KVP_CAP_MANY_PASSES | KVP_CAP_STREAMS,
    .run = plan_run,
};
