/*
 * Tensor parallelism (docs/MODEL.md "Tensor parallelism"): tp GPUs of the hardware given
 * share the weights and the KV heads; one of them is simulated.
 *  - the property of the issue: tp = 2 gives exactly the numbers of the single-GPU run of the
 *    same model with half the weights and half the KV heads, for every policy, over random
 *    scenarios (and tp = 4 those of a quarter);
 *  - the derived quantities by hand, weights that do not split evenly (the largest share);
 *  - every preset model runs on some preset machine at some tp;
 *  - bad input: a tp that does not divide kv_heads, weights that do not fit, with the hint.
 */
#include "check.h"
#include "support.h"

#include <string.h>


static void test_property(void)
{
    const uint64_t seed = check_seed;
    support_rng = seed;
    printf("property: seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 20; iter++) {
        const uint32_t tp = iter % 3 == 2 ? 4 : 2;
        uint32_t L = 1 + support_rnd(3), N = 1 + support_rnd(10), P = 1 + support_rnd(40);
        uint32_t C = P + N - 1;
        float *data = malloc((size_t)N * L * C * sizeof *data);
        REQUIRE(data != NULL);
        for (size_t i = 0; i < (size_t)N * L * C; i++)
            data[i] = (float)support_rnd(6);
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "random", &err), &err);
        free(data);

        /* heads: a multiple of tp; weights: a multiple of tp (the split is exact) */
        uint32_t heads = tp * (1 + support_rnd(3));
        unsigned long long w = (unsigned long long)tp * (1 + support_rnd(400));
        /* the KV budget per GPU: room for 0 to ~2 contexts of slots per layer */
        unsigned long long tok = 2ull * (heads / tp); /* head_dim 1, dtype 1, batch 1 */
        unsigned long long budget = tok * L * support_rnd(2 * P + 2);
        kvp_scenario multi, one;
        char sp[32];
        toy_machine(&multi, 0, 1, 50 + support_rnd(200));
        assign_u64(&multi, "layers", L);
        assign_u64(&multi, "page_tokens", 1 + support_rnd(4));
        snprintf(sp, sizeof sp, "sparsity=0.%u", support_rnd(10));
        REQUIRE_OK(kvp_param_assign(&multi, sp, &err), &err);
        one = multi;
        /* tp GPUs: the whole model, each GPU's HBM holding its share and the budget */
        assign_u64(&multi, "kv_heads", heads);
        assign_u64(&multi, "weight_bytes", w);
        assign_u64(&multi, "hbm_capacity", w / tp + budget + (budget == 0));
        assign_u64(&multi, "tp", tp);
        /* one GPU: a model with 1/tp of the heads and of the weights */
        assign_u64(&one, "kv_heads", heads / tp);
        assign_u64(&one, "weight_bytes", w / tp);
        assign_u64(&one, "hbm_capacity", w / tp + budget + (budget == 0));

        const int opt = L == 1 && C <= 20;
        kvp_result rm[24], r1[24];
        size_t nm, n1;
        run_all_policies(&multi, t, opt, rm, &nm);
        run_all_policies(&one, t, opt, r1, &n1);
        REQUIRE(nm == n1);
        for (size_t i = 0; i < nm; i++)
            if (!CHECK(memcmp(&rm[i], &r1[i], sizeof rm[i]) == 0))
                fprintf(stderr, "    %s: tp=%u differs from 1/%u of the model (seed %llu iter "
                        "%d)\n", rm[i].spec, tp, tp, (unsigned long long)seed, iter);
        kvp_trace_free(t);
    }
}

static void test_derived(void)
{
    kvp_scenario sc;
    kvp_derived d;
    static const char *const set[] = {"hbm_capacity=96GB", "kv_heads=8", "head_dim=128",
                                      "dtype_bytes=2", "batch=4", "layers=80",
                                      "weight_bytes=141107412992", "tp=2"};
    scenario_of(&sc, set, sizeof set / sizeof *set);
    REQUIRE_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_EQ_U64(d.kv_heads, 4);
    CHECK_EQ_U64(d.weight_bytes, 70553706496ull);             /* 141107412992 / 2 */
    CHECK_EQ_U64(d.tok_bytes, 2ull * 4 * 128 * 2 * 4);           /* 8192 */
    CHECK_EQ_U64(d.kv_budget, 96000000000ull - 70553706496ull); /* 25446293504 */
    CHECK_NEAR(d.w_layer, 70553706496.0 / 80, 0);
    /* weights that do not split evenly: the simulated GPU holds the largest share */
    REQUIRE_OK(kvp_param_set(&sc, "weight_bytes", "1001", &err), &err);
    REQUIRE_OK(kvp_param_set(&sc, "tp", "4", &err), &err);
    REQUIRE_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_EQ_U64(d.weight_bytes, 251); /* ceil(1001 / 4) */
    CHECK_EQ_U64(d.kv_heads, 2);
    /* tp = 1: the scenario's own numbers */
    REQUIRE_OK(kvp_param_set(&sc, "tp", "1", &err), &err);
    REQUIRE_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_EQ_U64(d.weight_bytes, 1001);
    CHECK_EQ_U64(d.kv_heads, 8);
    CHECK_EQ_U64(d.tok_bytes, 2ull * 8 * 128 * 2 * 4);
}

/* Every preset model fits some preset machine at some tp that divides its KV heads. */
static void test_presets_fit(void)
{
    size_t np;
    const kvp_preset *ps = kvp_presets(&np);
    for (size_t m = 0; m < np; m++) {
        if (strcmp(ps[m].kind, "model") != 0)
            continue;
        int fits = 0;
        for (size_t h = 0; h < np && !fits; h++) {
            if (strcmp(ps[h].kind, "hw") != 0)
                continue;
            for (unsigned tp = 1; tp <= 8 && !fits; tp *= 2) {
                kvp_scenario sc;
                kvp_scenario_default(&sc);
                REQUIRE_OK(kvp_preset_apply(&sc, ps[h].name, "hw", &err), &err);
                REQUIRE_OK(kvp_preset_apply(&sc, ps[m].name, "model", &err), &err);
                assign_u64(&sc, "tp", tp);
                kvp_error e;
                fits = kvp_scenario_validate(&sc, &e) == 0;
            }
        }
        if (!CHECK(fits))
            fprintf(stderr, "    model %s fits no machine at tp 1, 2, 4 or 8\n", ps[m].name);
    }
    /* the case of the README: Llama-3.1-70B on gh200 needs tp = 2 */
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    REQUIRE_OK(kvp_preset_apply(&sc, "gh200", "hw", &err), &err);
    REQUIRE_OK(kvp_preset_apply(&sc, "llama-3.1-70b", "model", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "weights (141.1 GB) plus reserve (0 B) exceed HBM capacity (96 GB); tp=2 "
                "would fit them");
    REQUIRE_OK(kvp_param_set(&sc, "tp", "2", &err), &err);
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);
}

static void test_bad_input(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc); /* llama-3.1-8b: 8 KV heads */
    CHECK_FAILS(kvp_param_set(&sc, "tp", "0", &err), KVP_EINVAL, &err, "tp: 0 is out of range");
    CHECK_FAILS(kvp_param_set(&sc, "tp", "1.5", &err), KVP_EINVAL, &err, "tp");
    CHECK_FAILS(kvp_param_set(&sc, "tp", "2000", &err), KVP_EINVAL, &err, "tp");
    REQUIRE_OK(kvp_param_set(&sc, "tp", "3", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "tp: 3 does not divide kv_heads (8)");
    REQUIRE_OK(kvp_param_set(&sc, "tp", "16", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "tp: 16 does not divide kv_heads (8)");
    REQUIRE_OK(kvp_param_set(&sc, "tp", "8", &err), &err);
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);
    /* weights too large even split: the message says per GPU, and no hint when none fits */
    REQUIRE_OK(kvp_param_set(&sc, "tp", "2", &err), &err);
    REQUIRE_OK(kvp_param_set(&sc, "weight_bytes", "500GB", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "weights (250 GB per GPU at tp=2) plus reserve (0 B) exceed HBM capacity "
                "(24 GB)");
    CHECK(strstr(err.msg, "would fit") == NULL);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"property", test_property},
        {"derived", test_derived},
        {"presets_fit", test_presets_fit},
        {"bad_input", test_bad_input},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
