/*
 * The online family (docs/POLICIES.md "Online policies"): one rule with knobs, shared by the
 * policies `hot`, `balanced`, `payback` and `steer`, which differ only in their defaults, and
 * `whittle`, which ranks by a renewal model's index instead of p (kvp_whittle_init).  Each
 * decides at step n from the reads of steps 0..n alone (docs/MODEL.md §10).
 */
#ifndef KVP_POLICY_ONLINE_H
#define KVP_POLICY_ONLINE_H

#include "policy/policy.h"

/* Indices into the parameter table (ONLINE_PARAMS). */
enum { ON_DECAY, ON_EST, ON_BALANCE, ON_HORIZON, ON_PAYBACK, ON_BUDGET, ON_NEW, ON_NPARAMS };
/* whittle's one parameter beyond the family's (its table is ONLINE_PARAMS and then this). */
enum { ON_RENEW = ON_NPARAMS };

/* The parameter table of a member of the family, with its own defaults. */
#define ONLINE_PARAMS(decay, est, balance, horizon, payback, budget, new_hbm)                 \
    {                                                                                          \
        {"decay", decay, 0, 1, 0,                                                              \
         "per-step decay of the importance estimate (0: the last step's reads alone; "        \
         "1: accumulated since the token was written, H2O-style)"},                           \
        {"est", est, 0, 2, 1,                                                                  \
         "what a read adds: 0 one (read frequency); 1 its score over the step's highest "     \
         "(attention); 2 its score's margin over the step's lowest read score, over the "      \
         "range (0 at the cut-off)"},                                                          \
        {"balance", balance, 0, 1, 1,                                                          \
         "1: promote only while the step's HBM reads are below the bound's balanced split; "  \
         "0: fill HBM"},                                                                       \
        {"horizon", horizon, 1, 4096, 1, "steps over which a promotion's savings are counted"}, \
        {"payback", payback, 0, 1000, 0,                                                       \
         "a swap is made only if its predicted savings exceed payback x its cost in this "    \
         "step's time (0: whenever the promoted token is hotter)"},                            \
        {"budget", budget, 0, 1, 0, "most promotions per step, as a share of the step's reads"}, \
        {"new_hbm", new_hbm, 0, 1, 1,                                                          \
         "1: the new token goes to HBM, evicting the coldest token if full; 0: only into a "  \
         "free slot"},                                                                         \
    }

int kvp_online_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                    uint8_t *resident, kvp_error *err);
int kvp_online_step(void *state, kvp_step *s, kvp_error *err);
void kvp_online_free(void *state);
/* kvp_online_init, then whittle's index from param[ON_RENEW] (src/policy/whittle.c). */
int kvp_whittle_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                     uint8_t *resident, kvp_error *err);
uint32_t kvp_online_block_tokens(const double *param, const kvp_scenario *sc);
uint32_t kvp_online_lookahead(const double *param);

/* An ops table of the family: name, doc, its parameter table. */
#define ONLINE_OPS(var, nm, dc, ptab)                                                       \
    const kvp_policy_ops var = {                                                               \
        .name = nm,                                                                            \
        .doc = dc,                                                                             \
        .params = ptab,                                                                      \
        .nparams = sizeof ptab / sizeof *ptab,                                             \
        .block_tokens = kvp_online_block_tokens,                                               \
        .lookahead = kvp_online_lookahead,                                                     \
        .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE | KVP_CAP_STREAMS,                             \
        .init = kvp_online_init,                                                               \
        .step = kvp_online_step,                                                               \
        .free = kvp_online_free,                                                               \
    }

#endif
