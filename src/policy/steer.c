/*
 * `steer` (online): the recommended default for engines -- the importance estimate, the
 * balanced split and the payback rule together.  The rule is src/policy/online.c;
 * docs/POLICIES.md says why these defaults.
 */
#include "policy/online.h"

static const kvp_policy_param steer_params[] = ONLINE_PARAMS(0.5, 1, 1, 64, 1, 0.25, 1);

ONLINE_OPS(kvp_policy_steer, "steer",
           "recommended for engines: hot + balanced split + moves that pay back", steer_params);
