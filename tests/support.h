/* Helpers shared by the C tests of the library: a scenario from "name=value" assignments, the
 * toy machines of the hand-worked cases, a bool trace from lists of reads, one run of one
 * policy.  A failed precondition (an assignment refused, a trace not built) stops the test
 * (REQUIRE_OK, tests/check.h): what follows would read a handle that is not there. */
#ifndef KVP_TEST_SUPPORT_H
#define KVP_TEST_SUPPORT_H

#include "check.h"
#include "kvplace.h"

#include <stdlib.h>
#include <string.h>

static kvp_error err; /* the error of the library call that failed last */

/* sc = the defaults, then the assignments set[0..n) in order. */
static inline void scenario_of(kvp_scenario *sc, const char *const *set, size_t n)
{
    kvp_scenario_default(sc);
    for (size_t i = 0; i < n; i++)
        REQUIRE_OK(kvp_param_assign(sc, set[i], &err), &err);
}

/* One assignment of a whole number: assign_u64(sc, "hbm_capacity", 108). */
static inline void assign_u64(kvp_scenario *sc, const char *name, unsigned long long v)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s=%llu", name, v);
    REQUIRE_OK(kvp_param_assign(sc, buf, &err), &err);
}

/* A small machine for random cases: L layers, `slots` token slots per layer (kv_heads,
 * head_dim, dtype_bytes and batch 1, so tok_bytes = 2 B; weights 100 B; HBM 1000 B/s, DRAM
 * 300 B/s, the link 100 B/s), at the sparsity given. */
static inline void slots_scenario(kvp_scenario *sc, uint32_t L, uint32_t slots, double sparsity)
{
    static const char *const set[] = {"kv_heads=1", "head_dim=1", "dtype_bytes=1", "batch=1",
                                      "weight_bytes=100", "reserve=0", "hbm_bandwidth=1000",
                                      "dram_bandwidth=300", "link_bandwidth=100"};
    scenario_of(sc, set, sizeof set / sizeof *set);
    sc->layers = L;
    sc->sparsity = sparsity;
    sc->hbm_capacity = 100 + (uint64_t)L * 2 * slots;
}

/* A toy machine where the arithmetic is easy: one layer, 1 KV head x 1 dim x 1 byte, batch 1,
 * so tok_bytes = 2 B; no reserve; HBM 1000 B/s, DRAM 100 B/s.  The weights (read once per
 * step), the HBM capacity (kv_budget = hbm_capacity - weight_bytes) and the link's bandwidth
 * (each way) are the hand-worked case's. */
static inline void toy_machine(kvp_scenario *sc, unsigned long long weight_bytes,
                               unsigned long long hbm_capacity, unsigned long long link_bandwidth)
{
    static const char *const set[] = {"layers=1",          "kv_heads=1",         "head_dim=1",
                                      "dtype_bytes=1",     "batch=1",            "reserve=0",
                                      "hbm_bandwidth=1000", "dram_bandwidth=100",
                                      "dram_capacity=100000"};
    scenario_of(sc, set, sizeof set / sizeof *set);
    assign_u64(sc, "weight_bytes", weight_bytes);
    assign_u64(sc, "hbm_capacity", hbm_capacity);
    assign_u64(sc, "link_bandwidth", link_bandwidth);
}

/* A one-layer bool trace of N steps over C positions; marks[n] lists the positions read at
 * step n, ended by -1 (positions at or past P + n are padding, which the trace ignores). */
static inline kvp_trace *marks_trace(uint32_t N, uint32_t C, const int marks[][8])
{
    float *data = calloc((size_t)N * C, sizeof *data);
    REQUIRE(data != NULL);
    for (uint32_t n = 0; n < N; n++)
        for (int i = 0; marks[n][i] >= 0; i++)
            data[(size_t)n * C + (uint32_t)marks[n][i]] = 1;
    kvp_trace *t = NULL;
    int rc = kvp_trace_from_memory(&t, data, N, 1, C, 1, "marks", &err);
    free(data);
    REQUIRE_OK(rc, &err);
    return t;
}

/* A streams test's scenario: L layers, H KV heads of one dim and one byte, batch b, `slots`
 * token slots of `unit` bytes per layer, weights w; a DRAM tier slow enough that placement
 * matters. */
static inline void streams_scenario(kvp_scenario *sc, uint32_t L, uint32_t H, uint32_t batch,
                                    uint64_t unit, uint32_t slots, uint64_t weight,
                                    double sparsity)
{
    char set[7][64];
    snprintf(set[0], sizeof set[0], "layers=%u", L);
    snprintf(set[1], sizeof set[1], "kv_heads=%u", H);
    snprintf(set[2], sizeof set[2], "head_dim=1");
    snprintf(set[3], sizeof set[3], "dtype_bytes=1");
    snprintf(set[4], sizeof set[4], "batch=%u", batch);
    snprintf(set[5], sizeof set[5], "reserve=0");
    snprintf(set[6], sizeof set[6], "sparsity=%.17g", sparsity);
    const char *const p[] = {set[0], set[1], set[2], set[3], set[4], set[5], set[6],
                             "hbm_bandwidth=3000", "dram_bandwidth=400",
                             "link_bandwidth=250", "dram_capacity=1e15"};
    scenario_of(sc, p, sizeof p / sizeof *p);
    assign_u64(sc, "weight_bytes", weight);
    assign_u64(sc, "hbm_capacity", weight + (uint64_t)L * slots * unit);
}

/* SplitMix64 for random test cases (the state x is the caller's, seeded from check_seed). */
static inline uint64_t sm_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A number in [lo, hi]. */
static inline uint32_t sm_in(uint64_t *x, uint32_t lo, uint32_t hi)
{
    return lo + (uint32_t)(sm_next(x) % ((uint64_t)hi - lo + 1));
}

/* Random scores of shape (N, L, C) on a coarse grid (a few ties); the caller frees them. */
static inline float *sm_scores(uint64_t *x, uint32_t N, uint32_t L, uint32_t C)
{
    float *d = malloc((size_t)N * L * C * sizeof *d);
    REQUIRE(d != NULL);
    for (size_t i = 0; i < (size_t)N * L * C; i++)
        d[i] = (float)(sm_next(x) % 64) / 8.0f;
    return d;
}

/* The trace of one sequence's scores d (shape (N, L, C)) as `one`, and S copies of it as
 * the sequences of `multi` (kvp_trace_sequences). */
static inline void same_sequences(const float *d, uint32_t N, uint32_t L, uint32_t C, uint32_t S,
                                  kvp_trace **one, kvp_trace **multi)
{
    kvp_trace *seq[8] = {NULL};
    REQUIRE(S <= 8);
    REQUIRE_OK(kvp_trace_from_memory(one, d, N, L, C, 0, "one", &err), &err);
    for (uint32_t q = 0; q < S; q++)
        REQUIRE_OK(kvp_trace_from_memory(&seq[q], d, N, L, C, 0, "one", &err), &err);
    REQUIRE_OK(kvp_trace_sequences(multi, seq, S, &err), &err);
}

/* The trace of d (shape (N, L, C)) as `one`, and the 4-D trace of H identical heads, each d,
 * as `heads`. */
static inline void same_heads(const float *d, uint32_t N, uint32_t L, uint32_t H, uint32_t C,
                              kvp_trace **one, kvp_trace **heads)
{
    float *d4 = malloc((size_t)N * L * H * C * sizeof *d4);
    REQUIRE(d4 != NULL);
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t h = 0; h < H; h++)
                memcpy(d4 + (((size_t)n * L + l) * H + h) * C, d + ((size_t)n * L + l) * C,
                       C * sizeof *d4);
    REQUIRE_OK(kvp_trace_from_memory(one, d, N, L, C, 0, "one", &err), &err);
    const uint64_t shape[4] = {N, L, H, C};
    REQUIRE_OK(kvp_trace_from_buffer(heads, d4, KVP_DTYPE_F32, 4, shape, "heads", &err), &err);
    free(d4);
}

/* A small LCG for random test cases, seeded from check_seed (printed, so a failure replays). */
static uint64_t support_rng;
static inline uint32_t support_rnd(uint32_t n)
{
    support_rng = support_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((support_rng >> 33) % n);
}

/* Every policy of "all" under sc on t in one kvp_run_many, in checking mode, and optimal
 * (GLPK: small cases only) after them when with_optimal; *n results in res[0..23]. */
static inline void run_all_policies(const kvp_scenario *sc, const kvp_trace *t,
                                    int with_optimal, kvp_result *res, size_t *n)
{
    kvp_policy_spec ps[24];
    int np = kvp_policy_parse_list(ps, 23, "all", &err);
    REQUIRE(np > 0);
    if (with_optimal)
        REQUIRE_OK(kvp_policy_parse(&ps[np++], "optimal", &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.check = 1;
    REQUIRE_OK(kvp_run_many(sc, t, ps, (size_t)np, &ro, res, &err), &err);
    *n = (size_t)np;
}

/* kvp_run of one policy spec with the options given; a failed run is a failed check (with the
 * spec and the message) and returns a zeroed result. */
static inline kvp_result run_with(const kvp_scenario *sc, const kvp_trace *t, const char *spec,
                                  const kvp_run_options *ro)
{
    kvp_policy_spec ps;
    kvp_result r;
    memset(&r, 0, sizeof r);
    REQUIRE_OK(kvp_policy_parse(&ps, spec, &err), &err);
    int rc = kvp_run(sc, t, &ps, ro, &r, &err);
    if (!check_report_(rc >= 0, __FILE__, __LINE__, "kvp_run"))
        fprintf(stderr, "    %s: rc %d: %s\n", spec, rc, err.msg);
    return r;
}

/* The same in checking mode (--check) on `threads` threads. */
static inline kvp_result run_one(const kvp_scenario *sc, const kvp_trace *t, const char *spec,
                                 unsigned threads)
{
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    ro.check = 1;
    return run_with(sc, t, spec, &ro);
}

/* 1 if a and b report the same run: the time, throughput and hit rates, every byte counter of
 * the two-tier report, and the parameters run (sa: its best point).  What else must match
 * (the policy's name, slots, g, steps, sa's evaluations, the tiers' and sequences' parts)
 * depends on what the test compares, so each test checks that itself. */
static inline int same_report(const kvp_result *a, const kvp_result *b)
{
    return a->total_time_s == b->total_time_s && a->throughput_tok_s == b->throughput_tok_s &&
           a->hbm_hit_rate_kv == b->hbm_hit_rate_kv &&
           a->hbm_hit_rate_all == b->hbm_hit_rate_all && a->kv_read_hbm == b->kv_read_hbm &&
           a->kv_read_dram == b->kv_read_dram && a->hbm_read == b->hbm_read &&
           a->hbm_write == b->hbm_write && a->dram_read == b->dram_read &&
           a->dram_write == b->dram_write && a->link_up == b->link_up &&
           a->link_down == b->link_down && a->weight_read == b->weight_read &&
           a->promoted_bytes == b->promoted_bytes && a->demoted_bytes == b->demoted_bytes &&
           strcmp(a->params, b->params) == 0;
}

#endif
