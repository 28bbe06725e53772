/*
 * A trace cache: the access sets of another trace, materialised once as one bitset per step
 * and layer, then replayed by cursors that decode a bitset into positions (docs/PERF.md).
 *
 * What it is for: a search that runs `lookahead` dozens of times (sa) would otherwise pay the
 * source's generation or top-k selection on every run.  What it costs: ceil((P + n) / 64)
 * 64-bit words per step n and layer, about (P + N/2) N L / 8 bytes (1.5 GB at the study's
 * scenario), built by one pass over the source.  What it keeps: the sets only.  Every score
 * it gives is 1, so it serves the policies that do not read scores (the engine refuses the
 * others on it); a cache of a score trace stands for that trace at the one sparsity it was
 * built for.  Its name, shape and kind are the source's, so results and checkpoints made on
 * it are those of the source.
 */
#include "trace/trace_cache.h"
#include "base/error.h"
#include "base/parallel.h"
#include "trace/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORD_BITS 64u

typedef struct cache_impl {
    kvp_budget budget; /* of the sets held (ignored for a bool source) */
    int scores;       /* 1 if the source had scores (which the cache does not keep) */
    uint64_t *off;    /* N + 1: word offset of step n's bitset within a layer */
    uint64_t **bits;  /* per layer: off[N] words */
    float *ones;      /* P + N scores of 1 */
} cache_impl;

typedef struct cache_cursor {
    const kvp_trace *t;
    uint32_t layer;
    uint32_t *pos; /* P + N */
} cache_cursor;

static uint64_t words_of(uint32_t context)
{
    return ((uint64_t)context + WORD_BITS - 1) / WORD_BITS;
}

uint64_t kvp_trace_cache_bytes(const kvp_trace *src)
{
    /* sum over n of ceil((P + n) / 64) words, per layer; at most (P + N) N / 64 + N */
    uint64_t words = 0;
    for (uint32_t n = 0; n < src->steps; n++)
        words += words_of(src->prompt + n);
    return words * sizeof(uint64_t) * src->layers;
}

/* "topk 2048" or "sparsity 0.6", for messages. */
static void budget_text(char *buf, size_t len, kvp_budget b)
{
    if (b.topk > 0)
        snprintf(buf, len, "topk %u", b.topk);
    else
        snprintf(buf, len, "sparsity %.17g", b.sparsity);
}

static int cache_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                      kvp_error *err)
{
    const cache_impl *im = t->impl;
    *state = NULL;
    if (!t->is_bool && !kvp_budget_same(budget, im->budget)) {
        char held[48], asked[48];
        budget_text(held, sizeof held, im->budget);
        budget_text(asked, sizeof asked, budget);
        return kvp_error_set(err, KVP_EINVAL, "%s: cached at %s, asked at %s", t->name, held,
                             asked);
    }
    cache_cursor *c = calloc(1, sizeof *c);
    if (c)
        c->pos = malloc(((size_t)t->prompt + t->steps) * sizeof *c->pos);
    if (!c || !c->pos) {
        free(c);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cursor", t->name);
    }
    c->t = t;
    c->layer = layer;
    *state = c;
    return 0;
}

/* Set bits in x, without the library call __builtin_popcountll makes on a baseline x86-64
 * build (no -mpopcnt). */
static inline uint32_t popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* Set bits to positions, ascending: a popcount-bounded loop per word, so that the only
 * unpredictable branch is one per word, not one per position. */
static int cache_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    cache_cursor *c = state;
    const kvp_trace *t = c->t;
    const cache_impl *im = t->impl;
    (void)err;
    const uint64_t *w = im->bits[c->layer] + im->off[n];
    const uint64_t nw = im->off[n + 1] - im->off[n];
    uint32_t *pos = c->pos, m = 0;
    for (uint64_t i = 0; i < nw; i++) {
        uint64_t x = w[i];
        const uint32_t base = (uint32_t)(i * WORD_BITS);
        const uint32_t cnt = popcount64(x);
        for (uint32_t j = 0; j < cnt; j++) {
            pos[m + j] = base + (uint32_t)__builtin_ctzll(x);
            x &= x - 1;
        }
        m += cnt;
    }
    a->step = n;
    a->layer = c->layer;
    a->context = t->prompt + n;
    a->count = m;
    a->pos = pos;
    a->score = im->ones;
    a->bits = NULL;
    return 0;
}

static void cache_close(void *state)
{
    cache_cursor *c = state;
    if (!c)
        return;
    free(c->pos);
    free(c);
}

static void cache_destroy(kvp_trace *t)
{
    cache_impl *im = t->impl;
    if (im) {
        for (uint32_t l = 0; im->bits && l < t->layers; l++)
            free(im->bits[l]);
        free(im->bits);
        free(im->off);
        free(im->ones);
        free(im);
    }
    free(t);
}

static const kvp_trace_vt CACHE_VT = {"cache", cache_open, cache_step, cache_close, NULL,
                                      cache_destroy, NULL, NULL, NULL, NULL};

const uint64_t *kvp_trace_cache_bits(const kvp_trace *t, uint32_t layer, uint32_t step,
                                     kvp_budget budget)
{
    if (t->vt != &CACHE_VT || layer >= t->layers || step >= t->steps)
        return NULL;
    const cache_impl *im = t->impl;
    if (!t->is_bool && !kvp_budget_same(budget, im->budget))
        return NULL;
    return im->bits[layer] + im->off[step];
}

int kvp_trace_is_cache(const kvp_trace *t) { return t->vt == &CACHE_VT; }

int kvp_trace_is_cache_without_scores(const kvp_trace *t)
{
    return t->vt == &CACHE_VT && ((const cache_impl *)t->impl)->scores;
}

int kvp_trace_cache_record(kvp_trace *t, uint32_t layer, const kvp_access *a, kvp_error *err)
{
    cache_impl *im = t->impl;
    if (layer >= t->layers || a->step >= t->steps || a->context != t->prompt + a->step)
        return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u (context %u) does not fit "
                             "its cache", t->name, a->step, layer, a->context);
    uint64_t *w = im->bits[layer] + im->off[a->step];
    if (a->bits) { /* the set as bits already: every word below the context's written */
        const size_t nw = (size_t)words_of(a->context);
        const uint32_t tail = a->context % WORD_BITS;
        memcpy(w, a->bits, nw * sizeof *w);
        if (tail && w[nw - 1] >> tail)
            return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: a position at or "
                                 "past the context %u", t->name, a->step, layer, a->context);
        return 0;
    }
    for (uint32_t i = 0; i < a->count; i++) {
        if (a->pos[i] >= a->context)
            return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: position %u outside "
                                 "the context", t->name, a->step, layer, a->pos[i]);
        w[a->pos[i] / WORD_BITS] |= 1ull << (a->pos[i] % WORD_BITS);
    }
    return 0;
}

int kvp_trace_cache_empty(kvp_trace **out, const kvp_trace *src, kvp_budget budget,
                          kvp_error *err)
{
    *out = NULL;
    if (src->streams)
        return kvp_error_set(err, KVP_EINVAL, "%s: a trace of several streams has no trace "
                             "cache (it is read as it is)", src->name);
    int rc = src->is_bool ? 0 : kvp_budget_check(budget, src->name, err);
    if (rc < 0)
        return rc;
    const uint32_t N = src->steps, L = src->layers;
    kvp_trace *t = calloc(1, sizeof *t);
    cache_impl *im = calloc(1, sizeof *im);
    if (!t || !im) {
        free(t);
        free(im);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", src->name);
    }
    *t = *src; /* name, shape and kind */
    t->vt = &CACHE_VT;
    t->impl = im;
    im->budget = budget;
    im->scores = !src->is_bool;
    im->off = malloc(((size_t)N + 1) * sizeof *im->off);
    im->bits = calloc(L, sizeof *im->bits);
    im->ones = malloc(((size_t)src->prompt + N) * sizeof *im->ones);
    if (!im->off || !im->bits || !im->ones) {
        cache_destroy(t);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", src->name);
    }
    for (size_t i = 0; i < (size_t)src->prompt + N; i++)
        im->ones[i] = 1.0f;
    im->off[0] = 0;
    for (uint32_t n = 0; n < N; n++)
        im->off[n + 1] = im->off[n] + words_of(src->prompt + n);
    for (uint32_t l = 0; l < L; l++) {
        im->bits[l] = calloc((size_t)im->off[N], sizeof **im->bits);
        if (!im->bits[l]) {
            cache_destroy(t);
            return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cache of %llu "
                                 "bytes", src->name,
                                 (unsigned long long)kvp_trace_cache_bytes(src));
        }
    }
    *out = t;
    return 0;
}

/* Filling one layer from the source. */
typedef struct fill_job {
    const kvp_trace *src;
    kvp_trace *t;
    kvp_budget budget;
    volatile sig_atomic_t *cancel;
    kvp_error *err; /* per layer */
} fill_job;

static int fill_layer(uint32_t l, void *user, atomic_ullong *done)
{
    fill_job *job = user;
    kvp_error *err = &job->err[l];
    kvp_cursor *cur = NULL;
    int rc = kvp_cursor_create(&cur, job->src, l, job->budget, err);
    if (rc >= 0)
        kvp_cursor_sets_only(cur);
    for (uint32_t n = 0; rc >= 0 && n < job->t->steps; n++) {
        kvp_access a;
        if (job->cancel && *job->cancel) {
            rc = kvp_error_set(err, KVP_EINTR, "%s: interrupted caching step %u of layer %u",
                               job->t->name, n, l);
            break;
        }
        int r = kvp_cursor_next(cur, &a, err);
        if (r <= 0) {
            rc = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                           job->t->name);
            break;
        }
        rc = kvp_trace_cache_record(job->t, l, &a, err);
        atomic_fetch_add(done, 1ull);
    }
    kvp_cursor_free(cur);
    return rc;
}

int kvp_trace_cache(kvp_trace **out, const kvp_trace *src, kvp_budget budget,
                    const kvp_run_options *ro, kvp_error *err)
{
    *out = NULL;
    const uint32_t L = src->layers;
    kvp_trace *t = NULL;
    int rc = kvp_trace_cache_empty(&t, src, budget, err);
    if (rc < 0)
        return rc;
    kvp_error *lerr = calloc(L ? L : 1, sizeof *lerr);
    int *lrc = calloc(L ? L : 1, sizeof *lrc);
    if (!lerr || !lrc) {
        rc = kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", src->name);
        goto done;
    }
    fill_job job = {src, t, budget, ro ? ro->cancel : NULL, lerr};
    kvp_parallel_layers(L, ro, (uint64_t)L * src->steps, fill_layer, &job, lrc);
    for (uint32_t l = 0; l < L; l++)
        if (lrc[l] < 0) {
            rc = lrc[l];
            if (err)
                *err = lerr[l];
            goto done;
        }
    *out = t;
    t = NULL;
done:
    if (t)
        cache_destroy(t);
    free(lerr);
    free(lrc);
    return rc;
}
