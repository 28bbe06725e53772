/*
 * The exact optimum, `optimal` (the integer program of docs/BOUNDS.md solved by GLPK).  A hand-worked case; a dynamic
 * program over every placement, written straight from docs/MODEL.md section 3 and reading the trace's
 * own array, as the oracle on tiny random cases; the MIP's objective (as GLPK gives it for
 * the model written out) equal to the engine's time of its placement; on random small cases
 * bound <= optimal:relax=1 <= optimal <= every other policy; the same result on a trace cache;
 * refusal above the size limit and when GLPK's time limit is reached.
 *
 * Usage: test_optimal [seed]
 *        test_optimal lp FILE [relax]   writes the model of one small random case as a CPLEX
 *            LP file and prints "objective X" (GLPK's value of it), for tests/cli_optimal.sh
 *            to solve the same file with CBC.
 */
#include "check.h"
#include "kvplace.h"
#include "policy/optimal.h"

#include <stdlib.h>

static kvp_error err;

/* The cases here close in well under a second; the generous time limit is for memcheck
 * (make valgrind), which runs GLPK some 50 times slower. */
#define OPT "optimal:tlim=3600"

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static void assign(kvp_scenario *sc, const char *name, unsigned long long v)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s=%llu", name, v);
    CHECK_OK(kvp_param_assign(sc, buf, &err), &err);
}

/* The toy machine of tests/test_policies.c: tok_bytes 2 B, HBM 1000 B/s, DRAM and link
 * 100 B/s unless set; hbm_capacity = weights + slots * 2 * layers (+ 1 B). */
static void toy(kvp_scenario *sc, uint32_t layers, uint64_t weights, uint32_t slots)
{
    kvp_scenario_default(sc);
    const char *set[] = {"kv_heads=1",         "head_dim=1",        "dtype_bytes=1",
                         "batch=1",            "reserve=0",         "hbm_bandwidth=1000",
                         "dram_bandwidth=100", "link_bandwidth=100", "dram_capacity=100000",
                         "sparsity=0"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        CHECK_OK(kvp_param_assign(sc, set[i], &err), &err);
    assign(sc, "layers", layers);
    assign(sc, "weight_bytes", weights);
    assign(sc, "hbm_capacity", weights + (uint64_t)slots * 2 * layers + 1); /* 1: never 0 */
}

static int run(const kvp_scenario *sc, const kvp_trace *t, const char *policy, kvp_result *r)
{
    kvp_policy_spec ps;
    memset(r, 0, sizeof *r);
    CHECK_OK(kvp_policy_parse(&ps, policy, &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.check = 1;
    return kvp_run(sc, t, &ps, &ro, r, &err);
}

static kvp_result run_ok(const kvp_scenario *sc, const kvp_trace *t, const char *policy)
{
    kvp_result r;
    int rc = run(sc, t, policy, &r);
    if (!check_report_(rc >= 0, __FILE__, __LINE__, "kvp_run"))
        fprintf(stderr, "    %s: rc %d: %s\n", policy, rc, err.msg);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* The oracle: every placement of every step, by dynamic programming over the HBM set       */

/* docs/MODEL.md section 3's time of step n of a layer going from set `was` to set `now` (bit x: token
 * x in HBM), reads rd[0..P+n) (1 = read). */
static double step_time(const kvp_scenario *sc, double w_layer, uint32_t P, uint32_t n,
                        const uint8_t *rd, uint32_t was, uint32_t now)
{
    double hr = 0, hw = 0, dr = 0, dw = 0, up = 0, down = 0;
    for (uint32_t x = 0; x < P + n; x++) {
        uint32_t in = was >> x & 1, out = now >> x & 1;
        if (rd[x]) {
            hr += in;
            dr += !in;
            up += !in;
        }
        if (!in && out) { /* promotion: the unread rest comes up */
            dr += !rd[x];
            up += !rd[x];
            hw += 1;
        } else if (in && !out) { /* demotion: the unread rest is read */
            hr += !rd[x];
            down += 1;
            dw += 1;
        }
    }
    if (now >> (P + n) & 1) {
        hw += 1;
    } else {
        dw += 1;
        down += 1;
    }
    const double tok = 2; /* bytes */
    double t = (w_layer + (hr + hw) * tok) / sc->hbm_bandwidth;
    t = fmax(t, (dr + dw) * tok / sc->dram_bandwidth);
    t = fmax(t, up * tok / sc->link_bandwidth);
    return fmax(t, down * tok / sc->link_bandwidth);
}

static uint32_t popcount(uint32_t v)
{
    uint32_t c = 0;
    for (; v; v &= v - 1)
        c++;
    return c;
}

/* The least time of layer l of marks[(n * L + l) * C + x] over every placement within
 * `slots`, P + N <= 12. */
static double oracle(const kvp_scenario *sc, const float *marks, uint32_t P, uint32_t N,
                     uint32_t L, uint32_t l, uint32_t slots)
{
    const uint32_t C = P + N - 1, T = P + N;
    double *cur = malloc(((size_t)1 << T) * sizeof *cur);
    double *next = malloc(((size_t)1 << T) * sizeof *next);
    uint8_t *rd = malloc(T);
    const double w = (double)sc->weight_bytes / sc->layers;
    for (uint32_t s = 0; s < (1u << T); s++)
        cur[s] = s < (1u << P) && popcount(s) <= slots ? 0 : INFINITY;
    for (uint32_t n = 0; n < N; n++) {
        for (uint32_t x = 0; x < P + n; x++)
            rd[x] = marks[((size_t)n * L + l) * C + x] != 0;
        for (uint32_t now = 0; now < (1u << (P + n + 1)); now++) {
            next[now] = INFINITY;
            if (popcount(now) > slots)
                continue;
            for (uint32_t was = 0; was < (1u << (P + n)); was++)
                if (cur[was] < INFINITY)
                    next[now] = fmin(next[now], cur[was] + step_time(sc, w, P, n, rd, was, now));
        }
        for (uint32_t s = 0; s < (1u << T); s++)
            cur[s] = s < (1u << (P + n + 1)) ? next[s] : INFINITY;
    }
    double best = INFINITY;
    for (uint32_t s = 0; s < (1u << T); s++)
        best = fmin(best, cur[s]);
    free(cur);
    free(next);
    free(rd);
    return best;
}

/* ---------------------------------------------------------------------------------------- */
/* A case worked by hand                                                                    */

static void test_hand(void)
{
    /* 1 slot, weights 10 B, P = 2, N = 2: A(0) = {0}, A(1) = {1, 2} (2 is step 0's new
     * token).  A DRAM read always goes up the link and a DRAM write always comes down, so
     * the DRAM term (.02 s a token) covers both link terms, and a step takes
     * max(.01 + .002 H, .02 D) with H the HBM and D the DRAM tokens moved.  The placements
     * are one token or none after each step (init, S0, S1).
     * Step 0 (reads 0, new token 2), the least time into each S0:
     *   S0 = {2}: from init {0}: 0 read from HBM, demoted as read (D 1), 2 written to HBM:
     *     max(.014, .02) = .02; from init {}: 0 read from DRAM (D 1), 2 to HBM: .02.
     *   S0 = {0}: from init {0}: 0 read from HBM, 2 to DRAM: max(.012, .02) = .02.
     *   S0 = {1}: from {1}: 0 read from DRAM, 2 to DRAM: .04; else 1 comes up unread: .06.
     *   S0 = {}: from {}: 0 from DRAM, 2 to DRAM: .04.
     * Step 1 (reads 1 and 2, new token 3), the least time out of each S0:
     *   S0 = {2}: 2 from HBM, 1 from DRAM; S1 = {2} (3 to DRAM) or {3} (2 demoted as read,
     *     3 to HBM): D 2, .04.
     *   S0 = {0}: 1 and 2 from DRAM; keep 0, 3 to DRAM: D 3, .06 (demoting 0 reads it and
     *     writes it down: D 3 with 3 to HBM, .06 too).
     *   S0 = {1}: 1 from HBM, 2 from DRAM, 3 to DRAM (or 1 down and 3 to HBM): .04.
     *   S0 = {}: D 2 at best (3 to HBM): .04.
     * Sums: S0 = {2} .02 + .04 = .06; {0} .02 + .06 = .08; {1} .04 + .04 = .08;
     * {} .04 + .04 = .08.  OPT = .06 s: the new token 2 goes to HBM at step 0, where static
     * (init {0}, never moved) takes .02 + .06 = .08 s. */
    static const float marks[2 * 3] = {1, 0, 0, /* step 0 */ 0, 1, 1 /* step 1 */};
    kvp_scenario sc;
    toy(&sc, 1, 10, 1);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, marks, 2, 1, 3, 1, "hand", &err), &err);
    kvp_result opt = run_ok(&sc, t, OPT);
    kvp_result lp = run_ok(&sc, t, "optimal:relax=1");
    kvp_result st = run_ok(&sc, t, "static");
    kvp_result b = run_ok(&sc, t, "bound");
    CHECK_NEAR(opt.total_time_s, 0.06, 1e-12);
    CHECK_NEAR(st.total_time_s, 0.08, 1e-12);
    CHECK_NEAR(oracle(&sc, marks, 2, 2, 1, 0, 1), 0.06, 1e-12);
    CHECK_STR(opt.policy, "optimal");
    CHECK_EQ_U64(opt.slots, 1);
    CHECK(b.total_time_s <= lp.total_time_s * (1 + 1e-9));
    CHECK(lp.total_time_s <= opt.total_time_s * (1 + 1e-9));
    kvp_trace_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Random tiny cases against the oracle; the written model's objective against the engine   */

/* Random bandwidths and weights: each of the four terms of the max gets its turn. */
static void random_machine(kvp_scenario *sc, uint32_t L, uint32_t slots)
{
    static const uint64_t weights[] = {0, 10, 200};
    toy(sc, L, weights[rnd(3)] * L, slots);
    static const uint32_t bw[] = {50, 100, 200, 400};
    assign(sc, "dram_bandwidth", bw[rnd(4)]);
    assign(sc, "link_bandwidth", bw[rnd(4)]);
}

static void test_oracle(uint64_t seed)
{
    rng_state = seed;
    printf("oracle: seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 40; iter++) {
        uint32_t L = 1 + rnd(2), P = 1 + rnd(6), N = 1 + rnd(4), C = P + N - 1;
        if (P + N > 9)
            N = 9 - P;
        C = P + N - 1;
        uint32_t slots = rnd(4);
        float *marks = calloc((size_t)N * L * C, sizeof *marks);
        uint32_t density = 1 + rnd(4); /* reads one position in density, on average */
        for (uint32_t n = 0; n < N; n++)
            for (uint32_t l = 0; l < L; l++)
                for (uint32_t x = 0; x < P + n; x++)
                    marks[((size_t)n * L + l) * C + x] = rnd(density) == 0;
        kvp_trace *t = NULL;
        CHECK_OK(kvp_trace_from_memory(&t, marks, N, L, C, 1, "tiny", &err), &err);
        kvp_scenario sc;
        random_machine(&sc, L, slots);
        double want = 0, lp_sum = 0;
        for (uint32_t l = 0; l < L; l++) {
            want += oracle(&sc, marks, P, N, L, l, slots);
            double obj, cst, unit;
            CHECK_OK(kvp_optimal_write_lp(&sc, t, l, 0, "/dev/null", &obj, &cst, &unit, &err),
                     &err);
            lp_sum += (obj + cst) * unit;
        }
        kvp_result opt = run_ok(&sc, t, OPT);
        kvp_result lp = run_ok(&sc, t, "optimal:relax=1");
        kvp_result b = run_ok(&sc, t, "bound");
        if (!check_report_(fabs(opt.total_time_s - want) <= 1e-9 * want, __FILE__, __LINE__,
                           "optimal equals the oracle"))
            fprintf(stderr, "    %.17g != %.17g (seed %llu iter %d: L %u P %u N %u slots %u)\n",
                    opt.total_time_s, want, (unsigned long long)seed, iter, L, P, N, slots);
        /* GLPK's own objective of the model, as written for another solver, is the engine's
         * time of the placement replayed. */
        if (!check_report_(fabs(opt.total_time_s - lp_sum) <= 1e-9 * lp_sum, __FILE__,
                           __LINE__, "the MIP's objective equals the engine's time"))
            fprintf(stderr, "    %.17g != %.17g (seed %llu iter %d)\n", opt.total_time_s,
                    lp_sum, (unsigned long long)seed, iter);
        if (!check_report_(b.total_time_s <= lp.total_time_s * (1 + 1e-9) &&
                           lp.total_time_s <= opt.total_time_s * (1 + 1e-9), __FILE__, __LINE__,
                           "bound <= LP <= OPT"))
            fprintf(stderr, "    %.17g %.17g %.17g (seed %llu iter %d)\n", b.total_time_s,
                    lp.total_time_s, opt.total_time_s, (unsigned long long)seed, iter);
        free(marks);
        kvp_trace_free(t);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Random small cases: bound <= LP <= OPT <= every policy                                   */

static void test_order(uint64_t seed)
{
    rng_state = seed;
    printf("order: seed %llu\n", (unsigned long long)seed);
    static const char *const others[] = {
        "static",           "reactive",           "page",
        "lookahead:W=1:R=1", "lookahead:W=4:R=0.5", "lookahead:W=16:R=1",
        "lookahead:W=8:R=0.25"};
    /* under memcheck (make valgrind sets KVP_TEST_LIGHT) 3 cases: GLPK there takes minutes */
    const int iters = getenv("KVP_TEST_LIGHT") ? 3 : 12;
    for (int iter = 0; iter < iters; iter++) {
        uint32_t L = 1 + rnd(3), P = 5 + rnd(36), N = 3 + rnd(10);
        while ((uint64_t)(P + N) * N * L > KVP_OPTIMAL_MAX_TOTAL_CELLS / 4)
            P = P / 2 + 1; /* keep the suite fast */
        uint32_t C = P + N - 1;
        float *data = malloc((size_t)N * L * C * sizeof *data);
        for (size_t i = 0; i < (size_t)N * L * C; i++)
            data[i] = (float)rnd(16); /* ties too */
        kvp_trace *t = NULL;
        CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "random", &err), &err);
        free(data);
        kvp_scenario sc;
        uint32_t slots = rnd(P / 2 + 1); /* GLPK closes cases with more slots far slower (docs/BOUNDS.md) */
        random_machine(&sc, L, slots);
        char buf[64];
        snprintf(buf, sizeof buf, "sparsity=%g", 0.3 + 0.1 * rnd(7));
        CHECK_OK(kvp_param_assign(&sc, buf, &err), &err);
        assign(&sc, "page_tokens", 1 + rnd(4));
        printf("  iter %d: L %u P %u N %u slots %u weights %llu dram %.0f link %.0f sparsity %g\n",
               iter, L, P, N, slots, (unsigned long long)sc.weight_bytes, sc.dram_bandwidth,
               sc.link_bandwidth, sc.sparsity);
        fflush(stdout);
        kvp_result opt = run_ok(&sc, t, OPT);
        kvp_result lp = run_ok(&sc, t, "optimal:relax=1");
        kvp_result b = run_ok(&sc, t, "bound");
        double eps = 1e-9;
        if (!check_report_(b.total_time_s <= lp.total_time_s * (1 + eps) &&
                           lp.total_time_s <= opt.total_time_s * (1 + eps), __FILE__, __LINE__,
                           "bound <= LP <= OPT"))
            fprintf(stderr, "    %.17g %.17g %.17g (seed %llu iter %d)\n", b.total_time_s,
                    lp.total_time_s, opt.total_time_s, (unsigned long long)seed, iter);
        for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
            kvp_result r = run_ok(&sc, t, others[i]);
            if (!check_report_(opt.total_time_s <= r.total_time_s * (1 + eps), __FILE__,
                               __LINE__, "OPT <= policy"))
                fprintf(stderr, "    %s: %.17g < OPT %.17g (seed %llu iter %d: L %u P %u "
                        "N %u slots %u)\n", others[i], r.total_time_s, opt.total_time_s,
                        (unsigned long long)seed, iter, L, P, N, slots);
        }
        /* The same on the trace's cache of access sets. */
        kvp_run_options ro;
        kvp_run_options_default(&ro);
        kvp_trace *cache = NULL;
        CHECK_OK(kvp_trace_cache(&cache, t, kvp_scenario_budget(&sc), &ro, &err), &err);
        kvp_result oc = run_ok(&sc, cache, OPT);
        CHECK(memcmp(&oc, &opt, sizeof oc) == 0);
        kvp_trace_free(cache);
        kvp_trace_free(t);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Refusals                                                                                 */

static kvp_trace *synthetic(kvp_scenario *sc, uint32_t layers, uint32_t P, uint32_t N,
                            const char *variation, const char *sparsity)
{
    kvp_scenario_default(sc);
    CHECK_OK(kvp_preset_apply(sc, "gh200-paper", "hw", &err), &err);
    CHECK_OK(kvp_preset_apply(sc, "llama-3.1-8b", "model", &err), &err);
    assign(sc, "layers", layers);
    assign(sc, "prompt", P);
    assign(sc, "steps", N);
    assign(sc, "weight_bytes", 0);
    CHECK_OK(kvp_param_set(sc, "variation", variation, &err), &err);
    CHECK_OK(kvp_param_set(sc, "sparsity", sparsity, &err), &err);
    kvp_trace *t = NULL;
    kvp_synth_params sp;
    kvp_synth_default(&sp, sc);
    CHECK_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
    return t;
}

static void test_refusals(void)
{
    kvp_scenario sc;
    kvp_result r;
    /* (100 + 25) x 25 = 3125 per layer, above the limit. */
    kvp_trace *t = synthetic(&sc, 1, 100, 25, "actual", "0.6");
    assign(&sc, "hbm_capacity", 50 * 4096);
    CHECK_EQ_INT(run(&sc, t, "optimal", &r), KVP_EINVAL);
    CHECK(strstr(err.msg, "too large") != NULL);
    CHECK_EQ_INT(run(&sc, t, "optimal:relax=1", &r), KVP_EINVAL);
    kvp_trace_free(t);
    /* (40 + 12) x 12 = 624 per layer is within, but not 8 layers of it (4992). */
    t = synthetic(&sc, 8, 40, 12, "actual", "0.6");
    assign(&sc, "hbm_capacity", 8 * 20 * 4096);
    CHECK_EQ_INT(run(&sc, t, "optimal", &r), KVP_EINVAL);
    CHECK(strstr(err.msg, "8 layers") != NULL);
    kvp_trace_free(t);
    /* A case that needs seconds of branch and bound (1 layer x 40 x 12, sparsity 0.85,
     * 10 slots, the LP 13% below the optimum): a time limit of 1 ms is an error, not a
     * number. */
    t = synthetic(&sc, 1, 40, 12, "low", "0.85");
    assign(&sc, "hbm_capacity", 10 * 4096);
    CHECK_EQ_INT(run(&sc, t, "optimal:tlim=0.001", &r), KVP_EINVAL);
    CHECK(strstr(err.msg, "did not close") != NULL);
    kvp_trace_free(t);
    /* "all" is for every size: it leaves optimal out. */
    kvp_policy_spec all[32];
    int n = kvp_policy_parse_list(all, 32, "all", &err);
    CHECK(n > 0);
    for (int i = 0; i < n; i++)
        CHECK(strcmp(kvp_policy_name(all[i].ops), "optimal") != 0);
}

/* ---------------------------------------------------------------------------------------- */

/* One small case's model (1 layer x 20 tokens x 8 steps of the study's machine, 10 slots,
 * sparsity 0.6, where the LP's 98.42 is below the optimum's 98.6) to `path`; prints GLPK's
 * objective of it. */
/* tiers3: the three-tier program (docs/BOUNDS.md "More than two tiers"): 4 slots of host
 * DRAM at the study's machine's DRAM bandwidth, and 40 of a CXL tier at 50 GB/s behind a
 * link of its own at 20 GB/s up and 10 GB/s down; 1 x 10 x 4. */
static int write_lp(const char *path, int relax, int tiers3)
{
    kvp_scenario sc;
    kvp_trace *t = tiers3 ? synthetic(&sc, 1, 10, 4, "low", "0.6")
                          : synthetic(&sc, 1, 20, 8, "low", "0.6");
    assign(&sc, "hbm_capacity", (tiers3 ? 4 : 10) * 4096);
    if (tiers3) {
        assign(&sc, "tiers", 3);
        assign(&sc, "dram_capacity", 4 * 4096);
        assign(&sc, "tier2_capacity", 40 * 4096);
        assign(&sc, "tier2_bandwidth", 50000000000ull);
        assign(&sc, "link2_bandwidth", 20000000000ull);
        assign(&sc, "link2_down_bandwidth", 10000000000ull);
    }
    double obj = 0, cst, unit;
    int rc = kvp_optimal_write_lp(&sc, t, 0, relax, path, &obj, &cst, &unit, &err);
    kvp_trace_free(t);
    if (rc < 0) {
        fprintf(stderr, "test_optimal: %s\n", err.msg);
        return 1;
    }
    printf("objective %.17g\n", obj);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && (strcmp(argv[1], "lp") == 0 || strcmp(argv[1], "lp3") == 0))
        return write_lp(argv[2], argc >= 4 && strcmp(argv[3], "relax") == 0,
                        strcmp(argv[1], "lp3") == 0);
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 20261201;
    test_hand();
    test_oracle(seed);
    test_order(seed);
    test_refusals();
    return check_done();
}
