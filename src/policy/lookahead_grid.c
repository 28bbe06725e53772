/*
 * `lookahead(W, R)` for many (W, R) in one pass over the trace, on bitsets
 * (docs/PERF.md §12).  Same model and same result, byte for byte, as the engine running
 * src/policy/lookahead.c: the rules are in that file's head comment and docs/POLICIES.md.
 *
 * The access sets are made once a pass (or read from a trace cache) for every W of it; each
 * W is a group of its own (its layer struct), whose window counts slide over them.
 *
 * Shared by every R of a W, per layer and step: the window counts f as bit-sliced
 * counters (NP bit-planes per 64-block word: adding or removing a step's access set is a
 * ripple carry over the planes, O(context / 64 * NP)), the level L of the wanted set (the
 * largest level t with count(f >= t) > slots, found by comparing the planes with t and
 * counting, starting from the last step's L), and the masks f > L, f == L, f == 0.
 *
 * Per R (a simulation with its own residency, held as a bitset): its reads in HBM, its
 * residents at and above L, and from them the wanted non-resident count and p; the promote
 * level (searched from its last step's level, counting non-residents at or above a level),
 * the demote level (mostly 0), then one pass that takes the promoted and demoted blocks by
 * masks, the "first k in index order" at a cut-off level by running popcounts.  The engine's
 * charges follow from popcounts: a moved block read this step is in the access set's bitset.
 * The masks of a level the searches probe are made once a step and shared by every R
 * (`level_at`): the R of a pass mostly probe the same few levels (docs/PERF.md §17).
 *
 * Every loop is over words; no position is decoded.  On a trace cache the access sets are
 * its own bitsets; the synthetic trace writes them as bits; from any other trace they are
 * made from the positions.  Where the CPU has AVX-512 with its popcount, the word loops take
 * 8 words at a time (docs/PERF.md §26).
 *
 * Several streams that all decode every step (their count dividing 64) run on the engine's
 * virtual block names, block b of stream i at bit b * S + i: the blocks that exist are a
 * mask, the quota of R < 1 is per stream, and the counts per sequence come from each
 * stream's bits of a word (docs/PERF.md §33).
 */
#include "policy/lookahead_grid.h"

#include "base/parallel.h"
#include "base/simd.h"
#include "engine/runner.h"
#include "trace/trace.h"
#include "trace/trace_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WORD_BITS 64u
#define CEIL_GUARD 1e-9 /* as in lookahead.c */
#define MAX_PLANES 11u  /* f <= W <= 1024 < 2^11 */
#define LEVEL_SLOTS 65u /* level masks kept per step: every level of W <= 64 */
#define NO_SLOT UINT32_MAX
#define READ_AHEAD 16u /* steps of a stream generated in a row (several streams) */

extern const kvp_policy_ops kvp_policy_lookahead;

/* The word loops count bits: with the CPU's popcount instruction they run several times
 * faster than with the generic code a baseline x86-64 build gets, so the hot functions are
 * built twice and the loader picks (GCC's target_clones).  Elsewhere, and under `make
 * sanitize` (KVP_NO_SIMD), the generic build alone. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KVP_NO_SIMD)
#define HOT __attribute__((target_clones("popcnt", "default")))
#else
#define HOT
#endif

static uint32_t words_of(uint64_t bits) { return (uint32_t)((bits + WORD_BITS - 1) / WORD_BITS); }

/* With AVX-512 and its popcount (VPOPCNTQ), every word loop takes 8 words an instruction: the
 * kernels below do the words of a loop up to a multiple of 8 and return where the plain loop
 * goes on.  Chosen at run time (`layer.v512`; the environment variable KVPLACE_SSE2_ONLY, as
 * for the generator, turns them off: tests/run.sh runs the tests both ways); built with GCC
 * on x86-64 outside `make sanitize`, which tests the plain loops. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KVP_NO_SIMD)
#define GRID_V512 1
#include <immintrin.h>
#define V512 __attribute__((target("popcnt,avx512f,avx512vpopcntdq")))

V512 static int have_v512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}

V512 static inline __m512i v_load(const uint64_t *p) { return _mm512_loadu_si512(p); }
V512 static inline __m512i v_cnt(__m512i s, __m512i x)
{
    return _mm512_add_epi64(s, _mm512_popcnt_epi64(x));
}
V512 static inline uint32_t v_sum(__m512i s) { return (uint32_t)_mm512_reduce_add_epi64(s); }

/* f += a (up) or f -= a over words [0, 8 * floor(nw / 8)); see slide(). */
V512 static uint32_t slide_v512(uint64_t *pl, size_t stride, uint32_t np, const uint64_t *a,
                                uint32_t nw, int up)
{
    uint32_t i = 0;
    for (; i + 8 <= nw; i += 8) {
        __m512i c = v_load(a + i);
        for (uint32_t k = 0; k < np && _mm512_test_epi64_mask(c, c); k++) {
            uint64_t *p = pl + k * stride + i;
            const __m512i v = v_load(p);
            const __m512i t = up ? _mm512_and_si512(v, c) : _mm512_andnot_si512(v, c);
            _mm512_storeu_si512(p, _mm512_xor_si512(v, c));
            c = t;
        }
    }
    return i;
}

/* The masks f > t and f == t of the existing blocks of words [0, i) (i returned, a multiple
 * of 8 below `end`; the words from `full` on masked by ex); with z0, also f == 0 and the
 * counts of the two masks added to *cgt, *ceq. */
V512 static uint32_t level_v512(const uint64_t *pl, size_t stride, uint32_t np, uint32_t t,
                                uint32_t end, uint32_t full, const uint64_t *ex, uint64_t *gt,
                                uint64_t *eq, uint64_t *z0, uint32_t *cgt, uint32_t *ceq)
{
    const __m512i ones = _mm512_set1_epi64(-1);
    __m512i sg = _mm512_setzero_si512(), se = sg;
    uint32_t i = 0;
    for (; i + 8 <= end; i += 8) {
        __m512i g = _mm512_setzero_si512(), e = ones, any = g;
        for (uint32_t k = np; k-- > 0;) {
            const __m512i p = v_load(pl + k * stride + i);
            if ((t >> k) & 1u) {
                e = _mm512_and_si512(e, p);
            } else {
                g = _mm512_or_si512(g, _mm512_and_si512(e, p));
                e = _mm512_andnot_si512(p, e);
            }
            any = _mm512_or_si512(any, p);
        }
        const __m512i x = i + 8 <= full ? ones : v_load(ex + i);
        g = _mm512_and_si512(g, x);
        e = _mm512_and_si512(e, x);
        _mm512_storeu_si512(gt + i, g);
        _mm512_storeu_si512(eq + i, e);
        if (z0) {
            _mm512_storeu_si512(z0 + i, _mm512_andnot_si512(any, x));
            sg = v_cnt(sg, g);
            se = v_cnt(se, e);
        }
    }
    if (z0) {
        *cgt += v_sum(sg);
        *ceq += v_sum(se);
    }
    return i;
}

/* The counting pass of sim_step: c[0..4) += |r & acc|, |r & eqL|, |r & gtL|, |r & z0|. */
V512 static uint32_t count4_v512(const uint64_t *res, const uint64_t *acc, const uint64_t *eqL,
                                 const uint64_t *gtL, const uint64_t *z0, uint32_t cw,
                                 uint64_t c[4])
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 8 <= cw; i += 8) {
        const __m512i r = v_load(res + i);
        s0 = v_cnt(s0, _mm512_and_si512(r, v_load(acc + i)));
        s1 = v_cnt(s1, _mm512_and_si512(r, v_load(eqL + i)));
        s2 = v_cnt(s2, _mm512_and_si512(r, v_load(gtL + i)));
        s3 = v_cnt(s3, _mm512_and_si512(r, v_load(z0 + i)));
    }
    c[0] += v_sum(s0);
    c[1] += v_sum(s1);
    c[2] += v_sum(s2);
    c[3] += v_sum(s3);
    return i;
}

/* A probe's counts: promote (dem = 0) |gt & ~r|, |eq & ~r|; demote |~(gt | eq) & r|,
 * |eq & r|, added to c[0], c[1]. */
V512 static uint32_t probe_v512(const uint64_t *gt, const uint64_t *eq, const uint64_t *res,
                                uint32_t cw, int dem, uint32_t c[2])
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    uint32_t i = 0;
    for (; i + 8 <= cw; i += 8) {
        const __m512i r = v_load(res + i), g = v_load(gt + i), e = v_load(eq + i);
        if (dem) {
            s0 = v_cnt(s0, _mm512_andnot_si512(_mm512_or_si512(g, e), r));
            s1 = v_cnt(s1, _mm512_and_si512(e, r));
        } else {
            s0 = v_cnt(s0, _mm512_andnot_si512(r, g));
            s1 = v_cnt(s1, _mm512_andnot_si512(r, e));
        }
    }
    c[0] += v_sum(s0);
    c[1] += v_sum(s1);
    return i;
}

V512 static uint32_t count_v512(const uint64_t *w, uint32_t nw, uint64_t *c)
{
    __m512i s = _mm512_setzero_si512();
    uint32_t i = 0;
    for (; i + 8 <= nw; i += 8)
        s = v_cnt(s, v_load(w + i));
    *c += v_sum(s);
    return i;
}

/* Per-stream counts of many vectors, bit-sliced first: the vectors are added into counters
 * of 4 bit-planes (weights 1, 2, 4, 8: 15 vectors at most), and only the planes are counted
 * per stream, into lane sums acc[k] reduced at the end, so that a vector costs a few
 * logical operations where S masked popcounts and S horizontal sums did (docs/PERF.md §43). */
typedef struct vtally {
    __m512i pl[4], acc[64];
    uint32_t n;
} vtally;

V512 static inline void vt_init(vtally *t, uint32_t S)
{
    for (uint32_t j = 0; j < 4; j++)
        t->pl[j] = _mm512_setzero_si512();
    for (uint32_t k = 0; k < S; k++)
        t->acc[k] = _mm512_setzero_si512();
    t->n = 0;
}

/* acc[k] += |x & m[k]| << w for every stream k. */
V512 static inline void vt_count(vtally *t, __m512i x, const __m512i *m, uint32_t S, unsigned w)
{
    if (!_mm512_test_epi64_mask(x, x))
        return;
    for (uint32_t k = 0; k < S; k++)
        t->acc[k] = _mm512_add_epi64(
            t->acc[k], _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(x, m[k])), w));
}

V512 static inline void vt_flush(vtally *t, const __m512i *m, uint32_t S)
{
    for (unsigned j = 0; j < 4; j++) {
        vt_count(t, t->pl[j], m, S, j);
        t->pl[j] = _mm512_setzero_si512();
    }
    t->n = 0;
}

/* Adds x to the planes (a ripple carry), counting them out every 15 vectors. */
V512 static inline void vt_add(vtally *t, __m512i x, const __m512i *m, uint32_t S)
{
    for (unsigned j = 0; j < 4; j++) {
        const __m512i c = _mm512_and_si512(t->pl[j], x);
        t->pl[j] = _mm512_xor_si512(t->pl[j], x);
        x = c;
    }
    if (++t->n == 15)
        vt_flush(t, m, S);
}

V512 static inline void vt_end(vtally *t, const __m512i *m, uint32_t S, uint64_t *c)
{
    vt_flush(t, m, S);
    for (uint32_t k = 0; k < S; k++)
        c[k] += v_sum(t->acc[k]);
}

V512 static inline void stream_masks(__m512i *m, const uint64_t *smask, uint32_t S)
{
    for (uint32_t k = 0; k < S; k++)
        m[k] = _mm512_set1_epi64((long long)smask[k]);
}

/* A carry-save adder: the sum bits of a + b + c in *l, the carries in *h. */
V512 static inline void csa(__m512i *h, __m512i *l, __m512i a, __m512i b, __m512i c)
{
    *l = _mm512_ternarylogic_epi64(a, b, c, 0x96);
    *h = _mm512_ternarylogic_epi64(a, b, c, 0xE8);
}

V512 static inline __m512i tally_x(const uint64_t *a, const uint64_t *b, int inv, uint32_t i)
{
    const __m512i x = v_load(a + i);
    if (!b)
        return x;
    return inv ? _mm512_andnot_si512(v_load(b + i), x) : _mm512_and_si512(x, v_load(b + i));
}

/* Several streams: c[k] += |x & smask[k]| for x = a (b NULL), a & b, or a & ~b (inv).  Eight
 * vectors at a time through a carry-save tree (Harley and Seal's): the running ones, twos
 * and fours, and each group's eights, counted per stream. */
V512 static uint32_t tally_v512(const uint64_t *a, const uint64_t *b, int inv, uint32_t nw,
                                const uint64_t *smask, uint32_t S, uint64_t *c)
{
    __m512i m[64];
    vtally t;
    stream_masks(m, smask, S);
    vt_init(&t, S);
    __m512i ones = _mm512_setzero_si512(), twos = ones, fours = ones;
    uint32_t i = 0;
    for (; i + 64 <= nw; i += 64) {
        __m512i twosA, twosB, foursA, foursB, eights;
        csa(&twosA, &ones, ones, tally_x(a, b, inv, i), tally_x(a, b, inv, i + 8));
        csa(&twosB, &ones, ones, tally_x(a, b, inv, i + 16), tally_x(a, b, inv, i + 24));
        csa(&foursA, &twos, twos, twosA, twosB);
        csa(&twosA, &ones, ones, tally_x(a, b, inv, i + 32), tally_x(a, b, inv, i + 40));
        csa(&twosB, &ones, ones, tally_x(a, b, inv, i + 48), tally_x(a, b, inv, i + 56));
        csa(&foursB, &twos, twos, twosA, twosB);
        csa(&eights, &fours, fours, foursA, foursB);
        vt_count(&t, eights, m, S, 3);
    }
    for (; i + 8 <= nw; i += 8)
        vt_count(&t, tally_x(a, b, inv, i), m, S, 0);
    vt_count(&t, fours, m, S, 2);
    vt_count(&t, twos, m, S, 1);
    vt_count(&t, ones, m, S, 0);
    vt_end(&t, m, S, c);
    return i;
}
#endif

/* Bit-sliced comparison of the counters of one word with level t: gt has the blocks with
 * f > t, eq those with f == t.  The branch on a bit of t takes the same way for every word
 * of a pass, so it is predicted, and each plane costs one or three operations. */
static inline void cmp_level(const uint64_t *pl, size_t stride, uint32_t np, uint32_t t,
                             uint64_t *gt, uint64_t *eq)
{
    uint64_t g = 0, e = ~0ull;
    for (uint32_t k = np; k-- > 0;) {
        const uint64_t p = pl[k * stride];
        if ((t >> k) & 1u) {
            e &= p;
        } else {
            g |= e & p;
            e &= ~p;
        }
    }
    *gt = g;
    *eq = e;
}

/* The bits of x whose rank among the set bits of the words seen so far (*seen before this
 * word) lies in [lo, hi); *seen advances by the bits of x. */
static inline uint64_t select_range(uint64_t x, uint32_t *seen, uint32_t lo, uint32_t hi)
{
    const uint32_t s = *seen, c = (uint32_t)__builtin_popcountll(x);
    *seen = s + c;
    if (s + c <= lo || s >= hi)
        return 0;
    if (s >= lo && s + c <= hi)
        return x;
    uint64_t out = 0;
    for (uint32_t j = s; x; j++) {
        uint64_t low = x & -x;
        if (j >= lo && j < hi)
            out |= low;
        x ^= low;
    }
    return out;
}

typedef struct grid_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_derived *d;
    kvp_cost_model model[KVP_ACCTS_MAX]; /* per accounting (src/engine/runner.h) */
    uint32_t nm, L;
    uint32_t W, slots; /* W: the largest of the pass (the ring holds W + 1 steps) */
    /* The specs by W: group k (W gW[k]) is specs gspec[gfirst[k] ..) (gcount[k] of them),
     * their R in R[gfirst[k] ..).  Each group's counters, levels and simulations are a
     * layer of their own; the access sets are made once for all of them. */
    uint32_t ngroups, *gW, *gspec;
    size_t *gfirst, *gcount;
    const double *R; /* nr, in group order */
    size_t nr;
    volatile sig_atomic_t *cancel;
    double *time_s;    /* [(accounting * L + layer) * nr + i] */
    kvp_counters *cnt; /* [layer * nr + i] */
    int *rc;
    kvp_error *err; /* per layer */
    /* Several streams (docs/MODEL.md §12), each decoding every step: block b of stream i is
     * bit b * S + i, and S divides 64, so stream i's bits of any word are smask[i].  One
     * stream: S = 1, Pmin = Pmax = P. */
    uint32_t S, heads, nseq, Pmin, Pmax;
    const uint32_t *sprompt; /* per stream P_i */
    uint32_t *order;         /* the streams by their new block's name: (P_i, i) ascending */
    uint64_t smask[64];
    uint64_t *seq_out; /* [((layer * nr + i) * nseq + q) * 4 + k], as the engine's */
    /* The layers' scratch, kept for the whole pass: a layer takes a free one (busy[k] 0)
     * and gives it back, so no more are made than run at once (one a thread), each on its
     * first use.  Freed and made again per layer, the buffers came back from the system
     * zeroed by page faults every layer (glibc gives large blocks back on free). */
    struct layer *pool; /* [layers] */
    atomic_uint *busy;  /* [layers] */
    /* Layers run in units of LG (grid_unit): LG > 1 on 2 or 4 streams, so that the units'
     * LG S generators draw together (joint_make). */
    uint32_t LG;
} grid_ctx;

/* One R's simulation of one layer. */
typedef struct sim {
    uint64_t *res; /* residency bitset */
    uint32_t nres;
    uint32_t lp, ld; /* the last step's promote and demote levels: the next searches' start */
    uint32_t *slp;   /* several streams, R < 1: each stream's promote level (lp) */
} sim;

typedef struct layer {
    const grid_ctx *g;
    struct layer *feed; /* the group's layer that makes the access sets (itself for group 0) */
    uint32_t W, nr;     /* the group's W and its simulations (R, the specs they are) */
    const double *R;
    const uint32_t *spec;
    uint32_t l, N, nw, np;
    uint64_t *pl;            /* counters: plane k of word i at pl[k * nw + i] */
    uint64_t *gtL, *eqL, *z0; /* per step: f > L, f == L (for L = 0: f == 0), f == 0 */
    /* The masks f > t and f == t of the levels the simulations probe, made once a step and
     * shared by all of them: slot t % nslots at lv + 2 * slot * nw (gt, then eq), valid when
     * lv_step is the step + 1; lvx holds a demote probe's whose slot the promote level has. */
    uint64_t *lv, *lvx;
    uint32_t nslots, lv_level[LEVEL_SLOTS], lv_step[LEVEL_SLOTS];
    uint32_t L, Lstart;      /* the wanted level, and where the next search starts */
    uint32_t cG, cE;         /* count(f > L), count(f == L) among existing blocks */
    /* access sets: from a cache, or a ring of W + 1 bitsets (rw words each) made from a
     * cursor per stream (several streams: each stream's own, not the merged one) */
    kvp_cursor **cur;
    uint64_t *ring, *ringbuf; /* ring: ringbuf, or NULL for a layer the cache holds */
    uint32_t fetched, rw;
    /* Several streams: a read-ahead of READ_AHEAD steps per stream, stream after stream, as
     * bits (sb, step sbase + j of stream i at sb + (i * READ_AHEAD + j) * sw), interleaved
     * into the ring a step at a time. */
    uint64_t *sb;
    uint32_t sw, sbase, shave;
    /* Layers in a unit (grid_ctx.LG > 1): the read-ahead made for all of the unit's layers
     * at once, in chunks of READ_AHEAD steps (chunk c: steps [c R, c R + R)), two chunks in
     * turn (chunk c at sb + (c % 2) S READ_AHEAD sw); NULL: read_ahead, a layer alone. */
    struct joint *jt;
    sim *sims;
    int v512;   /* the AVX-512 kernels */
    /* The blocks that exist (a prefix with one stream; not with several); words [0, full)
     * are whole. */
    uint64_t *ex;
    uint32_t full;
    /* Several streams: the step's reads per stream; per-stream tallies (S each); R < 1: the
     * promoted blocks, and per level t the non-residents of each stream with f > t and f == t
     * (pcnt + 2 S t), valid when pstamp[t] == probe (one value per simulated step). */
    uint64_t *sreads, *scg, *sce, *shit, *spro, *sdem, *pr, *pcnt;
    uint32_t *pstamp, probe;
} layer;

/* The virtual context at step n: S (Pmax + n) (P + n with one stream). */
static uint32_t ext_of(const layer *ly, uint32_t n)
{
    return ly->g->S * (ly->g->Pmax + n);
}

/* Adds the blocks of each stream in x to c[stream]. */
static inline void tally(const grid_ctx *g, uint64_t x, uint64_t *c)
{
    for (uint32_t i = 0; x && i < g->S; i++)
        c[i] += (uint64_t)__builtin_popcountll(x & g->smask[i]);
}

static const uint64_t *acc_bits(layer *ly, uint32_t m)
{
    if (!ly->ring)
        return kvp_trace_cache_bits(ly->g->tr, ly->l, m, kvp_scenario_budget(ly->g->sc));
    return ly->ring + (size_t)(m % (ly->g->W + 1)) * ly->rw;
}

/* Step m of stream k from its cursor into w as bits (bit p of position p), every word below
 * that of the context P_k + m written. */
static int next_bits(layer *ly, uint32_t k, uint32_t m, uint64_t *w, kvp_error *err)
{
    const uint32_t P = ly->g->sprompt[k];
    const int as_bits = kvp_cursor_writes_bits(ly->cur[k]);
    kvp_access a;
    if (!as_bits)
        memset(w, 0, (size_t)words_of(P + m) * sizeof *w);
    int r = as_bits ? kvp_cursor_next_bits(ly->cur[k], &a, w, 1, NULL, err)
                    : kvp_cursor_next(ly->cur[k], &a, err);
    if (r <= 0)
        return r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                         kvp_trace_name(ly->g->tr));
    if (a.context > P + m)
        return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: context %u past %u",
                             kvp_trace_name(ly->g->tr), a.step, ly->l, a.context, P + m);
    for (uint32_t i = 0; !as_bits && i < a.count; i++) {
        if (a.pos[i] >= a.context)
            return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: position %u "
                                 "outside the context", kvp_trace_name(ly->g->tr), a.step,
                                 ly->l, a.pos[i]);
        w[a.pos[i] / WORD_BITS] |= 1ull << (a.pos[i] % WORD_BITS);
    }
    return 0;
}

/* Steps m .. m + n - 1 of streams k0 .. k0 + g - 1 (g <= 8) into the read-ahead, as
 * next_bits, a step of all of them at a time (kvp_cursor_next_bits_many: with AVX-512 their
 * generators advance together).  Returns 1 when done, 0 when they cannot be asked together
 * (kvp_cursors_together: too few streams, or one not written as bits; the caller asks
 * next_bits), < 0 on error. */
static int next_bits_many(layer *ly, uint32_t k0, uint32_t g, uint32_t m, uint32_t n,
                          kvp_error *err)
{
    uint64_t *w[8];
    kvp_access a[8];
    if (!kvp_cursors_together(ly->cur + k0, g))
        return 0;
    for (uint32_t j = 0; j < n; j++) {
        for (uint32_t k = 0; k < g; k++)
            w[k] = ly->sb + ((size_t)(k0 + k) * READ_AHEAD + j) * ly->sw;
        int r = kvp_cursor_next_bits_many(ly->cur + k0, g, a, w, 1, NULL, err);
        if (r <= 0)
            return r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                             kvp_trace_name(ly->g->tr));
        for (uint32_t k = 0; k < g; k++)
            if (a[k].context > ly->g->sprompt[k0 + k] + m + j)
                return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: context %u "
                                     "past %u", kvp_trace_name(ly->g->tr), a[k].step, ly->l,
                                     a[k].context, ly->g->sprompt[k0 + k] + m + j);
    }
    return 1;
}

/* Steps m .. m + READ_AHEAD - 1 (up to the last) of every stream into the read-ahead, eight
 * streams after eight: a synthetic stream's generator state (its keys and their histogram,
 * some 330 KB at the study's prompt) stays in the cache for its steps in a row, where S of
 * them asked in turn each step would not (docs/PERF.md §38); six to eight of them, a step
 * at a time, together (next_bits_many, docs/PERF.md §42). */
static int read_ahead(layer *ly, uint32_t m, kvp_error *err)
{
    const uint32_t n = ly->N - m < READ_AHEAD ? ly->N - m : READ_AHEAD;
    for (uint32_t k0 = 0; k0 < ly->g->S; k0 += 8) {
        const uint32_t g = ly->g->S - k0 < 8 ? ly->g->S - k0 : 8;
        int rc = next_bits_many(ly, k0, g, m, n, err);
        for (uint32_t k = k0; rc == 0 && k < k0 + g; k++)
            for (uint32_t j = 0; rc == 0 && j < n; j++)
                rc = next_bits(ly, k, m + j, ly->sb + ((size_t)k * READ_AHEAD + j) * ly->sw,
                               err);
        if (rc < 0)
            return rc;
    }
    ly->sbase = m;
    ly->shave = n;
    return 0;
}

/* The read-ahead of a unit's layers (grid_unit): their feeds, and the chunks made so far. */
typedef struct joint {
    layer *feed[8];
    uint32_t n, made;
} joint;

/* Where chunk c of the unit's stream i (stream i % S of layer i / S) has its step j. */
static uint64_t *joint_at(const joint *jt, uint32_t c, uint32_t i, uint32_t j)
{
    const uint32_t S = jt->feed[0]->g->S;
    const layer *f = jt->feed[i / S];
    return f->sb + ((size_t)(c & 1) * S * READ_AHEAD + (size_t)(i % S) * READ_AHEAD + j) * f->sw;
}

/* The unit's next chunk (jt->made) of every stream of every layer into its half of each
 * feed's read-ahead: a step of all n S streams at a time, together (kvp_cursors_together:
 * with AVX-512, eight generators in the lanes of one vector, where a layer alone has only
 * its 2 or 4; docs/PERF.md §54), else stream after stream.  A layer's draws are its own
 * either way: the same bits. */
static int joint_make(joint *jt, kvp_error *err)
{
    layer *f0 = jt->feed[0];
    const grid_ctx *g = f0->g;
    const uint32_t S = g->S, c = jt->made, m = c * READ_AHEAD;
    const uint32_t n = f0->N - m < READ_AHEAD ? f0->N - m : READ_AHEAD, nc = jt->n * S;
    kvp_cursor *cur[8];
    uint64_t *w[8];
    kvp_access a[8];
    for (uint32_t i = 0; i < nc; i++)
        cur[i] = jt->feed[i / S]->cur[i % S];
    const int together = kvp_cursors_together(cur, nc);
    if (!together) /* stream after stream, each one's steps in a row (read_ahead's order) */
        for (uint32_t i = 0; i < nc; i++)
            for (uint32_t j = 0; j < n; j++) {
                int rc = next_bits(jt->feed[i / S], i % S, m + j, joint_at(jt, c, i, j), err);
                if (rc < 0)
                    return rc;
            }
    for (uint32_t j = 0; together && j < n; j++) {
        for (uint32_t i = 0; i < nc; i++)
            w[i] = joint_at(jt, c, i, j);
        int r = kvp_cursor_next_bits_many(cur, nc, a, w, 1, NULL, err);
        if (r <= 0)
            return r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                             kvp_trace_name(g->tr));
        for (uint32_t i = 0; i < nc; i++)
            if (a[i].context > g->sprompt[i % S] + m + j)
                return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: context %u "
                                     "past %u", kvp_trace_name(g->tr), a[i].step,
                                     jt->feed[i / S]->l, a[i].context,
                                     g->sprompt[i % S] + m + j);
    }
    jt->made++;
    return 0;
}

/* Makes the bitset of step ly->fetched from the cursors (no-op on a cache): position p of
 * stream i is bit p * S + i.  Several streams: from the read-ahead, 64 positions of the S
 * streams interleaved into S words at a time. */
static int fetch(layer *ly, kvp_error *err)
{
    const uint32_t m = ly->fetched++, S = ly->g->S;
    if (!ly->ring)
        return 0;
    uint64_t *w = ly->ring + (size_t)(m % (ly->g->W + 1)) * ly->rw;
    if (S == 1)
        return next_bits(ly, 0, m, w, err);
    int rc;
    const uint64_t *sj;
    if (ly->jt) {
        const uint32_t c = m / READ_AHEAD;
        while (ly->jt->made <= c)
            if ((rc = joint_make(ly->jt, err)) < 0)
                return rc;
        sj = ly->sb + ((size_t)(c & 1) * S * READ_AHEAD + m % READ_AHEAD) * ly->sw;
    } else {
        if (m - ly->sbase >= ly->shave && (rc = read_ahead(ly, m, err)) < 0)
            return rc;
        sj = ly->sb + (size_t)(m - ly->sbase) * ly->sw;
    }
    const unsigned lg = (unsigned)__builtin_ctz(S);
    const size_t sstride = (size_t)READ_AHEAD * ly->sw;
#ifdef GRID_V512
    if (S <= 8) {
        kvp_bits_interleave_words(sj, sstride, 1, words_of(ly->g->Pmax + m), S, w);
        return 0;
    }
#endif
    for (uint32_t i = 0; i < words_of(ly->g->Pmax + m); i++) {
        uint64_t x[WORD_BITS];
        for (uint32_t k = 0; k < S; k++)
            x[k] = sj[k * sstride + i];
        kvp_bits_interleave(x, w + (size_t)i * S, S, lg);
    }
    return 0;
}

/* f += A(m) (up) or f -= A(m): a ripple carry (borrow) through the planes of each word. */
HOT static void slide(layer *ly, uint32_t m, int up)
{
    const uint64_t *a = acc_bits(ly, m);
    const uint32_t nw = words_of(ext_of(ly, m)), np = ly->np;
    const size_t stride = ly->nw;
    uint64_t *pl = ly->pl;
    uint32_t i = 0;
#ifdef GRID_V512
    if (ly->v512)
        i = slide_v512(pl, stride, np, a, nw, up);
#endif
    for (; i < nw; i++) {
        uint64_t c = a[i], *p = pl + i;
        for (uint32_t k = 0; k < np && c; k++) {
            uint64_t t = (up ? p[k * stride] : ~p[k * stride]) & c;
            p[k * stride] ^= c;
            c = t;
        }
    }
}

/* The wanted level L of the existing blocks (ly->ex) of cw words and its masks (gtL, eqL,
 * z0), count(f > L) and count(f == L). */
HOT static void find_level(layer *ly, uint32_t cw, uint32_t slots)
{
    const uint32_t np = ly->np;
    uint32_t t = ly->Lstart;
    for (;;) {
        uint32_t cgt = 0, ceq = 0, i = 0;
#ifdef GRID_V512
        if (ly->v512)
            i = level_v512(ly->pl, ly->nw, np, t, cw, ly->full, ly->ex, ly->gtL, ly->eqL, ly->z0,
                           &cgt, &ceq);
#endif
        for (; i < cw; i++) {
            const uint64_t *p = ly->pl + i;
            const uint64_t ex = i < ly->full ? ~0ull : ly->ex[i];
            uint64_t gt, eq, any = 0;
            cmp_level(p, ly->nw, np, t, &gt, &eq);
            for (uint32_t k = 0; k < np; k++)
                any |= p[(size_t)k * ly->nw];
            gt &= ex;
            eq &= ex;
            ly->gtL[i] = gt;
            ly->eqL[i] = eq;
            ly->z0[i] = ~any & ex;
            cgt += (uint32_t)__builtin_popcountll(gt);
            ceq += (uint32_t)__builtin_popcountll(eq);
        }
        if (cgt > slots) { /* some f > t, so t < W */
            t++;
            continue;
        }
        if (cgt + ceq > slots) {
            ly->L = ly->Lstart = t;
            ly->cG = cgt;
            ly->cE = ceq;
            return;
        }
        if (t > 1) {
            t--;
            continue;
        }
        /* Every block with f > 0 is wanted: L = 0, eqL = (f == 0). */
        ly->L = 0;
        ly->Lstart = 1;
        ly->cG = cgt + ceq;
        ly->cE = 0;
        for (uint32_t j = 0; j < cw; j++) {
            ly->gtL[j] |= ly->eqL[j];
            ly->eqL[j] = ly->z0[j];
        }
        return;
    }
}

/* The initial placement (the same for every R): the wanted set of step 0 with nothing
 * resident, then the lowest prompt blocks up to slots. */
HOT static void initial(layer *ly, uint64_t *res, uint32_t *nres)
{
    const uint32_t cw = words_of(ext_of(ly, 0)), slots = ly->g->slots;
    memset(res, 0, (size_t)ly->nw * sizeof *res);
    uint32_t count = 0, seen = 0;
    const uint32_t take = ly->L ? slots - ly->cG : 0; /* want.non */
    for (uint32_t i = 0; i < cw; i++) {
        res[i] = ly->gtL[i] | (ly->L ? select_range(ly->eqL[i], &seen, 0, take) : 0);
        count += (uint32_t)__builtin_popcountll(res[i]);
    }
    for (uint32_t i = 0; i < cw && count < slots; i++) {
        const uint64_t ex = i < ly->full ? ~0ull : ly->ex[i];
        uint32_t none = 0; /* the lowest slots - count free blocks of the word */
        uint64_t add = select_range(~res[i] & ex, &none, 0, slots - count);
        res[i] |= add;
        count += (uint32_t)__builtin_popcountll(add);
    }
    *nres = count;
}

/* The masks f > t (returned) and f == t (nw words further) of step n's existing blocks (cw
 * words), made once a step for every simulation; never into slot `keep` (held by the
 * caller) unless it already has level t. */
HOT static const uint64_t *level_at(layer *ly, uint32_t t, uint32_t n, uint32_t cw,
                                    uint32_t keep)
{
    const uint32_t s = t % ly->nslots, np = ly->np;
    if (ly->lv_step[s] == n + 1 && ly->lv_level[s] == t)
        return ly->lv + (size_t)2 * s * ly->nw;
    uint64_t *m = s == keep ? ly->lvx : ly->lv + (size_t)2 * s * ly->nw, *e = m + ly->nw;
    uint32_t i = 0;
#ifdef GRID_V512
    if (ly->v512)
        i = level_v512(ly->pl, ly->nw, np, t, cw, ly->full, ly->ex, m, e, NULL, NULL, NULL);
#endif
    for (; i < cw; i++) {
        const uint64_t ex = i < ly->full ? ~0ull : ly->ex[i];
        uint64_t gt, eq;
        cmp_level(ly->pl + i, ly->nw, np, t, &gt, &eq);
        m[i] = gt & ex;
        e[i] = eq & ex;
    }
    if (s != keep) {
        ly->lv_step[s] = n + 1;
        ly->lv_level[s] = t;
    }
    return m;
}

/* A step's moves: promote every block of gtP not resident and, among eqP's non-residents,
 * ranks [0, kp); with d > 0 demote the residents below the demote level (none if gtD is
 * NULL) and, among eqD's residents, ranks [skip, skip + kd).  seen_p, seen_d: the ranks
 * passed so far; the rest, the sums of the moved blocks and those of them read this step. */
typedef struct moves {
    const uint64_t *gtP, *eqP, *gtD, *eqD, *acc;
    uint32_t kp, skip, kd, d;
    uint32_t seen_p, seen_d, npro, ndem;
    uint64_t pro_read, dem_read;
    const grid_ctx *streams; /* several streams: the moved blocks per stream into spro, sdem */
    uint64_t *spro, *sdem;
} moves;

/* The moves in words [from, to). */
__attribute__((always_inline)) static inline void move_words(uint64_t *res, moves *mv,
                                                            uint32_t from, uint32_t to)
{
    const uint64_t *gtP = mv->gtP, *eqP = mv->eqP, *gtD = mv->gtD, *eqD = mv->eqD;
    const uint64_t *acc = mv->acc;
    const uint32_t kp = mv->kp, skip = mv->skip, kd = mv->kd, d = mv->d;
    uint32_t seen_p = mv->seen_p, seen_d = mv->seen_d, npro = 0, ndem = 0;
    uint64_t pro_read = 0, dem_read = 0;
    for (uint32_t i = from; i < to; i++) {
        const uint64_t r = res[i];
        const uint64_t pro = (gtP[i] & ~r) | select_range(eqP[i] & ~r, &seen_p, 0, kp);
        uint64_t dem = 0;
        if (d > 0) {
            /* (r has no block beyond the context, so the masks need no end mask) */
            const uint64_t lt = gtD ? ~(gtD[i] | eqD[i]) : 0;
            dem = (lt & r) | select_range(eqD[i] & r, &seen_d, skip, skip + kd);
        }
        res[i] = (r & ~dem) | pro;
        if (mv->streams) {
            tally(mv->streams, pro, mv->spro);
            tally(mv->streams, dem, mv->sdem);
        }
        npro += (uint32_t)__builtin_popcountll(pro);
        ndem += (uint32_t)__builtin_popcountll(dem);
        pro_read += (uint64_t)__builtin_popcountll(pro & acc[i]);
        dem_read += (uint64_t)__builtin_popcountll(dem & acc[i]);
    }
    mv->seen_p = seen_p;
    mv->seen_d = seen_d;
    mv->npro += npro;
    mv->ndem += ndem;
    mv->pro_read += pro_read;
    mv->dem_read += dem_read;
}

#ifdef GRID_V512
/* move_words over 8 words at a time: a group of 8 whose ranks lie wholly inside or outside
 * a selection takes all or none of it; the few groups where a selection starts or ends are
 * move_words' (the same bits, since the ranks are counted in the same order). */
V512 static uint32_t moves_v512(uint64_t *res, moves *mv, uint32_t cw)
{
    const uint64_t *gtP = mv->gtP, *eqP = mv->eqP, *gtD = mv->gtD, *eqD = mv->eqD;
    const uint64_t *acc = mv->acc;
    const uint32_t kp = mv->kp, lo = mv->skip, hi = mv->skip + mv->kd;
    const int dem_on = mv->d > 0, lt_on = dem_on && gtD;
    const __m512i zero = _mm512_setzero_si512();
    __m512i snp = zero, snd = zero, spr = zero, sdr = zero;
    /* several streams: the moved blocks bit-sliced, counted per stream every 15 groups */
    const uint32_t S = mv->streams ? mv->streams->S : 0;
    __m512i m[64];
    vtally tp_s, td_s;
    if (S) {
        stream_masks(m, mv->streams->smask, S);
        vt_init(&tp_s, S);
        vt_init(&td_s, S);
    }
    uint32_t i = 0;
    for (; i + 8 <= cw; i += 8) {
        const __m512i r = v_load(res + i);
        __m512i tp = zero, td = zero;
        uint32_t cp = 0, cd = 0;
        int cross = 0;
        if (mv->seen_p < kp) {
            const __m512i xp = _mm512_andnot_si512(r, v_load(eqP + i));
            cp = v_sum(_mm512_popcnt_epi64(xp));
            if (mv->seen_p + cp <= kp)
                tp = xp;
            else
                cross = 1;
        }
        if (dem_on && mv->seen_d < hi) {
            const __m512i xd = _mm512_and_si512(v_load(eqD + i), r);
            cd = v_sum(_mm512_popcnt_epi64(xd));
            if (mv->seen_d >= lo && mv->seen_d + cd <= hi)
                td = xd;
            else if (mv->seen_d + cd > lo)
                cross = 1;
        }
        if (cross) {
            move_words(res, mv, i, i + 8);
            continue;
        }
        mv->seen_p += cp;
        mv->seen_d += cd;
        const __m512i pro = _mm512_or_si512(_mm512_andnot_si512(r, v_load(gtP + i)), tp);
        __m512i dem = td;
        if (lt_on)
            dem = _mm512_or_si512(
                dem, _mm512_andnot_si512(_mm512_or_si512(v_load(gtD + i), v_load(eqD + i)), r));
        _mm512_storeu_si512(res + i, _mm512_or_si512(_mm512_andnot_si512(dem, r), pro));
        const __m512i a = v_load(acc + i);
        if (S && _mm512_test_epi64_mask(_mm512_or_si512(pro, dem), _mm512_or_si512(pro, dem))) {
            vt_add(&tp_s, pro, m, S);
            vt_add(&td_s, dem, m, S);
        }
        snp = v_cnt(snp, pro);
        snd = v_cnt(snd, dem);
        spr = v_cnt(spr, _mm512_and_si512(pro, a));
        sdr = v_cnt(sdr, _mm512_and_si512(dem, a));
    }
    if (S) {
        vt_end(&tp_s, m, S, mv->spro);
        vt_end(&td_s, m, S, mv->sdem);
    }
    mv->npro += v_sum(snp);
    mv->ndem += v_sum(snd);
    mv->pro_read += v_sum(spr);
    mv->dem_read += v_sum(sdr);
    return i;
}
#endif

/* ceil(R * count), guarded, within [0, count] (lookahead.c's quota). */
static uint32_t quota(double R, uint32_t count)
{
    double p_real = ceil(R * (double)count - CEIL_GUARD);
    return p_real <= 0 ? 0 : p_real >= (double)count ? count : (uint32_t)p_real;
}

/* Several streams: c[k] += |x & smask[k]| over words [0, cw), x as tally_v512's. */
HOT static void tally_words(const layer *ly, const uint64_t *a, const uint64_t *b, int inv,
                            uint32_t cw, uint64_t *c)
{
    uint32_t w = 0;
#ifdef GRID_V512
    if (ly->v512)
        w = tally_v512(a, b, inv, cw, ly->g->smask, ly->g->S, c);
#endif
    for (; w < cw; w++)
        tally(ly->g, !b ? a[w] : inv ? a[w] & ~b[w] : a[w] & b[w], c);
}

#ifdef GRID_V512
/* Several streams: c[k] += |x & smask[k]| for x = eq & ~res over whole groups of 8 words
 * while the ranks of x's bits stay below `want` (*seen: those passed); returns where the
 * group that crosses it (or the end) begins, for the plain loop. */
V512 static uint32_t wanted_v512(const uint64_t *eq, const uint64_t *res, uint32_t cw,
                                 uint32_t want, uint32_t *seen, const uint64_t *smask,
                                 uint32_t S, uint64_t *c)
{
    __m512i m[64];
    vtally t;
    stream_masks(m, smask, S);
    vt_init(&t, S);
    uint32_t i = 0;
    for (; i + 8 <= cw && *seen < want; i += 8) {
        const __m512i x = _mm512_andnot_si512(v_load(res + i), v_load(eq + i));
        const uint32_t n = v_sum(_mm512_popcnt_epi64(x));
        if (*seen + n > want)
            break;
        *seen += n;
        vt_add(&t, x, m, S);
    }
    vt_end(&t, m, S, c);
    return i;
}
#endif

/* Several streams: per stream, the non-residents of step n with f > t (c[i]) and f == t
 * (c[S + i]), counted once per simulated step and level. */
HOT static const uint64_t *probe_streams(layer *ly, const uint64_t *res, uint32_t t, uint32_t n,
                                     uint32_t cw)
{
    const grid_ctx *g = ly->g;
    uint64_t *c = ly->pcnt + (size_t)2 * g->S * t;
    if (ly->pstamp[t] == ly->probe)
        return c;
    ly->pstamp[t] = ly->probe;
    memset(c, 0, (size_t)2 * g->S * sizeof *c);
    const uint64_t *gt = level_at(ly, t, n, cw, NO_SLOT), *eq = gt + ly->nw;
    tally_words(ly, gt, res, 1, cw, c);
    tally_words(ly, eq, res, 1, cw, c + g->S);
    return c;
}

/* The promoted blocks of several streams into ly->pr (mark_all): stream i's non-residents with
 * f > t_i, and of those with f == t_i the first kp_i in index order (at t = L the wanted
 * ones are a prefix of them).  Each stream's ties end at a word of its own (its cut,
 * tie_cut): before it all of its ties are taken, after it none.  So one pass per level
 * serves every stream promoting at that level, its tie mask losing a stream at each cut,
 * where S passes, one per stream, each reading every word, did before (docs/PERF.md §51). */

#ifdef GRID_V512
/* tie_cut's whole groups of 8 words before the one where the kp-th lies; returns where the
 * plain loop goes on. */
V512 static uint32_t cut_v512(const uint64_t *res, const uint64_t *eq, uint64_t m, uint32_t kp,
                              uint32_t *seen, uint32_t cw)
{
    const __m512i vm = _mm512_set1_epi64((long long)m);
    uint32_t i = 0;
    for (; i + 8 <= cw; i += 8) {
        const __m512i e =
            _mm512_and_si512(v_load(eq + i), _mm512_andnot_si512(v_load(res + i), vm));
        const uint32_t c = v_sum(_mm512_popcnt_epi64(e));
        if (*seen + c >= kp)
            break;
        *seen += c;
    }
    return i;
}
#endif

/* Stream mask m's cut in the non-residents of eq (kp > 0): the word holding the kp-th of
 * them, and in *part those of that word taken; cw with *part 0 when it has no more than kp
 * (all taken). */
HOT static uint32_t tie_cut(const layer *ly, const uint64_t *res, const uint64_t *eq, uint64_t m,
                            uint32_t kp, uint32_t cw, uint64_t *part)
{
    uint32_t seen = 0, w = 0;
#ifdef GRID_V512
    if (ly->v512)
        w = cut_v512(res, eq, m, kp, &seen, cw);
#else
    (void)ly;
#endif
    for (; w < cw; w++) {
        const uint64_t e = eq[w] & ~res[w] & m;
        const uint32_t c = (uint32_t)__builtin_popcountll(e);
        if (seen + c >= kp) {
            *part = select_range(e, &seen, 0, kp);
            return w;
        }
        seen += c;
    }
    *part = 0;
    return cw;
}

/* pr |= (gt & M | eq & T) & ~res over words [from, to) (T within M: the streams still taking
 * ties). */
#ifdef GRID_V512
V512 static uint32_t span_v512(uint64_t *pr, const uint64_t *res, const uint64_t *gt,
                               const uint64_t *eq, uint64_t M, uint64_t T, uint32_t from,
                               uint32_t to)
{
    const __m512i vM = _mm512_set1_epi64((long long)M), vT = _mm512_set1_epi64((long long)T);
    uint32_t i = from;
    for (; i + 8 <= to; i += 8) {
        const __m512i p = _mm512_or_si512(_mm512_and_si512(v_load(gt + i), vM),
                                          _mm512_and_si512(v_load(eq + i), vT));
        const __m512i q = _mm512_andnot_si512(v_load(res + i), p); /* p & ~res */
        _mm512_storeu_si512(pr + i, _mm512_or_si512(v_load(pr + i), q));
    }
    return i;
}
#endif

HOT static void mark_span(const layer *ly, const uint64_t *res, const uint64_t *gt,
                          const uint64_t *eq, uint64_t M, uint64_t T, uint32_t from, uint32_t to)
{
    uint64_t *pr = ly->pr;
    uint32_t w = from;
#ifdef GRID_V512
    if (ly->v512)
        w = span_v512(pr, res, gt, eq, M, T, from, to);
#endif
    for (; w < to; w++)
        pr[w] |= ((gt[w] & M) | (eq[w] & T)) & ~res[w];
}

/* The promoted blocks of the streams i with lvl[i] != NO_SLOT (their level t_i, kp[i]) into
 * ly->pr (zeroed by the caller), one pass per level; lvl is used up (each stream's entry set
 * to NO_SLOT once its level's pass is made). */
HOT static void mark_all(layer *ly, const uint64_t *res, uint32_t *lvl, const uint32_t *kp,
                         uint32_t n, uint32_t cw)
{
    const grid_ctx *g = ly->g;
    const uint32_t S = g->S;
    uint32_t cut[64], ord[64];
    uint64_t part[64];
    for (uint32_t i = 0; i < S; i++) {
        if (lvl[i] == NO_SLOT)
            continue;
        const uint32_t t = lvl[i];
        const uint64_t *gt = ly->gtL, *eq = ly->eqL;
        if (t != ly->L) {
            gt = level_at(ly, t, n, cw, NO_SLOT);
            eq = gt + ly->nw;
        }
        /* the streams at this level, by their cuts ascending */
        uint64_t M = 0, T = 0;
        uint32_t m = 0;
        for (uint32_t j = i; j < S; j++) {
            if (lvl[j] != t)
                continue;
            lvl[j] = NO_SLOT;
            M |= g->smask[j];
            cut[j] = 0;
            part[j] = 0;
            if (kp[j] > 0) {
                cut[j] = tie_cut(ly, res, eq, g->smask[j], kp[j], cw, &part[j]);
                T |= g->smask[j];
            }
            uint32_t k = m++;
            for (; k > 0 && cut[ord[k - 1]] > cut[j]; k--)
                ord[k] = ord[k - 1];
            ord[k] = j;
        }
        uint32_t from = 0;
        for (uint32_t k = 0; k < m; k++) {
            const uint32_t j = ord[k];
            if (cut[j] > from) {
                mark_span(ly, res, gt, eq, M, T, from, cut[j]);
                from = cut[j];
            }
            T &= ~g->smask[j];
        }
        mark_span(ly, res, gt, eq, M, T, from, cw);
        for (uint32_t k = 0; k < m; k++)
            if (cut[ord[k]] < cw)
                ly->pr[cut[ord[k]]] |= part[ord[k]];
    }
}

/* Several streams and R < 1: each stream i promotes the first ceil(R * count_i) of its
 * wanted non-residents in rank order (f descending, then index), count_i how many it has
 * (lookahead.c, quota_per_stream).  The promoted blocks into ly->pr; returns how many.  Per
 * stream, the level is searched as sim_step searches the one stream's. */
HOT static uint32_t promote_streams(layer *ly, sim *sm, double R, uint32_t n, uint32_t cw,
                                uint32_t wnon)
{
    const grid_ctx *g = ly->g;
    const uint32_t S = g->S, L = ly->L, base = L ? L : 1;
    const uint64_t *res = sm->res;
    uint64_t *cg = ly->scg, *ce = ly->sce; /* wanted non-residents above L, and at L */
    memset(cg, 0, S * sizeof *cg);
    memset(ce, 0, S * sizeof *ce);
    memset(ly->pr, 0, (size_t)cw * sizeof *ly->pr);
    uint32_t seen = 0, p = 0, w = 0;
    tally_words(ly, ly->gtL, res, 1, cw, cg);
#ifdef GRID_V512
    if (L && ly->v512)
        w = wanted_v512(ly->eqL, res, cw, wnon, &seen, g->smask, S, ce);
#endif
    for (; L && w < cw && seen < wnon; w++) /* none after the first wnon */
        tally(g, select_range(ly->eqL[w] & ~res[w], &seen, 0, wnon), ce);
    ly->probe++;
    uint32_t lvl[64], kpv[64];
    for (uint32_t i = 0; i < S; i++) {
        const uint32_t count = (uint32_t)(cg[i] + ce[i]), q = quota(R, count);
        lvl[i] = NO_SLOT;
        if (q == 0)
            continue;
        uint32_t t = L, kp = (uint32_t)ce[i];
        if (q < count) {
            t = sm->slp[i] < base ? base : sm->slp[i] > ly->W ? ly->W : sm->slp[i];
            for (;;) {
                const uint64_t *c = t == L ? NULL : probe_streams(ly, res, t, n, cw);
                const uint32_t ngt = (uint32_t)(c ? c[i] : cg[i]);
                const uint32_t neq = (uint32_t)(c ? c[S + i] : ce[i]);
                if (ngt >= q) { /* some f > t, so t < W */
                    t++;
                    continue;
                }
                if (ngt + neq >= q) {
                    kp = q - ngt;
                    break;
                }
                t--; /* N(base) = count >= q, so t > base */
            }
            sm->slp[i] = t;
        }
        lvl[i] = t;
        kpv[i] = kp;
        p += q;
    }
    mark_all(ly, res, lvl, kpv, n, cw);
    return p;
}

/* Several streams: the step's per-stream counts into the engine's per-sequence ones. */
HOT static void seq_add(const layer *ly, size_t o, uint32_t cw, const uint64_t *res,
                    const uint64_t *acc)
{
    const grid_ctx *g = ly->g;
    uint64_t *h = ly->shit;
    memset(h, 0, g->S * sizeof *h);
    tally_words(ly, res, acc, 0, cw, h);
    uint64_t *q = g->seq_out + o * g->nseq * 4;
    for (uint32_t i = 0; i < g->S; i++) {
        uint64_t *c = q + (size_t)(i / g->heads) * 4;
        c[0] += h[i];
        c[1] += ly->sreads[i] - h[i];
    }
}

/* One step of one R: the engine's reads, lookahead's moves, the engine's charges. */
HOT static int sim_step(layer *ly, sim *sm, double R, uint32_t n, const uint64_t *acc,
                        uint64_t reads, size_t o, kvp_error *err)
{
    const grid_ctx *g = ly->g;
    const uint32_t S = g->S, cw = words_of(ext_of(ly, n)), slots = g->slots;
    const uint32_t L = ly->L, cG = ly->cG;
    uint64_t *res = sm->res;
    uint64_t c4[4] = {0, 0, 0, 0};
    uint32_t i0 = 0;
    if (S > 1)
        seq_add(ly, o, cw, res, acc);
#ifdef GRID_V512
    if (ly->v512)
        i0 = count4_v512(res, acc, ly->eqL, ly->gtL, ly->z0, cw, c4);
#endif
    for (uint32_t i = i0; i < cw; i++) {
        const uint64_t r = res[i];
        c4[0] += (uint64_t)__builtin_popcountll(r & acc[i]);
        c4[1] += (uint64_t)__builtin_popcountll(r & ly->eqL[i]);
        c4[2] += (uint64_t)__builtin_popcountll(r & ly->gtL[i]);
        c4[3] += (uint64_t)__builtin_popcountll(r & ly->z0[i]);
    }
    const uint64_t hits = c4[0];
    const uint32_t rL = (uint32_t)c4[1], rG = (uint32_t)c4[2], r0 = (uint32_t)c4[3];
    kvp_counters st = {0};
    st.kv_read[0] = st.read[0] = hits;
    st.kv_read[1] = st.read[1] = reads - hits;

    /* The wanted set: levels above L whole, then at L the first wres residents and the
     * first wnon non-residents in index order. */
    const uint32_t left = slots - cG;
    const uint32_t wres = L ? (rL < left ? rL : left) : 0, wnon = L ? left - wres : 0;
    const uint32_t nonres = cG - rG + wnon;
    /* Several streams and R < 1: a quota per stream (with R = 1 every wanted block moves
     * either way, as in lookahead.c). */
    const int per_stream = S > 1 && R < 1;
    const uint32_t p = per_stream ? promote_streams(ly, sm, R, n, cw, wnon) : quota(R, nonres);
    if (p > 0) {
        const uint32_t free_slots = slots - sm->nres;
        const uint32_t d = p > free_slots ? p - free_slots : 0;
        /* Promote level lp: the largest t >= base with N(t) >= p, N(t) the wanted
         * non-residents with f >= t; then every one above lp and the first kp at lp. */
        const uint32_t base = L ? L : 1;
        const uint64_t *gtP = ly->gtL, *eqP = ly->eqL;
        uint32_t pslot = NO_SLOT; /* the cache slot gtP is in, if any */
        uint32_t kp = wnon; /* p == nonres: all of them, the shared masks */
        if (per_stream) {
            gtP = eqP = ly->pr;
            kp = 0;
        } else if (p < nonres) {
            uint32_t t = sm->lp < base ? base : sm->lp > ly->W ? ly->W : sm->lp;
            for (;;) {
                uint32_t ngt = 0, neq = 0;
                if (t == L) {
                    gtP = ly->gtL;
                    eqP = ly->eqL;
                    ngt = cG - rG;
                    neq = wnon;
                } else {
                    gtP = level_at(ly, t, n, cw, NO_SLOT);
                    eqP = gtP + ly->nw;
                    uint32_t i = 0;
#ifdef GRID_V512
                    uint32_t c2[2] = {0, 0};
                    if (ly->v512)
                        i = probe_v512(gtP, eqP, res, cw, 0, c2);
                    ngt = c2[0];
                    neq = c2[1];
#endif
                    for (; i < cw; i++) {
                        ngt += (uint32_t)__builtin_popcountll(gtP[i] & ~res[i]);
                        neq += (uint32_t)__builtin_popcountll(eqP[i] & ~res[i]);
                    }
                }
                if (ngt >= p) { /* N(t + 1) >= p: some f > t, so t < W */
                    t++;
                    continue;
                }
                if (ngt + neq >= p) {
                    kp = p - ngt;
                    break;
                }
                t--; /* N(base) = nonres >= p, so t > base */
            }
            sm->lp = t;
            if (t != L)
                pslot = t % ly->nslots;
        }
        /* Demote level ld: the smallest t <= L with D(t) >= d, D(t) the unwanted residents
         * with f <= t (at L: the residents after the first wres); then every one below ld
         * and, at ld, the ranks [skip, skip + kd) in index order. */
        const uint64_t *gtD = NULL, *eqD = ly->z0; /* below the level: ~(gtD | eqD) */
        uint32_t kd = d, skip = 0;
        if (d > 0 && L > 0) {
            uint32_t t = sm->ld > L ? L : sm->ld;
            for (;;) {
                uint32_t below = 0, neq = 0; /* D(t - 1), and the unwanted residents at t */
                skip = 0;
                if (t == 0) {
                    gtD = NULL;
                    eqD = ly->z0;
                    neq = r0;
                } else if (t == L) {
                    gtD = ly->gtL;
                    eqD = ly->eqL;
                    below = sm->nres - rG - rL;
                    neq = rL - wres;
                    skip = wres;
                } else {
                    gtD = level_at(ly, t, n, cw, pslot);
                    eqD = gtD + ly->nw;
                    uint32_t i = 0;
#ifdef GRID_V512
                    uint32_t c2[2] = {0, 0};
                    if (ly->v512)
                        i = probe_v512(gtD, eqD, res, cw, 1, c2);
                    below = c2[0];
                    neq = c2[1];
#endif
                    for (; i < cw; i++) {
                        below += (uint32_t)__builtin_popcountll(~(gtD[i] | eqD[i]) & res[i]);
                        neq += (uint32_t)__builtin_popcountll(eqD[i] & res[i]);
                    }
                }
                if (below >= d) { /* some resident below t, so t > 0 */
                    t--;
                    continue;
                }
                if (below + neq >= d) {
                    kd = d - below;
                    break;
                }
                t++; /* D(L) >= d, so t < L */
            }
            sm->ld = t;
        }
        moves mv = {gtP, eqP, gtD, eqD, acc, kp, skip, kd, d, 0, 0, 0, 0, 0, 0,
                    S > 1 ? g : NULL, ly->spro, ly->sdem};
        uint32_t im = 0;
        if (S > 1) {
            memset(ly->spro, 0, S * sizeof *ly->spro);
            memset(ly->sdem, 0, S * sizeof *ly->sdem);
        }
#ifdef GRID_V512
        if (ly->v512)
            im = moves_v512(res, &mv, cw);
#endif
        move_words(res, &mv, im, cw);
        const uint32_t npro = mv.npro, ndem = mv.ndem;
        const uint64_t pro_read = mv.pro_read, dem_read = mv.dem_read;
        if (npro != p || ndem != d)
            return kvp_error_set(err, KVP_ECHECK, "lookahead grid: layer %u step %u: moved "
                                 "%u in and %u out, meant %u and %u", ly->l, n, npro, ndem, p,
                                 d);
        sm->nres = sm->nres + p - d;
        for (uint32_t i = 0; i < S && S > 1; i++) {
            uint64_t *c = g->seq_out + (o * g->nseq + i / g->heads) * 4;
            c[2] += ly->spro[i];
            c[3] += ly->sdem[i];
        }
        st.read[1] += p - pro_read;
        st.write[0] += p;
        st.moved_out[1] += p;
        st.moved_in[0] += p;
        st.promoted += p;
        st.read[0] += d - dem_read;
        st.write[1] += d;
        st.moved_out[0] += d;
        st.moved_in[1] += d;
        st.demoted += d;
    }
    /* The new tokens, one per stream in index order: into HBM while a slot is free (a
     * promotion of nothing present: no charge), then written where their blocks are. */
    for (uint32_t k = 0; k < S; k++) {
        const uint32_t i = g->order[k], v = (g->sprompt[i] + n) * S + i;
        if (sm->nres < slots) {
            res[v / WORD_BITS] |= 1ull << (v % WORD_BITS);
            sm->nres++;
            st.write[0] += 1;
        } else {
            st.write[1] += 1;
        }
    }
    kvp_traffic traffic;
    kvp_traffic_of(&traffic, &st, 2, g->d->tok_bytes);
    for (uint32_t j = 0; j < g->nm; j++)
        g->time_s[(size_t)j * g->L * g->nr + o] += kvp_step_time(&g->model[j], &traffic);
    kvp_counters_add(&g->cnt[o], &st);
    return 0;
}

/* A layer's cursors, made per layer. */
static void layer_close(layer *ly)
{
    for (uint32_t i = 0; ly->cur && i < ly->g->S; i++) {
        kvp_cursor_free(ly->cur[i]);
        ly->cur[i] = NULL;
    }
}

static void layer_free(layer *ly)
{
    if (!ly->g)
        return;
    layer_close(ly);
    for (size_t i = 0; ly->sims && i < ly->nr; i++) {
        free(ly->sims[i].res);
        free(ly->sims[i].slp);
    }
    free(ly->sims);
    if (ly->feed == ly)
        free(ly->ex);
    free(ly->sreads);
    free(ly->pr);
    free(ly->pcnt);
    free(ly->pstamp);
    free(ly->pl);
    free(ly->gtL);
    free(ly->eqL);
    free(ly->z0);
    free(ly->lv);
    free(ly->lvx);
    free(ly->ringbuf);
    free(ly->sb);
    free(ly->cur);
}

/* The scratch of group k's layer (ly - k is group 0's, already made: the blocks that exist
 * are its), sized for the last step (the same for every layer); the ring, read-ahead and
 * cursors' array once group 0's layer needs them (on a trace cache, none does).  Returns 0
 * or -1 (out of memory; layer_free frees what was made). */
static int layer_alloc(layer *ly, const grid_ctx *g, uint32_t k)
{
    ly->g = g;
    ly->feed = ly - k;
    ly->W = g->gW[k];
    ly->nr = (uint32_t)g->gcount[k];
    ly->R = g->R + g->gfirst[k];
    ly->spec = g->gspec + g->gfirst[k];
    ly->N = kvp_trace_steps(g->tr);
    ly->nw = words_of(ext_of(ly, ly->N));
    ly->np = 1;
    while ((1u << ly->np) <= ly->W)
        ly->np++;
#ifdef GRID_V512
    ly->v512 = have_v512() && kvp_simd_wide();
#endif
    const uint32_t W = ly->W, nw = ly->nw;
    ly->pl = calloc((size_t)nw * ly->np, sizeof *ly->pl);
    uint64_t **bufs[] = {&ly->gtL, &ly->eqL, &ly->z0, &ly->ex};
    int ok = ly->pl != NULL;
    if (k)
        ly->ex = ly->feed->ex;
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs - (k > 0); i++)
        ok &= (*bufs[i] = calloc(nw, sizeof **bufs[i])) != NULL;
    ly->nslots = W + 1 < LEVEL_SLOTS ? W + 1 : LEVEL_SLOTS;
    ok &= (ly->lv = calloc((size_t)2 * ly->nslots * nw, sizeof *ly->lv)) != NULL;
    ok &= (ly->lvx = calloc((size_t)2 * nw, sizeof *ly->lvx)) != NULL;
    ly->sims = calloc(ly->nr, sizeof *ly->sims);
    ok &= ly->sims != NULL;
    for (size_t i = 0; ok && i < ly->nr; i++)
        ok &= (ly->sims[i].res = calloc(nw, sizeof *ly->sims[i].res)) != NULL;
    if (ok && g->S > 1) /* sreads, scg, sce, shit, spro, sdem: S each */
        ok &= (ly->sreads = calloc((size_t)6 * g->S, sizeof *ly->sreads)) != NULL &&
              (ly->pr = calloc(nw, sizeof *ly->pr)) != NULL &&
              (ly->pcnt = calloc((size_t)2 * g->S * (W + 1), sizeof *ly->pcnt)) != NULL &&
              (ly->pstamp = calloc(W + 1, sizeof *ly->pstamp)) != NULL;
    for (size_t i = 0; ok && g->S > 1 && i < ly->nr; i++)
        ok &= (ly->sims[i].slp = malloc(g->S * sizeof *ly->sims[i].slp)) != NULL;
    if (!ok)
        return -1;
    if (g->S > 1) {
        ly->scg = ly->sreads + g->S;
        ly->sce = ly->scg + g->S;
        ly->shit = ly->sce + g->S;
        ly->spro = ly->shit + g->S;
        ly->sdem = ly->spro + g->S;
    }
    return 0;
}

/* The read-ahead's words: READ_AHEAD steps of each stream, twice in a unit of layers. */
static size_t sb_words(const layer *ly)
{
    return (size_t)(ly->g->LG > 1 ? 2 : 1) * ly->g->S * READ_AHEAD * ly->sw;
}

/* Layer l on a scratch of the pool: the state of a fresh layer, its buffers cleared where
 * they are read before they are written (the counters, the blocks that exist, the
 * read-ahead's words past a shorter stream's context), its cursors made (group 0's layer;
 * the others read its ring).  The level masks, the ring and the residencies are written
 * before they are read; the probes' stamps are below ly->probe, which goes on counting from
 * the scratch's last layer. */
static int layer_begin(layer *ly, uint32_t l, kvp_error *err)
{
    const grid_ctx *g = ly->g;
    const uint32_t nw = ly->nw;
    ly->l = l;
    ly->L = ly->cG = ly->cE = 0;
    ly->Lstart = 1;
    ly->full = 0;
    ly->fetched = ly->sbase = ly->shave = 0;
    ly->jt = NULL;
    memset(ly->lv_level, 0, sizeof ly->lv_level);
    memset(ly->lv_step, 0, sizeof ly->lv_step);
    memset(ly->pl, 0, (size_t)nw * ly->np * sizeof *ly->pl);
    for (size_t i = 0; i < ly->nr; i++)
        ly->sims[i].ld = 0; /* lp, slp and nres: grid_layer's */
    if (ly->feed != ly) { /* group 0's layer began first */
        ly->ring = ly->feed->ring;
        ly->rw = ly->feed->rw;
        return 0;
    }
    memset(ly->ex, 0, (size_t)nw * sizeof *ly->ex);
    ly->ring = NULL;
    if (kvp_trace_cache_bits(g->tr, l, 0, kvp_scenario_budget(g->sc)))
        return 0;
    if (!ly->ringbuf) {
        /* several streams: whole words of each stream's positions, interleaved */
        ly->sw = words_of(g->Pmax + ly->N);
        ly->rw = g->S > 1 ? g->S * ly->sw : nw;
        ly->ringbuf = calloc((size_t)(g->W + 1) * ly->rw, sizeof *ly->ringbuf);
        ly->cur = calloc(g->S, sizeof *ly->cur);
        if (g->S > 1)
            ly->sb = calloc(sb_words(ly), sizeof *ly->sb);
        if (!ly->ringbuf || !ly->cur || (g->S > 1 && !ly->sb)) {
            free(ly->ringbuf); /* all three made again by the next layer to take it */
            free(ly->cur);
            free(ly->sb);
            ly->ringbuf = ly->sb = NULL;
            ly->cur = NULL;
            return kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
        }
    } else if (ly->sb) {
        memset(ly->sb, 0, sb_words(ly) * sizeof *ly->sb);
    }
    ly->ring = ly->ringbuf;
    for (uint32_t i = 0; i < g->S; i++) {
        const kvp_trace *t = g->S > 1 ? kvp_trace_stream(g->tr, i) : g->tr;
        int rc = kvp_cursor_create(&ly->cur[i], t, l, kvp_scenario_budget(g->sc), err);
        if (rc < 0)
            return rc;
        kvp_cursor_sets_only(ly->cur[i]);
    }
    return 0;
}

HOT static uint64_t count_bits(const layer *ly, const uint64_t *w, uint32_t nw)
{
    uint64_t c = 0;
    uint32_t i = 0;
#ifdef GRID_V512
    if (ly->v512)
        i = count_v512(w, nw, &c);
#else
    (void)ly;
#endif
    for (; i < nw; i++)
        c += (uint64_t)__builtin_popcountll(w[i]);
    return c;
}

/* Several streams: the step's reads of each stream. */
HOT static void stream_reads(layer *ly, const uint64_t *acc, uint32_t cw)
{
    memset(ly->sreads, 0, ly->g->S * sizeof *ly->sreads);
    tally_words(ly, acc, NULL, 0, cw, ly->sreads);
}

/* The initial placement of each of a group's simulations, and their first levels. */
static void group_start(layer *ly)
{
    initial(ly, ly->sims[0].res, &ly->sims[0].nres);
    for (size_t i = 1; i < ly->nr; i++) {
        memcpy(ly->sims[i].res, ly->sims[0].res, (size_t)ly->nw * sizeof *ly->sims[i].res);
        ly->sims[i].nres = ly->sims[0].nres;
    }
    for (size_t i = 0; i < ly->nr; i++) {
        ly->sims[i].lp = ly->W;
        for (uint32_t k = 0; ly->sims[i].slp && k < ly->g->S; k++)
            ly->sims[i].slp[k] = ly->W;
    }
}

/* A layer of a unit (grid_unit): its scratch (grp: one layer struct a group of W, grp[0] the
 * feed) and the pool slot it holds. */
typedef struct unit_layer {
    layer *grp;
    uint32_t l, slot;
} unit_layer;

/* Takes a free scratch of the pool for layer ul->l (at most one a running layer, so one of
 * [0, layers)), made on its first use, and begins the layer on it: its state fresh, the
 * prompts' blocks existing. */
static int layer_open(const grid_ctx *g, unit_layer *ul, kvp_error *err)
{
    uint32_t slot = 0;
    while (atomic_exchange(&g->busy[slot], 1u))
        slot++;
    ul->slot = slot;
    const uint32_t G = g->ngroups;
    layer *grp = ul->grp = &g->pool[(size_t)slot * G];
    for (uint32_t k = 0; k < G; k++)
        if (!grp[k].g && layer_alloc(&grp[k], g, k) < 0) {
            for (uint32_t q = G; q-- > 0;) { /* made again by the next layer to take them */
                layer_free(&grp[q]);
                memset(&grp[q], 0, sizeof grp[q]);
            }
            return kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", ul->l);
        }
    for (uint32_t k = 0; k < G; k++) {
        int rc = layer_begin(&grp[k], ul->l, err);
        if (rc < 0)
            return rc;
    }
    /* the prompts exist; each step's new tokens are added after it */
    for (uint32_t i = 0; i < g->S; i++)
        for (uint32_t b = 0; b < g->sprompt[i]; b++) {
            const uint32_t v = b * g->S + i;
            grp->ex[v / WORD_BITS] |= 1ull << (v % WORD_BITS);
        }
    return 0;
}

/* Before step 0: access set m (m < the largest W) made and added to the counts of each group
 * whose window holds it. */
static int layer_prefill(unit_layer *ul, uint32_t m, kvp_error *err)
{
    layer *grp = ul->grp;
    int rc = fetch(grp, err);
    if (rc < 0)
        return rc;
    for (uint32_t k = 0; k < grp->g->ngroups; k++)
        if (m < grp[k].W)
            slide(&grp[k], m, 1);
    return 0;
}

/* Each group's level at step 0 and its simulations' initial placement. */
static void layer_ready(unit_layer *ul)
{
    layer *grp = ul->grp;
    const grid_ctx *g = grp->g;
    for (uint32_t k = 0; k < g->ngroups; k++) {
        grp[k].full = g->S * g->Pmin / WORD_BITS;
        find_level(&grp[k], words_of(ext_of(grp, 0)), g->slots);
        group_start(&grp[k]);
    }
}

/* Step n of the layer: the windows slid (the step's access set leaves, step n + W - 1's
 * comes), each group's level found and its simulations stepped, the step's new tokens made
 * to exist. */
static int layer_step(unit_layer *ul, uint32_t n, kvp_error *err)
{
    layer *grp = ul->grp, *ly = grp;
    const grid_ctx *g = ly->g;
    const uint32_t G = g->ngroups, N = ly->N, W = g->W, l = ul->l;
    int rc;
    if (n > 0) {
        for (uint32_t k = 0; k < G; k++)
            slide(&grp[k], n - 1, 0);
        if (n + W <= N && (rc = fetch(ly, err)) < 0)
            return rc;
        for (uint32_t k = 0; k < G; k++)
            if (n + grp[k].W <= N)
                slide(&grp[k], n + grp[k].W - 1, 1);
    }
    const uint32_t cw = words_of(ext_of(ly, n));
    const uint64_t *acc = acc_bits(ly, n);
    const uint64_t reads = count_bits(ly, acc, cw);
    if (g->S > 1)
        stream_reads(ly, acc, cw);
    for (uint32_t k = 0; k < G; k++) {
        layer *lk = &grp[k];
        lk->full = g->S * (g->Pmin + n) / WORD_BITS;
        find_level(lk, cw, g->slots);
        if (k && g->S > 1)
            memcpy(lk->sreads, ly->sreads, g->S * sizeof *lk->sreads);
        for (size_t i = 0; i < lk->nr; i++)
            if ((rc = sim_step(lk, &lk->sims[i], lk->R[i], n, acc, reads,
                               (size_t)l * g->nr + lk->spec[i], err)) < 0)
                return rc;
    }
    for (uint32_t i = 0; i < g->S; i++) {
        const uint32_t v = (g->sprompt[i] + n) * g->S + i;
        ly->ex[v / WORD_BITS] |= 1ull << (v % WORD_BITS);
    }
    return 0;
}

/* Unit u: layers u LG .. (LG of them, fewer at the end), every group of W of each.  The
 * access sets are made once a layer (its group 0, the feed); with LG > 1 for all of the
 * unit's layers at once, READ_AHEAD steps at a time (joint_make), and each layer then runs
 * READ_AHEAD steps in a row, so that its scratch stays in the cache for them.  A layer's
 * steps, and its sums, are those it has alone. */
static int grid_unit(uint32_t u, void *user, atomic_ullong *done)
{
    const grid_ctx *g = user;
    const uint32_t l0 = u * g->LG, nl = g->L - l0 < g->LG ? g->L - l0 : g->LG;
    kvp_error *err = &g->err[u];
    unit_layer ul[8] = {{0}};
    joint jt = {.n = nl, .made = 0};
    uint32_t opened = 0;
    int rc = 0;
    for (; opened < nl; opened++) {
        ul[opened].l = l0 + opened;
        if ((rc = layer_open(g, &ul[opened], err)) < 0) {
            opened++; /* its slot is held */
            goto done;
        }
        jt.feed[opened] = ul[opened].grp;
    }
    for (uint32_t i = 0; nl > 1 && i < nl; i++)
        ul[i].grp->jt = ul[i].grp->ring ? &jt : NULL;
    const uint32_t N = ul[0].grp->N, first = g->W < N ? g->W : N;
    for (uint32_t m = 0; m < first; m++)
        for (uint32_t i = 0; i < nl; i++)
            if ((rc = layer_prefill(&ul[i], m, err)) < 0)
                goto done;
    for (uint32_t i = 0; i < nl; i++)
        layer_ready(&ul[i]);
    const uint32_t run = nl > 1 ? READ_AHEAD : N;
    for (uint32_t n0 = 0; n0 < N; n0 += run) {
        const uint32_t n1 = N - n0 < run ? N : n0 + run;
        for (uint32_t i = 0; i < nl; i++)
            for (uint32_t n = n0; n < n1; n++) {
                if (g->cancel && *g->cancel) {
                    rc = kvp_error_set(err, KVP_EINTR, "interrupted at step %u of layer %u",
                                       n, ul[i].l);
                    goto done;
                }
                if ((rc = layer_step(&ul[i], n, err)) < 0)
                    goto done;
                atomic_fetch_add(done, 1ull);
            }
    }
done:
    for (uint32_t i = 0; i < opened; i++) {
        if (ul[i].grp->g) {
            layer_close(ul[i].grp);
            ul[i].grp->jt = NULL;
        }
        atomic_store(&g->busy[ul[i].slot], 0u);
    }
    return rc;
}


/* Layers a unit (grid_unit): 8 / S on 2 or 4 streams read from their generators (not a
 * cache), so that a unit's streams fill the eight lanes of the generators' vector form
 * (kvp_cursors_together); else 1, each layer alone. */
static uint32_t layers_per_unit(const grid_ctx *g, const kvp_trace *tr)
{
    if ((g->S != 2 && g->S != 4) || kvp_trace_is_cache(tr))
        return 1;
    return 8 / g->S;
}

int kvp_lookahead_grid_takes(const kvp_scenario *sc, const kvp_trace *tr,
                             const kvp_run_options *ro)
{
    const kvp_streams *si = kvp_trace_streams(tr);
    if ((ro && ro->check) || sc->tiers > 2)
        return 0;
    if (!si)
        return 1;
    if (WORD_BITS % si->n || (uint64_t)si->n * si->positions > UINT32_MAX)
        return 0;
    for (uint32_t i = 0; i < si->n; i++)
        if (si->steps[i] != kvp_trace_steps(tr))
            return 0;
    return 1;
}

/* The streams of tr into g (one stream: S = 1, its prompt): the order of their new blocks
 * and each one's bits of a word. */
static int grid_streams(grid_ctx *g, const kvp_trace *tr, const uint32_t *P1)
{
    const kvp_streams *si = kvp_trace_streams(tr);
    g->S = si ? si->n : 1;
    g->heads = si ? si->heads : 1;
    g->nseq = si ? si->nseq : 1;
    g->sprompt = si ? si->prompt : P1;
    g->order = malloc(g->S * sizeof *g->order);
    if (!g->order)
        return -1;
    g->Pmin = g->Pmax = g->sprompt[0];
    for (uint32_t i = 0; i < g->S; i++) {
        const uint32_t P = g->sprompt[i];
        g->Pmin = P < g->Pmin ? P : g->Pmin;
        g->Pmax = P > g->Pmax ? P : g->Pmax;
        uint32_t k = i; /* insertion by (P_i, i) */
        for (; k > 0 && g->sprompt[g->order[k - 1]] > P; k--)
            g->order[k] = g->order[k - 1];
        g->order[k] = i;
        for (uint32_t b = i; b < WORD_BITS; b += g->S)
            g->smask[i] |= 1ull << b;
    }
    return 0;
}

int kvp_lookahead_grid_all(const kvp_policy_spec *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ps[i].ops != &kvp_policy_lookahead)
            return 0;
    return n > 0;
}

int kvp_lookahead_grid(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                       size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    const kvp_accts ac = kvp_accts_one(sc);
    return kvp_lookahead_grid_accts(&ac, tr, ps, n, ro, res, err);
}

int kvp_lookahead_grid_accts(const kvp_accts *ac, const kvp_trace *tr,
                             const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                             kvp_result *res, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    if (n == 0)
        return 0;
    if (!kvp_lookahead_grid_takes(sc, tr, ro))
        return kvp_error_set(err, KVP_EINVAL, "lookahead grid: two tiers, unchecked, and on "
                             "streams only when their count divides 64 and every one decodes "
                             "every step; the rest are the engine's");
    if (!kvp_lookahead_grid_all(ps, n))
        return kvp_error_set(err, KVP_EINVAL, "lookahead grid: every spec must be "
                             "lookahead");
    const kvp_policy_param *pp = kvp_policy_lookahead.params;
    for (size_t i = 0; i < n; i++) {
        const double Wv = ps[i].value[0], R = ps[i].value[1];
        if (!(Wv >= pp[0].min && Wv <= pp[0].max && Wv == floor(Wv)) ||
            !(R >= pp[1].min && R <= pp[1].max))
            return kvp_error_set(err, KVP_EINVAL, "lookahead: W=%g or R=%g out of range", Wv,
                                 R);
    }
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_derive_for(sc, tr, &d, err)) < 0 ||
        (rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    const uint32_t L = kvp_trace_layers(tr);
    const uint32_t P1 = kvp_trace_prompt(tr);
    grid_ctx g;
    memset(&g, 0, sizeof g);
    g.sc = sc;
    g.tr = tr;
    g.d = &d;
    if ((rc = kvp_accts_models(ac, tr, g.model, err)) < 0)
        return rc;
    g.nm = ac->n;
    g.L = L;
    g.slots = kvp_slots(sc, &d, 1);
    g.nr = n;
    g.cancel = ro ? ro->cancel : NULL;
    double *R = malloc(n * sizeof *R);
    g.time_s = calloc((size_t)g.nm * L * n, sizeof *g.time_s);
    g.cnt = calloc((size_t)L * n, sizeof *g.cnt);
    g.rc = calloc(L, sizeof *g.rc);
    g.err = calloc(L, sizeof *g.err);
    g.gW = malloc(n * sizeof *g.gW);
    g.gspec = malloc(n * sizeof *g.gspec);
    g.gfirst = malloc(n * sizeof *g.gfirst);
    g.gcount = calloc(n, sizeof *g.gcount);
    if (!R || !g.time_s || !g.cnt || !g.rc || !g.err || !g.gW || !g.gspec || !g.gfirst ||
        !g.gcount || grid_streams(&g, tr, &P1) < 0 ||
        !(g.seq_out = calloc((size_t)L * n * g.nseq * 4, sizeof *g.seq_out))) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    /* the groups of W, in the order of their first spec; the specs of each in theirs */
    for (size_t i = 0; i < n; i++) {
        const uint32_t Wi = (uint32_t)ps[i].value[0];
        uint32_t k = 0;
        while (k < g.ngroups && g.gW[k] != Wi)
            k++;
        if (k == g.ngroups)
            g.gW[g.ngroups++] = Wi;
        g.gcount[k]++;
        g.W = Wi > g.W ? Wi : g.W;
    }
    for (uint32_t k = 0, at = 0; k < g.ngroups; at += (uint32_t)g.gcount[k++])
        g.gfirst[k] = at;
    for (uint32_t k = 0, at = 0; k < g.ngroups; k++)
        for (size_t i = 0; i < n; i++)
            if ((uint32_t)ps[i].value[0] == g.gW[k]) {
                g.gspec[at] = (uint32_t)i;
                R[at++] = ps[i].value[1];
            }
    g.R = R;
    if (!(g.pool = calloc((size_t)L * g.ngroups, sizeof *g.pool)) ||
        !(g.busy = malloc(L * sizeof *g.busy))) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    for (uint32_t l = 0; l < L; l++)
        atomic_init(&g.busy[l], 0u);
    g.LG = layers_per_unit(&g, tr);
    const uint32_t units = (L + g.LG - 1) / g.LG;
    kvp_parallel_layers(units, ro, (uint64_t)L * kvp_trace_steps(tr), grid_unit, &g, g.rc);
    for (uint32_t u = 0; u < units; u++)
        if (g.rc[u] < 0) {
            rc = g.rc[u];
            if (err)
                *err = g.err[u];
            goto done;
        }
    rc = kvp_result_fill_layers_accts(res, ac, tr, ps, n, L, g.time_s, g.cnt, &g.slots, 0,
                                      err);
    for (size_t i = 0; i < n * ac->n && rc >= 0 && g.S > 1; i++)
        rc = kvp_result_fill_seqs(&res[i], g.nseq, L, n, i % n, g.seq_out, d.tok_bytes, err);
done:
    free(R);
    free(g.time_s);
    free(g.cnt);
    free(g.rc);
    free(g.err);
    free(g.order);
    free(g.seq_out);
    free(g.gW);
    free(g.gspec);
    free(g.gfirst);
    free(g.gcount);
    for (size_t k = (size_t)L * g.ngroups; g.pool && k-- > 0;) /* group 0's layers last */
        layer_free(&g.pool[k]);
    free(g.pool);
    free(g.busy);
    return rc;
}
