/*
 * Online policies (docs/MODEL.md §10): a policy is online if replacing every step after n by other
 * values changes none of its decisions up to n.  On random in-memory traces, every policy
 * the registry marks online must give the same per-step record (time, HBM hits, tokens
 * promoted and demoted, every layer) for steps 0..n on a trace and on the same trace with
 * steps n+1.. redrawn; `lookahead`, which reads the future, must fail the same test, so the
 * test can fail.  Also: the online family runs in checking mode (capacity, bound) on random
 * scenarios, and a hand-worked case of the balanced split.
 *
 * Usage: test_online [seed]
 */
#include "check.h"
#include "engine/runner.h"
#include "kvplace.h"

#include <stdlib.h>

static kvp_error err;
static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 32) % n);
}

static void assign(kvp_scenario *sc, const char *name, unsigned long long v)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s=%llu", name, v);
    CHECK_OK(kvp_param_assign(sc, buf, &err), &err);
}

static void fill(float *data, size_t from, size_t to, int is_bool)
{
    for (size_t i = from; i < to; i++)
        data[i] = is_bool ? (float)(rnd(5) < 2) : (float)rnd(1000000) / 1e6f;
}

/* A random scenario of L layers whose slots hold about `share` of a C-token context. */
static void random_scenario(kvp_scenario *sc, uint32_t L, uint32_t C)
{
    static const unsigned dram_bw[] = {100, 300, 1000}, link_bw[] = {50, 100, 500};
    static const char *const sparsity[] = {"sparsity=0.3", "sparsity=0.6", "sparsity=0.85"};
    kvp_scenario_default(sc);
    uint32_t tok = 2, weight = rnd(3) ? rnd(4000) : 0, slots = 1 + rnd(C * 2 / 3 + 1);
    assign(sc, "layers", L);
    assign(sc, "kv_heads", 1);
    assign(sc, "head_dim", 1);
    assign(sc, "dtype_bytes", 1);
    assign(sc, "batch", 1);
    assign(sc, "weight_bytes", weight);
    assign(sc, "reserve", 0);
    assign(sc, "hbm_capacity", weight + (unsigned long long)L * tok * slots);
    assign(sc, "hbm_bandwidth", 1000);
    assign(sc, "dram_bandwidth", dram_bw[rnd(3)]);
    assign(sc, "link_bandwidth", link_bw[rnd(3)]);
    CHECK_OK(kvp_param_assign(sc, sparsity[rnd(3)], &err), &err);
}

/* 1 if the records of steps 0..cut of every layer are equal. */
static int same_prefix(const kvp_step_summary *a, const kvp_step_summary *b, uint32_t L,
                       uint32_t N, uint32_t cut)
{
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t n = 0; n <= cut; n++) {
            const kvp_step_summary *x = &a[(size_t)l * N + n], *y = &b[(size_t)l * N + n];
            if (x->time_s != y->time_s || x->hits != y->hits || x->promoted != y->promoted ||
                x->demoted != y->demoted)
                return 0;
        }
    return 1;
}

/* The specs under test: every simulated policy of the registry at its defaults, and the
 * online family with other knobs. */
static const char *const extra_specs[] = {
    "hot:decay=0",          "hot:decay=1",          "hot:est=0:decay=0.9",
    "hot:est=2",            "balanced:new_hbm=0",   "payback:payback=5:horizon=4",
    "steer:budget=0.05",    "steer:est=0:decay=0.99", "steer:est=2:decay=0.99999",
    "whittle:payback=0:horizon=16", "whittle:renew=1:budget=0.25", "whittle:est=1:decay=0.9:balance=0",
    "lookahead:W=3:R=0.5",
};

#define MAX_SPECS 32

static size_t all_specs(kvp_policy_spec *specs)
{
    size_t n = 0, count;
    const kvp_policy_ops *const *ops = kvp_policies(&count);
    for (size_t i = 0; i < count; i++) {
        kvp_policy_spec ps;
        CHECK_OK(kvp_policy_parse(&ps, kvp_policy_name(ops[i]), &err), &err);
        /* bound, sa, lpbound and plan replace the run: they have no steps to compare */
        if (!ops[i]->run)
            specs[n++] = ps;
    }
    for (size_t i = 0; i < sizeof extra_specs / sizeof *extra_specs; i++)
        CHECK_OK(kvp_policy_parse(&specs[n++], extra_specs[i], &err), &err);
    return n;
}

static void test_flags(void)
{
    static const char *const online[] = {"static", "reactive", "page", "hot", "balanced",
                                         "payback", "steer", "whittle"};
    static const char *const offline[] = {"lookahead", "sa", "bound", "lpbound", "plan"};
    kvp_policy_spec ps;
    for (size_t i = 0; i < sizeof online / sizeof *online; i++) {
        CHECK_OK(kvp_policy_parse(&ps, online[i], &err), &err);
        CHECK_EQ_INT(kvp_policy_online(ps.ops), 1);
    }
    for (size_t i = 0; i < sizeof offline / sizeof *offline; i++) {
        CHECK_OK(kvp_policy_parse(&ps, offline[i], &err), &err);
        CHECK_EQ_INT(kvp_policy_online(ps.ops), 0);
    }
}

/* The no-peeking test. */
static void test_no_peek(uint64_t seed)
{
    rng_state = seed | 1;
    printf("no peeking: seed %llu\n", (unsigned long long)seed);
    kvp_policy_spec specs[MAX_SPECS];
    size_t nspec = all_specs(specs);
    int lookahead_caught[MAX_SPECS] = {0};
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1;
    ro.check = 1;
    for (int iter = 0; iter < 60; iter++) {
        uint32_t L = 1 + rnd(2), N = 6 + rnd(30), P = 8 + rnd(60), C = P + N - 1;
        int is_bool = rnd(4) == 0;
        uint32_t cut = rnd(N - 1); /* steps cut+1 .. N-1 differ */
        size_t cells = (size_t)N * L * C, prefix = (size_t)(cut + 1) * L * C;
        float *a = malloc(cells * sizeof *a), *b = malloc(cells * sizeof *b);
        fill(a, 0, cells, is_bool);
        memcpy(b, a, prefix * sizeof *a);
        fill(b, prefix, cells, is_bool);
        kvp_trace *ta = NULL, *tb = NULL;
        CHECK_OK(kvp_trace_from_memory(&ta, a, N, L, C, is_bool, "a", &err), &err);
        CHECK_OK(kvp_trace_from_memory(&tb, b, N, L, C, is_bool, "b", &err), &err);
        kvp_scenario sc;
        random_scenario(&sc, L, C);
        kvp_step_summary *ra = calloc((size_t)L * N, sizeof *ra);
        kvp_step_summary *rb = calloc((size_t)L * N, sizeof *rb);
        for (size_t i = 0; ta && tb && i < nspec; i++) {
            kvp_result res;
            char name[160];
            kvp_policy_format(&specs[i], name, sizeof name);
            int r1 = kvp_engine_run_record(&sc, ta, &specs[i], &ro, &res, ra, &err);
            CHECK_OK(r1, &err);
            int r2 = kvp_engine_run_record(&sc, tb, &specs[i], &ro, &res, rb, &err);
            CHECK_OK(r2, &err);
            if (r1 < 0 || r2 < 0)
                continue;
            int same = same_prefix(ra, rb, L, N, cut);
            if (kvp_policy_online(specs[i].ops)) {
                if (!check_report_(same, __FILE__, __LINE__, "online policy does not peek"))
                    fprintf(stderr, "    %s: steps 0..%u differ once later steps change "
                            "(seed %llu, iteration %d)\n", name, cut,
                            (unsigned long long)seed, iter);
            } else if (!same) {
                lookahead_caught[i] = 1;
            }
        }
        free(ra);
        free(rb);
        free(a);
        free(b);
        kvp_trace_free(ta);
        kvp_trace_free(tb);
    }
    /* The test can fail: every offline policy among the specs was caught peeking. */
    for (size_t i = 0; i < nspec; i++) {
        if (kvp_policy_online(specs[i].ops))
            continue;
        char name[160];
        kvp_policy_format(&specs[i], name, sizeof name);
        if (!check_report_(lookahead_caught[i], __FILE__, __LINE__,
                           "the offline policy is caught peeking"))
            fprintf(stderr, "    %s passed the online test\n", name);
    }
}

/* A hand-worked balanced split.  One layer, tok_bytes 2 B, weights 2000 B (2 s of HBM at
 * 1000 B/s), DRAM and link 100 B/s, 10 slots (hbm_capacity 2020).  P = 20, sparsity 0.5:
 * step 0 reads the 10 highest scores, positions 10..19, all in DRAM (the initial placement
 * holds 0..9).  The bound's split h = (a B_hbm - w B_dram) / (B_hbm + B_dram) =
 * (20 x 1000 - 2000 x 100) / 1100 < 0, so H* = 0: the weights alone outlast the DRAM reads,
 * and balanced must promote nothing.  hot, which fills HBM, swaps the 10 reads (p 0.5) for
 * the 10 unread residents (p 0) at step 0; at later steps positions 10..19 stay the top 10
 * and are resident, the 11th read (a 0.1 score) finds no unread resident to replace. */
static void test_balanced_split(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    const char *set[] = {"layers=1",         "kv_heads=1",        "head_dim=1",
                         "dtype_bytes=1",    "batch=1",           "weight_bytes=2000",
                         "reserve=0",        "hbm_bandwidth=1000", "dram_bandwidth=100",
                         "link_bandwidth=100", "sparsity=0.5",    "hbm_capacity=2020"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        CHECK_OK(kvp_param_assign(&sc, set[i], &err), &err);
    /* P = 20, N = 6: each step reads the 10 highest scores; scores favour positions 10..19
     * (in DRAM) at every step, so hot promotes them and balanced, with H* = 0, must not. */
    uint32_t N = 6, P = 20, C = P + N - 1;
    float *data = calloc((size_t)N * C, sizeof *data);
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t p = 0; p < C; p++)
            data[(size_t)n * C + p] = p >= 10 && p < 20 ? 1.0f : 0.1f;
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, 1, C, 0, "split", &err), &err);
    free(data);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.check = 1;
    kvp_policy_spec ps;
    kvp_result hot, bal;
    CHECK_OK(kvp_policy_parse(&ps, "hot:new_hbm=0", &err), &err);
    CHECK_OK(kvp_run(&sc, t, &ps, &ro, &hot, &err), &err);
    CHECK_OK(kvp_policy_parse(&ps, "balanced:new_hbm=0", &err), &err);
    CHECK_OK(kvp_run(&sc, t, &ps, &ro, &bal, &err), &err);
    /* hot: the 10 reads of step 0 are all misses, each hotter (p 0.5) than the 10 unread
     * residents (p 0): 10 promoted, 10 demoted, 2 B each. */
    CHECK_EQ_U64(hot.promoted_bytes, 20);
    CHECK_EQ_U64(hot.demoted_bytes, 20);
    CHECK_EQ_U64(bal.promoted_bytes, 0);
    CHECK_EQ_U64(bal.demoted_bytes, 0);
    kvp_trace_free(t);
}

/* The victims' queue over a long run (600 steps, the ring filled and compacted many times),
 * under the engine's check of every step: each policy of the family must run to the end
 * (a victim taken twice or a token not resident would be a bad demotion) and never hold more
 * than HBM's slots. */
static void test_queue_wraps(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    /* 2-byte tokens, 250 slots against 100-400 reads of 200-800 positions: many resident
     * tokens out of the read set, so the queue holds many live entries when it compacts */
    const char *set[] = {"layers=1",      "kv_heads=1",      "head_dim=1",     "dtype_bytes=1",
                         "batch=1",       "weight_bytes=0",  "reserve=0",      "prompt=200",
                         "steps=600",     "sparsity=0.5",    "variation=high", "hbm_capacity=500"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        CHECK_OK(kvp_param_assign(&sc, set[i], &err), &err);
    kvp_synth_params sp;
    kvp_synth_default(&sp, &sc);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.check = 1;
    const char *names[] = {"hot", "payback", "balanced", "steer", "whittle"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        kvp_policy_spec ps;
        kvp_result r;
        CHECK_OK(kvp_policy_parse(&ps, names[i], &err), &err);
        CHECK_OK(kvp_run(&sc, t, &ps, &ro, &r, &err), &err);
        /* HBM never holds more than its 250 slots: what came up less what went down */
        CHECK(r.promoted_bytes <= r.demoted_bytes + 250 * 2);
    }
    kvp_trace_free(t);
}

/* Never behind static: on 24 random small synthetic scenarios (1-2 layers, prompt 150-650,
 * 40-160 steps, sparsity 0.3-0.9, low/actual/high variation, weights from none to several
 * times a step's KV, DRAM and link bandwidths and HBM capacity drawn at random), the
 * recommended online policies (steer, whittle) must reach at least 0.99 of static's
 * throughput, as docs/POLICIES.md claims an engine can rely on.  static is the engine's own
 * placement, so the oracle is independent of the online rule. */
static void test_never_behind_static(uint64_t seed)
{
    rng_state = (seed ^ 0x9e3779b97f4a7c15ull) | 1;
    printf("never behind static: seed %llu\n", (unsigned long long)seed);
    static const char *const variation[] = {"variation=low", "variation=actual",
                                            "variation=high"};
    /* hot, which fills HBM, is the control: it must be caught more than 1% behind static at
     * some scenario, so the scenarios can catch a policy that loses to static */
    static const char *const names[] = {"steer", "whittle", "hot"};
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1;
    ro.check = 1;
    double worst[3] = {1e9, 1e9, 1e9};
    for (int iter = 0; iter < 24; iter++) {
        kvp_scenario sc;
        uint32_t L = 1 + rnd(2), P = 150 + rnd(500), N = 40 + rnd(120);
        random_scenario(&sc, L, P + N);
        assign(&sc, "prompt", P);
        assign(&sc, "steps", N);
        char sp[32];
        snprintf(sp, sizeof sp, "sparsity=%.2f", 0.3 + 0.05 * rnd(13));
        CHECK_OK(kvp_param_assign(&sc, sp, &err), &err);
        CHECK_OK(kvp_param_assign(&sc, variation[rnd(3)], &err), &err);
        kvp_synth_params syn;
        kvp_synth_default(&syn, &sc);
        syn.seed = 1 + rnd(1000);
        kvp_trace *t = NULL;
        CHECK_OK(kvp_trace_synthetic(&t, &syn, &err), &err);
        if (!t)
            continue;
        kvp_policy_spec ps;
        kvp_result st;
        CHECK_OK(kvp_policy_parse(&ps, "static", &err), &err);
        CHECK_OK(kvp_run(&sc, t, &ps, &ro, &st, &err), &err);
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            kvp_result r;
            CHECK_OK(kvp_policy_parse(&ps, names[i], &err), &err);
            CHECK_OK(kvp_run(&sc, t, &ps, &ro, &r, &err), &err);
            double ratio = st.total_time_s / r.total_time_s;
            worst[i] = ratio < worst[i] ? ratio : worst[i];
            if (i == 2)
                continue;
            if (!check_report_(ratio >= 0.99, __FILE__, __LINE__,
                               "online policy within 1% of static"))
                fprintf(stderr, "    %s: %.4f of static (seed %llu, iteration %d)\n", names[i],
                        ratio, (unsigned long long)seed, iter);
        }
        kvp_trace_free(t);
    }
    printf("  lowest throughput over static: steer %.4f, whittle %.4f, hot %.4f\n", worst[0],
           worst[1], worst[2]);
    CHECK(worst[2] < 0.99); /* the control was caught */
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 20261201;
    test_flags();
    test_balanced_split();
    test_queue_wraps();
    test_no_peek(seed);
    test_never_behind_static(seed);
    return check_done();
}
