/*
 * Synthetic traces (docs/MODEL.md §6; the model, its presets and their sources:
 * docs/SYNTHETIC.md).
 *
 * Every position p of a layer carries a 16-bit integer key; its score is key / 65535 (strictly
 * monotone, so the top-k of the scores is the top-k of the keys, and a trace written to .npy
 * reads back to the same access sets).  Keys, from the top:
 *   - the first `sinks` positions: KEY_SINK (attention sinks, always read);
 *   - the last `window` positions of the context: KEY_WINDOW (recency, always read);
 *   - heavy hitters (a share `heavy_share` of positions, fixed per position): a high band;
 *   - the rest: a low band.
 * Outside sinks and window a key is base(p) + noise: base(p) is a hash of (seed, layer, p) and
 * never changes; the noise is redrawn when the position leaves the window and, each step, for
 * runs of DRIFT_RUN consecutive positions starting at random places, drift * context positions
 * in all.  That redraw is the importance drift that tells the presets apart.
 *
 * A cursor keeps the keys of its layer (uint16 per position); a key change is a store and
 * nothing else (a drift run of 8 keys one vector store with SSE2).  The k-th highest key is
 * found by one counting pass over the keys: those above a narrow band around last step's
 * threshold, and the band's own by value (a full 65536-bin count when the band misses, rare);
 * the set is then one branch-free pass over the keys: O(context) per step with a small
 * constant, O(P + N) memory, nothing allocated per step.
 *
 * Determinism: all randomness comes from xoshiro256** seeded per layer by splitmix64 from
 * (seed, layer), plus a stateless hash for base(p); only integer arithmetic decides anything,
 * so a layer's stream depends on (seed, layer, parameters) alone, on every platform.
 */
#include "trace/trace.h"
#include "base/error.h"
#include "base/simd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Key layout (16 bits).  Ordinary keys < HEAVY_LO <= heavy keys < KEY_WINDOW < KEY_SINK.    */

#define KEY_BITS 16u
#define KEY_COUNT (1u << KEY_BITS)     /* histogram bins */
#define KEY_SINK 65535u                /* sinks: the maximum */
#define KEY_WINDOW 65534u              /* recency window: just below */
#define KEY_INV (1.0 / 65535.0)        /* score = key / 65535 */

/* Ordinary tokens: base in [0, ORD_SPAN), skewed low (product of two uniforms, density
 * -ln x: many weak tokens, a long tail of strong ones), plus noise uniform in [0, ORD_SPAN).
 * Equal spans make a redraw move a token across most of the ranking. */
#define ORD_SPAN 24576u
/* Heavy hitters: HEAVY_LO + base in [0, HEAVY_SPAN) + noise in [0, HEAVY_SPAN): above every
 * ordinary key, so they are read whenever k leaves room for them, and compete among
 * themselves (by their own noise) when it does not. */
#define HEAVY_LO 49152u
#define HEAVY_SPAN 8191u
/* A drift redraw renews the noise of this many consecutive positions: importance comes in
 * spans (SnapKV pools scores over neighbours for this reason), and runs keep redraws cheap. */
#define DRIFT_RUN 8u

_Static_assert(2 * (ORD_SPAN - 1) < HEAVY_LO, "ordinary keys stay below the heavy band");
_Static_assert(HEAVY_LO + 2 * (HEAVY_SPAN - 1) < KEY_WINDOW, "heavy keys stay below window");
_Static_assert(KEY_WINDOW < KEY_SINK && KEY_SINK == KEY_COUNT - 1, "sinks on top");

/* The presets (docs/SYNTHETIC.md gives the source of each `actual` value). */
typedef struct synth_preset {
    const char *name;
    uint32_t sinks;     /* StreamingLLM: 4 initial tokens suffice as attention sinks */
    uint32_t window;    /* our choice, see docs/SYNTHETIC.md */
    double drift;       /* share of positions redrawn per step */
    double heavy_share; /* share of positions that are heavy hitters */
} synth_preset;

static const synth_preset PRESETS[] = {
    [KVP_VAR_LOW] = {"low", 4, 64, 0.10, 0.05},
    [KVP_VAR_ACTUAL] = {"actual", 4, 64, 0.40, 0.05},
    [KVP_VAR_HIGH] = {"high", 4, 64, 0.80, 0.05},
};
#define NPRESETS (sizeof PRESETS / sizeof PRESETS[0])

#define Q32 4294967296.0 /* 2^32: shares are held as 32-bit fixed point */

/* Heads (docs/SYNTHETIC.md "Heads").  The share of a layer's KV heads that are retrieval
 * heads: DuoAttention's 50% for GQA models (Llama-3-8B; 25% for MHA), the share at which it
 * matches full attention.  A streaming head's key rises with the position (the most recent
 * read first, after the sinks): keys 1 .. LOCAL_SPAN, below the window's. */
#define RETRIEVAL_SHARE 0.5
#define LOCAL_SPAN (KEY_WINDOW - 2u)
_Static_assert(LOCAL_SPAN < KEY_WINDOW, "streaming keys stay below the window");

/* ---------------------------------------------------------------------------------------- */
/* Random numbers: splitmix64 (seeding, stateless hash) and xoshiro256** (per-layer stream). */

#define GOLDEN64 0x9E3779B97F4A7C15ull
#define SALT_STREAM 0x5EED5EED5EED5EEDull /* keeps the stream and the hash of a layer apart */
#define SALT_BASE 0xBA5EBA5EBA5EBA5Eull
#define SALT_HEAD 0x4EAD4EAD4EAD4EADull /* a head's own streams (heads > 1) */
#define SALT_KIND 0x6B1D6B1D6B1D6B1Dull /* which heads of a layer retrieve */
#define SALT_SEQ 0x5E0C5E0C5E0C5E0Cull  /* a sequence's seed and prompt */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *x)
{
    *x += GOLDEN64;
    return mix64(*x);
}

typedef struct xoshiro {
    uint64_t s[4];
} xoshiro;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t xoshiro_next(xoshiro *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n) from 32 random bits (multiply-shift; the bias, < n / 2^32, is harmless). */
static inline uint32_t below(uint32_t bits, uint32_t n)
{
    return (uint32_t)(((uint64_t)bits * n) >> 32);
}

/* ---------------------------------------------------------------------------------------- */
/* The selection's vector pass (SSE2, every x86-64; the plain loop elsewhere, or with
 * -DKVP_NO_SIMD, which `make sanitize` uses so that the tests cover both).                  */

#if defined(__SSE2__) && !defined(KVP_NO_SIMD)
#define KVP_SYNTH_SSE2 1
#include <emmintrin.h>
#else
#define KVP_SYNTH_SSE2 0
#endif

/* On x86-64 with GCC or clang, the two passes over the keys also have an AVX-512 form (32 keys
 * a step: a mask compare, then the taken positions compressed 16 at a time), chosen at run
 * time where the CPU has AVX-512 F and BW; the SSE2 loop finishes what it leaves, and is the
 * whole pass elsewhere.  The environment variable KVPLACE_SSE2_ONLY (any value) turns it off,
 * so that the tests run the SSE2 form on such CPUs too.  Same sets either way: each form
 * takes the same keys in the same order. */
#if KVP_SYNTH_SSE2 && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KVP_SYNTH_AVX512 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw")))
#else
#define KVP_SYNTH_AVX512 0
#endif

/* For an 8-bit mask of taken keys: the offsets of its set bits, in order, and their count. */
typedef struct mask_row {
    _Alignas(16) uint32_t off[8];
    uint32_t count;
} mask_row;

static void mask_rows_fill(mask_row *lut)
{
    for (uint32_t mask = 0; mask < 256; mask++) {
        uint32_t c = 0;
        for (uint32_t bit = 0; bit < 8; bit++)
            if (mask >> bit & 1u)
                lut[mask].off[c++] = bit;
        for (uint32_t i = c; i < 8; i++)
            lut[mask].off[i] = 0;
        lut[mask].count = c;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Heads and sequences (docs/SYNTHETIC.md "Heads", "Sequences")                              */

/* round(share * n) in 32-bit fixed point, as the other shares: integer from here on. */
static uint32_t share_of(double share, uint32_t n)
{
    uint64_t q = (uint64_t)(share * Q32);
    return (uint32_t)((q * n + (1ull << 31)) >> 32);
}

static uint64_t head_hash(uint64_t seed, uint32_t layer, uint32_t head)
{
    return mix64(seed ^ mix64(SALT_KIND + layer) ^ mix64(SALT_HEAD + head));
}

kvp_head_kind kvp_synth_head_kind(const kvp_synth_params *sp, uint32_t layer)
{
    if (sp->heads <= 1)
        return KVP_HEAD_ALL;
    const double share = sp->retrieval_share > 0 ? sp->retrieval_share : RETRIEVAL_SHARE;
    const uint32_t retrieval = share_of(share, sp->heads);
    /* The head's rank among the layer's heads by their hashes (ties: lower head first);
     * the first `retrieval` of them retrieve. */
    const uint64_t mine = head_hash(sp->seed, layer, sp->head);
    uint32_t rank = 0;
    for (uint32_t h = 0; h < sp->heads; h++) {
        uint64_t o = head_hash(sp->seed, layer, h);
        rank += o < mine || (o == mine && h < sp->head);
    }
    return rank < retrieval ? KVP_HEAD_RETRIEVAL : KVP_HEAD_STREAMING;
}

/* What sets a cursor's layer (and head) apart: its random streams, and its kind. */
typedef struct stream_id {
    uint64_t rng_seed;   /* xoshiro seeded by splitmix64 from this */
    uint64_t salt;       /* base(p) = hash(salt, p) */
    uint64_t heavy_salt; /* heavy-hitter membership = hash(heavy_salt, p): the layer's */
    int local;           /* 1: a streaming head */
} stream_id;

/* One stream for every head (heads <= 1): the salts of (seed, layer) alone, as ever.  A
 * head of several: its own stream and bases, and the layer's heavy hitters (a retrieval
 * head of a layer finds the same persistent tokens as the others). */
static stream_id stream_of(const kvp_synth_params *sp, uint32_t layer)
{
    const uint64_t layer_salt = mix64(sp->seed ^ mix64(SALT_BASE + layer));
    stream_id id = {sp->seed ^ mix64(SALT_STREAM + layer), layer_salt, layer_salt, 0};
    if (sp->heads > 1) {
        const uint64_t hs = mix64(SALT_HEAD + sp->head);
        id.rng_seed ^= hs;
        id.salt = mix64(sp->seed ^ mix64(SALT_BASE + layer) ^ hs);
        id.local = kvp_synth_head_kind(sp, layer) == KVP_HEAD_STREAMING;
    }
    return id;
}

uint64_t kvp_synth_sequence_seed(uint64_t seed, uint32_t s)
{
    return s == 0 ? seed : mix64(seed ^ mix64(SALT_SEQ + s));
}

/* LongBench's English and code tasks (THUDM/LongBench task.md): average length in words
 * and number of samples.  A sequence draws a task with the weight of its samples. */
static const struct {
    uint32_t words, samples;
} LONGBENCH[] = {
    {9149, 200},  /* HotpotQA */          {4885, 200},  /* 2WikiMultihopQA */
    {7798, 200},  /* MuSiQue */           {4559, 150},  /* MultiFieldQA-en */
    {18405, 200}, /* NarrativeQA */       {3619, 200},  /* Qasper */
    {8169, 200},  /* GovReport */         {10546, 200}, /* QMSum */
    {8015, 200},  /* TriviaQA */          {8210, 200},  /* NQ */
    {5176, 200},  /* TREC */              {9288, 200},  /* PassageRetrieval-en */
    {11141, 200}, /* PassageCount */      {1235, 500},  /* LCC */
    {5622, 500},  /* RepoBench-P */
};
#define NLONGBENCH (sizeof LONGBENCH / sizeof LONGBENCH[0])

uint32_t kvp_synth_sequence_prompt(uint64_t seed, uint32_t s, uint32_t base_prompt)
{
    if (s == 0 || base_prompt == 0)
        return base_prompt;
    uint64_t samples = 0, words = 0; /* sum of samples, sum of words x samples */
    for (size_t i = 0; i < NLONGBENCH; i++) {
        samples += LONGBENCH[i].samples;
        words += (uint64_t)LONGBENCH[i].words * LONGBENCH[i].samples;
    }
    const uint64_t h = mix64(kvp_synth_sequence_seed(seed, s) ^ SALT_SEQ);
    uint64_t pick = below((uint32_t)h, (uint32_t)samples);
    size_t t = 0;
    while (pick >= LONGBENCH[t].samples)
        pick -= LONGBENCH[t++].samples;
    /* base x (task words / mean words) x f, f = (32768 + u) / 65536 uniform in [0.5, 1.5),
     * rounded, exactly in integers: q = base x words x (32768 + u) < 2^58, then
     * q x samples / (65536 x words_sum) split at the quotient so nothing overflows. */
    const uint64_t u = (h >> 48) & 0xFFFFu;
    const uint64_t q = (uint64_t)base_prompt * LONGBENCH[t].words * (32768u + u);
    const uint64_t d = 65536u * words;
    const uint64_t r = (q / d) * samples + ((q % d) * samples + d / 2) / d;
    return r < 1 ? 1 : r > KVP_SYNTH_PROMPT_MAX ? KVP_SYNTH_PROMPT_MAX : (uint32_t)r;
}

/* ---------------------------------------------------------------------------------------- */
/* The trace and its cursors                                                                 */

/* A step's threshold as state_threshold found it for k reads: the k-th highest key and the
 * count of keys above it.  k == 0: not known. */
typedef struct thr_memo {
    uint32_t k, above;
    uint16_t thr;
} thr_memo;

typedef struct synth_impl {
    kvp_synth_params sp; /* as resolved: knobs filled from the preset */
    uint64_t drift_q32;  /* drift * 2^32 */
    uint32_t heavy_q32;  /* heavy_share * 2^32 */
    /* Every cursor of a layer brings the keys through the same steps, so a step's threshold
     * found once serves every later cursor of the layer that asks the same k (another pass
     * of the grid, of `sa`): steps * layers entries (layer l's from l * steps), NULL when
     * they could not be had (nothing remembered then).  Written without locks: a layer's
     * cursors are stepped by one thread at a time (a run gives each layer to one worker,
     * kvp_parallel_layers). */
    thr_memo *memo;
} synth_impl;

typedef struct synth_state {
    const synth_impl *im;
    uint32_t layer;
    kvp_budget budget;
    uint32_t P, N;
    uint32_t step;      /* the keys describe the context of this step (P + step positions) */
    uint32_t sinks, window;
    uint64_t salt;      /* base(p) = hash(salt, p) */
    uint64_t heavy_salt; /* heavy hitters: hash(heavy_salt, p); salt itself for heads <= 1 */
    uint64_t drift_q32; /* the trace's drift, 0 for a streaming head */
    int local;          /* a streaming head: keys by position, no noise */
    thr_memo *memo;     /* N: this layer's thresholds (im->memo), or NULL */
    xoshiro rng;
    uint16_t *base;     /* P + N: base(p), hashed once at open */
    uint16_t *key;      /* P + N */
    uint32_t *pos;      /* P + N: the access set */
    uint64_t *bits;     /* (P + N) / 64 + 1 words: the access set as a bitset (kvp_access) */
    float *score;       /* P + N */
    uint32_t *hist;     /* KEY_COUNT: a full count of the keys, when the band misses */
    uint32_t thr;       /* the last threshold key */
    uint32_t half;      /* the band's half-width around it; 0 before the first selection */
    uint32_t *bandh;    /* BAND_MAX bins: the count of the band's keys */
    uint32_t nband;     /* band_count's list of the band's positions, in pos: its length */
    mask_row *lut;      /* 256 rows, for the selection's vector pass (one per cursor, filled
                         * at open: no shared table to initialise across threads) */
    int ready;          /* the bases and step 0's keys made (state_ready) */
    int sets_only;      /* kvp_cursor_sets_only: no scores for the sets */
    int avx512;         /* the passes over the keys take their AVX-512 form */
} synth_state;

#if KVP_SYNTH_SSE2 /* the vector passes' (the plain one counts its ties key by key) */
/* The ties at the threshold to leave out of a chunk whose ties are the set bits of eq, with
 * *t ties still to take: none while they fit, else all but the lowest *t (ties go to the
 * lower positions); *t is less the ties taken. */
static inline uint64_t ties_over(uint64_t eq, uint32_t *t)
{
    const uint32_t n = (uint32_t)__builtin_popcountll(eq);
    if (n <= *t) {
        *t -= n;
        return 0;
    }
    for (uint32_t i = *t; i > 0; i--)
        eq &= eq - 1;
    *t = 0;
    return eq;
}
#endif

#if KVP_SYNTH_AVX512
/* 1 where the CPU has AVX-512 F and BW and KVPLACE_SSE2_ONLY is not set. */
static int avx512_usable(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           kvp_simd_wide();
}

/* The positions p + i of the set bits i of a 16-bit mask, stored at out (16 entries
 * written; the caller's array has room), and their count. */
AVX512 static inline uint32_t compress16(uint32_t *out, __mmask16 m, __m512i vp)
{
    _mm512_storeu_si512((void *)out, _mm512_maskz_compress_epi32(m, vp));
    return (uint32_t)__builtin_popcount(m);
}

/* state_select's pass, 32 keys a step: every position p < *pp (a multiple of 32 with
 * *pp <= ctx) with key[p] > thr, and the first *t with key[p] == thr (ties_over), in order,
 * into pos, and as bits p of bits; returns their count.  pos[m ..
 * m + 15] stays below p + 32 <= ctx, since m <= p. */
AVX512 static uint32_t take_ge_avx512(const uint16_t *key, uint32_t ctx, uint32_t thr,
                                      uint32_t *t, uint32_t *pos, unsigned char *bits,
                                      uint32_t *pp)
{
    const __m512i vthr = _mm512_set1_epi16((short)thr);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    uint32_t m = 0, p = 0;
    for (; p + 32 <= ctx; p += 32) {
        __m512i k32 = _mm512_loadu_si512((const void *)(key + p));
        __mmask32 ge = _mm512_cmpge_epu16_mask(k32, vthr);
        __mmask32 eq = _mm512_cmpeq_epu16_mask(k32, vthr);
        if (eq)
            ge &= ~(__mmask32)ties_over(eq, t);
        memcpy(bits + p / 8, &ge, 4); /* x86: little-endian, as the words that hold it */
        __m512i vp = _mm512_add_epi32(iota, _mm512_set1_epi32((int)p));
        m += compress16(pos + m, (__mmask16)ge, vp);
        m += compress16(pos + m, (__mmask16)(ge >> 16), _mm512_add_epi32(vp, sixteen));
    }
    *pp = p;
    return m;
}

/* band_count's pass, 64 keys (a word) a step: over the words wd < *pw (*pw * 64 <= ctx), the
 * count of keys >= hi (returned), those keys as bits (bits[wd * stride], unless bits is NULL)
 * and the positions of the keys in [lo, lo + w) listed in pos (*nb of them). */
AVX512 static uint32_t band_avx512(const uint16_t *key, uint32_t ctx, uint32_t hi, uint32_t lo,
                                   uint32_t w, uint32_t *pos, uint32_t *nb, uint64_t *bits,
                                   size_t stride, uint32_t *pw)
{
    const __m512i vhi = _mm512_set1_epi16((short)hi), vlo = _mm512_set1_epi16((short)lo);
    const __m512i vw1 = _mm512_set1_epi16((short)(w - 1));
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    uint32_t above = 0, n = 0, wd = 0;
    for (; (wd + 1) * 64 <= ctx; wd++) {
        const uint16_t *k = key + (size_t)wd * 64;
        __m512i k0 = _mm512_loadu_si512((const void *)k);
        __m512i k1 = _mm512_loadu_si512((const void *)(k + 32));
        /* hi <= KEY_COUNT: as a 16-bit value hi = 65536 is 0, and no key is >= it */
        uint64_t x = hi < KEY_COUNT ? (uint64_t)_mm512_cmpge_epu16_mask(k0, vhi) |
                                          (uint64_t)_mm512_cmpge_epu16_mask(k1, vhi) << 32
                                    : 0;
        if (bits)
            bits[wd * stride] = x;
        above += (uint32_t)__builtin_popcountll(x);
        const uint64_t in = (uint64_t)_mm512_cmple_epu16_mask(_mm512_sub_epi16(k0, vlo), vw1) |
                            (uint64_t)_mm512_cmple_epu16_mask(_mm512_sub_epi16(k1, vlo), vw1)
                                << 32;
        __m512i vp = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(wd * 64)));
        for (unsigned e = 0; e < 64; e += 16) {
            n += compress16(pos + n, (__mmask16)(in >> e), vp);
            vp = _mm512_add_epi32(vp, sixteen);
        }
    }
    *nb = n;
    *pw = wd;
    return above;
}

/* state_select_bits's pass, 64 keys a word: the words w < *pw (*pw * 64 <= ctx) of the keys
 * > thr and the first *t == thr (ties_over), every stride-th of bits. */
AVX512 static void ge_bits_avx512(const uint16_t *key, uint32_t ctx, uint32_t thr, uint32_t *t,
                                  uint64_t *bits, size_t stride, uint32_t *pw)
{
    const __m512i vthr = _mm512_set1_epi16((short)thr);
    uint32_t w = 0;
    for (; (w + 1) * 64 <= ctx; w++) {
        const uint16_t *k = key + (size_t)w * 64;
        __m512i lo = _mm512_loadu_si512((const void *)k);
        __m512i hi = _mm512_loadu_si512((const void *)(k + 32));
        uint64_t x = (uint64_t)_mm512_cmpge_epu16_mask(lo, vthr) |
                     (uint64_t)_mm512_cmpge_epu16_mask(hi, vthr) << 32;
        uint64_t eq = (uint64_t)_mm512_cmpeq_epu16_mask(lo, vthr) |
                      (uint64_t)_mm512_cmpeq_epu16_mask(hi, vthr) << 32;
        if (eq)
            x &= ~ties_over(eq, t);
        bits[w * stride] = x;
    }
    *pw = w;
}

/* The scores (key_score's values) of the set bits of the words w < *pw ((w + 1) * 64 <= ctx),
 * every stride-th of bits, ascending by position, into score; returns how many.  16 keys at
 * a time, the taken ones' scores compressed in a register and stored by a mask of as many
 * (score need hold only the set's entries).  In float: key * KEY_HI + (key * KEY_LO) by one
 * fused multiply-add, KEY_HI + KEY_LO = 1 / 65535 to twice a float's precision, equals
 * key_score(key) for every 16-bit key (tests/test_synth.c checks all 65536), in half the
 * operations of key_score's double product. */
#define KEY_HI ((float)KEY_INV)
#define KEY_LO ((float)(KEY_INV - (double)KEY_HI))
AVX512 static uint32_t bit_scores_avx512(const uint16_t *key, uint32_t ctx, const uint64_t *bits,
                                         size_t stride, float *score, uint32_t *pw)
{
    const __m512 hi = _mm512_set1_ps(KEY_HI), lo = _mm512_set1_ps(KEY_LO);
    uint32_t j = 0, w = 0;
    for (; (w + 1) * 64 <= ctx; w++) {
        const uint64_t x = bits[w * stride];
        for (uint32_t e = 0; e < 64; e += 16) {
            const __mmask16 m = (__mmask16)(x >> e);
            if (!m)
                continue;
            const __m512 k16 = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(
                _mm256_loadu_si256((const __m256i *)(key + (size_t)w * 64 + e))));
            const __m512 f16 = _mm512_fmadd_ps(k16, hi, _mm512_mul_ps(k16, lo));
            const uint32_t q = (uint32_t)__builtin_popcount(m);
            _mm512_mask_storeu_ps(score + j, (__mmask16)((1u << q) - 1),
                                  _mm512_maskz_compress_ps(m, f16));
            j += q;
        }
    }
    *pw = w;
    return j;
}
#endif

/* key / 65535 as a float.  Through a double product: for every 16-bit key this equals the
 * float quotient (float)key / 65535.0f exactly (tests/test_synth.c checks all 65536), and it
 * is several times cheaper than a float division. */
static inline float key_score(uint32_t key) { return (float)((double)key * KEY_INV); }

/* base(p): a heavy hitter (a share heavy_q32 / 2^32 of positions) gets HEAVY_LO plus a
 * uniform part, any other position the skewed ordinary base. */
static uint32_t base_of(const synth_state *st, uint32_t p)
{
    if (st->local) /* rises with p, strictly while P + N <= LOCAL_SPAN */
        return 1u + (uint32_t)((uint64_t)p * LOCAL_SPAN / ((uint64_t)st->P + st->N));
    uint64_t h = mix64(st->salt + (uint64_t)p * GOLDEN64);
    uint32_t u = (uint32_t)(h >> 48), v = (uint32_t)(h >> 32) & 0xFFFFu;
    uint64_t hh = st->heavy_salt == st->salt ? h : mix64(st->heavy_salt + (uint64_t)p * GOLDEN64);
    if ((uint32_t)hh < st->im->heavy_q32)
        return HEAVY_LO + ((u * HEAVY_SPAN) >> KEY_BITS);
    return (uint32_t)(((uint64_t)u * v * ORD_SPAN) >> (2 * KEY_BITS));
}

/* The key of a position outside sinks and window, given 16 random bits of noise. */
static inline uint32_t plain_key(const uint16_t *base, uint32_t p, uint32_t noise16)
{
    uint32_t b = base[p];
    uint32_t span = b >= HEAVY_LO ? HEAVY_SPAN : ORD_SPAN;
    return b + ((noise16 * span) >> KEY_BITS);
}

static inline uint32_t noise_draw(xoshiro *rng) { return (uint32_t)(xoshiro_next(rng) >> 48); }

/* The key of a position that leaves the sinks and window (or enters outside them): its
 * base plus fresh noise, or for a streaming head its base alone (no randomness drawn). */
static inline uint32_t settled_key(const synth_state *st, uint32_t p, xoshiro *rng)
{
    return st->local ? st->base[p] : plain_key(st->base, p, noise_draw(rng));
}

/* Builds the keys of step 0's context. */
static void state_init(synth_state *st)
{
    const uint32_t ctx = st->P, sinks = st->sinks, window = st->window;
    st->thr = 0;
    st->half = 0;
    for (uint32_t p = 0; p < st->P + st->N; p++)
        st->base[p] = (uint16_t)base_of(st, p);
    for (uint32_t p = 0; p < ctx; p++) {
        if (p < sinks)
            st->key[p] = (uint16_t)KEY_SINK;
        else if ((uint64_t)p + window >= ctx)
            st->key[p] = (uint16_t)KEY_WINDOW;
        else
            st->key[p] = (uint16_t)settled_key(st, p, &st->rng);
    }
    st->step = 0;
}

/* The bases and step 0's keys, made when a step first needs them, not at open: a cursor asked
 * for counts alone (kvp_cursor_next_counts with no bounds) never makes them. */
static void state_ready(synth_state *st)
{
    if (!st->ready) {
        state_init(st);
        st->ready = 1;
    }
}

/* A drift run wholly inside the drifting range: the keys of p .. p + 7 from four draws, the
 * first noise of each draw its bits 48..63, the second its bits 32..47.  With SSE2 the eight
 * keys are made at once: a heavy base is >= HEAVY_LO = 0xC000 and an ordinary one below
 * ORD_SPAN <= 0x8000, so its sign bit as int16 picks the span (a streaming head's bases fill
 * the range, but it draws no runs: no drift), and (noise * span) >> 16 is the high half of
 * the 16-bit product. */
#if KVP_SYNTH_SSE2
/* plain_key of eight positions: bases b, 16-bit noises nz (drift_run, and drift8's runs). */
static inline __m128i plain_keys8(__m128i b, __m128i nz)
{
    const __m128i heavy = _mm_srai_epi16(b, 15);
    const __m128i ord = _mm_set1_epi16((short)ORD_SPAN);
    const __m128i flip = _mm_set1_epi16((short)(ORD_SPAN ^ HEAVY_SPAN));
    const __m128i span = _mm_xor_si128(ord, _mm_and_si128(heavy, flip));
    return _mm_add_epi16(b, _mm_mulhi_epu16(nz, span));
}
#endif

static inline void drift_run(uint16_t *key, const uint16_t *base, uint32_t p, xoshiro *rng)
{
#if KVP_SYNTH_SSE2
    /* 32-bit lane j: the high half of draw j, its 16-bit halves swapped (lane 2j: bits
     * 48..63, lane 2j + 1: bits 32..47) */
    const uint64_t d0 = xoshiro_next(rng), d1 = xoshiro_next(rng);
    const uint64_t d2 = xoshiro_next(rng), d3 = xoshiro_next(rng);
    const long long lo01 = (long long)((d1 & ~0xFFFFFFFFull) | d0 >> 32);
    const long long hi23 = (long long)((d3 & ~0xFFFFFFFFull) | d2 >> 32);
#if defined(__x86_64__)
    __m128i hi = _mm_unpacklo_epi64(_mm_cvtsi64_si128(lo01), _mm_cvtsi64_si128(hi23));
#else
    __m128i hi = _mm_set_epi64x(hi23, lo01);
#endif
    const __m128i noise = _mm_or_si128(_mm_slli_epi32(hi, 16), _mm_srli_epi32(hi, 16));
    const __m128i b = _mm_loadu_si128((const __m128i *)(base + p));
    _mm_storeu_si128((__m128i *)(key + p), plain_keys8(b, noise));
#else
    for (uint32_t q = p; q < p + DRIFT_RUN; q += 2) {
        uint64_t bits = xoshiro_next(rng);
        key[q] = (uint16_t)plain_key(base, q, (uint32_t)(bits >> 48));
        key[q + 1] = (uint16_t)plain_key(base, q + 1, (uint32_t)(bits >> 32) & 0xFFFFu);
    }
#endif
}
_Static_assert(DRIFT_RUN == 8, "drift_run makes runs of 8 keys");
_Static_assert(HEAVY_LO == 0xC000u && ORD_SPAN <= 0x8000u,
               "a heavy base is the one with its top bit set (ordinary bases < ORD_SPAN)");

/* The first part of a step's move (state_advance): the token of step n - 1 (n = st->step + 1)
 * enters, the oldest window position leaves the window.  Returns the drift's count of runs,
 * drift * ctx positions in all (rounded). */
static inline uint32_t state_enter(synth_state *st, xoshiro *rng)
{
    const uint32_t ctx = st->P + st->step + 1;
    const uint32_t sinks = st->sinks, window = st->window;
    uint16_t *key = st->key;

    /* The new token: a sink if the prompt is shorter than the sinks, else recent. */
    const uint32_t newp = ctx - 1;
    if (newp < sinks)
        key[newp] = (uint16_t)KEY_SINK;
    else if (window > 0)
        key[newp] = (uint16_t)KEY_WINDOW;
    else
        key[newp] = (uint16_t)settled_key(st, newp, rng);

    /* The position that was the oldest of the window now competes with the rest. */
    if (window > 0 && ctx > window) {
        uint32_t out = ctx - 1 - window;
        if (out >= sinks)
            key[out] = (uint16_t)settled_key(st, out, rng);
    }
    uint32_t redraw = (uint32_t)(((uint64_t)ctx * st->drift_q32 + (1ull << 31)) >> 32);
    return (redraw + DRIFT_RUN / 2) / DRIFT_RUN;
}

/* A drift run from `start` that is not wholly inside the drifting range [lo, hi): its draws
 * (one per pair of positions below ctx), the keys of those inside the range. */
static inline void drift_edge(uint16_t *key, const uint16_t *base, uint32_t start, uint32_t lo,
                       uint32_t hi, uint32_t ctx, xoshiro *rng)
{
    uint32_t end = start + DRIFT_RUN < ctx ? start + DRIFT_RUN : ctx;
    for (uint32_t p = start; p < end; p += 2) {
        uint64_t bits = xoshiro_next(rng);
        if (p >= lo && p < hi)
            key[p] = (uint16_t)plain_key(base, p, (uint32_t)(bits >> 48));
        if (p + 1 < end && p + 1 >= lo && p + 1 < hi)
            key[p + 1] = (uint16_t)plain_key(base, p + 1, (uint32_t)(bits >> 32) & 0xFFFFu);
    }
}

/* Moves the keys from step n-1's context to step n's: the token of step n-1 enters, the
 * oldest window position leaves the window (state_enter), then the drift redraws.  Only the
 * keys change: the selection counts them itself (state_select). */
static void state_advance(synth_state *st)
{
    const uint32_t n = st->step + 1;
    const uint32_t ctx = st->P + n;
    /* Positions in [lo, hi) have drifting keys; the others are sinks or in the window. */
    const uint32_t lo = st->sinks, hi = ctx > st->window ? ctx - st->window : 0;
    xoshiro rng = st->rng;
    uint16_t *key = st->key;
    const uint16_t *base = st->base;
    const uint32_t runs = state_enter(st, &rng);

    /* Drift: runs of DRIFT_RUN positions from uniform starts; one 64-bit draw gives a start
     * (32 bits), then each draw two 16-bit noises. */
    for (uint32_t r = 0; r < runs; r++) {
        uint32_t start = below((uint32_t)(xoshiro_next(&rng) >> 32), ctx);
        if (start >= lo && (uint64_t)start + DRIFT_RUN <= hi)
            drift_run(key, base, start, &rng); /* the whole run drifts (nearly always) */
        else
            drift_edge(key, base, start, lo, hi, ctx, &rng);
    }
    st->rng = rng;
    st->step = n;
}

#if KVP_SYNTH_AVX512
/* xoshiro_next in the 64-bit lanes of s[0 .. 3] (lane i: s[j] holds a state's s[j]), the
 * lanes of m only (the others keep their state; their output is not to be used).  *5 and *9
 * as shifts and adds: the same 64-bit products. */
AVX512 static inline __m512i xoshiro8_next(__m512i s[4], __mmask8 m)
{
    const __m512i a = s[1];
    const __m512i x = _mm512_rol_epi64(_mm512_add_epi64(a, _mm512_slli_epi64(a, 2)), 7);
    const __m512i out = _mm512_add_epi64(x, _mm512_slli_epi64(x, 3));
    const __m512i n2 = _mm512_xor_si512(s[2], s[0]), n3 = _mm512_xor_si512(s[3], a);
    const __m512i n1 = _mm512_xor_si512(a, n2), n0 = _mm512_xor_si512(s[0], n3);
    s[0] = _mm512_mask_mov_epi64(s[0], m, n0);
    s[1] = _mm512_mask_mov_epi64(s[1], m, n1);
    s[2] = _mm512_mask_mov_epi64(s[2], m, _mm512_xor_si512(n2, _mm512_slli_epi64(a, 17)));
    s[3] = _mm512_mask_mov_epi64(s[3], m, _mm512_rol_epi64(n3, 45));
    return out;
}

/* Up to eight drift runs wholly inside their ranges, one per lane of drift8, whose keys are
 * still to be written: where (the run's first base and key), and their noises (lane 2c + h:
 * noise[h][8c .. 8c + 7]). */
typedef struct run8 {
    _Alignas(64) uint16_t noise[2][32];
    _Alignas(64) uint64_t base[8], key[8]; /* addresses */
    unsigned lanes;
} run8;

/* drift_run's keys for the lanes of q. */
AVX512 static void run8_write(const run8 *q)
{
    for (unsigned e = q->lanes; e; e &= e - 1) {
        const unsigned i = (unsigned)__builtin_ctz(e);
        const __m128i nz = _mm_load_si128((const __m128i *)(q->noise[i & 1] + 8 * (i >> 1)));
        const __m128i b = _mm_loadu_si128((const __m128i *)(uintptr_t)q->base[i]);
        _mm_storeu_si128((__m128i *)(uintptr_t)q->key[i], plain_keys8(b, nz));
    }
}

/* Runs whose keys wait (drift8): the draws of the next ones go on meanwhile, and the lines
 * of their bases, asked for when their starts are known, arrive in the meantime (eight
 * states' keys and bases, over 1 MB at the study's prompts, are not all in the cache: the
 * bases read at once stalled drift8 on them; the keys' stores do not wait). */
#define RUNS_AHEAD 8u

/* The four noise draws of a run in the lanes of m (all eight when m is full: no mask). */
AVX512 static inline void noise8(__m512i s[4], __mmask8 m, int full, __m512i d[4])
{
    if (full) {
        for (int j = 0; j < 4; j++)
            d[j] = xoshiro8_next(s, 0xFF);
    } else {
        for (int j = 0; j < 4; j++)
            d[j] = xoshiro8_next(s, m);
    }
}

/* The drift of up to eight states' steps together (states_advance): state i's generator in
 * lane i, each drawing exactly what state_advance draws, in the same order: its run's start,
 * then four noises for a run wholly inside the range (drift_run's keys, made per lane from
 * its own draws, RUNS_AHEAD runs later) or, rarely, the lane taken out to drift_edge's
 * scalar draws (once the waiting keys are written: a state's keys change in the order of
 * its runs).  A lane stops drawing after its own runs; lanes n .. 7 draw for nothing.
 * rng[i] is state i's generator, in and out. */
AVX512 static void drift8(synth_state *const *st, uint32_t n, xoshiro *rng, const uint32_t *runs)
{
    _Alignas(64) uint64_t sv[4][8] = {{0}}, vctx[8] = {0}, vlo[8] = {0}, vhi[8] = {0};
    _Alignas(64) uint64_t vruns[8] = {0}, vbase[8] = {0}, vkey[8] = {0};
    run8 ring[RUNS_AHEAD];
    uint32_t most = 0, made = 0, written = 0; /* runs of the ring made, and written */
    for (uint32_t i = 0; i < n; i++) {
        for (int j = 0; j < 4; j++)
            sv[j][i] = rng[i].s[j];
        const uint32_t ctx = st[i]->P + st[i]->step + 1;
        vctx[i] = ctx;
        vlo[i] = st[i]->sinks;
        vhi[i] = ctx > st[i]->window ? ctx - st[i]->window : 0;
        vruns[i] = runs[i];
        vbase[i] = (uintptr_t)st[i]->base;
        vkey[i] = (uintptr_t)st[i]->key;
        most = runs[i] > most ? runs[i] : most;
    }
    __m512i s[4];
    for (int j = 0; j < 4; j++)
        s[j] = _mm512_load_si512((const void *)sv[j]);
    const __m512i c = _mm512_load_si512((const void *)vctx);
    const __m512i lo = _mm512_load_si512((const void *)vlo);
    const __m512i hi = _mm512_load_si512((const void *)vhi);
    const __m512i nruns = _mm512_load_si512((const void *)vruns);
    const __m512i pbase = _mm512_load_si512((const void *)vbase);
    const __m512i pkey = _mm512_load_si512((const void *)vkey);
    const __m512i run = _mm512_set1_epi64(DRIFT_RUN);
    const __mmask8 all = (__mmask8)((1u << n) - 1);
    for (uint32_t r = 0; r < most; r++) {
        /* the lanes with a run r: their starts, below(draw >> 32, ctx) */
        const __mmask8 live = _mm512_cmpgt_epu64_mask(nruns, _mm512_set1_epi64(r));
        const __m512i d = xoshiro8_next(s, live == all ? 0xFF : live);
        const __m512i at = _mm512_srli_epi64(_mm512_mul_epu32(_mm512_srli_epi64(d, 32), c), 32);
        const __mmask8 in = _mm512_mask_cmpge_epu64_mask(live, at, lo) &
                            _mm512_cmple_epu64_mask(_mm512_add_epi64(at, run), hi);
        if (live & ~in) { /* a run at the edge: that lane's draws in scalar */
            _Alignas(64) uint64_t edge[8];
            _mm512_store_si512((void *)edge, at);
            for (; written < made; written++)
                run8_write(&ring[written % RUNS_AHEAD]);
            for (int j = 0; j < 4; j++)
                _mm512_store_si512((void *)sv[j], s[j]);
            for (unsigned e = live & ~in; e; e &= e - 1) {
                const unsigned i = (unsigned)__builtin_ctz(e);
                xoshiro x = {{sv[0][i], sv[1][i], sv[2][i], sv[3][i]}};
                drift_edge(st[i]->key, st[i]->base, (uint32_t)edge[i], (uint32_t)vlo[i],
                           (uint32_t)vhi[i], (uint32_t)vctx[i], &x);
                for (int j = 0; j < 4; j++)
                    sv[j][i] = x.s[j];
            }
            for (int j = 0; j < 4; j++)
                s[j] = _mm512_load_si512((const void *)sv[j]);
        }
        if (!in)
            continue;
        if (made - written == RUNS_AHEAD)
            run8_write(&ring[written++ % RUNS_AHEAD]);
        run8 *q = &ring[made++ % RUNS_AHEAD];
        q->lanes = in;
        const __m512i off = _mm512_add_epi64(at, at); /* bytes */
        _mm512_store_si512((void *)q->base, _mm512_add_epi64(pbase, off));
        _mm512_store_si512((void *)q->key, _mm512_add_epi64(pkey, off));
        for (unsigned e = in; e; e &= e - 1)
            __builtin_prefetch((const void *)(uintptr_t)q->base[__builtin_ctz(e)]);
        /* drift_run's noises, per lane: the high halves of draws 0 and 1 (then 2 and 3) in a
         * 64-bit word, d1's above d0's, then each 32 bits' 16-bit halves swapped */
        __m512i dn[4];
        noise8(s, in, in == all, dn);
        const __m512i lo01 = _mm512_mask_blend_epi32(0x5555, dn[1], _mm512_srli_epi64(dn[0], 32));
        const __m512i hi23 = _mm512_mask_blend_epi32(0x5555, dn[3], _mm512_srli_epi64(dn[2], 32));
        _mm512_store_si512((void *)q->noise[0],
                           _mm512_rol_epi32(_mm512_unpacklo_epi64(lo01, hi23), 16));
        _mm512_store_si512((void *)q->noise[1],
                           _mm512_rol_epi32(_mm512_unpackhi_epi64(lo01, hi23), 16));
    }
    for (; written < made; written++)
        run8_write(&ring[written % RUNS_AHEAD]);
    for (int j = 0; j < 4; j++)
        _mm512_store_si512((void *)sv[j], s[j]);
    for (uint32_t i = 0; i < n; i++)
        for (int j = 0; j < 4; j++)
            rng[i].s[j] = sv[j][i];
}
#endif

/* state_advance of st[0 .. n) (n <= 8), each by one step, with the same draws and keys: with
 * AVX-512 their drifts together (drift8: a state's drift is a chain of draws, each some
 * dozen scalar operations, where eight states' draws are as many vector ones). */
static void states_advance(synth_state *const *st, uint32_t n)
{
#if KVP_SYNTH_AVX512
    if (n >= 2 && st[0]->avx512) {
        xoshiro rng[8];
        uint32_t runs[8];
        for (uint32_t i = 0; i < n; i++) {
            rng[i] = st[i]->rng;
            runs[i] = state_enter(st[i], &rng[i]);
        }
        drift8(st, n, rng, runs);
        for (uint32_t i = 0; i < n; i++) {
            st[i]->rng = rng[i];
            st[i]->step++;
        }
        return;
    }
#endif
    for (uint32_t i = 0; i < n; i++)
        state_advance(st[i]);
}

/* Brings the keys to step n (steps are asked in order; either callback may come first). */
static int state_goto(synth_state *st, uint32_t n, kvp_error *err)
{
    if (n >= st->N)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: step %u asked of a trace of %u "
                             "steps", n, st->N);
    if (n < st->step)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: step %u asked after step %u (steps "
                             "only go forward)", n, st->step);
    state_ready(st);
    while (st->step < n)
        state_advance(st);
    return 0;
}

/* out[j] = key_score(key[pos[j]]) for j < n.  With SSE2 two at a time, each operation the
 * scalar one's (int to double, the product by 1 / 65535, double to float: the same values),
 * and without the scalar loop's chain: each scalar conversion writes only the low part of
 * its register, so it waits for the last one. */
static void fill_scores(float *out, const uint32_t *pos, uint32_t n, const uint16_t *key)
{
    uint32_t j = 0;
#if KVP_SYNTH_SSE2
    const __m128d inv = _mm_set1_pd(KEY_INV);
    for (; j + 2 <= n; j += 2) {
        __m128i k2 = _mm_unpacklo_epi32(_mm_cvtsi32_si128(key[pos[j]]),
                                        _mm_cvtsi32_si128(key[pos[j + 1]]));
        __m128 s2 = _mm_cvtpd_ps(_mm_mul_pd(_mm_cvtepi32_pd(k2), inv));
        _mm_storel_epi64((__m128i *)(out + j), _mm_castps_si128(s2));
    }
#endif
    for (; j < n; j++)
        out[j] = key_score(key[pos[j]]);
}

/* The band of state_select: its half-width at first, and its width at most (in bins). */
#define BAND_INIT 512u
#define BAND_MAX 8192u

/* The count of keys >= hi, and the keys in the band [hi - w, hi) counted by value into
 * bandh[0 .. w).  One pass over the keys lists the band's positions in st->pos (scratch
 * here: the selection fills it afterwards; st->nband of them, in position order) and, unless
 * bits is NULL, writes the keys >= hi as bits (bits[(p >> 6) * stride], every word below
 * (ctx + 63) / 64): where the threshold falls in the band, the set is those bits and some of
 * the listed keys (synth_counts), and no second pass over the keys is needed.  Without a branch:
 * with SSE2 8 keys at a time as in state_select (key <= hi - 1 where key minus hi - 1
 * saturates to 0; in the band where key - lo, wrapping, minus w - 1 saturates to 0), a word's
 * 64 keys at a time; then the band's keys are counted from the list.  hi <= KEY_COUNT,
 * 1 <= w <= hi. */
static uint32_t band_count(synth_state *st, uint32_t ctx, uint32_t hi, uint32_t w,
                           uint32_t *bandh, uint64_t *bits, size_t stride)
{
    const uint16_t *key = st->key;
    uint32_t *pos = st->pos;
    const uint32_t lo = hi - w, W = (ctx + 63) / 64;
    uint32_t above = 0, nb = 0, wd = 0;
#if KVP_SYNTH_AVX512
    if (st->avx512)
        above = band_avx512(key, ctx, hi, lo, w, pos, &nb, bits, stride, &wd);
#endif
#if KVP_SYNTH_SSE2
    const __m128i vhi1 = _mm_set1_epi16((short)(hi - 1)), vlo = _mm_set1_epi16((short)lo);
    const __m128i vw1 = _mm_set1_epi16((short)(w - 1)), zero = _mm_setzero_si128();
#endif
    for (; wd < W; wd++) {
        const uint32_t end = ctx - wd * 64 < 64 ? ctx : wd * 64 + 64;
        uint32_t p = wd * 64;
        uint64_t x = 0; /* the word's keys >= hi */
#if KVP_SYNTH_SSE2
        for (; p + 8 <= end; p += 8) {
            __m128i k8 = _mm_loadu_si128((const __m128i *)(key + p));
            __m128i le = _mm_cmpeq_epi16(_mm_subs_epu16(k8, vhi1), zero);
            __m128i in = _mm_cmpeq_epi16(_mm_subs_epu16(_mm_sub_epi16(k8, vlo), vw1), zero);
            unsigned both = (unsigned)_mm_movemask_epi8(_mm_packs_epi16(le, in));
            x |= (uint64_t)(~both & 0xffu) << (p & 63);
            __m128i vp = _mm_set1_epi32((int)p);
            const __m128i *row = (const __m128i *)st->lut[both >> 8].off;
            _mm_storeu_si128((__m128i *)(pos + nb), _mm_add_epi32(vp, _mm_load_si128(row)));
            _mm_storeu_si128((__m128i *)(pos + nb + 4),
                             _mm_add_epi32(vp, _mm_load_si128(row + 1)));
            nb += st->lut[both >> 8].count;
        }
#endif
        for (; p < end; p++) {
            x |= (uint64_t)(key[p] >= hi) << (p & 63);
            pos[nb] = p;
            nb += (uint32_t)key[p] - lo < w;
        }
        above += (uint32_t)__builtin_popcountll(x);
        if (bits)
            bits[wd * stride] = x;
    }
    memset(bandh, 0, w * sizeof *bandh);
    for (uint32_t i = 0; i < nb; i++)
        bandh[key[pos[i]] - lo]++;
    st->nband = nb;
    return above;
}

/* The k-th highest of the keys (1 <= k <= ctx), and in *above the count of keys above it.
 * From one step to the next it moves by tens of keys, at times by a couple of hundred, so
 * the keys are counted in a band of 2 half around the last one (band_count); a band that
 * misses it (the first step, or a jump) costs a full count, and the band doubles.  With bits
 * (not NULL), *in_band is 1 where the band held it: the bits are then band_count's (the keys
 * above the band), and st->pos lists the band's; 0 where they are not to be used. */
static uint32_t state_threshold(synth_state *st, uint32_t k, uint32_t *above_thr,
                                uint64_t *bits, size_t stride, int *in_band)
{
    const uint32_t ctx = st->P + st->step;
    const uint16_t *key = st->key;
    *in_band = 0;
    if (st->half > 0) {
        const uint32_t w = 2 * st->half;
        uint32_t hi = st->thr + st->half;
        hi = hi < w ? w : hi > KEY_COUNT ? KEY_COUNT : hi;
        uint32_t above = band_count(st, ctx, hi, w, st->bandh, bits, stride);
        for (uint32_t v = w; above < k && v-- > 0;) {
            if (above + st->bandh[v] >= k) {
                *above_thr = above;
                *in_band = 1;
                return hi - w + v;
            }
            above += st->bandh[v];
        }
        if (2 * w <= BAND_MAX)
            st->half = w;
    } else {
        st->half = BAND_INIT;
    }
    uint32_t *hist = st->hist;
    memset(hist, 0, (size_t)KEY_COUNT * sizeof *hist);
    for (uint32_t p = 0; p < ctx; p++)
        hist[key[p]]++;
    uint32_t thr = KEY_COUNT - 1, above = 0;
    while (above + hist[thr] < k)
        above += hist[thr--];
    *above_thr = above;
    return thr;
}

/* state_threshold through the layer's memo: a step whose threshold for k is known takes it
 * (the keys are the same whichever cursor brought them there), with *in_band 0 (no band
 * counted); else it is found and kept.  st->thr is the step's threshold either way. */
static uint32_t threshold_of(synth_state *st, uint32_t k, uint32_t *above_thr, uint64_t *bits,
                             size_t stride, int *in_band)
{
    thr_memo *m = st->memo ? &st->memo[st->step] : NULL;
    if (m && m->k == k) {
        *above_thr = m->above;
        *in_band = 0;
        st->thr = m->thr;
        return m->thr;
    }
    const uint32_t thr = state_threshold(st, k, above_thr, bits, stride, in_band);
    st->thr = thr;
    if (m) {
        m->thr = (uint16_t)thr;
        m->above = *above_thr;
        m->k = k;
    }
    return thr;
}

/* Top-k of the current keys: the k-th highest key thr (state_threshold), one forward pass
 * taking every key > thr and the first k - (their count) keys == thr (ties go to the lower
 * positions), so exactly k, then the scores (unless sets only).  The set is
 * written to pos[0 .. k) and score[0 .. k); pos holds at least P + step entries (the forward
 * pass writes up to there). */
static void state_select(synth_state *st, uint32_t k, uint32_t *pos, float *score)
{
    const uint32_t ctx = st->P + st->step;
    const size_t nbytes = (size_t)(ctx + 63) / 64 * 8;
    unsigned char *bits = (unsigned char *)st->bits;
    if (k == 0) {
        memset(bits, 0, nbytes);
        return;
    }
    uint32_t above;
    int in_band;
    const uint32_t thr = threshold_of(st, k, &above, NULL, 0, &in_band);

    const uint16_t *key = st->key;
    uint32_t m = 0, p = 0, t = k - above; /* the ties still to take */
#if KVP_SYNTH_AVX512
    if (st->avx512)
        m = take_ge_avx512(key, ctx, thr, &t, pos, bits, &p);
#endif
#if KVP_SYNTH_SSE2
    /* 8 keys at a time: key >= thr where thr - key saturates to 0 (the low 8 bits of the
     * movemask; the high 8 are the ties, for ties_over); the 8-bit mask picks the
     * offsets of the taken keys from st->lut, stored whole (the set never outruns p, and
     * pos holds P + N entries, so the 8 stores stay inside it). */
    const __m128i vthr = _mm_set1_epi16((short)thr), zero = _mm_setzero_si128();
    for (; p + 8 <= ctx; p += 8) {
        __m128i k8 = _mm_loadu_si128((const __m128i *)(key + p));
        __m128i ge = _mm_cmpeq_epi16(_mm_subs_epu16(vthr, k8), zero);
        unsigned both = (unsigned)_mm_movemask_epi8(_mm_packs_epi16(ge, _mm_cmpeq_epi16(k8, vthr)));
        unsigned mask = both & 0xffu;
        if (both >> 8)
            mask &= ~(unsigned)ties_over(both >> 8, &t);
        bits[p / 8] = (unsigned char)mask; /* x86: little-endian, as the words */
        __m128i vp = _mm_set1_epi32((int)p);
        const __m128i *row = (const __m128i *)st->lut[mask].off;
        _mm_storeu_si128((__m128i *)(pos + m), _mm_add_epi32(vp, _mm_load_si128(row)));
        _mm_storeu_si128((__m128i *)(pos + m + 4), _mm_add_epi32(vp, _mm_load_si128(row + 1)));
        m += st->lut[mask].count;
    }
#endif
    memset(bits + p / 8, 0, nbytes - p / 8);
    for (; p < ctx; p++) {
        const uint32_t tie = key[p] == thr && t > 0, take = key[p] > thr || tie;
        t -= tie;
        pos[m] = p;
        st->bits[p / 64] |= (uint64_t)take << (p % 64);
        m += take;
    }
    if (st->sets_only)
        return;
    /* With AVX-512 the scores of the whole words from the bits just made, 16 keys at a time
     * (the same values as fill_scores'), and those of the last word's positions from pos. */
    uint32_t j = 0;
#if KVP_SYNTH_AVX512
    if (st->avx512) {
        uint32_t w;
        j = bit_scores_avx512(key, ctx, st->bits, 1, score, &w);
    }
#endif
    fill_scores(score + j, pos + j, k - j, key);
}

/* The set of threshold thr with t ties to take as bits: bit p & 63 of bits[(p >> 6) * stride]
 * for every position p < ctx with key[p] > thr and for the first t with key[p] == thr (ties
 * go to the lower positions), every word below (ctx + 63) / 64 written (zeros too). */
static void ge_bits(const synth_state *st, uint32_t ctx, uint32_t thr, uint32_t t,
                    uint64_t *bits, size_t stride)
{
    const uint32_t W = (ctx + 63) / 64;
    const uint16_t *key = st->key;
    uint32_t w = 0;
#if KVP_SYNTH_AVX512
    if (st->avx512)
        ge_bits_avx512(key, ctx, thr, &t, bits, stride, &w);
#endif
#if KVP_SYNTH_SSE2
    /* 8 keys at a time, as state_select's SSE2 pass: key >= thr where thr - key saturates
     * to 0, and the ties (key == thr) for ties_over */
    const __m128i vthr = _mm_set1_epi16((short)thr), zero = _mm_setzero_si128();
    for (; (w + 1) * 64 <= ctx; w++) {
        uint64_t x = 0, eq = 0;
        for (uint32_t e = 0; e < 64; e += 8) {
            __m128i k8 = _mm_loadu_si128((const __m128i *)(key + (size_t)w * 64 + e));
            __m128i ge = _mm_cmpeq_epi16(_mm_subs_epu16(vthr, k8), zero);
            uint64_t both =
                (uint64_t)_mm_movemask_epi8(_mm_packs_epi16(ge, _mm_cmpeq_epi16(k8, vthr)));
            x |= (both & 0xffu) << e;
            eq |= (both >> 8) << e;
        }
        if (eq)
            x &= ~ties_over(eq, &t);
        bits[w * stride] = x;
    }
#endif
    for (; w < W; w++) {
        uint64_t x = 0;
        for (uint32_t p = w * 64; p < ctx && p < (w + 1) * 64; p++) {
            const uint32_t tie = key[p] == thr && t > 0;
            t -= tie;
            x |= (uint64_t)(key[p] > thr || tie) << (p & 63);
        }
        bits[w * stride] = x;
    }
}

/* state_select's set as bits: bit p & 63 of bits[(p >> 6) * stride] for every position p of
 * the set, every word below (ctx + 63) / 64 written (zeros too), and, unless sets only, its
 * scores ascending by position into score[0 .. k).  The same threshold and the same keys
 * taken (the ties at the lowest positions), so the same set. */
static void state_select_bits(synth_state *st, uint32_t k, uint64_t *bits, size_t stride,
                              float *score)
{
    const uint32_t ctx = st->P + st->step, W = (ctx + 63) / 64;
    if (k == 0) {
        for (uint32_t w = 0; w < W; w++)
            bits[w * stride] = 0;
        return;
    }
    uint32_t above;
    int in_band;
    const uint32_t thr = threshold_of(st, k, &above, NULL, 0, &in_band);
    ge_bits(st, ctx, thr, k - above, bits, stride);
    if (st->sets_only)
        return;
    const uint16_t *key = st->key;
    uint32_t j = 0, w = 0, pw[64]; /* a word's positions, for fill_scores */
#if KVP_SYNTH_AVX512
    if (st->avx512)
        j = bit_scores_avx512(key, ctx, bits, stride, score, &w);
#endif
    for (; w < W; w++) {
        uint32_t q = 0;
        for (uint64_t x = bits[w * stride]; x; x &= x - 1)
            pw[q++] = w * 64 + (uint32_t)__builtin_ctzll(x);
        fill_scores(score + j, pw, q, key);
        j += q;
    }
}

#if KVP_SYNTH_AVX512
/* The set bits of w[0 .. n) (the popcnt instruction, which AVX-512 CPUs have). */
AVX512 static uint32_t ones_avx512(const uint64_t *w, uint32_t n)
{
    uint64_t c = 0;
    for (uint32_t i = 0; i < n; i++)
        c += (uint64_t)__builtin_popcountll(w[i]);
    return (uint32_t)c;
}
#endif

static uint32_t ones(const synth_state *st, const uint64_t *w, uint32_t n)
{
#if KVP_SYNTH_AVX512
    if (st->avx512)
        return ones_avx512(w, n);
#else
    (void)st;
#endif
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++)
        c += (uint32_t)__builtin_popcountll(w[i]);
    return c;
}

/* For j < nb, h[j] = the set's positions below below[j] (capped at ctx), the set being the
 * bits of st->bits (stride 1) and, when in_band, also the entries of band_count's list of
 * the band's keys with key > thr and the first t with key == thr.  The bounds taken in
 * ascending order, each one's counts carried on from the last one's (the list ascends by
 * position too). */
static void counts_below(const synth_state *st, uint32_t ctx, const uint32_t *below,
                         uint32_t nb, int in_band, uint32_t thr, uint32_t t, uint32_t *h)
{
    const uint16_t *key = st->key;
    const uint32_t *pos = st->pos;
    const uint32_t nband = in_band ? st->nband : 0;
    uint32_t w = 0, word_ones = 0, i = 0, taken = 0;
    uint64_t done = 0; /* the bounds counted (nb <= 64) */
    for (uint32_t r = 0; r < nb; r++) {
        uint32_t j = 0; /* the lowest bound not yet counted */
        while (done >> j & 1)
            j++;
        for (uint32_t q = j + 1; q < nb; q++)
            if (!(done >> q & 1) && below[q] < below[j])
                j = q;
        done |= 1ull << j;
        const uint32_t b = below[j] < ctx ? below[j] : ctx;
        word_ones += ones(st, st->bits + w, b / 64 - w);
        w = b / 64;
        for (; i < nband && pos[i] < b; i++) {
            const uint32_t p = pos[i], tie = key[p] == thr && t > 0;
            t -= tie;
            taken += key[p] > thr || tie;
        }
        const uint64_t part = b % 64 ? st->bits[w] & ((1ull << (b % 64)) - 1) : 0;
        h[j] = word_ones + (uint32_t)__builtin_popcountll(part) + taken;
    }
}

/* The size *k of step n's set and, for j < nb, how many of its positions lie below below[j]
 * (h[j]), without listing the set (src/engine/fast.c needs no more).  The threshold as
 * state_select's; where the band holds it, the counts come from band_count's bits of the
 * keys above the band and its list of the band's keys (those > thr and the first ties), so no
 * second pass over the keys; else from the set's bits (ge_bits).  nb = 0: the size alone,
 * kvp_access_k of the context, and the keys are not brought to step n (state_goto brings
 * them there when a later step asks). */
static int synth_counts(void *state, uint32_t n, const uint32_t *below, uint32_t nb,
                        uint32_t *k, uint32_t *h, kvp_error *err)
{
    synth_state *st = state;
    if (nb == 0) {
        if (n >= st->N || n < st->step)
            return state_goto(st, n, err); /* its error */
        *k = kvp_access_k(st->budget, st->P + n);
        return 0;
    }
    int rc = state_goto(st, n, err);
    if (rc < 0)
        return rc;
    const uint32_t ctx = st->P + n;
    *k = kvp_access_k(st->budget, ctx);
    if (*k == 0) {
        memset(h, 0, nb * sizeof *h);
        return 0;
    }
    uint32_t above;
    int in_band;
    const uint32_t thr = threshold_of(st, *k, &above, st->bits, 1, &in_band);
    if (!in_band)
        ge_bits(st, ctx, thr, *k - above, st->bits, 1);
    counts_below(st, ctx, below, nb, in_band, thr, *k - above, h);
    return 0;
}

static void synth_close(void *state)
{
    synth_state *st = state;
    if (!st)
        return;
    free(st->base);
    free(st->key);
    free(st->pos);
    free(st->bits);
    free(st->score);
    free(st->hist);
    free(st->bandh);
    free(st->lut);
    free(st);
}

static int synth_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                      kvp_error *err)
{
    const synth_impl *im = t->impl;
    *state = NULL;
    int rc = kvp_budget_check(budget, t->name, err);
    if (rc < 0)
        return rc;
    synth_state *st = calloc(1, sizeof *st);
    if (!st)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", t->name);
    st->im = im;
    st->layer = layer;
    st->budget = budget;
    st->P = im->sp.prompt;
    st->N = im->sp.steps;
    st->sinks = im->sp.sinks;
    st->window = im->sp.window;

    /* The layer's (and head's) own stream and hash salts, from (seed, layer, head) only. */
    stream_id id = stream_of(&im->sp, layer);
    uint64_t x = id.rng_seed;
    for (int i = 0; i < 4; i++)
        st->rng.s[i] = splitmix64(&x);
    st->salt = id.salt;
    st->heavy_salt = id.heavy_salt;
    st->local = id.local;
    st->drift_q32 = id.local ? 0 : im->drift_q32;
    st->memo = im->memo ? im->memo + (size_t)layer * st->N : NULL;

    size_t cap = (size_t)st->P + st->N; /* checked against SIZE_MAX at trace creation */
    st->base = malloc(cap * sizeof *st->base);
    st->key = malloc(cap * sizeof *st->key);
    st->pos = malloc(cap * sizeof *st->pos);
    st->bits = malloc((cap / 64 + 1) * sizeof *st->bits);
    st->score = malloc(cap * sizeof *st->score);
    st->hist = malloc((size_t)KEY_COUNT * sizeof *st->hist);
    st->bandh = malloc(BAND_MAX * sizeof *st->bandh);
    st->lut = aligned_alloc(16, 256 * sizeof *st->lut);
    if (!st->base || !st->key || !st->pos || !st->bits || !st->score || !st->hist ||
        !st->bandh || !st->lut) {
        synth_close(st);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for layer %u", t->name,
                             layer);
    }
    mask_rows_fill(st->lut);
#if KVP_SYNTH_AVX512
    st->avx512 = avx512_usable();
#endif
    *state = st;
    return 0;
}

/* a's record of step n of st's layer: k reads, their positions pos (NULL when they went out
 * as bits only) and the set as bits (NULL unless the access's own format), scores unless
 * sets only. */
static void access_of(const synth_state *st, kvp_access *a, uint32_t n, uint32_t k,
                      const uint32_t *pos, const uint64_t *bits, const float *score)
{
    a->step = n;
    a->layer = st->layer;
    a->context = st->P + n;
    a->count = k;
    a->pos = pos;
    a->bits = bits;
    a->score = st->sets_only ? NULL : score;
}

static int synth_step_into(void *state, uint32_t n, kvp_access *a, uint32_t *pos, float *score,
                           kvp_error *err)
{
    synth_state *st = state;
    int rc = state_goto(st, n, err);
    if (rc < 0)
        return rc;
    const uint32_t k = kvp_access_k(st->budget, st->P + n);
    state_select(st, k, pos, score);
    access_of(st, a, n, k, pos, st->bits, score);
    return 0;
}

/* The same, the set as bits into the caller's strided words (bits[(p >> 6) * stride]), not
 * in the access's own format: a->pos and a->bits are NULL. */
static int synth_step_bits(void *state, uint32_t n, kvp_access *a, uint64_t *bits,
                           size_t stride, float *score, kvp_error *err)
{
    synth_state *st = state;
    int rc = state_goto(st, n, err);
    if (rc < 0)
        return rc;
    const uint32_t k = kvp_access_k(st->budget, st->P + n);
    state_select_bits(st, k, bits, stride, score);
    access_of(st, a, n, k, NULL, NULL, score);
    return 0;
}

static int synth_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    synth_state *st = state;
    return synth_step_into(state, n, a, st->pos, st->score, err);
}

static int synth_scores(void *state, uint32_t n, float *out, kvp_error *err)
{
    synth_state *st = state;
    int rc = state_goto(st, n, err);
    if (rc < 0)
        return rc;
    const uint32_t ctx = st->P + n;
    for (uint32_t p = 0; p < ctx; p++)
        out[p] = key_score(st->key[p]);
    return 0;
}

static void synth_sets_only(void *state)
{
    synth_state *st = state;
    st->sets_only = 1;
}

static void synth_destroy(kvp_trace *t)
{
    synth_impl *im = t->impl;
    free(im->memo);
    free(im);
    free(t);
}

static const kvp_trace_vt SYNTH_VT = {"synthetic", synth_open,     synth_step,
                                      synth_close, synth_scores,   synth_destroy,
                                      synth_sets_only, NULL,          synth_step_into,
                                      NULL};

int kvp_cursor_writes_bits(const kvp_cursor *c)
{
    return c->t->vt == &SYNTH_VT;
}

int kvp_cursor_next_bits(kvp_cursor *c, kvp_access *a, uint64_t *bits, size_t stride,
                         float *score, kvp_error *err)
{
    if (c->next >= c->t->steps)
        return 0;
    int rc = synth_step_bits(c->state, c->next, a, bits, stride, score, err);
    if (rc < 0)
        return rc;
    c->next++;
    return 1;
}

int kvp_cursor_next_counts(kvp_cursor *c, const uint32_t *below, uint32_t nb, uint32_t *k,
                           uint32_t *h, kvp_error *err)
{
    if (nb > 64)
        return kvp_error_set(err, KVP_EINVAL, "%s: %u bounds to count below (at most 64)",
                             c->t->name, nb);
    if (c->next >= c->t->steps)
        return 0;
    int rc = synth_counts(c->state, c->next, below, nb, k, h, err);
    if (rc < 0)
        return rc;
    c->next++;
    return 1;
}

/* Fewer cursors than this are asked one at a time: drift8 costs the same for any number of
 * lanes, and with four its drift was no cheaper than four scalar ones (docs/PERF.md §42). */
#define TOGETHER_MIN 6u

int kvp_cursors_together(kvp_cursor *const *c, uint32_t n)
{
#if KVP_SYNTH_AVX512
    if (n < TOGETHER_MIN || !avx512_usable())
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!kvp_cursor_writes_bits(c[i]))
            return 0;
    return 1;
#else
    (void)c;
    (void)n;
    return 0;
#endif
}

int kvp_cursor_next_bits_many(kvp_cursor *const *c, uint32_t n, kvp_access *a,
                              uint64_t *const *bits, size_t stride, float *const *score,
                              kvp_error *err)
{
    for (uint32_t i = 0; i < n; i++)
        if (c[i]->next >= c[i]->t->steps)
            return 0;
    for (uint32_t i0 = 0; i0 < n; i0 += 8) {
        const uint32_t g = n - i0 < 8 ? n - i0 : 8;
        /* the states a step behind theirs advanced together (any further way to go, and
         * the checks of the step asked, are synth_step_bits') */
        synth_state *due[8];
        uint32_t m = 0;
        for (uint32_t i = i0; i < i0 + g; i++) {
            synth_state *st = c[i]->state;
            state_ready(st);
            if (st->step < c[i]->next && c[i]->next < st->N)
                due[m++] = st;
        }
        states_advance(due, m);
        for (uint32_t i = i0; i < i0 + g; i++) {
            int rc = synth_step_bits(c[i]->state, c[i]->next, &a[i], bits[i], stride,
                                     score ? score[i] : NULL, err);
            if (rc < 0)
                return rc;
            c[i]->next++;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Public                                                                                    */

void kvp_synth_default(kvp_synth_params *sp, const kvp_scenario *sc)
{
    memset(sp, 0, sizeof *sp);
    sp->prompt = sc->prompt;
    sp->steps = sc->steps;
    sp->layers = sc->layers;
    sp->budget = kvp_scenario_budget(sc);
    sp->variation = sc->variation;
    sp->seed = sc->seed;
    /* sinks, window, drift, heavy_share: 0 = the preset's value */
}

int kvp_trace_synthetic(kvp_trace **out, const kvp_synth_params *sp, kvp_error *err)
{
    *out = NULL;
    if ((unsigned)sp->variation >= NPRESETS)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: variation %d is not low, actual or "
                             "high", (int)sp->variation);
    if (sp->prompt == 0)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: prompt must be at least 1 token");
    if (sp->steps == 0)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: steps must be at least 1");
    if (sp->layers == 0)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: layers must be at least 1");
    if ((uint64_t)sp->prompt + sp->steps > UINT32_MAX ||
        (uint64_t)sp->prompt + sp->steps > SIZE_MAX / sizeof(uint32_t))
        return kvp_error_set(err, KVP_ERANGE, "synthetic: prompt %u + steps %u positions do "
                             "not fit 32 bits", sp->prompt, sp->steps);
    int rc = kvp_budget_check(sp->budget, "synthetic", err);
    if (rc < 0)
        return rc;
    if (!(sp->drift >= 0.0 && sp->drift <= 1.0))
        return kvp_error_set(err, KVP_EINVAL, "synthetic: drift %g is not in [0, 1] "
                             "(0 = the preset's)", sp->drift);
    if (!(sp->heavy_share >= 0.0 && sp->heavy_share < 1.0))
        return kvp_error_set(err, KVP_EINVAL, "synthetic: heavy_share %g is not in [0, 1) "
                             "(0 = the preset's)", sp->heavy_share);
    if (sp->heads > KVP_SYNTH_HEADS_MAX)
        return kvp_error_set(err, KVP_EINVAL, "synthetic: heads %u is over %u", sp->heads,
                             KVP_SYNTH_HEADS_MAX);
    if (sp->head >= (sp->heads > 1 ? sp->heads : 1))
        return kvp_error_set(err, KVP_EINVAL, "synthetic: head %u of a trace of %u head%s",
                             sp->head, sp->heads, sp->heads == 1 ? "" : "s");
    if (!(sp->retrieval_share >= 0.0 && sp->retrieval_share <= 1.0))
        return kvp_error_set(err, KVP_EINVAL, "synthetic: retrieval_share %g is not in [0, 1] "
                             "(0 = the published default)", sp->retrieval_share);

    const synth_preset *pr = &PRESETS[sp->variation];
    synth_impl *im = calloc(1, sizeof *im);
    kvp_trace *t = calloc(1, sizeof *t);
    if (!im || !t) {
        free(im);
        free(t);
        return kvp_error_set(err, KVP_ENOMEM, "synthetic: out of memory");
    }
    im->sp = *sp;
    if (!im->sp.sinks)
        im->sp.sinks = pr->sinks;
    if (!im->sp.window)
        im->sp.window = pr->window;
    if (im->sp.drift == 0.0)
        im->sp.drift = pr->drift;
    if (im->sp.heavy_share == 0.0)
        im->sp.heavy_share = pr->heavy_share;
    /* Fixed point once, here: per-step arithmetic is integer. */
    im->drift_q32 = (uint64_t)(im->sp.drift * Q32);
    im->heavy_q32 = (uint32_t)(im->sp.heavy_share * Q32);
    /* Untouched pages cost nothing; without them each cursor finds its thresholds itself. */
    if ((uint64_t)sp->steps * sp->layers <= SIZE_MAX / sizeof *im->memo)
        im->memo = calloc((size_t)sp->steps * sp->layers, sizeof *im->memo);

    t->vt = &SYNTH_VT;
    t->steps = sp->steps;
    t->layers = sp->layers;
    t->prompt = sp->prompt;
    t->is_bool = 0;
    if (sp->heads > 1)
        snprintf(t->name, sizeof t->name, "synthetic:%s:head%u/%u", pr->name, sp->head,
                 sp->heads);
    else
        snprintf(t->name, sizeof t->name, "synthetic:%s", pr->name);
    t->impl = im;
    *out = t;
    return 0;
}
