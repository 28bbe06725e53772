/* Streams (docs/MODEL.md "Streams"): KV heads of a 4-D trace and distinct sequences.
 *
 * The oracles: S identical streams with a budget that splits evenly must give exactly the
 * single-stream run at batch * S (sequences) or at the same batch (heads), for every policy
 * that runs on streams, since every rule ranks blocks by (b, stream) and sums bytes over the
 * streams before the step's max (a property over random scenarios, seed printed); a
 * hand-worked two-sequence case of different lengths; bad input. */
#include "check.h"
#include "support.h"
#include "engine/runner.h" /* kvp_engine_set_serve_bits */
#include "trace/trace.h"    /* kvp_cursor_sets_only */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stream_policies[] = {
    "unlimited", "static",  "bound",   "reactive",       "reactive:g=3",
    "page:page_tokens=5", "page:page_tokens=3", "lookahead:W=1:R=1", "lookahead:W=4:R=0.3",
    "lookahead:W=7:R=0", "lookahead:W=3:R=0.5", "sa:budget=5:W_max=6:W0=3", "hot",
    "hot:decay=1:est=0", "balanced", "payback", "steer", "steer:budget=0.4:payback=0.5", "whittle",
    "whittle:payback=0:horizon=16",
};
#define NPOL (sizeof stream_policies / sizeof *stream_policies)

/* Every number of the two results, exactly. */
static int same_result(const kvp_result *a, const kvp_result *b, const char *what)
{
    int ok = same_report(a, b);
    if (!check_report_(ok, __FILE__, __LINE__, what))
        fprintf(stderr, "    %s: time %.17g vs %.17g, hbm %llu vs %llu, dram %llu vs %llu, "
                "promoted %llu vs %llu, demoted %llu vs %llu, params %s vs %s\n", a->policy,
                a->total_time_s, b->total_time_s, (unsigned long long)a->kv_read_hbm,
                (unsigned long long)b->kv_read_hbm, (unsigned long long)a->kv_read_dram,
                (unsigned long long)b->kv_read_dram, (unsigned long long)a->promoted_bytes,
                (unsigned long long)b->promoted_bytes, (unsigned long long)a->demoted_bytes,
                (unsigned long long)b->demoted_bytes, a->params, b->params);
    return ok;
}

/* S identical 3-D sequences at batch b == one sequence at batch b * S. */
static void test_identical_sequences(void)
{
    uint64_t x = check_seed;
    printf("identical_sequences: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 6; round++) {
        const uint32_t S = sm_in(&x, 2, 3), L = sm_in(&x, 1, 2), P = sm_in(&x, 1, 30);
        const uint32_t N = sm_in(&x, 1, 25), C = P + N - 1, b = sm_in(&x, 1, 2);
        const uint32_t m = sm_in(&x, 0, 3);
        const double sparsity = (double)sm_in(&x, 0, 9) / 10;
        float *d = sm_scores(&x, N, L, C);
        kvp_trace *one = NULL, *multi = NULL;
        same_sequences(d, N, L, C, S, &one, &multi);
        free(d);
        CHECK_EQ_INT(kvp_trace_stream_count(multi), S);
        CHECK_EQ_INT(kvp_trace_sequence_count(multi), S);
        kvp_scenario s1, sS;
        /* tok_bytes of a stream: 2 * 1 head * b; of the single run at batch b * S: S times */
        /* 15 m slots a layer: they split evenly for g in 1, 3, 5 */
        streams_scenario(&s1, L, 1, b * S, 2ull * b * S, 15 * m, 37, sparsity);
        streams_scenario(&sS, L, 1, b, 2ull * b * S, 15 * m, 37, sparsity);
        for (size_t i = 0; i < NPOL; i++) {
            kvp_result r1 = run_one(&s1, one, stream_policies[i], 1);
            kvp_result rS = run_one(&sS, multi, stream_policies[i], 2);
            char what[160];
            snprintf(what, sizeof what, "round %d: %s, S=%u L=%u P=%u N=%u b=%u m=%u s=%g",
                     round, stream_policies[i], S, L, P, N, b, m, sparsity);
            same_result(&rS, &r1, what);
            CHECK_EQ_INT(rS.sequences, S);
            CHECK_EQ_INT(rS.slots, r1.slots == UINT32_MAX ? UINT32_MAX : r1.slots * S);
        }
        kvp_trace_free(one);
        kvp_trace_free(multi);
    }
}

/* A 4-D trace whose H heads are identical == the 3-D trace at the same batch (throughput
 * unchanged). */
static void test_identical_heads(void)
{
    uint64_t x = check_seed ^ 0x5EEDull;
    printf("identical_heads: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 6; round++) {
        const uint32_t H = sm_in(&x, 2, 4), L = sm_in(&x, 1, 2), P = sm_in(&x, 1, 30);
        const uint32_t N = sm_in(&x, 1, 25), C = P + N - 1, b = sm_in(&x, 1, 3);
        const uint32_t m = sm_in(&x, 0, 3);
        const double sparsity = (double)sm_in(&x, 0, 9) / 10;
        float *d = sm_scores(&x, N, L, C);
        kvp_trace *one = NULL, *heads = NULL;
        same_heads(d, N, L, H, C, &one, &heads);
        free(d);
        CHECK_EQ_INT(kvp_trace_heads(heads), H);
        CHECK_EQ_INT(kvp_trace_sequence_count(heads), 1);
        kvp_scenario sc;
        streams_scenario(&sc, L, H, b, 2ull * H * b, 15 * m, 53, sparsity);
        for (size_t i = 0; i < NPOL; i++) {
            kvp_result r1 = run_one(&sc, one, stream_policies[i], 1);
            kvp_result rH = run_one(&sc, heads, stream_policies[i], 2);
            char what[160];
            snprintf(what, sizeof what, "round %d: %s, H=%u L=%u P=%u N=%u b=%u m=%u s=%g",
                     round, stream_policies[i], H, L, P, N, b, m, sparsity);
            same_result(&rH, &r1, what);
        }
        kvp_trace_free(one);
        kvp_trace_free(heads);
    }
}

/* The hand-worked cases' two sequences (below) and toy machine. */
static kvp_trace *two_sequences(kvp_scenario *sc)
{
    static const int a_marks[][8] = {{0, 1, -1}, {0, 2, -1}, {1, 3, -1}};
    static const int b_marks[][8] = {{0, -1}};
    kvp_trace *seq[2] = {marks_trace(3, 4, a_marks), marks_trace(1, 1, b_marks)};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_sequences(&t, seq, 2, &err), &err);
    toy_machine(sc, 100, 106, 100);
    return t;
}

/* Two sequences of different lengths, static, one layer, toy machine (tok_bytes 2 B, HBM
 * 1000 B/s, DRAM 100 B/s, link 100 B/s, weights 100 B, 3 slots).  A: P = 2, N = 3, reads {0,1},
 * {0,2}, {1,3}; B: P = 1, N = 1, reads {0}.  Blocks b * 2 + i: A's are even, B's odd.
 * Initial: the prompt blocks A0 (0), B0 (1), A1 (2): full.
 * n = 0: reads 3 tokens from HBM (6 B); the new tokens A2 (4) and B1 (3) find no slot: DRAM
 *   (4 B written, 4 B down).  t = max(106 / 1000, 4 / 100, 4 / 100) = 0.106.
 * n = 1: B finished: B0 and B1 leave at no cost, a slot is free.  A reads A0 (HBM, 2 B) and
 *   A2 (DRAM: 2 B read, 2 B up); its new token A3 (6) takes the free slot (2 B HBM write).
 *   t = max(104 / 1000, 2 / 100, 2 / 100) = 0.104.
 * n = 2: A reads A1 and A3 from HBM (4 B); A4 (8) to DRAM (2 B, 2 B down).  t = 0.104.
 * T = 0.314; 4 tokens decoded (3 + 1); per sequence A: 10 B from HBM, 2 B from DRAM;
 * B: 2 B from HBM.  Without the freeing, A3 would go to DRAM (hbm_write 0). */
static void test_two_sequences_static(void)
{
    kvp_scenario sc;
    kvp_trace *t = two_sequences(&sc);
    kvp_result r = run_one(&sc, t, "static", 1);
    CHECK_NEAR(r.total_time_s, 0.314, 1e-12);
    CHECK_NEAR(r.throughput_tok_s, 4 / 0.314, 1e-12);
    CHECK_EQ_U64(r.kv_read_hbm, 12);
    CHECK_EQ_U64(r.kv_read_dram, 2);
    CHECK_EQ_U64(r.hbm_read, 12);
    CHECK_EQ_U64(r.hbm_write, 2);
    CHECK_EQ_U64(r.dram_read, 2);
    CHECK_EQ_U64(r.dram_write, 6);
    CHECK_EQ_U64(r.link_up, 2);
    CHECK_EQ_U64(r.link_down, 6);
    CHECK_EQ_U64(r.weight_read, 300);
    CHECK_EQ_U64(r.promoted_bytes, 0);
    CHECK_EQ_INT(r.steps, 3);
    CHECK_EQ_INT(r.slots, 3);
    CHECK_EQ_INT(r.sequences, 2);
    CHECK_EQ_INT(r.seq[0].prompt, 2);
    CHECK_EQ_INT(r.seq[0].steps, 3);
    CHECK_EQ_INT(r.seq[1].prompt, 1);
    CHECK_EQ_INT(r.seq[1].steps, 1);
    CHECK_EQ_U64(r.seq[0].kv_read_hbm, 10);
    CHECK_EQ_U64(r.seq[0].kv_read_dram, 2);
    CHECK_EQ_U64(r.seq[1].kv_read_hbm, 2);
    CHECK_EQ_U64(r.seq[1].kv_read_dram, 0);
    kvp_trace_free(t);
}

/* The same two sequences under reactive (LRU, 3 slots): reads and moves of both streams
 * summed before the step's max.  Initial A0, B0, A1 (never accessed).
 * n = 0: accessed A0, A1, B0 (3) + new A2, B1 (2) > 3 slots: overflow.  Keep the new blocks
 *   (A2 = block 4 and B1 = block 3: 2 slots), then the accessed one of highest score (all
 *   score 1: the lower index, A0).  B0 (1) and A1 (2) are demoted; both were just read
 *   (a = pres = 1), so the demotion reads nothing from HBM and writes 2 tokens below (4 B,
 *   4 B down).  The new tokens go to HBM (4 B).  HBM: 100 + 6 (reads) + 4 = 110 B: 0.110 s;
 *   DRAM 4 B and down 4 B: 0.04.  t = 0.110.
 * n = 1: B finished: B0 (DRAM) and B1 (HBM) leave; HBM holds A0, A2.  A reads A0 and A2
 *   (HBM, 4 B); new A3 (6): 3 blocks <= 3, no eviction; HBM 100 + 4 + 2 = 106 B: 0.106.
 * n = 2: A reads A1 (block 2, DRAM: 2 B up) and A3 (HBM, 2 B); new A4 (8).  Accessed A1, A3
 *   + new = 3 <= 3: promote A1 (pres 1, a 1: 0 B more read, 2 B HBM written); HBM holds
 *   A0, A2, A3, A1, A4 = 5 > 3: evict the 2 oldest not accessed: A0 (stamp 2), A2 (stamp
 *   2): ties lower index, both go (pres 1, a 0: 2 B read each from HBM, 2 B down each).
 *   HBM: 100 + 2 (read A3) + 4 (demotion reads) + 2 (A1 in) + 2 (A4) = 110 B: 0.110;
 *   DRAM: 2 (A1 read) + 4 (demoted) = 6 B: 0.06; up 2 B, down 4 B.  t = 0.110.
 * T = 0.326. */
static void test_two_sequences_reactive(void)
{
    kvp_scenario sc;
    kvp_trace *t = two_sequences(&sc);
    kvp_result r = run_one(&sc, t, "reactive", 1);
    CHECK_NEAR(r.total_time_s, 0.326, 1e-12);
    CHECK_EQ_U64(r.kv_read_hbm, 6 + 4 + 2);
    CHECK_EQ_U64(r.kv_read_dram, 2);
    CHECK_EQ_U64(r.demoted_bytes, 4 + 4);
    CHECK_EQ_U64(r.promoted_bytes, 2);
    CHECK_EQ_U64(r.hbm_write, 4 + 2 + 2 + 2);
    CHECK_EQ_U64(r.link_down, 4 + 4);
    CHECK_EQ_U64(r.seq[0].promoted_bytes, 2);
    CHECK_EQ_U64(r.seq[0].demoted_bytes, 2 + 4);
    CHECK_EQ_U64(r.seq[1].demoted_bytes, 2);
    kvp_trace_free(t);
}

/* reactive's LRU ties among one step's blocks: lower index first, a new block among the reads
 * by index (docs/MODEL.md "Streams").  A: P = 1, reads {0}, {0}, {1}; B: P = 3, reads {1, 2},
 * {0}, {2}; 6 slots; blocks b * 2 + i.  Initial: A0 (0), B0 (1), B1 (3), B2 (5).
 * n = 0: reads A0, B1, B2 + new A1 (2), B3 (7): 5 <= 6, all fit, 6 held.
 * n = 1: reads A0, B0 + new A2 (4), B4 (9): 8 held > 6, evict 2 of those last accessed at
 *   step 0 (A1, B1, B2, B3): the lowest, A1 (2) and B1 (3), not B2 (5), although A1, a new
 *   block of the shorter sequence, was listed after the reads at step 0.
 * n = 2: A reads A1 (DRAM, 2 B), B reads B2 (HBM).  An LRU that kept step 0's new blocks
 *   behind its reads would have evicted B1 and B2, and B would read 2 B from DRAM instead. */
static void test_two_sequences_reactive_ties(void)
{
    static const int a_marks[][8] = {{0, -1}, {0, -1}, {1, -1}};
    static const int b_marks[][8] = {{1, 2, -1}, {0, -1}, {2, -1}};
    kvp_trace *seq[2] = {marks_trace(3, 3, a_marks), marks_trace(3, 5, b_marks)};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_sequences(&t, seq, 2, &err), &err);
    kvp_scenario sc;
    toy_machine(&sc, 100, 112, 100);
    kvp_result r = run_one(&sc, t, "reactive", 1);
    CHECK_EQ_INT(r.slots, 6);
    CHECK_EQ_U64(r.kv_read_dram, 2);
    CHECK_EQ_U64(r.seq[0].kv_read_dram, 2);
    CHECK_EQ_U64(r.seq[1].kv_read_dram, 0);
    CHECK_EQ_U64(r.seq[0].kv_read_hbm, 2 + 2);
    CHECK_EQ_U64(r.seq[1].kv_read_hbm, 4 + 2 + 2);
    kvp_trace_free(t);
}

/* Distinct sequences of random lengths, g in {1, 3, 5}: every stream policy runs in checking
 * mode (capacity, tiers, no step below the bound), all read the same bytes, the per-sequence
 * reads add up to the totals, and the throughput counts every sequence's steps. */
static void test_distinct_random(void)
{
    uint64_t x = check_seed ^ 0xD15ull;
    printf("distinct_random: seed %llu\n", (unsigned long long)check_seed);
    for (int round = 0; round < 8; round++) {
        const uint32_t S = sm_in(&x, 2, 4), L = sm_in(&x, 1, 2), m = sm_in(&x, 0, 2);
        const double sparsity = (double)sm_in(&x, 0, 9) / 10;
        kvp_trace *seq[4];
        uint64_t decoded = 0;
        for (uint32_t q = 0; q < S; q++) {
            const uint32_t P = sm_in(&x, 1, 25), N = sm_in(&x, 1, 20), C = P + N - 1;
            float *d = sm_scores(&x, N, L, C);
            REQUIRE_OK(kvp_trace_from_memory(&seq[q], d, N, L, C, 0, "q", &err), &err);
            free(d);
            decoded += N;
        }
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
        kvp_scenario sc;
        streams_scenario(&sc, L, 1, 1, 2, 15 * m, 29, sparsity);
        uint64_t reads = 0;
        for (size_t i = 0; i < NPOL; i++) {
            kvp_result r = run_one(&sc, t, stream_policies[i], 2);
            char what[160];
            snprintf(what, sizeof what, "round %d: %s, S=%u L=%u m=%u", round,
                     stream_policies[i], S, L, m);
            const uint64_t all = r.kv_read_hbm + r.kv_read_dram;
            if (i == 0)
                reads = all;
            if (!check_report_(all == reads, __FILE__, __LINE__, what))
                fprintf(stderr, "    reads %llu, unlimited's %llu\n", (unsigned long long)all,
                        (unsigned long long)reads);
            CHECK_NEAR(r.throughput_tok_s * r.total_time_s, (double)decoded, 1e-9);
            if (strcmp(r.policy, "bound") == 0)
                continue;
            uint64_t per = 0;
            for (uint32_t q = 0; q < S; q++)
                per += r.seq[q].kv_read_hbm + r.seq[q].kv_read_dram;
            CHECK_EQ_U64(per, all);
        }
        kvp_trace_free(t);
    }
}

/* A read of the merge done by hand: its virtual position and score. */
typedef struct vread {
    uint64_t v;
    float score;
} vread;

static int vread_cmp(const void *x, const void *y)
{
    const vread *a = x, *b = y;
    return a->v < b->v ? -1 : a->v > b->v;
}

/* Every step of every layer of t's own cursor (the streams' merge) against the merge done by
 * hand: each stream's set from a cursor of its own, as virtual positions p * S + i, sorted,
 * with their scores (unless sets only); a finished stream reads nothing.  One check a step. */
/* mode 0: sets and scores merged; 1: sets only; 2: the scores kept stream by stream
 * (kvp_cursor_scores_by_stream, S a power of two: a->score NULL), then each stream's own
 * set and scores in the cursor's view and the view's scores merged (kvp_streams_view_scores)
 * checked against the streams' own cursors. */
static void check_merge(const kvp_trace *t, kvp_budget bud, int mode, const char *what)
{
    const uint32_t S = kvp_trace_stream_count(t);
    const int sets_only = mode == 1, by_stream = mode == 2;
    const int pow2 = S <= 64 && (S & (S - 1)) == 0;
    kvp_cursor **sub = calloc(S, sizeof *sub);
    const kvp_streams *si = kvp_trace_streams(t);
    vread *want = malloc((size_t)si->positions * S * sizeof *want);
    double *vs = malloc((size_t)si->positions * S * sizeof *vs);
    /* per stream: its set of the step as bits, its scores, its context */
    const uint32_t words = si->positions / 64 + 1;
    uint64_t *own = malloc((size_t)words * S * sizeof *own);
    float *oscore = malloc((size_t)si->positions * S * sizeof *oscore);
    uint32_t octx[64], ocount[64];
    REQUIRE(sub && want && vs && own && oscore);
    for (uint32_t l = 0; l < kvp_trace_layers(t); l++) {
        kvp_cursor *c = NULL;
        REQUIRE_OK(kvp_cursor_create(&c, t, l, bud, &err), &err);
        if (sets_only)
            kvp_cursor_sets_only(c);
        if (by_stream)
            check_report_(kvp_cursor_scores_by_stream(c) == pow2, __FILE__, __LINE__,
                          "scores kept by stream where the merge goes by bits");
        for (uint32_t i = 0; i < S; i++)
            REQUIRE_OK(kvp_cursor_create(&sub[i], kvp_trace_stream(t, i), l, bud, &err), &err);
        for (uint32_t n = 0; n < kvp_trace_steps(t); n++) {
            kvp_access a, s;
            uint32_t k = 0, ctx = 0, bad = 0;
            memset(own, 0, (size_t)words * S * sizeof *own);
            for (uint32_t i = 0; i < S; i++) {
                octx[i] = ocount[i] = 0;
                if (n >= si->steps[i] || kvp_cursor_next(sub[i], &s, &err) != 1)
                    continue;
                ctx = s.context > ctx ? s.context : ctx;
                octx[i] = s.context;
                ocount[i] = s.count;
                for (uint32_t q = 0; q < s.count; q++) {
                    want[k++] = (vread){(uint64_t)s.pos[q] * S + i, s.score ? s.score[q] : 1};
                    own[(size_t)i * words + s.pos[q] / 64] |= 1ull << (s.pos[q] % 64);
                    oscore[(size_t)i * si->positions + q] = s.score ? s.score[q] : 1;
                }
            }
            qsort(want, k, sizeof *want, vread_cmp);
            const int merged_scores = !sets_only && !(by_stream && pow2);
            if (kvp_cursor_next(c, &a, &err) != 1 || a.count != k ||
                a.context != (uint64_t)ctx * S || merged_scores != (a.score != NULL))
                bad = 1;
            for (uint32_t q = 0; !bad && q < k; q++)
                bad = a.pos[q] != want[q].v || (merged_scores && a.score[q] != want[q].score);
            /* the merge by bits hands the set out as bits too, exactly its positions */
            if (!bad && pow2 != (a.bits != NULL))
                bad = 2;
            /* and each stream's own, in its view */
            kvp_streams_view view;
            if (!bad && pow2 != kvp_cursor_streams_view(c, &view))
                bad = 4;
            for (uint32_t i = 0; !bad && pow2 && i < S; i++) {
                bad = view.S != S || view.ctx[i] != octx[i] ? 5 : 0;
                for (uint32_t w = 0; !bad && w < (octx[i] + 63) / 64; w++)
                    bad = view.bits[(size_t)w * S + i] != own[(size_t)i * words + w] ? 6 : 0;
                for (uint32_t q = 0; !bad && !sets_only && q < ocount[i]; q++)
                    bad = view.score[i][q] != oscore[(size_t)i * si->positions + q] ? 7 : 0;
            }
            if (!bad && by_stream && pow2) {
                kvp_streams_view_scores(&view, vs);
                for (uint32_t q = 0; !bad && q < k; q++)
                    bad = vs[q] != (double)want[q].score ? 8 : 0;
            }
            for (uint64_t v = 0, q = 0; !bad && a.bits && v < ((uint64_t)a.context + 63) / 64 * 64;
                 v++) {
                const int in = q < k && a.pos[q] == v;
                q += (uint64_t)in;
                bad = (int)(a.bits[v >> 6] >> (v & 63) & 1) != in ? 3 : 0;
            }
            char msg[200];
            snprintf(msg, sizeof msg, "%s, layer %u step %u: %u reads (%u by hand)%s: %u", what,
                     l, n, a.count, k,
                     sets_only ? ", sets only" : by_stream ? ", scores by stream" : "", bad);
            check_report_(!bad, __FILE__, __LINE__, msg);
        }
        for (uint32_t i = 0; i < S; i++)
            kvp_cursor_free(sub[i]);
        kvp_cursor_free(c);
    }
    free(want);
    free(sub);
    free(vs);
    free(own);
    free(oscore);
}

/* The merge (by bits for S a power of two, by a scatter otherwise) against the merge done by
 * hand: sequences of random memory traces, S from 2 to 64 (7 and 24 not powers of two),
 * prompts across several 64-position words, steps of their own (up to 40: streams finish early, some between two read-aheads); and
 * synthetic sequences of KV heads, whose streams the merge reads as bits from the generator
 * while their own cursors make lists. */
static void test_merge(void)
{
    uint64_t x = check_seed ^ 0x3E76Eull;
    printf("merge: seed %llu\n", (unsigned long long)check_seed);
    static const uint32_t sizes[] = {2, 4, 7, 8, 16, 24, 32, 64};
    for (size_t r = 0; r < sizeof sizes / sizeof *sizes; r++) {
        const uint32_t S = sizes[r];
        kvp_trace *seq[64];
        for (uint32_t q = 0; q < S; q++) {
            const uint32_t P = sm_in(&x, 1, 200), N = sm_in(&x, 1, 40), C = P + N - 1;
            float *d = sm_scores(&x, N, 1, C);
            REQUIRE_OK(kvp_trace_from_memory(&seq[q], d, N, 1, C, 0, "q", &err), &err);
            free(d);
        }
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
        char what[64];
        snprintf(what, sizeof what, "%u memory streams", S);
        const kvp_budget bud = kvp_budget_sparsity((double)sm_in(&x, 0, 9) / 10);
        check_merge(t, bud, 1, what);
        check_merge(t, bud, 0, what);
        check_merge(t, bud, 2, what);
        kvp_trace_free(t);
    }
    /* synthetic sequences of prompts and steps of their own (the merge makes a step of up
     * to eight of them at a time, kvp_cursor_next_bits_many), some finishing early (the
     * first in the middle of a read-ahead) */
    static const uint32_t ssizes[] = {4, 8, 16};
    for (size_t r = 0; r < sizeof ssizes / sizeof *ssizes; r++) {
        const uint32_t S = ssizes[r];
        kvp_trace *seq[16];
        for (uint32_t q = 0; q < S; q++) {
            kvp_synth_params sp;
            memset(&sp, 0, sizeof sp);
            sp.prompt = sm_in(&x, 1, 300);
            sp.steps = q == 0 ? 21 : q == 1 ? 40 : sm_in(&x, 1, 40);
            sp.layers = 2;
            sp.budget = kvp_budget_sparsity(0.6);
            sp.variation = KVP_VAR_ACTUAL;
            sp.seed = 77 + q;
            REQUIRE_OK(kvp_trace_synthetic(&seq[q], &sp, &err), &err);
        }
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
        char what[64];
        snprintf(what, sizeof what, "%u synthetic streams of their own lengths", S);
        check_merge(t, kvp_budget_sparsity(0.6), 1, what);
        check_merge(t, kvp_budget_sparsity(0.6), 0, what);
        check_merge(t, kvp_budget_sparsity(0.6), 2, what);
        kvp_trace_free(t);
    }
    static const uint32_t shapes[][3] = {{4, 8, 150}, {1, 4, 64}, {3, 2, 130}, {2, 1, 1}};
    for (size_t r = 0; r < sizeof shapes / sizeof *shapes; r++) {
        kvp_scenario sc;
        kvp_scenario_default(&sc);
        sc.prompt = shapes[r][2];
        sc.steps = 20;
        sc.layers = 2;
        sc.seed = 1000 + r;
        kvp_synth_params p;
        kvp_synth_default(&p, &sc);
        p.heads = shapes[r][1];
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_synthetic_sequences(&t, &p, shapes[r][0], &err), &err);
        char what[64];
        snprintf(what, sizeof what, "synthetic, %u sequences x %u heads", shapes[r][0],
                 shapes[r][1]);
        check_merge(t, kvp_budget_sparsity(0.6), 1, what);
        check_merge(t, kvp_budget_sparsity(0.6), 0, what);
        check_merge(t, kvp_budget_sparsity(0.6), 2, what);
        kvp_trace_free(t);
    }
}

/* What a run of spec gives with the engine serving from the sets' bits and from the
 * positions (kvp_engine_set_serve_bits), checking mode or not: every field alike, and each
 * sequence's counts. */
static void same_served(const kvp_scenario *sc, const kvp_trace *t, const char *spec,
                        const char *what)
{
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1;
    kvp_result r[3];
    for (int k = 0; k < 3; k++) {
        ro.check = k == 2;
        kvp_engine_set_serve_bits(k != 1);
        r[k] = run_with(sc, t, spec, &ro);
    }
    kvp_engine_set_serve_bits(1);
    for (int k = 1; k < 3; k++) {
        char msg[240];
        snprintf(msg, sizeof msg, "%s: %s, %s", what, spec,
                 k == 1 ? "bits against positions" : "checking mode");
        int ok = same_result(&r[0], &r[k], msg) && r[0].sequences == r[k].sequences;
        for (uint32_t q = 0; ok && q < r[0].sequences; q++)
            ok = memcmp(&r[0].seq[q], &r[k].seq[q], sizeof r[0].seq[q]) == 0;
        check_report_(ok, __FILE__, __LINE__, msg);
    }
}

static const char *const served_policies[] = {
    "reactive", "reactive:g=3", "page:page_tokens=5", "page:page_tokens=1", "static",
    "unlimited", "lookahead:W=4:R=0.3", "lookahead:W=1:R=1", "hot", "whittle",
    /* blocks of 4 tokens and more: from the streams' own sets (serve_reads_view); of 2,
     * from the merged positions */
    "page:page_tokens=4", "page:page_tokens=8", "page:page_tokens=16", "page:page_tokens=64",
    "page:page_tokens=2",
};

/* The engine's serving from the sets' bits (S a power of two up to 64: the per-stream reads
 * and hits counted from the set's and the residency's bits, a moved block's "read this step"
 * from the set's bits, the bits copied into the look-ahead ring) against its serving from
 * the positions, as before (docs/PERF.md 37; rows of S g >= 32 tokens from each stream's
 * own sets, §52): sequences of random memory traces at S = 2, 3, 4, 8, 16, 64 (3: no bits,
 * the fallback), of random prompts and steps (streams finish, freeing their blocks), slots
 * from none to all, blocks of 1 to 64 tokens; then synthetic KV heads, whose sets the merge
 * takes as bits from the generator. */
static void test_served_bits(void)
{
    uint64_t x = check_seed ^ 0xB175ull;
    printf("served_bits: seed %llu\n", (unsigned long long)check_seed);
    /* S and the longest prompt: 4 x 4500 and 16 x 1500 pass 255 words of 64 virtual
     * positions (the counts' bytes added out) */
    static const uint32_t sizes[][2] = {{2, 150}, {3, 150}, {4, 4500}, {8, 150}, {16, 1500},
                                        {64, 150}};
    for (size_t r = 0; r < sizeof sizes / sizeof *sizes; r++) {
        const uint32_t S = sizes[r][0];
        kvp_trace *seq[64];
        uint32_t total = 0;
        for (uint32_t q = 0; q < S; q++) {
            const uint32_t P = sm_in(&x, 1, sizes[r][1]), N = sm_in(&x, 1, 30), C = P + N - 1;
            float *d = sm_scores(&x, N, 1, C);
            REQUIRE_OK(kvp_trace_from_memory(&seq[q], d, N, 1, C, 0, "q", &err), &err);
            free(d);
            total += P + N;
        }
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
        for (int round = 0; round < 3; round++) {
            const uint32_t slots = round == 0 ? 0 : round == 1 ? sm_in(&x, 1, total) : total;
            /* every position read once: a bit's count reaches the most its lanes hold */
            const double sparsity = round == 2 ? 0 : (double)sm_in(&x, 0, 9) / 10;
            kvp_scenario sc;
            streams_scenario(&sc, 1, 1, 1, 2, slots, 29, sparsity);
            char what[120];
            snprintf(what, sizeof what, "%u memory streams, slots %u of %u, sparsity %g", S,
                     slots, total, sparsity);
            for (size_t i = 0; i < sizeof served_policies / sizeof *served_policies; i++)
                same_served(&sc, t, served_policies[i], what);
        }
        kvp_trace_free(t);
    }
    static const uint32_t shapes[][3] = {{2, 4, 150}, {4, 4, 90}, {3, 1, 200}, {1, 2, 300}};
    for (size_t r = 0; r < sizeof shapes / sizeof *shapes; r++) {
        const uint32_t H = shapes[r][1];
        kvp_scenario sc;
        streams_scenario(&sc, 2, H, 1, 2ull * H, sm_in(&x, 1, 3 * shapes[r][2]), 29, 0.6);
        sc.prompt = shapes[r][2];
        sc.steps = 24;
        sc.seed = 2000 + r;
        kvp_synth_params p;
        kvp_synth_default(&p, &sc);
        p.heads = H;
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_synthetic_sequences(&t, &p, shapes[r][0], &err), &err);
        char what[120];
        snprintf(what, sizeof what, "synthetic, %u sequences x %u heads", shapes[r][0], H);
        for (size_t i = 0; i < sizeof served_policies / sizeof *served_policies; i++)
            same_served(&sc, t, served_policies[i], what);
        kvp_trace_free(t);
    }
}

static void test_bad_input(void)
{
    /* a 4-D trace whose heads are not the model's kv_heads */
    float f[2 * 1 * 3 * 4] = {0};
    const uint64_t shape[4] = {2, 1, 3, 4};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 4, shape, "arr3", &err), &err);
    kvp_scenario sc;
    toy_machine(&sc, 100, 200, 100); /* kv_heads 1 */
    kvp_policy_spec ps;
    kvp_result r;
    REQUIRE_OK(kvp_policy_parse(&ps, "static", &err), &err);
    CHECK_FAILS(kvp_run(&sc, t, &ps, NULL, &r, &err), KVP_ESHAPE, &err,
                "arr3: 4-D trace has 3 heads; model llama-3.1-8b has kv_heads 1");
    REQUIRE_OK(kvp_policy_parse(&ps, "bound", &err), &err);
    CHECK_FAILS(kvp_run(&sc, t, &ps, NULL, &r, &err), KVP_ESHAPE, &err, "has 3 heads");
    /* every policy runs on streams; more than two tiers are refused, with one message */
    assign_u64(&sc, "kv_heads", 3);
    REQUIRE_OK(kvp_param_assign(&sc, "tiers=3", &err), &err);
    REQUIRE_OK(kvp_param_assign(&sc, "tier2_capacity=100000", &err), &err);
    REQUIRE_OK(kvp_param_assign(&sc, "tier2_bandwidth=50", &err), &err);
    REQUIRE_OK(kvp_param_assign(&sc, "link2_bandwidth=20", &err), &err);
    REQUIRE_OK(kvp_policy_parse(&ps, "lpbound", &err), &err);
    CHECK_FAILS(kvp_run(&sc, t, &ps, NULL, &r, &err), KVP_EINVAL, &err,
                "with more than two tiers are not supported yet");
    kvp_trace_free(t);

    /* sequences of different layer counts */
    float g[2 * 2 * 4] = {0};
    kvp_trace *a = NULL, *b = NULL, *s = (kvp_trace *)&err;
    REQUIRE_OK(kvp_trace_from_memory(&a, g, 2, 1, 4, 0, "one_layer", &err), &err);
    REQUIRE_OK(kvp_trace_from_memory(&b, g, 2, 2, 4, 0, "two_layers", &err), &err);
    kvp_trace *pair[2] = {a, b};
    CHECK_FAILS(kvp_trace_sequences(&s, pair, 2, &err), KVP_ESHAPE, &err,
                "two_layers: trace has 2 layers; one_layer has 1");
    CHECK(s == NULL);
    /* 3-D beside 4-D */
    REQUIRE_OK(kvp_trace_from_memory(&a, g, 2, 1, 4, 0, "flat", &err), &err);
    const uint64_t shape2[4] = {2, 1, 2, 4};
    REQUIRE_OK(kvp_trace_from_buffer(&b, g, KVP_DTYPE_F32, 4, shape2, "heads", &err), &err);
    kvp_trace *mixed[2] = {a, b};
    CHECK_FAILS(kvp_trace_sequences(&s, mixed, 2, &err), KVP_ESHAPE, &err,
                "heads: 4-D; flat is 3-D");
    CHECK(s == NULL);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"identical_sequences", test_identical_sequences},
        {"identical_heads", test_identical_heads},
        {"two_sequences_static", test_two_sequences_static},
        {"two_sequences_reactive", test_two_sequences_reactive},
        {"two_sequences_reactive_ties", test_two_sequences_reactive_ties},
        {"distinct_random", test_distinct_random},
        {"merge", test_merge},
        {"served_bits", test_served_bits},
        {"bad_input", test_bad_input},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
