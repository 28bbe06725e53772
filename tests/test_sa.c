/*
 * The sa search (src/policy/sa.c) on random small scenarios: its result is lookahead's at the
 * (W, R) it names, bit for bit; it is no worse than any point it evaluated; every proposal is
 * one of the study's moves inside the box; the temperature falls by 0.9 a level; the budget
 * holds; the same seed gives the same search with 1 or 2 threads, and through the grid
 * (points computed ahead) as point by point; its path is the one the documented draws give.
 */
#include "support.h"

#include <math.h>
#include <stdio.h>

typedef struct events {
    kvp_sa_event ev[4096];
    size_t n;
} events;

static void keep(void *user, const kvp_sa_event *ev)
{
    events *e = user;
    if (e->n < sizeof e->ev / sizeof *e->ev)
        e->ev[e->n++] = *ev;
}

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

/* One layer or two, tok_bytes 2, weights 100 B, a few slots, DRAM and link slower than HBM:
 * placement matters, so the (W, R) landscape is not flat. */
static void scenario(kvp_scenario *sc, uint32_t L, uint32_t P)
{
    char buf[64];
    kvp_scenario_default(sc);
    const char *set[] = {"kv_heads=1",        "head_dim=1",         "dtype_bytes=1",
                         "batch=1",           "weight_bytes=100",   "hbm_bandwidth=1000",
                         "dram_bandwidth=30", "link_bandwidth=60",  "sparsity=0.5"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        CHECK_OK(kvp_param_assign(sc, set[i], &err), &err);
    snprintf(buf, sizeof buf, "layers=%u", L);
    CHECK_OK(kvp_param_assign(sc, buf, &err), &err);
    snprintf(buf, sizeof buf, "hbm_capacity=%u", 100 + 2 * L * (2 + rnd(P / 2 + 1)));
    CHECK_OK(kvp_param_assign(sc, buf, &err), &err);
}

/* One run, in checking mode if `check` (each point the engine's own run, one at a time) or
 * not (points through the lookahead grid, with R neighbours computed ahead), keeping the sa
 * search's events in *log if log is not NULL. */
static kvp_result run_mode(const kvp_scenario *sc, const kvp_trace *t, const char *spec,
                           unsigned threads, int check, events *log)
{
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    ro.check = check;
    if (log) {
        log->n = 0;
        ro.sa_log = keep;
        ro.sa_log_user = log;
    }
    return run_with(sc, t, spec, &ro);
}

static kvp_result run_spec(const kvp_scenario *sc, const kvp_trace *t, const char *spec,
                           unsigned threads, events *log)
{
    return run_mode(sc, t, spec, threads, 1, log);
}

static events log_a, log_b;

/* The search's draws as docs/POLICIES.md gives them, written again here: splitmix64 from the
 * seed; a proposal draws u, then W's step (u < 0.4 or u >= 0.8) and R's (u >= 0.4), again
 * while it leaves [1, W_max] x [0, 10]; each move of levels 1.. draws its acceptance's u. */
static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double sm_uniform(uint64_t *s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

static void ref_propose(uint64_t *s, uint32_t wmax, long w, long r, long *nw, long *nr)
{
    static const int dw[] = {-2, -1, 1, 2};
    for (;;) {
        const double u = sm_uniform(s);
        long cw = w, cr = r;
        if (u < 0.4 || u >= 0.8)
            cw += dw[sm64(s) % 4];
        if (u >= 0.4)
            cr += sm64(s) % 2 ? 1 : -1;
        if (cw >= 1 && cw <= (long)wmax && cr >= 0 && cr <= 10) {
            *nw = cw;
            *nr = cr;
            return;
        }
    }
}

/* The log replayed against those draws: every proposal where the draws put it, from the
 * start in level 0 and from the chain's point after; every acceptance the Metropolis rule's
 * at the logged times and temperature.  The search's own code (what it runs ahead, in which
 * pass) cannot change its path without failing here. */
static void replay(const events *log, uint32_t wmax, uint32_t w0, uint32_t r0, uint32_t moves,
                   uint64_t seed)
{
    uint64_t s = seed;
    long w = w0, r = r0;
    REQUIRE(log->n >= 1);
    CHECK(log->ev[0].level == 0 && log->ev[0].W == w0 && lround(log->ev[0].R * 10) == r0);
    double tcur = log->ev[0].time_s;
    int same = 1;
    for (size_t i = 1; i < log->n && same; i++) {
        const kvp_sa_event *e = &log->ev[i];
        long nw, nr;
        if (e->level == 0 && i > moves)
            same = 0;
        /* Level 0 cut short by the budget: its last sample was drawn, found unknown with
         * the budget spent, and not logged; the chain goes on among the points it has. */
        if (e->level == 1 && e->move == 1 && i <= moves)
            ref_propose(&s, wmax, w, r, &nw, &nr);
        ref_propose(&s, wmax, w, r, &nw, &nr);
        same &= e->W == (uint32_t)nw && lround(e->R * 10) == nr;
        if (e->level == 0)
            continue;
        const double u = sm_uniform(&s);
        const int accept = e->time_s <= tcur || u < exp(-(e->time_s - tcur) / e->temperature);
        same &= e->accepted == accept;
        if (accept) {
            w = nw;
            r = nr;
            tcur = e->time_s;
        }
    }
    CHECK(same);
}

static void one_case(uint64_t seed, int iter)
{
    uint32_t L = 1 + rnd(2), N = 6 + rnd(20), P = 10 + rnd(40), C = P + N - 1;
    float *data = malloc((size_t)N * L * C * sizeof *data);
    for (size_t i = 0; i < (size_t)N * L * C; i++)
        data[i] = (float)rnd(1000);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "random", &err), &err);
    free(data);
    kvp_scenario sc;
    scenario(&sc, L, P);
    uint32_t wmax = 2 + rnd(12), budget = 3 + rnd(20), moves = 2 + rnd(5);
    const uint32_t w0 = 1 + rnd(wmax), r0 = rnd(10), sseed = rnd(1000);
    char spec[128];
    snprintf(spec, sizeof spec, "sa:W_max=%u:W0=%u:R0=0.%u:moves=%u:budget=%u:seed=%u", wmax,
             w0, r0, moves, budget, sseed);

    kvp_result sa1 = run_spec(&sc, t, spec, 1, &log_a);
    kvp_result sa2 = run_spec(&sc, t, spec, 2, &log_b);
    /* The same search whatever the thread count. */
    CHECK(memcmp(&sa1, &sa2, sizeof sa1) == 0);
    CHECK_EQ_U64(log_a.n, log_b.n);
    CHECK(memcmp(log_a.ev, log_b.ev, log_a.n * sizeof *log_a.ev) == 0);
    CHECK_STR(sa1.policy, "sa");
    /* The grid's path computes points ahead of the search; they count, and show in the log,
     * only when reached: the same search, event for event, as point-by-point engine runs. */
    kvp_result sa3 = run_mode(&sc, t, spec, 1, 0, &log_b);
    CHECK(memcmp(&sa1, &sa3, sizeof sa1) == 0);
    CHECK_EQ_U64(log_a.n, log_b.n);
    CHECK(memcmp(log_a.ev, log_b.ev, log_a.n * sizeof *log_a.ev) == 0);
    /* and the path the documented draws give */
    replay(&log_b, wmax, w0, r0, moves, sseed);

    /* The result is lookahead's at the point it names, counter for counter. */
    kvp_result la = run_spec(&sc, t, sa1.params, 2, NULL);
    CHECK_STR(la.policy, "lookahead");
    CHECK_EQ_U64(sa1.total_time_s == la.total_time_s, 1);
    CHECK_EQ_U64(sa1.kv_read_hbm, la.kv_read_hbm);
    CHECK_EQ_U64(sa1.kv_read_dram, la.kv_read_dram);
    CHECK_EQ_U64(sa1.hbm_read, la.hbm_read);
    CHECK_EQ_U64(sa1.hbm_write, la.hbm_write);
    CHECK_EQ_U64(sa1.dram_read, la.dram_read);
    CHECK_EQ_U64(sa1.dram_write, la.dram_write);
    CHECK_EQ_U64(sa1.promoted_bytes, la.promoted_bytes);
    CHECK_EQ_U64(sa1.demoted_bytes, la.demoted_bytes);

    /* No worse than any point it evaluated; the budget holds; best never rises. */
    CHECK(log_a.n >= 1);
    CHECK(sa1.sa_evaluations >= 1 && sa1.sa_evaluations <= budget);
    double best = INFINITY;
    uint32_t cw = log_a.ev[0].W;
    double cr = log_a.ev[0].R;
    double level_temp = 0;
    for (size_t i = 0; i < log_a.n; i++) {
        const kvp_sa_event *e = &log_a.ev[i];
        if (!check_report_(sa1.total_time_s <= e->time_s, __FILE__, __LINE__,
                           "sa no worse than a point it evaluated"))
            fprintf(stderr, "    seed %llu iter %d: %.17g > %.17g at W=%u R=%g\n",
                    (unsigned long long)seed, iter, sa1.total_time_s, e->time_s, e->W, e->R);
        CHECK(e->best_time_s <= best);
        best = fmin(best, e->time_s);
        CHECK(e->best_time_s == best);
        CHECK(e->evaluations <= budget);
        CHECK(e->W >= 1 && e->W <= wmax && e->R >= 0 && e->R <= 1);
        /* R on the 0.1 grid */
        CHECK(fabs(e->R * 10 - round(e->R * 10)) < 1e-9);
        if (i == 0)
            continue;
        /* A move: W by 1 or 2, R by 0.1, or both, from the point the chain is at (the start
         * for level 0's samples). */
        int dw = abs((int)e->W - (int)cw);
        long dr = lround(fabs(e->R - cr) * 10);
        int w_moved = dw == 1 || dw == 2, r_moved = dr == 1;
        if (!check_report_((w_moved || dw == 0) && (r_moved || dr == 0) &&
                               (w_moved || r_moved),
                           __FILE__, __LINE__, "every proposal is one of the moves"))
            fprintf(stderr, "    seed %llu iter %d: (%u, %g) -> (%u, %g)\n",
                    (unsigned long long)seed, iter, cw, cr, e->W, e->R);
        if (e->level == 0) {
            CHECK(!e->accepted);
            continue;
        }
        /* Geometric cooling: each level's temperature is 0.9 of the one before. */
        if (e->move == 1 && level_temp > 0)
            CHECK_NEAR(e->temperature, level_temp * 0.9, 1e-15);
        if (e->move == 1)
            level_temp = e->temperature;
        CHECK(e->temperature > 0);
        /* Downhill or level moves are always accepted (Metropolis). */
        if (e->accepted) {
            cw = e->W;
            cr = e->R;
        }
    }
    kvp_trace_free(t);
}

/* A move that would leave the box is drawn again, never clamped: W_max = 1 and R0 = 1 leave
 * only R moves downwards. */
static void test_box_edges(void)
{
    float data[4 * 1 * 13];
    for (size_t i = 0; i < sizeof data / sizeof *data; i++)
        data[i] = (float)((i * 7) % 11);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, data, 4, 1, 13, 0, "edges", &err), &err);
    kvp_scenario sc;
    rng_state = 3;
    scenario(&sc, 1, 10);
    kvp_result r = run_spec(&sc, t, "sa:W_max=1:W0=1:R0=1:moves=4:budget=11", 1, &log_a);
    for (size_t i = 0; i < log_a.n; i++)
        CHECK(log_a.ev[i].W == 1 && log_a.ev[i].R <= 1.0);
    CHECK(r.sa_evaluations <= 11);
    kvp_trace_free(t);
    kvp_policy_spec ps;
    CHECK_FAILS(kvp_policy_parse(&ps, "sa:R0=1.5", &err), KVP_EINVAL, &err, "R0");
    CHECK_FAILS(kvp_policy_parse(&ps, "sa:W_max=0", &err), KVP_EINVAL, &err, "W_max");
}

static void test_properties(void)
{
    printf("sa properties: seed %llu\n", (unsigned long long)check_seed);
    rng_state = check_seed;
    for (int i = 0; i < 40; i++)
        one_case(check_seed, i);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"properties", test_properties},
        {"box_edges", test_box_edges},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
