/*
 * `whittle` (online): a Whittle-style index per token from a two-state renewal model of its
 * reads.  A token is hot (read) or cold at each step; at every step, with chance `renew`, its
 * state is drawn afresh, hot with chance q, its long-run read rate (estimated from its past
 * reads, decayed by `decay` a step).  Its index is its expected reads per step over the next
 * `horizon` steps given what this step saw: q + (h - q) K / horizon, h = 1 if read now,
 * K = sum over t = 1..horizon of (1 - renew)^t.  HBM holds the tokens of highest index up to
 * the balanced split, and a swap is made only when the index gain over the horizon pays back
 * the move.  The rule is src/policy/online.c; docs/POLICIES.md "whittle".
 */
#include "policy/online.h"

static const kvp_policy_param whittle_params[] = {
    /* the family's table (ONLINE_PARAMS) with whittle's defaults, then renew */
    [ON_DECAY] = {"decay", 0.995, 0, 1, 0,
                  "per-step decay of the read-rate estimate q (memory 1 / (1 - decay) steps)"},
    [ON_EST] = {"est", 0, 0, 2, 1,
                "what a read adds to q: 0 one (read frequency); 1 its score over the step's "
                "highest; 2 its score's margin over the step's lowest read score"},
    [ON_BALANCE] = {"balance", 1, 0, 1, 1,
                    "1: promote only while the step's HBM reads are below the bound's "
                    "balanced split; 0: fill HBM"},
    [ON_HORIZON] = {"horizon", 4, 1, 4096, 1,
                    "steps over which the index averages the expected reads and a swap's "
                    "savings are counted"},
    [ON_PAYBACK] = {"payback", 0.5, 0, 1000, 0,
                    "a swap is made only if the index gain over the horizon exceeds payback "
                    "x its cost in this step's time (0: whenever the index is higher)"},
    [ON_BUDGET] = {"budget", 1, 0, 1, 0, "most promotions per step, as a share of the step's reads"},
    [ON_NEW] = {"new_hbm", 1, 0, 1, 1,
                "1: the new token goes to HBM, evicting the lowest index if full; 0: only "
                "into a free slot"},
    [ON_RENEW] = {"renew", 0.33, 0, 1, 0,
                  "per-step chance that a token's state (read or not) is drawn afresh: the "
                  "weight of the present read in the index (1: q alone)"},
};

const kvp_policy_ops kvp_policy_whittle = {
    .name = "whittle",
    .doc = "Whittle-style index from a two-state renewal model of reads, balanced, paying back",
    .params = whittle_params,
    .nparams = sizeof whittle_params / sizeof *whittle_params,
    .block_tokens = kvp_online_block_tokens,
    .lookahead = kvp_online_lookahead,
    .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE | KVP_CAP_STREAMS,
    .init = kvp_whittle_init,
    .step = kvp_online_step,
    .free = kvp_online_free,
};
