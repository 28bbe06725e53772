/*
 * The dynamic policies reactive, page and lookahead (docs/MODEL.md §5).  First hand-worked cases,
 * bytes and times derived in the comments; then a differential property test against a naive
 * reference written straight from docs/MODEL.md §3 and §5 (full sorts and scans, recounted
 * windows, none of the policies' incremental structures), which reads the access sets from
 * the trace's raw array itself, not through the library's cursor and top-k.
 *
 * Usage: test_policies [--seed N] [TEST...] (--list names them)
 */
#include "support.h"
#include "trace/trace.h"

/* ---------------------------------------------------------------------------------------- */
/* Helpers (the shared ones are in tests/support.h)                                         */

/* The toy machine (tests/support.h) with weights 10 B, read once per step (one layer:
 * w_layer = 10 B), and a link of 100 B/s each way; sparsity 0 (bool traces mark their reads).
 * kv_budget = hbm_capacity - 10, so hbm_capacity = 10 + slots * g * 2. */
static void toy(kvp_scenario *sc, unsigned long long hbm_capacity)
{
    toy_machine(sc, 10, hbm_capacity, 100);
    REQUIRE_OK(kvp_param_assign(sc, "sparsity=0", &err), &err);
}

/* Every byte counter, given in tokens of 2 B. */
typedef struct tokens {
    uint64_t kv_hbm, kv_dram, hbm_r, hbm_w, dram_r, dram_w, up, down, promoted, demoted;
} tokens;

static void check_tokens(const kvp_result *r, tokens t, double time_s, int line)
{
    const uint64_t got[] = {r->kv_read_hbm, r->kv_read_dram, r->hbm_read, r->hbm_write,
                            r->dram_read,   r->dram_write,   r->link_up,  r->link_down,
                            r->promoted_bytes, r->demoted_bytes};
    const uint64_t want[] = {t.kv_hbm, t.kv_dram, t.hbm_r, t.hbm_w,    t.dram_r,
                             t.dram_w, t.up,      t.down,  t.promoted, t.demoted};
    static const char *const name[] = {"kv_read_hbm", "kv_read_dram", "hbm_read",
                                       "hbm_write",   "dram_read",    "dram_write",
                                       "link_up",     "link_down",    "promoted_bytes",
                                       "demoted_bytes"};
    for (size_t i = 0; i < sizeof got / sizeof *got; i++)
        if (!check_report_(got[i] == 2 * want[i], __FILE__, line, name[i]))
            fprintf(stderr, "    %s: %llu != %llu\n", r->policy, (unsigned long long)got[i],
                    (unsigned long long)(2 * want[i]));
    if (!check_report_(fabs(r->total_time_s - time_s) <= 1e-12 * time_s, __FILE__, line,
                       "total_time_s"))
        fprintf(stderr, "    %s: %.17g != %.17g\n", r->policy, r->total_time_s, time_s);
}

/* ---------------------------------------------------------------------------------------- */
/* reactive                                                                                 */

static void test_lru_order(void)
{
    /* 3 slots (hbm_capacity 16), P = 4, N = 5, C = 8.  Initial {0,1,2}, never accessed, so
     * the LRU order is 0, 1, 2 (stamp -1, ties by index).
     * step 0 (ctx 4): reads {3} (DRAM).  Accessed 1 + new 1 <= 3.  Set {0,1,2} + 3 + new 4 =
     *   5: evict 0 then 1 (oldest, lower index first).  Promote 3 (pres 1, a 1: no DRAM
     *   read), new 4 to HBM.  Order 2(-1) 3(0) 4(0).
     *   tok: hbm r 2 (demotions) w 2 (promotion + new token), dram r 1 w 2, up 1, down 2
     *   -> max((10 + 8)/1000, 6/100, 2/100, 4/100) = .06
     * step 1 (ctx 5): reads {4} (HBM).  Set {2,3,4} + new 5 = 4: evict 2.  Order 3(0) 4(1)
     *   5(1).  tok: hbm r 2 w 1, dram w 1, down 1 -> max(.016, .02, 0, .02) = .02
     * step 2 (ctx 6): no reads.  Evict 3 (stamp 0).  Order 4(1) 5(1) 6(2).
     *   tok: hbm r 1 w 1, dram w 1, down 1 -> .02
     * step 3 (ctx 7): no reads.  4 and 5 both have stamp 1: evict the lower index, 4.
     *   -> .02
     * step 4 (ctx 8): reads {0 (DRAM), 5 (HBM)}.  Accessed 2 + new 1 <= 3.  Set {5,6,7} + 0 +
     *   new 8 = 5: evict 6, 7 (5 was accessed, so it stays).  Promote 0 (pres 1, a 1).
     *   tok: hbm r 3 w 2, dram r 1 w 2, up 1, down 2 -> max(.02, .06, .02, .04) = .06
     * Evicting 5 at step 3 (a wrong tie) would make the read of 5 at step 4 a DRAM read. */
    static const int marks[5][8] = {{3, -1}, {4, -1}, {-1}, {-1}, {0, 5, -1}};
    kvp_scenario sc;
    toy(&sc, 16);
    kvp_trace *t = marks_trace(5, 8, marks);
    kvp_result r = run_one(&sc, t, "reactive", 1);
    CHECK_EQ_U64(r.slots, 3);
    CHECK_EQ_U64(r.block_tokens, 1);
    check_tokens(&r, (tokens){2, 2, 9, 7, 2, 7, 2, 7, 2, 7}, 0.18, __LINE__);
    kvp_trace_free(t);
}

static void test_reactive_overflow(void)
{
    /* 2 slots (hbm_capacity 14), P = 4, N = 3, C = 6, sparsity 0.5, scores (padding high):
     * step 0 (ctx 4, k 2): {2: .5, 3: .9}.  Accessed 2 + new 1 > 2: keep new 4, then the
     *   highest score, 3 (not the lower index 2).  Demote 0, 1 (a 0), promote 3 (a 1).
     *   tok: reads 2 DRAM; hbm r 2 w 2, dram r 2 w 2, up 2, down 2
     *   -> max(.018, .08, .04, .04) = .08
     * step 1 (ctx 5, k 3): {0: .8, 3: .7, 4: .6}, resident {3, 4}.  Keep new 5, then 0.
     *   Demote 3, 4 (both read: a 1, no HBM read), promote 0 (a 1).
     *   tok: reads 0 DRAM, 3 4 HBM; hbm r 2 w 2, dram r 1 w 2, up 1, down 2 -> .06
     * step 2 (ctx 6, k 3): {0, 1, 4} all .5, resident {0, 5}.  Keep new 6, then the lower
     *   index of the tie, 0 (already resident).  Demote 5 (a 0).
     *   tok: reads 0 HBM, 1 4 DRAM; hbm r 2 w 1, dram r 2 w 1, up 2, down 1
     *   -> max(.016, .06, .04, .02) = .06 */
    static const float scores[3 * 6] = {.1f, .2f, .5f, .9f, 7, 7, .8f, .1f, .3f, .7f, .6f, 9,
                                        .5f, .5f, 0,   0,   .5f, .1f};
    kvp_scenario sc;
    toy(&sc, 14);
    CHECK_OK(kvp_param_assign(&sc, "sparsity=0.5", &err), &err);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, scores, 3, 1, 6, 0, "overflow", &err), &err);
    kvp_result r = run_one(&sc, t, "reactive", 1);
    check_tokens(&r, (tokens){3, 5, 6, 5, 5, 5, 5, 5, 2, 5}, 0.2, __LINE__);
    kvp_trace_free(t);
}

static void test_reactive_blocks(void)
{
    /* g = 2, 2 slots (hbm_capacity 10 + 2*2*2 = 18), P = 3, N = 2, C = 4.  Blocks {0,1},
     * {2,3}, {4}.  Initial {b0, b1}.
     * step 0 (ctx 3): the new token 3 falls into b1, which holds 2 already: no new block.
     *   Reads {0} (b0, HBM).  Nothing to evict; the token follows b1 into HBM.
     *   tok: hbm r 1 w 1 -> (10 + 4)/1000 = .014
     * step 1 (ctx 4): token 4 opens b2.  Reads {3} (b1, HBM).  Set {b0,b1} + new b2 = 3:
     *   evict b0 (stamp 0; b1 was accessed).  Demote b0: pres 2, a 0.
     *   tok: hbm r 1 + 2, w 1, dram w 2, down 2 -> max(.018, .04, 0, .04) = .04 */
    static const int marks[2][8] = {{0, -1}, {3, -1}};
    kvp_scenario sc;
    toy(&sc, 18);
    kvp_trace *t = marks_trace(2, 4, marks);
    kvp_result r = run_one(&sc, t, "reactive:g=2", 1);
    CHECK_EQ_U64(r.block_tokens, 2);
    CHECK_EQ_U64(r.slots, 2);
    check_tokens(&r, (tokens){2, 0, 4, 2, 0, 2, 0, 2, 0, 2}, 0.054, __LINE__);
    kvp_trace_free(t);
}

static void test_zero_slots(void)
{
    /* kv_budget 0: nothing is ever resident, every read and new token goes to DRAM.  On the
     * trace of test_lru_order: reads 1, 1, 0, 0, 2 tokens, 5 new tokens.
     * step 0: dram (1 + 1) * 2 / 100 = .04; step 1: .04; steps 2, 3: .02; step 4: .06. */
    static const int marks[5][8] = {{3, -1}, {4, -1}, {-1}, {-1}, {0, 5, -1}};
    kvp_scenario sc;
    toy(&sc, 10);
    kvp_trace *t = marks_trace(5, 8, marks);
    const char *pol[] = {"reactive", "page", "lookahead"};
    for (size_t i = 0; i < sizeof pol / sizeof *pol; i++) {
        kvp_result r = run_one(&sc, t, pol[i], 1);
        CHECK_EQ_U64(r.slots, 0);
        check_tokens(&r, (tokens){0, 4, 0, 0, 4, 5, 4, 5, 0, 0}, 0.18, __LINE__);
    }
    kvp_trace_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* page                                                                                     */

static void test_page_whole(void)
{
    /* g = 2, 2 slots (hbm_capacity 18), P = 6, N = 2, C = 7.  Pages {0,1} {2,3} {4,5} {6,7}.
     * Initial {p0, p1}.
     * step 0 (ctx 6): reads {4}: p2 (DRAM, a 1).  Target {p2}; one slot left for the old
     *   pages, the lower p0 keeps it, p1 goes (pres 2, a 0: 2 HBM read).  p2 moves whole:
     *   its unread token 5 costs 1 DRAM read + 1 up, 2 HBM write, promoted 2.  Token 6 opens
     *   p3; no slot is free, so DRAM.
     *   tok: reads 1 DRAM; hbm r 2 w 2, dram r 1 + 1, w 2 + 1, up 2, down 3
     *   -> max(.018, .1, .04, .06) = .1
     * step 1 (ctx 7): reads {0, 1, 2, 4}: p0 (score 2), p1 (1, DRAM), p2 (1, HBM).  The tie
     *   goes to the resident p2: target {p0, p2}, nothing moves.  Token 7 falls into p3
     *   (holds token 6, in DRAM): DRAM.
     *   tok: hbm r 3, dram r 1 w 1, up 1, down 1 -> max(.016, .04, .02, .02) = .04 */
    static const int marks[2][8] = {{4, -1}, {0, 1, 2, 4, -1}};
    kvp_scenario sc;
    toy(&sc, 18);
    kvp_trace *t = marks_trace(2, 7, marks);
    kvp_result r = run_one(&sc, t, "page:page_tokens=2", 1);
    CHECK_EQ_U64(r.block_tokens, 2);
    CHECK_EQ_U64(r.slots, 2);
    CHECK_EQ_U64(r.dram_read, 6);
    CHECK_EQ_U64(r.promoted_bytes, 4);
    check_tokens(&r, (tokens){3, 2, 5, 2, 3, 4, 3, 4, 2, 2}, 0.14, __LINE__);
    /* page_tokens = 0 (the default) takes the scenario's page size. */
    CHECK_OK(kvp_param_assign(&sc, "page_tokens=2", &err), &err);
    kvp_result d = run_one(&sc, t, "page", 1);
    CHECK_EQ_U64(d.block_tokens, 2);
    check_tokens(&d, (tokens){3, 2, 5, 2, 3, 4, 3, 4, 2, 2}, 0.14, __LINE__);
    CHECK_OK(kvp_param_assign(&sc, "page_tokens=16", &err), &err);
    d = run_one(&sc, t, "page", 1);
    CHECK_EQ_U64(d.block_tokens, 16);
    kvp_trace_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* lookahead                                                                                */

/* P = 3, N = 4, C = 6: reads {2}, {2,3}, {3,4}, {4,5}. */
static const int la_marks[4][8] = {{2, -1}, {2, 3, -1}, {3, 4, -1}, {4, 5, -1}};

static void test_lookahead_r1(void)
{
    /* 2 slots (hbm_capacity 14), W = 2, R = 1.
     * init: window [0,2): f(2) = 2 (f(3) = 1, but 3 does not exist yet).  Wanted {2}, then
     *   the lowest prompt block 0: {0, 2} (static would hold {0, 1}).
     * step 0: wanted {2}, resident.  New 3: no free slot, DRAM.
     *   tok: hbm r 1, dram w 1, down 1 -> max(.012, .02, 0, .02) = .02
     * step 1: window [1,3): f(2) 1, f(3) 2.  Wanted {3, 2}; promote 3 in place of 0 (f 0).
     *   tok: reads 2 HBM, 3 DRAM; demote 0: hbm r 1; promote 3 (a 1): hbm w 1; new DRAM.
     *   hbm r 2 w 1, dram r 1 w 2, up 1, down 2 -> max(.016, .06, .02, .04) = .06
     * step 2: window [2,4): f(3) 1, f(4) 2.  Promote 4 in place of 2 (f 0).  Same: .06
     * step 3: window [3,4), cut at the last step: f(4) 1, f(5) 1.  Ties: resident 4 first,
     *   then 5.  Promote 5 in place of 3 (f 0).  Same: .06
     * With W = 10 the window always reaches the end; the ranking comes out the same. */
    kvp_scenario sc;
    toy(&sc, 14);
    kvp_trace *t = marks_trace(4, 6, la_marks);
    const tokens want = {4, 3, 7, 3, 3, 7, 3, 7, 3, 3};
    kvp_result r = run_one(&sc, t, "lookahead:W=2:R=1", 1);
    CHECK_EQ_U64(r.slots, 2);
    check_tokens(&r, want, 0.2, __LINE__);
    r = run_one(&sc, t, "lookahead:W=10:R=1", 1);
    check_tokens(&r, want, 0.2, __LINE__);
    kvp_trace_free(t);
}

static void test_lookahead_r0(void)
{
    /* R = 0: nothing ever moves; the initial placement stays, plus new blocks while a slot
     * is free.
     * 2 slots: initial {0, 2} as in test_lookahead_r1, every new token to DRAM.
     *   reads: step 0 {2} HBM; 1: 2 HBM, 3 DRAM; 2: 3, 4 DRAM; 3: 4, 5 DRAM.
     *   times: .02, max(.012, .04, .02, .02) = .04, .06, .06 -> .18
     * 4 slots (hbm_capacity 18): initial {2} + {0, 1}; new 3 takes the free slot.
     *   reads: step 0 2 HBM; 1: 2, 3 HBM; 2: 3 HBM, 4 DRAM; 3: 4, 5 DRAM.  New 4, 5, 6 DRAM.
     *   times: (10 + 4)/1000 = .014, max(.014, .02) = .02, max(.012, .04, .02, .02) = .04,
     *   max(.010, .06, .04, .02) = .06 -> .134 */
    kvp_scenario sc;
    toy(&sc, 14);
    kvp_trace *t = marks_trace(4, 6, la_marks);
    kvp_result r = run_one(&sc, t, "lookahead:W=2:R=0", 1);
    check_tokens(&r, (tokens){2, 5, 2, 0, 5, 4, 5, 4, 0, 0}, 0.18, __LINE__);
    toy(&sc, 18);
    r = run_one(&sc, t, "lookahead:W=2:R=0", 1);
    CHECK_EQ_U64(r.slots, 4);
    check_tokens(&r, (tokens){4, 3, 4, 1, 3, 3, 3, 3, 0, 0}, 0.134, __LINE__);
    kvp_trace_free(t);
}

static void test_lookahead_order(void)
{
    /* 4 slots (hbm_capacity 18), W = 2, R = 0.4, P = 5, N = 3, C = 7.
     * Reads: A0 {0,1,2,3}, A1 {1,2,4,5}, A2 {0,1,2,4,5}.
     * init: window A0 + A1: f 0:1 1:2 2:2 3:1 4:1 (5 not yet).  Rank 1, 2, then f 1 by index
     *   0, 3, 4: wanted {1, 2, 0, 3}: initial {0,1,2,3}.
     * step 0: wanted all resident.  New 5: DRAM.  tok: hbm r 4, dram w 1, down 1
     *   -> max(.018, .02, 0, .02) = .02
     * step 1: window A1 + A2: f 0:1 1:2 2:2 3:0 4:2 5:2.  Wanted {1, 2, 4, 5}; not resident:
     *   4, 5: ceil(0.4 * 2) = 1 promoted, the first in rank order, 4.  No free slot: demote
     *   the unwanted resident of lowest f, 3 (f 0), not the lower index 0 (f 1).
     *   tok: reads 1 2 HBM, 4 5 DRAM; demote 3 (a 0): hbm r 1; promote 4 (a 1): hbm w 1; new
     *   DRAM.  hbm r 3 w 1, dram r 2 w 2, up 2, down 2 -> max(.018, .08, .04, .04) = .08
     * step 2: window A2 only (cut): f 1 for 0 1 2 4 5.  Residents first: {0,1,2,4}, nothing
     *   moves.  tok: reads 0 1 2 4 HBM, 5 DRAM; new DRAM -> max(.018, .04, .02, .02) = .04 */
    static const int marks[3][8] = {{0, 1, 2, 3, -1}, {1, 2, 4, 5, -1}, {0, 1, 2, 4, 5, -1}};
    kvp_scenario sc;
    toy(&sc, 18);
    kvp_trace *t = marks_trace(3, 7, marks);
    kvp_result r = run_one(&sc, t, "lookahead:W=2:R=0.4", 1);
    check_tokens(&r, (tokens){10, 3, 11, 1, 3, 4, 3, 4, 1, 1}, 0.14, __LINE__);
    /* R = 0.5: 0.5 * 2 = 1 exactly, still one promotion. */
    r = run_one(&sc, t, "lookahead:W=2:R=0.5", 1);
    check_tokens(&r, (tokens){10, 3, 11, 1, 3, 4, 3, 4, 1, 1}, 0.14, __LINE__);
    /* R = 1: both 4 and 5 come in, 3 and 0 go; at step 2 the read of 0 is a DRAM read.
     * step 1: hbm r 2 + 2, w 2, dram r 2 w 2 + 1, up 2, down 3 -> max(.022, .1, .04, .06)
     * step 2: reads 1 2 4 5 HBM, 0 DRAM -> .04.  T = .02 + .1 + .04 = .16 */
    r = run_one(&sc, t, "lookahead:W=2:R=1", 1);
    check_tokens(&r, (tokens){10, 3, 12, 2, 3, 5, 3, 5, 2, 2}, 0.16, __LINE__);
    kvp_trace_free(t);
}

static void test_params(void)
{
    kvp_policy_spec ps;
    CHECK_FAILS(kvp_policy_parse(&ps, "reactive:g=0", &err), KVP_EINVAL, &err, "g");
    CHECK_FAILS(kvp_policy_parse(&ps, "lookahead:W=0", &err), KVP_EINVAL, &err, "W");
    CHECK_FAILS(kvp_policy_parse(&ps, "lookahead:R=1.5", &err), KVP_EINVAL, &err, "R");
    CHECK_FAILS(kvp_policy_parse(&ps, "lookahead:W=2.5", &err), KVP_EINVAL, &err, "W");
    CHECK_OK(kvp_policy_parse(&ps, "lookahead", &err), &err);
    CHECK_NEAR(ps.value[0], 16, 0);
    CHECK_NEAR(ps.value[1], 1, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* The reference: docs/MODEL.md §3 and §5 read literally.                                       */

typedef struct ref_trace {
    uint32_t N, L, P;
    uint32_t *count;  /* [n * L + l] */
    uint32_t **pos;   /* [n * L + l] */
    float **score;
} ref_trace;

/* The raw trace, as the test wrote it: N x L x C floats, C = P + N - 1. */
typedef struct raw_trace {
    float *data;
    uint32_t N, L, C;
    int is_bool;
} raw_trace;

static const float *ref_row; /* the row being ranked, for ref_by_score */

/* Positions by score descending, ties the lower position. */
static int ref_by_score(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    if (ref_row[a] != ref_row[b])
        return ref_row[a] > ref_row[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int ref_by_pos(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* The access sets of docs/MODEL.md §2 read from the raw array, not through the library's cursor
 * or top-k: a bool trace reads its marks (score 1); a score trace the k = ceil((1 - s) P' -
 * 1e-9) highest scores of the P' = P + n positions present, ties to the lower position, by a
 * full sort. */
static int ref_load(ref_trace *rt, const raw_trace *raw, double sparsity)
{
    rt->N = raw->N;
    rt->L = raw->L;
    rt->P = raw->C - raw->N + 1;
    size_t cells = (size_t)rt->N * rt->L;
    rt->count = calloc(cells, sizeof *rt->count);
    rt->pos = calloc(cells, sizeof *rt->pos);
    rt->score = calloc(cells, sizeof *rt->score);
    uint32_t *order = malloc((size_t)raw->C * sizeof *order);
    if (!rt->count || !rt->pos || !rt->score || !order) {
        free(order);
        return -1;
    }
    for (uint32_t n = 0; n < rt->N; n++)
        for (uint32_t l = 0; l < rt->L; l++) {
            const size_t i = (size_t)n * rt->L + l;
            const float *r = raw->data + i * raw->C;
            const uint32_t ctx = rt->P + n;
            uint32_t k = 0;
            if (raw->is_bool) {
                for (uint32_t p = 0; p < ctx; p++)
                    if (r[p] != 0)
                        order[k++] = p;
            } else {
                double want = ceil((1 - sparsity) * ctx - 1e-9);
                k = want < 0 ? 0 : want > ctx ? ctx : (uint32_t)want;
                for (uint32_t p = 0; p < ctx; p++)
                    order[p] = p;
                ref_row = r;
                qsort(order, ctx, sizeof *order, ref_by_score);
                qsort(order, k, sizeof *order, ref_by_pos);
            }
            rt->count[i] = k;
            rt->pos[i] = malloc((k + 1) * sizeof(uint32_t));
            rt->score[i] = malloc((k + 1) * sizeof(float));
            if (!rt->pos[i] || !rt->score[i]) {
                free(order);
                return -1;
            }
            for (uint32_t j = 0; j < k; j++) {
                rt->pos[i][j] = order[j];
                rt->score[i][j] = raw->is_bool ? 1.0f : r[order[j]];
            }
        }
    free(order);
    return 0;
}

static void ref_free(ref_trace *rt)
{
    for (size_t i = 0; i < (size_t)rt->N * rt->L; i++) {
        free(rt->pos[i]);
        free(rt->score[i]);
    }
    free(rt->count);
    free(rt->pos);
    free(rt->score);
}

enum { REF_REACTIVE, REF_PAGE, REF_LOOKAHEAD };

typedef struct ref_policy {
    int kind;
    uint32_t g, W;
    double R;
} ref_policy;

/* Sort keys: a block with a primary key (score or f), whether it was resident, its index. */
typedef struct ref_key {
    double key;
    int resident;
    uint32_t b;
} ref_key;

/* Key descending, then resident first, then index ascending. */
static int ref_cmp(const void *pa, const void *pb)
{
    const ref_key *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    if (a->resident != b->resident)
        return a->resident ? -1 : 1;
    return a->b < b->b ? -1 : a->b > b->b;
}

typedef struct ref_out {
    double time_s;
    uint64_t c[10]; /* tokens, in the order of tokens */
} ref_out;

static uint32_t count_in(const uint8_t *set, uint32_t nb)
{
    uint32_t k = 0;
    for (uint32_t b = 0; b < nb; b++)
        k += set[b];
    return k;
}

/* f(b) at step n of layer l: steps m in [n, min(n+W, N)) that read b. */
static void ref_window(const ref_trace *rt, uint32_t l, uint32_t n, uint32_t W, uint32_t *f,
                       uint32_t nb)
{
    memset(f, 0, nb * sizeof *f);
    for (uint32_t m = n; m < n + W && m < rt->N; m++) {
        size_t i = (size_t)m * rt->L + l;
        for (uint32_t j = 0; j < rt->count[i]; j++)
            f[rt->pos[i][j]]++;
    }
}

static int ref_run(const ref_trace *rt, const ref_policy *pol, uint32_t slots, double tok,
                   double w_layer, const kvp_scenario *sc, ref_out *out)
{
    const uint32_t g = pol->g, P = rt->P, N = rt->N;
    const uint32_t nb = (P + N + g - 1) / g;
    uint8_t *res = calloc(nb, 1), *old = calloc(nb, 1), *acc = calloc(nb, 1);
    uint32_t *a = calloc(nb, sizeof *a), *f = calloc(nb, sizeof *f);
    double *ssum = calloc(nb, sizeof *ssum);
    long long *stamp = malloc(nb * sizeof *stamp);
    ref_key *keys = malloc(nb * sizeof *keys);
    int bad = 0;
    memset(out, 0, sizeof *out);
    for (uint32_t l = 0; l < rt->L; l++) {
        double t_layer = 0;
        memset(res, 0, nb);
        for (uint32_t b = 0; b < nb; b++)
            stamp[b] = -1;
        /* Initial placement. */
        uint32_t prompt_blocks = (P + g - 1) / g, have = 0;
        if (pol->kind == REF_LOOKAHEAD) {
            ref_window(rt, l, 0, pol->W, f, nb);
            uint32_t nk = 0;
            for (uint32_t b = 0; b < prompt_blocks; b++)
                if (f[b] > 0)
                    keys[nk++] = (ref_key){f[b], 0, b};
            qsort(keys, nk, sizeof *keys, ref_cmp);
            for (uint32_t i = 0; i < nk && have < slots; i++, have++)
                res[keys[i].b] = 1;
        }
        for (uint32_t b = 0; b < prompt_blocks && have < slots; b++)
            if (!res[b]) {
                res[b] = 1;
                have++;
            }
        for (uint32_t n = 0; n < N; n++) {
            const size_t ai = (size_t)n * rt->L + l;
            const uint32_t ctx = P + n, newb = ctx / g, opens = ctx % g == 0;
            uint64_t c[10] = {0};
            enum { KH, KD, HR, HW, DR, DW, UP, DN, PR, DE };
            memcpy(old, res, nb);
            memset(a, 0, nb * sizeof *a);
            memset(acc, 0, nb);
            for (uint32_t b = 0; b < nb; b++)
                ssum[b] = 0;
            /* 1. Reads. */
            for (uint32_t j = 0; j < rt->count[ai]; j++) {
                uint32_t b = rt->pos[ai][j] / g;
                a[b]++;
                acc[b] = 1;
                ssum[b] += (double)rt->score[ai][j];
                if (old[b]) {
                    c[KH]++;
                    c[HR]++;
                } else {
                    c[KD]++;
                    c[DR]++;
                    c[UP]++;
                }
            }
            /* 2. Placement. */
            if (pol->kind == REF_REACTIVE) {
                uint32_t nacc = 0;
                for (uint32_t b = 0; b < nb; b++)
                    if (acc[b]) {
                        stamp[b] = n;
                        nacc++;
                    }
                if (opens)
                    stamp[newb] = n;
                if (nacc + opens > slots) {
                    memset(res, 0, nb);
                    uint32_t k = 0;
                    if (opens && slots > 0) {
                        res[newb] = 1;
                        k++;
                    }
                    uint32_t nk = 0;
                    for (uint32_t b = 0; b < nb; b++)
                        if (acc[b])
                            keys[nk++] = (ref_key){ssum[b], 0, b};
                    qsort(keys, nk, sizeof *keys, ref_cmp);
                    for (uint32_t i = 0; i < nk && k < slots; i++, k++)
                        res[keys[i].b] = 1;
                } else {
                    for (uint32_t b = 0; b < nb; b++)
                        if (acc[b])
                            res[b] = 1;
                    if (opens)
                        res[newb] = 1;
                    while (count_in(res, nb) > slots) {
                        uint32_t victim = nb;
                        for (uint32_t b = 0; b < nb; b++) {
                            if (!res[b] || acc[b] || (opens && b == newb))
                                continue;
                            if (victim == nb || stamp[b] < stamp[victim])
                                victim = b;
                        }
                        if (victim == nb) {
                            bad = 1;
                            break;
                        }
                        res[victim] = 0;
                    }
                }
            } else if (pol->kind == REF_PAGE) {
                uint32_t nk = 0;
                for (uint32_t b = 0; b < nb; b++)
                    if (acc[b])
                        keys[nk++] = (ref_key){ssum[b], old[b], b};
                qsort(keys, nk, sizeof *keys, ref_cmp);
                memset(res, 0, nb);
                uint32_t k = 0;
                for (uint32_t i = 0; i < nk && k < slots; i++, k++)
                    res[keys[i].b] = 1;
                for (uint32_t b = 0; b < nb && k < slots; b++)
                    if (old[b] && !res[b]) {
                        res[b] = 1;
                        k++;
                    }
                if (opens && k < slots)
                    res[newb] = 1;
            } else {
                ref_window(rt, l, n, pol->W, f, nb);
                uint32_t nk = 0;
                for (uint32_t b = 0; b < ctx; b++)
                    if (f[b] > 0)
                        keys[nk++] = (ref_key){f[b], old[b], b};
                qsort(keys, nk, sizeof *keys, ref_cmp);
                uint8_t *wanted = acc; /* reads are done with acc */
                memset(wanted, 0, nb);
                uint32_t count = 0;
                for (uint32_t i = 0; i < nk && i < slots; i++) {
                    wanted[keys[i].b] = 1;
                    count += !old[keys[i].b];
                }
                double pr = ceil(pol->R * count - 1e-9);
                uint32_t p = pr <= 0 ? 0 : (uint32_t)pr;
                uint32_t freeslots = slots - count_in(old, nb);
                for (uint32_t i = 0; i < nk && i < slots && p > 0; i++) {
                    uint32_t b = keys[i].b;
                    if (old[b])
                        continue;
                    if (freeslots > 0) {
                        freeslots--;
                    } else {
                        uint32_t victim = nb;
                        for (uint32_t v = 0; v < nb; v++)
                            if (res[v] && !wanted[v] && (victim == nb || f[v] < f[victim]))
                                victim = v;
                        if (victim == nb) {
                            bad = 1;
                            break;
                        }
                        res[victim] = 0;
                    }
                    res[b] = 1;
                    p--;
                }
                if (count_in(res, nb) < slots)
                    res[newb] = 1;
            }
            if (count_in(res, nb) > slots)
                bad = 1;
            for (uint32_t b = 0; b < nb; b++) {
                uint64_t lo = (uint64_t)b * g, hi = lo + g;
                uint64_t pres = hi <= ctx ? g : ctx > lo ? ctx - lo : 0;
                if (res[b] && !old[b]) {
                    c[DR] += pres - a[b];
                    c[UP] += pres - a[b];
                    c[HW] += pres;
                    c[PR] += pres;
                } else if (old[b] && !res[b]) {
                    c[HR] += pres - a[b];
                    c[DN] += pres;
                    c[DW] += pres;
                    c[DE] += pres;
                }
            }
            /* 3. The new token. */
            if (res[newb]) {
                c[HW]++;
            } else {
                c[DW]++;
                c[DN]++;
            }
            double th = (w_layer + (double)(c[HR] + c[HW]) * tok) / sc->hbm_bandwidth;
            double td = (double)(c[DR] + c[DW]) * tok / sc->dram_bandwidth;
            double tu = (double)c[UP] * tok / sc->link_bandwidth;
            double tdn = (double)c[DN] * tok / sc->link_bandwidth;
            t_layer += fmax(fmax(th, td), fmax(tu, tdn));
            for (int i = 0; i < 10; i++)
                out->c[i] += c[i];
        }
        out->time_s += t_layer;
    }
    free(res);
    free(old);
    free(acc);
    free(a);
    free(f);
    free(ssum);
    free(stamp);
    free(keys);
    return bad ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Properties on random scenarios                                                           */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

/* A random trace; *raw keeps its array (freed by the caller) for the reference. */
static kvp_trace *random_trace(uint32_t N, uint32_t L, uint32_t C, int is_bool, int ties,
                               raw_trace *raw)
{
    size_t cells = (size_t)N * L * C;
    float *data = malloc(cells * sizeof *data);
    REQUIRE(data != NULL);
    for (size_t i = 0; i < cells; i++)
        data[i] = is_bool ? (float)(rnd(5) < 2) : ties ? (float)rnd(4) : (float)rnd(1000000);
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_from_memory(&t, data, N, L, C, is_bool, "random", &err), &err);
    *raw = (raw_trace){data, N, L, C, is_bool};
    return t;
}

static int same_result(const kvp_result *a, const kvp_result *b)
{
    return same_report(a, b) && a->slots == b->slots && a->block_tokens == b->block_tokens;
}

/* One policy (spec, as pol) against the reference, the bound, itself (twice) and itself on
 * 2 threads. */
static void check_policy(const kvp_scenario *sc, const kvp_trace *t, const ref_trace *rt,
                         const ref_policy *pol, const char *spec, const kvp_result *bound,
                         const char *what, uint64_t seed, int iter)
{
    kvp_derived d;
    CHECK_OK(kvp_scenario_derive(sc, &d, &err), &err);
    /* Slots from docs/MODEL.md §1 directly. */
    uint64_t per = (uint64_t)sc->layers * pol->g * d.tok_bytes;
    uint32_t slots = (uint32_t)(d.kv_budget / per);
    ref_out ro;
    int rc = ref_run(rt, pol, slots, (double)d.tok_bytes, d.w_layer, sc, &ro);
    CHECK(rc == 0);
    kvp_result r1 = run_one(sc, t, spec, 1);
    kvp_result r2 = run_one(sc, t, spec, 1);
    kvp_result r3 = run_one(sc, t, spec, 2);
    const uint64_t got[10] = {r1.kv_read_hbm, r1.kv_read_dram, r1.hbm_read, r1.hbm_write,
                              r1.dram_read,   r1.dram_write,   r1.link_up,  r1.link_down,
                              r1.promoted_bytes, r1.demoted_bytes};
    int same = r1.slots == slots && fabs(r1.total_time_s - ro.time_s) <= 1e-12 * ro.time_s;
    for (int i = 0; i < 10; i++)
        same = same && got[i] == ro.c[i] * d.tok_bytes;
    if (!check_report_(same, __FILE__, __LINE__, "policy matches the reference")) {
        fprintf(stderr, "    %s on %s (seed %llu, iteration %d): slots %u/%u, time "
                "%.17g/%.17g\n", spec, what, (unsigned long long)seed, iter, r1.slots,
                slots, r1.total_time_s, ro.time_s);
        for (int i = 0; i < 10; i++)
            fprintf(stderr, "      counter %d: %llu / %llu\n", i, (unsigned long long)got[i],
                    (unsigned long long)(ro.c[i] * d.tok_bytes));
    }
    CHECK(same_result(&r1, &r2));
    CHECK(same_result(&r1, &r3));
    if (!check_report_(r1.total_time_s >= bound->total_time_s * (1 - 1e-12), __FILE__,
                       __LINE__, "policy at or above the bound"))
        fprintf(stderr, "    %s: %.17g < %.17g (seed %llu, iteration %d)\n", spec,
                r1.total_time_s, bound->total_time_s, (unsigned long long)seed, iter);
}

/* One scenario: every dynamic policy (its parameters drawn) by check_policy. */
static void check_scenario(const kvp_scenario *sc, const kvp_trace *t, const raw_trace *raw,
                           const char *what, uint64_t seed, int iter)
{
    ref_trace rt;
    REQUIRE(ref_load(&rt, raw, sc->sparsity) == 0);
    kvp_result bound = run_one(sc, t, "bound", 1);
    for (int kind = REF_REACTIVE; kind <= REF_LOOKAHEAD; kind++) {
        ref_policy pol = {kind, 1, 1, 0};
        char spec[96];
        if (kind == REF_REACTIVE) {
            pol.g = 1 + rnd(3);
            snprintf(spec, sizeof spec, "reactive:g=%u", pol.g);
        } else if (kind == REF_PAGE) {
            pol.g = rnd(4); /* 0: the scenario's */
            snprintf(spec, sizeof spec, "page:page_tokens=%u", pol.g);
            if (pol.g == 0)
                pol.g = sc->page_tokens;
        } else {
            static const double Rs[] = {0, 0.2, 0.5, 0.7, 1};
            pol.W = 1 + rnd(7);
            pol.R = Rs[rnd(5)];
            snprintf(spec, sizeof spec, "lookahead:W=%u:R=%g", pol.W, pol.R);
        }
        check_policy(sc, t, &rt, &pol, spec, &bound, what, seed, iter);
    }
    ref_free(&rt);
}

static void test_properties(void)
{
    const uint64_t seed = check_seed;
    rng_state = seed;
    printf("properties: seed %llu\n", (unsigned long long)seed);
    static const char *const sparsity[] = {"0", "0.25", "0.5", "0.6", "0.8"};
    static const unsigned dram_bw[] = {100, 300, 1000}, link_bw[] = {50, 100, 500};
    for (int iter = 0; iter < 500; iter++) {
        uint32_t L = 1 + rnd(3), N = 1 + rnd(10), P = 1 + rnd(14), C = P + N - 1;
        int is_bool = rnd(3) == 0;
        raw_trace raw;
        kvp_trace *t = random_trace(N, L, C, is_bool, rnd(2) == 0, &raw);
        kvp_scenario sc;
        kvp_scenario_default(&sc);
        uint32_t batch = 1 + rnd(2), tok = 2 * batch;
        uint32_t weight = rnd(60), slots1 = rnd(10);
        assign_u64(&sc, "layers", L);
        assign_u64(&sc, "kv_heads", 1);
        assign_u64(&sc, "head_dim", 1);
        assign_u64(&sc, "dtype_bytes", 1);
        assign_u64(&sc, "batch", batch);
        assign_u64(&sc, "weight_bytes", weight);
        assign_u64(&sc, "reserve", 0);
        assign_u64(&sc, "hbm_capacity", weight + (unsigned long long)L * tok * slots1 +
                                             rnd(L * tok));
        assign_u64(&sc, "hbm_bandwidth", 1000);
        assign_u64(&sc, "dram_bandwidth", dram_bw[rnd(3)]);
        assign_u64(&sc, "link_bandwidth", link_bw[rnd(3)]);
        assign_u64(&sc, "page_tokens", 1 + rnd(4));
        char buf[64];
        snprintf(buf, sizeof buf, "sparsity=%s", sparsity[rnd(5)]);
        CHECK_OK(kvp_param_assign(&sc, buf, &err), &err);
        check_scenario(&sc, t, &raw, is_bool ? "bool marks" : "scores", seed, iter);
        kvp_trace_free(t);
        free(raw.data);
    }
}

/* A larger case, so that the selections and windows work on more than a handful of blocks:
 * P = 600, N = 80, 2 layers, about 120 token slots per layer. */
static void test_larger(void)
{
    const uint64_t seed = check_seed;
    rng_state = seed ^ 0x5bd1e995u;
    uint32_t L = 2, N = 80, P = 600, C = P + N - 1;
    raw_trace raw;
    kvp_trace *t = random_trace(N, L, C, 0, 0, &raw);
    kvp_scenario sc;
    toy(&sc, 10 + 2 * 2 * 120);
    CHECK_OK(kvp_param_assign(&sc, "layers=2", &err), &err);
    CHECK_OK(kvp_param_assign(&sc, "sparsity=0.7", &err), &err);
    CHECK_OK(kvp_param_assign(&sc, "page_tokens=4", &err), &err);
    check_scenario(&sc, t, &raw, "larger", seed, -1);
    kvp_trace_free(t);
    free(raw.data);
}

/* The synthetic trace gives its sets as bits too (kvp_access.bits): with blocks of g > 1
 * tokens the engine then counts each block's reads by a popcount, where a trace without
 * them (the same scores, in memory) has its positions walked; and the blocks' score sums
 * come in 8 lanes (AVX-512) or one by one (KVPLACE_SSE2_ONLY).  Page (and reactive's blocks)
 * on both traces, each against the reference: page sizes that divide 64 and others, one of
 * more than 64, at two sparsities (the bits are taken where blocks are no more than reads:
 * at 0.6 from 3 tokens a page, at 0.3 from 2). */
static void test_blocks_bits(void)
{
    const uint32_t L = 2, N = 40, P = 700, C = P + N - 1;
    static const char *const sparsity[] = {"sparsity=0.6", "sparsity=0.3"};
    static const uint32_t gs[] = {2, 3, 4, 5, 16, 64, 100};
    for (int si = 0; si < 2; si++) {
        kvp_synth_params sp;
        memset(&sp, 0, sizeof sp);
        sp.prompt = P;
        sp.steps = N;
        sp.layers = L;
        sp.budget = kvp_budget_sparsity(si ? 0.3 : 0.6);
        sp.variation = KVP_VAR_HIGH;
        sp.seed = 11 + (uint64_t)si;
        kvp_trace *t = NULL;
        REQUIRE_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
        /* the same trace in memory: every step's scores (padding 0) */
        float *data = calloc((size_t)N * L * C, sizeof *data);
        REQUIRE(data != NULL);
        for (uint32_t l = 0; l < L; l++) {
            kvp_cursor *c = NULL;
            REQUIRE_OK(kvp_cursor_create(&c, t, l, sp.budget, &err), &err);
            for (uint32_t n = 0; n < N; n++)
                REQUIRE_OK(t->vt->scores(c->state, n, data + ((size_t)n * L + l) * C, &err),
                           &err);
            kvp_cursor_free(c);
        }
        kvp_trace *m = NULL;
        REQUIRE_OK(kvp_trace_from_memory(&m, data, N, L, C, 0, "synthetic in memory", &err),
                   &err);
        raw_trace raw = {data, N, L, C, 0};
        kvp_scenario sc;
        toy(&sc, 10 + 2 * 2 * 150);
        CHECK_OK(kvp_param_assign(&sc, "layers=2", &err), &err);
        CHECK_OK(kvp_param_assign(&sc, sparsity[si], &err), &err);
        ref_trace rt;
        REQUIRE(ref_load(&rt, &raw, sc.sparsity) == 0);
        kvp_result bound = run_one(&sc, t, "bound", 1);
        for (size_t i = 0; i < sizeof gs / sizeof *gs; i++) {
            char spec[64];
            ref_policy pol = {REF_PAGE, gs[i], 1, 0};
            snprintf(spec, sizeof spec, "page:page_tokens=%u", gs[i]);
            check_policy(&sc, t, &rt, &pol, spec, &bound, "synthetic", sp.seed, (int)i);
            check_policy(&sc, m, &rt, &pol, spec, &bound, "in memory", sp.seed, (int)i);
            pol.kind = REF_REACTIVE;
            snprintf(spec, sizeof spec, "reactive:g=%u", gs[i]);
            check_policy(&sc, t, &rt, &pol, spec, &bound, "synthetic", sp.seed, (int)i);
        }
        ref_free(&rt);
        kvp_trace_free(m);
        kvp_trace_free(t);
        free(data);
    }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"lru_order", test_lru_order},
        {"reactive_overflow", test_reactive_overflow},
        {"reactive_blocks", test_reactive_blocks},
        {"zero_slots", test_zero_slots},
        {"page_whole", test_page_whole},
        {"lookahead_r1", test_lookahead_r1},
        {"lookahead_r0", test_lookahead_r0},
        {"lookahead_order", test_lookahead_order},
        {"params", test_params},
        {"properties", test_properties},
        {"blocks_bits", test_blocks_bits},
        {"larger", test_larger},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
