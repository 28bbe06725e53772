/* Internal: the exact optimum of small cases (the policy `optimal`, src/policy/optimal.c), and
 * its model written out for another solver (the cross-check with CBC, docs/BOUNDS.md). */
#ifndef KVP_OPTIMAL_H
#define KVP_OPTIMAL_H

#include "kvplace.h"

/* The largest case `optimal` takes: (P + N) * N per layer, and that times the layers
 * (docs/BOUNDS.md "Exact optima" gives the timings behind them). */
#define KVP_OPTIMAL_MAX_CELLS 700u
#define KVP_OPTIMAL_MAX_TOTAL_CELLS 2800u

/* Writes layer `layer`'s integer program (relax = 1: its linear relaxation) as a CPLEX LP
 * file, solves it with GLPK, and gives its objective in the model's units (*units_s seconds
 * each) without the weights' constant, *const_units (the same for every placement), so that
 * another solver's value of the file plus *const_units, times *units_s, is the layer's time. */
int kvp_optimal_write_lp(const kvp_scenario *sc, const kvp_trace *tr, uint32_t layer,
                         int relax, const char *path, double *objective, double *const_units,
                         double *units_s, kvp_error *err);

#endif
