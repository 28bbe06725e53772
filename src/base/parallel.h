/* Internal: runs a function for every layer on ro->threads threads. */
#ifndef KVP_PARALLEL_H
#define KVP_PARALLEL_H

#include "kvplace.h"

#include <stdatomic.h>

#define KVP_MAX_THREADS 64

/* Runs fn(layer, user, done) for every layer on ro->threads threads; fn adds to *done as it
 * goes (progress units, total_units in all).  rc_out[l] receives each layer's return. */
typedef int (*kvp_layer_fn)(uint32_t layer, void *user, atomic_ullong *done);
int kvp_parallel_layers(uint32_t layers, const kvp_run_options *ro, uint64_t total_units,
                        kvp_layer_fn fn, void *user, int *rc_out);

#endif
