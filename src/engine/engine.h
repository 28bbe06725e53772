/* Internal: the engine's helpers shared by policies that replace the whole run. */
#ifndef KVP_ENGINE_H
#define KVP_ENGINE_H

#include "policy/policy.h"

#include <stdatomic.h>

#define KVP_MAX_THREADS 64

/* Traffic of one step or a sum of steps, in tokens (multiply by tok_bytes for bytes). */
typedef struct kvp_counters {
    uint64_t kv_read_hbm, kv_read_dram;
    uint64_t hbm_read, hbm_write, dram_read, dram_write, link_up, link_down;
    uint64_t promoted, demoted;
} kvp_counters;

void kvp_counters_add(kvp_counters *to, const kvp_counters *c);

/* Runs fn(layer, user, done) for every layer on ro->threads threads; fn adds to *done as it
 * goes (progress units, total_units in all).  rc_out[l] receives each layer's return. */
typedef int (*kvp_layer_fn)(uint32_t layer, void *user, atomic_ullong *done);
int kvp_parallel_layers(uint32_t layers, const kvp_run_options *ro, uint64_t total_units,
                        kvp_layer_fn fn, void *user, int *rc_out);

/* Checks a trace against the scenario (layers, steps). */
int kvp_check_trace(const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err);

/* Fills every field of res (but speedups) from the summed time and token counters. */
int kvp_result_fill(kvp_result *res, const kvp_scenario *sc, const kvp_trace *tr,
                    const kvp_policy_spec *ps, uint32_t g, uint32_t slots, double time_s,
                    const kvp_counters *c, kvp_error *err);

/* The bound's sums over a trace (DESIGN.md §5 `bound`). */
typedef struct kvp_bound_sum {
    double time_s;  /* the bound on T */
    double h_bytes; /* HBM bytes read at the bound's optimum, summed */
    uint64_t reads; /* tokens read */
} kvp_bound_sum;

/* The bound's time for one step of a bytes read, and the HBM share h that attains it. */
double kvp_bound_step_h(const kvp_scenario *sc, const kvp_derived *d, double a, double *h_out);

/* One pass of the trace with no policy: the bound alone. */
int kvp_engine_bound(const kvp_scenario *sc, const kvp_trace *tr, const kvp_run_options *ro,
                     kvp_bound_sum *bound, kvp_error *err);

/* 1 if t is a trace cache (src/trace/trace_cache.c) of a trace with scores: it holds the access
 * sets only, so policies that read scores must not run on it. */
int kvp_trace_is_cache_without_scores(const kvp_trace *t);

/* An empty trace cache of src at this sparsity (every bitset clear), to be filled by
 * kvp_trace_cache_record with every step of every layer before any cursor reads it:
 * kvp_run_many fills one during the pass of the simulated policies for `sa`, instead of a
 * pass of its own. */
int kvp_trace_cache_empty(kvp_trace **out, const kvp_trace *src, double sparsity,
                          kvp_error *err);
/* Records access set a (its step a->step) of layer `layer` in cache t.  Layers may be
 * recorded from different threads at once; one layer from one thread at a time. */
int kvp_trace_cache_record(kvp_trace *t, uint32_t layer, const kvp_access *a, kvp_error *err);

/* What one step of one layer did (tests: the online check of tests/test_online.c). */
typedef struct kvp_step_record {
    double time_s;
    uint64_t hits, promoted, demoted; /* tokens */
} kvp_step_record;

/* kvp_engine_run, also writing every step's record to rec[layer * steps + step]. */
int kvp_engine_run_record(const kvp_scenario *sc, const kvp_trace *tr,
                          const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                          kvp_step_record *rec, kvp_error *err);

/* The bound's result from its sums (kvp_run_many takes them from the pass of the simulated
 * policies, when there is one, instead of a pass of its own). */
int kvp_bound_result(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_bound_sum *b, kvp_result *res, kvp_error *err);

#endif
