/*
 * The lookahead grid (src/policy/lookahead_grid.c): one pass of bitset simulations for many R
 * of one W must give, for every R, the engine's own lookahead result field for field (the
 * engine's lookahead is in turn checked against the literal reading of docs/MODEL.md
 * section 5 in test_policies).  Scenarios: synthetic and random traces, on the source and on its cache,
 * capacity from tight (slots below a step's reads) to loose (nothing moves), W from 1 past
 * the trace's length, every R of sa's grid.  On several streams (distinct sequences, every
 * one decoding every step; docs/MODEL.md §12) the same, per-sequence counts included, over
 * random and synthetic sequences of different prompts, with and without ties.
 *
 * Usage: test_lookahead_grid [seed]
 */
#include "kvplace.h"
#include "support.h"
#include "engine/runner.h"
#include "policy/lookahead_grid.h"
#include "trace/trace.h"

#include <stdlib.h>


static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

static kvp_trace *synthetic(uint32_t P, uint32_t N, uint32_t L, kvp_variation v, double sp,
                            uint64_t seed)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    sc.prompt = P;
    sc.steps = N;
    sc.layers = L;
    sc.variation = v;
    sc.sparsity = sp;
    sc.seed = seed;
    kvp_synth_params p;
    kvp_synth_default(&p, &sc);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_synthetic(&t, &p, &err), &err);
    return t;
}

/* Random scores (many ties when `ties`) over N x L x C. */
static kvp_trace *random_trace(uint32_t N, uint32_t L, uint32_t C, int ties)
{
    size_t cells = (size_t)N * L * C;
    float *data = malloc(cells * sizeof *data);
    for (size_t i = 0; i < cells; i++)
        data[i] = ties ? (float)rnd(3) : (float)rnd(100000);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "random", &err), &err);
    free(data);
    return t;
}

/* The per-sequence counts of a run on several streams. */
static int same_seqs(const kvp_result *a, const kvp_result *b)
{
    int same = a->sequences == b->sequences;
    for (uint32_t q = 0; same && q < a->sequences && q < KVP_MAX_SEQUENCES; q++) {
        const struct kvp_seq_result *x = &a->seq[q], *y = &b->seq[q];
        same = x->prompt == y->prompt && x->steps == y->steps &&
               x->kv_read_hbm == y->kv_read_hbm && x->kv_read_dram == y->kv_read_dram &&
               x->promoted_bytes == y->promoted_bytes && x->demoted_bytes == y->demoted_bytes;
    }
    return same;
}

static int same_result(const kvp_result *a, const kvp_result *b)
{
    return same_report(a, b) && strcmp(a->policy, b->policy) == 0 && a->slots == b->slots &&
           a->steps == b->steps && a->layers == b->layers && a->prompt == b->prompt &&
           a->block_tokens == b->block_tokens && same_seqs(a, b);
}

/* Every R of 0, 0.1, .., 1 at window W: the grid against the engine, one by one. */
static void check_w(const kvp_scenario *sc, const kvp_trace *t, uint32_t W, unsigned threads)
{
    kvp_policy_spec ps[11];
    kvp_result grid[11], one;
    for (int r = 0; r <= 10; r++) {
        char spec[64];
        snprintf(spec, sizeof spec, "lookahead:W=%u:R=%.1f", W, r / 10.0);
        CHECK_OK(kvp_policy_parse(&ps[r], spec, &err), &err);
    }
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    CHECK_OK(kvp_lookahead_grid(sc, t, ps, 11, &ro, grid, &err), &err);
    for (int r = 0; r <= 10; r++) {
        CHECK_OK(kvp_engine_run(sc, t, &ps[r], &ro, &one, &err), &err);
        if (!check_report_(same_result(&grid[r], &one), __FILE__, __LINE__,
                           "the grid gives the engine's lookahead result"))
            fprintf(stderr, "    %s slots %u: T %.17g (grid) vs %.17g, promoted %llu vs %llu, "
                    "demoted %llu vs %llu\n", one.params, one.slots, grid[r].total_time_s,
                    one.total_time_s, (unsigned long long)grid[r].promoted_bytes,
                    (unsigned long long)one.promoted_bytes,
                    (unsigned long long)grid[r].demoted_bytes,
                    (unsigned long long)one.demoted_bytes);
    }
}

/* Several W in one pass (their order mixed, a W repeated apart, R spread, one W past the
 * trace's steps when N is small): the grid against the engine, one by one. */
static void check_ws(const kvp_scenario *sc, const kvp_trace *t, unsigned threads)
{
    const uint32_t N = kvp_trace_steps(t);
    const uint32_t ws[] = {3, 1, 16, N + 2, 3, 7, 1, 2, N > 1 ? N - 1 : 1};
    enum { K = sizeof ws / sizeof *ws };
    kvp_policy_spec ps[K];
    kvp_result grid[K], one;
    for (int k = 0; k < K; k++) {
        char spec[64];
        snprintf(spec, sizeof spec, "lookahead:W=%u:R=%.1f", ws[k], (k * 3 % 11) / 10.0);
        CHECK_OK(kvp_policy_parse(&ps[k], spec, &err), &err);
    }
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    CHECK_OK(kvp_lookahead_grid(sc, t, ps, K, &ro, grid, &err), &err);
    for (int k = 0; k < K; k++) {
        CHECK_OK(kvp_engine_run(sc, t, &ps[k], &ro, &one, &err), &err);
        if (!check_report_(same_result(&grid[k], &one), __FILE__, __LINE__,
                           "several W in one grid pass give each one's engine result"))
            fprintf(stderr, "    %s slots %u: T %.17g (grid) vs %.17g\n", one.params,
                    one.slots, grid[k].total_time_s, one.total_time_s);
    }
}

static void check_riders(const kvp_scenario *sc, const kvp_trace *t);

static kvp_trace *cache_of(const kvp_trace *t, double sparsity)
{
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    kvp_trace *c = NULL;
    CHECK_OK(kvp_trace_cache(&c, t, kvp_budget_sparsity(sparsity), &ro, &err), &err);
    return c;
}

static void test_synthetic(void)
{
    static const uint32_t slots[] = {40, 300, 700, 5000};
    static const uint32_t ws[] = {1, 2, 3, 7, 16, 64, 200};
    kvp_trace *t = synthetic(900, 120, 2, KVP_VAR_ACTUAL, 0.6, 5);
    kvp_trace *c = cache_of(t, 0.6);
    for (size_t s = 0; s < sizeof slots / sizeof *slots; s++) {
        kvp_scenario sc;
        slots_scenario(&sc, 2, slots[s], 0.6);
        for (size_t w = 0; w < sizeof ws / sizeof *ws; w++) {
            check_w(&sc, c, ws[w], 2);
            if (w % 3 == 0)
                check_w(&sc, t, ws[w], 1);
        }
        check_ws(&sc, s % 2 ? c : t, 1 + (unsigned)(s / 2));
    }
    kvp_trace_free(c);
    kvp_trace_free(t);
    /* High variation, extreme sparsities. */
    static const double sps[] = {0.0, 0.3, 0.95};
    for (size_t i = 0; i < sizeof sps / sizeof *sps; i++) {
        kvp_trace *h = synthetic(300, 80, 1, KVP_VAR_HIGH, sps[i], 11 + i);
        kvp_scenario sc;
        slots_scenario(&sc, 1, 120, sps[i]);
        check_w(&sc, h, 4, 1);
        check_w(&sc, h, 13, 1);
        kvp_trace_free(h);
    }
}

/* Random scores, with ties: many blocks share each window count. */
static void test_random(uint64_t seed)
{
    rng_state = seed;
    for (int k = 0; k < 12; k++) {
        const uint32_t N = 10 + rnd(60), C = 70 + rnd(300), L = 1 + rnd(2);
        kvp_trace *t = random_trace(N, L, C, k % 2);
        kvp_scenario sc;
        const double sp = rnd(10) / 10.0;
        slots_scenario(&sc, L, rnd(C), sp);
        const uint32_t P = kvp_trace_prompt(t);
        (void)P;
        check_w(&sc, t, 1 + rnd(20), 1);
        kvp_trace *c = cache_of(t, sp);
        check_w(&sc, c, 1 + rnd(70), 1);
        if (k % 3 == 0)
            check_ws(&sc, k % 2 ? c : t, 1);
        if (k % 4 == 1) /* one stream in memory: no trace cache, lookahead rides on sa */
            check_riders(&sc, t);
        kvp_trace_free(c);
        kvp_trace_free(t);
    }
}

/* S random sequences of N steps, each its own prompt (ties: many equal scores). */
static kvp_trace *random_sequences(uint32_t S, uint32_t N, uint32_t L, int ties)
{
    kvp_trace *seq[64];
    for (uint32_t q = 0; q < S; q++)
        seq[q] = random_trace(N, L, N + 20 + rnd(200), ties);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
    return t;
}

/* A list of lookahead alone, of one W and of two (kvp_run_many gives it to the grid on
 * streams too), against the engine's runs one by one. */
static void check_list(const kvp_scenario *sc, const kvp_trace *t)
{
    kvp_policy_spec ps[3];
    kvp_result many[3], one;
    CHECK_OK(kvp_policy_parse(&ps[0], "lookahead:W=3:R=0.3", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[1], "lookahead:W=3:R=1", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[2], "lookahead:W=5:R=0.6", &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    CHECK_OK(kvp_run_many(sc, t, ps, 2, &ro, many, &err), &err);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(kvp_engine_run(sc, t, &ps[i], &ro, &one, &err), &err);
        CHECK(same_result(&many[i], &one));
    }
    CHECK_OK(kvp_run_many(sc, t, ps, 3, &ro, many, &err), &err);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(kvp_engine_run(sc, t, &ps[i], &ro, &one, &err), &err);
        CHECK(same_result(&many[i], &one));
    }
}

/* A list of lookahead of two W among other policies on streams (kvp_run_many: the others in
 * their pass, lookahead in grid passes of its own) against the engine's runs one by one. */
static void check_mixed(const kvp_scenario *sc, const kvp_trace *t)
{
    static const char *const specs[] = {"static", "lookahead:W=4:R=0.4", "reactive", "page",
                                        "lookahead:W=7:R=1", "unlimited",
                                        "lookahead:W=4:R=1"};
    enum { N = sizeof specs / sizeof *specs };
    kvp_policy_spec ps[N];
    kvp_result many[N], one;
    for (int i = 0; i < N; i++)
        CHECK_OK(kvp_policy_parse(&ps[i], specs[i], &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    CHECK_OK(kvp_run_many(sc, t, ps, N, &ro, many, &err), &err);
    for (int i = 0; i < N; i++) {
        CHECK_OK(kvp_engine_run(sc, t, &ps[i], &ro, &one, &err), &err);
        if (!check_report_(same_result(&many[i], &one), __FILE__, __LINE__,
                           "a list with lookahead on streams gives each policy's own run"))
            fprintf(stderr, "    %s slots %u: T %.17g vs %.17g\n", specs[i], one.slots,
                    many[i].total_time_s, one.total_time_s);
    }
}

/* A list with sa, lookahead of two W and others on streams (kvp_run_many: lookahead rides
 * on sa's first grid pass, run_riders in src/policy/policy.h), for one accounting and two
 * (weights counted and not): each result byte for byte that of the policy run alone. */
static void check_riders(const kvp_scenario *sc, const kvp_trace *t)
{
    static const char *const specs[] = {"static", "lookahead:W=4:R=0.4", "reactive",
                                        "sa:W_max=9:W0=4:moves=4:budget=9:seed=3",
                                        "lookahead:W=7:R=1", "bound", "lookahead:W=4:R=1"};
    enum { N = sizeof specs / sizeof *specs };
    kvp_policy_spec ps[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(kvp_policy_parse(&ps[i], specs[i], &err), &err);
    kvp_scenario acc[2] = {*sc, *sc};
    acc[1].reserve += acc[1].weight_bytes; /* the same KV budget, weights not counted */
    acc[1].weight_bytes = 0;
    const kvp_scenario *scs[2] = {&acc[0], &acc[1]};
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    kvp_result many[2 * N], one;
    CHECK_OK(kvp_run_many(sc, t, ps, N, &ro, many, &err), &err);
    for (int i = 0; i < N; i++) {
        CHECK_OK(kvp_run_many(sc, t, &ps[i], 1, &ro, &one, &err), &err);
        if (!check_report_(memcmp(&many[i], &one, sizeof one) == 0, __FILE__, __LINE__,
                           "lookahead riding on sa: each result its own run's"))
            fprintf(stderr, "    %s: T %.17g vs %.17g\n", specs[i], many[i].total_time_s,
                    one.total_time_s);
    }
    CHECK_OK(kvp_run_many_accountings(scs, 2, t, ps, N, &ro, many, &err), &err);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < N; i++) {
            CHECK_OK(kvp_run_many(&acc[j], t, &ps[i], 1, &ro, &one, &err), &err);
            if (!check_report_(memcmp(&many[j * N + i], &one, sizeof one) == 0, __FILE__,
                               __LINE__, "riders of two accountings: each its own run's"))
                fprintf(stderr, "    accounting %d %s: T %.17g vs %.17g\n", j, specs[i],
                        many[j * N + i].total_time_s, one.total_time_s);
        }
}

/* The streams' interleave (the merge's and the grid's read-ahead) against its definition:
 * bit p * S + i of y is bit p of x[i], for every count of streams it takes. */
static void test_interleave(void)
{
    for (unsigned lg = 1; lg <= 6; lg++) {
        const uint32_t S = 1u << lg;
        for (int rep = 0; rep < 20; rep++) {
            uint64_t x[64], keep[64], y[64];
            for (uint32_t i = 0; i < S; i++) {
                x[i] = (uint64_t)rnd(1u << 31) << 33 ^ (uint64_t)rnd(1u << 31) << 2 ^ rnd(4);
                if (rep % 4 == 1) /* sparse rows */
                    x[i] &= (uint64_t)rnd(1u << 31) << 32 | rnd(1u << 31);
                keep[i] = x[i];
            }
            kvp_bits_interleave(x, y, S, lg);
            int same = 1;
            for (uint32_t p = 0; p < 64; p++)
                for (uint32_t i = 0; i < S; i++) {
                    const uint32_t v = p * S + i;
                    same &= ((y[v / 64] >> (v % 64)) & 1u) == ((keep[i] >> p) & 1u);
                }
            CHECK(same);
        }
    }
}

/* Several streams: random sequences (with ties every other time) and synthetic ones, from
 * slots below a step's reads to room for everything, every R at a random W. */
static void test_streams(uint64_t seed)
{
    rng_state = seed ^ 0x5eedu;
    static const uint32_t streams[] = {2, 4, 8};
    for (int k = 0; k < 9; k++) {
        const uint32_t S = streams[k % 3], N = 8 + rnd(40), L = 1 + rnd(2);
        kvp_trace *t = random_sequences(S, N, L, k % 2);
        kvp_scenario sc;
        const double sp = rnd(10) / 10.0;
        slots_scenario(&sc, L, 1 + rnd(S * 250), sp);
        check_w(&sc, t, 1 + rnd(N + 4), 1 + (unsigned)(k % 2));
        check_list(&sc, t);
        if (k < 3)
            check_mixed(&sc, t);
        if (k >= 3 && k < 6)
            check_ws(&sc, t, 1 + (unsigned)(k % 2));
        if (k >= 6)
            check_riders(&sc, t);
        kvp_trace_free(t);
    }
    kvp_scenario base;
    slots_scenario(&base, 2, 0, 0.6);
    base.prompt = 300;
    base.steps = 60;
    base.variation = KVP_VAR_HIGH;
    kvp_synth_params p;
    kvp_synth_default(&p, &base);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_synthetic_sequences(&t, &p, 4, &err), &err);
    static const uint32_t slots[] = {50, 600, 1400};
    for (size_t s = 0; s < sizeof slots / sizeof *slots; s++) {
        kvp_scenario sc;
        slots_scenario(&sc, 2, slots[s], 0.6);
        check_w(&sc, t, 5 + 6 * (uint32_t)s, 2);
    }
    kvp_trace_free(t);
    /* The synthetic streams' sets come as bits, 16 steps of a stream at a time: 2 and 8
     * streams (8: the interleave's own form) over 37 steps, a last read-ahead of 5. */
    for (uint32_t S = 2; S <= 8; S *= 4) {
        base.prompt = 200 + 40 * S;
        base.steps = 37;
        base.variation = KVP_VAR_ACTUAL;
        kvp_synth_default(&p, &base);
        CHECK_OK(kvp_trace_synthetic_sequences(&t, &p, S, &err), &err);
        for (size_t s = 0; s < sizeof slots / sizeof *slots; s++) {
            kvp_scenario sc;
            slots_scenario(&sc, 2, slots[s] * S / 4, 0.6);
            check_w(&sc, t, 3 + 7 * (uint32_t)s, 1 + (unsigned)(s % 2));
            if (s == 0)
                check_mixed(&sc, t);
            if (s == 1)
                check_ws(&sc, t, 2);
            if (s == 2)
                check_riders(&sc, t);
        }
        kvp_trace_free(t);
    }
}

/* Layers in units (2 or 4 synthetic streams): a unit's generators drawn together, 16 steps
 * at a time into two chunks in turn, and each layer's steps run 16 in a row.  Layer counts
 * that leave a shorter last unit, windows that reach past the first chunks before step 0,
 * a last chunk of 13 steps; one thread and two; against the engine's runs. */
static void test_units(void)
{
    /* 2 streams: units of 4 layers (8 generators together) and a last of 1, or of 2 (4
     * generators: one after the other); 4 streams: units of 2 and a last of 1 */
    static const uint32_t streams[] = {2, 2, 4}, layers[] = {5, 6, 3};
    static const uint32_t ws[] = {3, 17, 40};
    for (size_t k = 0; k < sizeof streams / sizeof *streams; k++) {
        const uint32_t S = streams[k], L = layers[k];
        kvp_scenario base;
        slots_scenario(&base, L, 0, 0.6);
        base.prompt = 150 + 30 * S;
        base.steps = 45;
        base.variation = KVP_VAR_ACTUAL;
        kvp_synth_params p;
        kvp_synth_default(&p, &base);
        kvp_trace *t = NULL;
        CHECK_OK(kvp_trace_synthetic_sequences(&t, &p, S, &err), &err);
        kvp_scenario sc;
        slots_scenario(&sc, L, 60 * S, 0.6);
        for (size_t w = 0; w < sizeof ws / sizeof *ws; w++)
            check_w(&sc, t, ws[w], 1 + (unsigned)((w + k) % 2));
        check_ws(&sc, t, 1 + (unsigned)(k % 2));
        kvp_trace_free(t);
    }
}

/* What the grid refuses. */
static void test_refusals(void)
{
    kvp_trace *t = synthetic(100, 10, 1, KVP_VAR_ACTUAL, 0.6, 1);
    kvp_scenario sc;
    slots_scenario(&sc, 1, 40, 0.6);
    kvp_policy_spec ps[2];
    kvp_result r[2];
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    CHECK_OK(kvp_policy_parse(&ps[0], "lookahead:W=4:R=1", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[1], "static", &err), &err);
    CHECK_EQ_INT(kvp_lookahead_grid(&sc, t, ps, 2, &ro, r, &err), KVP_EINVAL);
    ro.check = 1;
    CHECK_EQ_INT(kvp_lookahead_grid(&sc, t, ps, 1, &ro, r, &err), KVP_EINVAL);
    kvp_trace_free(t);
    /* streams: a count that does not divide 64, and sequences of different steps */
    ro.check = 0;
    kvp_trace *three = random_sequences(3, 10, 1, 0);
    CHECK_EQ_INT(kvp_lookahead_grid(&sc, three, ps, 1, &ro, r, &err), KVP_EINVAL);
    kvp_trace_free(three);
    kvp_trace *seq[2] = {random_trace(10, 1, 40, 0), random_trace(12, 1, 40, 0)}, *two = NULL;
    CHECK_OK(kvp_trace_sequences(&two, seq, 2, &err), &err);
    CHECK_EQ_INT(kvp_lookahead_grid(&sc, two, ps, 1, &ro, r, &err), KVP_EINVAL);
    kvp_trace_free(two);
}

/* A bulk move on 8 streams: every sequence reads the lower half of its prompt for two steps,
 * then the upper half, so that (W = 1, R = 1) promotes one run of some 20,000 virtual blocks
 * (39 groups of 512) in one step and demotes another.  moves_v512 counts them per stream in
 * 4-bit counters that must be counted out every 15 groups: a block moved in 16 groups in a
 * row is where a counter of 4 planes would wrap. */
static void test_bulk_moves(void)
{
    enum { S = 8, N = 4, P = 5000, C = P + N };
    kvp_trace *seq[S];
    float *data = malloc((size_t)N * C * sizeof *data);
    for (uint32_t q = 0; q < S; q++) {
        for (uint32_t n = 0; n < N; n++)
            for (uint32_t p = 0; p < C; p++)
                data[(size_t)n * C + p] = (p >= P / 2) == (n >= 2) ? 2.0f : 1.0f;
        CHECK_OK(kvp_trace_from_memory(&seq[q], data, N, 1, C, 0, "halves", &err), &err);
    }
    free(data);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_sequences(&t, seq, S, &err), &err);
    kvp_scenario sc;
    slots_scenario(&sc, 1, S * P / 2 + 64, 0.5);
    check_w(&sc, t, 1, 1);
    kvp_trace_free(t);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 20261201;
    test_synthetic();
    test_random(seed);
    test_interleave();
    test_streams(seed);
    test_units();
    test_refusals();
    test_bulk_moves();
    return check_done();
}
