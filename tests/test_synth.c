/* The synthetic trace generator (src/trace/synth.c, docs/SYNTHETIC.md).  Expected values come from
 * the contract (docs/MODEL.md §2: |A| = k, positions ascending, top-k with ties to the lower
 * position) checked against an oracle written here (a plain sort of the scores callback's
 * output), and from properties the model promises (determinism, layer independence, sinks
 * and window always read, presets ordered by drift). */
#include "check.h"
#include "trace/trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kvp_synth_params params(uint32_t P, uint32_t N, uint32_t L, kvp_variation v, uint64_t seed)
{
    kvp_synth_params sp;
    memset(&sp, 0, sizeof sp);
    sp.prompt = P;
    sp.steps = N;
    sp.layers = L;
    sp.budget = kvp_budget_sparsity(0.6);
    sp.variation = v;
    sp.seed = seed;
    return sp;
}

static kvp_trace *make(const kvp_synth_params *sp)
{
    kvp_trace *t = NULL;
    kvp_error err = {0, ""};
    REQUIRE_OK(kvp_trace_synthetic(&t, sp, &err), &err);
    if (!t) {
        fprintf(stderr, "cannot build the synthetic trace: %s\n", err.msg);
        exit(2);
    }
    return t;
}

static kvp_cursor *cursor(const kvp_trace *t, uint32_t l, double sparsity)
{
    kvp_cursor *c = NULL;
    kvp_error err = {0, ""};
    REQUIRE_OK(kvp_cursor_create(&c, t, l, kvp_budget_sparsity(sparsity), &err), &err);
    if (!c) {
        fprintf(stderr, "cannot open a cursor: %s\n", err.msg);
        exit(2);
    }
    return c;
}

/* FNV-1a over a set's positions and scores: a compact fingerprint to compare runs. */
static uint64_t fingerprint(uint64_t h, const kvp_access *a)
{
    const unsigned char *b = (const unsigned char *)a->pos;
    for (size_t i = 0; i < (size_t)a->count * sizeof *a->pos; i++)
        h = (h ^ b[i]) * 0x100000001B3ull;
    b = (const unsigned char *)a->score;
    for (size_t i = 0; i < (size_t)a->count * sizeof *a->score; i++)
        h = (h ^ b[i]) * 0x100000001B3ull;
    return h ^ a->count;
}

/* Fingerprints of every step of one layer, stepped alone. */
static void layer_prints(const kvp_trace *t, uint32_t l, double sparsity, uint64_t *out)
{
    kvp_cursor *c = cursor(t, l, sparsity);
    kvp_access a;
    kvp_error err = {0, ""};
    uint32_t n = 0;
    int r;
    while ((r = kvp_cursor_next(c, &a, &err)) == 1)
        out[n++] = fingerprint(0xCBF29CE484222325ull, &a);
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_U64(n, kvp_trace_steps(t));
    kvp_cursor_free(c);
}

/* Fingerprints of every step of one layer at a budget, its sets as bits (kvp_cursor_next_bits,
 * the grid's and the streams' way): FNV-1a over the words. */
static void layer_bit_prints(const kvp_trace *t, uint32_t l, kvp_budget b, uint64_t *out)
{
    kvp_cursor *c = NULL;
    kvp_error err = {0, ""};
    REQUIRE_OK(kvp_cursor_create(&c, t, l, b, &err), &err);
    if (!c)
        exit(2);
    kvp_cursor_sets_only(c);
    const uint32_t W = (kvp_trace_prompt(t) + kvp_trace_steps(t)) / 64 + 1;
    uint64_t *w = calloc(W, sizeof *w);
    kvp_access a;
    for (uint32_t n = 0; n < kvp_trace_steps(t); n++) {
        memset(w, 0, W * sizeof *w);
        CHECK_EQ_INT(kvp_cursor_next_bits(c, &a, w, 1, NULL, &err), 1);
        uint64_t h = 0xCBF29CE484222325ull ^ a.count;
        for (uint32_t i = 0; i < W; i++)
            h = (h ^ w[i]) * 0x100000001B3ull;
        out[n] = h;
    }
    free(w);
    kvp_cursor_free(c);
}

/* |a ∩ b| by merging two ascending lists. */
static uint32_t common(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb)
{
    uint32_t i = 0, j = 0, both = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) {
            both++;
            i++;
            j++;
        } else if (a[i] < b[j]) {
            i++;
        } else {
            j++;
        }
    }
    return both;
}

/* ---------------------------------------------------------------------------------------- */

static void test_names_and_defaults(void)
{
    static const char *const names[] = {"synthetic:low", "synthetic:actual", "synthetic:high"};
    for (int v = KVP_VAR_LOW; v <= KVP_VAR_HIGH; v++) {
        kvp_synth_params sp = params(50, 5, 2, (kvp_variation)v, 1);
        kvp_trace *t = make(&sp);
        CHECK_STR(kvp_trace_name(t), names[v]);
        CHECK_EQ_U64(kvp_trace_prompt(t), 50);
        CHECK_EQ_U64(kvp_trace_steps(t), 5);
        CHECK_EQ_U64(kvp_trace_layers(t), 2);
        CHECK_EQ_INT(kvp_trace_is_bool(t), 0);
        kvp_trace_free(t);
    }

    kvp_scenario sc;
    memset(&sc, 0, sizeof sc);
    sc.prompt = 31299;
    sc.steps = 10239;
    sc.layers = 32;
    sc.sparsity = 0.85;
    sc.variation = KVP_VAR_HIGH;
    sc.seed = 987654321;
    kvp_synth_params sp;
    memset(&sp, 0xAB, sizeof sp); /* every field must be written */
    kvp_synth_default(&sp, &sc);
    CHECK_EQ_U64(sp.prompt, 31299);
    CHECK_EQ_U64(sp.steps, 10239);
    CHECK_EQ_U64(sp.layers, 32);
    CHECK_NEAR(sp.budget.sparsity, 0.85, 0);
    CHECK_EQ_INT(sp.variation, KVP_VAR_HIGH);
    CHECK_EQ_U64(sp.seed, 987654321);
    CHECK_EQ_U64(sp.sinks, 0);
    CHECK_EQ_U64(sp.window, 0);
    CHECK_NEAR(sp.drift, 0.0, 0);
    CHECK_NEAR(sp.heavy_share, 0.0, 0);
}

static void test_bad_params(void)
{
    kvp_error err = {0, ""};
    kvp_trace *t = NULL;
    kvp_synth_params sp = params(100, 10, 2, KVP_VAR_ACTUAL, 1);

    sp.variation = (kvp_variation)3;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "variation");
    sp = params(0, 10, 2, KVP_VAR_ACTUAL, 1);
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "prompt");
    sp = params(100, 0, 2, KVP_VAR_ACTUAL, 1);
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "steps");
    sp = params(100, 10, 0, KVP_VAR_ACTUAL, 1);
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "layers");
    sp = params(UINT32_MAX, 10, 2, KVP_VAR_ACTUAL, 1);
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_ERANGE, &err, "32 bits");
    sp = params(100, 10, 2, KVP_VAR_ACTUAL, 1);
    sp.budget = kvp_budget_sparsity(1.0);
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "sparsity");
    sp.budget = kvp_budget_sparsity(NAN);
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "sparsity");
    sp = params(100, 10, 2, KVP_VAR_ACTUAL, 1);
    sp.drift = 1.5;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "drift");
    sp.drift = -0.1;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "drift");
    sp = params(100, 10, 2, KVP_VAR_ACTUAL, 1);
    sp.heavy_share = 1.0;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "heavy_share");
    sp.heavy_share = NAN;
    CHECK_FAILS(kvp_trace_synthetic(&t, &sp, &err), KVP_EINVAL, &err, "heavy_share");
    CHECK(t == NULL);

    /* Cursors: the layer must exist, the sparsity be in [0, 1). */
    sp = params(100, 10, 2, KVP_VAR_ACTUAL, 1);
    t = make(&sp);
    kvp_cursor *c = NULL;
    CHECK_FAILS(kvp_cursor_create(&c, t, 2, kvp_budget_sparsity(0.5), &err), KVP_EINVAL, &err, "layer 2");
    CHECK_FAILS(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(1.0), &err), KVP_EINVAL, &err, "sparsity");
    CHECK_FAILS(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(-0.5), &err), KVP_EINVAL, &err, "sparsity");
    CHECK(c == NULL);

    /* Steps run forward: the scores of an earlier step are no longer there. */
    c = cursor(t, 1, 0.5);
    kvp_access a;
    float row[110];
    CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
    CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
    CHECK_FAILS(t->vt->scores(c->state, 0, row, &err), KVP_EINVAL, &err, "step 0");
    CHECK_FAILS(t->vt->scores(c->state, 10, row, &err), KVP_EINVAL, &err, "step 10");
    kvp_cursor_free(c);
    kvp_trace_free(t);
    kvp_trace_free(NULL);
    kvp_cursor_free(NULL);
}

/* Every set: |A| = k with k worked out here in integers (sparsity 0.6: k = ceil(2C/5)),
 * positions strictly ascending inside the context, sinks and window always in. */
static void test_shape(void)
{
    kvp_error err = {0, ""};
    for (int v = KVP_VAR_LOW; v <= KVP_VAR_HIGH; v++) {
        kvp_synth_params sp = params(1000, 120, 3, (kvp_variation)v, 7);
        kvp_trace *t = make(&sp);
        for (uint32_t l = 0; l < 3; l++) {
            kvp_cursor *c = cursor(t, l, 0.6);
            kvp_access a;
            uint32_t n = 0, bad_k = 0, bad_order = 0, bad_meta = 0, miss_sink = 0, miss_win = 0;
            while (kvp_cursor_next(c, &a, &err) == 1) {
                uint32_t ctx = 1000 + n;
                bad_meta += a.step != n || a.layer != l || a.context != ctx;
                bad_k += a.count != (2 * ctx + 4) / 5;
                for (uint32_t i = 0; i < a.count; i++)
                    bad_order += a.pos[i] >= ctx || (i && a.pos[i] <= a.pos[i - 1]);
                /* sinks = 4, window = 64 in every preset: the first 4 positions and the
                 * last 64 are the first 4 and last 64 entries of the set */
                for (uint32_t i = 0; i < 4; i++)
                    miss_sink += a.pos[i] != i;
                for (uint32_t i = 0; i < 64; i++)
                    miss_win += a.pos[a.count - 64 + i] != ctx - 64 + i;
                n++;
            }
            CHECK_EQ_U64(n, 120);
            CHECK_EQ_U64(bad_meta, 0);
            CHECK_EQ_U64(bad_k, 0);
            CHECK_EQ_U64(bad_order, 0);
            CHECK_EQ_U64(miss_sink, 0);
            CHECK_EQ_U64(miss_win, 0);
            kvp_cursor_free(c);
        }
        kvp_trace_free(t);
    }

    /* Extremes: sparsity 0 reads everything; a prompt shorter than the sinks grows sinks. */
    kvp_synth_params sp = params(2, 6, 1, KVP_VAR_ACTUAL, 3);
    kvp_trace *t = make(&sp);
    kvp_cursor *c = cursor(t, 0, 0.0);
    kvp_access a;
    uint32_t n = 0, bad = 0;
    while (kvp_cursor_next(c, &a, &err) == 1) {
        bad += a.count != 2 + n;
        for (uint32_t i = 0; i < a.count; i++)
            bad += a.pos[i] != i;
        n++;
    }
    CHECK_EQ_U64(n, 6);
    CHECK_EQ_U64(bad, 0);
    kvp_cursor_free(c);
    kvp_trace_free(t);
}

static void test_determinism(void)
{
    enum { P = 800, N = 60, L = 3 };
    uint64_t a[L][N], b[L][N], d[L][N];
    kvp_synth_params sp = params(P, N, L, KVP_VAR_ACTUAL, 12345);
    kvp_trace *t1 = make(&sp), *t2 = make(&sp);
    sp.seed = 12346;
    kvp_trace *t3 = make(&sp);
    for (uint32_t l = 0; l < L; l++) {
        layer_prints(t1, l, 0.6, a[l]);
        layer_prints(t2, l, 0.6, b[l]);
        layer_prints(t3, l, 0.6, d[l]);
    }
    uint32_t same = 0, differ = 0, layers_same = 0;
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t n = 0; n < N; n++) {
            same += a[l][n] == b[l][n];
            differ += a[l][n] != d[l][n];
        }
    CHECK_EQ_U64(same, L * N);
    CHECK(differ > 0);
    /* Layers are different streams. */
    for (uint32_t n = 0; n < N; n++)
        layers_same += a[0][n] == a[1][n];
    CHECK(layers_same < N);
    kvp_trace_free(t1);
    kvp_trace_free(t2);
    kvp_trace_free(t3);
}

/* A trace remembers each step's threshold for the budget that found it (synth.c,
 * threshold_of): later cursors of the layer, at the same budget or another (sparsity, topk),
 * after one that stopped half-way, as positions or as bits, give the sets of a trace that
 * has run nothing.  Taking a remembered threshold for another k fails here. */
static void test_thresholds_remembered(void)
{
    enum { P = 700, N = 50, L = 2 };
    kvp_synth_params sp = params(P, N, L, KVP_VAR_HIGH, 99);
    kvp_trace *t = make(&sp);
    uint64_t got[N], want[N];
    kvp_error err = {0, ""};
    kvp_access a;
    kvp_cursor *c = cursor(t, 0, 0.6);
    for (uint32_t n = 0; n < N / 2; n++)
        CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
    kvp_cursor_free(c);
    static const double sparsity[] = {0.6, 0.3, 0.6, 0.9, 0.3};
    for (size_t i = 0; i < sizeof sparsity / sizeof *sparsity; i++)
        for (uint32_t l = 0; l < L; l++) {
            kvp_trace *f = make(&sp);
            layer_prints(t, l, sparsity[i], got);
            layer_prints(f, l, sparsity[i], want);
            for (uint32_t n = 0; n < N; n++)
                CHECK_EQ_U64(got[n], want[n]);
            kvp_trace_free(f);
        }
    static const uint32_t topk[] = {100, 300, 100};
    for (size_t i = 0; i < sizeof topk / sizeof *topk; i++) {
        kvp_trace *f = make(&sp);
        layer_bit_prints(t, 1, kvp_budget_topk(topk[i]), got);
        layer_bit_prints(f, 1, kvp_budget_topk(topk[i]), want);
        for (uint32_t n = 0; n < N; n++)
            CHECK_EQ_U64(got[n], want[n]);
        kvp_trace_free(f);
    }
    kvp_trace_free(t);
}

/* Layer 3 stepped alone, among the other layers (round robin), and in a trace with a
 * different number of layers: the same sets. */
static void test_layer_independence(void)
{
    enum { P = 600, N = 40 };
    uint64_t alone[N], together[N], other[N];
    kvp_synth_params sp = params(P, N, 6, KVP_VAR_HIGH, 99);
    kvp_trace *t = make(&sp);
    layer_prints(t, 3, 0.6, alone);

    kvp_cursor *c[6];
    for (uint32_t l = 0; l < 6; l++)
        c[l] = cursor(t, l, 0.6);
    kvp_error err = {0, ""};
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t l = 0; l < 6; l++) {
            kvp_access a;
            CHECK_EQ_INT(kvp_cursor_next(c[l], &a, &err), 1);
            if (l == 3)
                together[n] = fingerprint(0xCBF29CE484222325ull, &a);
        }
    for (uint32_t l = 0; l < 6; l++)
        kvp_cursor_free(c[l]);
    kvp_trace_free(t);

    sp.layers = 4;
    t = make(&sp);
    layer_prints(t, 3, 0.6, other);
    kvp_trace_free(t);

    uint32_t same1 = 0, same2 = 0;
    for (uint32_t n = 0; n < N; n++) {
        same1 += alone[n] == together[n];
        same2 += alone[n] == other[n];
    }
    CHECK_EQ_U64(same1, N);
    CHECK_EQ_U64(same2, N);
}

/* The oracle: sort positions by (score descending, position ascending), keep k, sort the kept
 * positions ascending. */
static const float *oracle_scores;

static int by_score(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    if (oracle_scores[a] != oracle_scores[b])
        return oracle_scores[a] > oracle_scores[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int by_pos(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* For several sparsities (k far above, near and below sinks + window): the cursor's set is
 * the oracle's top-k of the scores callback, its scores are those scores, every selected
 * score is >= every unselected one (equal ones: lower positions selected), and every score
 * is exactly j / 65535 for an integer j. */
static void test_scores_agree(void)
{
    enum { P = 500, N = 40 };
    static const double sparsities[] = {0.0, 0.37, 0.6, 0.9, 0.99, 0.999};
    float *row = malloc((P + N) * sizeof *row);
    uint32_t *idx = malloc((P + N) * sizeof *idx);
    uint8_t *in = malloc(P + N);
    kvp_error err = {0, ""};
    for (size_t si = 0; si < sizeof sparsities / sizeof *sparsities; si++) {
        double s = sparsities[si];
        kvp_synth_params sp = params(P, N, 2, KVP_VAR_HIGH, 5 + si);
        sp.budget = kvp_budget_sparsity(s);
        kvp_trace *t = make(&sp);
        kvp_cursor *c = cursor(t, 1, s);
        uint32_t mismatch = 0, badscore = 0, order = 0, grid = 0, steps = 0;
        kvp_access a;
        while (kvp_cursor_next(c, &a, &err) == 1) {
            uint32_t ctx = a.context, k = kvp_access_k(kvp_budget_sparsity(s), ctx);
            CHECK_OK(t->vt->scores(c->state, a.step, row, &err), &err);
            oracle_scores = row;
            for (uint32_t p = 0; p < ctx; p++)
                idx[p] = p;
            qsort(idx, ctx, sizeof *idx, by_score);
            qsort(idx, k, sizeof *idx, by_pos);
            mismatch += a.count != k;
            for (uint32_t i = 0; i < k && i < a.count; i++) {
                mismatch += a.pos[i] != idx[i];
                badscore += a.score[i] != row[a.pos[i]];
            }
            /* every selected >= every unselected; equal: selected is the lower position */
            memset(in, 0, ctx);
            for (uint32_t i = 0; i < a.count; i++)
                in[a.pos[i]] = 1;
            float min_sel = INFINITY, max_un = -INFINITY;
            for (uint32_t p = 0; p < ctx; p++) {
                if (in[p] && row[p] < min_sel)
                    min_sel = row[p];
                if (!in[p] && row[p] > max_un)
                    max_un = row[p];
            }
            uint32_t top_sel_tie = 0, low_un_tie = UINT32_MAX;
            for (uint32_t p = 0; p < ctx; p++) {
                if (in[p] && row[p] == min_sel)
                    top_sel_tie = p;
                if (!in[p] && row[p] == max_un && low_un_tie == UINT32_MAX)
                    low_un_tie = p;
            }
            order += min_sel < max_un || (min_sel == max_un && top_sel_tie > low_un_tie);
            for (uint32_t p = 0; p < ctx; p++) {
                float j = nearbyintf(row[p] * 65535.0f);
                grid += !(j >= 0.0f && j <= 65535.0f && j / 65535.0f == row[p]);
            }
            steps++;
        }
        CHECK_EQ_U64(steps, N);
        CHECK_EQ_U64(mismatch, 0);
        CHECK_EQ_U64(badscore, 0);
        CHECK_EQ_U64(order, 0);
        CHECK_EQ_U64(grid, 0);
        kvp_cursor_free(c);
        kvp_trace_free(t);
    }
    free(row);
    free(idx);
    free(in);
}

/* kvp_access.bits: the set as a bitset, exactly (context + 63) / 64 words, bit p set for the
 * positions of the set and no other, also when ties at the threshold are left out (they are,
 * at some steps of these traces: counted, so the case is known to be met) and at contexts
 * that are no multiple of 64 or of the vector passes' 32 and 8 keys. */
static void test_bits(void)
{
    static const struct {
        uint32_t P, N;
        kvp_variation var;
        double sparsity;
    } cases[] = {{500, 40, KVP_VAR_HIGH, 0.6}, {37, 50, KVP_VAR_ACTUAL, 0.5},
                 {1000, 30, KVP_VAR_LOW, 0.9}, {300, 20, KVP_VAR_HIGH, 0.0}};
    kvp_error err = {0, ""};
    uint32_t wrong = 0, steps = 0, ties_out = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        kvp_synth_params sp = params(cases[ci].P, cases[ci].N, 2, cases[ci].var, 11 + ci);
        sp.budget = kvp_budget_sparsity(cases[ci].sparsity);
        kvp_trace *t = make(&sp);
        kvp_cursor *c = cursor(t, 1, cases[ci].sparsity);
        uint8_t *in = malloc(cases[ci].P + cases[ci].N);
        float *row = malloc((cases[ci].P + cases[ci].N) * sizeof *row);
        REQUIRE(in != NULL && row != NULL);
        kvp_access a;
        while (kvp_cursor_next(c, &a, &err) == 1) {
            const uint32_t ctx = a.context, words = (ctx + 63) / 64;
            REQUIRE(a.bits != NULL);
            memset(in, 0, ctx);
            for (uint32_t i = 0; i < a.count; i++)
                in[a.pos[i]] = 1;
            for (uint32_t p = 0; p < words * 64; p++)
                wrong += (uint32_t)(a.bits[p / 64] >> (p % 64) & 1) != (p < ctx && in[p]);
            /* a position left out whose score is the least taken one: a tie dropped */
            CHECK_OK(t->vt->scores(c->state, a.step, row, &err), &err);
            float least = INFINITY;
            for (uint32_t i = 0; i < a.count; i++)
                least = a.score[i] < least ? a.score[i] : least;
            uint32_t out_tie = 0;
            for (uint32_t p = 0; p < ctx; p++)
                out_tie |= !in[p] && row[p] == least;
            ties_out += out_tie;
            steps++;
        }
        free(in);
        free(row);
        kvp_cursor_free(c);
        kvp_trace_free(t);
    }
    CHECK_EQ_U64(steps, 40 + 50 + 30 + 20);
    CHECK_EQ_U64(wrong, 0);
    CHECK(ties_out > 0);
}

/* The scores callback may come before or after the step of the same n (a writer may ask
 * for the scores alone): the sets do not depend on the order. */
static void test_scores_first(void)
{
    enum { P = 300, N = 30 };
    kvp_synth_params sp = params(P, N, 1, KVP_VAR_ACTUAL, 2024);
    kvp_trace *t = make(&sp);
    uint64_t plain[N];
    layer_prints(t, 0, 0.6, plain);
    kvp_cursor *c = cursor(t, 0, 0.6);
    float row[P + N];
    kvp_error err = {0, ""};
    uint32_t same = 0;
    for (uint32_t n = 0; n < N; n++) {
        CHECK_OK(t->vt->scores(c->state, n, row, &err), &err);
        kvp_access a;
        CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
        same += fingerprint(0xCBF29CE484222325ull, &a) == plain[n];
    }
    CHECK_EQ_U64(same, N);
    kvp_cursor_free(c);
    kvp_trace_free(t);
}

/* With no drift, from one step to the next only two keys change (the new token enters the
 * window, the oldest window token leaves it) and k grows by at most 1, so at most two
 * positions are new in A(n): the new token and one other. */
static void test_no_drift(void)
{
    enum { P = 700, N = 50 };
    kvp_synth_params sp = params(P, N, 1, KVP_VAR_HIGH, 77);
    sp.drift = 1e-12; /* not 0, which means the preset's: rounds to no redraw at all */
    kvp_trace *t = make(&sp);
    kvp_cursor *c = cursor(t, 0, 0.6);
    uint32_t *prev = malloc((P + N) * sizeof *prev), np = 0, worst = 0;
    kvp_access a;
    kvp_error err = {0, ""};
    while (kvp_cursor_next(c, &a, &err) == 1) {
        if (a.step > 0) {
            uint32_t fresh = a.count - common(prev, np, a.pos, a.count);
            worst = fresh > worst ? fresh : worst;
        }
        memcpy(prev, a.pos, a.count * sizeof *prev);
        np = a.count;
    }
    CHECK(worst <= 2);
    CHECK(worst >= 1); /* the new token is always new */
    free(prev);
    kvp_cursor_free(c);
    kvp_trace_free(t);
}

/* Mean |A(n) ∩ A(n-1)| / |A(n)| over n >= 1 and both layers. */
static double mean_overlap(kvp_variation v)
{
    enum { P = 2000, N = 200, L = 2 };
    kvp_synth_params sp = params(P, N, L, v, 31337);
    kvp_trace *t = make(&sp);
    uint32_t *prev = malloc((P + N) * sizeof *prev);
    double sum = 0;
    uint32_t cnt = 0;
    kvp_error err = {0, ""};
    for (uint32_t l = 0; l < L; l++) {
        kvp_cursor *c = cursor(t, l, 0.6);
        kvp_access a;
        uint32_t np = 0;
        while (kvp_cursor_next(c, &a, &err) == 1) {
            if (a.step > 0) {
                sum += (double)common(prev, np, a.pos, a.count) / a.count;
                cnt++;
            }
            memcpy(prev, a.pos, a.count * sizeof *prev);
            np = a.count;
        }
        kvp_cursor_free(c);
    }
    free(prev);
    kvp_trace_free(t);
    return sum / cnt;
}

static void test_presets_ordered(void)
{
    double low = mean_overlap(KVP_VAR_LOW), act = mean_overlap(KVP_VAR_ACTUAL),
           high = mean_overlap(KVP_VAR_HIGH);
    printf("mean consecutive overlap at sparsity 0.6: low %.4f actual %.4f high %.4f\n", low,
           act, high);
    CHECK(low > act);
    CHECK(act > high);
    /* Chance level is k / C = 0.4; persistent heavy hitters, sinks and window keep even the
     * high preset well above it, and nothing is static. */
    CHECK(high > 0.5);
    CHECK(low < 1.0);
}

/* Written to .npy (float32 scores) and read back, the trace gives the same sets and scores:
 * scores are key / 65535, distinct for distinct keys, so the top-k cannot change. */
static void test_npy_round_trip(void)
{
    enum { P = 400, N = 25, L = 3 };
    char dir[] = "/tmp/kvp_test_synth.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0 /* mkdtemp failed */);
        return;
    }
    char path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/t.npy", dir);
    kvp_synth_params sp = params(P, N, L, KVP_VAR_ACTUAL, 4242);
    kvp_trace *t = make(&sp), *back = NULL;
    kvp_error err = {0, ""};
    CHECK_OK(kvp_trace_write_npy(t, path, &err), &err);
    REQUIRE_OK(kvp_trace_open_npy(&back, path, &err), &err);
    if (back) {
        CHECK_EQ_U64(kvp_trace_prompt(back), P);
        CHECK_EQ_U64(kvp_trace_steps(back), N);
        CHECK_EQ_U64(kvp_trace_layers(back), L);
        static const double sparsities[] = {0.6, 0.9};
        for (size_t si = 0; si < 2; si++)
            for (uint32_t l = 0; l < L; l++) {
                uint64_t a[N], b[N];
                layer_prints(t, l, sparsities[si], a);
                layer_prints(back, l, sparsities[si], b);
                uint32_t same = 0;
                for (uint32_t n = 0; n < N; n++)
                    same += a[n] == b[n];
                CHECK_EQ_U64(same, N);
            }
        kvp_trace_free(back);
    }
    kvp_trace_free(t);
    unlink(path);
    rmdir(dir);
}

/* synth.c computes key / 65535 as (float)((double)key * (1.0 / 65535.0)), and its AVX-512
 * scores in float as fmaf(key, hi, key * lo), hi the float nearest 1 / 65535 and lo the float
 * nearest the rest; both must equal the float quotient for every 16-bit key, on this
 * platform.  (key * hi alone differs at 512 keys.) */
static void test_score_identity(void)
{
    volatile double inv = 1.0 / 65535.0;
    volatile float den = 65535.0f;
    volatile float hi = (float)(1.0 / 65535.0);
    volatile float lo = (float)(1.0 / 65535.0 - (double)hi);
    uint32_t bad = 0, bad_fma = 0, bad_plain = 0;
    for (uint32_t key = 0; key <= 65535; key++) {
        const float q = (float)key / den, k = (float)key, klo = k * lo;
        bad += (float)((double)key * inv) != q;
        bad_fma += fmaf(k, hi, klo) != q;
        bad_plain += k * hi != q;
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(bad_fma, 0);
    CHECK(bad_plain > 0); /* the low part is needed: the check can tell */
}

/* A cursor told that no scores are wanted gives the same sets (ties included: sparsity 0.999
 * and many equal keys at the threshold, the window's in particular), without scores. */
static void test_sets_only(void)
{
    enum { P = 2000, N = 60 };
    const double sparsities[] = {0.0, 0.6, 0.97, 0.999};
    kvp_synth_params sp = params(P, N, 2, KVP_VAR_HIGH, 77);
    kvp_trace *t = make(&sp);
    kvp_error err = {0, ""};
    for (size_t i = 0; i < sizeof sparsities / sizeof *sparsities; i++) {
        kvp_cursor *full = cursor(t, 1, sparsities[i]), *sets = cursor(t, 1, sparsities[i]);
        kvp_cursor_sets_only(sets);
        uint32_t same = 0, no_scores = 0;
        for (uint32_t n = 0; n < N; n++) {
            kvp_access a, b;
            CHECK_EQ_INT(kvp_cursor_next(full, &a, &err), 1);
            CHECK_EQ_INT(kvp_cursor_next(sets, &b, &err), 1);
            same += a.count == b.count &&
                    memcmp(a.pos, b.pos, (size_t)a.count * sizeof *a.pos) == 0;
            no_scores += b.score == NULL;
        }
        CHECK_EQ_U64(same, N);
        CHECK_EQ_U64(no_scores, N);
        kvp_cursor_free(full);
        kvp_cursor_free(sets);
    }
    kvp_trace_free(t);
}

/* kvp_cursor_next_counts: the size of each step's set and its positions below a few bounds
 * (0, past the context, unsorted, repeated; none at some steps, where the keys are not made)
 * as a cursor of the same trace lists them (kvp_cursor_next, kvp_access_count_below), at
 * contexts no multiple of 64, with many ties at the threshold (sparsity 0.999), a full drift
 * (the threshold jumps out of its band) and heads; in some cases the cursor goes on with
 * kvp_cursor_next after a count-only step (its keys made late, and caught up), the same sets.
 * Then eight cursors asked for counts alone (never made) go on together
 * (kvp_cursor_next_bits_many): the same bits as cursors asked alone from the start. */
static void test_next_counts(void)
{
    static const struct {
        uint32_t P, N, heads, head;
        kvp_variation var;
        double drift, sparsity;
        uint32_t sets_from; /* from this step on, the sets (kvp_cursor_next) */
    } cases[] = {
        {3000, 60, 0, 0, KVP_VAR_HIGH, 0.0, 0.6, 60}, {37, 50, 0, 0, KVP_VAR_ACTUAL, 0.0, 0.5, 30},
        {2000, 60, 0, 0, KVP_VAR_HIGH, 0.0, 0.999, 60}, {1000, 40, 0, 0, KVP_VAR_LOW, 0.0, 0.9, 21},
        {300, 30, 0, 0, KVP_VAR_HIGH, 0.0, 0.0, 30},  {5000, 40, 0, 0, KVP_VAR_ACTUAL, 1.0, 0.6, 40},
        {1000, 40, 4, 1, KVP_VAR_ACTUAL, 0.0, 0.6, 40}, {700, 40, 4, 2, KVP_VAR_HIGH, 0.0, 0.7, 13},
    };
    kvp_error err = {0, ""};
    uint32_t wrong = 0, counted = 0, sized = 0, listed = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        kvp_synth_params sp = params(cases[ci].P, cases[ci].N, 2, cases[ci].var, 90 + ci);
        sp.heads = cases[ci].heads;
        sp.head = cases[ci].head;
        sp.drift = cases[ci].drift;
        sp.budget = kvp_budget_sparsity(cases[ci].sparsity);
        kvp_trace *t = make(&sp);
        kvp_cursor *c = cursor(t, 1, cases[ci].sparsity), *ref = cursor(t, 1, cases[ci].sparsity);
        kvp_cursor_sets_only(c);
        for (uint32_t n = 0; n < cases[ci].N; n++) {
            kvp_access a, b;
            CHECK_EQ_INT(kvp_cursor_next(ref, &a, &err), 1);
            const uint32_t ctx = a.context;
            if (n >= cases[ci].sets_from) {
                CHECK_EQ_INT(kvp_cursor_next(c, &b, &err), 1);
                wrong += b.count != a.count ||
                         memcmp(b.pos, a.pos, (size_t)a.count * sizeof *a.pos) != 0;
                listed++;
                continue;
            }
            const uint32_t nb = n % 5 == 4 ? 0 : 1 + n % 4;
            const uint32_t at[4] = {(uint32_t)(n * 7919u % (ctx + 1)), ctx + 3 * (n % 2),
                                    n % 3 ? cases[ci].P : 0, (uint32_t)(n * 7919u % (ctx + 1))};
            uint32_t k = 0, h[4] = {0, 0, 0, 0};
            CHECK_EQ_INT(kvp_cursor_next_counts(c, at, nb, &k, h, &err), 1);
            wrong += k != a.count;
            for (uint32_t j = 0; j < nb; j++) {
                uint32_t kk, want;
                kvp_access_count_below(&a, at[j], &kk, &want);
                wrong += h[j] != want;
            }
            counted += nb > 0;
            sized += nb == 0;
        }
        uint32_t k, h[65];
        const uint32_t at[65] = {0};
        CHECK_EQ_INT(kvp_cursor_next_counts(c, at, 0, &k, h, &err), 0); /* past the last step */
        CHECK(kvp_cursor_next_counts(c, at, 65, &k, h, &err) < 0);
        kvp_cursor_free(c);
        kvp_cursor_free(ref);
        kvp_trace_free(t);
    }
    CHECK_EQ_U64(wrong, 0);
    CHECK(counted > 200 && sized > 50 && listed > 60);

    enum { G = 8, P = 1500, N = 12 };
    kvp_trace *t[G];
    kvp_cursor *c[G], *one[G];
    uint64_t *w[G], *wone;
    uint32_t diff = 0;
    wone = calloc((P + 37 * G + N) / 64 + 1, sizeof *wone);
    REQUIRE(wone != NULL);
    for (uint32_t i = 0; i < G; i++) {
        kvp_synth_params sp = params(P + 37 * i, N, 2, KVP_VAR_ACTUAL, 120 + i);
        t[i] = make(&sp);
        c[i] = cursor(t[i], 0, 0.6);
        one[i] = cursor(t[i], 0, 0.6);
        kvp_cursor_sets_only(c[i]);
        kvp_cursor_sets_only(one[i]);
        w[i] = calloc((P + 37 * i + N) / 64 + 1, sizeof *w[i]);
        REQUIRE(w[i] != NULL);
    }
    for (uint32_t n = 0; n < N; n++) {
        kvp_access a[G], b;
        if (n < 3) { /* counts alone: no keys made */
            for (uint32_t i = 0; i < G; i++) {
                uint32_t k, h;
                CHECK_EQ_INT(kvp_cursor_next_counts(c[i], NULL, 0, &k, &h, &err), 1);
                CHECK_EQ_INT(kvp_cursor_next_bits(one[i], &b, wone, 1, NULL, &err), 1);
                diff += k != b.count;
            }
            continue;
        }
        CHECK_EQ_INT(kvp_cursor_next_bits_many(c, G, a, w, 1, NULL, &err), 1);
        for (uint32_t i = 0; i < G; i++) {
            CHECK_EQ_INT(kvp_cursor_next_bits(one[i], &b, wone, 1, NULL, &err), 1);
            diff += a[i].count != b.count ||
                    memcmp(w[i], wone, ((b.context + 63) / 64) * sizeof *wone) != 0;
        }
    }
    CHECK_EQ_U64(diff, 0);
    for (uint32_t i = 0; i < G; i++) {
        free(w[i]);
        kvp_cursor_free(c[i]);
        kvp_cursor_free(one[i]);
        kvp_trace_free(t[i]);
    }
    free(wone);
}

/* kvp_cursor_next_bits_many: the steps of several cursors made together are those each makes
 * alone (kvp_cursor_next_bits on a cursor of its own), bit for bit, scores too: eleven
 * traces (two groups, of eight and of three) of different prompts (some shorter than the
 * window, where most drift runs reach past the drifting range's ends; one shorter than the
 * sinks), lengths (a cursor that ends leaves the list), presets, drifts (all, none), windows
 * (none: the new token draws its noise), heads (streaming heads draw no noise) and budgets,
 * the cursors not all at the same step (some asked alone before), at a stride of 3 words.
 * Then a list with a cursor past its last step: 0, and none asked. */
static void test_next_bits_many(void)
{
    enum { T = 11, S = 3 };
    static const struct {
        uint32_t P, N, heads, head, window;
        kvp_variation var;
        double drift, sparsity;
        uint32_t ahead; /* steps asked alone first */
    } cases[T] = {
        {3000, 40, 0, 0, 0, KVP_VAR_ACTUAL, 0.0, 0.6, 0}, {100, 40, 0, 0, 0, KVP_VAR_HIGH, 0.0, 0.5, 1},
        {37, 25, 0, 0, 0, KVP_VAR_ACTUAL, 0.0, 0.6, 0},   {1000, 40, 4, 0, 0, KVP_VAR_ACTUAL, 0.0, 0.6, 2},
        {1000, 40, 4, 1, 0, KVP_VAR_ACTUAL, 0.0, 0.6, 0}, {1000, 40, 4, 2, 0, KVP_VAR_ACTUAL, 0.0, 0.6, 0},
        {500, 33, 0, 0, 0, KVP_VAR_ACTUAL, 1.0, 0.9, 0},  {2, 40, 0, 0, 0, KVP_VAR_LOW, 0.0, 0.6, 3},
        {700, 40, 0, 0, 5, KVP_VAR_HIGH, 0.0, 0.6, 0},    {65, 12, 0, 0, 0, KVP_VAR_ACTUAL, 0.0, 0.0, 1},
        {2000, 40, 4, 3, 0, KVP_VAR_HIGH, 0.0, 0.6, 0},
    };
    kvp_error err = {0, ""};
    kvp_trace *t[T];
    kvp_cursor *one[T], *many[T];
    uint64_t *wone[T], *wmany[T];
    float *sone[T], *smany[T];
    uint32_t wrong = 0, steps = 0, streaming = 0;
    for (uint32_t i = 0; i < T; i++) {
        kvp_synth_params sp = params(cases[i].P, cases[i].N, 2, cases[i].var, 40 + i);
        sp.heads = cases[i].heads;
        sp.head = cases[i].head;
        sp.window = cases[i].window;
        sp.drift = cases[i].drift;
        sp.budget = kvp_budget_sparsity(cases[i].sparsity);
        streaming += sp.heads > 1 && kvp_synth_head_kind(&sp, 1) == KVP_HEAD_STREAMING;
        t[i] = make(&sp);
        one[i] = cursor(t[i], 1, cases[i].sparsity);
        many[i] = cursor(t[i], 1, cases[i].sparsity);
        if (i % 2) { /* scores for some, sets only for the others */
            kvp_cursor_sets_only(one[i]);
            kvp_cursor_sets_only(many[i]);
        }
        const size_t ctx = (size_t)cases[i].P + cases[i].N;
        wone[i] = calloc((ctx / 64 + 1) * S, sizeof *wone[i]);
        wmany[i] = calloc((ctx / 64 + 1) * S, sizeof *wmany[i]);
        sone[i] = calloc(ctx, sizeof *sone[i]);
        smany[i] = calloc(ctx, sizeof *smany[i]);
        REQUIRE(wone[i] && wmany[i] && sone[i] && smany[i]);
        kvp_access a;
        for (uint32_t j = 0; j < cases[i].ahead; j++) {
            CHECK_EQ_INT(kvp_cursor_next_bits(one[i], &a, wone[i], S, sone[i], &err), 1);
            CHECK_EQ_INT(kvp_cursor_next_bits(many[i], &a, wmany[i], S, smany[i], &err), 1);
        }
    }
    CHECK(streaming > 0 && streaming < 4); /* both kinds of heads among the four */
    /* asked together from six, where the generators' lanes are (AVX-512 F and BW, not
     * turned off) */
    int lanes = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(KVP_NO_SIMD)
    __builtin_cpu_init();
    lanes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            getenv("KVPLACE_SSE2_ONLY") == NULL;
#endif
    CHECK_EQ_INT(kvp_cursors_together(many, 5), 0);
    CHECK_EQ_INT(kvp_cursors_together(many, 6), lanes);
    CHECK_EQ_INT(kvp_cursors_together(many, 8), lanes);
    { /* one cursor among them that does not write bits (a trace in memory): never together */
        float data[10 * 2 * 16] = {0};
        kvp_trace *mem = NULL;
        REQUIRE_OK(kvp_trace_from_memory(&mem, data, 10, 2, 16, 0, "mem", &err), &err);
        kvp_cursor *mix[8];
        memcpy(mix, many, sizeof mix);
        mix[5] = cursor(mem, 1, 0.5);
        CHECK_EQ_INT(kvp_cursor_writes_bits(mix[5]), 0);
        CHECK_EQ_INT(kvp_cursors_together(mix, 8), 0);
        kvp_cursor_free(mix[5]);
        kvp_trace_free(mem);
    }
    for (;;) {
        kvp_cursor *c[T];
        kvp_access a[T];
        uint64_t *w[T];
        float *sc[T];
        uint32_t who[T], n = 0;
        for (uint32_t i = 0; i < T; i++)
            if (many[i]->next < cases[i].N) {
                c[n] = many[i];
                w[n] = wmany[i];
                sc[n] = smany[i];
                who[n++] = i;
            }
        if (n == 0)
            break;
        CHECK_EQ_INT(kvp_cursor_next_bits_many(c, n, a, w, S, sc, &err), 1);
        for (uint32_t q = 0; q < n; q++) {
            const uint32_t i = who[q];
            kvp_access b;
            CHECK_EQ_INT(kvp_cursor_next_bits(one[i], &b, wone[i], S, sone[i], &err), 1);
            const uint32_t words = (b.context + 63) / 64;
            wrong += a[q].step != b.step || a[q].layer != b.layer ||
                     a[q].context != b.context || a[q].count != b.count ||
                     (a[q].score == NULL) != (b.score == NULL);
            for (uint32_t x = 0; x < words; x++)
                wrong += wone[i][x * S] != wmany[i][x * S];
            for (uint32_t x = 0; b.score && x < b.count; x++)
                wrong += sone[i][x] != smany[i][x];
            steps++;
        }
    }
    uint32_t expect = 0;
    for (uint32_t i = 0; i < T; i++)
        expect += cases[i].N - cases[i].ahead;
    CHECK_EQ_U64(steps, expect);
    CHECK_EQ_U64(wrong, 0);
    /* a cursor past its last step in the list: 0, the others not asked */
    kvp_access a[2];
    kvp_cursor *pair[2] = {one[0], many[2]};
    uint64_t *w[2] = {wone[0], wmany[2]};
    const uint32_t before = one[0]->next;
    kvp_cursor_free(one[0]);
    one[0] = cursor(t[0], 1, cases[0].sparsity);
    pair[0] = one[0];
    CHECK_EQ_INT(kvp_cursor_next_bits_many(pair, 2, a, w, S, NULL, &err), 0);
    CHECK_EQ_U64(one[0]->next, 0);
    CHECK(before == cases[0].N);
    for (uint32_t i = 0; i < T; i++) {
        kvp_cursor_free(one[i]);
        kvp_cursor_free(many[i]);
        kvp_trace_free(t[i]);
        free(wone[i]);
        free(wmany[i]);
        free(sone[i]);
        free(smany[i]);
    }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"names_and_defaults", test_names_and_defaults},
        {"bad_params", test_bad_params},
        {"shape", test_shape},
        {"determinism", test_determinism},
        {"layer_independence", test_layer_independence},
        {"thresholds_remembered", test_thresholds_remembered},
        {"scores_agree", test_scores_agree},
        {"scores_first", test_scores_first},
        {"no_drift", test_no_drift},
        {"presets_ordered", test_presets_ordered},
        {"npy_round_trip", test_npy_round_trip},
        {"score_identity", test_score_identity},
        {"sets_only", test_sets_only},
        {"bits", test_bits},
        {"next_bits_many", test_next_bits_many},
        {"next_counts", test_next_counts},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
