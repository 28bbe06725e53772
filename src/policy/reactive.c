/*
 * `reactive`: LRU over blocks of g tokens (docs/MODEL.md §5; docs/POLICIES.md).  Rule: the blocks
 * read and the new block go to HBM, evicting the least recently used resident blocks; when
 * they alone are more than the slots, the new block and the read blocks of highest score are
 * kept.  Why: the classic online policy, which needs only the reads so far.
 *
 * The LRU order: the resident blocks stamped at the last RECENT steps as one bitset a step,
 * and the older ones in a queue of (block, stamp) entries in stamping order, the least
 * recently used live entry at the head; why that is LRU order, and what it replaced for
 * speed: docs/POLICIES.md, "reactive".
 */
#include "policy/policy.h"
#include "base/error.h"
#include "base/select.h"

#include "base/simd.h"
#include "trace/trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { REACTIVE_G }; /* index into reactive_params */

static const kvp_policy_param reactive_params[] = {
    {"g", 1, 1, 65536, 1, "block size in tokens"},
};

/* The band of the overflow selection (select_kept): its first half-width, as a fraction
 * 1 / BAND_INIT of the threshold score, and the number of entries it aims to hold. */
#define BAND_INIT 64.0
#define BAND_TARGET 512u

/* On x86-64 with GCC or clang the lists of a bitset's blocks have an AVX-512 form, chosen at
 * run time (as the generator's, src/trace/synth.c; KVPLACE_SSE2_ONLY turns it off): the
 * lists are the same. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(KVP_NO_SIMD)
#define REACTIVE_AVX512 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,popcnt")))
#else
#define REACTIVE_AVX512 0
#endif

/* Stamps are held as step + 1, so that 0 is "never accessed" (oldest of all, docs/MODEL.md §5). */
/* Queue capacity in blocks (>= 2).  A larger queue is compacted less often, and most of its
 * entries are then passed over at the head (one check each) instead of copied and checked
 * again: with 2, a third of the reactive step went to compaction (docs/PERF.md). */
#define QUEUE_FACTOR 8u
#define NEVER 0u
/* Steps whose stamped blocks are held as bitsets (>= 2): a block read again within them leaves
 * its bitset by one AND-NOT a word for 64 blocks, where a queue entry went stale and cost a
 * stamp look-up at the head (docs/PERF.md §32). */
#define RECENT 4u
/* The stamp of a block whose sequence finished (docs/MODEL.md "Streams"): no entry holds it,
 * so its entries are stale. */
#define GONE UINT32_MAX

typedef struct lru_entry {
    uint32_t block, stamp;
} lru_entry;

typedef struct reactive_state {
    uint32_t nblocks, nwords; /* nwords: 64-block words of a bitset */
    /* per block: the stamp (+1) of its queue entry, set when it goes to the queue and
     * changed when the block is read again (or freed, GONE), which makes the entry stale */
    uint32_t *stamp;
    lru_entry *queue;      /* cap entries; the queue is queue[head .. tail) */
    size_t head, tail, cap;
    uint32_t nlist;        /* resident blocks */
    /* recent + (m % RECENT) nwords: the resident blocks of stamp m, for the last RECENT
     * stamps (rstamp[m % RECENT] == m; 0, no stamp); every older resident block has a live
     * queue entry */
    uint64_t *recent;
    uint32_t rstamp[RECENT];
    uint64_t *res;         /* nwords: the resident blocks */
    uint64_t *rbits;       /* nwords: the blocks read at this step */
    uint64_t *kbits;       /* nwords: the blocks kept (overflow case) */
    uint64_t *abits;       /* nwords + 3: band_bits_avx512's flags, a read entry a bit */
    /* Several streams (band_view): the band's flags, nwords + 3; each stream's above and
     * band flags deposited at its positions, 2 (nwords + 64) words */
    uint64_t *ibits, *vab;
    double centre, width;  /* the overflow selection's band: last threshold, half-width */
    double *bscore;        /* nblocks entries: the band's scores, with 1-token blocks */
    uint32_t *idx;         /* nblocks entries: the selection's scratch, the blocks to promote */
    uint32_t *down;        /* nblocks entries: the blocks to demote */
    uint64_t rng;          /* pivot choice of the selection */
    int wide;              /* the AVX-512 form of the lists */
    int band_wide;         /* the AVX-512 form of the band pass (and BMI2) */
} reactive_state;

static uint32_t reactive_block_tokens(const double *param, const kvp_scenario *sc)
{
    (void)sc;
    return (uint32_t)param[REACTIVE_G];
}

static int entry_live(const reactive_state *st, lru_entry e)
{
    return st->stamp[e.block] == e.stamp;
}

/* Room for `more` appends: if the tail would pass the end, the live entries move to the
 * front, in order.  cap = QUEUE_FACTOR nblocks + 2 and live entries <= nblocks, so that leaves
 * room for at least nblocks + 2 >= more, and a compaction (O(cap)) comes at most once per
 * (QUEUE_FACTOR - 1) nblocks + 2 appends: O(1) amortised per append. */
static void queue_reserve(reactive_state *st, size_t more)
{
    if (st->tail + more <= st->cap)
        return;
    size_t w = 0;
    for (size_t i = st->head; i < st->tail; i++)
        if (entry_live(st, st->queue[i]))
            st->queue[w++] = st->queue[i];
    st->head = 0;
    st->tail = w;
}

/* Stamps block b with the step's stamp and appends it; the caller has reserved the room. */
static void queue_append(reactive_state *st, uint32_t b, uint32_t stamp)
{
    st->stamp[b] = stamp;
    st->queue[st->tail++] = (lru_entry){b, stamp};
}

static uint64_t *recent_of(const reactive_state *st, uint32_t m)
{
    return st->recent + (size_t)(m % RECENT) * st->nwords;
}

static inline uint64_t bit_of(uint32_t b) { return 1ull << (b & 63); }

/* Set bits in x, without the library call __builtin_popcountll makes on a baseline x86-64
 * build (no -mpopcnt). */
static inline uint32_t popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* Appends the set bits of word w of a bitset to out[n ..], as blocks, ascending; returns the
 * new count.  The first 4 without a branch (an entry stored for each, kept if the word had
 * the bit: out has 4 entries of room past the list), a loop for the rest: most words of the
 * overflow step's lists hold a few bits, and a loop's exit was mispredicted once a word. */
static inline uint32_t list_bits(uint64_t x, uint32_t w, uint32_t *out, uint32_t n)
{
    if (!x)
        return n;
    for (uint32_t j = 0; j < 4; j++) {
        out[n] = w * 64 + (uint32_t)__builtin_ctzll(x | 1ull << 63); /* x = 0: not kept */
        n += x != 0;
        x &= x - 1;
    }
    for (; x; x &= x - 1)
        out[n++] = w * 64 + (uint32_t)__builtin_ctzll(x);
    return n;
}

#if REACTIVE_AVX512
/* list_bits 16 bits at a time, each 16 compressed into a register (vpcompressd, register
 * form) and stored whole: no branch a bit.  out has 16 entries of room past the list. */
AVX512 static inline uint32_t list_bits_avx512(uint64_t x, uint32_t w, uint32_t *out, uint32_t n)
{
    __m512i v = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                                   14, 15),
                                 _mm512_set1_epi32((int)(w * 64)));
    for (uint32_t q = 0; q < 4; q++) {
        const __mmask16 m = (__mmask16)(x >> (16 * q));
        _mm512_storeu_si512((void *)(out + n), _mm512_maskz_compress_epi32(m, v));
        n += (uint32_t)__builtin_popcount(m);
        v = _mm512_add_epi32(v, _mm512_set1_epi32(16));
    }
    return n;
}
#define LIST_BITS(wide, x, w, out, n) \
    ((wide) ? list_bits_avx512(x, w, out, n) : list_bits(x, w, out, n))
#else
#define LIST_BITS(wide, x, w, out, n) ((void)(wide), list_bits(x, w, out, n))
#endif

/* A bitset written in ascending order of its blocks (read_block ascends: one stream, the
 * set's positions or ascending blocks; several, by row, then stream): each word is built in a
 * register and stored at every block, the last store the whole word; no load of the bitset
 * and no branch.  The words not reached stay as they were (zeroed by the caller). */
typedef struct bit_run {
    uint64_t *bits, acc;
    uint32_t w;
} bit_run;

static inline void bit_run_put(bit_run *br, uint32_t b, uint64_t on)
{
    const uint32_t w = b >> 6;
    br->acc = (br->acc & -(uint64_t)(w == br->w)) | on << (b & 63);
    br->bits[w] = br->acc;
    br->w = w;
}

/* The step's read blocks as a bitset, in rbits. */
static void mark_reads(reactive_state *st, const kvp_step *s)
{
    bit_run br = {st->rbits, 0, 0};
    memset(st->rbits, 0, st->nwords * sizeof *st->rbits);
    for (uint32_t i = 0; i < s->nread; i++)
        bit_run_put(&br, s->read_block[i], 1);
}

/* Before step gen's blocks take their bitset: the blocks of stamp gen - RECENT, which held
 * it, go to the queue's tail, ascending (every key there is older, every key in a bitset
 * newer: the queue stays in LRU order), stamped with it. */
static void age_out(reactive_state *st, uint32_t gen)
{
    const uint32_t m = st->rstamp[gen % RECENT];
    if (m == 0)
        return;
    uint64_t *bits = recent_of(st, gen);
    queue_reserve(st, st->nlist);
    for (uint32_t w = 0; w < st->nwords; w++) {
        for (uint64_t x = bits[w]; x; x &= x - 1) {
            const uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(x);
            st->stamp[b] = m;
            st->queue[st->tail++] = (lru_entry){b, m};
        }
        bits[w] = 0;
    }
    st->rstamp[gen % RECENT] = 0;
}

static void queue_clear(reactive_state *st)
{
    st->head = st->tail = 0;
    st->nlist = 0;
}

/* One entry of the band pass, read entry i of block b: kept if x is above the band, i listed
 * if x is in the band (without a branch: which side of the band an entry falls is not
 * predictable). */
static inline void band_split(double x, uint32_t i, uint32_t b, double lo, double hi,
                              bit_run *kept, uint32_t *band, uint32_t *nabove, uint32_t *nband)
{
    uint32_t above = x > hi;
    bit_run_put(kept, b, above);
    *nabove += above;
    band[*nband] = i;
    *nband += (x > lo) & !above;
}

#if REACTIVE_AVX512
/* Flags in read order deposited at the reads' positions: word w takes as many flags as x[w]
 * has reads (stream i's words at x[w * S], out likewise). */
__attribute__((target("bmi2,popcnt"))) static void deposit(const uint64_t *flags,
                                                           const uint64_t *x, uint32_t nw,
                                                           uint32_t S, uint64_t *out)
{
    for (uint32_t w = 0, off = 0; w < nw; w++) {
        const uint32_t sh = off & 63;
        const uint64_t a0 = flags[off >> 6], a1 = flags[(off >> 6) + 1];
        out[(size_t)w * S] = _pdep_u64(sh ? a0 >> sh | a1 << (64 - sh) : a0, x[(size_t)w * S]);
        off += (uint32_t)__builtin_popcountll(x[(size_t)w * S]);
    }
}

/* The band pass of select_kept (band_split's loop) with 1-token blocks whose reads are the
 * trace's bits r (nrw words; read entry i is the i-th set bit): 8 scores at a time widened
 * to double and compared with the band's ends, the band's entries compressed into band[]
 * (8 stored whole: it has 16 entries of room), the "above" flags kept as bits in read order
 * (st->abits), then deposited into the words of the reads (pdep), each word taking as many
 * flags as it has reads: the kept bits, with no store a read.  The same band, in the same
 * order, and the same bits.  Returns the entries above the band; *nband, the band's. */
__attribute__((target("avx512f,avx512vl,avx512bw,bmi2,popcnt"))) static uint32_t
band_bits_avx512(reactive_state *st, const float *fscore, uint32_t n, const uint64_t *r,
                 uint32_t nrw, double lo, double hi, uint32_t *band, uint32_t *nband_out)
{
    uint64_t *ab = st->abits, *kept = st->kbits;
    const __m512d vlo = _mm512_set1_pd(lo), vhi = _mm512_set1_pd(hi);
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    uint32_t nabove = 0, nband = 0;
    for (uint32_t i = 0; i < n; i += 64) {
        uint64_t word = 0;
        for (uint32_t q = 0; q < 64 && i + q < n; q += 8) {
            const uint32_t left = n - i - q;
            const __mmask8 valid = (__mmask8)(left >= 8 ? 0xFFu : (1u << left) - 1);
            const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, fscore + i + q));
            const __mmask8 above = _mm512_mask_cmp_pd_mask(valid, x, vhi, _CMP_GT_OQ);
            const __mmask8 in =
                _mm512_mask_cmp_pd_mask((__mmask8)(valid & ~above), x, vlo, _CMP_GT_OQ);
            _mm256_storeu_si256((__m256i *)(void *)(band + nband),
                                _mm256_maskz_compress_epi32(in, idx));
            nband += (uint32_t)__builtin_popcount(in);
            word |= (uint64_t)above << q;
            idx = _mm256_add_epi32(idx, _mm256_set1_epi32(8));
        }
        ab[i / 64] = word;
        nabove += (uint32_t)__builtin_popcountll(word);
    }
    ab[(n + 63) / 64] = ab[(n + 63) / 64 + 1] = 0; /* read past the last flag, never used */
    deposit(ab, r, nrw, 1, kept);
    *nband_out = nband;
    return nabove;
}

/* n scores' flags against the band's ends, band_bits_avx512's comparisons: above (x > hi)
 * and in the band (lo < x <= hi), a read a bit, in read order, into above[] and in[] (two
 * zero words after the last); returns how many are above. */
__attribute__((target("avx512f,avx512vl,popcnt"))) static uint32_t
band_flags_avx512(const float *f, uint32_t n, double lo, double hi, uint64_t *above,
                  uint64_t *in)
{
    const __m512d vlo = _mm512_set1_pd(lo), vhi = _mm512_set1_pd(hi);
    uint32_t nabove = 0;
    for (uint32_t i = 0; i < n; i += 64) {
        uint64_t wa = 0, wi = 0;
        for (uint32_t q = 0; q < 64 && i + q < n; q += 8) {
            const uint32_t left = n - i - q;
            const __mmask8 valid = (__mmask8)(left >= 8 ? 0xFFu : (1u << left) - 1);
            const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, f + i + q));
            const __mmask8 a = _mm512_mask_cmp_pd_mask(valid, x, vhi, _CMP_GT_OQ);
            const __mmask8 b = _mm512_mask_cmp_pd_mask((__mmask8)(valid & ~a), x, vlo,
                                                       _CMP_GT_OQ);
            wa |= (uint64_t)a << q;
            wi |= (uint64_t)b << q;
        }
        above[i / 64] = wa;
        in[i / 64] = wi;
        nabove += (uint32_t)__builtin_popcountll(wa);
    }
    above[(n + 63) / 64] = above[(n + 63) / 64 + 1] = 0;
    in[(n + 63) / 64] = in[(n + 63) / 64 + 1] = 0;
    return nabove;
}

/* select_kept's band pass from the streams' own sets (kvp_step.view; the merged scores are
 * not made): each stream's reads, in position order, against the band's ends
 * (band_flags_avx512), their flags deposited at their positions, the band's scores into
 * bscore at their blocks p S + i; then the S streams' flags interleaved (kvp_bits_interleave):
 * the above ones are the kept bits, the band's read out in block order, which is the merged
 * order of the reads.  The same kept bits and the same band as band_bits_avx512 on the
 * merged set, the band as blocks instead of read entries (entries ascend by block, so ties
 * rank the same).  Returns the entries above the band; *nband_out, the band's. */
__attribute__((target("avx512f,avx512vl,bmi2,popcnt"))) static uint32_t
band_view(reactive_state *st, const kvp_streams_view *v, double lo, double hi, uint32_t *band,
          uint32_t *nband_out)
{
    const uint32_t S = v->S;
    const unsigned lg = (unsigned)__builtin_ctz(S);
    uint32_t ctx = 0, nabove = 0, nband = 0;
    for (uint32_t i = 0; i < S; i++)
        ctx = v->ctx[i] > ctx ? v->ctx[i] : ctx;
    const uint32_t W = (ctx + 63) / 64; /* words of a stream's positions */
    uint64_t *A = st->vab, *B = st->vab + (size_t)S * W; /* stream i's word w at w S + i */
    for (uint32_t i = 0; i < S; i++) {
        const uint64_t *x = v->bits + i;
        const uint32_t nw = (v->ctx[i] + 63) / 64;
        uint32_t n = 0;
        for (uint32_t w = 0; w < nw; w++)
            n += (uint32_t)__builtin_popcountll(x[(size_t)w * S]);
        for (uint32_t w = n ? nw : 0; w < W; w++)
            A[(size_t)w * S + i] = B[(size_t)w * S + i] = 0;
        if (!n)
            continue;
        const float *f = v->score[i];
        nabove += band_flags_avx512(f, n, lo, hi, st->abits, st->ibits);
        deposit(st->abits, x, nw, S, A + i);
        deposit(st->ibits, x, nw, S, B + i);
        for (uint32_t w = 0, off = 0; w < nw; w++) {
            const uint64_t xw = x[(size_t)w * S];
            for (uint64_t z = B[(size_t)w * S + i]; z; z &= z - 1) {
                const uint32_t p = (uint32_t)__builtin_ctzll(z);
                const uint32_t r = off + (uint32_t)__builtin_popcountll(xw & ((1ull << p) - 1));
                st->bscore[(w * 64 + p) * S + i] = (double)f[r];
            }
            off += (uint32_t)__builtin_popcountll(xw);
        }
    }
    /* the kept bits: words whose S virtual words all lie in kbits at once
     * (kvp_bits_interleave_words), the last one with its end cut */
    const uint32_t whole = W < st->nwords / S ? W : st->nwords / S;
    kvp_bits_interleave_words(A, 1, S, whole, S, st->kbits);
    for (uint32_t w = whole; w < W; w++) {
        uint64_t x[64], y[64];
        memcpy(x, A + (size_t)w * S, S * sizeof *x);
        kvp_bits_interleave(x, y, S, lg);
        for (uint32_t o = 0; o < S && w * S + o < st->nwords; o++)
            st->kbits[w * S + o] = y[o];
    }
    for (uint32_t w = 0; w < W; w++) {
        uint64_t x[64], y[64], any = 0;
        for (uint32_t i = 0; i < S; i++)
            any |= B[(size_t)w * S + i];
        if (!any)
            continue;
        memcpy(x, B + (size_t)w * S, S * sizeof *x);
        kvp_bits_interleave(x, y, S, lg);
        for (uint32_t o = 0; o < S; o++)
            for (uint64_t z = y[o]; z; z &= z - 1)
                band[nband++] = (w * S + o) * 64 + (uint32_t)__builtin_ctzll(z);
    }
    *nband_out = nband;
    return nabove;
}
#endif

/* Sets in kbits the blocks of the `keep` read entries that rank highest (higher summed score,
 * ties the lower block: read entries ascend by block, so the lower entry), and no other.  From
 * one overflow step to the next the threshold score (the keep-th best) moves little, so the
 * entries are first split by value around the last one: those above the band (lo, hi] are
 * kept, those below it dropped, and only the band's (some 750 of 16,000 at the study's
 * scenario) go through the quickselect (src/base/select.c).  Each group ranks above the next
 * whatever the band, so the set kept is the same as a selection over all entries; a band that
 * misses the threshold (the first step, or a jump) costs a full selection and a wider band.
 * With 1-token blocks the scores are the positions' own floats (read_score[i] ==
 * acc->score[i]): the band pass reads those, and only the band's are converted, into bscore. */
static void select_kept(reactive_state *st, kvp_step *s, uint32_t keep)
{
    const uint32_t n = s->nread;
    const float *fscore = s->li->g == 1 ? s->acc->score : NULL;
#if REACTIVE_AVX512
    /* the merged scores not made: the streams' own (band_view), the band as blocks */
    const int by_view = s->li->g == 1 && !fscore && s->view && st->band_wide && st->vab;
#else
    const int by_view = 0;
#endif
    const double *score = fscore || by_view ? st->bscore : kvp_step_read_score(s);
    const uint32_t *rb = s->read_block;
    uint32_t *band = st->idx, nabove = 0, nband = 0;
    uint64_t *kept = st->kbits;
    bit_run br = {kept, 0, 0};
    double lo = st->centre - st->width, hi = st->centre + st->width, t;
    memset(kept, 0, st->nwords * sizeof *kept);
    if (st->width > 0) {
#if REACTIVE_AVX512
        if (by_view) {
            nabove = band_view(st, s->view, lo, hi, band, &nband);
        } else if (fscore && st->band_wide && s->acc->bits && rb == s->acc->pos) {
            nabove = band_bits_avx512(st, fscore, n, s->acc->bits, (s->context + 63) / 64, lo,
                                      hi, band, &nband);
            for (uint32_t j = 0; j < nband; j++)
                st->bscore[band[j]] = (double)fscore[band[j]];
        } else
#endif
        if (fscore) {
            for (uint32_t i = 0; i < n; i++)
                band_split((double)fscore[i], i, rb[i], lo, hi, &br, band, &nabove, &nband);
            for (uint32_t j = 0; j < nband; j++)
                st->bscore[band[j]] = (double)fscore[band[j]];
        } else {
            for (uint32_t i = 0; i < n; i++)
                band_split(score[i], i, rb[i], lo, hi, &br, band, &nabove, &nband);
        }
    }
    if (st->width > 0 && nabove <= keep && keep - nabove <= nband) {
        uint32_t r = keep - nabove;
        kvp_select_top(band, nband, r, score, NULL, &st->rng);
        t = hi; /* the least kept score; if r == 0 it is above hi */
        for (uint32_t j = 0; j < r; j++) {
            const uint32_t b = by_view ? band[j] : rb[band[j]];
            kept[b >> 6] |= bit_of(b);
            t = score[band[j]] < t ? score[band[j]] : t;
        }
        /* Aim at a band of about BAND_TARGET entries. */
        st->width *= nband > 2 * BAND_TARGET ? 0.75 : nband < BAND_TARGET / 2 ? 1.25 : 1;
        st->centre = t;
    } else {
        score = kvp_step_read_score(s);
        for (uint32_t i = 0; i < n; i++)
            band[i] = i;
        kvp_select_top(band, n, keep, score, NULL, &st->rng);
        memset(kept, 0, st->nwords * sizeof *kept);
        t = HUGE_VAL;
        for (uint32_t j = 0; j < keep; j++) {
            kept[rb[band[j]] >> 6] |= bit_of(rb[band[j]]);
            t = score[band[j]] < t ? score[band[j]] : t;
        }
        /* Keeping nothing has no threshold to centre on.  A threshold of 0 leaves the width
         * 0: full selections from then on, as before. */
        if (keep > 0) {
            st->centre = t;
            st->width = fmax(2 * st->width, fabs(t) / BAND_INIT);
        }
    }
}

/* kvp_step_promote/demote_many with a message naming the block refused (only on a bug here). */
static int promote_all(kvp_step *s, const uint32_t *blocks, uint32_t count, kvp_error *err)
{
    uint32_t done = kvp_step_promote_many(s, blocks, count);
    if (done < count)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: cannot promote "
                             "block %u", s->li->layer, s->n, blocks[done]);
    return 0;
}

static int demote_all(kvp_step *s, const uint32_t *blocks, uint32_t count, kvp_error *err)
{
    uint32_t done = kvp_step_demote_many(s, blocks, count);
    if (done < count)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: cannot demote "
                             "block %u", s->li->layer, s->n, blocks[done]);
    return 0;
}

static void reactive_free(void *state)
{
    reactive_state *st = state;
    if (!st)
        return;
    free(st->stamp);
    free(st->queue);
    free(st->idx);
    free(st->down);
    free(st->bscore);
    free(st->recent);
    free(st->res);
    free(st->ibits);
    free(st->vab);
    free(st);
}

static int reactive_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                         uint8_t *resident, kvp_error *err)
{
    (void)first;
    *state = NULL;
    size_t n = li->nblocks;
    reactive_state *st = calloc(1, sizeof *st);
    if (st) {
        st->cap = QUEUE_FACTOR * n + 2;
        st->stamp = calloc(n ? n : 1, sizeof *st->stamp);
        st->queue = malloc(st->cap * sizeof *st->queue);
        st->idx = malloc((n + 16) * sizeof *st->idx); /* + 16: list_bits_avx512's room */
        st->down = malloc((n + 16) * sizeof *st->down);
        st->bscore = malloc((n ? n : 1) * sizeof *st->bscore);
        st->nwords = (uint32_t)((n + 63) / 64);
        st->recent = calloc((size_t)RECENT * st->nwords + 1, sizeof *st->recent);
        st->res = calloc(5 * (size_t)st->nwords + 3, sizeof *st->res);
    }
    if (!st || !st->stamp || !st->queue || !st->idx || !st->down ||
        !st->bscore || !st->recent || !st->res) {
        reactive_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "reactive: out of memory for layer %u",
                             li->layer);
    }
    st->nblocks = li->nblocks;
    st->rbits = st->res + st->nwords;
    st->kbits = st->rbits + st->nwords;
    st->abits = st->kbits + st->nwords;
    if (li->streams > 1) {
        st->ibits = calloc((size_t)st->nwords + 3, sizeof *st->ibits);
        st->vab = calloc(2 * ((size_t)st->nwords + 64), sizeof *st->vab);
        if (!st->ibits || !st->vab) {
            reactive_free(st);
            return kvp_error_set(err, KVP_ENOMEM, "reactive: out of memory for layer %u",
                                 li->layer);
        }
    }
    st->rng = KVP_SELECT_SEED;
#if REACTIVE_AVX512
    __builtin_cpu_init();
    st->wide = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               kvp_simd_wide();
    st->band_wide = st->wide && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("bmi2");
#endif
    queue_clear(st);
    kvp_initial_default(li, resident);
    /* Never accessed, so older than everything, in index order. */
    for (uint32_t b = 0; b < li->nblocks; b++)
        if (resident[b]) {
            queue_append(st, b, NEVER);
            st->res[b >> 6] |= bit_of(b);
            st->nlist++;
        }
    *state = st;
    return 0;
}

/* The step's reads as bits, and in *nrw how many words hold them: the trace's bitset when it
 * has one and the reads are its positions (its words end with the context, and no block
 * above them exists), else the reads marked in st->rbits. */
static const uint64_t *reads_bits(reactive_state *st, const kvp_step *s, uint32_t *nrw)
{
    if (s->acc->bits && s->read_block == s->acc->pos) {
        *nrw = (s->context + 63) / 64;
        return s->acc->bits;
    }
    mark_reads(st, s);
    *nrw = st->nwords;
    return st->rbits;
}

/* The new blocks nb[0..n) join the resident set and the step's bitset cur, and the
 * promotions up[nup..); returns the promotions' new count. */
static uint32_t take_new(reactive_state *st, const uint32_t *nb, uint32_t n, uint64_t *cur,
                         uint32_t *up, uint32_t nup)
{
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t b = nb[i];
        cur[b >> 6] |= bit_of(b);
        st->res[b >> 6] |= bit_of(b);
        up[nup++] = b;
    }
    return nup;
}

/* More blocks wanted than slots: keep the new block, then the accessed blocks of highest
 * score; every other resident block goes. */
static int reactive_overflow(reactive_state *st, kvp_step *s, uint32_t nnew, kvp_error *err)
{
    const uint32_t slots = s->li->slots, gen = s->n + 1, nw = st->nwords;
    const uint32_t keep_new = nnew < slots ? nnew : slots; /* the lowest new blocks */
    const uint32_t keep = slots - keep_new; /* accessed blocks kept; < nread here */
    int rc;
    select_kept(st, s, keep);
    uint32_t nrw;
    const uint64_t *r = reads_bits(st, s, &nrw);
    /* Word by word: the kept blocks not resident are promoted, the read resident ones not
     * kept demoted, in ascending index (read_block's order).  Then every resident block not
     * read goes too, least recently used first: the queue's live entries, then the bitsets,
     * oldest stamp first (the slot of gen holds gen - RECENT). */
    const uint64_t *k = st->kbits;
    uint64_t *res = st->res;
    uint32_t *up = st->idx, *down = st->down, nup = 0, ndown = 0;
    uint64_t hits = 0;
    for (uint32_t w = 0; w < nrw; w++) {
        hits += popcount64(r[w] & res[w]);
        nup = list_bits(k[w] & ~res[w], w, up, nup);
        ndown = list_bits(r[w] & res[w] & ~k[w], w, down, ndown);
    }
    for (size_t i = st->head; i < st->tail; i++) {
        lru_entry e = st->queue[i];
        down[ndown] = e.block;
        ndown += (uint32_t)entry_live(st, e) & !(r[e.block >> 6] >> (e.block & 63) & 1);
    }
    for (uint32_t i = 0; i < RECENT; i++) {
        uint64_t *bits = recent_of(st, gen + i);
        if (st->rstamp[(gen + i) % RECENT] == 0) /* no stamp, no block: after an overflow */
            continue;                             /* step, all but the last step's */
        for (uint32_t w = 0; w < nrw; w++)
            ndown = list_bits(bits[w] & ~r[w], w, down, ndown);
        memset(bits, 0, nrw * sizeof *bits);
        st->rstamp[(gen + i) % RECENT] = 0;
    }
    s->hbm_reads = hits; /* KVP_CAP_SERVES */
    s->read_bits = r;
    /* The new LRU order: the kept blocks and the new ones, all of stamp gen. */
    queue_clear(st);
    uint64_t *cur = recent_of(st, gen);
    memcpy(cur, k, nw * sizeof *cur);
    memcpy(res, k, nw * sizeof *res);
    nup = take_new(st, s->new_blocks, keep_new, cur, up, nup);
    st->rstamp[gen % RECENT] = gen;
    st->nlist = keep + keep_new;
    /* Demote before promoting so the layer never holds more than slots. */
    if ((rc = demote_all(s, down, ndown, err)) < 0)
        return rc;
    return promote_all(s, up, nup, err);
}

/* The normal step's pass over the words of its reads r (nrw of them): they leave the older
 * bitsets and take step gen's; those the queue held are stamped gen (their entries stale);
 * the missing ones are listed in st->idx, ascending, and counted (returned). */
static inline __attribute__((always_inline)) uint32_t
take_reads_body(reactive_state *st, const uint64_t *r, uint32_t nrw, uint32_t gen, int wide)
{
    uint64_t *res = st->res, *cur = recent_of(st, gen), *older[RECENT - 1];
    uint32_t *up = st->idx, *stamp = st->stamp, nup = 0;
    for (uint32_t i = 1; i < RECENT; i++)
        older[i - 1] = recent_of(st, gen + i);
    for (uint32_t w = 0; w < nrw; w++) {
        const uint64_t x = r[w];
        uint64_t o = 0;
        for (uint32_t i = 0; i < RECENT - 1; i++) {
            o |= older[i][w];
            older[i][w] &= ~x;
        }
        for (uint64_t q = x & res[w] & ~o; q; q &= q - 1) /* held by the queue */
            stamp[w * 64 + (uint32_t)__builtin_ctzll(q)] = gen;
        nup = LIST_BITS(wide, x & ~res[w], w, up, nup);
        res[w] |= x;
        cur[w] = x;
    }
    return nup;
}

static uint32_t take_reads(reactive_state *st, const uint64_t *r, uint32_t nrw, uint32_t gen)
{
    return take_reads_body(st, r, nrw, gen, 0);
}

#if REACTIVE_AVX512
AVX512 static uint32_t take_reads_avx512(reactive_state *st, const uint64_t *r, uint32_t nrw,
                                         uint32_t gen)
{
    return take_reads_body(st, r, nrw, gen, 1);
}
#endif

/* The excess of a normal step: the least recently used resident blocks, from the queue's head
 * (its first live entries, found without a branch on liveness: most entries met there are
 * stale, but not predictably), then from the bitsets, oldest stamp first, never step gen's,
 * lowest index first; listed in st->down and taken out of the LRU order.  0, or -1 if step
 * gen's blocks would have to go. */
static inline __attribute__((always_inline)) int evict_body(reactive_state *st, uint32_t gen,
                                                            uint32_t excess, int wide)
{
    const lru_entry *q = st->queue;
    uint32_t *down = st->down, ndown = 0;
    uint64_t *res = st->res;
    size_t h = st->head, tail = st->tail;
    while (ndown < excess && h < tail) {
        lru_entry e = q[h++];
        down[ndown] = e.block;
        ndown += (uint32_t)entry_live(st, e);
    }
    st->head = h;
    for (uint32_t i = 0; i < ndown; i++)
        res[down[i] >> 6] &= ~bit_of(down[i]);
    for (uint32_t i = 1; i < RECENT && ndown < excess; i++) {
        uint64_t *bits = recent_of(st, gen + i);
        for (uint32_t w = 0; w < st->nwords && ndown < excess; w++) {
            uint64_t x = bits[w];
            const uint32_t want = excess - ndown;
            if (!x) /* the words the last evictions emptied */
                continue;
            if (popcount64(x) > want) { /* only the word's lowest want */
                uint64_t rest = x;
                for (uint32_t j = 0; j < want; j++)
                    rest &= rest - 1;
                x ^= rest;
            }
            ndown = LIST_BITS(wide, x, w, down, ndown);
            bits[w] ^= x;
            res[w] ^= x;
        }
    }
    return ndown < excess ? -1 : 0;
}

static int evict(reactive_state *st, uint32_t gen, uint32_t excess)
{
    return evict_body(st, gen, excess, 0);
}

#if REACTIVE_AVX512
AVX512 static int evict_avx512(reactive_state *st, uint32_t gen, uint32_t excess)
{
    return evict_body(st, gen, excess, 1);
}
#endif

static int reactive_step(void *state, kvp_step *s, kvp_error *err)
{
    reactive_state *st = state;
    const uint32_t slots = s->li->slots, nw = st->nwords;
    /* A new token in a block that already holds tokens opens no block: there is no new block,
     * and the token follows its block's residency (docs/POLICIES.md). */
    const uint32_t nnew = s->nnew;
    int rc;
    if (s->nfreed) { /* finished sequences: their blocks left HBM at no cost */
        for (uint32_t i = 0; i < s->nfreed; i++) {
            const uint32_t b = s->freed[i];
            st->stamp[b] = GONE;
            st->res[b >> 6] &= ~bit_of(b);
            for (uint32_t j = 0; j < RECENT; j++)
                st->recent[(size_t)j * nw + (b >> 6)] &= ~bit_of(b);
        }
        st->nlist = s->nresident;
    }
    if (st->nlist != s->nresident)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: LRU list holds %u "
                             "blocks, the engine %u", s->li->layer, s->n, st->nlist,
                             s->nresident);
    if ((uint64_t)s->nread + nnew > slots)
        return reactive_overflow(st, s, nnew, err);

    /* The accessed blocks and the new one take step gen's bitset, leaving the older bitsets
     * word by word (and the queue: a read block held there is stamped gen, its entry stale);
     * the missing ones are promoted; then the excess is evicted.  The layer holds more than
     * slots only inside this call, which the engine does not see, and the charges do not
     * depend on the order of the moves.  The evictions never reach step gen's blocks: the
     * blocks before them in LRU order are exactly the resident blocks not accessed at step n,
     * and accessed + new <= slots, so the excess never exceeds those. */
    const uint32_t gen = s->n + 1;
    age_out(st, gen);
    uint32_t nrw;
    const uint64_t *r = reads_bits(st, s, &nrw);
    uint64_t *cur = recent_of(st, gen);
    uint32_t *up = st->idx, nup;
#if REACTIVE_AVX512
    if (st->wide)
        nup = take_reads_avx512(st, r, nrw, gen);
    else
#endif
        nup = take_reads(st, r, nrw, gen);
    s->hbm_reads = s->nread - nup; /* KVP_CAP_SERVES */
    s->read_bits = r;
    nup = take_new(st, s->new_blocks, nnew, cur, up, nup);
    st->rstamp[gen % RECENT] = gen;
    if ((rc = promote_all(s, up, nup, err)) < 0)
        return rc;
    st->nlist = s->nresident;
    if (s->nresident <= slots)
        return 0;
    const uint32_t excess = s->nresident - slots;
#if REACTIVE_AVX512
    if (st->wide ? evict_avx512(st, gen, excess) < 0 : evict(st, gen, excess) < 0)
#else
    if (evict(st, gen, excess) < 0)
#endif
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: no block left to "
                             "evict", s->li->layer, s->n);
    st->nlist -= excess;
    return demote_all(s, st->down, excess, err);
}

const kvp_policy_ops kvp_policy_reactive = {
    .name = "reactive",
    .doc = "LRU: accessed and new blocks to HBM, least recently used evicted",
    .params = reactive_params,
    .nparams = sizeof reactive_params / sizeof *reactive_params,
    .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE | KVP_CAP_STREAMS | KVP_CAP_SERVES |
            KVP_CAP_WEIGHT_BLIND | KVP_CAP_VIEW_BAND,
    .block_tokens = reactive_block_tokens,
    .init = reactive_init,
    .step = reactive_step,
    .free = reactive_free,
};
