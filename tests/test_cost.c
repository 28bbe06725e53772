/*
 * The cost model of one step (src/engine/cost.c, docs/MODEL.md) on numbers worked by hand:
 * tiers of 100 B/s (HBM, with 50 B of weights read every step) and 10 B/s (DRAM), a link of
 * 20 B/s each way.  Every expected time is a quotient written out in the comment beside it,
 * chosen to be exact in binary so that the checks are bit for bit.
 */
#include "check.h"
#include "engine/cost.h"

static kvp_cost_model toy_model(void)
{
    kvp_cost_model m = {{100, 10}, {20}, {50, 0}, {1e9, HUGE_VAL}};
    return m;
}

static double time_of(double hr, double hw, double dr, double dw, double up, double down)
{
    kvp_cost_model m = toy_model();
    kvp_traffic t = {{hr, dr}, {hw, dw}, {up}, {down}};
    return kvp_step_time(&m, &t);
}

static void test_busiest_wins(void)
{
    /* HBM: (50 + 30 + 20) / 100 = 1; DRAM (5 + 3) / 10 = .8; up 10 / 20 = .5; down .2.
     * Reads and writes share the tier: max(30, 20) instead of the sum would give .8. */
    CHECK_NEAR(time_of(30, 20, 5, 3, 10, 4), 1.0, 0);
    /* DRAM: (12 + 8) / 10 = 2 over HBM 50 / 100 = .5, up 30 / 20 = 1.5, down 8 / 20 = .4;
     * the weights are HBM's alone (DRAM with them would be 7). */
    CHECK_NEAR(time_of(0, 0, 12, 8, 30, 8), 2.0, 0);
    /* Link up: 50 / 20 = 2.5 over DRAM 10 / 10 = 1, down 20 / 20 = 1, HBM .5.  The two
     * directions are apart: up + down would give 3.5. */
    CHECK_NEAR(time_of(0, 0, 10, 0, 50, 20), 2.5, 0);
    /* Link down: 70 / 20 = 3.5 over DRAM (0 + 30) / 10 = 3, up 0, HBM .5. */
    CHECK_NEAR(time_of(0, 0, 0, 30, 0, 70), 3.5, 0);
    /* No KV traffic: the weights alone, 50 / 100 = .5. */
    CHECK_NEAR(time_of(0, 0, 0, 0, 0, 0), 0.5, 0);
}

static void test_traffic_of_tokens(void)
{
    /* Tokens times tok_bytes, per tier and direction. */
    kvp_counters c = {0};
    c.hbm_read = 3;
    c.hbm_write = 1;
    c.dram_read = 2;
    c.dram_write = 5;
    c.link_up = 2;
    c.link_down = 6;
    kvp_traffic t;
    kvp_traffic_of(&t, &c, 4);
    CHECK_NEAR(t.read[0], 12, 0);
    CHECK_NEAR(t.write[0], 4, 0);
    CHECK_NEAR(t.read[1], 8, 0);
    CHECK_NEAR(t.write[1], 20, 0);
    CHECK_NEAR(t.up[0], 8, 0);
    CHECK_NEAR(t.down[0], 24, 0);
    /* HBM (50 + 16) / 100 = .66, DRAM 28 / 10 = 2.8, up .4, down 24 / 20 = 1.2. */
    kvp_cost_model m = toy_model();
    CHECK_NEAR(kvp_step_time(&m, &t), 2.8, 1e-15);
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
    m.link_bandwidth[0] = 5;
    CHECK_NEAR(kvp_step_time_bound(&m, 1000, &h), 180.0, 0);
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
    CHECK_NEAR(m.bandwidth[0], sc.hbm_bandwidth, 0);
    CHECK_NEAR(m.bandwidth[1], sc.dram_bandwidth, 0);
    CHECK_NEAR(m.link_bandwidth[0], sc.link_bandwidth, 0);
    CHECK_NEAR(m.fixed_bytes[0], (double)sc.weight_bytes / sc.layers, 1e-15);
    CHECK_NEAR(m.fixed_bytes[1], 0, 0);
    CHECK_NEAR(m.kv_capacity[0], d.cap_layer, 0);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"busiest_wins", test_busiest_wins},
        {"traffic_of_tokens", test_traffic_of_tokens},
        {"bound", test_bound},
        {"model_of_scenario", test_model_of_scenario},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
