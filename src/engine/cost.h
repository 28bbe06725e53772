/* Internal: the cost model of one step of one layer (docs/MODEL.md "The step's time" and
 * "Tiers beyond two").  Pure functions of the tiers' bandwidths and the step's traffic, so
 * that a reader can hold them against the model and a test can call them with numbers worked
 * by hand. */
#ifndef KVP_COST_H
#define KVP_COST_H

#include "kvplace.h"

#include <stdint.h>

/* Tier 0 is HBM, tiers 1..tiers-1 lie below it, each behind a link 1..KVP_MAX_TIERS-1
 * (several may share one).  Arrays are indexed by tier, and by link number. */
typedef struct kvp_cost_model {
    uint32_t tiers;                       /* K */
    double bandwidth[KVP_MAX_TIERS];      /* bytes/s, reads and writes share it */
    double fixed_bytes[KVP_MAX_TIERS];    /* read every step whatever the placement: the layer's
                                           * weights in HBM (w_layer) */
    double kv_capacity[KVP_MAX_TIERS];    /* KV bytes a layer may keep in the tier (HBM: cap;
                                           * a two-tier machine's DRAM: no limit) */
    uint32_t link[KVP_MAX_TIERS];         /* [k] k >= 1: the link tier k sits behind */
    uint32_t links;                       /* the highest link number in use */
    double up_bandwidth[KVP_MAX_TIERS];   /* [j]: bytes/s towards HBM (unused links: inf) */
    double down_bandwidth[KVP_MAX_TIERS]; /* [j]: bytes/s away from HBM */
} kvp_cost_model;

/* One step's KV traffic in bytes (whole numbers; exact in a double below 2^53).  What a tier
 * k >= 1 reads goes up its link and what it writes comes down it: every move passes through
 * the GPU. */
typedef struct kvp_traffic {
    double read[KVP_MAX_TIERS], write[KVP_MAX_TIERS];
} kvp_traffic;

/* Traffic of one step or a sum of steps, in tokens (multiply by tok_bytes for bytes), per
 * tier: reads served (kv_read), bytes read and written (reads, moves and new tokens), and
 * blocks moved in and out (pres sums).  promoted/demoted: moves to a faster / slower tier. */
typedef struct kvp_counters {
    uint64_t kv_read[KVP_MAX_TIERS];
    uint64_t read[KVP_MAX_TIERS], write[KVP_MAX_TIERS];
    uint64_t moved_in[KVP_MAX_TIERS], moved_out[KVP_MAX_TIERS];
    uint64_t promoted, demoted;
} kvp_counters;

void kvp_counters_add(kvp_counters *to, const kvp_counters *c);

/* The model of a scenario's layers (every layer has the same). */
void kvp_cost_model_of(kvp_cost_model *m, const kvp_scenario *sc, const kvp_derived *d);

/* The step's traffic from its counts in tokens. */
void kvp_traffic_of(kvp_traffic *t, const kvp_counters *c, uint32_t tiers, uint64_t tok_bytes);

/* The time of one step: every tier and every link direction works in parallel, so the step
 * takes as long as the busiest of them (docs/MODEL.md). */
double kvp_step_time(const kvp_cost_model *m, const kvp_traffic *t);

/* The least time any placement within the tiers' capacities can take for a step that reads
 * read_bytes (the `bound` policy, docs/MODEL.md "The bound"), and the bytes h read from tier
 * 0 that attain it. */
double kvp_step_time_bound(const kvp_cost_model *m, double read_bytes, double *h_out);

#endif
