/*
 * The cost model of one step (src/engine/cost.c, docs/MODEL.md) on numbers worked by hand:
 * tiers of 100 B/s (HBM, with 50 B of weights read every step) and 10 B/s (DRAM), a link of
 * 20 B/s each way.  Every expected time is a quotient written out in the comment beside it,
 * chosen to be exact in binary so that the checks are bit for bit.  A link carries what the
 * tiers behind it read (up) and write (down): every move passes through the GPU.
 */
#include "check.h"
#include "engine/cost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static kvp_cost_model toy_model(void)
{
    kvp_cost_model m = {0};
    m.tiers = 2;
    m.bandwidth[0] = 100;
    m.bandwidth[1] = 10;
    m.fixed_bytes[0] = 50;
    m.kv_capacity[0] = 1e9;
    m.kv_capacity[1] = HUGE_VAL;
    m.link[1] = 1;
    m.links = 1;
    for (int j = 0; j < KVP_MAX_TIERS; j++)
        m.up_bandwidth[j] = m.down_bandwidth[j] = HUGE_VAL;
    m.up_bandwidth[1] = m.down_bandwidth[1] = 20;
    return m;
}

static double time_of(const kvp_cost_model *m, double hr, double hw, double dr, double dw)
{
    kvp_traffic t = {{hr, dr}, {hw, dw}};
    return kvp_step_time(m, &t);
}

static void test_busiest_wins(void)
{
    kvp_cost_model m = toy_model();
    /* HBM: (50 + 30 + 20) / 100 = 1; DRAM (5 + 3) / 10 = .8; up 5 / 20, down 3 / 20.
     * Reads and writes share the tier: max(30, 20) instead of the sum would give .8. */
    CHECK_NEAR(time_of(&m, 30, 20, 5, 3), 1.0, 0);
    /* DRAM: (12 + 8) / 10 = 2 over HBM 50 / 100 = .5, up 12 / 20 = .6, down .4; the weights
     * are HBM's alone (DRAM with them would be 7). */
    CHECK_NEAR(time_of(&m, 0, 0, 12, 8), 2.0, 0);
    /* A DRAM faster than the link: 1000 B/s.  Up 50 / 20 = 2.5 over DRAM 70 / 1000, down
     * 20 / 20 = 1.  The two directions are apart: up + down would give 3.5. */
    m.bandwidth[1] = 1000;
    CHECK_NEAR(time_of(&m, 0, 0, 50, 20), 2.5, 0);
    /* Down: 70 / 20 = 3.5 over up 0. */
    CHECK_NEAR(time_of(&m, 0, 0, 0, 70), 3.5, 0);
    /* An asymmetric link: down 40 B/s, 70 / 40 = 1.75. */
    m.down_bandwidth[1] = 40;
    CHECK_NEAR(time_of(&m, 0, 0, 0, 70), 1.75, 0);
    /* No KV traffic: the weights alone, 50 / 100 = .5. */
    CHECK_NEAR(time_of(&m, 0, 0, 0, 0), 0.5, 0);
}

static void test_traffic_of_tokens(void)
{
    /* Tokens times tok_bytes, per tier. */
    kvp_counters c = {0};
    c.read[0] = 3;
    c.write[0] = 1;
    c.read[1] = 2;
    c.write[1] = 5;
    kvp_traffic t;
    kvp_traffic_of(&t, &c, 2, 4);
    CHECK_NEAR(t.read[0], 12, 0);
    CHECK_NEAR(t.write[0], 4, 0);
    CHECK_NEAR(t.read[1], 8, 0);
    CHECK_NEAR(t.write[1], 20, 0);
    /* HBM (50 + 16) / 100 = .66, DRAM 28 / 10 = 2.8, up .4, down 20 / 20 = 1. */
    kvp_cost_model m = toy_model();
    CHECK_NEAR(kvp_step_time(&m, &t), 2.8, 1e-15);
}

/* Three tiers: HBM 100 B/s (50 B of weights), host DRAM 40 B/s and a CXL expander 16 B/s,
 * both behind link 1 of 20 B/s up and 10 B/s down; or the expander behind a link 2 of its
 * own (8 B/s each way). */
static kvp_cost_model three_tiers(int shared)
{
    kvp_cost_model m = toy_model();
    m.tiers = 3;
    m.bandwidth[1] = 40;
    m.bandwidth[2] = 16;
    m.kv_capacity[1] = m.kv_capacity[2] = 1e9;
    m.up_bandwidth[1] = 20;
    m.down_bandwidth[1] = 10;
    m.link[2] = shared ? 1 : 2;
    m.links = shared ? 1 : 2;
    if (!shared)
        m.up_bandwidth[2] = m.down_bandwidth[2] = 8;
    return m;
}

static void test_three_tiers(void)
{
    kvp_cost_model m = three_tiers(1);
    /* The shared link sums both tiers.  Reads 24 from DRAM and 16 from CXL: DRAM 24 / 40 =
     * .6, CXL 16 / 16 = 1, up (24 + 16) / 20 = 2 (either tier alone: 1.2 or .8). */
    kvp_traffic t = {{0, 24, 16}, {0, 0, 0}};
    CHECK_NEAR(kvp_step_time(&m, &t), 2.0, 0);
    /* Writes 12 and 3 down: (12 + 3) / 10 = 1.5 over DRAM 12 / 40, CXL 3 / 16, HBM .5. */
    kvp_traffic w = {{0, 0, 0}, {0, 12, 3}};
    CHECK_NEAR(kvp_step_time(&m, &w), 1.5, 0);
    /* A move of 8 bytes from DRAM to CXL goes through the GPU: up 8 and down 8 on the shared
     * link, 8 / 20 = .4 up, 8 / 10 = .8 down; DRAM 8 / 40, CXL 8 / 16 = .5; HBM .5. */
    kvp_traffic mv = {{0, 8, 0}, {0, 0, 8}};
    CHECK_NEAR(kvp_step_time(&m, &mv), 0.8, 0);
    /* Behind two links, the same move charges both: link 1 up 8 / 20, link 2 down 8 / 8 =
     * 1 (the CXL tier's own link is the narrow one). */
    m = three_tiers(0);
    CHECK_NEAR(kvp_step_time(&m, &mv), 1.0, 0);
    /* ... and the reverse move, CXL to DRAM: link 2 up 24 / 8 = 3, link 1 down 24 / 10. */
    kvp_traffic back = {{0, 0, 24}, {0, 24, 0}};
    CHECK_NEAR(kvp_step_time(&m, &back), 3.0, 0);
}

/* Today's (two-tier) step time, written out as the four-term max of docs/MODEL.md §3, against
 * the model over random traffic and machines: identical bits, not nearly. */
static double two_tier_time(double w, double bh, double bd, double bl, double hr, double hw,
                            double dr, double dw, double up, double down)
{
    return fmax(fmax((w + hr + hw) / bh, (dr + dw) / bd), fmax(up / bl, down / bl));
}

static uint64_t rng_state;
static double rnd_bytes(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t x = rng_state >> 11;
    return (double)(x % 4000000) * (double)((x >> 30) % 3 == 0 ? 1 : 4096);
}

static void test_two_tiers_identical(void)
{
    rng_state = 20261201;
    printf("two-tier property seed 20261201\n");
    for (int i = 0; i < 200000; i++) {
        kvp_cost_model m = toy_model();
        m.fixed_bytes[0] = rnd_bytes();
        m.bandwidth[0] = rnd_bytes() + 1e6;
        m.bandwidth[1] = rnd_bytes() + 1e3;
        m.up_bandwidth[1] = m.down_bandwidth[1] = rnd_bytes() + 1e3;
        double hr = rnd_bytes(), hw = rnd_bytes(), dr = rnd_bytes(), dw = rnd_bytes();
        double want = two_tier_time(m.fixed_bytes[0], m.bandwidth[0], m.bandwidth[1],
                                    m.up_bandwidth[1], hr, hw, dr, dw, dr, dw);
        double got = time_of(&m, hr, hw, dr, dw);
        if (!CHECK(want == got))
            printf("  i %d: %.17g != %.17g\n", i, want, got);
        /* a third tier of no capacity and no traffic, on link 1 or its own, changes nothing */
        m.tiers = 3;
        m.bandwidth[2] = rnd_bytes() + 1;
        m.link[2] = (uint32_t)(i % 2 + 1);
        m.links = m.link[2];
        if (m.link[2] == 2)
            m.up_bandwidth[2] = m.down_bandwidth[2] = rnd_bytes() + 1;
        kvp_traffic t = {{hr, dr, 0}, {hw, dw, 0}};
        CHECK(kvp_step_time(&m, &t) == want);
        /* and the bound: DRAM unlimited, the tier beside it empty */
        double h2, h3;
        m.kv_capacity[0] = rnd_bytes();
        m.kv_capacity[2] = 0;
        double a = rnd_bytes();
        double b3 = kvp_step_time_bound(&m, a, &h3);
        m.tiers = 2;
        double b2 = kvp_step_time_bound(&m, a, &h2);
        CHECK(b2 == b3 && h2 == h3);
    }
}

static void test_bound(void)
{
    kvp_cost_model m = toy_model();
    double h;
    /* B_hbm 100, min(B_dram, B_link) = 10.  The terms (50 + h) / 100 and (a - h) / 10 meet
     * at h = (100 a - 500) / 110, where both are (50 + a) / 110.  a = 1000: h = 99500 / 110,
     * t = 1050 / 110. */
    CHECK_NEAR(kvp_step_time_bound(&m, 1000, &h), 1050.0 / 110.0, 1e-15);
    CHECK_NEAR(h, 99500.0 / 110.0, 1e-15);
    /* HBM holds 100 B of KV: h = 100, t = max(150 / 100, 900 / 10) = 90. */
    m.kv_capacity[0] = 100;
    CHECK_NEAR(kvp_step_time_bound(&m, 1000, &h), 90.0, 0);
    CHECK_NEAR(h, 100.0, 0);
    /* a = 2: the meeting point is below 0, h = 0: t = max(50 / 100, 2 / 10) = .5. */
    CHECK_NEAR(kvp_step_time_bound(&m, 2, &h), 0.5, 0);
    CHECK_NEAR(h, 0.0, 0);
    /* A link slower than DRAM is the narrower path: link 5 B/s, a = 1000, cap 100:
     * t = max(150 / 100, 900 / 5) = 180. */
    m.up_bandwidth[1] = 5;
    CHECK_NEAR(kvp_step_time_bound(&m, 1000, &h), 180.0, 0);
}

static void test_bound_three_tiers(void)
{
    /* HBM holds 100 B (cap), weights 50 at 100 B/s; DRAM 40 B/s holding 300, CXL 16 B/s,
     * shared link 20 B/s up.  a = 1000: HBM serves 100 by T >= 1.5, the rest 900 must go up
     * the link: T >= 900 / 20 = 45, at which DRAM can serve min(300, 1800) and CXL
     * min(1e9, 720): 1020 >= 900.  T = 45. */
    kvp_cost_model m = three_tiers(1);
    m.kv_capacity[0] = 100;
    m.kv_capacity[1] = 300;
    double h;
    CHECK_NEAR(kvp_step_time_bound(&m, 1000, &h), 45.0, 1e-12);
    CHECK_NEAR(h, 100.0, 0);
    /* Two links (link 2: 8 B/s): by T the tiers serve 100 + min(300, 40T, 20T) + min(16T,
     * 8T); for T >= 15 DRAM is capped: 400 + 8T = 1000 at T = 75. */
    m = three_tiers(0);
    m.kv_capacity[0] = 100;
    m.kv_capacity[1] = 300;
    CHECK_NEAR(kvp_step_time_bound(&m, 1000, &h), 75.0, 1e-12);
    /* Never above the step time of a split within the capacities: 100 HBM, 300 DRAM,
     * 600 CXL takes max(150/100, 300/40, 300/20, 600/16, 600/8) = 75. */
    kvp_traffic t = {{100, 300, 600}, {0, 0, 0}};
    CHECK(kvp_step_time_bound(&m, 1000, &h) <= kvp_step_time(&m, &t));
}

/* The three-tier bound against a search over splits written apart from it: the time of a
 * split (x0, x1, x2) of a bytes within the capacities is the max of the model's terms, and the
 * least over a fine grid of x0, x1 (x2 the rest) can only be above the true least; the
 * bound must be at or below it, and within the grid's error of it. */
static double split_time(const kvp_cost_model *m, double x0, double x1, double x2)
{
    double t = (m->fixed_bytes[0] + x0) / m->bandwidth[0];
    t = fmax(t, x1 / m->bandwidth[1]);
    t = fmax(t, x2 / m->bandwidth[2]);
    if (m->link[2] == 1) {
        t = fmax(t, (x1 + x2) / m->up_bandwidth[1]);
    } else {
        t = fmax(t, x1 / m->up_bandwidth[1]);
        t = fmax(t, x2 / m->up_bandwidth[2]);
    }
    return t;
}

static void test_bound_by_search(void)
{
    rng_state = 77;
    for (int i = 0; i < 300; i++) {
        kvp_cost_model m = three_tiers((int)(rnd_bytes() > 2e6));
        m.fixed_bytes[0] = (double)((uint64_t)rnd_bytes() % 200);
        m.bandwidth[1] = 1 + (double)((uint64_t)rnd_bytes() % 60);
        m.bandwidth[2] = 1 + (double)((uint64_t)rnd_bytes() % 60);
        m.up_bandwidth[1] = 1 + (double)((uint64_t)rnd_bytes() % 60);
        m.up_bandwidth[2] = 1 + (double)((uint64_t)rnd_bytes() % 60);
        double a = 100 + (double)((uint64_t)rnd_bytes() % 900);
        m.kv_capacity[0] = (double)((uint64_t)rnd_bytes() % 400);
        m.kv_capacity[1] = (double)((uint64_t)rnd_bytes() % 600);
        m.kv_capacity[2] = a; /* the slowest holds anything: every a is feasible */
        const int G = 400;
        double best = HUGE_VAL;
        for (int u = 0; u <= G; u++) {
            double x0 = fmin(a, m.kv_capacity[0]) * u / G;
            for (int v = 0; v <= G; v++) {
                double x1 = fmin(a - x0, m.kv_capacity[1]) * v / G;
                best = fmin(best, split_time(&m, x0, x1, a - x0 - x1));
            }
        }
        double h, b = kvp_step_time_bound(&m, a, &h);
        /* the grid's step moves a term by at most a / G over the slowest bandwidth */
        double slack = 2 * a / G / fmin(fmin(m.bandwidth[1], m.bandwidth[2]),
                                         fmin(m.up_bandwidth[1], m.up_bandwidth[2]));
        if (!CHECK(b <= best * (1 + 1e-12) && b >= best - slack))
            printf("  case %d: bound %.17g, search %.17g (slack %g)\n", i, b, best, slack);
    }
}

static void test_model_of_scenario(void)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    kvp_derived d;
    kvp_error err = {0, ""};
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    kvp_cost_model m;
    kvp_cost_model_of(&m, &sc, &d);
    CHECK_EQ_U64(m.tiers, 2);
    CHECK_NEAR(m.bandwidth[0], sc.hbm_bandwidth, 0);
    CHECK_NEAR(m.bandwidth[1], sc.dram_bandwidth, 0);
    CHECK_NEAR(m.up_bandwidth[1], sc.link_bandwidth, 0);
    CHECK_NEAR(m.down_bandwidth[1], sc.link_bandwidth, 0);
    CHECK_NEAR(m.fixed_bytes[0], (double)sc.weight_bytes / sc.layers, 1e-15);
    CHECK_NEAR(m.fixed_bytes[1], 0, 0);
    CHECK_NEAR(m.kv_capacity[0], d.cap_layer, 0);
    CHECK(isinf(m.kv_capacity[1])); /* two tiers: DRAM takes what HBM does not */
    /* a third tier behind link 2 */
    CHECK_OK(kvp_param_assign(&sc, "tiers=3", &err), &err);
    CHECK_OK(kvp_param_assign(&sc, "tier2_capacity=32GB", &err), &err);
    CHECK_OK(kvp_param_assign(&sc, "tier2_bandwidth=60GB/s", &err), &err);
    CHECK_OK(kvp_param_assign(&sc, "link2_bandwidth=30GB/s", &err), &err);
    CHECK_OK(kvp_param_assign(&sc, "link2_down_bandwidth=20GB/s", &err), &err);
    CHECK_OK(kvp_scenario_derive(&sc, &d, &err), &err);
    kvp_cost_model_of(&m, &sc, &d);
    CHECK_EQ_U64(m.tiers, 3);
    CHECK_EQ_U64(m.link[2], 2);
    CHECK_EQ_U64(m.links, 2);
    CHECK_NEAR(m.kv_capacity[2], 1e9, 0); /* 32 GB over 32 layers */
    CHECK_NEAR(m.kv_capacity[1], (double)sc.dram_capacity / 32, 0);
    CHECK_NEAR(m.up_bandwidth[2], 30e9, 0);
    CHECK_NEAR(m.down_bandwidth[2], 20e9, 0);
    CHECK(isinf(m.up_bandwidth[3]));
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"busiest_wins", test_busiest_wins},
        {"traffic_of_tokens", test_traffic_of_tokens},
        {"three_tiers", test_three_tiers},
        {"two_tiers_identical", test_two_tiers_identical},
        {"bound", test_bound},
        {"bound_three_tiers", test_bound_three_tiers},
        {"bound_by_search", test_bound_by_search},
        {"model_of_scenario", test_model_of_scenario},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
