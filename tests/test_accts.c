/*
 * Several weight accountings of one run (kvp_run_many_accountings, src/engine/accts.c): on
 * random small scenarios (one stream, distinct sequences, per-head streams, three tiers,
 * tp 2), every policy of the registry run for two or three accountings at once gives, result
 * for result and byte for byte, what a run of each accounting alone gives, in checking mode
 * and not; sa's searches of the accountings diverge in some cases and still match; and
 * scenarios that differ in more than the accounting are refused.
 */
#include "support.h"

#include <stdio.h>

#define MAX_POL 24

static uint64_t rng;

/* The accountings of sc (weights counted): [1] the weights not counted (their bytes per GPU
 * added to the reserve, as `kvplace study` does), [2] half of them counted. */
static void accountings(const kvp_scenario *sc, kvp_scenario *out, size_t m)
{
    kvp_derived d;
    REQUIRE_OK(kvp_scenario_derive(sc, &d, &err), &err);
    out[0] = *sc;
    out[1] = *sc;
    out[1].reserve += d.weight_bytes;
    out[1].weight_bytes = 0;
    if (m > 2) {
        const uint64_t half = d.weight_bytes / 2; /* per GPU */
        out[2] = *sc;
        out[2].weight_bytes = half * sc->tp;
        out[2].reserve += d.weight_bytes - half;
    }
    for (size_t j = 0; j < m; j++)
        REQUIRE_OK(kvp_scenario_validate(&out[j], &err), &err);
}

/* A random small case: its scenario (weights counted) and trace; *kind names it. */
static kvp_trace *one_case(kvp_scenario *sc, const char **kind)
{
    const uint32_t L = sm_in(&rng, 1, 2), N = sm_in(&rng, 5, 14), P = sm_in(&rng, 6, 24);
    const uint32_t shape = sm_in(&rng, 0, 4), slots = sm_in(&rng, 2, P / 2 + 2);
    const uint64_t w = sm_in(&rng, 20, 400);
    kvp_trace *t = NULL;
    if (shape == 0 || shape == 3 || shape == 4) { /* one stream: 2 tiers, 3 tiers, tp 2 */
        slots_scenario(sc, L, slots, 0.3 + 0.1 * sm_in(&rng, 0, 4));
        sc->weight_bytes = w;
        sc->hbm_capacity = w + (uint64_t)L * 2 * slots;
        float *d = sm_scores(&rng, N, L, P + N - 1);
        REQUIRE_OK(kvp_trace_from_memory(&t, d, N, L, P + N - 1, 0, "random", &err), &err);
        free(d);
        *kind = "one stream";
        if (shape == 3) {
            static const char *const set[] = {"tiers=3", "tier2_capacity=100000",
                                              "tier2_bandwidth=50", "tier2_link=1"};
            for (size_t i = 0; i < sizeof set / sizeof *set; i++)
                REQUIRE_OK(kvp_param_assign(sc, set[i], &err), &err);
            assign_u64(sc, "dram_capacity", (uint64_t)L * 2 * sm_in(&rng, 1, P));
            *kind = "three tiers";
        } else if (shape == 4) {
            sc->kv_heads = 2;
            sc->tp = 2;
            sc->weight_bytes = 2 * w;
            *kind = "tp 2";
        }
    } else if (shape == 1) { /* distinct synthetic sequences */
        const uint32_t S = sm_in(&rng, 2, 4);
        streams_scenario(sc, L, 1, 1, 2, slots * S, w, 0.5);
        sc->prompt = P * 4;
        sc->steps = N;
        sc->seed = sm_next(&rng);
        sc->sequences = S;
        kvp_synth_params sp;
        kvp_synth_default(&sp, sc);
        REQUIRE_OK(kvp_trace_synthetic_sequences(&t, &sp, S, &err), &err);
        *kind = "sequences";
    } else { /* one stream per KV head */
        const uint32_t H = sm_in(&rng, 0, 1) ? 2 : 4;
        streams_scenario(sc, L, H, 1, 2, slots * H, w, 0.4);
        float *d = sm_scores(&rng, N, L * H, P + N - 1);
        const uint64_t shp[4] = {N, L, H, P + N - 1};
        REQUIRE_OK(kvp_trace_from_buffer(&t, d, KVP_DTYPE_F32, 4, shp, "heads", &err), &err);
        free(d);
        *kind = "heads";
    }
    REQUIRE_OK(kvp_scenario_validate(sc, &err), &err);
    return t;
}

/* Every policy of the registry (optimal on the smallest cases), sa's search small, those
 * that run on this case (each tried alone). */
static size_t policies(const kvp_scenario *sc, const kvp_trace *t, kvp_policy_spec *ps)
{
    size_t count, n = 0;
    const kvp_policy_ops *const *reg = kvp_policies(&count);
    const int small = kvp_trace_stream_count(t) == 1 && kvp_trace_steps(t) <= 8 &&
                      kvp_trace_layers(t) == 1;
    for (size_t k = 0; k < count && n < MAX_POL; k++) {
        char spec[128];
        const char *name = kvp_policy_name(reg[k]);
        if (strcmp(name, "optimal") == 0 && !small)
            continue;
        if (strcmp(name, "sa") == 0)
            snprintf(spec, sizeof spec, "sa:W_max=%u:W0=%u:moves=%u:budget=%u:seed=%u",
                     sm_in(&rng, 3, 10), sm_in(&rng, 1, 3), sm_in(&rng, 2, 4),
                     sm_in(&rng, 4, 16), sm_in(&rng, 0, 99));
        else
            snprintf(spec, sizeof spec, "%s", name);
        REQUIRE_OK(kvp_policy_parse(&ps[n], spec, &err), &err);
        kvp_result r;
        if (kvp_run_many(sc, t, &ps[n], 1, NULL, &r, &err) >= 0)
            n++;
    }
    return n;
}

static int same_bytes(const kvp_result *a, const kvp_result *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

static void test_properties(void)
{
    printf("accountings properties: seed %llu\n", (unsigned long long)check_seed);
    rng = check_seed;
    const int cases = getenv("KVP_TEST_LIGHT") ? 12 : 48;
    int diverged = 0, kinds[5] = {0};
    for (int c = 0; c < cases; c++) {
        kvp_scenario sc, acc[3];
        const char *kind = "";
        kvp_trace *t = one_case(&sc, &kind);
        const size_t m = sm_in(&rng, 2, 3);
        accountings(&sc, acc, m);
        kvp_policy_spec ps[MAX_POL];
        const size_t n = policies(&sc, t, ps);
        kvp_run_options ro;
        kvp_run_options_default(&ro);
        ro.threads = sm_in(&rng, 1, 2);
        ro.check = c % 3 == 2;
        const kvp_scenario *scs[3] = {&acc[0], &acc[1], &acc[2]};
        kvp_result twin[3 * MAX_POL], alone[MAX_POL];
        int rc = kvp_run_many_accountings(scs, m, t, ps, n, &ro, twin, &err);
        if (!check_report_(rc >= 0, __FILE__, __LINE__, "kvp_run_many_accountings"))
            fprintf(stderr, "    case %d (%s): %s\n", c, kind, err.msg);
        for (size_t j = 0; j < m && rc >= 0; j++) {
            REQUIRE_OK(kvp_run_many(&acc[j], t, ps, n, &ro, alone, &err), &err);
            for (size_t i = 0; i < n; i++)
                if (!check_report_(same_bytes(&twin[j * n + i], &alone[i]), __FILE__,
                                   __LINE__, "twin result == a run of its own"))
                    fprintf(stderr, "    case %d (%s) accounting %zu policy %s: time %.17g "
                            "!= %.17g, evaluations %u != %u\n", c, kind, j, alone[i].spec,
                            twin[j * n + i].total_time_s, alone[i].total_time_s,
                            twin[j * n + i].sa_evaluations, alone[i].sa_evaluations);
        }
        /* static, unlimited and bound alone: the fast paths (one stream; streams) */
        kvp_policy_spec fast[3];
        kvp_result ftwin[9];
        REQUIRE(kvp_policy_parse_list(fast, 3, "static,unlimited,bound", &err) == 3);
        rc = kvp_run_many_accountings(scs, m, t, fast, 3, &ro, ftwin, &err);
        CHECK_OK(rc, &err);
        for (size_t j = 0; j < m && rc >= 0; j++) {
            REQUIRE_OK(kvp_run_many(&acc[j], t, fast, 3, &ro, alone, &err), &err);
            for (size_t i = 0; i < 3; i++)
                if (!check_report_(same_bytes(&ftwin[j * 3 + i], &alone[i]),
                                   __FILE__, __LINE__, "fast paths' twin == alone"))
                    fprintf(stderr, "    case %d (%s) accounting %zu policy %s\n", c, kind, j,
                            alone[i].spec);
        }
        for (size_t i = 0; i < n && rc >= 0; i++)
            if (strcmp(kvp_policy_name(ps[i].ops), "sa") == 0 &&
                (strcmp(twin[i].params, twin[n + i].params) != 0 ||
                 twin[i].sa_evaluations != twin[n + i].sa_evaluations))
                diverged++;
        kinds[strcmp(kind, "one stream") == 0 ? 0 : strcmp(kind, "three tiers") == 0 ? 1
              : strcmp(kind, "tp 2") == 0 ? 2 : strcmp(kind, "sequences") == 0 ? 3 : 4]++;
        kvp_trace_free(t);
    }
    /* the cases cover what they are meant to: every kind, and searches that part ways */
    for (size_t k = 0; k < 5; k++)
        CHECK(kinds[k] > 0);
    printf("accountings: sa's searches diverged in %d of %d cases\n", diverged, cases);
    CHECK(diverged > 0);
}

/* One run of the accountings a and b of one policy list; its return code. */
static int run_two(const kvp_scenario *a, const kvp_scenario *b, const kvp_trace *t,
                   const kvp_run_options *ro)
{
    kvp_policy_spec ps[2];
    kvp_result res[4];
    REQUIRE_OK(kvp_policy_parse(&ps[0], "static", &err), &err);
    REQUIRE_OK(kvp_policy_parse(&ps[1], "lookahead", &err), &err);
    const kvp_scenario *scs[2] = {a, b};
    return kvp_run_many_accountings(scs, 2, t, ps, 2, ro, res, &err);
}

static void no_hook(void *user, const kvp_step_record *r)
{
    (void)user;
    (void)r;
}

/* Scenarios that differ in more than the accounting are refused, as are a step hook and an
 * sa checkpoint with several accountings, and counts of none or more than four. */
static void test_refuses(void)
{
    rng = 7;
    kvp_scenario sc, acc[3];
    slots_scenario(&sc, 1, 6, 0.5);
    float *d = sm_scores(&rng, 8, 1, 20);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, d, 8, 1, 20, 0, "random", &err), &err);
    free(d);
    accountings(&sc, acc, 2);
    CHECK_OK(run_two(&acc[0], &acc[1], t, NULL), &err);
    kvp_scenario other = acc[1];
    other.sparsity = 0.4; /* another trace's sets */
    CHECK_FAILS(run_two(&acc[0], &other, t, NULL), KVP_EINVAL, &err, "sparsity");
    other = acc[1];
    other.hbm_capacity += 64; /* another KV budget, though only the capacity differs */
    CHECK_FAILS(run_two(&acc[0], &other, t, NULL), KVP_EINVAL, &err, "hbm_capacity");
    other = acc[1];
    other.reserve -= 50; /* weights dropped, their HBM given to the KV: more slots */
    CHECK_FAILS(run_two(&acc[0], &other, t, NULL), KVP_EINVAL, &err, "KV budget");
    other = acc[1];
    other.hbm_bandwidth *= 2;
    CHECK_FAILS(run_two(&acc[0], &other, t, NULL), KVP_EINVAL, &err, "hbm_bandwidth");
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.step_hook = no_hook;
    CHECK_FAILS(run_two(&acc[0], &acc[1], t, &ro), KVP_EINVAL, &err, "step hook");
    kvp_result res[8];
    kvp_policy_spec ps;
    REQUIRE_OK(kvp_policy_parse(&ps, "static", &err), &err);
    const kvp_scenario *five[5] = {&acc[0], &acc[1], &acc[0], &acc[1], &acc[0]};
    CHECK_FAILS(kvp_run_many_accountings(five, 5, t, &ps, 1, NULL, res, &err), KVP_EINVAL,
                &err, "accountings");
    CHECK_FAILS(kvp_run_many_accountings(five, 0, t, &ps, 1, NULL, res, &err), KVP_EINVAL,
                &err, "accountings");
    /* one accounting is kvp_run_many itself */
    kvp_result one;
    CHECK_OK(kvp_run_many_accountings(five, 1, t, &ps, 1, NULL, res, &err), &err);
    CHECK_OK(kvp_run_many(&acc[0], t, &ps, 1, NULL, &one, &err), &err);
    CHECK(same_bytes(&res[0], &one));
    kvp_trace_free(t);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"properties", test_properties},
        {"refuses", test_refuses},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
