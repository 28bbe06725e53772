/*
 * The engine: the whole cost model of DESIGN.md §3-§4 lives in this file.
 *
 * Each layer is simulated on its own (layers never share slots), so layers run in parallel
 * threads; every per-layer total is kept separately and the layers are summed in layer order,
 * so the result is identical for any thread count.  Byte counts are kept in tokens (exact
 * integers) and multiplied by tok_bytes once, with an overflow check, at the end.
 */
#include "engine/engine.h"
#include "trace/trace.h"

#include <stdio.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const kvp_policy_ops kvp_policy_bound;
extern const kvp_policy_ops kvp_policy_sa;

/* sa runs lookahead many times over the same trace: kvp_run_many gives it a trace cache
 * (src/trace/trace_cache.c) when the cache takes at most this many bytes, and the source itself
 * otherwise.  At the study's scenario the cache takes 1.5 GB (docs/PERF.md). */
#define SA_CACHE_MAX_BYTES (4ull << 30)

/* ---------------------------------------------------------------------------------------- */
/* Running layers in parallel                                                               */

typedef struct par_job {
    uint32_t layers;
    kvp_layer_fn fn;
    void *user;
    atomic_uint next_layer;
    atomic_ullong done; /* progress units reported by workers */
    int *rc;            /* per layer */
} par_job;

static void *par_worker(void *arg)
{
    par_job *job = arg;
    for (;;) {
        unsigned l = atomic_fetch_add(&job->next_layer, 1u);
        if (l >= job->layers)
            break;
        job->rc[l] = job->fn(l, job->user, &job->done);
    }
    return NULL;
}

int kvp_parallel_layers(uint32_t layers, const kvp_run_options *ro, uint64_t total_units,
                        kvp_layer_fn fn, void *user, int *rc_out)
{
    par_job job;
    job.layers = layers;
    job.fn = fn;
    job.user = user;
    atomic_init(&job.next_layer, 0u);
    atomic_init(&job.done, 0ull);
    job.rc = rc_out;
    for (uint32_t l = 0; l < layers; l++)
        rc_out[l] = 0;

    unsigned threads = ro && ro->threads ? ro->threads : 1;
    if (threads > layers)
        threads = layers;
    int want_progress = ro && ro->progress;
    if (threads <= 1 && !want_progress) {
        par_worker(&job);
        return 0;
    }
    pthread_t tid[KVP_MAX_THREADS];
    if (threads > KVP_MAX_THREADS)
        threads = KVP_MAX_THREADS;
    unsigned started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, par_worker, &job) != 0)
            break;
    if (started == 0) {
        par_worker(&job); /* no threads to be had: run here */
    } else if (want_progress) {
        /* Poll the shared counter; the callback runs on this thread only. */
        while (atomic_load(&job.next_layer) < layers + started) {
            uint64_t d = atomic_load(&job.done);
            ro->progress(ro->progress_user, d, total_units);
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (want_progress)
        ro->progress(ro->progress_user, total_units, total_units);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The per-layer simulation                                                                 */

struct kvp_engine_layer {
    uint8_t *resident;
    uint32_t nresident;
    uint32_t nblocks;
    /* blocks whose residency changed this step, with their state before the step */
    uint32_t *touched;
    uint32_t ntouched;
    uint8_t *was;     /* per block: 0 untouched, 1 was out, 2 was in */
    double *rscore;   /* read_score's buffer (kvp_step_read_score) */
};

static int touch(struct kvp_engine_layer *e, uint32_t b)
{
    if (!e->was[b]) {
        e->was[b] = (uint8_t)(e->resident[b] ? 2 : 1);
        e->touched[e->ntouched++] = b;
    }
    return 0;
}

/* The checks are the same for one block or many; a batch keeps the loop in one function
 * (a policy moving thousands of blocks a step paid a call per block, docs/PERF.md). */
uint32_t kvp_step_promote_many(kvp_step *s, const uint32_t *blocks, uint32_t count)
{
    struct kvp_engine_layer *e = s->eng;
    const uint32_t exist = s->exist_blocks + (s->opens_block ? 1u : 0u);
    const uint32_t limit = exist < e->nblocks ? exist : e->nblocks;
    uint32_t i = 0;
    for (; i < count; i++) {
        uint32_t b = blocks[i];
        if (b >= limit || e->resident[b])
            break;
        touch(e, b);
        e->resident[b] = 1;
    }
    e->nresident += i;
    s->nresident = e->nresident;
    return i;
}

uint32_t kvp_step_demote_many(kvp_step *s, const uint32_t *blocks, uint32_t count)
{
    struct kvp_engine_layer *e = s->eng;
    uint32_t i = 0;
    for (; i < count; i++) {
        uint32_t b = blocks[i];
        if (b >= e->nblocks || !e->resident[b])
            break;
        touch(e, b);
        e->resident[b] = 0;
    }
    e->nresident -= i;
    s->nresident = e->nresident;
    return i;
}

int kvp_step_promote(kvp_step *s, uint32_t b)
{
    return kvp_step_promote_many(s, &b, 1) == 1 ? 0 : KVP_ECHECK;
}

int kvp_step_demote(kvp_step *s, uint32_t b)
{
    return kvp_step_demote_many(s, &b, 1) == 1 ? 0 : KVP_ECHECK;
}

const double *kvp_step_read_score(kvp_step *s)
{
    if (!s->read_score) { /* 1-token blocks: the positions' own scores */
        double *r = s->eng->rscore;
        const float *score = s->acc->score;
        for (uint32_t i = 0; i < s->nread; i++)
            r[i] = (double)score[i];
        s->read_score = r;
    }
    return s->read_score;
}

int kvp_step_place_new_default(kvp_step *s)
{
    if (s->opens_block && s->nresident < s->li->slots)
        return kvp_step_promote(s, s->new_block);
    return 0;
}

uint32_t kvp_initial_default(const kvp_layer_info *li, uint8_t *resident)
{
    uint32_t prompt_blocks = (uint32_t)(((uint64_t)li->prompt + li->g - 1) / li->g);
    uint32_t n = prompt_blocks < li->slots ? prompt_blocks : li->slots;
    memset(resident, 1, n);
    return n;
}

/* A copy of an access set, for the look-ahead ring. */
typedef struct acc_buf {
    kvp_access a;
    uint32_t *pos;
    float *score;
} acc_buf;

static void copy_access(acc_buf *dst, const kvp_access *src)
{
    dst->a = *src;
    memcpy(dst->pos, src->pos, (size_t)src->count * sizeof *dst->pos);
    if (src->score)
        memcpy(dst->score, src->score, (size_t)src->count * sizeof *dst->score);
    dst->a.pos = dst->pos;
    dst->a.score = src->score ? dst->score : NULL;
}

/* What one layer of one policy adds up to. */
typedef struct layer_out {
    double time_s;
    kvp_counters c; /* in tokens */
} layer_out;

/* One policy's simulation of one layer: its residency and per-step scratch. */
typedef struct pol_layer {
    const kvp_policy_spec *ps;
    kvp_layer_info li;
    uint32_t lookahead;
    struct kvp_engine_layer e;
    void *state;
    int state_ok;
    uint32_t *acount; /* per block: positions read this step, a(b) (g = 1: see pol_step) */
    int mark_next;    /* g = 1: mark the reads of the next step as they are served */
    uint32_t *rblock, *rcount;
    double *rscore;
    kvp_step s;
    layer_out *out;
} pol_layer;

/* A pass over the trace, simulating every policy of the group on each layer.  The bound of
 * every step is summed alongside (it costs O(1) a step). */
typedef struct run_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_policy_spec *ps; /* npol specs */
    size_t npol;
    const kvp_derived *d;
    uint32_t *g, *slots, *lookahead; /* per policy */
    uint32_t max_lookahead;
    uint32_t *ones; /* read_count of 1-token blocks: all 1 */
    int check;
    volatile sig_atomic_t *cancel; /* kvp_run_options.cancel */
    layer_out *out;       /* [layer * npol + policy] */
    double *bound_time;   /* per layer */
    double *bound_h;      /* per layer: the bound's HBM bytes */
    uint64_t *reads;      /* per layer, tokens */
    kvp_trace *fill;      /* NULL, or an empty cache of tr that the pass fills */
    int scores;           /* 1 if a policy of the group reads scores */
    int *rc;              /* per layer */
    kvp_error *err;       /* per layer */
    kvp_step_record *rec; /* NULL, or [layer * N + step] of the group's only policy */
} run_ctx;

static void pol_free(pol_layer *pl)
{
    if (pl->state_ok && pl->ps->ops->free)
        pl->ps->ops->free(pl->state);
    free(pl->e.resident);
    free(pl->e.was);
    free(pl->e.touched);
    free(pl->acount);
    free(pl->rblock);
    free(pl->rcount);
    free(pl->rscore);
}

static int pol_alloc(pol_layer *pl, uint32_t positions)
{
    uint32_t nb = pl->li.nblocks;
    pl->e.nblocks = nb;
    pl->e.resident = calloc(nb, 1);
    pl->e.was = calloc(nb, 1);
    pl->e.touched = malloc((size_t)nb * sizeof *pl->e.touched);
    pl->acount = calloc(nb, sizeof *pl->acount);
    pl->rblock = malloc((size_t)positions * sizeof *pl->rblock);
    pl->rcount = malloc((size_t)positions * sizeof *pl->rcount);
    pl->rscore = malloc((size_t)positions * sizeof *pl->rscore);
    pl->e.rscore = pl->rscore;
    return pl->e.resident && pl->e.was && pl->e.touched && pl->acount && pl->rblock &&
           pl->rcount && pl->rscore;
}

/* Steps of the access sets are kept in the ring at index m % ring_n. */
static void window(kvp_step *s, const acc_buf *ring, uint32_t ring_n, const kvp_access **future,
                   uint32_t W, uint32_t n, uint32_t N)
{
    s->nfuture = n + W <= N ? W : N - n;
    for (uint32_t i = 0; i < s->nfuture; i++)
        future[i] = &ring[(n + i) % ring_n].a;
    s->future = future;
    s->prev = n ? &ring[(n - 1) % ring_n].a : NULL;
}

static int pol_init(pol_layer *pl, const acc_buf *ring, uint32_t ring_n, const kvp_access **future,
                    kvp_error *err)
{
    const kvp_policy_ops *ops = pl->ps->ops;
    kvp_step *s = &pl->s;
    memset(s, 0, sizeof *s);
    s->li = &pl->li;
    s->eng = &pl->e;
    s->resident = pl->e.resident;
    kvp_step first = *s;
    first.context = pl->li.prompt;
    first.exist_blocks = (uint32_t)(((uint64_t)pl->li.prompt + pl->li.g - 1) / pl->li.g);
    if (pl->lookahead) {
        window(&first, ring, ring_n, future, pl->lookahead, 0, pl->li.steps);
        first.acc = future[0];
    }
    int n0 = ops->init(&pl->state, &pl->li, pl->lookahead ? &first : NULL, pl->e.resident, err);
    if (n0 < 0)
        return n0;
    pl->state_ok = 1;
    pl->e.nresident = 0;
    for (uint32_t b = 0; b < pl->li.nblocks; b++)
        pl->e.nresident += pl->e.resident[b];
    if (pl->e.nresident > pl->li.slots)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: initial placement of layer %u holds "
                             "%u blocks, slots %u", ops->name, pl->li.layer, pl->e.nresident,
                             pl->li.slots);
    return 0;
}

/* With 1-token blocks, a(b) of a block whose residency changed is found by a binary search
 * of the access set, unless so many changed that marking the set is cheaper: acount[p] = n + 1
 * for every position p read at step n (a stamp, so nothing is cleared), one store a read, in
 * the pass that serves the reads when the policy's previous step moved that many blocks, in
 * a pass of its own otherwise.  A search costs some log2(count) mispredicted probes, a mark
 * about one store: marking pays from some count / 50 changes; it is used from count / 32. */
#define READ_MARK_RATIO 32u

/* 1 if position p is in the (ascending) access set. */
static uint32_t is_read(const kvp_access *acc, uint32_t p)
{
    uint32_t lo = 0, hi = acc->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (acc->pos[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < acc->count && acc->pos[lo] == p;
}

/* One step of one policy: reads, placement, the new token, the step's time. */
static int pol_step(pol_layer *pl, const run_ctx *rc, const kvp_access *acc, double bound_t,
                    const acc_buf *ring, uint32_t ring_n, const kvp_access **future,
                    kvp_error *err)
{
    const kvp_scenario *sc = rc->sc;
    const kvp_policy_ops *ops = pl->ps->ops;
    const uint32_t g = pl->li.g, n = acc->step, ctx = acc->context;
    const double tok = (double)rc->d->tok_bytes;
    struct kvp_engine_layer *e = &pl->e;
    kvp_step *s = &pl->s;
    uint32_t *acount = pl->acount;
    uint32_t *rblock = pl->rblock;

    s->n = n;
    s->context = ctx;
    s->new_block = ctx / g;
    s->opens_block = ctx % g == 0;
    s->exist_blocks = (uint32_t)(((uint64_t)ctx + g - 1) / g);
    s->acc = acc;
    if (pl->lookahead)
        window(s, ring, ring_n, future, pl->lookahead, n, pl->li.steps);

    /* 1. Reads: each position from the tier its block is in.  With 1-token blocks the
     * blocks read are the positions themselves, a(b) = 1, and the per-block tallies are not
     * needed: the loop is one gather per read. */
    uint64_t hbm_hits = 0;
    uint32_t nread = 0;
    const uint8_t *res = e->resident;
    const uint32_t stamp = n + 1;
    int marked = 0;
    if (g == 1) {
        if (pl->mark_next) {
            for (uint32_t i = 0; i < acc->count; i++) {
                hbm_hits += res[acc->pos[i]];
                acount[acc->pos[i]] = stamp;
            }
            marked = 1;
        } else {
            for (uint32_t i = 0; i < acc->count; i++)
                hbm_hits += res[acc->pos[i]];
        }
        nread = acc->count;
        s->read_block = acc->pos;
        s->read_count = rc->ones;
        s->read_score = NULL; /* filled on demand by kvp_step_read_score */
    } else {
        /* The set ascends, so the reads of a block are consecutive: one division and one
         * residency lookup per block, the counts and score sums kept in registers (summed
         * in position order, as a per-read accumulation would). */
        const uint32_t *pos = acc->pos, count = acc->count;
        const float *score = acc->score;
        uint32_t *rcount = pl->rcount;
        double *rscore = pl->rscore;
        uint32_t b = UINT32_MAX; /* the last block read; b + 1 wraps to block 0 */
        uint64_t end = 0;        /* its end, (b + 1) g */
        for (uint32_t i = 0; i < count;) {
            /* Most blocks of a context are read: try the next block before dividing. */
            if (pos[i] < end + g) {
                b++;
                end += g;
            } else {
                b = pos[i] / g;
                end = ((uint64_t)b + 1) * g;
            }
            uint32_t j = i;
            if (ops->needs_scores) {
                double sum = 0;
                for (; j < count && pos[j] < end; j++)
                    sum += (double)score[j];
                rscore[nread] = sum;
            } else {
                while (j < count && pos[j] < end)
                    j++;
            }
            rblock[nread] = b;
            rcount[nread++] = j - i;
            acount[b] = j - i;
            hbm_hits += (uint64_t)res[b] * (j - i);
            i = j;
        }
        s->read_block = rblock;
        s->read_count = rcount;
        s->read_score = rscore;
    }
    const uint64_t reads = acc->count;
    kvp_counters st = {0};
    st.kv_read_hbm = hbm_hits;
    st.kv_read_dram = reads - hbm_hits;
    st.hbm_read = hbm_hits;
    st.dram_read = reads - hbm_hits;
    st.link_up = reads - hbm_hits;

    /* 2. Placement, then the charges for what it changed. */
    s->nread = nread;
    s->nresident = e->nresident;
    int ret = ops->step(pl->state, s, err);
    if (ret < 0) {
        if (ret == KVP_ECHECK && err->msg[0] == 0)
            kvp_error_set(err, ret, "policy %s: bad promotion or demotion at step %u, layer %u",
                          ops->name, n, pl->li.layer);
        return ret;
    }
    if (e->nresident > pl->li.slots)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u holds %u blocks after step "
                             "%u, slots %u", ops->name, pl->li.layer, e->nresident, n,
                             pl->li.slots);
    const int mark = g == 1 && (uint64_t)e->ntouched * READ_MARK_RATIO >= acc->count;
    if (mark && !marked)
        for (uint32_t i = 0; i < acc->count; i++)
            acount[acc->pos[i]] = stamp;
    pl->mark_next = mark;
    for (uint32_t i = 0; i < e->ntouched; i++) {
        uint32_t b = e->touched[i];
        uint8_t before = e->was[b];
        e->was[b] = 0;
        uint64_t lo = (uint64_t)b * g, hi = lo + g;
        uint64_t pres = hi <= ctx ? g : (ctx > lo ? ctx - lo : 0);
        uint64_t a = g != 1 ? acount[b] : mark ? acount[b] == stamp : is_read(acc, b);
        if (before == 1 && e->resident[b]) { /* promotion: the unread rest comes up */
            st.dram_read += pres - a;
            st.link_up += pres - a;
            st.hbm_write += pres;
            st.promoted += pres;
        } else if (before == 2 && !e->resident[b]) { /* demotion: the unread rest is read */
            st.hbm_read += pres - a;
            st.link_down += pres;
            st.dram_write += pres;
            st.demoted += pres;
        }
    }
    e->ntouched = 0;

    /* 3. The new token. */
    if (e->resident[s->new_block]) {
        st.hbm_write += 1;
    } else {
        st.dram_write += 1;
        st.link_down += 1;
    }

    double t_hbm = (rc->d->w_layer + (double)(st.hbm_read + st.hbm_write) * tok) /
                   sc->hbm_bandwidth;
    double t_dram = (double)(st.dram_read + st.dram_write) * tok / sc->dram_bandwidth;
    double t_up = (double)st.link_up * tok / sc->link_bandwidth;
    double t_down = (double)st.link_down * tok / sc->link_bandwidth;
    double t = fmax(fmax(t_hbm, t_dram), fmax(t_up, t_down));
    if (rc->check && !ops->unlimited && t < bound_t * (1 - 1e-12))
        return kvp_error_set(err, KVP_ECHECK, "policy %s: step %u layer %u takes %.17g s, "
                             "below the bound's %.17g s", ops->name, n, pl->li.layer, t,
                             bound_t);
    pl->out->time_s += t;
    kvp_counters_add(&pl->out->c, &st);
    if (rc->rec) {
        kvp_step_record *r = &rc->rec[(size_t)pl->li.layer * pl->li.steps + n];
        *r = (kvp_step_record){t, st.kv_read_hbm, st.promoted, st.demoted};
    }
    if (g != 1)
        for (uint32_t i = 0; i < nread; i++)
            acount[rblock[i]] = 0;
    return 0;
}

static int check_access(const kvp_access *acc, const kvp_trace *tr, kvp_error *err)
{
    for (uint32_t i = 0; i < acc->count; i++)
        if (acc->pos[i] >= acc->context || (i && acc->pos[i] <= acc->pos[i - 1]))
            return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: access set not "
                                 "ascending inside the context", kvp_trace_name(tr), acc->step,
                                 acc->layer);
    return 0;
}

static int layer_run(uint32_t l, void *user, atomic_ullong *done)
{
    run_ctx *rc = user;
    kvp_error *err = &rc->err[l];
    const uint32_t P = kvp_trace_prompt(rc->tr), N = kvp_trace_steps(rc->tr);
    const uint32_t W = rc->max_lookahead, ring_n = W ? W + 1 : 1;
    const uint32_t positions = P + N; /* enough for any step's set or blocks */
    const double tok = (double)rc->d->tok_bytes;
    int ret = 0;
    kvp_cursor *cur = NULL;
    pol_layer *pl = calloc(rc->npol ? rc->npol : 1, sizeof *pl);
    acc_buf *ring = calloc(ring_n, sizeof *ring);
    const kvp_access **future = calloc(ring_n, sizeof *future);
    if (!pl || !ring || !future) {
        ret = kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
        goto done;
    }
    for (uint32_t i = 0; i < ring_n && W; i++) {
        ring[i].pos = malloc((size_t)positions * sizeof *ring[i].pos);
        ring[i].score = malloc((size_t)positions * sizeof *ring[i].score);
        if (!ring[i].pos || !ring[i].score) {
            ret = kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
            goto done;
        }
    }
    if ((ret = kvp_cursor_create(&cur, rc->tr, l, rc->sc->sparsity, err)) < 0)
        goto done;
    if (!rc->scores)
        kvp_cursor_sets_only(cur);

    uint32_t fetched = 0; /* steps read from the cursor so far */
    for (; W && fetched < W && fetched < N; fetched++) {
        kvp_access a;
        if ((ret = kvp_cursor_next(cur, &a, err)) < 0)
            goto done;
        copy_access(&ring[fetched % ring_n], &a);
    }
    for (size_t i = 0; i < rc->npol; i++) {
        pol_layer *p = &pl[i];
        p->ps = &rc->ps[i];
        p->lookahead = rc->lookahead[i];
        p->out = &rc->out[(size_t)l * rc->npol + i];
        uint32_t g = rc->g[i];
        p->li = (kvp_layer_info){l, g, rc->slots[i], P, N,
                                 (uint32_t)(((uint64_t)P + N + g - 1) / g), p->ps->value,
                                 rc->sc, rc->d};
        if (!pol_alloc(p, positions)) {
            ret = kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
            goto done;
        }
        if ((ret = pol_init(p, ring, ring_n, future, err)) < 0)
            goto done;
    }

    kvp_access direct;
    for (uint32_t n = 0; n < N; n++) {
        const kvp_access *acc;
        if (rc->cancel && *rc->cancel) {
            ret = kvp_error_set(err, KVP_EINTR, "interrupted at step %u of layer %u", n, l);
            goto done;
        }
        if (W) {
            if (fetched < N && fetched < n + W) {
                kvp_access a;
                if ((ret = kvp_cursor_next(cur, &a, err)) < 0)
                    goto done;
                copy_access(&ring[fetched % ring_n], &a);
                fetched++;
            }
            acc = &ring[n % ring_n].a;
        } else {
            int r = kvp_cursor_next(cur, &direct, err);
            if (r <= 0) {
                ret = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                                kvp_trace_name(rc->tr));
                goto done;
            }
            acc = &direct;
        }
        if (rc->check && (ret = check_access(acc, rc->tr, err)) < 0)
            goto done;
        if (rc->fill && (ret = kvp_trace_cache_record(rc->fill, l, acc, err)) < 0)
            goto done;
        double h;
        double bt = kvp_bound_step_h(rc->sc, rc->d, (double)acc->count * tok, &h);
        rc->bound_time[l] += bt;
        rc->bound_h[l] += h;
        rc->reads[l] += acc->count;
        for (size_t i = 0; i < rc->npol; i++)
            if ((ret = pol_step(&pl[i], rc, acc, bt, ring, ring_n, future, err)) < 0)
                goto done;
        atomic_fetch_add(done, 1ull);
    }

done:
    for (size_t i = 0; pl && i < rc->npol; i++)
        pol_free(&pl[i]);
    free(pl);
    kvp_cursor_free(cur);
    for (uint32_t i = 0; ring && i < ring_n; i++) {
        free(ring[i].pos);
        free(ring[i].score);
    }
    free(ring);
    free((void *)future);
    return rc->rc[l] = ret;
}

void kvp_counters_add(kvp_counters *to, const kvp_counters *c)
{
    to->kv_read_hbm += c->kv_read_hbm;
    to->kv_read_dram += c->kv_read_dram;
    to->hbm_read += c->hbm_read;
    to->hbm_write += c->hbm_write;
    to->dram_read += c->dram_read;
    to->dram_write += c->dram_write;
    to->link_up += c->link_up;
    to->link_down += c->link_down;
    to->promoted += c->promoted;
    to->demoted += c->demoted;
}

static int mul_bytes(uint64_t tokens, uint64_t tok_bytes, uint64_t *out)
{
    return __builtin_mul_overflow(tokens, tok_bytes, out) ? KVP_ERANGE : 0;
}

int kvp_result_fill(kvp_result *res, const kvp_scenario *sc, const kvp_trace *tr,
                    const kvp_policy_spec *ps, uint32_t g, uint32_t slots, double time_s,
                    const kvp_counters *c, kvp_error *err)
{
    kvp_derived d;
    int rc = kvp_scenario_derive(sc, &d, err);
    if (rc < 0)
        return rc;
    memset(res, 0, sizeof *res);
    snprintf(res->policy, sizeof res->policy, "%s", ps->ops->name);
    kvp_policy_format(ps, res->params, sizeof res->params);
    res->steps = kvp_trace_steps(tr);
    res->layers = kvp_trace_layers(tr);
    res->prompt = kvp_trace_prompt(tr);
    res->block_tokens = g;
    res->slots = slots;
    res->online = (uint32_t)(ps->ops->online != 0);
    res->total_time_s = time_s;
    const uint64_t *src[] = {&c->kv_read_hbm, &c->kv_read_dram, &c->hbm_read, &c->hbm_write,
                             &c->dram_read,   &c->dram_write,   &c->link_up,  &c->link_down,
                             &c->promoted,    &c->demoted};
    uint64_t *dst[] = {&res->kv_read_hbm, &res->kv_read_dram, &res->hbm_read,
                       &res->hbm_write,   &res->dram_read,    &res->dram_write,
                       &res->link_up,     &res->link_down,    &res->promoted_bytes,
                       &res->demoted_bytes};
    for (size_t i = 0; i < sizeof src / sizeof *src; i++)
        if (mul_bytes(*src[i], d.tok_bytes, dst[i]) < 0)
            return kvp_error_set(err, KVP_ERANGE, "byte counts overflow 64 bits "
                                 "(batch %u is too large for this trace)", sc->batch);
    if (mul_bytes(sc->weight_bytes, res->steps, &res->weight_read) < 0)
        return kvp_error_set(err, KVP_ERANGE, "weight traffic overflows 64 bits");
    res->throughput_tok_s = (double)sc->batch * res->steps / time_s;
    double kv_all = (double)res->kv_read_hbm + (double)res->kv_read_dram;
    res->hbm_hit_rate_kv = kv_all > 0 ? (double)res->kv_read_hbm / kv_all : 1.0;
    double w = (double)res->weight_read;
    res->hbm_hit_rate_all = kv_all + w > 0 ? ((double)res->kv_read_hbm + w) / (kv_all + w) : 1;
    res->speedup_vs_static = res->speedup_vs_unlimited = 0;
    return 0;
}

int kvp_check_trace(const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err)
{
    if (kvp_trace_layers(tr) != sc->layers)
        return kvp_error_set(err, KVP_ESHAPE, "%s: trace has %u layers; model %s has %u",
                             kvp_trace_name(tr), kvp_trace_layers(tr),
                             sc->model_name[0] ? sc->model_name : "(custom)", sc->layers);
    if (kvp_trace_steps(tr) == 0)
        return kvp_error_set(err, KVP_ESHAPE, "%s: trace has no decode steps",
                             kvp_trace_name(tr));
    return 0;
}

/* One pass over the trace for a group of simulated policies (none: the bound alone). */
static int engine_group(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                        size_t npol, const kvp_run_options *ro, kvp_result *res,
                        kvp_bound_sum *bound, kvp_trace *fill, kvp_step_record *rec,
                        kvp_error *err)
{
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_scenario_derive(sc, &d, err)) < 0)
        return rc;
    if ((rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    uint32_t L = kvp_trace_layers(tr);
    size_t np = npol ? npol : 1;
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    /* The specs as run: scenario-dependent defaults resolved. */
    kvp_policy_spec *rs = calloc(np, sizeof *rs);
    for (size_t i = 0; rs && i < npol; i++) {
        rs[i] = ps[i];
        if (rs[i].ops->resolve)
            rs[i].ops->resolve(rs[i].value, sc);
    }
    ps = rs;
    ctx.sc = sc;
    ctx.tr = tr;
    ctx.ps = ps;
    ctx.npol = npol;
    ctx.d = &d;
    ctx.check = ro ? ro->check : 0;
    ctx.cancel = ro ? ro->cancel : NULL;
    ctx.fill = fill;
    ctx.rec = npol == 1 ? rec : NULL;
    ctx.g = calloc(np, sizeof *ctx.g);
    ctx.slots = calloc(np, sizeof *ctx.slots);
    ctx.lookahead = calloc(np, sizeof *ctx.lookahead);
    ctx.out = calloc((size_t)L * np, sizeof *ctx.out);
    ctx.bound_time = calloc(L, sizeof *ctx.bound_time);
    ctx.bound_h = calloc(L, sizeof *ctx.bound_h);
    ctx.reads = calloc(L, sizeof *ctx.reads);
    ctx.rc = calloc(L, sizeof *ctx.rc);
    ctx.err = calloc(L, sizeof *ctx.err);
    ctx.ones = malloc(((size_t)kvp_trace_prompt(tr) + kvp_trace_steps(tr)) * sizeof *ctx.ones);
    for (size_t i = 0; ctx.ones && i < (size_t)kvp_trace_prompt(tr) + kvp_trace_steps(tr); i++)
        ctx.ones[i] = 1;
    if (!rs || !ctx.g || !ctx.slots || !ctx.lookahead || !ctx.out || !ctx.bound_time ||
        !ctx.bound_h || !ctx.reads || !ctx.rc || !ctx.err || !ctx.ones) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < npol; i++) {
        const kvp_policy_ops *ops = ps[i].ops;
        if (ops->needs_scores && kvp_trace_is_cache_without_scores(tr)) {
            rc = kvp_error_set(err, KVP_EINVAL, "policy %s reads scores; the trace cache of "
                               "%s holds none", ops->name, kvp_trace_name(tr));
            goto done;
        }
        ctx.scores |= ops->needs_scores;
        ctx.g[i] = ops->block_tokens ? ops->block_tokens(ps[i].value, sc) : 1;
        if (ctx.g[i] == 0) {
            rc = kvp_error_set(err, KVP_EINVAL, "policy %s: block size 0", ops->name);
            goto done;
        }
        ctx.slots[i] = ops->unlimited ? KVP_UNLIMITED_SLOTS : kvp_slots(sc, &d, ctx.g[i]);
        ctx.lookahead[i] = ops->lookahead ? ops->lookahead(ps[i].value) : 0;
        if (ctx.lookahead[i] > ctx.max_lookahead)
            ctx.max_lookahead = ctx.lookahead[i];
    }
    kvp_parallel_layers(L, ro, (uint64_t)L * kvp_trace_steps(tr), layer_run, &ctx, ctx.rc);
    /* Sum the layers in layer order: the same result for any thread count. */
    for (uint32_t l = 0; l < L; l++)
        if (ctx.rc[l] < 0) {
            rc = ctx.rc[l];
            if (err)
                *err = ctx.err[l];
            goto done;
        }
    for (size_t i = 0; i < npol && rc >= 0; i++) {
        double t = 0;
        kvp_counters c = {0};
        for (uint32_t l = 0; l < L; l++) {
            t += ctx.out[(size_t)l * npol + i].time_s;
            kvp_counters_add(&c, &ctx.out[(size_t)l * npol + i].c);
        }
        rc = kvp_result_fill(&res[i], sc, tr, &ps[i], ctx.g[i], ctx.slots[i], t, &c, err);
    }
    if (bound && rc >= 0) {
        memset(bound, 0, sizeof *bound);
        for (uint32_t l = 0; l < L; l++) {
            bound->time_s += ctx.bound_time[l];
            bound->h_bytes += ctx.bound_h[l];
            bound->reads += ctx.reads[l];
        }
    }
done:
    free(rs);
    free(ctx.g);
    free(ctx.slots);
    free(ctx.lookahead);
    free(ctx.out);
    free(ctx.bound_time);
    free(ctx.bound_h);
    free(ctx.reads);
    free(ctx.rc);
    free(ctx.err);
    free(ctx.ones);
    return rc;
}

int kvp_engine_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                   const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    return engine_group(sc, tr, ps, 1, ro, res, NULL, NULL, NULL, err);
}

int kvp_engine_run_record(const kvp_scenario *sc, const kvp_trace *tr,
                          const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                          kvp_step_record *rec, kvp_error *err)
{
    if (ps->ops->run)
        return kvp_error_set(err, KVP_EINVAL, "policy %s is not simulated step by step",
                             ps->ops->name);
    return engine_group(sc, tr, ps, 1, ro, res, NULL, NULL, rec, err);
}

int kvp_engine_bound(const kvp_scenario *sc, const kvp_trace *tr, const kvp_run_options *ro,
                     kvp_bound_sum *bound, kvp_error *err)
{
    return engine_group(sc, tr, NULL, 0, ro, NULL, bound, NULL, NULL, err);
}

void kvp_run_options_default(kvp_run_options *ro)
{
    memset(ro, 0, sizeof *ro);
    ro->threads = 2;
}

int kvp_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
            const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    if (!ps || !ps->ops)
        return kvp_error_set(err, KVP_EINVAL, "no policy given");
    return kvp_run_many(sc, tr, ps, 1, ro, res, err);
}

/* Whether a policy that makes many passes (sa) gets a trace cache of tr: when tr is not one
 * already and its cache fits. */
static int wants_cache(const kvp_trace *tr)
{
    return strcmp(tr->vt->kind, "cache") != 0 && kvp_trace_cache_bytes(tr) <= SA_CACHE_MAX_BYTES;
}

/* A policy that makes many passes (sa), on `cache` if given, else on a trace cache of tr
 * built here when one fits, else on tr. */
static int run_cached(const kvp_scenario *sc, const kvp_trace *tr, const kvp_trace *cache,
                      const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                      kvp_error *err)
{
    kvp_trace *own = NULL;
    int rc;
    if (!cache && wants_cache(tr)) {
        if ((rc = kvp_check_trace(sc, tr, err)) < 0 ||
            (rc = kvp_trace_cache(&own, tr, sc->sparsity, ro, err)) < 0)
            return rc;
        cache = own;
    }
    rc = ps->ops->run(sc, cache ? cache : tr, ps, ro, res, err);
    kvp_trace_free(own);
    return rc;
}

int kvp_run_many(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                 size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    /* Simulated policies share one pass over the trace; the others (bound, sa) run alone. */
    kvp_policy_spec *group = calloc(n ? n : 1, sizeof *group);
    size_t *where = calloc(n ? n : 1, sizeof *where);
    kvp_result *gres = calloc(n ? n : 1, sizeof *gres);
    kvp_trace *cache = NULL;
    size_t ng = 0;
    int rc = 0, sa = 0;
    if (!group || !where || !gres) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].ops) {
            rc = kvp_error_set(err, KVP_EINVAL, "no policy given");
            goto done;
        }
        if (!ps[i].ops->run) {
            group[ng] = ps[i];
            where[ng++] = i;
        }
        sa |= ps[i].ops == &kvp_policy_sa;
    }
    /* The pass of the simulated policies sums the bound as it goes (O(1) a step): a bound
     * asked alongside them takes its result from there, not from a second pass.  With an sa
     * in the list, the same pass fills sa's trace cache, which would otherwise cost a pass of
     * its own (a whole generation of a synthetic trace). */
    kvp_bound_sum bsum;
    if (ng && sa && wants_cache(tr) && kvp_check_trace(sc, tr, NULL) == 0 &&
        (rc = kvp_trace_cache_empty(&cache, tr, sc->sparsity, err)) < 0)
        goto done;
    if (ng && (rc = engine_group(sc, tr, group, ng, ro, gres, &bsum, cache, NULL, err)) < 0)
        goto done;
    for (size_t j = 0; j < ng; j++)
        res[where[j]] = gres[j];
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].ops->run)
            continue;
        if (ng && ps[i].ops == &kvp_policy_bound)
            rc = kvp_bound_result(sc, tr, &ps[i], &bsum, &res[i], err);
        else if (ps[i].ops == &kvp_policy_sa)
            rc = run_cached(sc, tr, cache, &ps[i], ro, &res[i], err);
        else
            rc = ps[i].ops->run(sc, tr, &ps[i], ro, &res[i], err);
        if (rc < 0)
            goto done;
    }
done:
    kvp_trace_free(cache);
    free(group);
    free(where);
    free(gres);
    return rc;
}

void kvp_result_speedups(kvp_result *res, size_t n, double static_time_s,
                         double unlimited_time_s)
{
    for (size_t i = 0; i < n; i++) {
        res[i].speedup_vs_static = static_time_s / res[i].total_time_s;
        res[i].speedup_vs_unlimited = unlimited_time_s / res[i].total_time_s;
    }
}
