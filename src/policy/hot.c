/*
 * `hot` (online): the importance estimate alone.  Every miss hotter than the coldest resident
 * token it finds comes up, no other limit: HBM is kept full of the tokens the past says are
 * read most (decay 0: the last step's reads; decay 1: H2O's accumulated attention).  The rule
 * is src/policy/online.c; docs/POLICIES.md.
 */
#include "policy/online.h"

static const kvp_policy_param hot_params[] = ONLINE_PARAMS(0.5, 1, 0, 16, 0, 1, 1);

ONLINE_OPS(kvp_policy_hot, "hot",
           "HBM holds the tokens of highest past importance (EMA or H2O)", hot_params);
