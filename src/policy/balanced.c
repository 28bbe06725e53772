/*
 * `balanced` (online): `hot`, but promotes only while the step's HBM reads are below the
 * bound's optimal split (HBM and DRAM read in parallel, so the best placement balances their
 * times rather than filling HBM).  The rule is src/policy/online.c; docs/POLICIES.md.
 */
#include "policy/online.h"

static const kvp_policy_param balanced_params[] = ONLINE_PARAMS(0.5, 1, 1, 16, 0, 1, 1);

ONLINE_OPS(kvp_policy_balanced, "balanced",
           "hot, with HBM reads kept at the bound's balanced split", balanced_params);
