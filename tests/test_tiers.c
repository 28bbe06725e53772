/*
 * Tiers beyond two (docs/MODEL.md "Tiers beyond two"): the engine's charges on three-tier
 * cases worked by hand, a third tier of no capacity changing nothing, `bound` at or below
 * every policy with three and four tiers, `lpbound` and `plan` on K tiers against GLPK's
 * K-tier optimum (docs/BOUNDS.md "lpbound and plan with more than two tiers"), and the inputs
 * refused.
 */
#include "check.h"
#include "kvplace.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kvp_error err;

static void set(kvp_scenario *sc, const char *assignment)
{
    CHECK_OK(kvp_param_assign(sc, assignment, &err), &err);
}

static void setu(kvp_scenario *sc, const char *name, unsigned long long v)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s=%llu", name, v);
    set(sc, buf);
}

/* One layer, tok_bytes 2 B, 10 B of weights, HBM 1000 B/s with 2 slots (14 B); host DRAM
 * (tier 1) 1 slot (2 B) at 100 B/s behind link 1 (100 B/s); a CXL tier 2 of 50000 slots at
 * 50 B/s behind link 2 (20 B/s) or, shared, behind link 1 (then 20 B/s). */
static void machine(kvp_scenario *sc, int shared)
{
    kvp_scenario_default(sc);
    const char *s[] = {"layers=1", "kv_heads=1", "head_dim=1", "dtype_bytes=1", "batch=1",
                       "weight_bytes=10", "reserve=0", "hbm_capacity=14",
                       "hbm_bandwidth=1000", "sparsity=0", "tiers=3", "dram_capacity=2",
                       "dram_bandwidth=100", "link_bandwidth=100", "tier2_capacity=100000",
                       "tier2_bandwidth=50", "link2_bandwidth=20"};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
        set(sc, s[i]);
    if (shared) {
        set(sc, "tier2_link=1");
        set(sc, "link1_bandwidth=20");
    }
}

/* A bool trace of one layer: marks[n] lists the positions read at step n, ended by -1. */
static kvp_trace *marks(uint32_t N, uint32_t C, const int m[][5])
{
    float *data = calloc((size_t)N * C, sizeof *data);
    for (uint32_t n = 0; n < N; n++)
        for (int i = 0; m[n][i] >= 0; i++)
            data[(size_t)n * C + (uint32_t)m[n][i]] = 1;
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, 1, C, 1, "marks", &err), &err);
    free(data);
    return t;
}

static int run(const kvp_scenario *sc, const kvp_trace *t, const char *policy, kvp_result *r)
{
    kvp_policy_spec ps;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.check = 1;
    ro.threads = 1;
    memset(r, 0, sizeof *r);
    if (kvp_policy_parse(&ps, policy, &err) < 0)
        return -1;
    int rc = kvp_run(sc, t, &ps, &ro, r, &err);
    return rc;
}

static void test_static_fills_in_order(void)
{
    /* P = 4, one step reading 0..3.  static: blocks 0, 1 in HBM (2 slots), 2 in DRAM (1
     * slot), 3 in CXL; the new token 4 finds HBM and DRAM full: CXL.  Reads 2 tokens from HBM
     * (4 B), 1 from each other tier (2 B); CXL writes the new token (2 B).  Link 2: up 2 B,
     * down 2 B at 20 B/s = .1; DRAM 2 / 100; CXL 4 / 50 = .08; HBM 14 / 1000.  T = .1. */
    kvp_scenario sc;
    machine(&sc, 0);
    const int m[][5] = {{0, 1, 2, 3, -1}};
    kvp_trace *t = marks(1, 4, m);
    kvp_result r;
    CHECK_OK(run(&sc, t, "static", &r), &err);
    CHECK_EQ_U64(r.tiers, 3);
    CHECK_EQ_U64(r.tier_kv_read[0], 4);
    CHECK_EQ_U64(r.tier_kv_read[1], 2);
    CHECK_EQ_U64(r.tier_kv_read[2], 2);
    CHECK_EQ_U64(r.tier_write[2], 2);
    CHECK_EQ_U64(r.tier_write[0] + r.tier_write[1], 0);
    CHECK_EQ_U64(r.kv_read_dram, 4); /* the two-tier column: every tier below HBM */
    CHECK_NEAR(r.total_time_s, 0.1, 1e-15);
    CHECK_EQ_U64(r.links, 2);
    CHECK_EQ_U64(r.link_up_bytes[1], 2);
    CHECK_EQ_U64(r.link_up_bytes[2], 2);
    CHECK_EQ_U64(r.link_down_bytes[2], 2);
    CHECK_NEAR(r.link_up_busy_s[2], 0.1, 1e-15);
    CHECK_NEAR(r.tier_busy_s[0], 14.0 / 1000, 1e-15);
    /* No placement does better: 4 prompt tokens and 3 slots in HBM and DRAM leave one read
     * in CXL, 2 B up link 2 at 20 B/s. */
    CHECK_OK(run(&sc, t, "optimal", &r), &err);
    CHECK_NEAR(r.total_time_s, 0.1, 1e-12);
    kvp_trace_free(t);
}

/* P = 4, one step reading block 3 (in CXL).  reactive (LRU, g = 1): accessed {3} and the new
 * block 4 fit the 2 slots, so HBM becomes {3, 4} and evicts 0 then 1 (never read, lower index
 * first).  0 goes to DRAM, pushing DRAM's 2 down to CXL; 1 goes to DRAM, pushing 0 down.
 * Net moves: 3 CXL -> HBM (read this step: 0 B more read), 0 HBM -> CXL, 1 HBM -> DRAM,
 * 2 DRAM -> CXL (a move between the two tiers below HBM, through the GPU).  Bytes (2 a token):
 * HBM read 4 (0, 1) write 4 (3, new 4); DRAM read 2 (2) write 2 (1); CXL read 2 (the read of
 * 3) write 4 (2, 0). */
static void check_moves(const kvp_result *r)
{
    CHECK_EQ_U64(r->tier_read[0], 4);
    CHECK_EQ_U64(r->tier_write[0], 4);
    CHECK_EQ_U64(r->tier_read[1], 2);
    CHECK_EQ_U64(r->tier_write[1], 2);
    CHECK_EQ_U64(r->tier_read[2], 2);
    CHECK_EQ_U64(r->tier_write[2], 4);
    CHECK_EQ_U64(r->tier_kv_read[2], 2);
    CHECK_EQ_U64(r->tier_moved_out[0], 4);
    CHECK_EQ_U64(r->tier_moved_in[0], 2);
    CHECK_EQ_U64(r->tier_moved_in[2], 4);
    CHECK_EQ_U64(r->tier_moved_out[1], 2);
    CHECK_EQ_U64(r->promoted_bytes, 2);
    CHECK_EQ_U64(r->demoted_bytes, 6);
}

static void test_move_between_tiers(void)
{
    const int m[][5] = {{3, -1}};
    kvp_trace *t = marks(1, 4, m);
    kvp_scenario sc;
    kvp_result r;
    /* Own links: link 1 up 2 (2 read from DRAM) down 2; link 2 up 2, down 4 / 20 = .2 over
     * CXL 6 / 50 = .12: T = .2.  The DRAM -> CXL move is on both links. */
    machine(&sc, 0);
    CHECK_OK(run(&sc, t, "reactive", &r), &err);
    check_moves(&r);
    CHECK_EQ_U64(r.link_up_bytes[1], 2);
    CHECK_EQ_U64(r.link_down_bytes[1], 2);
    CHECK_EQ_U64(r.link_up_bytes[2], 2);
    CHECK_EQ_U64(r.link_down_bytes[2], 4);
    CHECK_NEAR(r.total_time_s, 0.2, 1e-15);
    /* One shared link at 20 B/s: up 2 + 2 = 4 (.2), down 2 + 4 = 6 / 20 = .3 (either tier
     * alone: .1 or .2): T = .3. */
    machine(&sc, 1);
    CHECK_OK(run(&sc, t, "reactive", &r), &err);
    check_moves(&r);
    CHECK_EQ_U64(r.links, 1);
    CHECK_EQ_U64(r.link_up_bytes[1], 4);
    CHECK_EQ_U64(r.link_down_bytes[1], 6);
    CHECK_NEAR(r.total_time_s, 0.3, 1e-15);
    /* The optimum keeps block 3 and a free slot in HBM from the start (0 in DRAM, 1 and 2 in
     * CXL, free), so the step reads 3 from HBM and writes the new token there: HBM's 10 + 2 +
     * 2 B at 1000 B/s, nothing else. */
    CHECK_OK(run(&sc, t, "optimal", &r), &err);
    CHECK_NEAR(r.total_time_s, 0.014, 1e-12);
    CHECK_EQ_U64(r.tier_kv_read[0], 2);
    CHECK_EQ_U64(r.tier_write[0], 2);
    kvp_trace_free(t);
}

/* P = 4, one step reading blocks 0 and 1, both in HBM (2 slots): page (1-token pages) keeps
 * them, so the new block 4 finds HBM full.  A policy that moves blocks puts its new block in
 * DRAM as its most recent, pushing DRAM's block 2 down to CXL; static puts it straight in
 * CXL's free slot.  page: DRAM read 2 B (block 2 leaving), written 2 B (the new token); CXL
 * written 2 B; demoted 2 B; link 2 down 2 / 20 = .1 over DRAM 4 / 100: T = .1.  static: CXL
 * written 2 B, nothing moved; link 2 down .1 again, DRAM idle. */
static void test_new_block_below(void)
{
    const int m[][5] = {{0, 1, -1}};
    kvp_trace *t = marks(1, 4, m);
    kvp_scenario sc;
    kvp_result r;
    machine(&sc, 0);
    CHECK_OK(run(&sc, t, "page:page_tokens=1", &r), &err);
    CHECK_EQ_U64(r.tier_read[1], 2);
    CHECK_EQ_U64(r.tier_write[1], 2);
    CHECK_EQ_U64(r.tier_write[2], 2);
    CHECK_EQ_U64(r.tier_moved_in[2], 2);
    CHECK_EQ_U64(r.demoted_bytes, 2);
    CHECK_NEAR(r.total_time_s, 0.1, 1e-15);
    CHECK_OK(run(&sc, t, "static", &r), &err);
    CHECK_EQ_U64(r.tier_read[1] + r.tier_write[1], 0);
    CHECK_EQ_U64(r.tier_write[2], 2);
    CHECK_EQ_U64(r.demoted_bytes, 0);
    kvp_trace_free(t);
}

/* The rank rules below HBM (docs/POLICIES.md "Tiers beyond two"), on the machine above with
 * one HBM slot (12 B) and one DRAM slot; CXL on link 2.  Each case's engine-only rule (a
 * block leaving HBM, and a new block, enter DRAM and push DRAM's least recent one down) is
 * worked too, so that each check tells the two apart. */
static void rank_machine(kvp_scenario *sc)
{
    machine(sc, 0);
    set(sc, "hbm_capacity=12");
}

/* page (1-token pages, bool marks: every score 1, ties to the lower page).  P = 4: HBM {0},
 * DRAM {1}, CXL {2, 3}.  Step 0 reads 2 and 3 (from CXL): the target is page 2, so 0 leaves
 * HBM for DRAM (pushing 1 to CXL) and 2 comes up; the new page 4 enters DRAM (pushing 0 to
 * CXL).  Then the rank: of the pages read and out of HBM, {3}, the first takes DRAM: 3 moves
 * up and DRAM's 4 goes to CXL.  Net: 0 HBM -> CXL, 1 DRAM -> CXL, 2 CXL -> HBM, 3 CXL ->
 * DRAM, the new token in CXL.  Bytes (2 a token): HBM read 2 (0) written 2 (2); DRAM read 2
 * (1) written 2 (3); CXL read 4 (the reads of 2 and 3; their moves carry nothing more) written
 * 6 (0, 1, the new token).  Promoted 4 (2 and 3), demoted 4.  Link 2 down 6 / 20 = .3 over
 * CXL 10 / 50, link 2 up 4 / 20: T = .3.  Without the rank: 4 stays in DRAM, promoted 2, CXL
 * written 4, DRAM moved in 0. */
static void test_rank_page(void)
{
    const int m[][5] = {{2, 3, -1}};
    kvp_trace *t = marks(1, 4, m);
    kvp_scenario sc;
    kvp_result r;
    rank_machine(&sc);
    CHECK_OK(run(&sc, t, "page:page_tokens=1", &r), &err);
    CHECK_EQ_U64(r.tier_read[0], 2);
    CHECK_EQ_U64(r.tier_write[0], 2);
    CHECK_EQ_U64(r.tier_read[1], 2);
    CHECK_EQ_U64(r.tier_write[1], 2);
    CHECK_EQ_U64(r.tier_moved_in[1], 2);
    CHECK_EQ_U64(r.tier_kv_read[2], 4);
    CHECK_EQ_U64(r.tier_read[2], 4);
    CHECK_EQ_U64(r.tier_write[2], 6);
    CHECK_EQ_U64(r.promoted_bytes, 4);
    CHECK_EQ_U64(r.demoted_bytes, 4);
    CHECK_EQ_U64(r.link_down_bytes[2], 6);
    CHECK_NEAR(r.total_time_s, 0.3, 1e-15);
    kvp_trace_free(t);
}

/* lookahead, W = 2.  P = 4, N = 2; step 0 reads 2 and 3, step 1 reads 3: at step 0 f(3) = 2,
 * f(2) = 1.  Initial: the wanted block 3 in HBM, then DRAM {0}, CXL {1, 2}.  Step 0: nothing
 * wanted is out of HBM; the new block 4 enters DRAM (0 to CXL); the rank below is [2] (f 1):
 * 2 moves up to DRAM, 4 goes to CXL.  Reads: HBM 2, CXL 2.  Moves: 0 DRAM -> CXL (DRAM read
 * 2, CXL written 2), 2 CXL -> DRAM (read this step: DRAM written 2); the new token in CXL (2).
 * DRAM 4 / 100, link 1 2 / 100 each way, CXL 6 / 50 = .12, link 2 up 2 / 20, down 4 / 20 =
 * .2: t = .2.  Step 1: f(2) = 0, f(3) = 1; HBM read 2; the new block 5 enters DRAM and pushes
 * 2 (unranked now) to CXL: DRAM read 2, written 2 (the new token); CXL written 2; link 2 down
 * 2 / 20 = .1 over DRAM .04: t = .1.  T = .3; promoted 2 (2 at step 0), demoted 4.  With
 * R = 0 the rank moves nothing (R is its rate as it is the promotions'): 4 stays in DRAM at
 * step 0 and goes to CXL at step 1; promoted 0, demoted 4 (0, then 4); DRAM written 4 (the
 * two new tokens), read 4 (0, 4); CXL read 2 (the read of 2), written 4 (0, then 4); each
 * step's link 2 carries 2 B one way or both: .1 + .1, T = .2. */
static void test_rank_lookahead(void)
{
    const int m[][5] = {{2, 3, -1}, {3, -1}};
    kvp_trace *t = marks(2, 5, m);
    kvp_scenario sc;
    kvp_result r;
    rank_machine(&sc);
    CHECK_OK(run(&sc, t, "lookahead:W=2:R=1", &r), &err);
    CHECK_EQ_U64(r.tier_kv_read[0], 4);
    CHECK_EQ_U64(r.tier_kv_read[2], 2);
    CHECK_EQ_U64(r.tier_read[1], 4);
    CHECK_EQ_U64(r.tier_write[1], 4);
    CHECK_EQ_U64(r.tier_read[2], 2);
    CHECK_EQ_U64(r.tier_write[2], 6);
    CHECK_EQ_U64(r.promoted_bytes, 2);
    CHECK_EQ_U64(r.demoted_bytes, 4);
    CHECK_NEAR(r.total_time_s, 0.3, 1e-15);
    CHECK_OK(run(&sc, t, "lookahead:W=2:R=0", &r), &err);
    CHECK_EQ_U64(r.tier_read[1], 4);
    CHECK_EQ_U64(r.tier_write[1], 4);
    CHECK_EQ_U64(r.tier_read[2], 2);
    CHECK_EQ_U64(r.tier_write[2], 4);
    CHECK_EQ_U64(r.promoted_bytes, 0);
    CHECK_EQ_U64(r.demoted_bytes, 4);
    CHECK_NEAR(r.total_time_s, 0.2, 1e-15);
    kvp_trace_free(t);
}

/* hot (the online family's rule), with no HBM slot (10 B: the weights alone), so that only
 * the rank below HBM moves anything.  P = 3, one step reading all (sparsity 0) with scores
 * 1, 3, 2: p is the score over the highest, halved (decay 0.5), so the misses rank 1, 2, 0.
 * Initial: DRAM {0}, CXL {1, 2}.  The new block 3 enters DRAM (0 to CXL); the rank's first,
 * 1, takes DRAM, and 3 goes to CXL.  Reads: DRAM 2, CXL 4.  Moves: 0 DRAM -> CXL and 1 CXL ->
 * DRAM, both read this step: CXL written 2, DRAM written 2; the new token in CXL (2).  DRAM
 * 4 / 100, CXL 8 / 50 = .16, link 2 up 4 / 20 = .2, down 4 / 20 = .2: T = .2; promoted 2,
 * demoted 2.  Without the rank: 3 in DRAM, CXL written 2 (0), promoted 0. */
static void test_rank_online(void)
{
    const float v[3] = {1, 3, 2};
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, v, 1, 1, 3, 0, "scores", &err), &err);
    kvp_scenario sc;
    kvp_result r;
    machine(&sc, 0);
    set(&sc, "hbm_capacity=10");
    CHECK_OK(run(&sc, t, "hot", &r), &err);
    CHECK_EQ_U64(r.tier_kv_read[1], 2);
    CHECK_EQ_U64(r.tier_kv_read[2], 4);
    CHECK_EQ_U64(r.tier_read[1], 2);
    CHECK_EQ_U64(r.tier_write[1], 2);
    CHECK_EQ_U64(r.tier_read[2], 4);
    CHECK_EQ_U64(r.tier_write[2], 4);
    CHECK_EQ_U64(r.promoted_bytes, 2);
    CHECK_EQ_U64(r.demoted_bytes, 2);
    CHECK_NEAR(r.total_time_s, 0.2, 1e-15);
    kvp_trace_free(t);
}

static void test_refused(void)
{
    kvp_scenario sc;
    kvp_result r;
    const int m[][5] = {{3, -1}};
    kvp_trace *t = marks(1, 4, m);
    /* 5 blocks of 2 B; DRAM 1 slot and CXL 3 (6 B) hold 4. */
    machine(&sc, 0);
    set(&sc, "tier2_capacity=6");
    CHECK_FAILS(run(&sc, t, "static", &r), KVP_EINVAL, &err, "capacities cannot hold the KV");
    CHECK_FAILS(run(&sc, t, "bound", &r), KVP_EINVAL, &err, "tiers 1..2 hold 4 blocks");
    set(&sc, "tier2_capacity=8");
    CHECK_OK(run(&sc, t, "static", &r), &err);
    /* unlimited needs no tier below HBM */
    set(&sc, "tier2_capacity=0");
    CHECK_OK(run(&sc, t, "unlimited", &r), &err);
    /* lpbound and plan refuse what bound refuses */
    set(&sc, "tier2_capacity=6");
    CHECK_FAILS(run(&sc, t, "lpbound", &r), KVP_EINVAL, &err, "tiers 1..2 hold 4 blocks");
    CHECK_FAILS(run(&sc, t, "plan", &r), KVP_EINVAL, &err, "tiers 1..2 hold 4 blocks");
    /* a link with no bandwidth */
    machine(&sc, 0);
    set(&sc, "tiers=4");
    set(&sc, "tier3_bandwidth=10");
    set(&sc, "tier3_capacity=10");
    CHECK_FAILS(run(&sc, t, "static", &r), KVP_EINVAL, &err,
                "tier 3 sits behind link 3, which has no bandwidth");
    kvp_trace_free(t);
}

/* ---- random scenarios ---- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static kvp_trace *random_trace(uint32_t N, uint32_t L, uint32_t C, int is_bool)
{
    size_t cells = (size_t)N * L * C;
    float *data = malloc(cells * sizeof *data);
    for (size_t i = 0; i < cells; i++)
        data[i] = is_bool ? (float)(rnd(5) < 2) : (float)rnd(1000000);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, is_bool, "random", &err), &err);
    free(data);
    return t;
}

/* A random small two-tier scenario (tok_bytes 2 * batch), DRAM holding the whole KV. */
static void random_scenario(kvp_scenario *sc, uint32_t L, uint32_t C)
{
    static const char *const sparsity[] = {"0", "0.25", "0.5", "0.8"};
    static const unsigned bw[] = {20, 50, 100, 300, 1000};
    uint32_t batch = 1 + rnd(2), tok = 2 * batch, weight = rnd(60);
    kvp_scenario_default(sc);
    setu(sc, "layers", L);
    set(sc, "kv_heads=1");
    set(sc, "head_dim=1");
    set(sc, "dtype_bytes=1");
    setu(sc, "batch", batch);
    setu(sc, "weight_bytes", weight);
    set(sc, "reserve=0");
    setu(sc, "hbm_capacity", 1 + weight + (unsigned long long)L * tok * rnd(8) + rnd(L * tok));
    set(sc, "hbm_bandwidth=1000");
    setu(sc, "dram_bandwidth", bw[rnd(5)]);
    setu(sc, "link_bandwidth", bw[rnd(5)]);
    setu(sc, "dram_capacity", (unsigned long long)L * tok * (C + 4)); /* g <= 4 */
    setu(sc, "page_tokens", 1 + rnd(4));
    char buf[64];
    snprintf(buf, sizeof buf, "sparsity=%s", sparsity[rnd(4)]);
    set(sc, buf);
}

static const char *const policies[] = {"unlimited", "static",          "reactive",
                                       "reactive:g=2", "page",          "lookahead:W=3:R=0.5",
                                       "lookahead:W=1:R=1", "lookahead:W=4:R=0.2",
                                       "sa:W_max=4:W0=2:budget=8", "hot", "balanced",
                                       "payback", "steer", "hot:decay=1:budget=0.5",
                                       "plan:iters=20:warm=5", "bound"};
#define NPOL (sizeof policies / sizeof *policies)

static int same_two_tier(const kvp_result *a, const kvp_result *b)
{
    return a->total_time_s == b->total_time_s && a->kv_read_hbm == b->kv_read_hbm &&
           a->kv_read_dram == b->kv_read_dram && a->hbm_read == b->hbm_read &&
           a->hbm_write == b->hbm_write && a->dram_read == b->dram_read &&
           a->dram_write == b->dram_write && a->link_up == b->link_up &&
           a->link_down == b->link_down && a->promoted_bytes == b->promoted_bytes &&
           a->demoted_bytes == b->demoted_bytes && a->slots == b->slots &&
           a->hbm_hit_rate_kv == b->hbm_hit_rate_kv && strcmp(a->params, b->params) == 0;
}

/* A third tier of no capacity, on link 1 or a link of its own, changes no number. */
static void test_empty_third_tier(uint64_t seed)
{
    rng_state = seed;
    printf("empty third tier: seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 60; iter++) {
        uint32_t L = 1 + rnd(2), N = 1 + rnd(8), P = 1 + rnd(12), C = P + N - 1;
        kvp_trace *t = random_trace(N, L, C, rnd(3) == 0);
        kvp_scenario two, three;
        random_scenario(&two, L, C);
        three = two;
        set(&three, "tiers=3");
        set(&three, "tier2_bandwidth=7");
        if (rnd(2)) {
            set(&three, "tier2_link=1");
        } else {
            set(&three, "link2_bandwidth=3");
        }
        for (size_t i = 0; i <= NPOL; i++) {
            const char *p = i < NPOL ? policies[i] : "lpbound:iters=20:warm=5";
            kvp_result a, b;
            int ra = run(&two, t, p, &a), rb = run(&three, t, p, &b);
            CHECK(ra == 0 && rb == 0);
            CHECK(a.lower_bound_s == b.lower_bound_s);
            if (!check_report_(same_two_tier(&a, &b), __FILE__, __LINE__,
                               "an empty third tier changes nothing"))
                fprintf(stderr, "    %s (seed %llu, iteration %d): %.17g / %.17g\n",
                        p, (unsigned long long)seed, iter, a.total_time_s,
                        b.total_time_s);
        }
        kvp_trace_free(t);
    }
}

/* Makes a random scenario of random_scenario K tiers: tiers 1..K-2 small, the last holding
 * the whole KV at g <= 4; links random, some shared, some asymmetric. */
static void more_tiers(kvp_scenario *sc, uint32_t L, uint32_t C, uint32_t K)
{
    static const unsigned bw[] = {5, 20, 50, 100, 300};
    kvp_derived d;
    CHECK_OK(kvp_scenario_derive(sc, &d, &err), &err);
    const unsigned long long blk = (unsigned long long)L * d.tok_bytes;
    setu(sc, "tiers", K);
    setu(sc, "dram_capacity", blk * rnd(4) + 1); /* at least 1 byte */
    for (uint32_t k = 2; k < K; k++) {
        char name[32];
        snprintf(name, sizeof name, "tier%u_capacity", k);
        setu(sc, name, k + 1 == K ? blk * (C + 4) : blk * rnd(4));
        snprintf(name, sizeof name, "tier%u_bandwidth", k);
        setu(sc, name, bw[rnd(5)]);
        snprintf(name, sizeof name, "tier%u_link", k);
        uint32_t j = 1 + rnd(k);
        setu(sc, name, j);
        snprintf(name, sizeof name, "link%u_bandwidth", j);
        if (j > 1)
            setu(sc, name, bw[rnd(5)]);
        if (rnd(2)) {
            snprintf(name, sizeof name, "link%u_down_bandwidth", j);
            setu(sc, name, bw[rnd(5)]);
        }
    }
}

/* v (the time of `what`, a bound or the optimum) at or below every placement policy of the
 * list but unlimited (the first) and the last, each run on sc and t. */
static void below_every_policy(const kvp_scenario *sc, const kvp_trace *t, double v,
                               const char *what, uint32_t K, uint64_t seed, int iter)
{
    for (size_t i = 1; i + 1 < NPOL; i++) {
        kvp_result r;
        CHECK_OK(run(sc, t, policies[i], &r), &err);
        if (!check_report_(v <= r.total_time_s * (1 + 1e-9), __FILE__, __LINE__,
                           "at or below every policy"))
            fprintf(stderr, "    %s: %.17g < %s %.17g (K %u, seed %llu, iteration %d)\n",
                    policies[i], r.total_time_s, what, v, K, (unsigned long long)seed, iter);
    }
}

/* With three and four tiers: every policy at or above `bound`, every read served by some
 * tier, every move out of a tier a move into another, and (check mode) no tier over its
 * slots after any step. */
static void test_bound_below_all(uint64_t seed)
{
    rng_state = seed ^ 0x9e3779b9u;
    printf("bound with 3 and 4 tiers: seed %llu\n", (unsigned long long)seed);
    int spread = 0; /* runs reading from tier 1 and the slowest tier: the cases do test tiers */
    for (int iter = 0; iter < 400; iter++) {
        uint32_t L = 1 + rnd(2), N = 1 + rnd(8), P = 1 + rnd(14), C = P + N - 1;
        uint32_t K = 3 + rnd(2);
        kvp_trace *t = random_trace(N, L, C, rnd(3) == 0);
        kvp_scenario sc;
        random_scenario(&sc, L, C);
        more_tiers(&sc, L, C, K);
        kvp_result b;
        CHECK_OK(run(&sc, t, "bound", &b), &err);
        for (size_t i = 0; i + 1 < NPOL; i++) {
            kvp_result r;
            int rc = run(&sc, t, policies[i], &r);
            if (!check_report_(rc == 0, __FILE__, __LINE__, "policy runs")) {
                fprintf(stderr, "    %s: %s (seed %llu, iteration %d)\n", policies[i],
                        err.msg, (unsigned long long)seed, iter);
                continue;
            }
            if (i > 0 && !check_report_(r.total_time_s >= b.total_time_s * (1 - 1e-12),
                                        __FILE__, __LINE__, "policy at or above the bound"))
                fprintf(stderr, "    %s: %.17g < %.17g (K %u, seed %llu, iteration %d)\n",
                        policies[i], r.total_time_s, b.total_time_s, K,
                        (unsigned long long)seed, iter);
            uint64_t kv = 0, in = 0, out = 0;
            for (uint32_t k = 0; k < K; k++) {
                kv += r.tier_kv_read[k];
                in += r.tier_moved_in[k];
                out += r.tier_moved_out[k];
            }
            CHECK_EQ_U64(kv, r.kv_read_hbm + r.kv_read_dram);
            CHECK_EQ_U64(kv, b.kv_read_dram); /* the bound counts every read */
            CHECK_EQ_U64(in, out);
            spread += r.tier_kv_read[1] > 0 && r.tier_kv_read[K - 1] > 0;
            CHECK_EQ_U64(in, r.promoted_bytes + r.demoted_bytes);
        }
        kvp_trace_free(t);
    }
    CHECK(spread > 400);
}

/* optimal with three and four tiers (docs/BOUNDS.md "More than two tiers"): its placement,
 * replayed through the engine, takes the MIP's value (optimal checks it, and fails the run
 * otherwise); it is at or below every policy (each is a feasible placement of the same
 * program: the initial placement is free, every tier within its slots), at or above its LP
 * relaxation, which is at or above `bound`. */
static void test_optimal_tiers(uint64_t seed)
{
    rng_state = seed ^ 0x0b7a1u;
    printf("optimal with 3 and 4 tiers: seed %llu\n", (unsigned long long)seed);
    const int iters = getenv("KVP_TEST_LIGHT") ? 4 : 40;
    int moved = 0; /* cases where the optimum moves something below HBM */
    for (int iter = 0; iter < iters; iter++) {
        uint32_t L = 1, N = 1 + rnd(4), P = 1 + rnd(6), C = P + N - 1; /* GLPK's sizes */
        uint32_t K = 3 + rnd(2);
        kvp_trace *t = random_trace(N, L, C, rnd(3) == 0);
        kvp_scenario sc;
        random_scenario(&sc, L, C);
        more_tiers(&sc, L, C, K);
        kvp_result o, lp, b;
        int rc = run(&sc, t, "optimal:tlim=20", &o);
        if (!check_report_(rc == 0, __FILE__, __LINE__, "optimal runs")) {
            fprintf(stderr, "    %s (K %u, seed %llu, iteration %d)\n", err.msg, K,
                    (unsigned long long)seed, iter);
            kvp_trace_free(t);
            continue;
        }
        CHECK_OK(run(&sc, t, "optimal:relax=1", &lp), &err);
        CHECK_OK(run(&sc, t, "bound", &b), &err);
        CHECK(lp.total_time_s <= o.total_time_s * (1 + 1e-9));
        CHECK(b.total_time_s <= lp.total_time_s * (1 + 1e-9));
        for (uint32_t k = 1; k < K; k++)
            moved += o.tier_moved_in[k] > 0;
        below_every_policy(&sc, t, o.total_time_s, "optimal", K, seed, iter);
        kvp_trace_free(t);
    }
    CHECK(moved > 0 || iters < 40);
}

/* lpbound and plan with 3 and 4 tiers (docs/BOUNDS.md "lpbound and plan with more than two
 * tiers"), and with two tiers behind an asymmetric link: bound <= lpbound <= the LP <= the
 * optimum <= plan, GLPK's optimum (the K-tier program) as the independent oracle, and lpbound
 * at or below every policy.  The relaxation must also be worth something: lpbound above
 * bound on some cases. */
static void test_lp_tiers(uint64_t seed)
{
    static const unsigned bw[] = {5, 20, 50, 100, 300, 1000};
    rng_state = seed ^ 0x1a9u;
    printf("lpbound and plan with 2 (asymmetric), 3 and 4 tiers: seed %llu\n",
           (unsigned long long)seed);
    const int iters = getenv("KVP_TEST_LIGHT") ? 6 : 40;
    int above = 0, tiers_above = 0, plan_static = 0;
    for (int iter = 0; iter < iters; iter++) {
        uint32_t L = 1, N = 1 + rnd(4), P = 1 + rnd(6), C = P + N - 1; /* GLPK's sizes */
        uint32_t K = 2 + rnd(3);
        kvp_trace *t = random_trace(N, L, C, rnd(3) == 0);
        kvp_scenario sc;
        random_scenario(&sc, L, C);
        if (K > 2) {
            more_tiers(&sc, L, C, K);
        } else {
            setu(&sc, "link1_up_bandwidth", bw[rnd(6)]);
            setu(&sc, "link1_down_bandwidth", bw[rnd(6)]);
        }
        kvp_result b, lp, relax, o, pl;
        CHECK_OK(run(&sc, t, "bound", &b), &err);
        CHECK_OK(run(&sc, t, "lpbound", &lp), &err);
        CHECK_OK(run(&sc, t, "optimal:relax=1", &relax), &err);
        int rc = run(&sc, t, "optimal:tlim=20", &o);
        if (!check_report_(rc == 0, __FILE__, __LINE__, "optimal runs")) {
            fprintf(stderr, "    %s (K %u, seed %llu, iteration %d)\n", err.msg, K,
                    (unsigned long long)seed, iter);
            kvp_trace_free(t);
            continue;
        }
        CHECK_OK(run(&sc, t, "plan", &pl), &err);
        const double v[] = {b.total_time_s, lp.total_time_s, relax.total_time_s,
                            o.total_time_s, pl.total_time_s};
        static const char *const what[] = {"bound", "lpbound", "LP", "optimal", "plan"};
        for (int i = 0; i + 1 < 5; i++)
            if (!check_report_(v[i] <= v[i + 1] * (1 + 1e-9), __FILE__, __LINE__,
                               "bound <= lpbound <= LP <= optimal <= plan"))
                fprintf(stderr, "    %s %.17g > %s %.17g (K %u, seed %llu, iteration %d)\n",
                        what[i], v[i], what[i + 1], v[i + 1], K, (unsigned long long)seed,
                        iter);
        CHECK(lp.total_time_s >= b.total_time_s); /* by construction, exactly */
        CHECK(pl.lower_bound_s == lp.total_time_s); /* the same dual */
        kvp_result st; /* static is one of plan's candidates: plan is never behind it */
        CHECK_OK(run(&sc, t, "static", &st), &err);
        if (!check_report_(pl.total_time_s <= st.total_time_s * (1 + 1e-12), __FILE__, __LINE__,
                           "plan at or below static"))
            fprintf(stderr, "    plan %.17g > static %.17g (K %u, seed %llu, iteration %d)\n",
                    pl.total_time_s, st.total_time_s, K, (unsigned long long)seed, iter);
        plan_static += strcmp(pl.params, "static") == 0;
        above += lp.total_time_s > b.total_time_s * (1 + 1e-9);
        tiers_above += K > 2 && lp.total_time_s > b.total_time_s * (1 + 1e-9);
        below_every_policy(&sc, t, lp.total_time_s, "lpbound", K, seed, iter);
        kvp_trace_free(t);
    }
    CHECK(above > 0 || iters < 40);
    CHECK(tiers_above > 0 || iters < 40);
    printf("plan's winner static in %d of %d cases\n", plan_static, iters);
}

/* lpbound on three tiers is the largest of its two relaxations' duals and `bound`
 * (docs/BOUNDS.md "lpbound and plan with more than two tiers"), the relaxations written out
 * here from machine(): cut 0 merges DRAM (1 slot, 100 B/s, link 1 at 100 B/s) and CXL (50 B/s,
 * link 2 at 20 B/s) into one tier of 150 B/s behind a link of 120 B/s each way; cut 1 merges
 * HBM (2 slots, 1000 B/s) and DRAM into an HBM of 3 slots (16 B) at 1100 B/s above the CXL tier
 * alone (50 B/s, link 20 B/s).  With CXL's link slow, cut 1 is the stronger. */
static void test_lp_cuts(void)
{
    const int m[][5] = {{0, 1, 2, 3, -1}, {4, 5, 6, 7, -1}, {0, 2, 4, 6, -1},
                        {1, 3, 5, 8, -1}, {0, 1, 9, 10, -1}};
    kvp_trace *t = marks(5, 11, m);
    kvp_scenario sc, cut0, cut1;
    machine(&sc, 0);
    kvp_scenario_default(&cut0);
    const char *base[] = {"layers=1", "kv_heads=1", "head_dim=1", "dtype_bytes=1", "batch=1",
                          "weight_bytes=10", "reserve=0", "sparsity=0", "dram_capacity=200000"};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        set(&cut0, base[i]);
    cut1 = cut0;
    set(&cut0, "hbm_capacity=14");
    set(&cut0, "hbm_bandwidth=1000");
    set(&cut0, "dram_bandwidth=150");
    set(&cut0, "link_bandwidth=120");
    set(&cut1, "hbm_capacity=16");
    set(&cut1, "hbm_bandwidth=1100");
    set(&cut1, "dram_bandwidth=50");
    set(&cut1, "link_bandwidth=20");
    kvp_result lp, l0, l1, b, o, pl;
    CHECK_OK(run(&sc, t, "lpbound", &lp), &err);
    CHECK_OK(run(&cut0, t, "lpbound", &l0), &err);
    CHECK_OK(run(&cut1, t, "lpbound", &l1), &err);
    CHECK_OK(run(&sc, t, "bound", &b), &err);
    CHECK_OK(run(&sc, t, "optimal", &o), &err);
    CHECK_OK(run(&sc, t, "plan", &pl), &err);
    printf("lpbound cuts: bound %.9g cut 0 %.9g cut 1 %.9g lpbound %.9g optimal %.9g plan %.9g\n",
           b.total_time_s, l0.total_time_s, l1.total_time_s, lp.total_time_s, o.total_time_s,
           pl.total_time_s);
    CHECK(lp.total_time_s == fmax(fmax(l0.total_time_s, l1.total_time_s), b.total_time_s));
    CHECK(l1.total_time_s > l0.total_time_s * 1.01 && l1.total_time_s > b.total_time_s * 1.01);
    CHECK(lp.total_time_s <= o.total_time_s * (1 + 1e-9));
    CHECK(o.total_time_s <= pl.total_time_s * (1 + 1e-9));
    CHECK(pl.lower_bound_s == lp.total_time_s);
    kvp_trace_free(t);
}

/* K = 2 through the tier names (tiers=2, tier1_*, link1_*, the link's bandwidth given each
 * way as the same number) is today's machine: lpbound and plan byte for byte. */
static void test_lp_tier_names(uint64_t seed)
{
    rng_state = seed ^ 0x77u;
    for (int iter = 0; iter < 20; iter++) {
        uint32_t L = 1 + rnd(2), N = 1 + rnd(8), P = 1 + rnd(12), C = P + N - 1;
        kvp_trace *t = random_trace(N, L, C, rnd(3) == 0);
        kvp_scenario old, named;
        random_scenario(&old, L, C);
        kvp_derived d;
        CHECK_OK(kvp_scenario_derive(&old, &d, &err), &err);
        named = old;
        set(&named, "tiers=2");
        set(&named, "tier1_link=1");
        setu(&named, "tier1_capacity", d.tier_capacity[1]);
        char buf[96];
        snprintf(buf, sizeof buf, "tier1_bandwidth=%.17g", d.tier_bandwidth[1]);
        set(&named, buf);
        snprintf(buf, sizeof buf, "link1_up_bandwidth=%.17g", d.link_up[1]);
        set(&named, buf);
        snprintf(buf, sizeof buf, "link1_down_bandwidth=%.17g", d.link_down[1]);
        set(&named, buf);
        for (int p = 0; p < 2; p++) {
            kvp_result a, b;
            const char *pol = p ? "plan" : "lpbound";
            CHECK_OK(run(&old, t, pol, &a), &err);
            CHECK_OK(run(&named, t, pol, &b), &err);
            CHECK(same_two_tier(&a, &b));
            CHECK(a.lower_bound_s == b.lower_bound_s);
            CHECK(a.dual_iterations == b.dual_iterations);
        }
        kvp_trace_free(t);
    }
}

/* static with K tiers against a reference written from the model alone: blocks (1 token)
 * fill HBM, then tier 1, 2, ... in index order and never move; a new token takes the fastest
 * tier with a free slot (the slowest if none); each step reads its marked positions from
 * their tiers and writes the new token; the step takes the largest of every tier's bytes over
 * its bandwidth (HBM with the layer's weights) and every link's reads up and writes down over
 * that direction's bandwidth.  The marks are read from the trace's own data, not through the
 * library. */
static void test_static_reference(uint64_t seed)
{
    static const unsigned bw[] = {7, 20, 50, 100, 300};
    rng_state = seed ^ 0x51a71cu;
    printf("static against the reference: seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 150; iter++) {
        uint32_t L = 1 + rnd(2), N = 1 + rnd(8), P = 1 + rnd(14), C = P + N - 1;
        uint32_t K = 3 + rnd(2), batch = 1 + rnd(2), tok = 2 * batch, weight = rnd(40);
        size_t cells = (size_t)N * L * C;
        float *data = malloc(cells * sizeof *data);
        for (size_t i = 0; i < cells; i++)
            data[i] = (float)(rnd(5) < 2);
        kvp_trace *t = NULL;
        CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, 1, "marks", &err), &err);
        kvp_scenario sc;
        kvp_scenario_default(&sc);
        setu(&sc, "layers", L);
        set(&sc, "kv_heads=1");
        set(&sc, "head_dim=1");
        set(&sc, "dtype_bytes=1");
        setu(&sc, "batch", batch);
        setu(&sc, "weight_bytes", weight);
        set(&sc, "reserve=0");
        uint32_t slots[KVP_MAX_TIERS], link[KVP_MAX_TIERS] = {0};
        double bwk[KVP_MAX_TIERS], up[KVP_MAX_TIERS] = {0}, down[KVP_MAX_TIERS] = {0};
        slots[0] = rnd(5);
        setu(&sc, "hbm_capacity", 1 + weight + (unsigned long long)L * tok * slots[0]);
        bwk[0] = 1000;
        set(&sc, "hbm_bandwidth=1000");
        setu(&sc, "tiers", K);
        for (uint32_t k = 1; k < K; k++) {
            char name[40];
            slots[k] = k + 1 == K ? C + 1 : rnd(4);
            bwk[k] = bw[rnd(5)];
            link[k] = k == 1 ? 1 : 1 + rnd(k);
            if (k == 1) {
                setu(&sc, "dram_capacity", (unsigned long long)L * tok * slots[k] + 1);
                setu(&sc, "dram_bandwidth", (unsigned long long)bwk[k]);
            } else {
                snprintf(name, sizeof name, "tier%u_capacity", k);
                setu(&sc, name, (unsigned long long)L * tok * slots[k]);
                snprintf(name, sizeof name, "tier%u_bandwidth", k);
                setu(&sc, name, (unsigned long long)bwk[k]);
                snprintf(name, sizeof name, "tier%u_link", k);
                setu(&sc, name, link[k]);
            }
            if (up[link[k]] == 0) { /* a new link: its bandwidth, one or two directions */
                up[link[k]] = down[link[k]] = bw[rnd(5)];
                snprintf(name, sizeof name, link[k] == 1 ? "link_bandwidth" :
                         "link%u_bandwidth", link[k]);
                setu(&sc, name, (unsigned long long)up[link[k]]);
                if (rnd(2)) {
                    down[link[k]] = bw[rnd(5)];
                    snprintf(name, sizeof name, "link%u_down_bandwidth", link[k]);
                    setu(&sc, name, (unsigned long long)down[link[k]]);
                }
            }
        }
        /* the reference */
        uint8_t *tier = malloc(C + 1);
        double want_t = 0;
        uint64_t kv[KVP_MAX_TIERS] = {0}, wr[KVP_MAX_TIERS] = {0};
        for (uint32_t l = 0; l < L; l++) {
            uint32_t cnt[KVP_MAX_TIERS] = {0};
            for (uint32_t b = 0; b < P; b++) {
                uint32_t k = 0;
                while (k + 1 < K && cnt[k] >= slots[k])
                    k++;
                tier[b] = (uint8_t)k;
                cnt[k]++;
            }
            double tl = 0;
            for (uint32_t n = 0; n < N; n++) {
                uint64_t r[KVP_MAX_TIERS] = {0}, w[KVP_MAX_TIERS] = {0};
                for (uint32_t x = 0; x < P + n; x++)
                    if (data[((size_t)n * L + l) * C + x] != 0)
                        r[tier[x]]++;
                uint32_t k = 0;
                while (k + 1 < K && cnt[k] >= slots[k])
                    k++;
                tier[P + n] = (uint8_t)k;
                cnt[k]++;
                w[k]++;
                double step = ((double)weight / L + (double)(r[0] + w[0]) * tok) / bwk[0];
                double lu[KVP_MAX_TIERS] = {0}, ld[KVP_MAX_TIERS] = {0};
                for (uint32_t q = 1; q < K; q++) {
                    step = fmax(step, (double)(r[q] + w[q]) * tok / bwk[q]);
                    lu[link[q]] += (double)r[q] * tok;
                    ld[link[q]] += (double)w[q] * tok;
                }
                for (uint32_t j = 1; j < KVP_MAX_TIERS; j++)
                    if (up[j] > 0)
                        step = fmax(step, fmax(lu[j] / up[j], ld[j] / down[j]));
                tl += step;
                for (uint32_t q = 0; q < K; q++) {
                    kv[q] += r[q] * tok;
                    wr[q] += w[q] * tok;
                }
            }
            want_t += tl;
        }
        kvp_result res;
        int rc = run(&sc, t, "static", &res);
        if (!check_report_(rc == 0, __FILE__, __LINE__, "static runs"))
            fprintf(stderr, "    %s (iteration %d)\n", err.msg, iter);
        int same = fabs(res.total_time_s - want_t) <= 1e-12 * want_t;
        for (uint32_t q = 0; q < K; q++)
            same = same && res.tier_kv_read[q] == kv[q] && res.tier_write[q] == wr[q] &&
                   res.tier_read[q] == kv[q];
        if (!check_report_(same, __FILE__, __LINE__, "static matches the reference"))
            fprintf(stderr, "    K %u (seed %llu, iteration %d): time %.17g / %.17g\n", K,
                    (unsigned long long)seed, iter, res.total_time_s, want_t);
        free(tier);
        free(data);
        kvp_trace_free(t);
    }
}

static void empty_third_tier(void) { test_empty_third_tier(check_seed); }
static void bound_below_all(void) { test_bound_below_all(check_seed); }
static void static_reference(void) { test_static_reference(check_seed); }
static void optimal_tiers(void) { test_optimal_tiers(check_seed); }
static void lp_tiers(void) { test_lp_tiers(check_seed); }
static void lp_tier_names(void) { test_lp_tier_names(check_seed); }

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"static_fills_in_order", test_static_fills_in_order},
        {"move_between_tiers", test_move_between_tiers},
        {"new_block_below", test_new_block_below},
        {"rank_page", test_rank_page},
        {"rank_lookahead", test_rank_lookahead},
        {"rank_online", test_rank_online},
        {"refused", test_refused},
        {"empty_third_tier", empty_third_tier},
        {"bound_below_all", bound_below_all},
        {"static_reference", static_reference},
        {"optimal_tiers", optimal_tiers},
        {"lp_tiers", lp_tiers},
        {"lp_cuts", test_lp_cuts},
        {"lp_tier_names", lp_tier_names},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
