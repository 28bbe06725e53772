/* Internal: the engine's runs, for policies built on it (bound, sa) and the benchmarks.
 * The step-level interface the engine offers policies is src/policy/policy.h. */
#ifndef KVP_RUNNER_H
#define KVP_RUNNER_H

#include "engine/cost.h"
#include "policy/policy.h"

/* What a pass over a trace sums whatever policies it simulates (it costs O(1) a step): the
 * bound's time (docs/MODEL.md section 5, `bound`) and the reads.  A policy with from_shared_pass
 * takes its result from these instead of a pass of its own. */
struct kvp_pass_sums {
    double bound_time_s;    /* the bound on T */
    double bound_hbm_bytes; /* bytes read from HBM at the bound's optimum, summed */
    uint64_t reads;         /* tokens read */
};
typedef struct kvp_pass_sums kvp_pass_sums;

/* Several weight accountings of one run (kvp_run_many_accountings): scenarios sc[0..n) that
 * differ only in how the weights are counted (weight_bytes, and the reserve that keeps their
 * HBM), so that slots, tiers, the trace and every decision of a policy blind to the weights
 * (KVP_CAP_WEIGHT_BLIND) are the same; only HBM's fixed bytes a step (the cost model's
 * fixed_bytes[0]) differ, and with them each step's time, summed once per accounting.  A
 * run of one accounting is n = 1.  Results of a run of n policies come n at a time, those
 * of sc[j] at res + j * n. */
#define KVP_ACCTS_MAX 4
typedef struct kvp_accts {
    uint32_t n;
    const kvp_scenario *sc[KVP_ACCTS_MAX];
} kvp_accts;

/* The one accounting of sc. */
kvp_accts kvp_accts_one(const kvp_scenario *sc);
/* 0 if ac's scenarios are accountings of one run on tr (each valid; the same parameters but
 * weight_bytes and reserve; the same KV budget, tiers and slots), else KVP_EINVAL naming the
 * first difference. */
int kvp_accts_check(const kvp_accts *ac, const kvp_trace *tr, kvp_error *err);
/* The cost model of each accounting on tr: m[j] of sc[j] (kvp_derive_for). */
int kvp_accts_models(const kvp_accts *ac, const kvp_trace *tr, kvp_cost_model *m,
                     kvp_error *err);
/* kvp_result_fill_layers for each accounting j: res + j * n from time_s + j * layers * n
 * (the counters are the same for all). */
int kvp_result_fill_layers_accts(kvp_result *res, const kvp_accts *ac, const kvp_trace *tr,
                                 const kvp_policy_spec *ps, size_t n, uint32_t layers,
                                 const double *time_s, const kvp_counters *cnt,
                                 const uint32_t *slots, size_t slots_step, kvp_error *err);

/* The engine's own run of one simulated policy (sa runs lookahead through it). */
int kvp_engine_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                   const kvp_run_options *ro, kvp_result *res, kvp_error *err);

/* kvp_engine_run for each accounting of ac: res[j] of ac->sc[j]. */
int kvp_engine_run_accts(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                         const kvp_run_options *ro, kvp_result *res, kvp_error *err);

/* What one step of one layer did (tests: the online check of tests/test_online.c), taken
 * from the engine's step hook (kvp_run_options.step_hook). */
typedef struct kvp_step_summary {
    double time_s;
    uint64_t hits, promoted, demoted; /* tokens */
} kvp_step_summary;

/* kvp_engine_run, also writing every step's record to rec[layer * steps + step]. */
int kvp_engine_run_record(const kvp_scenario *sc, const kvp_trace *tr,
                          const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                          kvp_step_summary *rec, kvp_error *err);

/* Tests: 0 makes the engine ignore the access sets' bits (kvp_access.bits) and serve and
 * charge from the positions, as before docs/PERF.md 37; 1, the default, uses them.  Set it
 * before a run, not during one. */
void kvp_engine_set_serve_bits(int on);

/* One pass of the trace with no policy: its sums alone. */
int kvp_engine_pass(const kvp_scenario *sc, const kvp_trace *tr, const kvp_run_options *ro,
                    kvp_pass_sums *sums, kvp_error *err);

/* With more than two tiers: the tiers below HBM together must hold every block of g tokens
 * the trace writes (docs/MODEL.md "Tiers beyond two"), or KVP_EINVAL says by how much not. */
int kvp_check_tier_capacity(const kvp_scenario *sc, const kvp_derived *d, const kvp_trace *tr,
                            uint32_t g, kvp_error *err);

/* Checks a trace against the scenario (layers, steps, the heads of a 4-D trace). */
int kvp_check_trace(const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err);

/* The scenario derived for a run on tr: a stream's token of a 4-D trace weighs tok_bytes /
 * kv_heads, and so slots count that (docs/MODEL.md "Streams"). */
int kvp_derive_for(const kvp_scenario *sc, const kvp_trace *tr, kvp_derived *d,
                   kvp_error *err);

/* The message of a policy that does not run on several streams (no KVP_CAP_STREAMS). */
int kvp_streams_refuse(const kvp_policy_ops *ops, const kvp_trace *tr, kvp_error *err);
/* 0, or why a trace of several streams cannot run on this scenario at all (more than two
 * tiers; more blocks than 32-bit numbers hold): one message for the engine and for the
 * policies that run on their own (lpbound, plan, optimal). */
int kvp_streams_fit(const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err);

/* Fills every field of res (but speedups) from the summed time and token counters. */
int kvp_result_fill(kvp_result *res, const kvp_scenario *sc, const kvp_trace *tr,
                    const kvp_policy_spec *ps, uint32_t g, uint32_t slots, double time_s,
                    const kvp_counters *c, kvp_error *err);

/* kvp_result_fill for n policies at token granularity from per-layer sums held layer-major
 * (time_s[l * n + i], cnt[l * n + i]), summed in layer order as the engine sums them;
 * policy i has slots[i * slots_step] (slots_step 0: one count for all). */
int kvp_result_fill_layers(kvp_result *res, const kvp_scenario *sc, const kvp_trace *tr,
                           const kvp_policy_spec *ps, size_t n, uint32_t layers,
                           const double *time_s, const kvp_counters *cnt,
                           const uint32_t *slots, size_t slots_step, kvp_error *err);

/* The per-sequence counts of policy i of n (docs/MODEL.md "Streams") into res->seq[]: token
 * counts seq_out[((l * n + i) * nseq + q) * 4 + k] (k: KV read from HBM, from below,
 * promoted, demoted) summed over the layers, times tok_bytes. */
int kvp_result_fill_seqs(kvp_result *res, uint32_t nseq, uint32_t layers, size_t n, size_t i,
                         const uint64_t *seq_out, uint64_t tok_bytes, kvp_error *err);

#endif
