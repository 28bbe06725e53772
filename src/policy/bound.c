/*
 * `bound`: a provable lower bound on the decode time of every capacity-limited policy
 * (docs/MODEL.md §5).  At each (n, l) at most cap = kv_budget / layers bytes of the a bytes read
 * can come from HBM (the resident set is within the slots), and the rest must cross both
 * DRAM and the link, so the step takes at least
 *     min over h in [0, min(a, cap)] of max((w_layer + h) / B_hbm, (a - h) / min(B_dram, B_link)).
 * The first term grows with h and the second falls, so the minimum is where they meet,
 * clamped to the interval: a closed form, O(1) per step.
 */
#include "engine/engine.h"

#include <math.h>

/* Returns the step's bound and the HBM share h that attains it. */
double kvp_bound_step_h(const kvp_scenario *sc, const kvp_derived *d, double a, double *h_out)
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
    return kvp_bound_step_h(sc, d, a_bytes, &h);
}

int kvp_bound_result(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_bound_sum *bs, kvp_result *res, kvp_error *err)
{
    const kvp_bound_sum b = *bs;
    kvp_derived d;
    int rc = kvp_scenario_derive(sc, &d, err);
    if (rc < 0)
        return rc;
    /* The bound moves no data and its HBM share is fractional: the byte counters hold the
     * reads alone (counted as DRAM reads), and the hit rates are the bound's optimal HBM
     * share (docs/MODEL.md). */
    kvp_counters c = {0};
    c.kv_read_dram = b.reads;
    rc = kvp_result_fill(res, sc, tr, ps, 1, kvp_slots(sc, &d, 1), b.time_s, &c, err);
    if (rc >= 0) {
        double all = (double)res->kv_read_dram, w = (double)res->weight_read;
        res->hbm_hit_rate_kv = all > 0 ? b.h_bytes / all : 1.0;
        res->hbm_hit_rate_all = all + w > 0 ? (b.h_bytes + w) / (all + w) : 1.0;
    }
    return rc;
}

static int bound_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    kvp_bound_sum b;
    int rc = kvp_engine_bound(sc, tr, ro, &b, err);
    return rc < 0 ? rc : kvp_bound_result(sc, tr, ps, &b, res, err);
}

const kvp_policy_ops kvp_policy_bound = {
    .name = "bound",
    .doc = "provable lower bound on the time of every capacity-limited policy",
    .run = bound_run,
};
