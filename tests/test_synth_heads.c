/*
 * Synthetic heads and sequences (docs/SYNTHETIC.md "Heads", "Sequences"):
 *  - heads <= 1 is today's trace, set for set;
 *  - exactly round(share x H) retrieval heads per layer, which ones varying by layer;
 *  - a streaming head reads the sinks and the most recent k - sinks positions (worked out
 *    here from k, not through the generator);
 *  - the retrieval heads of a layer share its heavy hitters, and differ otherwise;
 *  - sequence prompts: s = 0 is the base, the rest within the hand-computed range, with the
 *    mean and NarrativeQA's share of the stated distribution;
 *  - bad parameters;
 *  - kvp_trace_heads_stats (how much heads' sets differ) on hand-worked bool traces.
 */
#include "check.h"
#include "support.h"

#include <math.h>
#include <string.h>

#define HEAVY_LO_KEY 49152u /* src/trace/synth.c's heavy band: keys [49152, 65534) */

/* The synthetic parameters of the default scenario (sparsity 0.6, actual) at this shape. */
static kvp_synth_params params(uint32_t P, uint32_t N, uint32_t L, uint64_t seed)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    assign_u64(&sc, "prompt", P);
    assign_u64(&sc, "steps", N);
    assign_u64(&sc, "layers", L);
    assign_u64(&sc, "seed", seed);
    kvp_synth_params sp;
    kvp_synth_default(&sp, &sc);
    return sp;
}

/* Every step's set of layer l as a bitset over P + N positions, rows of P + N bytes. */
static uint8_t *sets_of(const kvp_synth_params *sp, uint32_t l, kvp_budget b)
{
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_synthetic(&t, sp, &err), &err);
    const size_t C = (size_t)sp->prompt + sp->steps;
    uint8_t *m = calloc(C * sp->steps, 1);
    REQUIRE(m != NULL);
    kvp_cursor *c = NULL;
    REQUIRE_OK(kvp_cursor_create(&c, t, l, b, &err), &err);
    kvp_access a;
    while (kvp_cursor_next(c, &a, &err) == 1)
        for (uint32_t i = 0; i < a.count; i++)
            m[a.step * C + a.pos[i]] = 1;
    kvp_cursor_free(c);
    kvp_trace_free(t);
    return m;
}

static void test_one_head_is_today(void)
{
    kvp_synth_params a = params(300, 40, 2, 9), b = a;
    b.heads = 1;
    b.retrieval_share = 0.3; /* no effect with one stream */
    for (uint32_t l = 0; l < 2; l++) {
        uint8_t *x = sets_of(&a, l, kvp_budget_sparsity(0.6));
        uint8_t *y = sets_of(&b, l, kvp_budget_sparsity(0.6));
        CHECK(memcmp(x, y, (size_t)340 * 40) == 0);
        free(x);
        free(y);
    }
    CHECK_EQ_INT(kvp_synth_head_kind(&b, 0), KVP_HEAD_ALL);
}

static void test_kinds(void)
{
    static const struct {
        uint32_t heads;
        double share;
        uint32_t retrieval;
    } c[] = {{8, 0, 4},    /* the default, DuoAttention's 50% for GQA */
             {8, 0.25, 2}, {32, 0.25, 8}, {4, 0.5, 2}, {8, 1.0, 8},
             {8, 1e-9, 0}, /* round(8e-9) = 0: every head streams */
             {2, 0.3, 1},  /* round(0.6) */
             {3, 0.5, 2}}; /* round(1.5) = 2: halves round up */
    int layers_differ = 0;
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        uint32_t first[64] = {0};
        for (uint32_t l = 0; l < 16; l++) {
            kvp_synth_params sp = params(10, 2, 16, 5 + i);
            sp.heads = c[i].heads;
            sp.retrieval_share = c[i].share;
            uint32_t r = 0;
            for (uint32_t h = 0; h < c[i].heads; h++) {
                sp.head = h;
                kvp_head_kind k = kvp_synth_head_kind(&sp, l);
                CHECK(k == KVP_HEAD_RETRIEVAL || k == KVP_HEAD_STREAMING);
                r += k == KVP_HEAD_RETRIEVAL;
                if (l == 0)
                    first[h] = k;
                else
                    layers_differ |= first[h] != (uint32_t)k;
            }
            if (!CHECK(r == c[i].retrieval))
                fprintf(stderr, "    heads %u share %g layer %u: %u retrieval heads\n",
                        c[i].heads, c[i].share, l, r);
        }
    }
    CHECK(layers_differ); /* which heads retrieve is drawn per layer */
}

/* P + N = 600 <= 65532: a streaming head's keys rise strictly with the position, so its set
 * at step n is the 4 sinks and the k - 4 most recent positions, k = ceil(0.4 (P + n)). */
static void test_streaming(void)
{
    const uint32_t P = 560, N = 40, H = 8;
    kvp_synth_params sp = params(P, N, 3, 21);
    sp.heads = H;
    uint32_t streaming = 0, bad = 0;
    for (uint32_t l = 0; l < 3; l++)
        for (uint32_t h = 0; h < H; h++) {
            sp.head = h;
            if (kvp_synth_head_kind(&sp, l) != KVP_HEAD_STREAMING)
                continue;
            streaming++;
            for (int topk = 0; topk < 2; topk++) {
                kvp_budget b = topk ? kvp_budget_topk(100) : kvp_budget_sparsity(0.6);
                uint8_t *m = sets_of(&sp, l, b);
                for (uint32_t n = 0; n < N; n++) {
                    uint32_t ctx = P + n;
                    uint32_t k = topk ? 100 : (uint32_t)ceil(0.4 * ctx - 1e-9);
                    for (uint32_t p = 0; p < P + N; p++) {
                        int want = p < 4 || (p < ctx && p >= ctx - (k - 4));
                        bad += m[(size_t)n * (P + N) + p] != want;
                    }
                }
                free(m);
            }
        }
    CHECK_EQ_U64(streaming, 12); /* 4 of 8 in each of 3 layers */
    CHECK_EQ_U64(bad, 0);
}

/* The heavy band of step 0's scores (sparsity 0: every position with its score), outside
 * the sinks and the window. */
static uint8_t *heavy_of(const kvp_synth_params *sp, uint32_t l)
{
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_synthetic(&t, sp, &err), &err);
    kvp_cursor *c = NULL;
    REQUIRE_OK(kvp_cursor_create(&c, t, l, kvp_budget_sparsity(0), &err), &err);
    kvp_access a;
    REQUIRE(kvp_cursor_next(c, &a, &err) == 1);
    uint8_t *m = calloc(a.context, 1);
    REQUIRE(m != NULL);
    for (uint32_t i = 0; i < a.count; i++) {
        double key = (double)a.score[i] * 65535.0;
        m[a.pos[i]] = a.pos[i] >= 4 && a.pos[i] + 64 < a.context && key >= HEAVY_LO_KEY - 0.5;
    }
    kvp_cursor_free(c);
    kvp_trace_free(t);
    return m;
}

static void test_retrieval(void)
{
    const uint32_t P = 3000, N = 30, H = 8;
    kvp_synth_params sp = params(P, N, 2, 33);
    sp.heads = H;
    uint8_t *first = NULL, *first_sets = NULL, *other_layer = NULL;
    uint32_t retrieval = 0, heavy = 0, same_heavy = 1, same_sets = 0;
    for (uint32_t h = 0; h < H; h++) {
        sp.head = h;
        if (kvp_synth_head_kind(&sp, 0) != KVP_HEAD_RETRIEVAL)
            continue;
        retrieval++;
        uint8_t *m = heavy_of(&sp, 0);
        uint8_t *s = sets_of(&sp, 0, kvp_budget_sparsity(0.6));
        if (!first) {
            first = m;
            first_sets = s;
            for (uint32_t p = 0; p < P; p++)
                heavy += m[p];
            continue;
        }
        same_heavy &= memcmp(first, m, P) == 0;
        same_sets += memcmp(first_sets, s, (size_t)(P + N) * N) == 0;
        free(m);
        free(s);
    }
    CHECK_EQ_U64(retrieval, 4);
    CHECK(same_heavy);         /* the layer's heavy hitters, in every retrieval head */
    CHECK_EQ_U64(same_sets, 0); /* but their own bases and noise: their sets differ */
    /* about heavy_share = 5% of the 2932 positions outside sinks and window */
    CHECK(heavy > 2932 * 0.035 && heavy < 2932 * 0.065);
    /* another layer has other heavy hitters */
    for (uint32_t h = 0; h < H && !other_layer; h++) {
        sp.head = h;
        if (kvp_synth_head_kind(&sp, 1) == KVP_HEAD_RETRIEVAL)
            other_layer = heavy_of(&sp, 1);
    }
    REQUIRE(other_layer != NULL);
    CHECK(memcmp(first, other_layer, P) != 0);
    free(other_layer);
    free(first);
    free(first_sets);
}

static void test_names_and_bad(void)
{
    kvp_synth_params sp = params(50, 4, 1, 1);
    sp.heads = 8;
    sp.head = 3;
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
    CHECK_STR(kvp_trace_name(t), "synthetic:actual:head3/8");
    kvp_trace_free(t);
    sp.head = 8;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "head 8 of a trace of 8");
    sp.heads = 1;
    sp.head = 1;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "head 1 of a trace of 1");
    sp.heads = 0;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "head 1");
    sp.head = 0;
    sp.heads = 2000;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "heads 2000");
    sp.heads = 8;
    sp.retrieval_share = 1.5;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "retrieval_share");
    sp.retrieval_share = NAN;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "retrieval_share");
    sp.retrieval_share = -0.1;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "retrieval_share");
}

/* LongBench's English and code tasks as docs/SYNTHETIC.md lists them: words, samples. */
static const double lb_words[] = {9149, 4885, 7798, 4559, 18405, 3619, 8169, 10546,
                                  8015, 8210, 5176, 9288, 11141, 1235, 5622};
static const double lb_samples[] = {200, 200, 200, 150, 200, 200, 200, 200,
                                    200, 200, 200, 200, 200, 500, 500};

static void test_sequences(void)
{
    double W = 0, S = 0;
    for (size_t i = 0; i < 15; i++) {
        W += lb_words[i] * lb_samples[i];
        S += lb_samples[i];
    }
    const double mean = W / S; /* 7040.2 words */
    CHECK_EQ_U64(kvp_synth_sequence_prompt(7, 0, 31299), 31299);
    CHECK_EQ_U64(kvp_synth_sequence_seed(7, 0), 7);
    CHECK(kvp_synth_sequence_seed(7, 1) != 7 && kvp_synth_sequence_seed(7, 1) !=
                                                    kvp_synth_sequence_seed(7, 2));
    CHECK(kvp_synth_sequence_seed(7, 1) != kvp_synth_sequence_seed(8, 1));
    const uint32_t base = 31299, M = 20000;
    /* the shortest: LCC at half its ratio; the longest: NarrativeQA at 1.5 times */
    const double lo = base * 1235 / mean * 0.5, hi = base * 18405 / mean * 1.5;
    const double narrative_only = base * 11141 / mean * 1.5; /* above PassageCount's top */
    double sum = 0;
    uint32_t out = 0, above = 0, repeat = 0;
    for (uint32_t s = 1; s <= M; s++) {
        uint32_t p = kvp_synth_sequence_prompt(42, s, base);
        repeat += p != kvp_synth_sequence_prompt(42, s, base);
        out += p < floor(lo) || p > ceil(hi);
        above += p > narrative_only;
        sum += p;
    }
    CHECK_EQ_U64(repeat, 0);
    CHECK_EQ_U64(out, 0);
    /* the mean is the base (the factor's mean is 1 - 2^-17: nothing at this precision) */
    CHECK(fabs(sum / M / base - 1) < 0.02);
    /* NarrativeQA (200 of 3550 samples) with a factor above 11141 / 18405 x 1.5 = 0.908 */
    const double want = 200.0 / 3550 * (1.5 - 11141.0 / 18405 * 1.5);
    if (!CHECK(fabs((double)above / M - want) < 0.006))
        fprintf(stderr, "    share above %g: %g, wanted %g\n", narrative_only,
                (double)above / M, want);
    /* small bases stay at least 1; the largest is capped */
    for (uint32_t s = 1; s < 200; s++) {
        CHECK(kvp_synth_sequence_prompt(3, s, 1) >= 1);
        CHECK(kvp_synth_sequence_prompt(3, s, KVP_SYNTH_PROMPT_MAX) <= KVP_SYNTH_PROMPT_MAX);
    }
}

/* Pooled pairwise Jaccard and union ratio, worked by hand for each step:
 *   step 0: A = {0,1,2}, B = {1,2,3}: shared 2, pair union 3 + 3 - 2 = 4 -> 0.5; union 4 of a
 *           mean 3 -> 4/3;
 *   step 1: A = B = {0,2}: 1 and 1;
 *   step 2: A = {0}, B = {3}: 0 and 2;
 *   step 3: both empty: 1 and 1 by definition.
 * Means: Jaccard (0.5 + 1 + 0 + 1) / 4 = 0.625, union (4/3 + 1 + 2 + 1) / 4 = 1.3333.  With a
 * third head C = {2,3} at step 0 only reading and nothing after: step 0 shared pairs
 * AB 2, AC 1, BC 2 = 5, pair unions 4 + 4 + 3 = 11 -> 5/11; union 4 of a mean 8/3 -> 1.5. */
static void test_heads_stats(void)
{
    static const int a[][8] = {{0, 1, 2, -1}, {0, 2, -1}, {0, -1}, {-1}};
    static const int b[][8] = {{1, 2, 3, -1}, {0, 2, -1}, {3, -1}, {-1}};
    static const int c[][8] = {{2, 3, -1}, {-1}, {-1}, {-1}};
    kvp_trace *t[3] = {marks_trace(4, 7, a), marks_trace(4, 7, b), marks_trace(4, 7, c)};
    kvp_heads_stats hs;
    CHECK_OK(kvp_trace_heads_stats((const kvp_trace *const *)t, 2, kvp_budget_sparsity(0.6),
                                   &hs, &err), &err);
    CHECK_EQ_U64(hs.heads, 2);
    CHECK_NEAR(hs.mean_jaccard, 0.625, 1e-12);
    CHECK_NEAR(hs.mean_union_ratio, (4.0 / 3 + 1 + 2 + 1) / 4, 1e-12);
    CHECK_OK(kvp_trace_heads_stats((const kvp_trace *const *)t, 3, kvp_budget_sparsity(0.6),
                                   &hs, &err), &err);
    /* steps 1-3 with C empty: step 1 shared AB 2, unions AB 2 + AC 2 + BC 2 = 6 -> 1/3,
     * union 2 of a mean 4/3 -> 1.5; step 2: shared 0 -> 0, union 2 of 2/3 -> 3; step 3: 1, 1 */
    CHECK_NEAR(hs.mean_jaccard, (5.0 / 11 + 1.0 / 3 + 0 + 1) / 4, 1e-12);
    CHECK_NEAR(hs.mean_union_ratio, (1.5 + 1.5 + 3 + 1) / 4, 1e-12);
    CHECK_FAILS(kvp_trace_heads_stats((const kvp_trace *const *)t, 1, kvp_budget_sparsity(0.6),
                                      &hs, &err), KVP_EINVAL, &err, "heads: 1");
    kvp_trace *other = marks_trace(3, 7, a);
    const kvp_trace *mixed[2] = {t[0], other};
    CHECK_FAILS(kvp_trace_heads_stats(mixed, 2, kvp_budget_sparsity(0.6), &hs, &err),
                KVP_ESHAPE, &err, "differs from head 0's");
    kvp_trace_free(other);
    for (int i = 0; i < 3; i++)
        kvp_trace_free(t[i]);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"one_head_is_today", test_one_head_is_today},
        {"kinds", test_kinds},
        {"streaming", test_streaming},
        {"retrieval", test_retrieval},
        {"names_and_bad", test_names_and_bad},
        {"sequences", test_sequences},
        {"heads_stats", test_heads_stats},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
