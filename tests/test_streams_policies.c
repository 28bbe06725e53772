/* The policies that came to streams last (docs/MODEL.md "Streams", docs/POLICIES.md "Several
 * streams"): lpbound, plan, optimal (and its relaxation) and the online family hot, balanced,
 * payback, steer.
 *
 * The oracles: GLPK's exact optimum of the streams' integer program (`optimal`, whose own
 * placement the engine replays and must time as the solver does) bounds every placement from
 * below, and the chain bound <= lpbound <= optimal:relax=1 <= optimal <= plan holds on random
 * scenarios of distinct sequences; a batch of one sequence gives the single-stream numbers
 * exactly; S identical sequences at batch b give the single sequence at batch b * S (exactly
 * for the online family; to rounding for the dual and the relaxation, whose values are sums
 * of the same terms in another order; optimal may only gain, since S copies of a token may be
 * split between the tiers, which one token at batch b * S cannot); a hand-worked optimum of
 * two sequences of different lengths; bad input.  Seeds are printed. */
#include "check.h"
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The placements compared with the optimum (every one a feasible solution of its program). */
static const char *const placements[] = {
    "static", "reactive", "page:page_tokens=2", "lookahead:W=3:R=0.5", "hot", "balanced",
    "payback", "steer", "hot:decay=1:est=0", "steer:budget=1:payback=4", "whittle",
};
#define NPLACE (sizeof placements / sizeof *placements)

#define REL 1e-9

/* a <= b up to REL, with a message naming the case. */
static void check_le(double a, double b, const char *an, const char *bn, const char *what)
{
    if (!check_report_(a <= b * (1 + REL) + 1e-300, __FILE__, __LINE__, what))
        fprintf(stderr, "    %s %.17g > %s %.17g\n", an, a, bn, b);
}

/* Distinct sequences of random prompts and lengths: the chain, and the optimum below every
 * placement (all in checking mode: capacity after every step, no step below the bound). */
static void test_chain_random(void)
{
    uint64_t x = check_seed ^ 0xC4A1ull;
    printf("chain_random: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 10; round++) {
        const uint32_t S = sm_in(&x, 2, 3), L = sm_in(&x, 1, 2);
        const uint32_t slots = sm_in(&x, 1, 8);
        const double sparsity = (double)sm_in(&x, 2, 8) / 10;
        kvp_trace *seq[3];
        for (uint32_t q = 0; q < S; q++) {
            const uint32_t P = sm_in(&x, 1, 7), N = sm_in(&x, 1, 6), C = P + N - 1;
            float *d = sm_scores(&x, N, L, C);
            REQUIRE_OK(kvp_trace_from_memory(&seq[q], d, N, L, C, 0, "q", &err), &err);
            free(d);
        }
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
        kvp_scenario sc;
        streams_scenario(&sc, L, 1, 1, 2, slots, 3 + sm_in(&x, 0, 20), sparsity);
        char what[160];
        snprintf(what, sizeof what, "round %d: S=%u L=%u slots=%u s=%g", round, S, L, slots,
                 sparsity);
        kvp_result b = run_one(&sc, t, "bound", 1), lp = run_one(&sc, t, "lpbound", 2);
        kvp_result rx = run_one(&sc, t, "optimal:relax=1", 1);
        kvp_result opt = run_one(&sc, t, "optimal", 1), pl = run_one(&sc, t, "plan", 2);
        check_le(b.total_time_s, lp.total_time_s, "bound", "lpbound", what);
        check_le(lp.total_time_s, rx.total_time_s, "lpbound", "relax", what);
        check_le(rx.total_time_s, opt.total_time_s, "relax", "optimal", what);
        check_le(opt.total_time_s, pl.total_time_s, "optimal", "plan", what);
        CHECK_EQ_INT(opt.sequences, S);
        for (size_t i = 0; i < NPLACE; i++) {
            kvp_result r = run_one(&sc, t, placements[i], 2);
            char w2[200];
            snprintf(w2, sizeof w2, "%s: %s", what, placements[i]);
            check_le(opt.total_time_s, r.total_time_s, "optimal", placements[i], w2);
            CHECK_EQ_U64(r.kv_read_hbm + r.kv_read_dram, opt.kv_read_hbm + opt.kv_read_dram);
        }
        kvp_trace_free(t);
    }
}

static const char *const new_policies[] = {
    "lpbound", "plan", "optimal", "optimal:relax=1", "hot", "balanced", "payback", "steer",
    "hot:decay=1:est=2", "balanced:budget=0.3",
};
#define NNEW (sizeof new_policies / sizeof *new_policies)

/* Every number that a result of these policies reports, exactly. */
static void check_same(const kvp_result *a, const kvp_result *b, const char *what)
{
    int ok = a->total_time_s == b->total_time_s && a->kv_read_hbm == b->kv_read_hbm &&
             a->kv_read_dram == b->kv_read_dram && a->hbm_read == b->hbm_read &&
             a->hbm_write == b->hbm_write && a->dram_read == b->dram_read &&
             a->dram_write == b->dram_write && a->link_up == b->link_up &&
             a->link_down == b->link_down && a->promoted_bytes == b->promoted_bytes &&
             a->demoted_bytes == b->demoted_bytes &&
             a->hbm_hit_rate_kv == b->hbm_hit_rate_kv && strcmp(a->params, b->params) == 0;
    if (!check_report_(ok, __FILE__, __LINE__, what))
        fprintf(stderr, "    %s: time %.17g vs %.17g, hbm %llu vs %llu, promoted %llu vs "
                "%llu, params %s vs %s\n", a->policy, a->total_time_s, b->total_time_s,
                (unsigned long long)a->kv_read_hbm, (unsigned long long)b->kv_read_hbm,
                (unsigned long long)a->promoted_bytes, (unsigned long long)b->promoted_bytes,
                a->params, b->params);
}

/* A batch of one sequence is that sequence. */
static void test_one_sequence(void)
{
    uint64_t x = check_seed ^ 0x0E5ull;
    printf("one_sequence: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 6; round++) {
        const uint32_t L = sm_in(&x, 1, 2), P = sm_in(&x, 1, 12), N = sm_in(&x, 1, 10);
        const uint32_t C = P + N - 1, slots = sm_in(&x, 1, 10);
        const double sparsity = (double)sm_in(&x, 0, 8) / 10;
        float *d = sm_scores(&x, N, L, C);
        kvp_trace *one = NULL, *copy = NULL, *batch = NULL;
        REQUIRE_OK(kvp_trace_from_memory(&one, d, N, L, C, 0, "one", &err), &err);
        REQUIRE_OK(kvp_trace_from_memory(&copy, d, N, L, C, 0, "one", &err), &err);
        free(d);
        REQUIRE_OK(kvp_trace_sequences(&batch, &copy, 1, &err), &err);
        kvp_scenario sc;
        streams_scenario(&sc, L, 1, 1, 2, slots, 11, sparsity);
        for (size_t i = 0; i < NNEW; i++) {
            char what[160];
            snprintf(what, sizeof what, "round %d: %s, L=%u P=%u N=%u slots=%u s=%g", round,
                     new_policies[i], L, P, N, slots, sparsity);
            kvp_result r1 = run_one(&sc, one, new_policies[i], 1);
            kvp_result rb = run_one(&sc, batch, new_policies[i], 2);
            check_same(&rb, &r1, what);
        }
        kvp_trace_free(one);
        kvp_trace_free(batch);
    }
}

/* The online family with its defaults and with knobs that make each rule bind. */
static const char *const online[] = {
    "hot", "balanced", "payback", "steer", "hot:decay=1:est=2", "hot:decay=0:est=0",
    "balanced:budget=0.3", "payback:payback=0.5:horizon=4", "steer:new_hbm=0:budget=0.6",
    "whittle", "whittle:payback=0:horizon=16", "whittle:renew=1:budget=0.25",
};
#define NONLINE (sizeof online / sizeof *online)

/* S identical sequences at batch b against one at batch b * S, slots splitting evenly. */
static void test_identical_sequences(void)
{
    uint64_t x = check_seed ^ 0x1DE7ull;
    printf("identical_sequences: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 8; round++) {
        const uint32_t S = sm_in(&x, 2, 3), L = sm_in(&x, 1, 2), P = sm_in(&x, 1, 6);
        const uint32_t N = sm_in(&x, 1, 5), C = P + N - 1, b = sm_in(&x, 1, 2);
        const uint32_t slots = sm_in(&x, 1, 5);
        const double sparsity = (double)sm_in(&x, 0, 8) / 10;
        float *d = sm_scores(&x, N, L, C);
        kvp_trace *one = NULL, *multi = NULL;
        same_sequences(d, N, L, C, S, &one, &multi);
        free(d);
        kvp_scenario s1, sS;
        /* a stream's token: 2 b bytes; the single run's at batch b S: S times that */
        streams_scenario(&s1, L, 1, b * S, 2ull * b * S, slots, 37, sparsity);
        streams_scenario(&sS, L, 1, b, 2ull * b, slots * S, 37, sparsity);
        char what[160];
        snprintf(what, sizeof what, "round %d: S=%u L=%u P=%u N=%u b=%u slots=%u s=%g", round,
                 S, L, P, N, b, slots, sparsity);
        for (size_t i = 0; i < NONLINE; i++) {
            kvp_result h1 = run_one(&s1, one, online[i], 1);
            kvp_result hS = run_one(&sS, multi, online[i], 2);
            check_same(&hS, &h1, what);
            CHECK_EQ_INT(hS.slots, h1.slots * S);
        }
        kvp_result l1 = run_one(&s1, one, "lpbound", 1);
        kvp_result lS = run_one(&sS, multi, "lpbound", 2);
        CHECK_NEAR(lS.total_time_s, l1.total_time_s, 1e-9);
        kvp_result x1 = run_one(&s1, one, "optimal:relax=1", 1);
        kvp_result xS = run_one(&sS, multi, "optimal:relax=1", 1);
        CHECK_NEAR(xS.total_time_s, x1.total_time_s, 1e-7);
        if (S == 2 && P + N <= 8) { /* GLPK's search on symmetric copies grows fast */
            kvp_result o1 = run_one(&s1, one, "optimal", 1);
            kvp_result oS = run_one(&sS, multi, "optimal", 1);
            check_le(oS.total_time_s, o1.total_time_s, "optimal of S", "optimal of one", what);
            check_le(xS.total_time_s, oS.total_time_s, "relax of S", "optimal of S", what);
        }
        kvp_trace_free(one);
        kvp_trace_free(multi);
    }
}

/* H identical heads of a 4-D trace against the 3-D trace at the same batch. */
static void test_identical_heads(void)
{
    uint64_t x = check_seed ^ 0x4EADull;
    printf("identical_heads: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 6; round++) {
        const uint32_t H = sm_in(&x, 2, 3), L = sm_in(&x, 1, 2), P = sm_in(&x, 1, 6);
        const uint32_t N = sm_in(&x, 1, 5), C = P + N - 1, slots = sm_in(&x, 1, 5);
        const double sparsity = (double)sm_in(&x, 0, 8) / 10;
        float *d = sm_scores(&x, N, L, C);
        kvp_trace *one = NULL, *heads = NULL;
        same_heads(d, N, L, H, C, &one, &heads);
        free(d);
        kvp_scenario sc;
        /* a head's token: 2 bytes; the 3-D trace's: 2 H; H slots of a head per 3-D slot */
        streams_scenario(&sc, L, H, 1, 2ull * H, slots, 41, sparsity);
        char what[160];
        snprintf(what, sizeof what, "round %d: H=%u L=%u P=%u N=%u slots=%u s=%g", round, H, L,
                 P, N, slots, sparsity);
        for (size_t i = 0; i < NONLINE; i++) {
            kvp_result h1 = run_one(&sc, one, online[i], 1);
            kvp_result hH = run_one(&sc, heads, online[i], 2);
            check_same(&hH, &h1, what);
        }
        kvp_result l1 = run_one(&sc, one, "lpbound", 1), lH = run_one(&sc, heads, "lpbound", 2);
        CHECK_NEAR(lH.total_time_s, l1.total_time_s, 1e-9);
        if (H == 2 && P + N <= 8) {
            kvp_result o1 = run_one(&sc, one, "optimal", 1);
            kvp_result oH = run_one(&sc, heads, "optimal", 1);
            check_le(oH.total_time_s, o1.total_time_s, "optimal of heads", "optimal of 3-D",
                     what);
        }
        kvp_trace_free(one);
        kvp_trace_free(heads);
    }
}

/* Two sequences of different lengths, one layer, toy machine (tok_bytes 2 B, HBM 1000 B/s,
 * DRAM and link 100 B/s each way).  A: P = 1, N = 3, reads {0}, {1}, {2} (each step the token
 * of the step before); B: P = 1, N = 1, reads {0}.  Blocks b * 2 + i.
 * With 100 B of weights (0.1 s a step) and 1 slot nothing below HBM reaches 0.1 s (at most
 * 6 B of DRAM traffic a step, below), so the optimum, lpbound and plan are 0.3 s.
 * With 1 B of weights (0.001 s) and 1 slot, by hand:
 * n = 0: A0 and B0 are read, one slot: at least one from DRAM (2 B).  The new A1 and B1 are
 *   written; after the step at most one of A0, B0, A1, B1 is in HBM, so at least 4 B are
 *   written below (two new tokens below, or one new token and the holder demoted: a token
 *   just read is demoted with no HBM read, 2 B to DRAM).  DRAM: 2 + 4 = 6 B: 0.06 s.
 * n = 1: B has finished: B0 and B1 leave at no cost.  A reads A1 and writes A2, one slot: one
 *   of the two is below after the step, or A1 is read from DRAM: at least 2 B: 0.02 s; and
 *   0.02 s is reached (A1 read from DRAM and A2 into the slot that B0 held, or A1 in HBM
 *   and A2 below).
 * n = 2: the same, 0.02 s.  OPT = 0.06 + 0.02 + 0.02 = 0.10 s; 4 tokens decoded (3 + 1). */
static void test_two_sequences(void)
{
    static const int a_marks[][8] = {{0, -1}, {1, -1}, {2, -1}};
    static const int b_marks[][8] = {{0, -1}};
    kvp_trace *seq[2] = {marks_trace(3, 3, a_marks), marks_trace(1, 1, b_marks)};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_sequences(&t, seq, 2, &err), &err);
    kvp_scenario sc;
    toy_machine(&sc, 100, 102, 100);
    kvp_result o = run_one(&sc, t, "optimal", 1);
    CHECK_NEAR(o.total_time_s, 0.3, 1e-12);
    CHECK_EQ_INT(o.sequences, 2);
    CHECK_NEAR(o.throughput_tok_s, 4 / 0.3, 1e-12);
    kvp_result lp = run_one(&sc, t, "lpbound", 1), pl = run_one(&sc, t, "plan", 1);
    CHECK_NEAR(lp.total_time_s, 0.3, 1e-12);
    CHECK_NEAR(pl.total_time_s, 0.3, 1e-12);
    assign_u64(&sc, "weight_bytes", 1);
    assign_u64(&sc, "hbm_capacity", 3);
    o = run_one(&sc, t, "optimal", 1);
    CHECK_NEAR(o.total_time_s, 0.10, 1e-12);
    lp = run_one(&sc, t, "lpbound", 1);
    pl = run_one(&sc, t, "plan", 1);
    check_le(lp.total_time_s, o.total_time_s, "lpbound", "optimal", "two sequences");
    check_le(o.total_time_s, pl.total_time_s, "optimal", "plan", "two sequences");
    kvp_trace_free(t);
}

/* The two sequences of tests/test_streams.c under hot (decay 0.5, est 1, budget 1), toy
 * machine (tok_bytes 2 B, HBM 1000 B/s, DRAM and link 100 B/s, weights 100 B, 3 slots).
 * A: P = 2, N = 3, reads {0,1}, {0,2}, {1,3}; B: P = 1, N = 1, reads {0}.  Blocks b * 2 + i
 * (A's even, B's odd); bool marks: every read adds 1; p = 0.5 e decayed 0.5 a step unread.
 * Rows of S = 2 tokens: the counts of the quota are halved.
 * Initial: A0 (0), B0 (1), A1 (2), queued in that order.
 * n = 0: all three read from HBM (6 B), each e = 1; no miss.  New B1 (3) and A2 (4): allow =
 *   0 + 2 / 2 = 1, so the row of new tokens comes in; no slot is free and every queued
 *   entry was just read (stale), and the reads (3) + a row (2) >= 3 slots, so the read
 *   tokens are victims, lowest first, all at p = 0.5: A0 and B0, demoted with no HBM read
 *   (just read): 4 B to DRAM, 4 B down.  HBM 100 + 6 + 4 (new) = 110 B: t = 0.110.
 * n = 1: B finished: B0 (DRAM) and B1 (HBM) leave, a slot is free.  A reads A0 (DRAM, 2 B,
 *   e = 1.5, p = 0.75) and A2 (HBM).  New A3 (6) takes the free slot; the miss A0 may come
 *   up (allow 1 >= 0.5 misses: every miss): the queue's live entry A1 (dropped out of the
 *   read set at step 1, p = 0.5 x 1 x 0.5 = 0.25 < 0.75) is the victim, unread: 2 B read
 *   from HBM, 2 B to DRAM, down 2 B; A0 comes up (just read: 2 B HBM written).  HBM 100 + 2 +
 *   2 + 2 + 2 = 108 B: 0.108; DRAM 2 + 2 = 4 B: 0.04.  t = 0.108.
 * n = 2: A reads A1 (DRAM, e = 1.25, p = 0.625) and A3 (HBM).  No slot free: the new A4 (8)
 *   and the miss need two victims: A0 (p = 0.375) and A2 (p = 0.25), unread, coldest first:
 *   A2 makes room for A4, A0 for A1.  HBM 100 + 2 + 4 (demotion reads) + 4 (A1, A4) = 110 B:
 *   0.110; DRAM 2 + 4 = 6 B: 0.06; down 4 B.  t = 0.110.
 * T = 0.328; HBM reads 10 B, DRAM 4 B; promoted 4 B (A0, A1), demoted 10 B (B0 2 B, A 8 B);
 * HBM written 12 B, link down 10 B.  Without the freeing, A3 would have needed a victim. */
static void test_two_sequences_hot(void)
{
    static const int a_marks[][8] = {{0, 1, -1}, {0, 2, -1}, {1, 3, -1}};
    static const int b_marks[][8] = {{0, -1}};
    kvp_trace *seq[2] = {marks_trace(3, 4, a_marks), marks_trace(1, 1, b_marks)};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_sequences(&t, seq, 2, &err), &err);
    kvp_scenario sc;
    toy_machine(&sc, 100, 106, 100);
    kvp_result r = run_one(&sc, t, "hot", 1);
    CHECK_NEAR(r.total_time_s, 0.328, 1e-12);
    CHECK_EQ_U64(r.kv_read_hbm, 10);
    CHECK_EQ_U64(r.kv_read_dram, 4);
    CHECK_EQ_U64(r.promoted_bytes, 4);
    CHECK_EQ_U64(r.demoted_bytes, 10);
    CHECK_EQ_U64(r.hbm_write, 12);
    CHECK_EQ_U64(r.link_down, 10);
    CHECK_EQ_U64(r.dram_write, 10);
    CHECK_EQ_U64(r.seq[1].demoted_bytes, 2);
    CHECK_EQ_U64(r.seq[0].demoted_bytes, 8);
    CHECK_EQ_U64(r.seq[0].promoted_bytes, 4);
    kvp_trace_free(t);
}

/* Too large for the exact solver, and streams with more than two tiers: one message each. */
static void test_refusals(void)
{
    float f[8 * 1 * 60] = {0};
    kvp_trace *a = NULL, *b = NULL, *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&a, f, 8, 1, 60, 0, "big_a", &err), &err);
    REQUIRE_OK(kvp_trace_from_memory(&b, f, 8, 1, 60, 0, "big_b", &err), &err);
    kvp_trace *pair[2] = {a, b};
    REQUIRE_OK(kvp_trace_sequences(&t, pair, 2, &err), &err);
    kvp_scenario sc;
    toy_machine(&sc, 100, 200, 100);
    kvp_policy_spec ps;
    kvp_result r;
    REQUIRE_OK(kvp_policy_parse(&ps, "optimal", &err), &err);
    CHECK_FAILS(kvp_run(&sc, t, &ps, NULL, &r, &err), KVP_EINVAL, &err,
                "is too large for the exact solver: 2 streams x up to 61 positions x steps 8 = 976 per layer (at most 700)");
    REQUIRE_OK(kvp_param_assign(&sc, "tiers=3", &err), &err);
    REQUIRE_OK(kvp_param_assign(&sc, "tier2_capacity=100000", &err), &err);
    REQUIRE_OK(kvp_param_assign(&sc, "tier2_bandwidth=50", &err), &err);
    REQUIRE_OK(kvp_param_assign(&sc, "link2_bandwidth=20", &err), &err);
    static const char *const specs[] = {"lpbound", "plan", "optimal", "hot", "steer", "static"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        REQUIRE_OK(kvp_policy_parse(&ps, specs[i], &err), &err);
        CHECK_FAILS(kvp_run(&sc, t, &ps, NULL, &r, &err), KVP_EINVAL, &err,
                    "big_a+big_b: several streams (KV heads or sequences) with more than two "
                    "tiers are not supported yet");
    }
    kvp_trace_free(t);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"chain_random", test_chain_random},
        {"one_sequence", test_one_sequence},
        {"identical_sequences", test_identical_sequences},
        {"identical_heads", test_identical_heads},
        {"two_sequences", test_two_sequences},
        {"two_sequences_hot", test_two_sequences_hot},
        {"refusals", test_refusals},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
