/*
 * The cost model (docs/MODEL.md §3-§4) on cases worked out by hand, for unlimited, static and
 * bound, and for the engine's charging of promotions and demotions through a scripted policy.
 * Then properties on random scenarios.
 */
#include "support.h"
#include "policy/policy.h"

/* The toy machine (tests/support.h): weights 100 B, HBM 108 B -> kv_budget 8 B -> 4 token
 * slots (g = 1) or 2 slots of g = 2; link 50 B/s each way. */
static void toy(kvp_scenario *sc)
{
    toy_machine(sc, 100, 108, 50);
}

/* N = 3 steps, C = 6 positions -> P = 4.  Reads: step 0 {0,2,3}, step 1 {1,4}, step 2 {0,5};
 * position 5 is also marked at step 0, where it does not exist yet: it must be ignored. */
static kvp_trace *toy_trace(void)
{
    static const int marks[3][8] = {{0, 2, 3, 5, -1}, {1, 4, -1}, {0, 5, -1}};
    return marks_trace(3, 6, marks);
}

static void test_static(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = toy_trace();
    kvp_result r = run_one(&sc, t, "static", 1);
    /* Slots 4: the 4 prompt tokens fill HBM; new tokens 4, 5, 6 go to DRAM.
     * step 0: HBM reads 0,2,3 (6 B); new token to DRAM (2 B write, 2 B down).
     *   max((100+6)/1000, 2/100, 0, 2/50) = 0.106
     * step 1: HBM read 1 (2 B), DRAM read 4 (2 B, 2 B up); new token 5 to DRAM.
     *   max((100+2)/1000, 4/100, 2/50, 2/50) = 0.102
     * step 2: HBM read 0, DRAM read 5, new token 6 to DRAM: 0.102.  T = 0.31. */
    CHECK_EQ_U64(r.slots, 4);
    CHECK_NEAR(r.total_time_s, 0.106 + 0.102 + 0.102, 1e-12);
    CHECK_NEAR(r.throughput_tok_s, 3 / 0.31, 1e-12);
    CHECK_EQ_U64(r.kv_read_hbm, 10);
    CHECK_EQ_U64(r.kv_read_dram, 4);
    CHECK_EQ_U64(r.hbm_read, 10);
    CHECK_EQ_U64(r.hbm_write, 0);
    CHECK_EQ_U64(r.dram_read, 4);
    CHECK_EQ_U64(r.dram_write, 6);
    CHECK_EQ_U64(r.link_up, 4);
    CHECK_EQ_U64(r.link_down, 6);
    CHECK_EQ_U64(r.weight_read, 300);
    CHECK_EQ_U64(r.promoted_bytes, 0);
    CHECK_NEAR(r.hbm_hit_rate_kv, 10.0 / 14.0, 1e-15);
    CHECK_NEAR(r.hbm_hit_rate_all, 310.0 / 314.0, 1e-15);
    kvp_trace_free(t);
}

static void test_unlimited(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = toy_trace();
    kvp_result r = run_one(&sc, t, "unlimited", 1);
    /* Every read and every new token in HBM:
     * step 0: (100 + 6 read + 2 write)/1000 = 0.108; steps 1, 2: (100 + 4 + 2)/1000 = 0.106.
     * Slower than static here: the new tokens' writes land on the HBM, which the weights
     * already keep busiest (a reference, not a bound). */
    CHECK_NEAR(r.total_time_s, 0.108 + 0.106 + 0.106, 1e-12);
    CHECK_EQ_U64(r.kv_read_hbm, 14);
    CHECK_EQ_U64(r.kv_read_dram, 0);
    CHECK_EQ_U64(r.hbm_write, 6);
    CHECK_EQ_U64(r.dram_write + r.dram_read + r.link_up + r.link_down, 0);
    CHECK_NEAR(r.hbm_hit_rate_kv, 1.0, 0);
    kvp_trace_free(t);
}

static void test_bound(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = toy_trace();
    kvp_result r = run_one(&sc, t, "bound", 1);
    /* cap = 8 B, w = 100 B, B_hbm = 1000, B_off = min(100, 50) = 50.
     * step 0: a = 6 B.  (100 + h)/1000 = (6 - h)/50 at h = (6000 - 5000)/1050 = 20/21,
     *   inside [0, 6]: t = (100 + 20/21)/1000 = 2120/21000.
     * steps 1, 2: a = 4 B: h = (4000 - 5000)/1050 < 0 -> h = 0: max(0.1, 4/50) = 0.1. */
    CHECK_NEAR(r.total_time_s, 2120.0 / 21000.0 + 0.2, 1e-12);
    CHECK_NEAR(r.hbm_hit_rate_kv, (20.0 / 21.0) / 14.0, 1e-12);
    kvp_result s = run_one(&sc, t, "static", 1);
    CHECK(s.total_time_s >= r.total_time_s);
    kvp_trace_free(t);
}

/* A policy that follows a script, to test the engine's charging (g = 2, 2 slots). */
static uint32_t two_tokens(const double *param, const kvp_scenario *sc)
{
    (void)param;
    (void)sc;
    return 2;
}

static int script_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *e)
{
    (void)li;
    (void)first;
    (void)e;
    *state = NULL;
    resident[0] = 1;
    return 0;
}

static int script_step(void *state, kvp_step *s, kvp_error *e)
{
    (void)state;
    (void)e;
    int rc = 0;
    if (s->n == 0)
        rc |= kvp_step_promote(s, 1);
    if (s->n == 1) {
        rc |= kvp_step_demote(s, 0);
        rc |= kvp_step_promote(s, 2);
    }
    if (s->n == 2) {
        rc |= kvp_step_promote(s, 0);
        rc |= kvp_step_demote(s, 1);
    }
    return rc ? KVP_ECHECK : 0;
}

static const kvp_policy_ops script_ops = {
    .name = "script", .block_tokens = two_tokens, .init = script_init, .step = script_step};

static void test_charging(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = toy_trace();
    kvp_policy_spec ps = {&script_ops, {0}, NULL};
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.check = 1;
    kvp_result r;
    CHECK_OK(kvp_run(&sc, t, &ps, &ro, &r, &err), &err);
    /* Blocks of 2: b0 {0,1}, b1 {2,3}, b2 {4,5}, b3 {6}.  Slots floor(8/(1*2*2)) = 2.
     * step 0 (ctx 4), resident {b0}: reads 0 (b0 HBM), 2,3 (b1 DRAM: 2 tok read, 2 up).
     *   promote b1: pres 2, a 2 -> no extra DRAM read, 2 tok HBM write, promoted 2.
     *   new token 4 opens b2, left in DRAM: 1 tok DRAM write + down.
     *   bytes: hbm r2 w4 = 6, dram r4 w2 = 6, up 4, down 2 -> max(.106, .06, .08, .04) = .106
     * step 1 (ctx 5), resident {b0,b1}: reads 1 (b0 HBM), 4 (b2 DRAM, pres 1).
     *   demote b0: pres 2, a 1 -> 1 tok HBM read, 2 down, 2 DRAM write, demoted 2.
     *   promote b2: pres 1, a 1 -> 1 tok HBM write, promoted 1.
     *   new token 5 in b2 (resident): 1 tok HBM write.
     *   tokens: hbm r 2 w 2, dram r 1 w 2, up 1, down 2 -> bytes hbm 8, dram 6, up 2, down 4
     *   -> max(.108, .06, .04, .08) = .108
     * step 2 (ctx 6), resident {b1,b2}: reads 0 (b0 DRAM), 5 (b2 HBM).
     *   promote b0: pres 2, a 1 -> 1 tok DRAM read + up, 2 HBM write, promoted 2.
     *   demote b1: pres 2, a 0 -> 2 tok HBM read, 2 down, 2 DRAM write, demoted 2.
     *   new token 6 opens b3, DRAM: 1 write + down.
     *   tokens: hbm r 3 w 2, dram r 2 w 3, up 2, down 3 -> bytes 10, 10, 4, 6
     *   -> max(.110, .1, .08, .12) = .12
     * T = .334; promoted 5 tok = 10 B, demoted 4 tok = 8 B. */
    CHECK_NEAR(r.total_time_s, 0.106 + 0.108 + 0.12, 1e-12);
    CHECK_EQ_U64(r.promoted_bytes, 10);
    CHECK_EQ_U64(r.demoted_bytes, 8);
    CHECK_EQ_U64(r.kv_read_hbm, 6);
    CHECK_EQ_U64(r.kv_read_dram, 8);
    CHECK_EQ_U64(r.hbm_read, 12);
    CHECK_EQ_U64(r.hbm_write, 12);
    CHECK_EQ_U64(r.dram_read, 10);
    CHECK_EQ_U64(r.dram_write, 12);
    CHECK_EQ_U64(r.link_up, 10);
    CHECK_EQ_U64(r.link_down, 12);
    CHECK_EQ_U64(r.block_tokens, 2);
    CHECK_EQ_U64(r.slots, 2);
    kvp_trace_free(t);
}

/* A policy that overfills HBM must be caught, not charged. */
static int greedy_step(void *state, kvp_step *s, kvp_error *e)
{
    (void)state;
    (void)e;
    return s->opens_block ? kvp_step_promote(s, s->new_block) : 0;
}

static int greedy_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *e)
{
    (void)first;
    (void)e;
    *state = NULL;
    kvp_initial_default(li, resident);
    return 0;
}

static const kvp_policy_ops greedy_ops = {
    .name = "greedy", .block_tokens = two_tokens, .init = greedy_init, .step = greedy_step};

static void test_overfill_caught(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = toy_trace();
    kvp_policy_spec ps = {&greedy_ops, {0}, NULL};
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    kvp_result r;
    /* Prompt fills both slots (b0, b1); step 0 opens b2 and promotes it: 3 > 2. */
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &r, &err), KVP_ECHECK, &err, "slots 2");
    kvp_trace_free(t);
}

static void test_errors(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = toy_trace();
    kvp_policy_spec ps;
    kvp_run_options ro;
    kvp_result r;
    kvp_run_options_default(&ro);
    CHECK_OK(kvp_param_assign(&sc, "layers=2", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps, "static", &err), &err);
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &r, &err), KVP_ESHAPE, &err, "has 1 layers");
    CHECK_FAILS(kvp_policy_parse(&ps, "nosuch", &err), KVP_EINVAL, &err, "unknown policy");
    CHECK_FAILS(kvp_policy_parse(&ps, "static:W=3", &err), KVP_EINVAL, &err,
                "no parameter \"W\"");
    float bad[2 * 3] = {1, 2, 3, 1, NAN, 3};
    kvp_trace *tb = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&tb, bad, 2, 1, 3, 0, "nan", &err), &err);
    toy(&sc);
    CHECK_FAILS(kvp_run(&sc, tb, &ps, &ro, &r, &err), KVP_EFORMAT, &err, "NaN");
    kvp_trace_free(tb);
    kvp_trace_free(t);
}

/* Residency kept as a prefix [0, nresident) lets the engine count a step's hits by a binary
 * search (static, unlimited); a move out of that shape must end it.  P = 4, slots 4; reads
 * step 0 {0,1}, step 1 {2,3}, step 2 {0,2,3}: 7 reads of 2 B. */
static kvp_trace *prefix_trace(void)
{
    static const int marks[3][8] = {{0, 1, -1}, {2, 3, -1}, {0, 2, 3, -1}};
    return marks_trace(3, 6, marks);
}

/* The case is param[0]: 0 keeps a prefix, 1 breaks it by a demotion, 2 by a promotion. */
static int prefix_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *e)
{
    (void)first;
    (void)e;
    *state = NULL;
    const int c = (int)li->param[0];
    resident[0] = 1;
    resident[1] = c != 2;
    resident[2] = c == 1;
    return 0;
}

static int prefix_step(void *state, kvp_step *s, kvp_error *e)
{
    (void)state;
    (void)e;
    const int c = (int)s->li->param[0];
    int rc = 0;
    if (c == 0) /* {0,1} -> {0,1,2} -> {0,1,2,3} -> {0,1,2} */
        rc = s->n == 2 ? kvp_step_demote(s, 3) : kvp_step_promote(s, s->n + 2);
    else if (c == 1 && s->n == 0) /* {0,1,2} -> {1,2} */
        rc = kvp_step_demote(s, 0);
    else if (c == 2 && s->n == 0) /* {0} -> {0,2} */
        rc = kvp_step_promote(s, 2);
    return rc;
}

static const kvp_policy_ops prefix_ops = {
    .name = "prefix", .init = prefix_init, .step = prefix_step};

static void test_prefix_hits(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = prefix_trace();
    /* Hits by hand: case 0: 2 ({0,1} in {0,1}), 1 (2 in {0,1,2}), 3 (all in {0,1,2,3}) = 6;
     * case 1: 2, 1 (2 in {1,2}), 1 (2) = 4 (as a prefix of 2 blocks: 2, 0, 1 = 3);
     * case 2: 1 (0 in {0}), 1 (2 in {0,2}), 2 (0, 2) = 4 (as a prefix of 2: 1, 0, 1 = 2). */
    static const uint64_t hits[3] = {6, 4, 4};
    for (int c = 0; c < 3; c++) {
        kvp_policy_spec ps = {&prefix_ops, {c}, NULL};
        kvp_run_options ro;
        kvp_run_options_default(&ro);
        kvp_result r;
        CHECK_OK(kvp_run(&sc, t, &ps, &ro, &r, &err), &err);
        CHECK_EQ_U64(r.kv_read_hbm, 2 * hits[c]);
        CHECK_EQ_U64(r.kv_read_dram, 2 * (7 - hits[c]));
    }
    kvp_trace_free(t);
}

/* KVP_CAP_SERVES: a policy that counts its reads' hits and marks its reads itself must give
 * the engine's own result; a wrong count or mark is caught in checking mode, and a count
 * not given at all always.  The policy promotes the new block at step 0 (its mark is allowed
 * on the new block, which holds no token yet), then a read block while demoting an unread
 * one: {0,1} -> {0,1,4} -> {1,2,4} -> {0,2,4}.  param[0]: 0 right, 1 one hit too few,
 * 2 no count, 3 block 0 marked at step 1 (not read then, and demoted), 4 block 2 moved three
 * times at step 1 (in, out, in: one promotion, which the engine, charging a served policy's
 * moves as made, would count as three; checking mode finds it). */
typedef struct served_state {
    uint64_t *mark; /* the read bits */
    uint32_t nwords;
} served_state;

static int served_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *e)
{
    (void)first;
    (void)e;
    served_state *st = malloc(sizeof *st);
    REQUIRE(st != NULL);
    st->nwords = (li->nblocks + 63) / 64;
    st->mark = calloc(st->nwords, sizeof *st->mark);
    REQUIRE(st->mark != NULL);
    resident[0] = resident[1] = 1;
    *state = st;
    return 0;
}

static int served_step(void *state, kvp_step *s, kvp_error *e)
{
    (void)e;
    served_state *st = state;
    const int c = (int)s->li->param[0];
    uint64_t hits = 0;
    memset(st->mark, 0, st->nwords * sizeof *st->mark);
    for (uint32_t i = 0; i < s->nread; i++) {
        hits += s->resident[s->read_block[i]];
        st->mark[s->read_block[i] / 64] |= 1ull << s->read_block[i] % 64;
    }
    st->mark[s->new_block / 64] |= 1ull << s->new_block % 64;
    if (c == 3 && s->n == 1)
        st->mark[0] |= 1;
    if (c != 2)
        s->hbm_reads = hits - (c == 1 && hits > 0);
    s->read_bits = st->mark;
    int rc = 0;
    if (s->n == 0)
        rc = kvp_step_promote(s, s->new_block);
    if (s->n == 1)
        rc = kvp_step_demote(s, 0) | kvp_step_promote(s, 2);
    if (s->n == 1 && c == 4)
        rc |= kvp_step_demote(s, 2) | kvp_step_promote(s, 2);
    if (s->n == 2)
        rc = kvp_step_demote(s, 1) | kvp_step_promote(s, 0);
    return rc;
}

static void served_free(void *state)
{
    served_state *st = state;
    free(st->mark);
    free(st);
}

static const kvp_policy_ops served_ops = {.name = "served", .caps = KVP_CAP_SERVES,
                                          .init = served_init, .step = served_step,
                                          .free = served_free};
static const kvp_policy_ops unserved_ops = {.name = "served", .init = served_init,
                                            .step = served_step, .free = served_free};

static void test_served(void)
{
    kvp_scenario sc;
    toy(&sc);
    kvp_trace *t = prefix_trace();
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    kvp_result a, b;
    kvp_policy_spec ps = {&served_ops, {0}, NULL}, ref = {&unserved_ops, {0}, NULL};
    for (int check = 0; check < 2; check++) {
        ro.check = check;
        CHECK_OK(kvp_run(&sc, t, &ps, &ro, &a, &err), &err);
        CHECK_OK(kvp_run(&sc, t, &ref, &ro, &b, &err), &err);
        CHECK_NEAR(a.total_time_s, b.total_time_s, 0);
        CHECK_EQ_U64(a.kv_read_hbm, b.kv_read_hbm);
        CHECK_EQ_U64(a.kv_read_dram, b.kv_read_dram);
        CHECK_EQ_U64(a.hbm_read, b.hbm_read);
        CHECK_EQ_U64(a.dram_read, b.dram_read);
        CHECK_EQ_U64(a.hbm_write, b.hbm_write);
        CHECK_EQ_U64(a.dram_write, b.dram_write);
        CHECK_EQ_U64(a.promoted_bytes, b.promoted_bytes);
        CHECK_EQ_U64(a.demoted_bytes, b.demoted_bytes);
    }
    /* By hand: hits 2, 0 ({2,3} against {0,1,4}), 1 (2 in {1,2,4}): 3 of 7.  Moves: block 4
     * (no token yet), then 2 (read: 1 B up) and 0 (unread: 1 read of HBM, down), then 0
     * (read) and 1 (unread): promoted 2 tokens, demoted 2. */
    CHECK_EQ_U64(a.kv_read_hbm, 6);
    CHECK_EQ_U64(a.promoted_bytes, 4);
    CHECK_EQ_U64(a.demoted_bytes, 4);
    CHECK_EQ_U64(a.dram_read, 8);
    ro.check = 1;
    ps.value[0] = 1;
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &a, &err), KVP_ECHECK, &err, "reads from HBM");
    ps.value[0] = 3;
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &a, &err), KVP_ECHECK, &err, "read marks");
    ps.value[0] = 4;
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &a, &err), KVP_ECHECK, &err, "twice");
    ro.check = 0;
    ps.value[0] = 2;
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &a, &err), KVP_ECHECK, &err, "reads from HBM");
    kvp_trace_free(t);
}

/* Random small scenarios: static and every capacity-limited policy at or above the bound,
 * identical results with 1 and 2 threads and across runs. */
static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static void test_properties(void)
{
    const uint64_t seed = check_seed;
    rng_state = seed;
    printf("properties: seed %llu\n", (unsigned long long)seed);
    size_t npol;
    const kvp_policy_ops *const *pol = kvp_policies(&npol);
    for (int iter = 0; iter < 30; iter++) {
        uint32_t L = 1 + rnd(3), N = 1 + rnd(12), P = 1 + rnd(40), C = P + N - 1;
        float *data = malloc((size_t)N * L * C * sizeof *data);
        for (size_t i = 0; i < (size_t)N * L * C; i++)
            data[i] = (float)rnd(8); /* many ties */
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "random", &err), &err);
        free(data);
        kvp_scenario sc;
        toy(&sc);
        char buf[64];
        snprintf(buf, sizeof buf, "layers=%u", L);
        kvp_param_assign(&sc, buf, &err);
        snprintf(buf, sizeof buf, "hbm_capacity=%u", 100 + 2 * rnd(3 * P) * L);
        kvp_param_assign(&sc, buf, &err);
        snprintf(buf, sizeof buf, "sparsity=%g", rnd(10) / 10.0);
        kvp_param_assign(&sc, buf, &err);
        snprintf(buf, sizeof buf, "page_tokens=%u", 1 + rnd(4));
        kvp_param_assign(&sc, buf, &err);
        kvp_result b = run_one(&sc, t, "bound", 1);
        /* All policies in one pass give the same results as one run each. */
        kvp_policy_spec all[16];
        kvp_result many[16];
        int nall = kvp_policy_parse_list(all, 16, "all", &err);
        /* every policy but those for small cases only (optimal, tests/test_optimal.c) */
        CHECK_EQ_INT(nall, (int)npol - 1);
        kvp_run_options ro;
        kvp_run_options_default(&ro);
        ro.check = 1;
        CHECK_OK(kvp_run_many(&sc, t, all, (size_t)nall, &ro, many, &err), &err);
        for (size_t i = 0; i < (size_t)nall; i++) {
            kvp_result one = run_one(&sc, t, kvp_policy_name(all[i].ops), 2);
            if (!CHECK(memcmp(&one, &many[i], sizeof one) == 0))
                fprintf(stderr, "    %s: run_many differs from run (seed %llu iter %d)\n",
                        kvp_policy_name(all[i].ops), (unsigned long long)seed, iter);
        }
        for (size_t i = 0; i < npol; i++) {
            if (pol[i]->caps & KVP_CAP_SMALL_ONLY)
                continue; /* its own tests: tests/test_optimal.c */
            kvp_result r1 = run_one(&sc, t, pol[i]->name, 1);
            kvp_result r2 = run_one(&sc, t, pol[i]->name, 2);
            CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
            if (!(pol[i]->caps & KVP_CAP_UNLIMITED) && !check_report_(r1.total_time_s >= b.total_time_s *
                                                     (1 - 1e-12), __FILE__, __LINE__,
                                                     "policy at or above the bound"))
                fprintf(stderr, "    %s: %.17g < %.17g (seed %llu iter %d)\n", pol[i]->name,
                        r1.total_time_s, b.total_time_s, (unsigned long long)seed, iter);
        }
        kvp_trace_free(t);
    }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"static", test_static},     {"unlimited", test_unlimited},
        {"bound", test_bound},       {"charging", test_charging},
        {"overfill_caught", test_overfill_caught}, {"errors", test_errors},
        {"prefix_hits", test_prefix_hits}, {"served", test_served},
        {"properties", test_properties},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
