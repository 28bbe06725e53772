/* Internal: `sa` with riders, lookahead runs of the same list made in its first grid pass
 * (src/policy/sa.c; docs/PERF.md §50). */
#ifndef KVP_SA_H
#define KVP_SA_H

#include "kvplace.h"

struct kvp_accts;

/* 1 if ps is `sa` and its level 0 runs in one grid pass on tr (its `moves` small enough, a
 * run the lookahead grid takes): the runs kvp_sa_run_riders takes riders on. */
int kvp_sa_riders_take(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                       const kvp_run_options *ro);

/* sa's run_accts (res[j]: accounting j's search), with the lookahead specs riders[0 ..
 * nriders) run in the first search's level-0 pass: rres[j * nriders + k] is what the grid
 * (and so the engine) gives for riders[k] and accounting j, byte for byte.  KVP_EINVAL if
 * kvp_sa_riders_take refuses the run or a rider is not lookahead. */
int kvp_sa_run_riders(const struct kvp_accts *ac, const kvp_trace *tr,
                      const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                      const kvp_policy_spec *riders, size_t nriders, kvp_result *rres,
                      kvp_error *err);

#endif
