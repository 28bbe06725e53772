/*
 * `payback` (online): `hot`, but a swap is made only when the promoted token's predicted
 * savings over `horizon` steps exceed what the move adds to this step's time, and at most
 * `budget` x (reads) promotions a step.  The rule is src/policy/online.c; docs/POLICIES.md.
 */
#include "policy/online.h"

static const kvp_policy_param payback_params[] = ONLINE_PARAMS(0.5, 1, 0, 64, 1, 0.25, 1);

ONLINE_OPS(kvp_policy_payback, "payback",
           "hot, moving only what pays back its move, within a budget", payback_params);
