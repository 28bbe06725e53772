/*
 * The engine: the whole cost model of DESIGN.md §3-§4 lives in this file.
 *
 * Each layer is simulated on its own (layers never share slots), so layers run in parallel
 * threads; every per-layer total is kept separately and the layers are summed in layer order,
 * so the result is identical for any thread count.  Byte counts are kept in tokens (exact
 * integers) and multiplied by tok_bytes once, with an overflow check, at the end.
 */
#include "engine.h"

#include <stdio.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
};

typedef struct layer_out {
    double time_s;
    kvp_counters c; /* in tokens */
    int rc;
    kvp_error err;
} layer_out;

typedef struct run_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_policy_spec *ps;
    const kvp_derived *d;
    uint32_t g, slots, lookahead;
    int check;
    layer_out *out;
} run_ctx;

static int touch(struct kvp_engine_layer *e, uint32_t b)
{
    if (!e->was[b]) {
        e->was[b] = (uint8_t)(e->resident[b] ? 2 : 1);
        e->touched[e->ntouched++] = b;
    }
    return 0;
}

int kvp_step_promote(kvp_step *s, uint32_t b)
{
    struct kvp_engine_layer *e = s->eng;
    if (b >= e->nblocks || b >= s->exist_blocks + (s->opens_block ? 1u : 0u) || e->resident[b])
        return KVP_ECHECK;
    touch(e, b);
    e->resident[b] = 1;
    e->nresident++;
    s->nresident = e->nresident;
    return 0;
}

int kvp_step_demote(kvp_step *s, uint32_t b)
{
    struct kvp_engine_layer *e = s->eng;
    if (b >= e->nblocks || !e->resident[b])
        return KVP_ECHECK;
    touch(e, b);
    e->resident[b] = 0;
    e->nresident--;
    s->nresident = e->nresident;
    return 0;
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

/* A growable copy of access sets for the look-ahead ring. */
typedef struct acc_buf {
    kvp_access a;
    uint32_t *pos;
    float *score;
} acc_buf;

static int copy_access(acc_buf *dst, const kvp_access *src)
{
    dst->a = *src;
    memcpy(dst->pos, src->pos, (size_t)src->count * sizeof *dst->pos);
    memcpy(dst->score, src->score, (size_t)src->count * sizeof *dst->score);
    dst->a.pos = dst->pos;
    dst->a.score = dst->score;
    return 0;
}

static int layer_run(uint32_t l, void *user, atomic_ullong *done)
{
    run_ctx *rc = user;
    layer_out *out = &rc->out[l];
    kvp_error *err = &out->err;
    const kvp_scenario *sc = rc->sc;
    const kvp_derived *d = rc->d;
    const kvp_policy_ops *ops = rc->ps->ops;
    const uint32_t P = kvp_trace_prompt(rc->tr), N = kvp_trace_steps(rc->tr);
    const uint32_t g = rc->g, W = rc->lookahead;
    const uint32_t C = P + N - 1; /* positions that ever exist before a step */
    const uint32_t ring_n = W ? W + 1 : 1;
    const double tok = (double)d->tok_bytes;
    int ret = 0;

    kvp_layer_info li = {l, g, rc->slots, P, N, (uint32_t)(((uint64_t)P + N + g - 1) / g),
                         rc->ps->value};
    struct kvp_engine_layer e = {0};
    e.nblocks = li.nblocks;
    kvp_cursor *cur = NULL;
    void *state = NULL;
    int state_ok = 0;

    e.resident = calloc(li.nblocks, 1);
    e.was = calloc(li.nblocks, 1);
    e.touched = malloc((size_t)li.nblocks * sizeof *e.touched);
    uint32_t *acount = calloc(li.nblocks, sizeof *acount);
    double *ascore = calloc(li.nblocks, sizeof *ascore);
    uint32_t *rblock = malloc((size_t)(C + 1) * sizeof *rblock);
    uint32_t *rcount = malloc((size_t)(C + 1) * sizeof *rcount);
    double *rscore = malloc((size_t)(C + 1) * sizeof *rscore);
    acc_buf *ring = calloc(ring_n, sizeof *ring);
    const kvp_access **future = calloc(ring_n, sizeof *future);
    if (!e.resident || !e.was || !e.touched || !acount || !ascore || !rblock || !rcount ||
        !rscore || !ring || !future) {
        ret = kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
        goto done;
    }
    for (uint32_t i = 0; i < ring_n && W; i++) {
        ring[i].pos = malloc((size_t)(C + 1) * sizeof *ring[i].pos);
        ring[i].score = malloc((size_t)(C + 1) * sizeof *ring[i].score);
        if (!ring[i].pos || !ring[i].score) {
            ret = kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
            goto done;
        }
    }
    if ((ret = kvp_cursor_create(&cur, rc->tr, l, sc->sparsity, err)) < 0)
        goto done;

    /* With a look-ahead, A(n .. n+W-1) are kept in the ring at index m % (W+1). */
    uint32_t fetched = 0; /* steps read from the cursor so far */
    kvp_access direct;
    if (W) {
        for (; fetched < W && fetched < N; fetched++) {
            kvp_access a;
            if ((ret = kvp_cursor_next(cur, &a, err)) < 0)
                goto done;
            copy_access(&ring[fetched % ring_n], &a);
        }
    }

    kvp_step s;
    memset(&s, 0, sizeof s);
    s.li = &li;
    s.eng = &e;
    s.resident = e.resident;

    /* Initial placement. */
    {
        kvp_step first = s;
        first.n = 0;
        first.context = P;
        first.exist_blocks = (uint32_t)(((uint64_t)P + g - 1) / g);
        if (W) {
            first.nfuture = N < W ? N : W;
            for (uint32_t i = 0; i < first.nfuture; i++)
                future[i] = &ring[i % ring_n].a;
            first.future = future;
            first.acc = future[0];
        }
        int n0 = ops->init(&state, &li, W ? &first : NULL, e.resident, err);
        if (n0 < 0) {
            ret = n0;
            goto done;
        }
        state_ok = 1;
        e.nresident = 0;
        for (uint32_t b = 0; b < li.nblocks; b++)
            e.nresident += e.resident[b];
        if (e.nresident > li.slots) {
            ret = kvp_error_set(err, KVP_ECHECK, "policy %s: initial placement of layer %u "
                                "holds %u blocks, slots %u", ops->name, l, e.nresident,
                                li.slots);
            goto done;
        }
    }

    double t_layer = 0;
    for (uint32_t n = 0; n < N; n++) {
        const kvp_access *acc;
        if (W) {
            /* Keep A(n .. min(n+W, N)-1) in the ring. */
            if (fetched < N && fetched < n + W) {
                kvp_access a;
                if ((ret = kvp_cursor_next(cur, &a, err)) < 0)
                    goto done;
                copy_access(&ring[fetched % ring_n], &a);
                fetched++;
            }
            s.nfuture = (n + W <= N ? W : N - n);
            for (uint32_t i = 0; i < s.nfuture; i++)
                future[i] = &ring[(n + i) % ring_n].a;
            s.future = future;
            s.prev = n ? &ring[(n - 1) % ring_n].a : NULL;
            acc = future[0];
        } else {
            int r = kvp_cursor_next(cur, &direct, err);
            if (r <= 0) {
                ret = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "trace ended early");
                goto done;
            }
            acc = &direct;
        }
        const uint32_t ctx = P + n;
        s.n = n;
        s.context = ctx;
        s.new_block = ctx / g;
        s.opens_block = ctx % g == 0;
        s.exist_blocks = (uint32_t)(((uint64_t)ctx + g - 1) / g);
        s.acc = acc;

        if (rc->check) {
            for (uint32_t i = 0; i < acc->count; i++)
                if (acc->pos[i] >= ctx || (i && acc->pos[i] <= acc->pos[i - 1])) {
                    ret = kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: access set "
                                        "not ascending inside the context",
                                        kvp_trace_name(rc->tr), n, l);
                    goto done;
                }
        }

        /* 1. Reads. */
        uint64_t hbm_hits = 0;
        uint32_t nread = 0;
        const uint8_t *res = e.resident;
        for (uint32_t i = 0; i < acc->count; i++) {
            uint32_t p = acc->pos[i];
            uint32_t b = g == 1 ? p : p / g;
            if (acount[b] == 0) {
                rblock[nread++] = b;
                ascore[b] = 0;
            }
            acount[b]++;
            ascore[b] += (double)acc->score[i];
            hbm_hits += res[b];
        }
        for (uint32_t i = 0; i < nread; i++) {
            rcount[i] = acount[rblock[i]];
            rscore[i] = ascore[rblock[i]];
        }
        const uint64_t reads = acc->count;
        kvp_counters st = {0};
        st.kv_read_hbm = hbm_hits;
        st.kv_read_dram = reads - hbm_hits;
        st.hbm_read = hbm_hits;
        st.dram_read = reads - hbm_hits;
        st.link_up = reads - hbm_hits;

        /* 2. Placement. */
        s.nread = nread;
        s.read_block = rblock;
        s.read_count = rcount;
        s.read_score = rscore;
        s.nresident = e.nresident;
        if ((ret = ops->step(state, &s, err)) < 0) {
            if (ret == KVP_ECHECK && err->msg[0] == 0)
                kvp_error_set(err, ret, "policy %s: bad promotion or demotion at step %u, "
                              "layer %u", ops->name, n, l);
            goto done;
        }
        if (e.nresident > li.slots) {
            ret = kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u holds %u blocks after "
                                "step %u, slots %u", ops->name, l, e.nresident, n, li.slots);
            goto done;
        }
        for (uint32_t i = 0; i < e.ntouched; i++) {
            uint32_t b = e.touched[i];
            uint8_t before = e.was[b];
            e.was[b] = 0;
            uint64_t lo = (uint64_t)b * g, hi = lo + g;
            uint64_t pres = hi <= ctx ? g : (ctx > lo ? ctx - lo : 0);
            uint64_t a = acount[b];
            if (before == 1 && e.resident[b]) { /* promotion */
                st.dram_read += pres - a;
                st.link_up += pres - a;
                st.hbm_write += pres;
                st.promoted += pres;
            } else if (before == 2 && !e.resident[b]) { /* demotion */
                st.hbm_read += pres - a;
                st.link_down += pres;
                st.dram_write += pres;
                st.demoted += pres;
            }
        }
        e.ntouched = 0;

        /* 3. The new token. */
        if (e.resident[s.new_block]) {
            st.hbm_write += 1;
        } else {
            st.dram_write += 1;
            st.link_down += 1;
        }

        double t_hbm = (d->w_layer + (double)(st.hbm_read + st.hbm_write) * tok) /
                       sc->hbm_bandwidth;
        double t_dram = (double)(st.dram_read + st.dram_write) * tok / sc->dram_bandwidth;
        double t_up = (double)st.link_up * tok / sc->link_bandwidth;
        double t_down = (double)st.link_down * tok / sc->link_bandwidth;
        double t = fmax(fmax(t_hbm, t_dram), fmax(t_up, t_down));
        if (rc->check && !ops->unlimited) {
            double tb = kvp_bound_step(sc, d, (double)reads * tok);
            if (t < tb * (1 - 1e-12)) {
                ret = kvp_error_set(err, KVP_ECHECK, "policy %s: step %u layer %u takes "
                                    "%.17g s, below the bound's %.17g s", ops->name, n, l, t,
                                    tb);
                goto done;
            }
        }
        t_layer += t;
        kvp_counters_add(&out->c, &st);

        for (uint32_t i = 0; i < nread; i++)
            acount[rblock[i]] = 0;
        atomic_fetch_add(done, 1ull);
    }
    out->time_s = t_layer;
    (void)C;

done:
    if (state_ok && ops->free)
        ops->free(state);
    kvp_cursor_free(cur);
    for (uint32_t i = 0; ring && i < ring_n; i++) {
        free(ring[i].pos);
        free(ring[i].score);
    }
    free(ring);
    free((void *)future);
    free(rblock);
    free(rcount);
    free(rscore);
    free(acount);
    free(ascore);
    free(e.resident);
    free(e.was);
    free(e.touched);
    out->rc = ret;
    return ret;
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

int kvp_engine_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                   const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_scenario_derive(sc, &d, err)) < 0)
        return rc;
    if ((rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    const kvp_policy_ops *ops = ps->ops;
    run_ctx ctx;
    ctx.sc = sc;
    ctx.tr = tr;
    ctx.ps = ps;
    ctx.d = &d;
    ctx.g = ops->block_tokens ? ops->block_tokens(ps->value, sc) : 1;
    if (ctx.g == 0)
        return kvp_error_set(err, KVP_EINVAL, "policy %s: block size 0", ops->name);
    ctx.slots = ops->unlimited ? KVP_UNLIMITED_SLOTS : kvp_slots(sc, &d, ctx.g);
    ctx.lookahead = ops->lookahead ? ops->lookahead(ps->value) : 0;
    ctx.check = ro ? ro->check : 0;
    uint32_t L = kvp_trace_layers(tr);
    ctx.out = calloc(L, sizeof *ctx.out);
    int *rcs = calloc(L, sizeof *rcs);
    if (!ctx.out || !rcs) {
        free(ctx.out);
        free(rcs);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    kvp_parallel_layers(L, ro, (uint64_t)L * kvp_trace_steps(tr), layer_run, &ctx, rcs);
    double t = 0;
    kvp_counters c = {0};
    for (uint32_t l = 0; l < L && rc >= 0; l++) {
        if (ctx.out[l].rc < 0) {
            rc = ctx.out[l].rc;
            if (err)
                *err = ctx.out[l].err;
            break;
        }
        t += ctx.out[l].time_s;
        kvp_counters_add(&c, &ctx.out[l].c);
    }
    if (rc >= 0)
        rc = kvp_result_fill(res, sc, tr, ps, ctx.g, ctx.slots, t, &c, err);
    free(ctx.out);
    free(rcs);
    return rc;
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
    if (ps->ops->run)
        return ps->ops->run(sc, tr, ps, ro, res, err);
    return kvp_engine_run(sc, tr, ps, ro, res, err);
}

void kvp_result_speedups(kvp_result *res, size_t n, double static_time_s,
                         double unlimited_time_s)
{
    for (size_t i = 0; i < n; i++) {
        res[i].speedup_vs_static = static_time_s / res[i].total_time_s;
        res[i].speedup_vs_unlimited = unlimited_time_s / res[i].total_time_s;
    }
}
