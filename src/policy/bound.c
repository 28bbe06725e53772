/*
 * `bound`: a provable lower bound on the decode time of every capacity-limited policy
 * (docs/MODEL.md §5): the sum over (n, l) of the least time any placement within HBM's capacity
 * can take for the step's reads (kvp_step_time_bound, src/engine/cost.c).  Every pass of the
 * engine sums it (O(1) a step), so the bound is the sums of a pass: the pass of the simulated
 * policies of the same list when there is one, else a pass of its own.
 */
#include "engine/runner.h"

static int bound_from_sums(const kvp_scenario *sc, const kvp_trace *tr,
                           const kvp_policy_spec *ps, const kvp_pass_sums *b, kvp_result *res,
                           kvp_error *err)
{
    kvp_derived d;
    int rc = kvp_derive_for(sc, tr, &d, err);
    if (rc < 0 || (d.tiers > 2 && (rc = kvp_check_tier_capacity(sc, &d, tr, 1, err)) < 0))
        return rc;
    /* The bound moves no data and its HBM share is fractional: the byte counters hold the
     * reads alone (counted as DRAM reads), and the hit rates are the bound's optimal HBM
     * share (docs/MODEL.md). */
    kvp_counters c = {0};
    c.kv_read[1] = b->reads;
    rc = kvp_result_fill(res, sc, tr, ps, 1, kvp_slots(sc, &d, 1), b->bound_time_s, &c, err);
    if (rc >= 0) {
        double all = (double)res->kv_read_dram, w = (double)res->weight_read;
        res->hbm_hit_rate_kv = all > 0 ? b->bound_hbm_bytes / all : 1.0;
        res->hbm_hit_rate_all = all + w > 0 ? (b->bound_hbm_bytes + w) / (all + w) : 1.0;
    }
    return rc;
}

static int bound_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    kvp_pass_sums b;
    int rc = kvp_engine_pass(sc, tr, ro, &b, err);
    return rc < 0 ? rc : bound_from_sums(sc, tr, ps, &b, res, err);
}

const kvp_policy_ops kvp_policy_bound = {
    .name = "bound",
    .doc = "provable lower bound on the time of every capacity-limited policy",
    .caps = KVP_CAP_BOUND | KVP_CAP_STREAMS,
    .run = bound_run,
    .from_shared_pass = bound_from_sums,
};
