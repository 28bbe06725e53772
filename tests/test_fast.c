/*
 * The prefix fast path (src/engine/fast.c): `static` and `unlimited` run from the size of each
 * access set and, for static, a count below its prefix, must give the engine's results field
 * for field, and the bound's sums the engine's, on synthetic traces, their caches and random
 * (score and bool) traces, with slots below the prompt, between prompt and final context,
 * and above it.  On streams (kvp_fast_streams_run): the same against the engine's pass, the
 * per-sequence counts included, for KV heads and distinct sequences, with slots below the
 * prompts, between them and the final contexts, and above; streams of unequal steps refused.
 *
 * Usage: test_fast [seed]
 */
#include "engine/fast.h"
#include "kvplace.h"
#include "support.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define NPY_TEMPLATE "/tmp/kvp_test_fast_XXXXXX"

/* r written to a new temporary float32 .npy, its name into path (sizeof NPY_TEMPLATE
 * bytes), and opened; NULL, the failure checked, when a step fails.  The caller unlinks
 * path. */
static kvp_trace *npy_of(const kvp_trace *r, char *path)
{
    memcpy(path, NPY_TEMPLATE, sizeof NPY_TEMPLATE);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return NULL;
    close(fd);
    kvp_trace *f = NULL;
    CHECK_OK(kvp_trace_write_npy(r, path, &err), &err);
    CHECK_OK(kvp_trace_open_npy(&f, path, &err), &err);
    return f;
}

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

/* The generator's parameters of the default scenario with these sizes, sparsity and seed. */
static void synth_params(kvp_synth_params *p, uint32_t P, uint32_t N, uint32_t L, double sp,
                         uint64_t seed)
{
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    sc.prompt = P;
    sc.steps = N;
    sc.layers = L;
    sc.sparsity = sp;
    sc.seed = seed;
    kvp_synth_default(p, &sc);
}

static kvp_trace *synthetic(uint32_t P, uint32_t N, uint32_t L, double sp, uint64_t seed)
{
    kvp_synth_params p;
    synth_params(&p, P, N, L, sp, seed);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_synthetic(&t, &p, &err), &err);
    return t;
}

static kvp_trace *random_trace(uint32_t N, uint32_t L, uint32_t C, int is_bool)
{
    size_t cells = (size_t)N * L * C;
    float *data = malloc(cells * sizeof *data);
    for (size_t i = 0; i < cells; i++)
        data[i] = is_bool ? (float)(rnd(3) == 0) : (float)rnd(7);
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, is_bool, "random", &err), &err);
    free(data);
    return t;
}

/* Scores that drift a little from step to step, as attention does, so that the .npy
 * reader's band around the last step's k-th score (npy.c f32_band_count) mostly holds the
 * next one, and now and then jump (every row redrawn), so that it misses.  Layer 0: a
 * continuum of values of both signs; layer 1: the same on a grid of 1/16 (ties at the k-th
 * score); layer 2: zeros of either sign for two rows in three, the rest small (the k-th
 * mostly a zero, -0 equal to +0). */
static kvp_trace *drifting_trace(uint32_t N, uint32_t C)
{
    const uint32_t L = 3;
    float *data = calloc((size_t)N * L * C, sizeof *data);
    float *base = malloc((size_t)L * C * sizeof *base);
    for (size_t i = 0; i < (size_t)L * C; i++)
        base[i] = ((float)rnd(1u << 20) - (float)(1u << 19)) / 4096.0f;
    for (uint32_t n = 0; n < N; n++) {
        const int jump = n % 9 == 8;
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t p = 0; p < C; p++) {
                float *b = &base[(size_t)l * C + p];
                *b = jump ? ((float)rnd(1u << 20) - (float)(1u << 19)) / 1024.0f
                          : *b + ((float)rnd(201) - 100.0f) / 8192.0f;
                float v = *b;
                if (l == 1)
                    v = (float)(long)(v * 16.0f) / 16.0f;
                if (l == 2)
                    v = rnd(3) ? (rnd(2) ? 0.0f : -0.0f) : v / 64.0f;
                data[((size_t)n * L + l) * C + p] = v;
            }
    }
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_memory(&t, data, N, L, C, 0, "drifting", &err), &err);
    free(base);
    free(data);
    return t;
}

static int same_result(const kvp_result *a, const kvp_result *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

static void check_one(const kvp_scenario *sc, const kvp_trace *t)
{
    kvp_policy_spec ps[2];
    kvp_result fast[2], eng;
    CHECK_OK(kvp_policy_parse(&ps[0], "static", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[1], "unlimited", &err), &err);
    CHECK(kvp_fast_prefix_takes(ps, 2));
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1 + rnd(2);
    memset(fast, 0, sizeof fast);
    kvp_pass_sums fb, eb;
    CHECK_OK(kvp_fast_prefix_run(sc, t, ps, 2, &ro, fast, &fb, &err), &err);
    for (int i = 0; i < 2; i++) {
        memset(&eng, 0, sizeof eng);
        CHECK_OK(kvp_engine_run(sc, t, &ps[i], &ro, &eng, &err), &err);
        if (!check_report_(same_result(&fast[i], &eng), __FILE__, __LINE__,
                           "the fast path gives the engine's result"))
            fprintf(stderr, "    %s slots %u: T %.17g vs %.17g, hbm reads %llu vs %llu\n",
                    eng.policy, eng.slots, fast[i].total_time_s, eng.total_time_s,
                    (unsigned long long)fast[i].kv_read_hbm,
                    (unsigned long long)eng.kv_read_hbm);
    }
    CHECK_OK(kvp_engine_pass(sc, t, &ro, &eb, &err), &err);
    CHECK(fb.bound_time_s == eb.bound_time_s && fb.bound_hbm_bytes == eb.bound_hbm_bytes &&
          fb.reads == eb.reads);
    /* The bound alone (no policy). */
    CHECK_OK(kvp_fast_prefix_run(sc, t, ps, 0, &ro, fast, &fb, &err), &err);
    CHECK(fb.bound_time_s == eb.bound_time_s && fb.bound_hbm_bytes == eb.bound_hbm_bytes &&
          fb.reads == eb.reads);
}

static kvp_trace *cache_of(const kvp_trace *t, double sparsity)
{
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    kvp_trace *c = NULL;
    CHECK_OK(kvp_trace_cache(&c, t, kvp_budget_sparsity(sparsity), &ro, &err), &err);
    return c;
}

/* Synthetic sequences (heads > 1: one stream per head) of one steps count, each its own
 * prompt. */
static kvp_trace *synthetic_streams(uint32_t P, uint32_t N, uint32_t L, uint32_t seqs,
                                    uint32_t heads, double sp, uint64_t seed)
{
    kvp_synth_params p;
    synth_params(&p, P, N, L, sp, seed);
    p.heads = heads;
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_synthetic_sequences(&t, &p, seqs, &err), &err);
    return t;
}

static void check_streams(const kvp_scenario *sc, const kvp_trace *t)
{
    kvp_policy_spec ps[3];
    kvp_result fast[3], eng;
    CHECK_OK(kvp_policy_parse(&ps[0], "static", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[1], "unlimited", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[2], "static", &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = 1 + rnd(2);
    CHECK(kvp_fast_streams_takes(sc, t, ps, 3, &ro));
    memset(fast, 0, sizeof fast);
    kvp_pass_sums fb, eb;
    CHECK_OK(kvp_fast_streams_run(sc, t, ps, 3, &ro, fast, &fb, &err), &err);
    for (int i = 0; i < 3; i++) {
        memset(&eng, 0, sizeof eng);
        CHECK_OK(kvp_engine_run(sc, t, &ps[i], &ro, &eng, &err), &err);
        if (!check_report_(same_result(&fast[i], &eng), __FILE__, __LINE__,
                           "the streams fast path gives the engine's result"))
            fprintf(stderr, "    %s slots %u: T %.17g vs %.17g, hbm reads %llu vs %llu, "
                    "seq0 %llu vs %llu\n", eng.policy, eng.slots, fast[i].total_time_s,
                    eng.total_time_s, (unsigned long long)fast[i].kv_read_hbm,
                    (unsigned long long)eng.kv_read_hbm,
                    (unsigned long long)fast[i].seq[0].kv_read_hbm,
                    (unsigned long long)eng.seq[0].kv_read_hbm);
    }
    /* the engine's own pass: a checked run is never the fast path's */
    kvp_run_options chk = ro;
    chk.check = 1;
    CHECK(!kvp_fast_streams_takes(sc, t, ps, 3, &chk));
    CHECK_OK(kvp_engine_pass(sc, t, &chk, &eb, &err), &err);
    CHECK(fb.bound_time_s == eb.bound_time_s && fb.bound_hbm_bytes == eb.bound_hbm_bytes &&
          fb.reads == eb.reads);
    CHECK_OK(kvp_fast_streams_run(sc, t, ps, 0, &ro, fast, &fb, &err), &err);
    CHECK(fb.bound_time_s == eb.bound_time_s && fb.bound_hbm_bytes == eb.bound_hbm_bytes &&
          fb.reads == eb.reads);
}

/* Slots around what the streams' prompts and final contexts take. */
static void streams_cases(kvp_trace *t, uint32_t heads)
{
    uint32_t prompts = 0, S = kvp_trace_stream_count(t), N = kvp_trace_steps(t);
    const uint32_t L = kvp_trace_layers(t);
    CHECK(S > 1);
    for (uint32_t i = 0; i < S; i++)
        prompts += kvp_trace_prompt(kvp_trace_stream(t, i));
    const uint32_t slots[] = {0, 1, S - 1, prompts / 2, prompts - 1, prompts, prompts + 1,
                              prompts + S * (N / 2) + S / 2, prompts + S * N - 1,
                              prompts + S * N + 7};
    for (size_t k = 0; k < sizeof slots / sizeof *slots; k++) {
        kvp_scenario sc;
        slots_scenario(&sc, L, slots[k], 0.6);
        char h[32];
        snprintf(h, sizeof h, "kv_heads=%u", heads);
        CHECK_OK(kvp_param_assign(&sc, h, &err), &err);
        check_streams(&sc, t);
    }
}

int main(int argc, char **argv)
{
    rng_state = argc > 1 ? strtoull(argv[1], NULL, 10) : 20261201;
    static const uint32_t slots[] = {0, 1, 63, 64, 65, 500, 900, 950, 1100};
    kvp_trace *t = synthetic(900, 100, 2, 0.6, 3);
    kvp_trace *c = cache_of(t, 0.6);
    for (size_t s = 0; s < sizeof slots / sizeof *slots; s++) {
        kvp_scenario sc;
        slots_scenario(&sc, 2, slots[s], 0.6);
        check_one(&sc, t);
        check_one(&sc, c);
    }
    kvp_trace_free(c);
    kvp_trace_free(t);
    for (int k = 0; k < 16; k++) {
        const uint32_t N = 5 + rnd(40), C = 60 + rnd(200), L = 1 + rnd(3);
        const int is_bool = k % 2;
        kvp_trace *r = random_trace(N, L, C, is_bool);
        kvp_scenario sc;
        const double sp = rnd(10) / 10.0;
        slots_scenario(&sc, L, rnd(C + 10), sp);
        check_one(&sc, r);
        kvp_trace *rc = cache_of(r, sp);
        check_one(&sc, rc);
        kvp_trace_free(rc);
        kvp_trace_free(r);
    }
    /* A float32 .npy (its own count_below: the top-k counted below the prefix, no set). */
    {
        kvp_trace *r = random_trace(30, 2, 300, 0);
        char path[sizeof NPY_TEMPLATE];
        kvp_trace *f = npy_of(r, path);
        for (uint32_t sl = 0; f && sl < 340; sl += 37) {
            kvp_scenario sc;
            slots_scenario(&sc, 2, sl, 0.4);
            check_one(&sc, f);
        }
        kvp_trace_free(f);
        unlink(path);
        kvp_trace_free(r);
    }
    /* A float32 .npy of drifting scores: the band's pass (a prompt not a multiple of the
     * vector width, so the last few scores of each part take the plain loop), its hits and
     * misses, ties at the k-th score; slots below, within and above the contexts. */
    {
        kvp_trace *r = drifting_trace(60, 2037);
        char path[sizeof NPY_TEMPLATE];
        kvp_trace *f = npy_of(r, path);
        static const uint32_t sl[] = {1, 7, 333, 1001, 1977, 1978, 2000, 2036, 2037};
        static const double sp[] = {0.4, 0.6, 0.93};
        for (size_t i = 0; f && i < sizeof sl / sizeof *sl; i++)
            for (size_t j = 0; j < sizeof sp / sizeof *sp; j++) {
                kvp_scenario sc;
                slots_scenario(&sc, 3, sl[i], sp[j]);
                check_one(&sc, f);
            }
        kvp_trace_free(f);
        unlink(path);
        kvp_trace_free(r);
    }
    /* Streams: 3 sequences of 4 heads, 4 sequences of one stream each. */
    {
        kvp_trace *h = synthetic_streams(300, 40, 2, 3, 4, 0.6, 5);
        streams_cases(h, 4);
        kvp_trace_free(h);
        kvp_trace *q = synthetic_streams(250, 30, 2, 4, 1, 0.6, 9);
        streams_cases(q, 1);
        kvp_trace_free(q);
        /* sequences of unequal steps: the engine's, not this path's */
        kvp_trace *a = synthetic(200, 20, 1, 0.6, 2), *b = synthetic(150, 30, 1, 0.6, 3);
        kvp_trace *seqs[2] = {a, b}, *u = NULL;
        CHECK_OK(kvp_trace_sequences(&u, seqs, 2, &err), &err);
        kvp_scenario sc;
        slots_scenario(&sc, 1, 300, 0.6);
        kvp_policy_spec sp;
        kvp_result r;
        kvp_run_options ro;
        kvp_run_options_default(&ro);
        CHECK_OK(kvp_policy_parse(&sp, "static", &err), &err);
        CHECK(!kvp_fast_streams_takes(&sc, u, &sp, 1, &ro));
        CHECK_EQ_INT(kvp_fast_streams_run(&sc, u, &sp, 1, &ro, &r, NULL, &err), KVP_EINVAL);
        kvp_trace_free(u);
    }
    /* Refused: other policies, checked runs. */
    kvp_policy_spec ps;
    kvp_result res;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    kvp_trace *s = synthetic(100, 5, 1, 0.6, 1);
    kvp_scenario sc;
    slots_scenario(&sc, 1, 50, 0.6);
    CHECK_OK(kvp_policy_parse(&ps, "reactive", &err), &err);
    CHECK(!kvp_fast_prefix_takes(&ps, 1));
    CHECK_EQ_INT(kvp_fast_prefix_run(&sc, s, &ps, 1, &ro, &res, NULL, &err), KVP_EINVAL);
    CHECK_OK(kvp_policy_parse(&ps, "static", &err), &err);
    ro.check = 1;
    CHECK_EQ_INT(kvp_fast_prefix_run(&sc, s, &ps, 1, &ro, &res, NULL, &err), KVP_EINVAL);
    kvp_trace_free(s);
    return check_done();
}
