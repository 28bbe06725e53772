/* A trace held in memory: for tests, and for programs that build traces themselves. */
#include "trace/trace.h"
#include "base/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_trace {
    float *data; /* steps * layers * positions */
    uint32_t positions;
} mem_trace;

typedef struct mem_cursor {
    const kvp_trace *t;
    uint32_t layer;
    double sparsity;
    uint32_t *pos, *scratch;
    float *score;
} mem_cursor;

static const float *row(const kvp_trace *t, uint32_t n, uint32_t l)
{
    const mem_trace *m = t->impl;
    return m->data + ((size_t)n * t->layers + l) * m->positions;
}

static int mem_open(const kvp_trace *t, uint32_t layer, double sparsity, void **state,
                    kvp_error *err)
{
    const mem_trace *m = t->impl;
    mem_cursor *c = calloc(1, sizeof *c);
    if (c) {
        c->pos = malloc((size_t)m->positions * sizeof *c->pos);
        c->scratch = malloc((size_t)m->positions * sizeof *c->scratch);
        c->score = malloc((size_t)m->positions * sizeof *c->score);
    }
    if (!c || !c->pos || !c->scratch || !c->score) {
        if (c) {
            free(c->pos);
            free(c->scratch);
            free(c->score);
        }
        free(c);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    c->t = t;
    c->layer = layer;
    c->sparsity = sparsity;
    *state = c;
    return 0;
}

static int mem_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    mem_cursor *c = state;
    const kvp_trace *t = c->t;
    const float *r = row(t, n, c->layer);
    uint32_t ctx = t->prompt + n;
    a->step = n;
    a->layer = c->layer;
    a->context = ctx;
    a->pos = c->pos;
    a->score = c->score;
    if (t->is_bool) {
        uint32_t k = 0;
        for (uint32_t p = 0; p < ctx; p++)
            if (r[p] != 0) {
                c->pos[k] = p;
                c->score[k++] = 1.0f;
            }
        a->count = k;
        return 0;
    }
    for (uint32_t p = 0; p < ctx; p++)
        if (!isfinite(r[p]))
            return kvp_error_set(err, KVP_EFORMAT, "%s: step %u, layer %u, position %u: "
                                 "score is %s", t->name, n, c->layer, p,
                                 isnan(r[p]) ? "NaN" : "infinite");
    a->count = kvp_access_k(c->sparsity, ctx);
    kvp_topk(r, ctx, a->count, c->pos, c->score, c->scratch);
    return 0;
}

/* The set's size and its positions below `below`, without the set (kvp_cursor_count_below). */
static int mem_count_below(void *state, uint32_t n, uint32_t below, uint32_t *k, uint32_t *h,
                           kvp_error *err)
{
    mem_cursor *c = state;
    const kvp_trace *t = c->t;
    const float *r = row(t, n, c->layer);
    const uint32_t ctx = t->prompt + n, lim = below < ctx ? below : ctx;
    if (t->is_bool) {
        uint32_t low = 0, all;
        for (uint32_t p = 0; p < lim; p++)
            low += r[p] != 0;
        all = low;
        for (uint32_t p = lim; p < ctx; p++)
            all += r[p] != 0;
        *k = all;
        *h = low;
        return 0;
    }
    for (uint32_t p = 0; p < ctx; p++)
        if (!isfinite(r[p]))
            return kvp_error_set(err, KVP_EFORMAT, "%s: step %u, layer %u, position %u: "
                                 "score is %s", t->name, n, c->layer, p,
                                 isnan(r[p]) ? "NaN" : "infinite");
    *k = kvp_access_k(c->sparsity, ctx);
    *h = kvp_topk_count_below(r, ctx, *k, lim, c->scratch, NULL);
    return 0;
}

static void mem_close(void *state)
{
    mem_cursor *c = state;
    if (!c)
        return;
    free(c->pos);
    free(c->scratch);
    free(c->score);
    free(c);
}

static int mem_scores(void *state, uint32_t n, float *out, kvp_error *err)
{
    mem_cursor *c = state;
    (void)err;
    memcpy(out, row(c->t, n, c->layer), (size_t)(c->t->prompt + n) * sizeof *out);
    return 0;
}

static void mem_destroy(kvp_trace *t)
{
    mem_trace *m = t->impl;
    free(m->data);
    free(m);
    free(t);
}

static const kvp_trace_vt mem_vt = {"memory",    mem_open,    mem_step,
                                     mem_close,   mem_scores,  mem_destroy,
                                     NULL,        mem_count_below};

int kvp_trace_from_memory(kvp_trace **out, const float *data, uint32_t steps, uint32_t layers,
                          uint32_t positions, int is_bool, const char *name, kvp_error *err)
{
    *out = NULL;
    if (steps == 0 || layers == 0)
        return kvp_error_set(err, KVP_ESHAPE, "%s: shape (%u, %u, %u) is empty", name, steps,
                             layers, positions);
    if (positions < steps)
        return kvp_error_set(err, KVP_ESHAPE, "%s: %u steps need at least %u positions, "
                             "trace has %u", name, steps, steps, positions);
    size_t cells;
    if (__builtin_mul_overflow((size_t)steps * layers, (size_t)positions, &cells) ||
        cells > SIZE_MAX / sizeof(float))
        return kvp_error_set(err, KVP_ERANGE, "%s: shape too large", name);
    kvp_trace *t = calloc(1, sizeof *t);
    mem_trace *m = calloc(1, sizeof *m);
    float *copy = malloc(cells * sizeof *copy);
    if (!t || !m || !copy) {
        free(t);
        free(m);
        free(copy);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    memcpy(copy, data, cells * sizeof *copy);
    m->data = copy;
    m->positions = positions;
    t->vt = &mem_vt;
    t->steps = steps;
    t->layers = layers;
    t->prompt = positions - steps + 1;
    t->is_bool = is_bool;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->impl = m;
    *out = t;
    return 0;
}
