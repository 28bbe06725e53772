/*
 * topk, a fixed token budget (docs/MODEL.md "A fixed token budget"): a step reads
 * k = min(topk, P + n) positions, the top k by score, ties to the lower position.
 *  - hand cases of k and of the sets a cursor gives (padding ignored, ties, bool traces);
 *  - the synthetic trace's sets against a naive top-k of its own scores;
 *  - the property of the issue: where topk equals ceil((1 - s) (P + n)) at every step, every
 *    policy (the bound, the fast counts and the trace caches with them) gives exactly the
 *    numbers of sparsity s, over random scenarios;
 *  - bad input: topk and sparsity both given, a cache asked at another budget.
 */
#include "check.h"
#include "support.h"

#include <math.h>
#include <string.h>

static void test_k(void)
{
    /* min(topk, context), whatever the sparsity beside it */
    static const struct {
        uint32_t topk, context, k;
    } c[] = {{5, 0, 0}, {5, 3, 3}, {5, 5, 5}, {5, 6, 5}, {1, 1, 1}, {1, 4096, 1},
             {2048, 31299, 2048}, {2048, 2047, 2047}, {UINT32_MAX, 7, 7}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        kvp_budget b = kvp_budget_topk(c[i].topk);
        b.sparsity = 0.9; /* ignored: topk decides */
        CHECK_EQ_U64(kvp_access_k(b, c[i].context), c[i].k);
    }
    /* topk 0 is off: sparsity decides, as before */
    kvp_budget off = {0.6, 0};
    CHECK_EQ_U64(kvp_access_k(off, 4096), 1639); /* ceil(0.4 x 4096 = 1638.4) */
    CHECK(kvp_budget_same(kvp_budget_topk(3), (kvp_budget){0.2, 3}));
    CHECK(!kvp_budget_same(kvp_budget_topk(3), kvp_budget_topk(4)));
    CHECK(!kvp_budget_same(kvp_budget_topk(3), kvp_budget_sparsity(0.5)));
    CHECK(!kvp_budget_same(kvp_budget_sparsity(0.4), kvp_budget_sparsity(0.5)));

    kvp_scenario sc;
    static const char *const set[] = {"topk=2048"};
    scenario_of(&sc, set, 1);
    kvp_budget b = kvp_scenario_budget(&sc);
    CHECK_EQ_U64(b.topk, 2048);
    CHECK_EQ_U64(kvp_access_k(b, 31299), 2048);
}

/* The positions of one cursor step, as a string "0,2,3". */
static void set_text(const kvp_access *a, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < a->count && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ",%u" : "%u", a->pos[i]);
}

/* One layer, P = 2, N = 3, C = 4; topk = 3.  Step 0 (context 2) reads both positions, step 1
 * (context 3) all three, step 2 the top 3 of 4 with ties to the lower position.  The padding
 * holds the highest values and must not be read. */
static void test_cursor(void)
{
    static const float data[3][4] = {
        {1, 2, 99, 99},   /* context 2: k = min(3, 2) = 2 -> 0,1 */
        {3, 3, 3, 99},    /* context 3: k = 3 -> 0,1,2 */
        {5, 1, 5, 5},     /* context 4: k = 3; 5s at 0, 2, 3 -> 0,2,3 */
    };
    static const char *const want[] = {"0,1", "0,1,2", "0,2,3"};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, &data[0][0], 3, 1, 4, 0, "hand", &err), &err);
    kvp_cursor *c = NULL;
    REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_topk(3), &err), &err);
    kvp_access a;
    char buf[64];
    for (int n = 0; n < 3; n++) {
        REQUIRE(kvp_cursor_next(c, &a, &err) == 1);
        set_text(&a, buf, sizeof buf);
        CHECK_STR(buf, want[n]);
    }
    kvp_cursor_free(c);
    /* all ties: the lowest positions */
    static const float flat[1][6] = {{7, 7, 7, 7, 7, 7}};
    kvp_trace_free(t);
    REQUIRE_OK(kvp_trace_from_memory(&t, &flat[0][0], 1, 1, 6, 0, "flat", &err), &err);
    REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_topk(4), &err), &err);
    REQUIRE(kvp_cursor_next(c, &a, &err) == 1);
    set_text(&a, buf, sizeof buf);
    CHECK_STR(buf, "0,1,2,3");
    kvp_cursor_free(c);
    kvp_trace_free(t);
    /* a bool trace reads its marks: topk 1 changes nothing */
    static const int marks[][8] = {{0, 2, 3, -1}};
    t = marks_trace(1, 6, marks);
    REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_topk(1), &err), &err);
    REQUIRE(kvp_cursor_next(c, &a, &err) == 1);
    set_text(&a, buf, sizeof buf);
    CHECK_STR(buf, "0,2,3");
    kvp_cursor_free(c);
    kvp_trace_free(t);
}

/* The k highest of s[0..n) (ties: lower position), ascending in *out: the naive oracle. */
static void naive_topk(const float *s, uint32_t n, uint32_t k, uint32_t *out)
{
    uint8_t *taken = calloc(n ? n : 1, 1);
    REQUIRE(taken != NULL);
    for (uint32_t j = 0; j < k; j++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t p = 0; p < n; p++)
            if (!taken[p] && (best == UINT32_MAX || s[p] > s[best]))
                best = p;
        taken[best] = 1;
    }
    uint32_t m = 0;
    for (uint32_t p = 0; p < n; p++)
        if (taken[p])
            out[m++] = p;
    free(taken);
}

/* The synthetic generator honours topk: each step's set is the naive top-min(topk, P + n) of
 * the scores the same trace gives at sparsity 0 (every position, with its score). */
static void test_synthetic(void)
{
    kvp_scenario sc;
    static const char *const set[] = {"prompt=50", "steps=40", "layers=2", "seed=7"};
    scenario_of(&sc, set, 4);
    kvp_synth_params sp;
    kvp_synth_default(&sp, &sc);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
    const uint32_t K = 60; /* contexts 50..89: k = 50, ..., 60, then 60 */
    uint32_t *want = malloc(100 * sizeof *want);
    float *all = malloc(100 * sizeof *all);
    REQUIRE(want && all);
    uint32_t bad = 0, steps = 0;
    for (uint32_t l = 0; l < 2; l++) {
        kvp_cursor *ck = NULL, *c0 = NULL;
        REQUIRE_OK(kvp_cursor_create(&ck, t, l, kvp_budget_topk(K), &err), &err);
        REQUIRE_OK(kvp_cursor_create(&c0, t, l, kvp_budget_sparsity(0), &err), &err);
        kvp_access a, z;
        while (kvp_cursor_next(ck, &a, &err) == 1) {
            REQUIRE(kvp_cursor_next(c0, &z, &err) == 1);
            REQUIRE(z.count == z.context); /* sparsity 0: every position */
            for (uint32_t i = 0; i < z.count; i++)
                all[z.pos[i]] = z.score[i];
            uint32_t k = a.context < K ? a.context : K;
            naive_topk(all, z.context, k, want);
            bad += a.count != k || memcmp(a.pos, want, (size_t)k * sizeof *want) != 0;
            steps++;
        }
        kvp_cursor_free(ck);
        kvp_cursor_free(c0);
    }
    CHECK_EQ_U64(steps, 80);
    CHECK_EQ_U64(bad, 0);
    free(want);
    free(all);
    kvp_trace_free(t);
}

/* Random scenarios where ceil((1 - s)(P + n)) is one k at every step: the sparsity s is
 * chosen strictly inside ((k - 1) / P, k / (P + N - 1)] of (1 - s), which is not empty when
 * P > (k - 1)(N - 1) (and k <= P, for a share at most 1).  topk = k must give every policy's numbers bit for bit; and topk at
 * or past the last context must give sparsity 0's. */
static void test_property(void)
{
    const uint64_t seed = check_seed;
    support_rng = seed;
    printf("property: seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 24; iter++) {
        uint32_t L = 1 + support_rnd(3), N = 1 + support_rnd(10), k = 1 + support_rnd(6);
        uint32_t P = (k - 1) * (N - 1) + k + support_rnd(30), C = P + N - 1; /* k <= P too */
        double lo = (double)(k - 1) / P, hi = (double)k / (P + N - 1);
        double s = 1.0 - (lo + hi) / 2;
        /* the premise, in exact terms: (1 - s) ctx in (k - 1, k) for every context */
        for (uint32_t ctx = P; ctx <= C; ctx++)
            REQUIRE((1 - s) * ctx > k - 1 + 1e-7 && (1 - s) * ctx < k - 1e-7);
        float *data = malloc((size_t)N * L * C * sizeof *data);
        REQUIRE(data != NULL);
        for (size_t i = 0; i < (size_t)N * L * C; i++)
            data[i] = (float)support_rnd(6); /* many ties */
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "random", &err), &err);
        free(data);

        char buf[96];
        kvp_scenario base;
        toy_machine(&base, 10, 10 + 2 * L * (1 + support_rnd(2 * P)), 50 + support_rnd(200));
        snprintf(buf, sizeof buf, "layers=%u", L);
        REQUIRE_OK(kvp_param_assign(&base, buf, &err), &err);
        snprintf(buf, sizeof buf, "page_tokens=%u", 1 + support_rnd(4));
        REQUIRE_OK(kvp_param_assign(&base, buf, &err), &err);
        kvp_scenario by_s = base, by_k = base, all_s = base, all_k = base;
        snprintf(buf, sizeof buf, "sparsity=%.17g", s);
        REQUIRE_OK(kvp_param_assign(&by_s, buf, &err), &err);
        snprintf(buf, sizeof buf, "topk=%u", k);
        REQUIRE_OK(kvp_param_assign(&by_k, buf, &err), &err);
        REQUIRE_OK(kvp_param_assign(&all_s, "sparsity=0", &err), &err);
        snprintf(buf, sizeof buf, "topk=%u", C + support_rnd(3));
        REQUIRE_OK(kvp_param_assign(&all_k, buf, &err), &err);

        const int opt = L == 1 && C <= 24;
        kvp_result rs[24], rk[24];
        size_t ns, nk;
        run_all_policies(&by_s, t, opt, rs, &ns);
        run_all_policies(&by_k, t, opt, rk, &nk);
        REQUIRE(ns == nk);
        for (size_t i = 0; i < ns; i++)
            if (!CHECK(memcmp(&rs[i], &rk[i], sizeof rs[i]) == 0))
                fprintf(stderr, "    %s: topk %u differs from sparsity %.17g (seed %llu iter "
                        "%d)\n", rs[i].spec, k, s, (unsigned long long)seed, iter);
        run_all_policies(&all_s, t, 0, rs, &ns);
        run_all_policies(&all_k, t, 0, rk, &nk);
        for (size_t i = 0; i < ns; i++)
            if (!CHECK(memcmp(&rs[i], &rk[i], sizeof rs[i]) == 0))
                fprintf(stderr, "    %s: topk >= context differs from sparsity 0 (seed %llu "
                        "iter %d)\n", rs[i].spec, (unsigned long long)seed, iter);
        kvp_trace_free(t);
    }
}

static void test_bad_input(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    CHECK_FAILS(kvp_param_set(&sc, "topk", "-1", &err), KVP_EINVAL, &err, "topk");
    CHECK_FAILS(kvp_param_set(&sc, "topk", "1.5", &err), KVP_EINVAL, &err, "topk");
    CHECK_FAILS(kvp_param_set(&sc, "topk", "lots", &err), KVP_EINVAL, &err, "topk");
    CHECK_FAILS(kvp_param_set(&sc, "topk", "4294967296", &err), KVP_EINVAL, &err, "topk");
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);

    /* both given, in either order: refused by validation, naming both */
    kvp_scenario a, b;
    kvp_scenario_default(&a);
    CHECK_OK(kvp_param_set(&a, "topk", "2048", &err), &err);
    CHECK_OK(kvp_scenario_validate(&a, &err), &err);
    b = a;
    CHECK_OK(kvp_param_set(&a, "sparsity", "0.6", &err), &err); /* the default's value too */
    CHECK_FAILS(kvp_scenario_validate(&a, &err), KVP_EINVAL, &err, "topk (2048) and sparsity");
    kvp_scenario_default(&a);
    CHECK_OK(kvp_param_set(&a, "sparsity", "0.5", &err), &err);
    CHECK_OK(kvp_param_set(&a, "topk", "64", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&a, &err), KVP_EINVAL, &err, "set only one");
    /* topk 0 (off) beside a sparsity is no contradiction */
    kvp_scenario_default(&a);
    CHECK_OK(kvp_param_set(&a, "sparsity", "0.5", &err), &err);
    CHECK_OK(kvp_param_set(&a, "topk", "0", &err), &err);
    CHECK_OK(kvp_scenario_validate(&a, &err), &err);
    /* a preset sets neither: topk after --hw/--model is fine */
    CHECK_OK(kvp_preset_apply(&b, "llama-3.1-8b", "model", &err), &err);
    CHECK_OK(kvp_scenario_validate(&b, &err), &err);
    /* a run refuses it too */
    kvp_scenario_default(&a);
    CHECK_OK(kvp_param_set(&a, "sparsity", "0.5", &err), &err);
    CHECK_OK(kvp_param_set(&a, "topk", "64", &err), &err);
    kvp_trace *t = NULL;
    kvp_synth_params sp;
    CHECK_OK(kvp_param_set(&a, "prompt", "64", &err), &err);
    CHECK_OK(kvp_param_set(&a, "steps", "4", &err), &err);
    kvp_synth_default(&sp, &a);
    REQUIRE_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
    kvp_policy_spec ps;
    kvp_result r;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    REQUIRE_OK(kvp_policy_parse(&ps, "static", &err), &err);
    CHECK_FAILS(kvp_run(&a, t, &ps, &ro, &r, &err), KVP_EINVAL, &err, "topk");

    /* a trace cache holds the sets of one budget: another is refused, not silently wrong */
    kvp_trace *c = NULL;
    REQUIRE_OK(kvp_trace_cache(&c, t, kvp_budget_topk(8), &ro, &err), &err);
    kvp_cursor *cur = NULL;
    CHECK_FAILS(kvp_cursor_create(&cur, c, 0, kvp_budget_topk(9), &err), KVP_EINVAL, &err,
                "cached at topk 8, asked at topk 9");
    CHECK_FAILS(kvp_cursor_create(&cur, c, 0, kvp_budget_sparsity(0.5), &err), KVP_EINVAL,
                &err, "asked at sparsity 0.5");
    CHECK_OK(kvp_cursor_create(&cur, c, 0, kvp_budget_topk(8), &err), &err);
    kvp_cursor_free(cur);
    kvp_trace_free(c);
    /* sparsity out of range with topk 0 is still refused where a budget is checked */
    CHECK_FAILS(kvp_cursor_create(&cur, t, 0, kvp_budget_sparsity(1.0), &err), KVP_EINVAL,
                &err, "sparsity 1");
    kvp_trace_free(t);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"k", test_k},
        {"cursor", test_cursor},
        {"synthetic", test_synthetic},
        {"property", test_property},
        {"bad_input", test_bad_input},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
