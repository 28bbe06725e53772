/* Internal: `lookahead` for many (W, R) in one pass over the trace (src/policy/
 * lookahead_grid.c; docs/PERF.md §12). */
#ifndef KVP_LOOKAHEAD_GRID_H
#define KVP_LOOKAHEAD_GRID_H

#include "kvplace.h"

/* Runs the n lookahead specs ps[0..n) (all `lookahead`) on tr and fills res[i] with what
 * kvp_engine_run would give for ps[i], byte for byte: one pass over the trace for all of
 * them, the access sets made once and each W's window counts of their own.  Returns 0 or
 * < 0 (KVP_EINVAL for specs it does not take: another policy, or a run
 * kvp_lookahead_grid_takes refuses). */
int kvp_lookahead_grid(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                       size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err);

/* The same for each accounting of ac (src/engine/runner.h): res + j * n those of ac->sc[j]. */
struct kvp_accts;
int kvp_lookahead_grid_accts(const struct kvp_accts *ac, const kvp_trace *tr,
                             const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                             kvp_result *res, kvp_error *err);

/* 1 if ps[0..n) (n > 0) are all `lookahead`: the specs kvp_lookahead_grid takes. */
int kvp_lookahead_grid_all(const kvp_policy_spec *ps, size_t n);

/* 1 if kvp_lookahead_grid runs on tr: an unchecked run on two tiers, of one stream, or of
 * several streams whose count divides 64 and which all decode every step (docs/MODEL.md
 * §12: no sequence finishes early); the others are the engine's. */
int kvp_lookahead_grid_takes(const kvp_scenario *sc, const kvp_trace *tr,
                             const kvp_run_options *ro);

#endif
