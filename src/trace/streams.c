/*
 * Traces of several streams (docs/MODEL.md "Streams"): the KV heads of a 4-D trace, each a
 * view of one head, and batches of distinct sequences.  A trace with streams has one cursor
 * per layer, which merges the streams' sets of a step into one ascending set of virtual
 * positions p * S + i (S streams, i the stream): with one-token blocks that is the block
 * naming (stream, b) -> b * S + i of the engine, whose order is "lower b, then lower stream".
 */
#include "trace/trace.h"
#include "base/error.h"
#include "base/simd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The merge's read-out of positions has an AVX-512 form (16 bits of a word at a time, their
 * positions compressed in a register), chosen at run time where the CPU has AVX-512 F (not
 * with KVPLACE_SSE2_ONLY, not under KVP_NO_SIMD); the same positions either way. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(KVP_NO_SIMD)
#define KVP_STREAMS_AVX512 1
#include <immintrin.h>
#else
#define KVP_STREAMS_AVX512 0
#endif

/* ---- a head of a 4-D trace: its layer l is the base's layer l * H + h ---- */

typedef struct head_view {
    const kvp_trace *base;
    uint32_t heads, head;
} head_view;

static void head_destroy(kvp_trace *t)
{
    free(t->impl);
    free(t);
}

/* A view's cursor: the base's cursor on the row layer * H + head, with the view's layer
 * written into the sets it hands out. */
typedef struct head_state {
    const kvp_trace_vt *vt; /* the base's */
    void *state;            /* the base cursor's */
    uint32_t layer;         /* the view's layer, for the sets it hands out */
} head_state;

static int head_open_wrapped(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                             kvp_error *err)
{
    const head_view *v = t->impl;
    head_state *hs = calloc(1, sizeof *hs);
    if (!hs)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cursor", t->name);
    hs->vt = v->base->vt;
    hs->layer = layer;
    int rc = hs->vt->cursor_open(v->base, layer * v->heads + v->head, budget, &hs->state,
                                 err);
    if (rc < 0) {
        free(hs);
        return rc;
    }
    *state = hs;
    return 0;
}

static int head_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    head_state *hs = state;
    int rc = hs->vt->cursor_step(hs->state, n, a, err);
    a->layer = hs->layer;
    return rc;
}

static void head_close(void *state)
{
    head_state *hs = state;
    if (!hs)
        return;
    hs->vt->cursor_close(hs->state);
    free(hs);
}

static int head_count_below(void *state, uint32_t n, uint32_t below, uint32_t *k, uint32_t *h,
                            kvp_error *err)
{
    head_state *hs = state;
    if (hs->vt->count_below)
        return hs->vt->count_below(hs->state, n, below, k, h, err);
    kvp_access a;
    int rc = hs->vt->cursor_step(hs->state, n, &a, err);
    if (rc < 0)
        return rc;
    kvp_access_count_below(&a, below, k, h);
    return 0;
}

static void head_sets_only(void *state)
{
    head_state *hs = state;
    if (hs->vt->sets_only)
        hs->vt->sets_only(hs->state);
}

static int head_scores(void *state, uint32_t n, float *out, kvp_error *err)
{
    head_state *hs = state;
    if (!hs->vt->scores)
        return kvp_error_set(err, KVP_EINVAL, "this trace has no scores to write");
    return hs->vt->scores(hs->state, n, out, err);
}

static const kvp_trace_vt head_vt = {
    "head",     head_open_wrapped, head_step,      head_close, head_scores, head_destroy,
    head_sets_only, head_count_below, NULL,       NULL,
};

/* ---- the streams trace ---- */

typedef struct streams_impl {
    kvp_trace **own; /* freed with the trace */
    uint32_t nown;
    kvp_streams info;
    const kvp_trace **stream;
    uint32_t *prompt, *steps;
} streams_impl;

/* Read-ahead: a stream's cursor is asked READ_AHEAD steps in a row, its sets kept until the
 * merge takes them.  A synthetic head's state (its keys, their histogram of 65,536 bins) is
 * some 0.5 MiB at full size: 32 of them asked in turn every step leave nothing of it in the
 * cache (docs/PERF.md "Streams"). */
#define READ_AHEAD 16u

typedef struct sub_buf {
    uint32_t *pos;
    float *score;
    size_t cap;                   /* entries of pos (and score) */
    uint32_t off[READ_AHEAD + 1]; /* step base + j is pos[off[j] .. off[j + 1]) */
    uint32_t ctx[READ_AHEAD];
    uint32_t have;                /* steps held */
} sub_buf;

typedef struct streams_cursor {
    const kvp_trace *t;
    uint32_t layer;
    kvp_cursor **sub; /* per stream */
    sub_buf *buf;     /* per stream */
    uint32_t base;    /* the first step the buffers hold */
    uint32_t next;    /* the next step asked */
    uint64_t *bits;   /* the step's virtual positions (S not a power of two) */
    float *vscore;    /* score per virtual position (S not a power of two) */
    uint64_t *sbits;  /* S a power of two (by_transpose): the read-ahead's sets as bits,
                       * step base + j's word w of stream i at [(j * words + w) * S + i] */
    size_t words;     /* per stream and step: positions / 64 + 1 */
    uint64_t *vbits;  /* S a power of two: the step's virtual positions as bits (a->bits) */
    int avx512;       /* the read-out's AVX-512 form */
    uint32_t *pos;
    float *score;
    int sets_only;
    int by_stream; /* scores kept stream by stream only (kvp_cursor_scores_by_stream) */
    /* the last step merged by transposition, stream by stream (kvp_cursor_streams_view) */
    int view;
    const uint64_t *vsbits;
    uint32_t vctx[64];
    const float *vfirst[64];
} streams_cursor;

const kvp_streams *kvp_trace_streams(const kvp_trace *t)
{
    return t->streams;
}

static void streams_destroy(kvp_trace *t)
{
    streams_impl *im = t->impl;
    if (im) {
        for (uint32_t i = 0; i < im->nown; i++)
            kvp_trace_free(im->own[i]);
        free(im->own);
        free(im->stream);
        free(im->prompt);
        free(im->steps);
        free(im);
    }
    free(t);
}

static void streams_close(void *state)
{
    streams_cursor *c = state;
    if (!c)
        return;
    const streams_impl *im = c->t->impl;
    for (uint32_t i = 0; c->sub && i < im->info.n; i++)
        kvp_cursor_free(c->sub[i]);
    for (uint32_t i = 0; c->buf && i < im->info.n; i++) {
        free(c->buf[i].pos);
        free(c->buf[i].score);
    }
    free(c->sub);
    free(c->buf);
    free(c->bits);
    free(c->vscore);
    free(c->sbits);
    free(c->vbits);
    free(c->pos);
    free(c->score);
    free(c);
}

/* Whether the merge goes by transposition: S a power of two up to 64, so that 64 positions
 * of the S streams are exactly S words of virtual positions. */
static int by_transpose(uint32_t S)
{
    return S >= 2 && S <= 64 && (S & (S - 1)) == 0;
}

static int streams_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                        kvp_error *err)
{
    const streams_impl *im = t->impl;
    const uint32_t S = im->info.n;
    const size_t V = (size_t)S * im->info.positions;
    streams_cursor *c = calloc(1, sizeof *c);
    if (c) {
        c->t = t;
        c->layer = layer;
        c->sub = calloc(S, sizeof *c->sub);
        c->buf = calloc(S, sizeof *c->buf);
        if (by_transpose(S)) {
            c->words = (size_t)im->info.positions / 64 + 1;
            c->sbits = calloc(READ_AHEAD * c->words * S, sizeof *c->sbits);
            c->vbits = malloc(c->words * S * sizeof *c->vbits);
        } else {
            c->bits = calloc(V / 64 + 1, sizeof *c->bits);
            c->vscore = malloc(V * sizeof *c->vscore);
        }
        /* the AVX-512 read-out stores 16 positions whole: room up to the last block's end */
        c->pos = malloc((by_transpose(S) ? c->words * 64 * S : V) * sizeof *c->pos);
        c->score = malloc(V * sizeof *c->score);
    }
    if (!c || !c->sub || !c->buf || !((c->sbits && c->vbits) || (c->bits && c->vscore)) || !c->pos ||
        !c->score) {
        streams_close(c);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cursor", t->name);
    }
#if KVP_STREAMS_AVX512
    __builtin_cpu_init();
    c->avx512 = __builtin_cpu_supports("avx512f") && kvp_simd_wide();
#endif
    for (uint32_t i = 0; i < S; i++) {
        int rc = kvp_cursor_create(&c->sub[i], im->stream[i], layer, budget, err);
        if (rc < 0) {
            streams_close(c);
            return rc;
        }
    }
    *state = c;
    return 0;
}

/* A set (ascending, of a context of ctx positions) as the words of its bits, every S-th
 * word of sb: every word below (ctx + 63) / 64 written, as the synthetic trace's own bits. */
static void list_bits(uint64_t *sb, uint32_t S, uint32_t ctx, const uint32_t *sp, uint32_t cnt)
{
    for (uint32_t w = 0; w < (ctx + 63) / 64; w++)
        sb[(size_t)w * S] = 0;
    for (uint32_t q = 0; q < cnt; q++)
        sb[(size_t)(sp[q] >> 6) * S] |= 1ull << (sp[q] & 63);
}

/* Room in b for `need` entries of pos (unless `pos` is 0) and of score (unless sets only). */
static int buf_room(streams_cursor *c, sub_buf *b, size_t need, int pos, kvp_error *err)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    uint32_t *p = pos ? realloc(b->pos, cap * sizeof *p) : b->pos;
    if (p)
        b->pos = p;
    float *score = c->sets_only ? b->score : realloc(b->score, cap * sizeof *score);
    if (score)
        b->score = score;
    if ((pos && !p) || (!c->sets_only && !score))
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cursor", c->t->name);
    b->cap = cap;
    return 0;
}

/* Stream i's step m into its buffer b (its next slot).  A trace that writes its sets where
 * asked (the synthetic one) writes them into the buffers, as bits when the merge goes by
 * bits (sbits), room made for a whole context; the others' sets are copied, and turned into
 * bits for such a merge. */
static int fill_one(streams_cursor *c, uint32_t i, uint32_t m, kvp_error *err)
{
    const streams_impl *im = c->t->impl;
    const uint32_t S = im->info.n;
    sub_buf *b = &c->buf[i];
    uint64_t *bits = c->sbits ? c->sbits + b->have * c->words * S + i : NULL;
    const int as_bits = bits && kvp_cursor_writes_bits(c->sub[i]);
    const int into = as_bits || kvp_cursor_writes_into(c->sub[i]);
    kvp_access s;
    size_t at = b->off[b->have], need = at + (size_t)im->prompt[i] + m;
    int rc = 0;
    if (!into) {
        if ((rc = kvp_cursor_next(c->sub[i], &s, err)) <= 0)
            return rc < 0 ? rc : kvp_error_set(err, KVP_ESHAPE, "%s: ended early", c->t->name);
        need = at + s.count;
    }
    if ((!as_bits || !c->sets_only) && (rc = buf_room(c, b, need, !as_bits, err)) < 0)
        return rc;
    /* no score buffer yet while every set so far was empty (NULL + 0 is undefined) */
    float *score = c->sets_only || !b->score ? NULL : b->score + at;
    if (into) {
        rc = as_bits ? kvp_cursor_next_bits(c->sub[i], &s, bits, S, score, err)
                     : kvp_cursor_next_into(c->sub[i], &s, b->pos + at, score, err);
        if (rc <= 0)
            return rc < 0 ? rc : kvp_error_set(err, KVP_ESHAPE, "%s: ended early", c->t->name);
    } else if (s.count) { /* an empty set: the buffers may not exist (NULL + 0) */
        memcpy(b->pos + at, s.pos, (size_t)s.count * sizeof *s.pos);
        if (score && s.score)
            memcpy(score, s.score, (size_t)s.count * sizeof *s.score);
        else if (score) /* bool marks: score 1 */
            for (uint32_t j = 0; j < s.count; j++)
                score[j] = 1.0f;
    }
    if (bits && !as_bits)
        list_bits(bits, S, s.context, s.count ? b->pos + at : NULL, s.count);
    b->ctx[b->have] = s.context;
    b->off[b->have + 1] = (uint32_t)(at + s.count);
    b->have++;
    return 0;
}

/* fill_one of streams i0 .. i0 + g - 1 (g <= 8, kvp_cursors_together, written as bits
 * into sbits) for steps base .. base +
 * READ_AHEAD - 1, a step of all of them at a time (kvp_cursor_next_bits_many: with AVX-512
 * their generators advance together); a stream stops at its last step. */
static int fill_many(streams_cursor *c, uint32_t i0, uint32_t g, uint32_t base,
                     kvp_error *err)
{
    const streams_impl *im = c->t->impl;
    const uint32_t S = im->info.n;
    for (uint32_t j = 0; j < READ_AHEAD; j++) {
        kvp_cursor *cur[8];
        kvp_access s[8];
        uint64_t *bits[8];
        float *score[8];
        uint32_t who[8], n = 0;
        for (uint32_t i = i0; i < i0 + g; i++) {
            sub_buf *b = &c->buf[i];
            const size_t at = b->off[b->have];
            if (base + j >= im->steps[i])
                continue;
            /* the scores' room for the whole read-ahead at once (a set is at most its
             * context): grown a step at a time, the streams' buffers, grown in turn, would
             * seldom be the last of the heap, and each growth a copy */
            const size_t most = (size_t)READ_AHEAD * (im->prompt[i] + base + READ_AHEAD);
            int rc = c->sets_only ? 0 : buf_room(c, b, j ? at + im->prompt[i] + base + j : most,
                                                  0, err);
            if (rc < 0)
                return rc;
            cur[n] = c->sub[i];
            bits[n] = c->sbits + b->have * c->words * S + i;
            score[n] = c->sets_only || !b->score ? NULL : b->score + at;
            who[n++] = i;
        }
        if (n == 0)
            break;
        int rc = kvp_cursor_next_bits_many(cur, n, s, bits, S, score, err);
        if (rc <= 0)
            return rc < 0 ? rc : kvp_error_set(err, KVP_ESHAPE, "%s: ended early", c->t->name);
        for (uint32_t q = 0; q < n; q++) {
            sub_buf *b = &c->buf[who[q]];
            b->ctx[b->have] = s[q].context;
            b->off[b->have + 1] = b->off[b->have] + s[q].count;
            b->have++;
        }
    }
    return 0;
}

/* Steps base .. base + READ_AHEAD - 1 of every stream that decodes them, into the buffers:
 * eight streams after eight, each one's steps in a row or, six to eight synthetic ones, a
 * step of all of them at a time (fill_many, kvp_cursors_together). */
static int streams_fill(streams_cursor *c, uint32_t base, kvp_error *err)
{
    const streams_impl *im = c->t->impl;
    const uint32_t S = im->info.n;
    for (uint32_t i0 = 0; i0 < S; i0 += 8) {
        const uint32_t g = S - i0 < 8 ? S - i0 : 8;
        for (uint32_t i = i0; i < i0 + g; i++) {
            c->buf[i].have = 0;
            c->buf[i].off[0] = 0;
        }
        const int together = c->sbits && kvp_cursors_together(c->sub + i0, g);
        int rc = together ? fill_many(c, i0, g, base, err) : 0;
        for (uint32_t i = i0; !together && i < i0 + g; i++)
            for (uint32_t m = base; rc == 0 && m < im->steps[i] && c->buf[i].have < READ_AHEAD;
                 m++)
                rc = fill_one(c, i, m, err);
        if (rc < 0)
            return rc;
    }
    /* a stream that has finished reads nothing: its slots past its last step cleared */
    for (uint32_t i = 0; c->sbits && i < S; i++)
        for (uint32_t j = c->buf[i].have; j < READ_AHEAD; j++)
            for (size_t w = 0; w < c->words; w++)
                c->sbits[(j * c->words + w) * S + i] = 0;
    c->base = base;
    return 0;
}

/* The merge of S streams, S not a power of two: each read's bit set at its virtual position
 * (and its score kept there), then the bits read out in order.  Returns the reads. */
static uint32_t merge_scatter(streams_cursor *c, uint32_t n, uint32_t j, uint64_t V)
{
    const streams_impl *im = c->t->impl;
    const uint32_t S = im->info.n;
    for (uint32_t i = 0; i < S; i++) {
        const sub_buf *b = &c->buf[i];
        const uint32_t cnt = n < im->steps[i] ? b->off[j + 1] - b->off[j] : 0;
        if (!cnt) /* nothing read (and the buffers may not exist: NULL + 0) */
            continue;
        const uint32_t *sp = b->pos + b->off[j];
        if (c->sets_only) {
            for (uint32_t q = 0; q < cnt; q++) {
                uint64_t v = (uint64_t)sp[q] * S + i;
                c->bits[v >> 6] |= 1ull << (v & 63);
            }
        } else {
            const float *ss = b->score + b->off[j];
            for (uint32_t q = 0; q < cnt; q++) {
                uint64_t v = (uint64_t)sp[q] * S + i;
                c->bits[v >> 6] |= 1ull << (v & 63);
                c->vscore[v] = ss[q];
            }
        }
    }
    uint32_t k = 0;
    if (c->sets_only) {
        for (uint64_t w = 0; w * 64 < V; w++) {
            uint64_t x = c->bits[w];
            c->bits[w] = 0;
            for (; x; x &= x - 1)
                c->pos[k++] = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(x));
        }
    } else {
        for (uint64_t w = 0; w * 64 < V; w++) {
            uint64_t x = c->bits[w];
            c->bits[w] = 0;
            for (; x; x &= x - 1) {
                const uint32_t v = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(x));
                c->pos[k] = v;
                c->score[k++] = c->vscore[v];
            }
        }
    }
    return k;
}

/* The lg stages of swaps that transpose, in every group of S lanes of 2^g bits, the S x S
 * matrix of rows x[0..S) and those lanes (g = 0: the bits of every lane of S bits). */
static inline void interleave_lanes(uint64_t *x, uint32_t S, unsigned lg, unsigned g)
{
    static const uint64_t low[6] = {0x5555555555555555ull, 0x3333333333333333ull,
                                    0x0F0F0F0F0F0F0F0Full, 0x00FF00FF00FF00FFull,
                                    0x0000FFFF0000FFFFull, 0x00000000FFFFFFFFull};
    for (unsigned b = lg; b-- > 0;) { /* swap bit b of the row and of the column */
        const uint32_t s = 1u << b;
        for (uint32_t k = 0; k < S; k = (k + s + 1) & ~s) {
            const uint64_t t = ((x[k] >> (s << g)) ^ x[k + s]) & low[b + g];
            x[k + s] ^= t;
            x[k] ^= t << (s << g);
        }
    }
}

/* 64 positions of S = 2^lg streams (x[i] bit p: stream i reads position p) as the S words
 * of their virtual positions (bit p * S + i of y[0..S) read as one string of 64 S bits).
 * In every lane of S bits the S x S bit matrix is transposed by lg stages of swaps
 * (Hacker's Delight's transpose32, the lanes side by side), after which x[r]'s lane q holds
 * the streams reading position q S + r; y takes the lanes in position order.  x is
 * overwritten. */
static void interleave(uint64_t *x, uint64_t *y, uint32_t S, unsigned lg)
{
    interleave_lanes(x, S, lg, 0);
    const uint32_t L = 64 >> lg; /* positions per word of y */
    const uint64_t lane = S == 64 ? ~0ull : (1ull << S) - 1;
    for (uint32_t o = 0; o < S; o++) {
        uint64_t v = 0;
        for (uint32_t e = 0; e < L; e++) {
            const uint32_t p = o * L + e;
            v |= ((x[p & (S - 1)] >> ((p >> lg) << lg)) & lane) << (e << lg);
        }
        y[o] = v;
    }
}

/* S = 8 (L = 8): y[o]'s lane e is x[e]'s lane o, so the lanes' order is a transpose too:
 * an 8 x 8 matrix of bytes, by three more stages of swaps, 8 bits wide. */
static void interleave8(uint64_t *x, uint64_t *y)
{
    interleave_lanes(x, 8, 3, 0);
    interleave_lanes(x, 8, 3, 3);
    memcpy(y, x, 8 * sizeof *y);
}

/* S = 2 and 4: bit j of v's low 64 / S bits to bit j S (Morton's spread, by halves). */
static uint64_t spread(uint64_t v, uint32_t S)
{
    if (S == 2) {
        v &= 0xFFFFFFFFull;
        v = (v | v << 16) & 0x0000FFFF0000FFFFull;
        v = (v | v << 8) & 0x00FF00FF00FF00FFull;
        v = (v | v << 4) & 0x0F0F0F0F0F0F0F0Full;
        v = (v | v << 2) & 0x3333333333333333ull;
        return (v | v << 1) & 0x5555555555555555ull;
    }
    v &= 0xFFFFull;
    v = (v | v << 24) & 0x000000FF000000FFull;
    v = (v | v << 12) & 0x000F000F000F000Full;
    v = (v | v << 6) & 0x0303030303030303ull;
    return (v | v << 3) & 0x1111111111111111ull;
}

#if KVP_STREAMS_AVX512
/* Eight streams where the CPU has GFNI and AVX-512 VBMI: byte e of output word o holds
 * position 8 o + e of streams 0 to 7, so for each o the 8 x 8 bit matrix of byte o of the 8
 * streams' words is transposed: the bytes put in place (vpermb: row 7 - k of qword o is byte
 * o of stream k) and GF2P8AFFINEQB with the unit bytes (byte e = 1 << e) gives bit k of byte
 * e = row 7 - k's bit e; one affine transformation a word. */
__attribute__((target("avx512f,avx512bw,avx512vbmi,gfni"))) static void
interleave8_gfni(const uint64_t *x, size_t ks, size_t ws, uint32_t nwords, uint64_t *y)
{
    uint8_t ix[64];
    for (uint32_t o = 0; o < 8; o++)
        for (uint32_t m = 0; m < 8; m++)
            ix[o * 8 + m] = (uint8_t)((7 - m) * 8 + o);
    const __m512i idx = _mm512_loadu_si512(ix);
    const __m512i unit = _mm512_set1_epi64((long long)0x8040201008040201ull);
    for (uint32_t i = 0; i < nwords; i++) {
        const uint64_t *p = x + (size_t)i * ws;
        const __m512i v =
            ks == 1 ? _mm512_loadu_si512(p)
                    : _mm512_set_epi64((long long)p[7 * ks], (long long)p[6 * ks],
                                       (long long)p[5 * ks], (long long)p[4 * ks],
                                       (long long)p[3 * ks], (long long)p[2 * ks],
                                       (long long)p[ks], (long long)p[0]);
        const __m512i q = _mm512_permutexvar_epi8(idx, v);
        _mm512_storeu_si512(y + (size_t)i * 8, _mm512_gf2p8affine_epi64_epi8(unit, q, 0));
    }
}

/* Two or four streams with BMI2: output word o takes 64 / S positions of each stream's word
 * from bit o 64 / S on, stream k's deposited at bits k, k + S, ... (pdep: Morton's spread in
 * one instruction). */
__attribute__((target("bmi2"))) static void interleave_pdep(const uint64_t *x, size_t ks,
                                                           size_t ws, uint32_t nwords,
                                                           uint32_t S, uint64_t *y)
{
    const uint64_t m0 = S == 2 ? 0x5555555555555555ull : 0x1111111111111111ull;
    const unsigned L = 64 / S; /* positions of a stream in an output word */
    for (uint32_t i = 0; i < nwords; i++) {
        const uint64_t *p = x + (size_t)i * ws;
        for (uint32_t o = 0; o < S; o++) {
            uint64_t v = 0;
            for (uint32_t k = 0; k < S; k++)
                v |= _pdep_u64(p[k * ks] >> (o * L), m0 << k);
            y[(size_t)i * S + o] = v;
        }
    }
}

static pthread_once_t wide_once = PTHREAD_ONCE_INIT;
static int gfni8, bmi2;

static void wide_probe(void)
{
    __builtin_cpu_init();
    gfni8 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni") &&
            kvp_simd_wide();
    bmi2 = __builtin_cpu_supports("bmi2") && kvp_simd_wide();
}
#endif

void kvp_bits_interleave_words(const uint64_t *x, size_t ks, size_t ws, uint32_t nwords,
                               uint32_t S, uint64_t *y)
{
#if KVP_STREAMS_AVX512
    pthread_once(&wide_once, wide_probe);
    if (S == 8 && gfni8) {
        interleave8_gfni(x, ks, ws, nwords, y);
        return;
    }
    if ((S == 2 || S == 4) && bmi2) {
        interleave_pdep(x, ks, ws, nwords, S, y);
        return;
    }
#endif
    const unsigned lg = (unsigned)__builtin_ctz(S);
    for (uint32_t i = 0; i < nwords; i++) {
        uint64_t t[64];
        for (uint32_t k = 0; k < S; k++)
            t[k] = x[k * ks + (size_t)i * ws];
        kvp_bits_interleave(t, y + (size_t)i * S, S, lg);
    }
}

void kvp_bits_interleave(uint64_t *x, uint64_t *y, uint32_t S, unsigned lg)
{
    if (S == 8) {
        interleave8(x, y);
    } else if (S == 2 || S == 4) { /* y[o]: positions o L .. o L + L - 1, L = 64 / S */
        for (uint32_t o = 0; o < S; o++) {
            uint64_t v = 0;
            for (uint32_t k = 0; k < S; k++)
                v |= spread(x[k] >> (o * 64 / S), S) << k;
            y[o] = v;
        }
    } else {
        interleave(x, y, S, lg);
    }
}

#if KVP_STREAMS_AVX512
/* The virtual positions base + o * 64 + bit of the set bits of y[0..S), in order, into pos
 * (16 entries stored whole at a time: pos has room to the block's end); returns how many. */
__attribute__((target("avx512f"))) static uint32_t read_out_avx512(const uint64_t *y,
                                                                   uint32_t S, uint32_t base,
                                                                   uint32_t *pos)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    uint32_t k = 0;
    for (uint32_t o = 0; o < S; o++)
        for (uint32_t e = 0; e < 64 && (y[o] >> e); e += 16) {
            const __mmask16 m = (__mmask16)(y[o] >> e);
            const __m512i vp = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(base + o * 64 + e)));
            _mm512_storeu_si512((void *)(pos + k), _mm512_maskz_compress_epi32(m, vp));
            k += (uint32_t)__builtin_popcount(m);
        }
    return k;
}
#endif

/* The merge of S streams, S a power of two (by_transpose): 64 positions at a time, the S
 * streams' words of their sets' bits (sbits) interleaved into virtual positions and read
 * out; no scatter over the whole virtual range.  A stream's reads come out in its own order,
 * so each one's score is its stream's next.  The interleaved words are also the step's set
 * as bits (vbits, handed out as a->bits: the engine serves from them).  Returns the reads. */
static uint32_t merge_transpose(streams_cursor *c, uint32_t n, uint32_t j, uint32_t ctx)
{
    const streams_impl *im = c->t->impl;
    const uint32_t S = im->info.n;
    const unsigned lg = (unsigned)__builtin_ctz(S);
    const float *next[64] = {0}; /* per stream, the score of its next read */
    for (uint32_t i = 0; i < S && !c->sets_only; i++)
        if (n < im->steps[i] && c->buf[i].score) /* no buffer: no read so far */
            next[i] = c->buf[i].score + c->buf[i].off[j];
    const uint64_t *sj = c->sbits + j * c->words * S;
    c->view = 1;
    c->vsbits = sj;
    for (uint32_t i = 0; i < S; i++) {
        c->vctx[i] = n < im->steps[i] ? c->buf[i].ctx[j] : 0;
        c->vfirst[i] = next[i];
    }
    uint32_t k = 0;
    const uint32_t nw = (ctx + 63) / 64;
    const int bulk = S <= 8; /* every word at once (GFNI, pdep: an instruction or a few) */
    if (bulk)
        kvp_bits_interleave_words(sj, 1, S, nw, S, c->vbits);
    for (uint32_t w = 0; w < nw; w++) {
        uint64_t *vb = c->vbits + (size_t)w * S;
        if (!bulk) {
            uint64_t x[64], any = 0;
            for (uint32_t i = 0; i < S; i++) {
                x[i] = sj[(size_t)w * S + i];
                any |= x[i];
            }
            if (!any) {
                memset(vb, 0, S * sizeof *vb);
                continue;
            }
            kvp_bits_interleave(x, vb, S, lg);
        }
        const uint64_t *y = vb;
        const uint32_t base = w * 64 * S;
#if KVP_STREAMS_AVX512
        if ((c->sets_only || c->by_stream) && c->avx512) {
            k += read_out_avx512(y, S, base, c->pos + k);
            continue;
        }
#endif
        if (c->sets_only || c->by_stream) {
            for (uint32_t o = 0; o < S; o++)
                for (uint64_t z = y[o]; z; z &= z - 1)
                    c->pos[k++] = base + o * 64 + (uint32_t)__builtin_ctzll(z);
        } else {
            for (uint32_t o = 0; o < S; o++)
                for (uint64_t z = y[o]; z; z &= z - 1) {
                    const uint32_t bit = (uint32_t)__builtin_ctzll(z);
                    c->pos[k] = base + o * 64 + bit;
                    c->score[k++] = *next[bit & (S - 1)]++;
                }
        }
    }
    return k;
}

static const kvp_trace_vt streams_vt;

/* Step n of every stream still decoding, merged (a finished stream reads nothing). */
static int streams_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    streams_cursor *c = state;
    const streams_impl *im = c->t->impl;
    const uint32_t S = im->info.n;
    if (n != c->next)
        return kvp_error_set(err, KVP_EINVAL, "%s: step %u asked after step %u (steps only "
                             "go forward, one at a time)", c->t->name, n, c->next);
    c->next = n + 1;
    if (n == 0 || n - c->base >= READ_AHEAD) {
        int rc = streams_fill(c, n, err);
        if (rc < 0)
            return rc;
    }
    const uint32_t j = n - c->base;
    uint32_t ctx = 0;
    for (uint32_t i = 0; i < S; i++)
        if (n < im->steps[i] && c->buf[i].ctx[j] > ctx)
            ctx = c->buf[i].ctx[j];
    const uint64_t V = (uint64_t)ctx * S;
    a->step = n;
    a->layer = c->layer;
    a->context = (uint32_t)V;
    a->count = c->sbits ? merge_transpose(c, n, j, ctx) : merge_scatter(c, n, j, V);
    a->pos = c->pos;
    a->score = c->sets_only || c->by_stream ? NULL : c->score;
    a->bits = c->vbits; /* NULL for the merge by scatter */
    return 0;
}

int kvp_cursor_streams_view(const kvp_cursor *cur, kvp_streams_view *v)
{
    if (cur->t->vt != &streams_vt)
        return 0;
    const streams_cursor *c = cur->state;
    if (!c->view)
        return 0;
    v->S = c->t->streams->n;
    v->bits = c->vsbits;
    v->ctx = c->vctx;
    v->score = c->vfirst;
    return 1;
}

int kvp_cursor_scores_by_stream(kvp_cursor *cur)
{
    if (cur->t->vt != &streams_vt)
        return 0;
    streams_cursor *c = cur->state;
    if (!c->sbits || c->next)
        return 0;
    c->by_stream = 1;
    return 1;
}

void kvp_streams_view_scores(const kvp_streams_view *v, double *out)
{
    const uint32_t S = v->S;
    const unsigned lg = (unsigned)__builtin_ctz(S);
    const float *next[64];
    uint32_t ctx = 0, k = 0;
    for (uint32_t i = 0; i < S; i++) {
        next[i] = v->score[i];
        ctx = v->ctx[i] > ctx ? v->ctx[i] : ctx;
    }
    for (uint32_t w = 0; w * 64 < ctx; w++) {
        uint64_t x[64], y[64];
        for (uint32_t i = 0; i < S; i++)
            x[i] = v->bits[(size_t)w * S + i];
        kvp_bits_interleave(x, y, S, lg);
        for (uint32_t o = 0; o < S; o++)
            for (uint64_t z = y[o]; z; z &= z - 1)
                out[k++] = (double)*next[(uint32_t)__builtin_ctzll(z) & (S - 1)]++;
    }
}

static void streams_sets_only(void *state)
{
    streams_cursor *c = state;
    const streams_impl *im = c->t->impl;
    c->sets_only = 1;
    for (uint32_t i = 0; i < im->info.n; i++)
        kvp_cursor_sets_only(c->sub[i]);
}

static const kvp_trace_vt streams_vt = {
    "streams", streams_open, streams_step, streams_close, NULL, streams_destroy,
    streams_sets_only, NULL, NULL, NULL,
};

/* A streams trace over the streams[] (n, borrowed from own[] or their children), owning
 * own[0..nown). */
static int streams_make(kvp_trace **out, kvp_trace **own, uint32_t nown,
                        const kvp_trace **stream, uint32_t n, uint32_t nseq, uint32_t heads,
                        int per_head, const char *name, kvp_error *err)
{
    kvp_trace *t = calloc(1, sizeof *t);
    streams_impl *im = calloc(1, sizeof *im);
    uint32_t *prompt = malloc((size_t)n * sizeof *prompt);
    uint32_t *steps = malloc((size_t)n * sizeof *steps);
    if (!t || !im || !prompt || !steps) {
        free(t);
        free(im);
        free(prompt);
        free(steps);
        for (uint32_t i = 0; i < nown; i++)
            kvp_trace_free(own[i]);
        free(own);
        free(stream);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", name);
    }
    im->own = own;
    im->nown = nown;
    im->stream = stream;
    im->prompt = prompt;
    im->steps = steps;
    uint32_t positions = 0, P = 0, N = 0;
    for (uint32_t i = 0; i < n; i++) {
        prompt[i] = stream[i]->prompt;
        steps[i] = stream[i]->steps;
        if (prompt[i] + steps[i] > positions)
            positions = prompt[i] + steps[i];
        P = prompt[i] > P ? prompt[i] : P;
        N = steps[i] > N ? steps[i] : N;
    }
    im->info = (kvp_streams){n, nseq, heads, per_head, stream, prompt, steps, positions};
    t->vt = &streams_vt;
    t->impl = im;
    t->streams = &im->info;
    t->steps = N;
    t->layers = stream[0]->layers;
    t->prompt = P;
    t->is_bool = stream[0]->is_bool;
    snprintf(t->name, sizeof t->name, "%s", name);
    *out = t;
    return 0;
}

int kvp_trace_heads_of(kvp_trace **out, kvp_trace *base, uint32_t heads, kvp_error *err)
{
    *out = NULL;
    if (heads == 0 || base->layers % heads)
        return kvp_trace_free(base), kvp_error_set(err, KVP_EINVAL, "%s: %u heads do not "
                                                   "divide %u rows", base->name, heads,
                                                   base->layers);
    kvp_trace **own = calloc((size_t)heads + 1, sizeof *own);
    const kvp_trace **stream = calloc(heads, sizeof *stream);
    if (!own || !stream) {
        free(own);
        free(stream);
        kvp_trace_free(base);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", base->name);
    }
    own[heads] = base; /* freed last: the views point at it */
    for (uint32_t h = 0; h < heads; h++) {
        kvp_trace *v = calloc(1, sizeof *v);
        head_view *hv = calloc(1, sizeof *hv);
        if (!v || !hv) {
            free(v);
            free(hv);
            for (uint32_t j = 0; j <= heads; j++)
                kvp_trace_free(own[j]);
            free(own);
            free(stream);
            return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", base->name);
        }
        *hv = (head_view){base, heads, h};
        v->vt = &head_vt;
        v->impl = hv;
        v->steps = base->steps;
        v->layers = base->layers / heads;
        v->prompt = base->prompt;
        v->is_bool = base->is_bool;
        snprintf(v->name, sizeof v->name, "%s", base->name);
        own[h] = v;
        stream[h] = v;
    }
    char name[256];
    snprintf(name, sizeof name, "%s", base->name);
    return streams_make(out, own, heads + 1, stream, heads, 1, heads, 1, name, err);
}

/* One sequence of H per-head synthetic traces (sp->heads = H, each its own sp->head). */
static int synthetic_heads(kvp_trace **out, const kvp_synth_params *sp, kvp_error *err)
{
    const uint32_t H = sp->heads;
    kvp_trace **own = calloc(H, sizeof *own);
    const kvp_trace **stream = calloc(H, sizeof *stream);
    int rc = own && stream ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (uint32_t h = 0; h < H && rc == 0; h++) {
        kvp_synth_params one = *sp;
        one.head = h;
        if ((rc = kvp_trace_synthetic(&own[h], &one, err)) == 0)
            stream[h] = own[h];
    }
    if (rc < 0) {
        for (uint32_t h = 0; own && h < H; h++)
            kvp_trace_free(own[h]);
        free(own);
        free(stream);
        return rc;
    }
    char name[256];
    snprintf(name, sizeof name, "%.200s:heads=%u", own[0]->name, H);
    return streams_make(out, own, H, stream, H, 1, H, 1, name, err);
}

int kvp_trace_sequences(kvp_trace **out, kvp_trace **seqs, uint32_t n, kvp_error *err)
{
    *out = NULL;
    int rc = 0;
    uint32_t heads = 0, total = 0;
    int per_head = 0;
    char name[256] = "";
    size_t at = 0;
    if (n == 0 || n > KVP_MAX_SEQUENCES) {
        for (uint32_t q = 0; q < n; q++)
            kvp_trace_free(seqs[q]);
        return kvp_error_set(err, KVP_EINVAL, "%u sequences; from 1 to %u", n,
                             KVP_MAX_SEQUENCES);
    }
    for (uint32_t q = 0; q < n && rc == 0; q++) {
        const kvp_trace *t = seqs[q];
        const kvp_streams *si = t->streams;
        uint32_t h = si ? si->heads : 1;
        int ph = si ? si->per_head : 0;
        if (si && si->nseq != 1)
            rc = kvp_error_set(err, KVP_EINVAL, "%s: already a batch of %u sequences",
                               t->name, si->nseq);
        else if (q && t->layers != seqs[0]->layers)
            rc = kvp_error_set(err, KVP_ESHAPE, "%s: trace has %u layers; %s has %u",
                               t->name, t->layers, seqs[0]->name, seqs[0]->layers);
        else if (q && (h != heads || ph != per_head))
            rc = kvp_error_set(err, KVP_ESHAPE, "%s: %s; %s is %s (every sequence must be "
                               "3-D, or every one 4-D with the same heads)", t->name,
                               ph ? "4-D" : "3-D", seqs[0]->name, per_head ? "4-D" : "3-D");
        else if (q && t->is_bool != seqs[0]->is_bool)
            rc = kvp_error_set(err, KVP_EINVAL, "%s: %s; %s holds %s (mix not supported)",
                               t->name, t->is_bool ? "bool marks" : "scores", seqs[0]->name,
                               seqs[0]->is_bool ? "bool marks" : "scores");
        heads = h;
        per_head = ph;
        total += h;
        if (at < sizeof name - 1)
            at += (size_t)snprintf(name + at, sizeof name - at, "%s%s", q ? "+" : "",
                                   t->name);
    }
    kvp_trace **own = rc == 0 ? calloc(n, sizeof *own) : NULL;
    const kvp_trace **stream = rc == 0 ? calloc(total, sizeof *stream) : NULL;
    if (rc == 0 && (!own || !stream))
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
    if (rc < 0) {
        free(own);
        free(stream);
        for (uint32_t q = 0; q < n; q++)
            kvp_trace_free(seqs[q]);
        return rc;
    }
    uint32_t i = 0;
    for (uint32_t q = 0; q < n; q++) {
        own[q] = seqs[q];
        const kvp_streams *si = seqs[q]->streams;
        for (uint32_t h = 0; h < heads; h++)
            stream[i++] = si ? si->stream[h] : seqs[q];
    }
    return streams_make(out, own, n, stream, total, n, heads, per_head, name, err);
}

/* ---- synthetic sequences ---- */

int kvp_trace_synthetic_sequences(kvp_trace **out, const kvp_synth_params *sp,
                                  uint32_t sequences, kvp_error *err)
{
    *out = NULL;
    if (sequences <= 1)
        return sp->heads > 1 ? synthetic_heads(out, sp, err) : kvp_trace_synthetic(out, sp, err);
    if (sequences > KVP_MAX_SEQUENCES)
        return kvp_error_set(err, KVP_EINVAL, "sequences %u: at most %u", sequences,
                             KVP_MAX_SEQUENCES);
    kvp_trace *seq[KVP_MAX_SEQUENCES] = {0};
    for (uint32_t q = 0; q < sequences; q++) {
        kvp_synth_params one = *sp;
        /* its own seed and prompt (docs/SYNTHETIC.md "Sequences"; q = 0 is sp's own) */
        one.seed = kvp_synth_sequence_seed(sp->seed, q);
        one.prompt = kvp_synth_sequence_prompt(sp->seed, q, sp->prompt);
        int rc = one.heads > 1 ? synthetic_heads(&seq[q], &one, err)
                               : kvp_trace_synthetic(&seq[q], &one, err);
        if (rc < 0) {
            for (uint32_t j = 0; j < q; j++)
                kvp_trace_free(seq[j]);
            return rc;
        }
    }
    char name[256];
    snprintf(name, sizeof name, "%.200s:sequences=%u", seq[0]->name, sequences);
    int rc = kvp_trace_sequences(out, seq, sequences, err);
    if (rc == 0)
        snprintf((*out)->name, sizeof (*out)->name, "%s", name);
    return rc;
}

uint32_t kvp_trace_stream_count(const kvp_trace *t)
{
    return t->streams ? t->streams->n : 1;
}

const kvp_trace *kvp_trace_stream(const kvp_trace *t, uint32_t i)
{
    return t->streams && i < t->streams->n ? t->streams->stream[i] : t;
}

uint32_t kvp_trace_heads(const kvp_trace *t)
{
    return t->streams ? t->streams->heads : 1;
}

uint32_t kvp_trace_sequence_count(const kvp_trace *t)
{
    return t->streams ? t->streams->nseq : 1;
}

uint32_t kvp_trace_sequence_prompt(const kvp_trace *t, uint32_t q)
{
    const kvp_streams *si = t->streams;
    return si && q < si->nseq ? si->prompt[q * si->heads] : t->prompt;
}

uint32_t kvp_trace_sequence_steps(const kvp_trace *t, uint32_t q)
{
    const kvp_streams *si = t->streams;
    return si && q < si->nseq ? si->steps[q * si->heads] : t->steps;
}
