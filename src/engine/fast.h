/* Internal: the policies whose HBM holds a prefix of the context, run without the engine's
 * per-read work (src/engine/fast.c; docs/PERF.md §12). */
#ifndef KVP_FAST_H
#define KVP_FAST_H

#include "engine/runner.h"

/* 1 if every spec of ps[0..n) is `static` or `unlimited` (n may be 0: the bound alone). */
int kvp_fast_prefix_takes(const kvp_policy_spec *ps, size_t n);

/* Runs ps[0..n) (kvp_fast_prefix_takes) on tr, one pass per layer, and fills res[i] with
 * what the engine's pass gives, byte for byte, and *sums (if not NULL) with the pass's
 * sums.  Per step it needs the size of the access set and, for `static`, how many of its
 * positions lie below its slots: a popcount of a trace cache's bitset, or a binary search of
 * the positions, never a pass over the reads.  ro->check is the engine's: refused
 * (KVP_EINVAL). */
int kvp_fast_prefix_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                        size_t n, const kvp_run_options *ro, kvp_result *res,
                        kvp_pass_sums *sums, kvp_error *err);

/* The same for each accounting of ac (src/engine/runner.h): res + j * n and sums[j] those of
 * ac->sc[j]. */
int kvp_fast_prefix_run_accts(const kvp_accts *ac, const kvp_trace *tr,
                              const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                              kvp_result *res, kvp_pass_sums *sums, kvp_error *err);

/* 1 if kvp_fast_streams_run takes ps[0..n) on tr: a trace of several streams that all
 * decode the same steps, two tiers, `static` and `unlimited` only, unchecked, no step hook. */
int kvp_fast_streams_takes(const kvp_scenario *sc, const kvp_trace *tr,
                           const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro);

/* kvp_fast_prefix_run on a trace of several streams (kvp_fast_streams_takes): the engine's
 * results, byte for byte, per-sequence counts included, from each stream's set sizes and
 * binary searches of them, one stream's sets after the other (no merge).  Else KVP_EINVAL. */
int kvp_fast_streams_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                         size_t n, const kvp_run_options *ro, kvp_result *res,
                         kvp_pass_sums *sums, kvp_error *err);

/* The same for each accounting of ac, as kvp_fast_prefix_run_accts. */
int kvp_fast_streams_run_accts(const kvp_accts *ac, const kvp_trace *tr,
                               const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                               kvp_result *res, kvp_pass_sums *sums, kvp_error *err);

#endif
