/* A trace held in memory: for tests, for programs that build traces themselves (step by step,
 * with a builder), and for bindings that hand over a buffer (a NumPy array). */
#include "trace/trace.h"
#include "base/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows are either padded to one length (an (N, L, C) array: len0 = C, grow = 0) or compact,
 * as a builder stores them (row (n, l) holds the P + n used positions: len0 = P, grow = 1). */
typedef struct mem_trace {
    float *data;
    uint32_t len0, grow;
    uint32_t positions; /* the longest row */
} mem_trace;

typedef struct mem_cursor {
    const kvp_trace *t;
    uint32_t layer;
    kvp_budget budget;
    uint32_t *pos, *scratch;
    float *score;
} mem_cursor;

static size_t row_len(const mem_trace *m, uint32_t n)
{
    return (size_t)m->len0 + (size_t)m->grow * n;
}

static const float *row(const kvp_trace *t, uint32_t n, uint32_t l)
{
    const mem_trace *m = t->impl;
    /* rows before step n: n rows of len0 per layer, plus 0 + 1 + ... + (n-1) if they grow */
    size_t before = (size_t)n * m->len0 + (size_t)m->grow * ((size_t)n * ((size_t)n - 1) / 2);
    return m->data + (size_t)t->layers * before + (size_t)l * row_len(m, n);
}

static int mem_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
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
    c->budget = budget;
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
    a->bits = NULL;
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
    a->count = kvp_access_k(c->budget, ctx);
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
    *k = kvp_access_k(c->budget, ctx);
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
                                     NULL,        mem_count_below, NULL,
                                     NULL};

/* Wraps data (owned from now on) as a trace. */
static int mem_wrap(kvp_trace **out, float *data, uint32_t steps, uint32_t layers,
                    uint32_t len0, uint32_t grow, uint32_t prompt, int is_bool,
                    const char *name, kvp_error *err)
{
    kvp_trace *t = calloc(1, sizeof *t);
    mem_trace *m = calloc(1, sizeof *m);
    if (!t || !m) {
        free(t);
        free(m);
        free(data);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", name);
    }
    m->data = data;
    m->len0 = len0;
    m->grow = grow;
    m->positions = len0 + grow * (steps - 1);
    t->vt = &mem_vt;
    t->steps = steps;
    t->layers = layers;
    t->prompt = prompt;
    t->is_bool = is_bool;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->impl = m;
    *out = t;
    return 0;
}

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
    float *copy = malloc(cells * sizeof *copy);
    if (!copy)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", name);
    memcpy(copy, data, cells * sizeof *copy);
    return mem_wrap(out, copy, steps, layers, positions, 0, positions - steps + 1, is_bool,
                    name, err);
}

/* ---------------------------------------------------------------------------------------- */
/* A caller's buffer of any accepted dtype, checked at once */

static int bad_value(const char *name, uint32_t n, uint32_t l, uint32_t p, float v,
                     kvp_error *err)
{
    return kvp_error_set(err, KVP_EFORMAT, "%s: step %u, layer %u, position %u: score is %s",
                         name, n, l, p, isnan(v) ? "NaN" : v < 0 ? "-inf" : "+inf");
}

int kvp_trace_from_buffer(kvp_trace **out, const void *data, int dtype, size_t ndim,
                          const uint64_t *shape, const char *name, kvp_error *err)
{
    *out = NULL;
    if (!name)
        name = "buffer";
    if (dtype != KVP_DTYPE_F32 && dtype != KVP_DTYPE_F16 && dtype != KVP_DTYPE_BOOL)
        return kvp_error_set(err, KVP_EINVAL, "%s: dtype code %d is not supported (float32, "
                             "float16 or bool)", name, dtype);
    if (ndim == 4 && shape) {
        /* (N, L, H, C) is (N, L * H, C) in memory: one stream per head, as a 4-D .npy file
         * (src/trace/streams.c). */
        if (shape[2] == 0)
            return kvp_error_set(err, KVP_ESHAPE, "%s: shape (%llu, %llu, %llu, %llu) has no "
                                 "heads", name, (unsigned long long)shape[0],
                                 (unsigned long long)shape[1], (unsigned long long)shape[2],
                                 (unsigned long long)shape[3]);
        if (shape[1] > UINT32_MAX || shape[2] > UINT32_MAX || shape[1] * shape[2] > UINT32_MAX)
            return kvp_error_set(err, KVP_ERANGE, "%s: layers times heads must be at most %u",
                                 name, UINT32_MAX);
        const uint64_t flat[3] = {shape[0], shape[1] * shape[2], shape[3]};
        kvp_trace *base;
        int rc = kvp_trace_from_buffer(&base, data, dtype, 3, flat, name, err);
        if (rc < 0)
            return rc;
        return kvp_trace_heads_of(out, base, (uint32_t)shape[2], err);
    }
    if (ndim != 3 || !shape)
        return kvp_error_set(err, KVP_ESHAPE, "%s: %zu dimension%s; expected 3 (steps, "
                             "layers, positions) or 4 (steps, layers, heads, positions)",
                             name, ndim, ndim == 1 ? "" : "s");
    uint64_t n = shape[0], l = shape[1], c = shape[2];
    if (n == 0 || l == 0)
        return kvp_error_set(err, KVP_ESHAPE, "%s: shape (%llu, %llu, %llu) has no %s", name,
                             (unsigned long long)n, (unsigned long long)l,
                             (unsigned long long)c, n == 0 ? "steps" : "layers");
    if (n > UINT32_MAX || l > UINT32_MAX || c > UINT32_MAX)
        return kvp_error_set(err, KVP_ERANGE, "%s: each dimension must be at most %u", name,
                             UINT32_MAX);
    if (c < n)
        return kvp_error_set(err, KVP_ESHAPE, "%s: shape (%llu, %llu, %llu): %llu steps need "
                             "at least %llu positions (the prompt is positions - steps + 1)",
                             name, (unsigned long long)n, (unsigned long long)l,
                             (unsigned long long)c, (unsigned long long)n,
                             (unsigned long long)n);
    size_t cells;
    if (__builtin_mul_overflow((size_t)n * l, (size_t)c, &cells) ||
        cells > SIZE_MAX / sizeof(float))
        return kvp_error_set(err, KVP_ERANGE, "%s: shape too large", name);
    if (!data)
        return kvp_error_set(err, KVP_EINVAL, "%s: no data", name);
    float *copy = malloc(cells * sizeof *copy);
    if (!copy)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory (%zu bytes)", name,
                             cells * sizeof *copy);
    uint32_t steps = (uint32_t)n, layers = (uint32_t)l, cols = (uint32_t)c;
    uint32_t prompt = cols - steps + 1;
    for (uint32_t s = 0; s < steps; s++)
        for (uint32_t y = 0; y < layers; y++) {
            size_t at = ((size_t)s * layers + y) * cols;
            float *dst = copy + at;
            if (dtype == KVP_DTYPE_BOOL) {
                const unsigned char *src = (const unsigned char *)data + at;
                for (uint32_t p = 0; p < cols; p++)
                    dst[p] = src[p] ? 1.0f : 0.0f;
                continue;
            }
            if (dtype == KVP_DTYPE_F32) {
                memcpy(dst, (const float *)data + at, (size_t)cols * sizeof *dst);
            } else {
                const uint16_t *src = (const uint16_t *)data + at;
                for (uint32_t p = 0; p < cols; p++)
                    dst[p] = kvp_half_to_float(src[p]);
            }
            /* Only the used positions must be finite: padding may hold anything. */
            for (uint32_t p = 0; p < prompt + s; p++)
                if (!isfinite(dst[p])) {
                    int rc = bad_value(name, s, y, p, dst[p], err);
                    free(copy);
                    return rc;
                }
        }
    return mem_wrap(out, copy, steps, layers, cols, 0, prompt, dtype == KVP_DTYPE_BOOL, name,
                    err);
}

/* ---------------------------------------------------------------------------------------- */
/* A builder: steps appended one at a time, rows stored without padding */

struct kvp_trace_builder {
    float *data;
    size_t used, cap; /* floats */
    uint32_t layers, prompt, steps;
    int is_bool;
    char name[256];
};

int kvp_trace_builder_create(kvp_trace_builder **out, uint32_t layers, uint32_t prompt,
                             int is_bool, const char *name, kvp_error *err)
{
    *out = NULL;
    if (!name)
        name = "builder";
    if (layers == 0)
        return kvp_error_set(err, KVP_EINVAL, "%s: a trace needs at least one layer", name);
    if (prompt == 0)
        return kvp_error_set(err, KVP_EINVAL, "%s: a trace needs a prompt of at least one "
                             "token", name);
    kvp_trace_builder *b = calloc(1, sizeof *b);
    if (!b)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", name);
    b->layers = layers;
    b->prompt = prompt;
    b->is_bool = is_bool != 0;
    snprintf(b->name, sizeof b->name, "%s", name);
    *out = b;
    return 0;
}

uint32_t kvp_trace_builder_steps(const kvp_trace_builder *b)
{
    return b ? b->steps : 0;
}

int kvp_trace_builder_append(kvp_trace_builder *b, const float *scores, kvp_error *err)
{
    if (!b || !scores)
        return kvp_error_set(err, KVP_EINVAL, "trace builder: no builder or no scores");
    uint32_t n = b->steps;
    if (n == UINT32_MAX || b->prompt > UINT32_MAX - n)
        return kvp_error_set(err, KVP_ERANGE, "%s: step %u: the context would pass %u "
                             "positions", b->name, n, UINT32_MAX);
    uint32_t ctx = b->prompt + n;
    size_t cells;
    if (__builtin_mul_overflow((size_t)b->layers, (size_t)ctx, &cells) ||
        cells > SIZE_MAX / sizeof(float) - b->used)
        return kvp_error_set(err, KVP_ERANGE, "%s: step %u: the trace is too large", b->name,
                             n);
    if (!b->is_bool)
        for (uint32_t l = 0; l < b->layers; l++)
            for (uint32_t p = 0; p < ctx; p++) {
                float v = scores[(size_t)l * ctx + p];
                if (!isfinite(v))
                    return bad_value(b->name, n, l, p, v, err);
            }
    if (b->used + cells > b->cap) {
        size_t cap = b->cap ? b->cap : cells * 8;
        while (cap < b->used + cells)
            cap = cap > SIZE_MAX / sizeof(float) / 2 ? SIZE_MAX / sizeof(float) : cap * 2;
        float *grown = realloc(b->data, cap * sizeof *grown);
        if (!grown)
            return kvp_error_set(err, KVP_ENOMEM, "%s: step %u: out of memory", b->name, n);
        b->data = grown;
        b->cap = cap;
    }
    float *dst = b->data + b->used;
    if (b->is_bool)
        for (size_t i = 0; i < cells; i++)
            dst[i] = scores[i] != 0 ? 1.0f : 0.0f;
    else
        memcpy(dst, scores, cells * sizeof *dst);
    b->used += cells;
    b->steps++;
    return 0;
}

int kvp_trace_builder_finish(kvp_trace_builder *b, kvp_trace **out, kvp_error *err)
{
    *out = NULL;
    if (!b)
        return kvp_error_set(err, KVP_EINVAL, "trace builder: no builder");
    if (b->steps == 0)
        return kvp_error_set(err, KVP_ESHAPE, "%s: no step was appended", b->name);
    float *data = b->data;
    if (b->used < b->cap) { /* give back what doubling reserved */
        float *fit = realloc(data, b->used * sizeof *fit);
        if (fit)
            data = fit;
    }
    uint32_t steps = b->steps;
    b->data = NULL;
    b->used = b->cap = 0;
    b->steps = 0;
    return mem_wrap(out, data, steps, b->layers, b->prompt, 1, b->prompt, b->is_bool, b->name,
                    err);
}

void kvp_trace_builder_free(kvp_trace_builder *b)
{
    if (!b)
        return;
    free(b->data);
    free(b);
}
