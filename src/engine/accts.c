/* Several weight accountings of one run (src/engine/runner.h, kvp_run_many_accountings): the
 * check that scenarios are accountings of one run, their cost models, and their results. */
#include "engine/runner.h"

#include <stdio.h>
#include <string.h>

kvp_accts kvp_accts_one(const kvp_scenario *sc)
{
    kvp_accts ac;
    memset(&ac, 0, sizeof ac);
    ac.n = 1;
    ac.sc[0] = sc;
    return ac;
}

/* The parameters in which accountings may differ: the weights, and the reserve that keeps
 * their HBM when they are not counted. */
static int accounting_param(const char *name)
{
    return strcmp(name, "weight_bytes") == 0 || strcmp(name, "reserve") == 0;
}

int kvp_accts_check(const kvp_accts *ac, const kvp_trace *tr, kvp_error *err)
{
    if (ac->n < 1 || ac->n > KVP_ACCTS_MAX)
        return kvp_error_set(err, KVP_EINVAL, "%u accountings: 1 to %d", ac->n, KVP_ACCTS_MAX);
    size_t np;
    const kvp_param_info *params = kvp_params(&np);
    kvp_derived d0;
    int rc;
    for (uint32_t j = 0; j < ac->n; j++) {
        kvp_derived d;
        if ((rc = kvp_scenario_validate(ac->sc[j], err)) < 0 ||
            (rc = kvp_derive_for(ac->sc[j], tr, &d, err)) < 0)
            return rc;
        if (j == 0) {
            d0 = d;
            continue;
        }
        for (size_t i = 0; i < np; i++) {
            char a[64], b[64];
            if (accounting_param(params[i].name))
                continue;
            if (kvp_param_format(ac->sc[0], &params[i], a, sizeof a) < 0 ||
                kvp_param_format(ac->sc[j], &params[i], b, sizeof b) < 0 || strcmp(a, b) != 0)
                return kvp_error_set(err, KVP_EINVAL, "accountings of one run differ only in "
                                     "weight_bytes and reserve; scenario %u has %s=%s, "
                                     "scenario 0 %s", j, params[i].name, b, a);
        }
        if (d.kv_budget != d0.kv_budget)
            return kvp_error_set(err, KVP_EINVAL, "accountings of one run keep HBM's KV "
                                 "budget; scenario %u has %llu bytes, scenario 0 %llu", j,
                                 (unsigned long long)d.kv_budget,
                                 (unsigned long long)d0.kv_budget);
        if (d.tok_bytes != d0.tok_bytes || d.tiers != d0.tiers ||
            memcmp(d.tier_capacity, d0.tier_capacity, sizeof d.tier_capacity) != 0)
            return kvp_error_set(err, KVP_EINVAL, "accountings of one run keep the bytes of a "
                                 "token and every tier's capacity; scenario %u differs from "
                                 "scenario 0 there", j);
    }
    return 0;
}

int kvp_accts_models(const kvp_accts *ac, const kvp_trace *tr, kvp_cost_model *m,
                     kvp_error *err)
{
    for (uint32_t j = 0; j < ac->n; j++) {
        kvp_derived d;
        int rc = kvp_derive_for(ac->sc[j], tr, &d, err);
        if (rc < 0)
            return rc;
        kvp_cost_model_of(&m[j], ac->sc[j], &d);
    }
    return 0;
}

int kvp_result_fill_layers_accts(kvp_result *res, const kvp_accts *ac, const kvp_trace *tr,
                                 const kvp_policy_spec *ps, size_t n, uint32_t layers,
                                 const double *time_s, const kvp_counters *cnt,
                                 const uint32_t *slots, size_t slots_step, kvp_error *err)
{
    int rc = 0;
    for (uint32_t j = 0; j < ac->n && rc >= 0 && n > 0; j++) /* n = 0: res may be NULL */
        rc = kvp_result_fill_layers(res + j * n, ac->sc[j], tr, ps, n, layers,
                                    time_s + (size_t)j * layers * n, cnt, slots, slots_step,
                                    err);
    return rc;
}
