/*
 * The parameter table, number parsing, presets, the config reader and the derived quantities.
 * Expected numbers are worked by hand in the comments (or are properties: round trips).
 */
#include "check.h"
#include "kvplace.h"

#include <float.h>
#include <stdlib.h>
#include <unistd.h>

static kvp_error err;

/* ---- number parsing ---- */

static void check_bytes(const char *text, uint64_t want)
{
    uint64_t v = 0;
    CHECK_OK(kvp_parse_bytes(text, &v, &err), &err);
    CHECK_EQ_U64(v, want);
}

static void check_bw(const char *text, double want)
{
    double v = 0;
    CHECK_OK(kvp_parse_bandwidth(text, &v, &err), &err);
    CHECK_NEAR(v, want, 0); /* bit-exact: the parser must round like the C literal */
}

static void test_parse(void)
{
    uint64_t u = 0;
    double d = 0;
    check_bytes("24GB", 24000000000u);
    check_bytes("8GiB", 8589934592u); /* 8 * 2^30 */
    check_bytes("1.6e6", 1600000);
    check_bytes("18446744073709551615", UINT64_MAX); /* 2^64-1 exactly, no rounding */
    check_bytes("1.5GB", 1500000000u);
    check_bytes("0.5KiB", 512); /* half of 1024, exact although 0.5 is a fraction */
    check_bytes("1000e-3", 1);
    check_bytes("1kB", 1000);
    check_bytes("1KB", 1000);
    check_bytes("1KiB", 1024);
    check_bytes("3MiB", 3145728); /* 3 * 2^20 */
    check_bytes("2TB", 2000000000000u);
    check_bytes("1PB", 1000000000000000u);
    check_bytes("0", 0);
    check_bytes("16060522496", 16060522496u);
    check_bytes("16383PiB", UINT64_MAX - ((uint64_t)1 << 50) + 1); /* 16383 * 2^50 */

    CHECK_FAILS(kvp_parse_bytes("18446744073709551616", &u, &err), KVP_ERANGE, &err,
                "overflows 64 bits");
    CHECK_FAILS(kvp_parse_bytes("1e20B", &u, &err), KVP_ERANGE, &err, "overflows");
    CHECK_FAILS(kvp_parse_bytes("16384PiB", &u, &err), KVP_ERANGE, &err, "overflows"); /* 2^64 */
    CHECK_FAILS(kvp_parse_bytes("24GBx", &u, &err), KVP_EINVAL, &err, "junk \"x\"");
    CHECK_FAILS(kvp_parse_bytes("1.5.2", &u, &err), KVP_EINVAL, &err, "junk \".2\"");
    CHECK_FAILS(kvp_parse_bytes("24 GB", &u, &err), KVP_EINVAL, &err, "junk");
    CHECK_FAILS(kvp_parse_bytes("0x10", &u, &err), KVP_EINVAL, &err, "junk");
    CHECK_FAILS(kvp_parse_bytes("1kiB", &u, &err), KVP_EINVAL, &err, "junk"); /* only Ki */
    CHECK_FAILS(kvp_parse_bytes("1e", &u, &err), KVP_EINVAL, &err, "junk \"e\"");
    CHECK_FAILS(kvp_parse_bytes("", &u, &err), KVP_EINVAL, &err, "empty");
    CHECK_FAILS(kvp_parse_bytes("-1", &u, &err), KVP_EINVAL, &err, "negative");
    CHECK_FAILS(kvp_parse_bytes("nan", &u, &err), KVP_EINVAL, &err, "not a number");
    CHECK_FAILS(kvp_parse_bytes("inf", &u, &err), KVP_EINVAL, &err, "not a number");
    CHECK_FAILS(kvp_parse_bytes("GB", &u, &err), KVP_EINVAL, &err, "not a number");
    CHECK_FAILS(kvp_parse_bytes("1.5B", &u, &err), KVP_EINVAL, &err, "not a whole number");
    CHECK_FAILS(kvp_parse_bytes("1e-3", &u, &err), KVP_EINVAL, &err, "not a whole number");
    CHECK_FAILS(kvp_parse_bytes("24GB/s", &u, &err), KVP_EINVAL, &err, "is a bandwidth");

    check_bw("4.9TB/s", 4.9e12);
    check_bw("500GB/s", 500e9);
    check_bw("900e9", 900e9);
    check_bw("450GB/s", 4.5e11);
    check_bw("3.35TB/s", 3.35e12);
    check_bw("307.2GB/s", 307.2e9);
    check_bw("1GiB/s", 1073741824.0);
    check_bw("0.1", 0.1); /* positive, so accepted here; the table's bound is what refuses it */
    CHECK_FAILS(kvp_parse_bandwidth("500GB", &d, &err), KVP_EINVAL, &err, "not a bandwidth");
    CHECK_FAILS(kvp_parse_bandwidth("0", &d, &err), KVP_EINVAL, &err, "not greater than 0");
    CHECK_FAILS(kvp_parse_bandwidth("-5GB/s", &d, &err), KVP_EINVAL, &err, "greater than 0");
    CHECK_FAILS(kvp_parse_bandwidth("1e400", &d, &err), KVP_ERANGE, &err, "too large");
    CHECK_FAILS(kvp_parse_bandwidth("1e-400", &d, &err), KVP_ERANGE, &err, "too small");
    CHECK_FAILS(kvp_parse_bandwidth("nan", &d, &err), KVP_EINVAL, &err, "not a number");
    CHECK_FAILS(kvp_parse_bandwidth("4.9TB/sec", &d, &err), KVP_EINVAL, &err, "junk");
}

/* ---- kvp_param_set and --set ---- */

static void test_set(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);

    CHECK_FAILS(kvp_param_set(&sc, "sparsity", "1.2", &err), KVP_EINVAL, &err, "sparsity");
    CHECK_STR(err.msg, "sparsity: 1.2 is out of range [0, 1)");
    CHECK_FAILS(kvp_param_set(&sc, "sparsity", "1", &err), KVP_EINVAL, &err, "out of range");
    CHECK_FAILS(kvp_param_set(&sc, "sparsity", "-0.1", &err), KVP_EINVAL, &err, "[0, 1)");
    CHECK_FAILS(kvp_param_set(&sc, "sparsity", "0.5k", &err), KVP_EINVAL, &err, "junk \"k\"");
    CHECK(sc.sparsity == 0.6); /* a refused value leaves the old one */
    CHECK_OK(kvp_param_set(&sc, "sparsity", "0", &err), &err);
    CHECK(sc.sparsity == 0.0);
    CHECK_OK(kvp_param_set(&sc, "sparsity", "0.999", &err), &err);
    CHECK(sc.sparsity == 0.999);

    CHECK_FAILS(kvp_param_set(&sc, "hbm_bandwidth", "fast", &err), KVP_EINVAL, &err, "fast");
    CHECK_STR(err.msg, "hbm_bandwidth: \"fast\" is not a number");
    CHECK_FAILS(kvp_param_set(&sc, "hbm_bandwidth", "0.5", &err), KVP_EINVAL, &err,
                "out of range [1, inf)");
    CHECK_FAILS(kvp_param_set(&sc, "hbmcap", "24GB", &err), KVP_EINVAL, &err,
                "unknown parameter \"hbmcap\"");
    CHECK(strstr(err.msg, "did you mean \"hbm_capacity\"") != NULL);
    CHECK_FAILS(kvp_param_set(&sc, "batc", "4", &err), KVP_EINVAL, &err, "\"batch\"");
    CHECK_FAILS(kvp_param_set(&sc, "HBM_Capacity", "4", &err), KVP_EINVAL, &err,
                "did you mean \"hbm_capacity\"");
    CHECK_FAILS(kvp_param_set(&sc, "zzzzzzzz", "4", &err), KVP_EINVAL, &err, "unknown");
    CHECK(strstr(err.msg, "did you mean") == NULL);
    CHECK_FAILS(kvp_param_set(&sc, "hw_name", "x", &err), KVP_EINVAL, &err, "unknown");

    CHECK_FAILS(kvp_param_set(&sc, "layers", "1.5", &err), KVP_EINVAL, &err,
                "layers: \"1.5\" is not a whole number");
    CHECK_FAILS(kvp_param_set(&sc, "layers", "4097", &err), KVP_EINVAL, &err,
                "layers: 4097 is out of range [1, 4096]");
    CHECK_FAILS(kvp_param_set(&sc, "layers", "0", &err), KVP_EINVAL, &err, "out of range");
    /* 2^32 + 16: would wrap to 16 if stored in a uint32 unchecked */
    CHECK_FAILS(kvp_param_set(&sc, "batch", "4294967312", &err), KVP_EINVAL, &err,
                "batch: 4294967312 is out of range [1, 65536]");
    CHECK_FAILS(kvp_param_set(&sc, "batch", "4B", &err), KVP_EINVAL, &err, "no unit");
    CHECK_FAILS(kvp_param_set(&sc, "hbm_capacity", "0", &err), KVP_EINVAL, &err,
                "out of range [1, 18446744073709551615]");
    CHECK_OK(kvp_param_set(&sc, "prompt", "32Ki", &err), &err);
    CHECK_EQ_U64(sc.prompt, 32768);
    CHECK_OK(kvp_param_set(&sc, "steps", "10k", &err), &err);
    CHECK_EQ_U64(sc.steps, 10000);
    CHECK_FAILS(kvp_param_set(&sc, "seed", "1.5", &err), KVP_EINVAL, &err, "whole");
    CHECK_OK(kvp_param_set(&sc, "seed", "18446744073709551615", &err), &err);
    CHECK_EQ_U64(sc.seed, UINT64_MAX);
    CHECK_OK(kvp_param_set(&sc, "weight_bytes", "0", &err), &err); /* weights not counted */
    CHECK_FAILS(kvp_param_set(&sc, "variation", "medium", &err), KVP_EINVAL, &err,
                "variation: \"medium\" is not one of low, actual, high");
    CHECK_OK(kvp_param_set(&sc, "variation", "high", &err), &err);
    CHECK_EQ_INT(sc.variation, KVP_VAR_HIGH);

    CHECK_FAILS(kvp_param_assign(&sc, "batch", &err), KVP_EINVAL, &err, "batch");
    CHECK_STR(err.msg, "--set expects name=value, got \"batch\"");
    CHECK_FAILS(kvp_param_assign(&sc, "=4", &err), KVP_EINVAL, &err, "name=value");
    CHECK_FAILS(kvp_param_assign(&sc, "batch=", &err), KVP_EINVAL, &err, "batch: empty value");
    CHECK_OK(kvp_param_assign(&sc, " batch = 4 ", &err), &err);
    CHECK_EQ_U64(sc.batch, 4);
    CHECK_FAILS(kvp_param_assign(&sc, "batch=4=5", &err), KVP_EINVAL, &err, "junk");
}

/* ---- the table, defaults and presets ---- */

/* 1 if every parameter of the two scenarios formats alike (i.e. holds the same value). */
static int same_params(const kvp_scenario *a, const kvp_scenario *b, const char *group)
{
    size_t np;
    const kvp_param_info *ps = kvp_params(&np);
    int same = 1;
    for (size_t i = 0; i < np; i++) {
        char va[64], vb[64];
        if (group && strcmp(ps[i].group, group) != 0)
            continue;
        kvp_param_format(a, &ps[i], va, sizeof va);
        kvp_param_format(b, &ps[i], vb, sizeof vb);
        if (strcmp(va, vb) != 0) {
            fprintf(stderr, "    %s: %s != %s\n", ps[i].name, va, vb);
            same = 0;
        }
    }
    return same;
}

static void test_table(void)
{
    size_t np;
    const kvp_param_info *ps = kvp_params(&np);
    /* every kvp_scenario field but the two names and `given` has a row, each at a distinct
     * offset: the 20 two-tier ones (topk and tp among them), tiers, tier1_link, 3 for each of
     * tiers 2..7, link 1's up and down, 3 for each of links 2..7, sequences */
    CHECK_EQ_U64(np, 20 + 2 + 3 * 6 + 2 + 3 * 6 + 1);
    for (size_t i = 0; i < np; i++) {
        CHECK(kvp_param_find(ps[i].name) == &ps[i]);
        CHECK(strlen(ps[i].name) < 32);
        CHECK(ps[i].deflt && ps[i].unit && ps[i].doc && ps[i].group);
        CHECK(ps[i].offset < offsetof(kvp_scenario, hw_name));
        /* COUNT fields are uint32_t: the bound is what keeps a parsed value from wrapping */
        if (ps[i].kind == KVP_PK_COUNT)
            CHECK(ps[i].min >= 0 && ps[i].max <= UINT32_MAX);
        CHECK(ps[i].min <= ps[i].max);
        for (size_t j = 0; j < i; j++)
            CHECK(ps[i].offset != ps[j].offset && strcmp(ps[i].name, ps[j].name) != 0);
        CHECK(strcmp(ps[i].group, "hardware") == 0 || strcmp(ps[i].group, "model") == 0 ||
              strcmp(ps[i].group, "workload") == 0 || strcmp(ps[i].group, "synthetic") == 0);
    }
    CHECK(kvp_param_find("nonesuch") == NULL);
    CHECK(kvp_param_find(NULL) == NULL);

    kvp_scenario sc;
    kvp_scenario_default(&sc);
    CHECK_STR(sc.hw_name, "gh200-paper");
    CHECK_STR(sc.model_name, "llama-3.1-8b");
    CHECK_EQ_U64(sc.batch, 1);
    CHECK(sc.sparsity == 0.6);
    CHECK_EQ_U64(sc.page_tokens, 16);
    CHECK_EQ_U64(sc.reserve, 0);
    CHECK_EQ_U64(sc.prompt, 4096);
    CHECK_EQ_U64(sc.steps, 256);
    CHECK_EQ_U64(sc.seed, 1);
    CHECK_EQ_INT(sc.variation, KVP_VAR_ACTUAL);
    /* the study's Table I (Fang et al. 2025, arXiv 2508.13231) */
    CHECK_EQ_U64(sc.hbm_capacity, 24000000000u);
    CHECK_NEAR(sc.hbm_bandwidth, 4.9e12, 0);
    CHECK_EQ_U64(sc.dram_capacity, 480000000000u);
    CHECK_NEAR(sc.dram_bandwidth, 500e9, 0);
    CHECK_NEAR(sc.link_bandwidth, 900e9, 0);
    /* Llama 3.1 8B: 32 layers, 8 KV heads of 128, bf16, 8,030,261,248 parameters x 2 */
    CHECK_EQ_U64(sc.layers, 32);
    CHECK_EQ_U64(sc.kv_heads, 8);
    CHECK_EQ_U64(sc.head_dim, 128);
    CHECK_EQ_U64(sc.dtype_bytes, 2);
    CHECK_EQ_U64(sc.weight_bytes, 16060522496u);
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);

    /* The defaults are the two presets: move everything away, apply them, compare. */
    kvp_scenario other;
    kvp_scenario_default(&other);
    CHECK_OK(kvp_preset_apply(&other, "h100-cxl", "hw", &err), &err);
    CHECK_OK(kvp_preset_apply(&other, "qwen2.5-7b", "model", &err), &err);
    CHECK(other.layers == 28 && other.hbm_capacity == 80000000000u);
    CHECK_OK(kvp_preset_apply(&other, "gh200-paper", "hw", &err), &err);
    CHECK_OK(kvp_preset_apply(&other, "llama-3.1-8b", NULL, &err), &err);
    CHECK(same_params(&sc, &other, NULL));
    CHECK_STR(other.hw_name, "gh200-paper");
    CHECK_STR(other.model_name, "llama-3.1-8b");
}

static void test_presets(void)
{
    size_t n, nhw = 0, nmodel = 0;
    const kvp_preset *ps = kvp_presets(&n);
    for (size_t i = 0; i < n; i++) {
        kvp_scenario a, b;
        int hw = strcmp(ps[i].kind, "hw") == 0;
        CHECK(hw || strcmp(ps[i].kind, "model") == 0);
        nhw += (size_t)hw;
        nmodel += (size_t)!hw;
        kvp_scenario_default(&a);
        if (!hw) /* 70B-class bf16 weights exceed any single GPU here; check shape alone */
            CHECK_OK(kvp_param_set(&a, "hbm_capacity", "1TB", &err), &err);
        CHECK_OK(kvp_preset_apply(&a, ps[i].name, ps[i].kind, &err), &err);
        CHECK_OK(kvp_scenario_validate(&a, &err), &err);
        CHECK_STR(hw ? a.hw_name : a.model_name, ps[i].name);
        /* a preset fixes its whole side: from two different starting points it lands on the
         * same values (reserve is the user's, not the machine's) */
        kvp_scenario_default(&b);
        CHECK_OK(kvp_preset_apply(&b, hw ? "h100-cxl" : "gh200-144", NULL, &err), &err);
        CHECK_OK(kvp_preset_apply(&b, hw ? "qwen2.5-72b" : "mistral-7b", NULL, &err), &err);
        CHECK_OK(kvp_param_set(&b, "hbm_capacity", "7TB", &err), &err);
        CHECK_OK(kvp_param_set(&b, "link_bandwidth", "7GB/s", &err), &err);
        CHECK_OK(kvp_param_set(&b, "layers", "7", &err), &err);
        CHECK_OK(kvp_param_set(&b, "weight_bytes", "7", &err), &err);
        CHECK_OK(kvp_preset_apply(&b, ps[i].name, NULL, &err), &err);
        CHECK(same_params(&a, &b, hw ? "hardware" : "model"));
    }
    CHECK(nhw >= 5 && nmodel >= 5);

    kvp_scenario sc;
    kvp_scenario_default(&sc);
    CHECK_FAILS(kvp_preset_apply(&sc, "gh300", "hw", &err), KVP_EINVAL, &err,
                "unknown hardware preset \"gh300\" (did you mean \"gh200\"? known: gh200-paper, "
                "gh200, ");
    CHECK(strstr(err.msg, "llama") == NULL); /* only hardware names are offered */
    CHECK_FAILS(kvp_preset_apply(&sc, "llama-9", "model", &err), KVP_EINVAL, &err,
                "unknown model preset \"llama-9\" (known: llama-3.1-8b, ");
    CHECK_FAILS(kvp_preset_apply(&sc, "llama-3.1-8b", "hw", &err), KVP_EINVAL, &err,
                "is a model preset, not a hardware preset");
    CHECK_FAILS(kvp_preset_apply(&sc, "gh200", "gpu", &err), KVP_EINVAL, &err, "kind");
    CHECK_FAILS(kvp_preset_apply(&sc, "/nonexistent/hw.ini", "hw", &err), KVP_EIO, &err,
                "/nonexistent/hw.ini: cannot open: No such file or directory");
    CHECK_STR(sc.hw_name, "gh200-paper");

    /* 72.7B parameters x 2 = 145.4 GB of weights do not fit in 144 GB of HBM */
    CHECK_OK(kvp_preset_apply(&sc, "gh200-144", "hw", &err), &err);
    CHECK_OK(kvp_preset_apply(&sc, "qwen2.5-72b", "model", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "weights (145.4 GB) plus reserve (0 B) exceed HBM capacity (144 GB)");
    /* 70.55B x 2 = 141.1 GB do, with 2.9 GB to spare */
    CHECK_OK(kvp_preset_apply(&sc, "llama-3.1-70b", "model", &err), &err);
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);
}

/* ---- derived quantities ---- */

static void test_derive(void)
{
    kvp_scenario sc;
    kvp_derived d;
    kvp_scenario_default(&sc);
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    /* tok_bytes = 2 (K and V) * 8 kv heads * 128 dims * 2 bytes * batch 1 = 4096 */
    CHECK_EQ_U64(d.tok_bytes, 4096);
    /* kv_budget = 24e9 - 16060522496 = 7939477504 bytes */
    CHECK_EQ_U64(d.kv_budget, 7939477504u);
    /* w_layer = 16060522496 / 32 = 501891328; cap_layer = 7939477504 / 32 = 248108672 */
    CHECK_NEAR(d.w_layer, 501891328.0, 0);
    CHECK_NEAR(d.cap_layer, 248108672.0, 0);
    /* slots at g = 1: floor(7939477504 / (32 * 4096)) = floor(60573.1...) = 60573
     * (60573 * 131072 = 7939424256, remainder 53248 < 131072) */
    CHECK_EQ_U64(kvp_slots(&sc, &d, 1), 60573);
    /* g = 16: floor(7939477504 / (32 * 16 * 4096 = 2097152)) = 3785
     * (3785 * 2097152 = 7937720320, remainder 1757184 < 2097152) */
    CHECK_EQ_U64(kvp_slots(&sc, &d, 16), 3785);

    CHECK_OK(kvp_param_set(&sc, "batch", "4", &err), &err);
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_EQ_U64(d.tok_bytes, 16384); /* 4096 * 4 */
    /* floor(7939477504 / (32 * 16384)) = floor(15143.3) = 15143: a quarter of 60573, floored */
    CHECK_EQ_U64(kvp_slots(&sc, &d, 1), 15143);

    /* weights over HBM */
    kvp_scenario_default(&sc);
    CHECK_OK(kvp_param_set(&sc, "hbm_capacity", "8GB", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err, "weights");
    /* the hint: 16.06 GB / 2 = 8.03 GB is still over 8 GB, 16.06 GB / 4 = 4.02 GB fits */
    CHECK_STR(err.msg, "weights (16.06 GB) plus reserve (0 B) exceed HBM capacity (8 GB); tp=4 "
                       "would fit them");
    CHECK_FAILS(kvp_scenario_derive(&sc, &d, &err), KVP_EINVAL, &err, "exceed HBM capacity");

    /* reserve takes the budget exactly to 0 (no slot), one byte more is refused */
    kvp_scenario_default(&sc);
    CHECK_OK(kvp_param_set(&sc, "reserve", "7939477504", &err), &err);
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_EQ_U64(d.kv_budget, 0);
    CHECK_EQ_U64(kvp_slots(&sc, &d, 1), 0);
    CHECK_OK(kvp_param_set(&sc, "reserve", "7939477505", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err, "reserve (7.939 GB)");
    /* weight + reserve past 2^64 must not wrap round to a small number */
    kvp_scenario_default(&sc);
    sc.reserve = UINT64_MAX;
    CHECK_FAILS(kvp_scenario_derive(&sc, &d, &err), KVP_EINVAL, &err, "exceed");

    /* a struct filled by hand: validate checks each field against the table */
    kvp_scenario_default(&sc);
    sc.layers = 0;
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "layers: 0 is out of range [1, 4096]");
    kvp_scenario_default(&sc);
    sc.sparsity = 1.0;
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err, "sparsity: 1 is out");
    kvp_scenario_default(&sc);
    sc.dram_bandwidth = NAN;
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err, "dram_bandwidth");
    kvp_scenario_default(&sc);
    sc.link_bandwidth = HUGE_VAL;
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err, "link_bandwidth");
    kvp_scenario_default(&sc);
    sc.variation = (kvp_variation)7;
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err, "variation");

    /* tok_bytes = 2 * (2^32-1)^3 overflows 64 bits */
    kvp_scenario_default(&sc);
    sc.kv_heads = sc.head_dim = sc.dtype_bytes = UINT32_MAX;
    CHECK_FAILS(kvp_scenario_derive(&sc, &d, &err), KVP_ERANGE, &err, "overflows 64 bits");

    /* slots: layers * g * tok_bytes = 32 * 1 * 2^60 overflows: not one slot fits */
    kvp_scenario_default(&sc);
    d.kv_budget = UINT64_MAX;
    d.tok_bytes = (uint64_t)1 << 60;
    CHECK_EQ_U64(kvp_slots(&sc, &d, 1), 0);
    /* 2^64-1 bytes / (32 * 2 bytes) is far past 2^32: saturates */
    d.tok_bytes = 2;
    CHECK_EQ_U64(kvp_slots(&sc, &d, 1), UINT32_MAX);
    /* the largest g at which the product still fits: 32 * g * 2 <= 2^64-1 */
    CHECK_EQ_U64(kvp_slots(&sc, &d, UINT32_MAX), UINT64_MAX / (64 * (uint64_t)UINT32_MAX));
    CHECK_EQ_U64(kvp_slots(&sc, &d, 0), 0);
}

/* ---- format / set round trip ---- */

static uint64_t rng_state;
static uint64_t rnd64(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static void roundtrip_all(const kvp_scenario *sc)
{
    size_t np;
    const kvp_param_info *ps = kvp_params(&np);
    for (size_t i = 0; i < np; i++) {
        char buf[64];
        kvp_scenario back;
        kvp_scenario_default(&back);
        int n = kvp_param_format(sc, &ps[i], buf, sizeof buf);
        CHECK(n > 0 && (size_t)n == strlen(buf));
        CHECK_OK(kvp_param_set(&back, ps[i].name, buf, &err), &err);
        /* bit-identical field, whatever its type */
        size_t size = ps[i].kind == KVP_PK_COUNT       ? sizeof(uint32_t)
                      : ps[i].kind == KVP_PK_VARIATION ? sizeof(kvp_variation)
                                                       : sizeof(uint64_t);
        if (!CHECK(memcmp((const char *)sc + ps[i].offset, (const char *)&back + ps[i].offset,
                          size) == 0))
            fprintf(stderr, "    %s: \"%s\" does not read back\n", ps[i].name, buf);
    }
}

static void test_roundtrip(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    roundtrip_all(&sc);
    /* awkward values: non-integer bandwidths, 0.1 + 0.2, extremes of every bound */
    sc.hbm_bandwidth = 4.9e12 / 3;
    sc.dram_bandwidth = 1.0;
    sc.link_bandwidth = DBL_MAX;
    sc.sparsity = 0.1 + 0.2;
    sc.hbm_capacity = UINT64_MAX;
    sc.seed = UINT64_MAX;
    sc.layers = 4096;
    sc.prompt = 1u << 26;
    sc.variation = KVP_VAR_LOW;
    roundtrip_all(&sc);
    sc.sparsity = nextafter(1.0, 0.0);
    sc.dram_bandwidth = nextafter(1.0, 2.0);
    sc.variation = KVP_VAR_HIGH;
    roundtrip_all(&sc);

    rng_state = 20240611u;
    printf("round trip seed %" PRIu64 "\n", rng_state);
    for (int i = 0; i < 2000; i++) {
        uint64_t r = rnd64();
        sc.sparsity = (double)(r >> 11) * 0x1p-53;            /* [0, 1) */
        sc.hbm_bandwidth = 1.0 + (double)(rnd64() >> 11) * 0x1p-20; /* up to ~8.6e9 */
        sc.link_bandwidth = ldexp(1.0 + (double)(rnd64() >> 11) * 0x1p-53, (int)(r % 900));
        sc.weight_bytes = rnd64();
        sc.seed = rnd64();
        sc.batch = 1 + (uint32_t)(r % 65536);
        roundtrip_all(&sc);
    }
    char tiny[4];
    CHECK_EQ_INT(kvp_param_format(&sc, kvp_param_find("seed"), tiny, sizeof tiny), KVP_ERANGE);
}

/* ---- config files ---- */

static char path_a[64], path_b[64], path_c[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_config(void)
{
    kvp_scenario sc, before;
    char want[256];
    snprintf(path_a, sizeof path_a, "/tmp/kvp_test_params_%ld_a.ini", (long)getpid());
    snprintf(path_b, sizeof path_b, "/tmp/kvp_test_params_%ld_b.ini", (long)getpid());
    snprintf(path_c, sizeof path_c, "/tmp/kvp_test_params_%ld_c.ini", (long)getpid());

    /* comments of both kinds, inline ones, sections, indentation, CRLF; a key written before
     * "hw =" still refines the preset, since presets apply first */
    write_file(path_a, "# a machine\n"
                       "; and a model\n"
                       "[hardware]\n"
                       "hbm_capacity = 48GB   # more than the preset's\n"
                       "hw = gh200\n"
                       "    reserve = 1GiB ; indented: an ordinary line\n"
                       "\n"
                       "[model]\n"
                       "model = qwen2.5-7b\r\n"
                       "batch=8\n"
                       "sparsity = 0.9\n");
    kvp_scenario_default(&sc);
    CHECK_OK(kvp_config_load(&sc, path_a, &err), &err);
    CHECK_EQ_U64(sc.hbm_capacity, 48000000000u);
    CHECK_NEAR(sc.hbm_bandwidth, 4e12, 0); /* from gh200 */
    CHECK_NEAR(sc.link_bandwidth, 450e9, 0);
    CHECK_EQ_U64(sc.reserve, 1073741824u);
    CHECK_EQ_U64(sc.kv_heads, 4); /* from qwen2.5-7b */
    CHECK_EQ_U64(sc.layers, 28);
    CHECK_EQ_U64(sc.batch, 8);
    CHECK(sc.sparsity == 0.9);
    CHECK_STR(sc.hw_name, "gh200");
    CHECK_STR(sc.model_name, "qwen2.5-7b");

    /* a bad value on line 7: the message names file:line, and nothing is applied */
    write_file(path_b, "# line 1\n"
                       "[workload]\n"
                       "batch = 2\n"
                       "; line 4\n"
                       "hw = gh200\n"
                       "\n"
                       "sparsity = 1.2\n"
                       "bogus line without equals\n");
    kvp_scenario_default(&sc);
    before = sc;
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err, "sparsity");
    snprintf(want, sizeof want, "%s:7: sparsity: 1.2 is out of range [0, 1)", path_b);
    CHECK_STR(err.msg, want);
    CHECK(memcmp(&sc, &before, sizeof sc) == 0);

    /* unknown key */
    write_file(path_b, "[hardware]\nhbm_capacity = 24GB\n\nhbmcap = 24GB\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err, "unknown parameter");
    snprintf(want, sizeof want, "%s:4: unknown parameter \"hbmcap\"", path_b);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0);

    /* a syntax error before a bad value is the one reported */
    write_file(path_b, "batch = 2\nnot a pair\nbatch = x\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EFORMAT, &err, ":2: expected");
    write_file(path_b, "batch = x\nnot a pair\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err, ":1: batch:");
    write_file(path_b, "[unclosed\nbatch = 2\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EFORMAT, &err, ":1: expected");

    /* '#' only starts an inline comment after a blank: otherwise it is junk in the value */
    write_file(path_b, "batch = 2#no\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err, "junk \"#no\"");

    /* presets in a config file: built-in names only, checked for their kind */
    write_file(path_b, "batch = 2\nhw = nonesuch\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err,
                ":2: unknown hardware preset \"nonesuch\" (known: gh200-paper");
    write_file(path_b, "model = gh200\n");
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err,
                ":1: \"gh200\" is a hardware preset, not a model preset");
    snprintf(want, sizeof want, "hw = %s\n", path_a);
    write_file(path_b, want); /* no file includes: no recursion */
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EINVAL, &err, "unknown hardware");

    /* a line longer than inih's buffer is refused, not cut in two */
    char longline[600];
    memset(longline, ' ', sizeof longline);
    memcpy(longline, "batch = 2", 9);
    memcpy(longline + sizeof longline - 4, "#\n\n", 4);
    write_file(path_b, longline);
    CHECK_FAILS(kvp_config_load(&sc, path_b, &err), KVP_EFORMAT, &err, ":1: line longer");
    CHECK(memcmp(&sc, &before, sizeof sc) == 0);

    /* missing file */
    unlink(path_c);
    CHECK_FAILS(kvp_config_load(&sc, path_c, &err), KVP_EIO, &err, "cannot open");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path_c);
    CHECK_STR(err.msg, want);
    CHECK_FAILS(kvp_config_load(&sc, "/tmp", &err), KVP_EIO, &err, "/tmp: cannot read");

    /* a file as a preset: its path becomes the name of the side it stands for */
    write_file(path_c, "layers = 40\nweight_bytes = 1GB\n");
    kvp_scenario_default(&sc);
    CHECK_OK(kvp_preset_apply(&sc, path_c, NULL, &err), &err);
    CHECK_EQ_U64(sc.layers, 40);
    CHECK_STR(sc.model_name, path_c);
    CHECK_STR(sc.hw_name, "gh200-paper"); /* it set no hardware */
    CHECK_OK(kvp_preset_apply(&sc, path_a, "hw", &err), &err);
    CHECK_STR(sc.hw_name, path_a);
    CHECK_FAILS(kvp_preset_apply(&sc, path_b, "hw", &err), KVP_EFORMAT, &err, path_b);

    unlink(path_a);
    unlink(path_b);
    unlink(path_c);
}

/* Tiers beyond two: the tier-1 and link-1 names are today's, the rest checked on derive. */
static void test_tiers(void)
{
    kvp_scenario sc, ref;
    kvp_derived d;
    kvp_scenario_default(&sc);
    ref = sc;
    CHECK_EQ_U64(sc.tiers, 2);
    CHECK(kvp_param_find("tier1_capacity") == kvp_param_find("dram_capacity"));
    CHECK(kvp_param_find("tier1_bandwidth") == kvp_param_find("dram_bandwidth"));
    CHECK(kvp_param_find("link1_bandwidth") == kvp_param_find("link_bandwidth"));
    CHECK_OK(kvp_param_set(&sc, "tier1_capacity", "1TB", &err), &err);
    CHECK_OK(kvp_param_set(&sc, "tier1_bandwidth", "100GB/s", &err), &err);
    CHECK_OK(kvp_param_set(&sc, "link1_bandwidth", "64GB/s", &err), &err);
    CHECK_OK(kvp_param_set(&ref, "dram_capacity", "1TB", &err), &err);
    CHECK_OK(kvp_param_set(&ref, "dram_bandwidth", "100GB/s", &err), &err);
    CHECK_OK(kvp_param_set(&ref, "link_bandwidth", "64GB/s", &err), &err);
    CHECK(memcmp(&sc, &ref, sizeof sc) == 0);
    /* a two-tier machine records none of the tier parameters (nor topk, off, nor tp = 1, nor
     * sequences = 1) */
    size_t np;
    const kvp_param_info *ps = kvp_params(&np);
    for (size_t i = 0; i < np; i++)
        CHECK(kvp_param_in_use(&sc, &ps[i]) ==
              ((strncmp(ps[i].name, "tier", 4) != 0 && strncmp(ps[i].name, "link", 4) != 0 &&
                strcmp(ps[i].name, "topk") != 0 && strcmp(ps[i].name, "tp") != 0 &&
                strcmp(ps[i].name, "sequences") != 0) ||
               strcmp(ps[i].name, "link_bandwidth") == 0));
    CHECK_OK(kvp_param_set(&sc, "sequences", "4", &err), &err);
    CHECK(kvp_param_in_use(&sc, kvp_param_find("sequences")));

    /* ... but an asymmetric link 1 records its directions */
    CHECK_OK(kvp_param_set(&sc, "link1_up_bandwidth", "375GB/s", &err), &err);
    CHECK(kvp_param_in_use(&sc, kvp_param_find("link1_up_bandwidth")));
    CHECK(!kvp_param_in_use(&sc, kvp_param_find("link1_down_bandwidth")));
    CHECK_OK(kvp_param_set(&sc, "link1_up_bandwidth", "0", &err), &err);

    /* K out of range */
    CHECK_FAILS(kvp_param_set(&sc, "tiers", "9", &err), KVP_EINVAL, &err,
                "tiers: 9 is out of range [2, 8]");
    CHECK_FAILS(kvp_param_set(&sc, "tiers", "1", &err), KVP_EINVAL, &err,
                "tiers: 1 is out of range [2, 8]");
    /* a third tier with no bandwidth, then with a link that has none */
    CHECK_OK(kvp_param_set(&sc, "tiers", "3", &err), &err);
    CHECK_FAILS(kvp_scenario_derive(&sc, &d, &err), KVP_EINVAL, &err,
                "tier 2 has no bandwidth (set tier2_bandwidth");
    CHECK_OK(kvp_param_set(&sc, "tier2_bandwidth", "40GB/s", &err), &err);
    CHECK_FAILS(kvp_scenario_validate(&sc, &err), KVP_EINVAL, &err,
                "tier 2 sits behind link 2, which has no bandwidth (set link2_bandwidth)");
    /* a tier with no link at all */
    CHECK_FAILS(kvp_param_set(&sc, "tier2_link", "0", &err), KVP_EINVAL, &err,
                "tier2_link: 0 is out of range [1, 7]");
    /* sharing link 1 (each way 64 GB/s), its up direction measured apart */
    CHECK_OK(kvp_param_set(&sc, "tier2_link", "1", &err), &err);
    CHECK_OK(kvp_param_set(&sc, "link1_up_bandwidth", "50GB/s", &err), &err);
    CHECK_OK(kvp_param_set(&sc, "tier2_capacity", "256GB", &err), &err);
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_EQ_U64(d.tiers, 3);
    CHECK_EQ_U64(d.tier_capacity[1], 1000000000000u);
    CHECK_EQ_U64(d.tier_capacity[2], 256000000000u);
    CHECK_NEAR(d.tier_bandwidth[2], 40e9, 0);
    CHECK_EQ_U64(d.tier_link[1], 1);
    CHECK_EQ_U64(d.tier_link[2], 1);
    CHECK_NEAR(d.link_up[1], 50e9, 0);
    CHECK_NEAR(d.link_down[1], 64e9, 0);
    CHECK_NEAR(d.link_up[2], 0, 0); /* unused */
    /* an unset direction is "0" and reads back */
    CHECK_OK(kvp_param_set(&sc, "link1_up_bandwidth", "0", &err), &err);
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    CHECK_NEAR(d.link_up[1], 64e9, 0);
    CHECK_FAILS(kvp_param_set(&sc, "link1_up_bandwidth", "-1GB/s", &err), KVP_EINVAL, &err,
                "link1_up_bandwidth");
    /* slots of tier 2: 256e9 / (32 layers * 1 token * 4096 bytes) = 1953125 exactly */
    CHECK_EQ_U64(kvp_tier_slots(&sc, &d, 1, 2), 1953125);
    CHECK_EQ_U64(kvp_tier_slots(&sc, &d, 3, 2), 651041); /* 1953125 / 3, floored */
    CHECK_EQ_U64(kvp_tier_slots(&sc, &d, 1, 3), 0); /* no tier 3 */

    /* readable sections */
    const char *path = "/tmp/kvp_test_tiers.ini";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("tiers = 4\n[hbm]\ncapacity = 80GB\n[tier 1]\ncapacity = 512GB\n"
          "bandwidth = 300GB/s\n[tier 2]\ncapacity = 256GB\nbandwidth = 60GB/s\nlink = 1\n"
          "[tier3]\ncapacity = 4TB\nbandwidth = 12GB/s\n[link 1]\nbandwidth = 64GB/s\n"
          "up_bandwidth = 55GB/s\n[link 3]\nbandwidth = 14GB/s\n", f);
    fclose(f);
    kvp_scenario_default(&sc);
    CHECK_OK(kvp_config_load(&sc, path, &err), &err);
    CHECK_EQ_U64(sc.tiers, 4);
    CHECK_EQ_U64(sc.hbm_capacity, 80000000000u);
    CHECK_EQ_U64(sc.dram_capacity, 512000000000u);
    CHECK_NEAR(sc.dram_bandwidth, 300e9, 0);
    CHECK_EQ_U64(sc.tier_capacity[2], 256000000000u);
    CHECK_EQ_U64(sc.tier_link[2], 1);
    CHECK_EQ_U64(sc.tier_capacity[3], 4000000000000u);
    CHECK_EQ_U64(sc.tier_link[3], 3);
    CHECK_NEAR(sc.link_up_bw[1], 55e9, 0);
    CHECK_NEAR(sc.link_bw[3], 14e9, 0);
    CHECK_OK(kvp_scenario_validate(&sc, &err), &err);
    unlink(path);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"parse", test_parse},
        {"set", test_set},
        {"table", test_table},
        {"presets", test_presets},
        {"derive", test_derive},
        {"roundtrip", test_roundtrip},
        {"config", test_config},
        {"tiers", test_tiers},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
