/*
 * The trace cache (src/trace/trace_cache.c): it must replay its source's access sets exactly, give
 * every policy that does not read scores exactly the source's result, refuse the policies
 * that do, and cost the bytes its formula says.
 *
 * Usage: test_trace_cache [--seed N] [TEST...] (--list names them)
 */
#include "kvplace.h"
#include "support.h"
#include "trace/trace.h" /* the counting wrapper below */

#include <stdlib.h>


static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static kvp_trace *synthetic(uint32_t P, uint32_t N, uint32_t L, kvp_variation v, double sp,
                            uint64_t seed)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    sc.prompt = P;
    sc.steps = N;
    sc.layers = L;
    sc.variation = v;
    sc.sparsity = sp;
    sc.seed = seed;
    kvp_synth_params p;
    kvp_synth_default(&p, &sc);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_synthetic(&t, &p, &err), &err);
    return t;
}

/* Random scores (ties when `ties`) or bool marks over N x L x C. */
static kvp_trace *random_trace(uint32_t N, uint32_t L, uint32_t C, int is_bool, int ties)
{
    size_t cells = (size_t)N * L * C;
    float *data = malloc(cells * sizeof *data);
    for (size_t i = 0; i < cells; i++)
        data[i] = is_bool ? (float)(rnd(3) == 0) : ties ? (float)rnd(3) : (float)rnd(100000);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, data, N, L, C, is_bool, "random", &err), &err);
    free(data);
    return t;
}

static kvp_trace *cache_of(const kvp_trace *t, double sparsity, unsigned threads)
{
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    kvp_trace *c = NULL;
    REQUIRE_OK(kvp_trace_cache(&c, t, kvp_budget_sparsity(sparsity), &ro, &err), &err);
    return c;
}

/* Every step of every layer: the same positions, and scores of 1. */
static void check_same_sets(const kvp_trace *src, const kvp_trace *c, double sparsity)
{
    uint32_t bad = 0, steps = 0, ones = 1;
    for (uint32_t l = 0; l < kvp_trace_layers(src); l++) {
        kvp_cursor *a = NULL, *b = NULL;
        REQUIRE_OK(kvp_cursor_create(&a, src, l, kvp_budget_sparsity(sparsity), &err), &err);
        REQUIRE_OK(kvp_cursor_create(&b, c, l, kvp_budget_sparsity(sparsity), &err), &err);
        if (!a || !b)
            return;
        kvp_access x, y;
        int ra, rb;
        while ((ra = kvp_cursor_next(a, &x, &err)) == 1) {
            rb = kvp_cursor_next(b, &y, &err);
            steps++;
            if (rb != 1 || x.step != y.step || x.layer != y.layer || x.context != y.context ||
                x.count != y.count || memcmp(x.pos, y.pos, (size_t)x.count * 4) != 0)
                bad++;
            for (uint32_t i = 0; rb == 1 && i < y.count; i++)
                ones &= y.score[i] == 1.0f;
        }
        CHECK_EQ_INT(ra, 0);
        CHECK_EQ_INT(kvp_cursor_next(b, &y, &err), 0);
        kvp_cursor_free(a);
        kvp_cursor_free(b);
    }
    CHECK_EQ_U64(steps, (uint64_t)kvp_trace_steps(src) * kvp_trace_layers(src));
    CHECK_EQ_U64(bad, 0);
    CHECK(ones);
}

static void test_sets(void)
{
    /* Contexts that cross 64-bit words (63 -> 67), and longer ones. */
    kvp_trace *t = synthetic(63, 5, 3, KVP_VAR_HIGH, 0.5, 7);
    kvp_trace *c = cache_of(t, 0.5, 2);
    check_same_sets(t, c, 0.5);
    CHECK_STR(kvp_trace_name(c), kvp_trace_name(t));
    CHECK_EQ_U64(kvp_trace_steps(c), 5);
    CHECK_EQ_U64(kvp_trace_layers(c), 3);
    CHECK_EQ_U64(kvp_trace_prompt(c), 63);
    CHECK_EQ_INT(kvp_trace_is_bool(c), 0);
    kvp_trace_free(c);
    kvp_trace_free(t);

    t = synthetic(3000, 40, 2, KVP_VAR_ACTUAL, 0.6, 99);
    c = cache_of(t, 0.6, 1);
    check_same_sets(t, c, 0.6);
    kvp_trace_free(c);
    kvp_trace_free(t);

    /* Sparsity 0: every position of the context. */
    t = synthetic(130, 4, 1, KVP_VAR_LOW, 0, 1);
    c = cache_of(t, 0, 1);
    check_same_sets(t, c, 0);
    kvp_trace_free(c);
    kvp_trace_free(t);

    /* A bool trace: the marks, sparsity ignored, and the kind kept. */
    t = random_trace(6, 2, 140, 1, 0);
    c = cache_of(t, 0.3, 2);
    check_same_sets(t, c, 0.9);
    CHECK_EQ_INT(kvp_trace_is_bool(c), 1);
    kvp_trace_free(c);
    kvp_trace_free(t);
}

/* Bytes: one 64-bit word per started 64 positions of each step's context, per layer. */
static void test_bytes(void)
{
    /* P = 100, N = 3: contexts 100, 101, 102 take 2 words each: 6 words = 48 B a layer. */
    kvp_trace *t = synthetic(100, 3, 2, KVP_VAR_ACTUAL, 0.6, 1);
    CHECK_EQ_U64(kvp_trace_cache_bytes(t), 96);
    kvp_trace_free(t);
    /* P = 64, N = 2: contexts 64 (1 word) and 65 (2 words): 24 B a layer. */
    t = synthetic(64, 2, 5, KVP_VAR_ACTUAL, 0.6, 1);
    CHECK_EQ_U64(kvp_trace_cache_bytes(t), 5 * 24);
    kvp_trace_free(t);
}

/* slots_scenario with blocks of 4 tokens for page. */
static void scenario(kvp_scenario *sc, uint32_t L, uint32_t slots, double sparsity)
{
    slots_scenario(sc, L, slots, sparsity);
    REQUIRE_OK(kvp_param_assign(sc, "page_tokens=4", &err), &err);
}

static int same_result(const kvp_result *a, const kvp_result *b)
{
    return same_report(a, b) && strcmp(a->policy, b->policy) == 0 && a->slots == b->slots &&
           a->sa_evaluations == b->sa_evaluations;
}

/* Runs list on both traces and compares result by result. */
static void check_same_results(const kvp_scenario *sc, const kvp_trace *t, const kvp_trace *c,
                               const char *list)
{
    kvp_policy_spec ps[16];
    kvp_result r1[16], r2[16];
    int n = kvp_policy_parse_list(ps, 16, list, &err);
    CHECK(n > 0);
    if (n <= 0)
        return;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    CHECK_OK(kvp_run_many(sc, t, ps, (size_t)n, &ro, r1, &err), &err);
    CHECK_OK(kvp_run_many(sc, c, ps, (size_t)n, &ro, r2, &err), &err);
    for (int i = 0; i < n; i++)
        if (!check_report_(same_result(&r1[i], &r2[i]), __FILE__, __LINE__,
                           "a policy on the cache gives the source's result"))
            fprintf(stderr, "    %s: %.17g vs %.17g\n", r1[i].params, r1[i].total_time_s,
                    r2[i].total_time_s);
}

static const char score_free[] =
    "unlimited,static,bound,lookahead:W=1:R=1,lookahead:W=5:R=0.3,lookahead:W=16:R=1,"
    "lookahead:W=3:R=0,sa:W_max=6:W0=2:budget=8";

static void test_results(void)
{
    kvp_scenario sc;
    scenario(&sc, 2, 300, 0.6);
    kvp_trace *t = synthetic(900, 60, 2, KVP_VAR_ACTUAL, 0.6, 5);
    kvp_trace *c = cache_of(t, 0.6, 2);
    check_same_results(&sc, t, c, score_free);

    /* reactive and page read scores: refused on the cache of a score trace. */
    kvp_policy_spec ps;
    kvp_result r;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    const char *const need[] = {"reactive", "page", "reactive:g=2"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        CHECK_OK(kvp_policy_parse(&ps, need[i], &err), &err);
        CHECK_EQ_INT(kvp_run(&sc, c, &ps, &ro, &r, &err), KVP_EINVAL);
    }

    /* The cache outlives its source. */
    kvp_trace_free(t);
    kvp_result alone;
    CHECK_OK(kvp_policy_parse(&ps, "lookahead:W=4:R=0.5", &err), &err);
    CHECK_OK(kvp_run(&sc, c, &ps, &ro, &alone, &err), &err);
    t = synthetic(900, 60, 2, KVP_VAR_ACTUAL, 0.6, 5);
    CHECK_OK(kvp_run(&sc, t, &ps, &ro, &r, &err), &err);
    CHECK(same_result(&alone, &r));

    /* Asked at another sparsity than it holds: refused, not silently wrong. */
    kvp_scenario other = sc;
    other.sparsity = 0.5;
    CHECK_EQ_INT(kvp_run(&other, c, &ps, &ro, &r, &err), KVP_EINVAL);
    /* No scores to write. */
    CHECK(kvp_trace_write_npy(c, "/tmp/kvp_test_cache_never_written.npy", &err) < 0);
    kvp_trace_free(c);
    kvp_trace_free(t);
}

/* Random traces, bool and scored: on a bool trace every policy may run on its cache (scores
 * are 1 in both), and gives the same result. */
static void test_random(void)
{
    const uint64_t seed = check_seed;
    rng_state = seed;
    printf("random: seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 40; iter++) {
        uint32_t L = 1 + rnd(3), N = 1 + rnd(12), P = 1 + rnd(150), C = P + N - 1;
        int is_bool = rnd(2) == 0;
        double sparsity = rnd(5) * 0.2;
        kvp_trace *t = random_trace(N, L, C, is_bool, rnd(2) == 0);
        kvp_scenario sc;
        scenario(&sc, L, 1 + rnd(120), sparsity);
        kvp_trace *c = cache_of(t, sparsity, 1 + rnd(2));
        check_same_sets(t, c, sparsity);
        check_same_results(&sc, t, c, score_free);
        if (is_bool)
            check_same_results(&sc, t, c, "reactive,reactive:g=3,page");
        kvp_trace_free(c);
        kvp_trace_free(t);
    }
}

/* A trace that passes another's cursors through and counts how many it opened (runs with
 * one thread only: the count is not atomic). */
static unsigned opened;

static int count_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                      kvp_error *e)
{
    const kvp_trace *in = t->impl;
    opened++;
    return in->vt->cursor_open(in, layer, budget, state, e);
}

static int count_step(void *state, uint32_t n, kvp_access *a, kvp_error *e);
static void count_close(void *state);
static void count_destroy(kvp_trace *t) { free(t); }

/* The inner trace's vtable is the one the states belong to; set by counting(). */
static const kvp_trace_vt *inner_vt;
static int count_step(void *state, uint32_t n, kvp_access *a, kvp_error *e)
{
    return inner_vt->cursor_step(state, n, a, e);
}
static void count_close(void *state) { inner_vt->cursor_close(state); }

static void count_sets_only(void *state)
{
    if (inner_vt->sets_only)
        inner_vt->sets_only(state);
}

static const kvp_trace_vt COUNT_VT = {"counting", count_open, count_step, count_close, NULL,
                                      count_destroy, count_sets_only, NULL, NULL, NULL};

static kvp_trace *counting(const kvp_trace *in)
{
    kvp_trace *t = malloc(sizeof *t);
    *t = *in;
    t->vt = &COUNT_VT;
    t->impl = (void *)(uintptr_t)in;
    inner_vt = in->vt;
    return t;
}

/* sa in a list with simulated policies takes its trace cache from their pass: the source is
 * read once, not twice; and sa's result is the one it gets alone, and on a cache built
 * beforehand. */
static void test_sa_shares_pass(void)
{
    const uint32_t L = 2;
    kvp_trace *t = synthetic(400, 40, L, KVP_VAR_ACTUAL, 0.6, 11);
    kvp_trace *ct = counting(t);
    kvp_scenario sc;
    scenario(&sc, L, 120, 0.6);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1;
    kvp_policy_spec ps[3];
    kvp_result with[3], alone[3], on_cache[3];
    CHECK_EQ_INT(kvp_policy_parse_list(ps, 3, "unlimited,lookahead:W=2,sa:budget=5", &err), 3);

    opened = 0;
    CHECK_OK(kvp_run_many(&sc, ct, ps, 3, &ro, with, &err), &err);
    CHECK_EQ_INT(opened, L); /* one pass: the simulated policies and the cache together */

    opened = 0;
    CHECK_OK(kvp_run_many(&sc, ct, &ps[2], 1, &ro, alone, &err), &err);
    CHECK_EQ_INT(opened, L); /* sa alone: the pass that builds its cache */
    CHECK(same_result(&with[2], &alone[0]));

    kvp_trace *c = cache_of(t, 0.6, 1);
    CHECK_OK(kvp_run_many(&sc, c, ps, 3, &ro, on_cache, &err), &err);
    for (int i = 0; i < 3; i++)
        CHECK(same_result(&with[i], &on_cache[i]));
    CHECK(with[2].sa_evaluations > 1);
    kvp_trace_free(c);
    kvp_trace_free(ct);
    kvp_trace_free(t);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"sets", test_sets},
        {"bytes", test_bytes},
        {"results", test_results},
        {"sa_shares_pass", test_sa_shares_pass},
        {"random", test_random},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
