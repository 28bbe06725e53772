/* Internal: the trace cache's own calls (src/trace/trace_cache.c; kvp_trace_cache() and
 * kvp_trace_cache_bytes() are public, include/kvplace.h). */
#ifndef KVP_TRACE_CACHE_H
#define KVP_TRACE_CACHE_H

#include "kvplace.h"

/* 1 if t is a trace cache: another cache of it would be a copy. */
int kvp_trace_is_cache(const kvp_trace *t);

/* 1 if t is a trace cache of a trace with scores: it holds the access sets only, so
 * policies that read scores must not run on it. */
int kvp_trace_is_cache_without_scores(const kvp_trace *t);

/* An empty trace cache of src at this budget (every bitset clear), to be filled by
 * kvp_trace_cache_record with every step of every layer before any cursor reads it:
 * kvp_run_many fills one during the pass of the simulated policies for a policy that makes
 * many passes, instead of a pass of its own. */
int kvp_trace_cache_empty(kvp_trace **out, const kvp_trace *src, kvp_budget budget,
                          kvp_error *err);

/* Records access set a (its step a->step) of layer `layer` in cache t.  Layers may be
 * recorded from different threads at once; one layer from one thread at a time. */
int kvp_trace_cache_record(kvp_trace *t, uint32_t layer, const kvp_access *a, kvp_error *err);

/* Step `step` of layer `layer` of a trace cache (src/trace/trace_cache.c) as its bitset,
 * ceil((P + step) / 64) words, bit p of word p / 64 set if position p is read; NULL if t is
 * not a cache or was cached at another budget (the cursor would refuse it). */
const uint64_t *kvp_trace_cache_bits(const kvp_trace *t, uint32_t layer, uint32_t step,
                                     kvp_budget budget);

#endif
