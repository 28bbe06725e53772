/*
 * `bound`: a provable lower bound on the decode time of every capacity-limited policy
 * (DESIGN.md §5).  At each (n, l) at most cap = kv_budget / layers bytes of the a bytes read
 * can come from HBM (the resident set is within the slots), and the rest must cross both
 * DRAM and the link, so the step takes at least
 *     min over h in [0, min(a, cap)] of max((w_layer + h) / B_hbm, (a - h) / min(B_dram, B_link)).
 * The first term grows with h and the second falls, so the minimum is where they meet,
 * clamped to the interval: a closed form, O(1) per step.
 */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Returns the step's bound and the HBM share h that attains it. */
static double bound_step_h(const kvp_scenario *sc, const kvp_derived *d, double a, double *h_out)
{
    double bh = sc->hbm_bandwidth;
    double bd = fmin(sc->dram_bandwidth, sc->link_bandwidth);
    double hmax = fmin(a, d->cap_layer);
    double h = (a * bh - d->w_layer * bd) / (bh + bd);
    if (h < 0)
        h = 0;
    if (h > hmax)
        h = hmax;
    *h_out = h;
    return fmax((d->w_layer + h) / bh, (a - h) / bd);
}

double kvp_bound_step(const kvp_scenario *sc, const kvp_derived *d, double a_bytes)
{
    double h;
    return bound_step_h(sc, d, a_bytes, &h);
}

typedef struct bound_out {
    double time_s, h_bytes;
    uint64_t reads; /* tokens */
    int rc;
    kvp_error err;
} bound_out;

typedef struct bound_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_derived *d;
    bound_out *out;
} bound_ctx;

static int bound_layer(uint32_t l, void *user, atomic_ullong *done)
{
    bound_ctx *bc = user;
    bound_out *o = &bc->out[l];
    kvp_cursor *cur;
    int rc = kvp_cursor_create(&cur, bc->tr, l, bc->sc->sparsity, &o->err);
    if (rc < 0)
        return o->rc = rc;
    double tok = (double)bc->d->tok_bytes;
    kvp_access a;
    while ((rc = kvp_cursor_next(cur, &a, &o->err)) > 0) {
        double h;
        o->time_s += bound_step_h(bc->sc, bc->d, (double)a.count * tok, &h);
        o->h_bytes += h;
        o->reads += a.count;
        atomic_fetch_add(done, 1ull);
    }
    kvp_cursor_free(cur);
    return o->rc = rc < 0 ? rc : 0;
}

static int bound_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_scenario_derive(sc, &d, err)) < 0)
        return rc;
    if ((rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    uint32_t L = kvp_trace_layers(tr);
    bound_ctx bc = {sc, tr, &d, calloc(L, sizeof(bound_out))};
    int *rcs = calloc(L, sizeof *rcs);
    if (!bc.out || !rcs) {
        free(bc.out);
        free(rcs);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    kvp_parallel_layers(L, ro, (uint64_t)L * kvp_trace_steps(tr), bound_layer, &bc, rcs);
    double t = 0, h = 0;
    uint64_t reads = 0;
    for (uint32_t l = 0; l < L; l++) {
        if (bc.out[l].rc < 0) {
            rc = bc.out[l].rc;
            if (err)
                *err = bc.out[l].err;
            break;
        }
        t += bc.out[l].time_s;
        h += bc.out[l].h_bytes;
        reads += bc.out[l].reads;
    }
    if (rc >= 0) {
        /* The bound moves no data and its HBM share is fractional: the byte counters hold
         * the reads alone (all counted as DRAM reads), and the hit rates are the bound's
         * optimal HBM share. */
        kvp_counters c = {0};
        c.kv_read_dram = reads;
        rc = kvp_result_fill(res, sc, tr, ps, 1, kvp_slots(sc, &d, 1), t, &c, err);
        if (rc >= 0) {
            double all = (double)res->kv_read_dram, w = (double)res->weight_read;
            res->hbm_hit_rate_kv = all > 0 ? h / all : 1.0;
            res->hbm_hit_rate_all = all + w > 0 ? (h + w) / (all + w) : 1.0;
        }
    }
    free(bc.out);
    free(rcs);
    return rc;
}

const kvp_policy_ops kvp_policy_bound = {
    .name = "bound",
    .doc = "provable lower bound on the time of every capacity-limited policy",
    .run = bound_run,
};
