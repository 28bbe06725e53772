/* Placement schedules (src/policy/schedule.h) and `replay`, the policy that follows one. */
#include "policy/schedule.h"
#include "base/error.h"
#include "engine/runner.h"

#include <stdlib.h>
#include <string.h>

/* One kind of move of one layer, in step order: step + 1 (0: the initial placement) and the
 * token, packed as (step + 1) << 32 | token. */
typedef struct move_list {
    uint64_t *m;
    size_t n, cap;
} move_list;

/* Where tokens go below HBM, with more than two tiers: step + 1, token, tier >= 1. */
typedef struct tier_move {
    uint32_t step1, x, tier;
} tier_move;

typedef struct tier_list {
    tier_move *m;
    size_t n, cap;
} tier_list;

typedef struct sched_layer {
    move_list prom, dem;
    tier_list below;
} sched_layer;

struct kvp_schedule {
    uint32_t layers, steps;
    sched_layer *layer;
};

int kvp_schedule_create(kvp_schedule **out, uint32_t layers, uint32_t steps, kvp_error *err)
{
    kvp_schedule *s = calloc(1, sizeof *s);
    if (s)
        s->layer = calloc(layers ? layers : 1, sizeof *s->layer);
    if (!s || !s->layer) {
        free(s);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory for a schedule");
    }
    s->layers = layers;
    s->steps = steps;
    *out = s;
    return 0;
}

void kvp_schedule_free(kvp_schedule *s)
{
    if (!s)
        return;
    for (uint32_t l = 0; l < s->layers; l++) {
        free(s->layer[l].prom.m);
        free(s->layer[l].dem.m);
        free(s->layer[l].below.m);
    }
    free(s->layer);
    free(s);
}

int kvp_schedule_add(kvp_schedule *s, uint32_t layer, int64_t n, uint32_t x, int promote,
                     kvp_error *err)
{
    if (layer >= s->layers || n < -1 || n >= (int64_t)s->steps || (n < 0 && !promote))
        return kvp_error_set(err, KVP_EINVAL, "schedule: move at step %lld of layer %u is out "
                             "of range", (long long)n, layer);
    move_list *ml = promote ? &s->layer[layer].prom : &s->layer[layer].dem;
    uint64_t v = (uint64_t)(n + 1) << 32 | x;
    if (ml->n && (ml->m[ml->n - 1] >> 32) > (uint64_t)(n + 1))
        return kvp_error_set(err, KVP_EINVAL, "schedule: moves of layer %u added out of step "
                             "order", layer);
    if (ml->n == ml->cap) {
        size_t cap = ml->cap ? 2 * ml->cap : 1024;
        uint64_t *m = realloc(ml->m, cap * sizeof *m);
        if (!m)
            return kvp_error_set(err, KVP_ENOMEM, "out of memory for a schedule");
        ml->m = m;
        ml->cap = cap;
    }
    ml->m[ml->n++] = v;
    return 0;
}

int kvp_schedule_add_tier(kvp_schedule *s, uint32_t layer, int64_t n, uint32_t x, uint32_t tier,
                          kvp_error *err)
{
    if (layer >= s->layers || n < -1 || n >= (int64_t)s->steps || tier == 0 ||
        tier >= KVP_MAX_TIERS)
        return kvp_error_set(err, KVP_EINVAL, "schedule: token %u to tier %u at step %lld of "
                             "layer %u is out of range", x, tier, (long long)n, layer);
    tier_list *tl = &s->layer[layer].below;
    if (tl->n && tl->m[tl->n - 1].step1 > (uint32_t)(n + 1))
        return kvp_error_set(err, KVP_EINVAL, "schedule: tiers of layer %u added out of step "
                             "order", layer);
    if (tl->n == tl->cap) {
        size_t cap = tl->cap ? 2 * tl->cap : 256;
        tier_move *m = realloc(tl->m, cap * sizeof *m);
        if (!m)
            return kvp_error_set(err, KVP_ENOMEM, "out of memory for a schedule");
        tl->m = m;
        tl->cap = cap;
    }
    tl->m[tl->n++] = (tier_move){(uint32_t)(n + 1), x, tier};
    return 0;
}

/* The fastest tier below HBM with a free slot, or 0 if none. */
static uint32_t free_tier(const uint32_t *count, uint32_t tiers, const uint32_t *tslots)
{
    for (uint32_t k = 1; k < tiers; k++)
        if (count[k] < tslots[k])
            return k;
    return 0;
}

int kvp_schedule_place_below(kvp_schedule *s, uint32_t layer, uint32_t prompt, uint32_t tiers,
                             const uint32_t *tslots, kvp_error *err)
{
    if (layer >= s->layers || tiers < 3 || tiers > KVP_MAX_TIERS || s->layer[layer].below.n)
        return kvp_error_set(err, KVP_EINVAL, "schedule: no tiers to place layer %u over",
                             layer);
    const sched_layer *sl = &s->layer[layer];
    const size_t X = (size_t)prompt + s->steps;
    uint8_t *where = calloc(X ? X : 1, 1); /* the tier below HBM, 0: in HBM or not written */
    uint8_t *hbm = calloc(X ? X : 1, 1);
    uint32_t *out = malloc((X ? X : 1) * sizeof *out); /* a step's tokens leaving HBM */
    uint32_t count[KVP_MAX_TIERS] = {0};
    size_t ip = 0, id = 0;
    int rc = where && hbm && out ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory for a "
                                                     "schedule");
    for (; rc >= 0 && ip < sl->prom.n && (sl->prom.m[ip] >> 32) == 0; ip++)
        hbm[(uint32_t)sl->prom.m[ip]] = 1;
    for (int64_t n = -1; n < (int64_t)s->steps && rc >= 0; n++) {
        uint32_t nout = 0;
        if (n < 0) {
            for (uint32_t x = 0; x < prompt; x++)
                if (!hbm[x])
                    out[nout++] = x;
        } else {
            const uint64_t at = (uint64_t)(n + 1);
            for (; id < sl->dem.n && (sl->dem.m[id] >> 32) == at; id++) {
                uint32_t x = (uint32_t)sl->dem.m[id];
                if (x < X && hbm[x]) {
                    hbm[x] = 0;
                    out[nout++] = x;
                }
            }
            for (; ip < sl->prom.n && (sl->prom.m[ip] >> 32) == at; ip++) {
                uint32_t x = (uint32_t)sl->prom.m[ip];
                if (x >= X)
                    continue; /* the replay refuses it */
                if (where[x])
                    count[where[x]]--;
                where[x] = 0;
                hbm[x] = 1;
            }
            uint32_t x = prompt + (uint32_t)n; /* the new token */
            if (!hbm[x])
                out[nout++] = x;
        }
        for (uint32_t i = 0; i < nout && rc >= 0; i++) {
            uint32_t x = out[i];
            if (hbm[x])
                continue; /* demoted and promoted again in the same step */
            uint32_t k = free_tier(count, tiers, tslots);
            if (k == 0) {
                rc = kvp_error_set(err, KVP_ECHECK, "schedule: the tiers below HBM of layer "
                                   "%u are full at step %lld", layer, (long long)n);
                break;
            }
            where[x] = (uint8_t)k;
            count[k]++;
            rc = kvp_schedule_add_tier(s, layer, n, x, k, err);
        }
    }
    free(where);
    free(hbm);
    free(out);
    return rc;
}

uint64_t kvp_schedule_moves(const kvp_schedule *s, uint32_t layer)
{
    return layer < s->layers ? s->layer[layer].prom.n + s->layer[layer].dem.n : 0;
}

/* The replay policy: per layer, a cursor into each move list. */
typedef struct replay_state {
    const sched_layer *sl;
    size_t ip, id, it;
    uint32_t *buf; /* the tokens of one step's moves */
} replay_state;

int kvp_replay_init(void **state, const kvp_schedule *s, const kvp_layer_info *li,
                    uint8_t *resident, kvp_error *err)
{
    if (!s || li->layer >= s->layers || s->steps != li->steps)
        return kvp_error_set(err, KVP_EINVAL, "replay: no schedule for layer %u", li->layer);
    replay_state *st = calloc(1, sizeof *st);
    if (st)
        st->buf = malloc(((size_t)li->nblocks + 1) * sizeof *st->buf);
    if (!st || !st->buf) {
        if (st)
            free(st);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", li->layer);
    }
    st->sl = &s->layer[li->layer];
    const move_list *p = &st->sl->prom;
    for (; st->ip < p->n && (p->m[st->ip] >> 32) == 0; st->ip++) {
        uint32_t x = (uint32_t)p->m[st->ip];
        if (x >= li->nblocks || !kvp_block_in_prompt(li, x) || resident[x]) {
            kvp_replay_free(st);
            return kvp_error_set(err, KVP_ECHECK, "replay: initial placement of layer %u "
                                 "names token %u twice or outside the prompt", li->layer, x);
        }
        resident[x] = 1;
    }
    const tier_list *tl = &st->sl->below; /* the engine reads k + 1 as tier k (KVP_CAP_TIERS) */
    for (; st->it < tl->n && tl->m[st->it].step1 == 0; st->it++) {
        uint32_t x = tl->m[st->it].x;
        if (x >= li->prompt || resident[x]) {
            kvp_replay_free(st);
            return kvp_error_set(err, KVP_ECHECK, "replay: initial placement of layer %u "
                                 "names token %u twice or outside the prompt", li->layer, x);
        }
        resident[x] = (uint8_t)(tl->m[st->it].tier + 1);
    }
    *state = st;
    return 0;
}

static int replay_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *err)
{
    (void)first;
    return kvp_replay_init(state, li->ctx, li, resident, err);
}

/* The tokens of list ml at step n (stored as n + 1), from *at on. */
static uint32_t take(const move_list *ml, size_t *at, uint32_t n, uint32_t *buf)
{
    uint32_t k = 0;
    for (; *at < ml->n && (ml->m[*at] >> 32) == (uint64_t)n + 1; (*at)++)
        buf[k++] = (uint32_t)ml->m[*at];
    return k;
}

int kvp_replay_step(void *state, kvp_step *s, kvp_error *err)
{
    replay_state *st = state;
    uint32_t k = take(&st->sl->dem, &st->id, s->n, st->buf);
    if (kvp_step_demote_many(s, st->buf, k) != k)
        return kvp_error_set(err, KVP_ECHECK, "replay: step %u of layer %u demotes a token "
                             "that is not in HBM", s->n, s->li->layer);
    k = take(&st->sl->prom, &st->ip, s->n, st->buf);
    if (kvp_step_promote_many(s, st->buf, k) != k)
        return kvp_error_set(err, KVP_ECHECK, "replay: step %u of layer %u promotes a token "
                             "already in HBM or not yet written", s->n, s->li->layer);
    const tier_list *tl = &st->sl->below;
    for (; st->it < tl->n && tl->m[st->it].step1 == s->n + 1; st->it++)
        if (kvp_step_set_tier(s, tl->m[st->it].x, tl->m[st->it].tier) < 0)
            return kvp_error_set(err, KVP_ECHECK, "replay: step %u of layer %u puts token %u "
                                 "in tier %u", s->n, s->li->layer, tl->m[st->it].x,
                                 tl->m[st->it].tier);
    return 0;
}

void kvp_replay_free(void *state)
{
    replay_state *st = state;
    if (st)
        free(st->buf);
    free(st);
}

static const kvp_policy_ops replay_ops = {
    .name = "replay",
    .doc = "follows a schedule made by an offline planner",
    .caps = KVP_CAP_TIERS | KVP_CAP_STREAMS,
    .init = replay_init,
    .step = kvp_replay_step,
    .free = kvp_replay_free,
};

void kvp_schedule_spec(kvp_policy_spec *ps, const kvp_schedule *s)
{
    memset(ps, 0, sizeof *ps);
    ps->ops = &replay_ops;
    ps->ctx = s;
}

int kvp_schedule_replay(const kvp_scenario *sc, const kvp_trace *tr, const kvp_schedule *s,
                        const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    kvp_policy_spec ps;
    kvp_schedule_spec(&ps, s);
    return kvp_engine_run(sc, tr, &ps, ro, res, err);
}
