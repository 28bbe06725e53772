/* Every policy, in the order "all" runs them (but those with KVP_CAP_SMALL_ONLY): X(name) for a kvp_policy_ops named
 * kvp_policy_<name>.  Adding a policy: its file in src/policy/ and one line here. */
X(unlimited)
X(static)
X(reactive)
X(page)
X(lookahead)
X(sa)
X(bound)
X(lpbound)
X(plan)
X(optimal)
