/* The policies a run without a policy list runs (`kvplace run`, kvplace.run in Python): every
 * policy but the slow ones, which stay available by name or `all`.  One list, read by the CLI
 * and the bindings alike. */
#include "kvplace.h"

#include <string.h>

/* sa runs lookahead once for every (W, R) it tries; lpbound's value is plan's certificate,
 * which the default list's plan reports. */
static const char *const slow_policies[] = {"sa", "lpbound"};

int kvp_policy_is_default(const kvp_policy_ops *ops)
{
    const char *name = kvp_policy_name(ops);
    for (size_t i = 0; i < sizeof slow_policies / sizeof *slow_policies; i++)
        if (strcmp(slow_policies[i], name) == 0)
            return 0;
    /* and only those of "all" (which leaves out the policies for small cases only) */
    kvp_policy_spec all[64];
    int n = kvp_policy_parse_list(all, sizeof all / sizeof *all, "all", NULL);
    for (int i = 0; i < n; i++)
        if (all[i].ops == ops)
            return 1;
    return 0;
}
