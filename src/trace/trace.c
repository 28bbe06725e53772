/* Trace dispatch: one cursor API over every trace source. */
#include "trace/trace.h"
#include "base/error.h"

#include <math.h>
#include <stdlib.h>

kvp_budget kvp_scenario_budget(const kvp_scenario *sc)
{
    kvp_budget b = {sc->sparsity, sc->topk};
    return b;
}

kvp_budget kvp_budget_sparsity(double sparsity)
{
    kvp_budget b = {sparsity, 0};
    return b;
}

kvp_budget kvp_budget_topk(uint32_t topk)
{
    kvp_budget b = {0.0, topk};
    return b;
}

int kvp_budget_same(kvp_budget a, kvp_budget b)
{
    return a.topk == b.topk && (a.topk > 0 || a.sparsity == b.sparsity);
}

int kvp_budget_check(kvp_budget b, const char *name, kvp_error *err)
{
    if (b.topk == 0 && !(b.sparsity >= 0.0 && b.sparsity < 1.0))
        return kvp_error_set(err, KVP_EINVAL, "%s: sparsity %g is not in [0, 1)", name,
                             b.sparsity);
    return 0;
}

uint32_t kvp_access_k(kvp_budget b, uint32_t context)
{
    if (b.topk > 0)
        return b.topk < context ? b.topk : context;
    double k = ceil((1.0 - b.sparsity) * (double)context - 1e-9);
    if (k < 0)
        return 0;
    if (k > (double)context)
        return context;
    return (uint32_t)k;
}

void kvp_trace_free(kvp_trace *t)
{
    if (t)
        t->vt->destroy(t);
}

uint32_t kvp_trace_steps(const kvp_trace *t) { return t->steps; }
uint32_t kvp_trace_layers(const kvp_trace *t) { return t->layers; }
uint32_t kvp_trace_prompt(const kvp_trace *t) { return t->prompt; }
const char *kvp_trace_name(const kvp_trace *t) { return t->name; }
int kvp_trace_is_bool(const kvp_trace *t) { return t->is_bool; }

int kvp_cursor_create(kvp_cursor **out, const kvp_trace *t, uint32_t layer, kvp_budget budget,
                      kvp_error *err)
{
    *out = NULL;
    if (layer >= t->layers)
        return kvp_error_set(err, KVP_EINVAL, "%s: layer %u out of range (trace has %u)",
                             t->name, layer, t->layers);
    kvp_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    c->t = t;
    c->layer = layer;
    int rc = t->vt->cursor_open(t, layer, budget, &c->state, err);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int kvp_cursor_next(kvp_cursor *c, kvp_access *a, kvp_error *err)
{
    if (c->next >= c->t->steps)
        return 0;
    int rc = c->t->vt->cursor_step(c->state, c->next, a, err);
    if (rc < 0)
        return rc;
    c->next++;
    return 1;
}

int kvp_cursor_writes_into(const kvp_cursor *c)
{
    return c->t->vt->step_into != NULL;
}

int kvp_cursor_next_into(kvp_cursor *c, kvp_access *a, uint32_t *pos, float *score,
                         kvp_error *err)
{
    if (c->next >= c->t->steps)
        return 0;
    int rc = c->t->vt->step_into(c->state, c->next, a, pos, score, err);
    if (rc < 0)
        return rc;
    c->next++;
    return 1;
}

int kvp_cursor_count_below(kvp_cursor *c, uint32_t below, uint32_t *k, uint32_t *h,
                           kvp_error *err)
{
    if (c->next >= c->t->steps)
        return 0;
    if (c->t->vt->count_below) {
        int rc = c->t->vt->count_below(c->state, c->next, below, k, h, err);
        if (rc < 0)
            return rc;
        c->next++;
        return 1;
    }
    kvp_access a;
    int rc = kvp_cursor_next(c, &a, err);
    if (rc <= 0)
        return rc;
    kvp_access_count_below(&a, below, k, h);
    return 1;
}

void kvp_access_count_below(const kvp_access *a, uint32_t below, uint32_t *k, uint32_t *h)
{
    uint32_t lo = 0, hi = a->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a->pos[mid] < below)
            lo = mid + 1;
        else
            hi = mid;
    }
    *k = a->count;
    *h = lo;
}

void kvp_cursor_sets_only(kvp_cursor *c)
{
    if (c->t->vt->sets_only)
        c->t->vt->sets_only(c->state);
}

void kvp_cursor_read_with(kvp_cursor *c, kvp_cursor *leader)
{
    if (c->t == leader->t && c->t->vt->read_with)
        c->t->vt->read_with(c->state, leader->state);
}

void kvp_cursor_free(kvp_cursor *c)
{
    if (!c)
        return;
    c->t->vt->cursor_close(c->state);
    free(c);
}
