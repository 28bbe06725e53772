/*
 * lpbound and plan against the exact optimum of tiny cases, found here by brute force: a
 * dynamic program over every resident set of every step, with the model's charges written
 * out again from docs/MODEL.md (not through the engine).  What must hold:
 *     bound <= lpbound <= OPT <= plan,   and OPT <= every policy.
 * A Lagrangian shortest path that is not the minimum, a bound that forgets a charge, or a
 * plan that breaks the slots fails here.
 */
#include "check.h"
#include "kvplace.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static kvp_error err;

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static void assign(kvp_scenario *sc, const char *name, double v)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s=%.17g", name, v);
    CHECK_OK(kvp_param_assign(sc, buf, &err), &err);
}

typedef struct tiny {
    uint32_t P, N, S;
    double w, tok, bh, bd, bl;
    uint32_t reads[8]; /* bitmask of the positions read at step n */
} tiny;

/* The time of one step: resident set a before, b after, per the model's charges. */
static double step_time(const tiny *c, uint32_t n, uint32_t a, uint32_t b)
{
    uint32_t ctx = c->P + n, A = c->reads[n];
    double hr = 0, hw = 0, dr = 0, dw = 0, up = 0, down = 0;
    for (uint32_t x = 0; x < ctx; x++) {
        int in_a = (a >> x) & 1, in_b = (b >> x) & 1, rd = (A >> x) & 1;
        if (rd) {
            if (in_a) {
                hr += 1;
            } else {
                dr += 1;
                up += 1;
            }
        }
        if (!in_a && in_b) { /* promotion: the unread rest comes up */
            dr += 1 - rd;
            up += 1 - rd;
            hw += 1;
        } else if (in_a && !in_b) { /* demotion */
            hr += 1 - rd;
            down += 1;
            dw += 1;
        }
    }
    if ((b >> ctx) & 1) {
        hw += 1;
    } else {
        dw += 1;
        down += 1;
    }
    double t = (c->w + c->tok * (hr + hw)) / c->bh;
    t = fmax(t, c->tok * (dr + dw) / c->bd);
    t = fmax(t, c->tok * up / c->bl);
    return fmax(t, c->tok * down / c->bl);
}

/* The exact optimum over every feasible sequence of resident sets. */
static double brute_opt(const tiny *c)
{
    uint32_t X = c->P + c->N, nsets = 1u << X;
    double *best = malloc(nsets * sizeof *best), *next = malloc(nsets * sizeof *next);
    for (uint32_t s = 0; s < nsets; s++)
        best[s] = (s >> c->P) == 0 && (uint32_t)__builtin_popcount(s) <= c->S ? 0 : INFINITY;
    for (uint32_t n = 0; n < c->N; n++) {
        uint32_t exist = c->P + n + 1; /* after the step: the new token too */
        for (uint32_t b = 0; b < nsets; b++) {
            next[b] = INFINITY;
            if ((b >> exist) != 0 || (uint32_t)__builtin_popcount(b) > c->S)
                continue;
            for (uint32_t a = 0; a < nsets; a++)
                if (best[a] < INFINITY) {
                    double v = best[a] + step_time(c, n, a, b);
                    if (v < next[b])
                        next[b] = v;
                }
        }
        double *t = best;
        best = next;
        next = t;
    }
    double opt = INFINITY;
    for (uint32_t s = 0; s < nsets; s++)
        opt = fmin(opt, best[s]);
    free(best);
    free(next);
    return opt;
}

static kvp_trace *tiny_trace(const tiny *c)
{
    uint32_t C = c->P + c->N - 1;
    float *data = calloc((size_t)c->N * C, sizeof *data);
    for (uint32_t n = 0; n < c->N; n++)
        for (uint32_t x = 0; x < C; x++)
            data[(size_t)n * C + x] = (float)((c->reads[n] >> x) & 1);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, c->N, 1, C, 1, "tiny", &err), &err);
    free(data);
    return t;
}

static void scenario_of(const tiny *c, kvp_scenario *sc)
{
    kvp_scenario_default(sc);
    const char *set[] = {"layers=1", "kv_heads=1", "head_dim=1", "dtype_bytes=1", "batch=1",
                         "reserve=0", "dram_capacity=100000", "sparsity=0"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        CHECK_OK(kvp_param_assign(sc, set[i], &err), &err);
    /* tok_bytes = 2: capacity for S slots above the weights */
    assign(sc, "weight_bytes", c->w);
    assign(sc, "hbm_capacity", c->w + 2.0 * c->S);
    assign(sc, "hbm_bandwidth", c->bh);
    assign(sc, "dram_bandwidth", c->bd);
    assign(sc, "link_bandwidth", c->bl);
}

static double run_one(const kvp_scenario *sc, kvp_trace *t, const char *spec, kvp_result *r)
{
    kvp_policy_spec ps;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1;
    ro.check = 1;
    CHECK_OK(kvp_policy_parse(&ps, spec, &err), &err);
    if (kvp_run(sc, t, &ps, &ro, r, &err) < 0) {
        CHECK_OK(-1, &err);
        return NAN;
    }
    return r->total_time_s;
}

static void test_random_tiny(void)
{
    const uint64_t seed = 20261201;
    rng_state = seed;
    const char *others[] = {"static", "reactive", "page:page_tokens=1", "lookahead:W=1:R=1",
                            "lookahead:W=2:R=0.5", "lookahead:W=4:R=1"};
    int closed = 0, cases = 60;
    double sum_lp = 0, sum_b = 0, sum_plan = 0;
    for (int k = 0; k < cases; k++) {
        tiny c;
        memset(&c, 0, sizeof c);
        c.P = 1 + rnd(4);
        c.N = 1 + rnd(4);
        while (c.P + c.N > 8)
            c.N--;
        c.S = 1 + rnd(c.P + 1);
        c.tok = 2;
        c.w = rnd(2) ? 0 : (double)(2 * rnd(8));
        c.bh = 100.0 * (1 + rnd(10));
        c.bd = 10.0 * (1 + rnd(10));
        c.bl = 10.0 * (1 + rnd(20));
        for (uint32_t n = 0; n < c.N; n++)
            c.reads[n] = rnd(1u << (c.P + n)) | (rnd(2) ? 1u << (c.P + n - 1) : 0);
        kvp_scenario sc;
        scenario_of(&c, &sc);
        kvp_trace *t = tiny_trace(&c);
        double opt = brute_opt(&c);
        kvp_result r;
        double b = run_one(&sc, t, "bound", &r);
        double lp = run_one(&sc, t, "lpbound:iters=2000:tol=0", &r);
        double plan = run_one(&sc, t, "plan:iters=2000:tol=0", &r);
        const double eps = 1e-9;
        int ok = CHECK(b <= lp * (1 + eps)) & CHECK(lp <= opt * (1 + eps)) &
                 CHECK(opt <= plan * (1 + eps)) & CHECK(r.lower_bound_s == lp);
        for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
            double v = run_one(&sc, t, others[i], &r);
            ok &= CHECK(opt <= v * (1 + eps));
        }
        if (lp >= opt * (1 - 1e-6))
            closed++;
        sum_lp += lp / opt;
        sum_b += b / opt;
        sum_plan += plan / opt;
        if (!ok)
            fprintf(stderr, "    seed %llu case %d: P %u N %u S %u w %g bh %g bd %g bl %g: "
                    "bound %.17g lpbound %.17g OPT %.17g plan %.17g\n",
                    (unsigned long long)seed, k, c.P, c.N, c.S, c.w, c.bh, c.bd, c.bl, b, lp,
                    opt, plan);
        kvp_trace_free(t);
    }
    printf("tiny cases: lpbound equals the optimum in %d of %d; mean bound/OPT %.4f, "
           "lpbound/OPT %.4f, plan/OPT %.4f\n", closed, cases, sum_b / cases, sum_lp / cases,
           sum_plan / cases);
}

/* A case worked by hand.  P = 2, N = 1, one slot, no weights; HBM 100 B/s, DRAM and link
 * 10 B/s, tok 2 B.  Step 0 reads both prompt tokens.  Whatever the placement, one token is
 * read from DRAM (2 B: 0.2 s on DRAM and on the link up); with the other in HBM (0.02 s)
 * and the new token written to DRAM (2 B more on DRAM: 0.4 s in all, 0.2 s down), or to HBM
 * after demoting the other (read, so no HBM read: 2 B down and 2 B on DRAM: DRAM 0.4 s).
 * So OPT = 0.4 s, and static (token 0 in HBM, new token to DRAM) attains it. */
static void test_hand(void)
{
    tiny c = {2, 1, 1, 0, 2, 100, 10, 10, {3}};
    CHECK_NEAR(brute_opt(&c), 0.4, 1e-12);
    kvp_scenario sc;
    scenario_of(&c, &sc);
    kvp_trace *t = tiny_trace(&c);
    kvp_result r;
    CHECK_NEAR(run_one(&sc, t, "plan", &r), 0.4, 1e-12);
    double lp = run_one(&sc, t, "lpbound:iters=2000:tol=0", &r);
    CHECK(lp <= 0.4 * (1 + 1e-12));
    kvp_trace_free(t);
}

/* The ordered chain of a case: bound, lpbound, the LP (GLPK), OPT (GLPK), plan; the trace is
 * made from data (N steps, L layers, C positions of scores), which is freed.  Returns 0 if
 * the trace was refused (the failure is counted). */
static int chain(const kvp_scenario *sc, float *data, uint32_t N, uint32_t L, uint32_t C,
                 const char *lp_spec, const char *plan_spec, double v[5], uint32_t *iters,
                 kvp_trace **out)
{
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "chain", &err), &err);
    free(data);
    if (!t)
        return 0;
    kvp_result r;
    v[0] = run_one(sc, t, "bound", &r);
    v[1] = run_one(sc, t, lp_spec, &r);
    *iters = r.dual_iterations;
    v[2] = run_one(sc, t, "optimal:relax=1", &r);
    v[3] = run_one(sc, t, "optimal", &r);
    v[4] = run_one(sc, t, plan_spec, &r);
    CHECK(r.lower_bound_s == v[1]);
    *out = t;
    return 1;
}

/* Small cases against GLPK (the policy optimal): bound <= lpbound <= LP <= OPT <= plan, and
 * lpbound at its defaults within 1% of the LP (the target; the layers are small, so
 * the dual is solved by cutting planes after the ascent: docs/BOUNDS.md "Small layers").
 * GLPK's own tolerances are some 1e-7 relative, hence the looser comparisons with it. */
static void test_against_glpk(void)
{
    const uint64_t seed = 7;
    rng_state = seed;
    const int cases = 24;
    double sum = 0, worst = INFINITY, sum_plan = 0;
    uint32_t imax = 0;
    for (int k = 0; k < cases; k++) {
        uint32_t P = 10 + rnd(10), N = 4 + rnd(5), C = P + N - 1;
        tiny c;
        memset(&c, 0, sizeof c);
        c.S = 1 + P / 4 + rnd(P / 4);
        c.tok = 2;
        c.w = rnd(2) ? 0 : (double)(2 * rnd(8));
        c.bh = 100.0 * (1 + rnd(10));
        c.bd = 10.0 * (1 + rnd(10));
        c.bl = 10.0 * (1 + rnd(20));
        kvp_scenario sc;
        scenario_of(&c, &sc);
        static const char *const sp[] = {"sparsity=0.5", "sparsity=0.7", "sparsity=0.85"};
        CHECK_OK(kvp_param_assign(&sc, sp[rnd(3)], &err), &err);
        float *data = malloc((size_t)N * C * sizeof *data);
        for (size_t i = 0; i < (size_t)N * C; i++)
            data[i] = (float)rnd(1000);
        kvp_trace *t = NULL;
        double v[5];
        uint32_t iters;
        if (!chain(&sc, data, N, 1, C, "lpbound", "plan", v, &iters, &t))
            continue;
        double b = v[0], lb = v[1], lp = v[2], opt = v[3], plan = v[4];
        int ok = CHECK(b <= lb * (1 + 1e-9)) & CHECK(lb <= lp * (1 + 1e-6)) &
                 CHECK(lp <= opt * (1 + 1e-6)) & CHECK(opt <= plan * (1 + 1e-6)) &
                 CHECK(lb >= 0.99 * lp);
        if (!ok)
            fprintf(stderr, "    seed %llu case %d: P %u N %u S %u: bound %.17g lpbound %.17g "
                    "(%u iterations) LP %.17g OPT %.17g plan %.17g\n",
                    (unsigned long long)seed, k, P, N, c.S, b, lb, iters, lp, opt, plan);
        sum += lb / lp;
        worst = fmin(worst, lb / lp);
        sum_plan += plan / opt;
        imax = iters > imax ? iters : imax;
        kvp_trace_free(t);
    }
    printf("against GLPK: lpbound/LP mean %.5f, worst %.5f over %d cases; at most %u dual "
           "iterations; mean plan/OPT %.4f\n", sum / cases, worst, cases, imax,
           sum_plan / cases);
}

/* What the dual reported as it ran (kvp_run_options.dual_log). */
typedef struct dual_seen {
    int events, monotone;
    uint32_t last_done;
    kvp_dual_event last;
} dual_seen;

static void see_dual(void *user, const kvp_dual_event *ev)
{
    dual_seen *d = user;
    d->monotone &= ev->layers_done >= d->last_done;
    d->last_done = ev->layers_done;
    d->last = *ev;
    d->events++;
}

/* Layers that differ from each other, so that a warm start (layer l starts from the prices
 * of layer l - 2) begins far from the layer's own prices: the bound must stay a bound
 * (bound <= lpbound <= LP <= OPT <= plan, GLPK per layer), not depend on the threads, and
 * the progress events must end on the results. */
static void test_warm_layers(void)
{
    rng_state = 11;
    const uint32_t L = 5, P = 12, N = 6, C = P + N - 1;
    tiny c;
    memset(&c, 0, sizeof c);
    c.S = 4;
    c.tok = 2;
    c.bh = 300;
    c.bd = 40;
    c.bl = 60;
    kvp_scenario sc;
    scenario_of(&c, &sc);
    assign(&sc, "layers", L);
    assign(&sc, "hbm_capacity", 2.0 * c.S * L);
    CHECK_OK(kvp_param_assign(&sc, "sparsity=0.6", &err), &err);
    float *data = malloc((size_t)N * L * C * sizeof *data);
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t l = 0; l < L; l++) /* layer l favours its own part of the context */
            for (uint32_t x = 0; x < C; x++)
                data[((size_t)n * L + l) * C + x] =
                    (float)(rnd(1000) + ((x + 3 * l) % P < P / 3 ? 2000 : 0));
    kvp_trace *t = NULL;
    double v[5];
    uint32_t iters;
    if (!chain(&sc, data, N, L, C, "lpbound:warm=3", "plan:warm=3", v, &iters, &t))
        return;
    double b = v[0], lb = v[1], lp = v[2], opt = v[3], plan = v[4];
    kvp_result r;
    double cold = run_one(&sc, t, "lpbound:warm=0", &r);
    int ok = CHECK(b <= lb * (1 + 1e-9)) & CHECK(b <= cold * (1 + 1e-9)) &
             CHECK(lb <= lp * (1 + 1e-6)) & CHECK(cold <= lp * (1 + 1e-6)) &
             CHECK(lp <= opt * (1 + 1e-6)) & CHECK(opt <= plan * (1 + 1e-6));
    if (!ok)
        fprintf(stderr, "    bound %.17g lpbound %.17g (cold %.17g) LP %.17g OPT %.17g plan "
                "%.17g\n", b, lb, cold, lp, opt, plan);
    printf("warm layers: bound %.6g, lpbound %.6g (all cold %.6g), LP %.6g, OPT %.6g, plan %.6g\n",
           b, lb, cold, lp, opt, plan);
    kvp_policy_spec ps;
    CHECK_OK(kvp_policy_parse(&ps, "plan:warm=3", &err), &err);
    for (unsigned threads = 1; threads <= 3; threads++) {
        kvp_run_options ro;
        kvp_run_options_default(&ro);
        ro.threads = threads;
        dual_seen d = {0, 1, 0, {0}};
        ro.dual_log = see_dual;
        ro.dual_log_user = &d;
        kvp_result rt;
        CHECK_OK(kvp_run(&sc, t, &ps, &ro, &rt, &err), &err);
        CHECK(rt.lower_bound_s == lb);
        CHECK(rt.total_time_s == plan);
        CHECK(d.events >= 2);
        CHECK(d.monotone);
        CHECK(d.last.layers == L && d.last.layers_done == L);
        CHECK(d.last.lower_bound_s == lb);
        CHECK(d.last.plan_s == plan);
    }
    kvp_trace_free(t);
}

/* plan is never behind the study's (W, R) grid (docs/RESULTS.md §7: W 2, 4, .., 64 x R 0.1,
 * 0.2, 0.3, 0.5, 1): its candidates include that grid, so on every scenario plan's time is at
 * most each grid point's.  The first case is the study point where plan was 1.2% behind
 * W=8, R=0.2 when it took R 0.5 and 1 only (prompt 200, 20 steps, 100 slots a layer,
 * sparsity 0.4, weights not counted); the others are drawn at random.  A candidate list cut
 * back, or a plan that keeps a worse candidate than the best, fails here. */
static void test_study_grid(void)
{
    static const char *const Rs[] = {"0.1", "0.2", "0.3", "0.5", "1"};
    rng_state = 20261202;
    int behind = 0, points = 0;
    for (int k = 0; k < 6; k++) {
        kvp_scenario sc;
        kvp_scenario_default(&sc);
        uint32_t P = k ? 60 + rnd(200) : 200, N = k ? 8 + rnd(20) : 20;
        double s = k ? 0.3 + 0.1 * rnd(6) : 0.4;
        assign(&sc, "prompt", P);
        assign(&sc, "steps", N);
        assign(&sc, "sparsity", s);
        assign(&sc, "layers", 2);
        CHECK_OK(kvp_param_assign(&sc, k % 2 ? "variation=high" : "variation=actual", &err),
                 &err);
        /* slots per layer: 100 at the first case, else 30% to 80% of the prompt */
        uint32_t slots = k ? (uint32_t)((0.3 + 0.1 * rnd(6)) * P) : 100;
        kvp_derived d;
        CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
        assign(&sc, "hbm_capacity",
               (double)d.weight_bytes + (double)slots * sc.layers * (double)d.tok_bytes);
        if (k < 4) { /* weights not counted: their capacity kept, their reads not */
            assign(&sc, "reserve", (double)d.weight_bytes);
            assign(&sc, "weight_bytes", 0);
        }
        kvp_synth_params sp;
        kvp_synth_default(&sp, &sc);
        kvp_trace *t = NULL;
        CHECK_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
        if (!t)
            continue;
        kvp_result r;
        double plan = run_one(&sc, t, "plan", &r), best = INFINITY;
        for (uint32_t w = 2; w <= 64; w *= 2)
            for (size_t i = 0; i < sizeof Rs / sizeof *Rs; i++) {
                char spec[64];
                snprintf(spec, sizeof spec, "lookahead:W=%u:R=%s", w, Rs[i]);
                double v = run_one(&sc, t, spec, &r);
                points++;
                if (!CHECK(plan <= v)) {
                    behind++;
                    fprintf(stderr, "    case %d: plan %.17g behind %s %.17g\n", k, plan, spec,
                            v);
                }
                best = v < best ? v : best;
            }
        printf("study grid, case %d (P %u, N %u, sparsity %.1f, %u slots): plan / best grid "
               "point %.4f\n", k, P, N, s, slots, best / plan);
        kvp_trace_free(t);
    }
    printf("study grid: plan behind %d of %d grid points\n", behind, points);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"hand", test_hand},
        {"random_tiny", test_random_tiny},
        {"against_glpk", test_against_glpk},
        {"warm_layers", test_warm_layers},
        {"study_grid", test_study_grid},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
