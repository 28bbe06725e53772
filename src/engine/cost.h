/* Internal: the cost model of one step of one layer (docs/MODEL.md "The step's time").
 * Pure functions of the tiers' bandwidths and the step's traffic, so that a reader can hold
 * them against the model and a test can call them with numbers worked by hand. */
#ifndef KVP_COST_H
#define KVP_COST_H

#include "kvplace.h"

#include <stdint.h>

/* Tier 0 is HBM, tier k + 1 the tier behind link k (today: 1 = DRAM, link 0 = the CPU-GPU
 * link).  The arrays are indexed by tier and link so that more tiers are more entries. */
#define KVP_TIERS 2
#define KVP_LINKS (KVP_TIERS - 1)

typedef struct kvp_cost_model {
    double bandwidth[KVP_TIERS];      /* bytes/s, reads and writes share it */
    double link_bandwidth[KVP_LINKS]; /* bytes/s each way */
    double fixed_bytes[KVP_TIERS];    /* read every step whatever the placement: the layer's
                                       * weights in HBM (w_layer) */
    double kv_capacity[KVP_TIERS];    /* KV bytes a layer may keep in the tier (HBM: cap) */
} kvp_cost_model;

/* One step's KV traffic in bytes (whole numbers; exact in a double below 2^53). */
typedef struct kvp_traffic {
    double read[KVP_TIERS], write[KVP_TIERS];
    double up[KVP_LINKS];   /* towards tier 0 */
    double down[KVP_LINKS]; /* away from tier 0 */
} kvp_traffic;

/* Traffic of one step or a sum of steps, in tokens (multiply by tok_bytes for bytes). */
typedef struct kvp_counters {
    uint64_t kv_read_hbm, kv_read_dram;
    uint64_t hbm_read, hbm_write, dram_read, dram_write, link_up, link_down;
    uint64_t promoted, demoted;
} kvp_counters;

void kvp_counters_add(kvp_counters *to, const kvp_counters *c);

/* The model of a scenario's layers (every layer has the same). */
void kvp_cost_model_of(kvp_cost_model *m, const kvp_scenario *sc, const kvp_derived *d);

/* The step's traffic from its counts in tokens. */
void kvp_traffic_of(kvp_traffic *t, const kvp_counters *c, uint64_t tok_bytes);

/* The time of one step: every tier and every link works in parallel, so the step takes as
 * long as the busiest of them (docs/MODEL.md). */
double kvp_step_time(const kvp_cost_model *m, const kvp_traffic *t);

/* The least time any placement within tier 0's capacity can take for a step that reads
 * read_bytes (the `bound` policy, docs/MODEL.md "The bound"), and the bytes h read from tier
 * 0 that attain it. */
double kvp_step_time_bound(const kvp_cost_model *m, double read_bytes, double *h_out);

#endif
