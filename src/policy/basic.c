/* The two reference policies: `unlimited` (everything in HBM, no capacity limit) and
 * `static` (the initial placement, never changed).  docs/MODEL.md §5. */
#include "policy/policy.h"

#include <string.h>

static int unlimited_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                          uint8_t *resident, kvp_error *err)
{
    (void)first;
    (void)err;
    *state = NULL;
    kvp_initial_fill(li, resident, KVP_UNLIMITED_SLOTS);
    return 0;
}

static int unlimited_step(void *state, kvp_step *s, kvp_error *err)
{
    (void)state;
    (void)err;
    for (uint32_t i = 0; i < s->nnew; i++) {
        int rc = kvp_step_promote(s, s->new_blocks[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

const kvp_policy_ops kvp_policy_unlimited = {
    .name = "unlimited",
    .doc = "every block in HBM, no capacity limit (a reference, not a bound)",
    .caps = KVP_CAP_UNLIMITED | KVP_CAP_ONLINE | KVP_CAP_STREAMS | KVP_CAP_WEIGHT_BLIND,
    .init = unlimited_init,
    .step = unlimited_step,
};

static int static_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *err)
{
    (void)first;
    (void)err;
    *state = NULL;
    kvp_initial_default(li, resident);
    return 0;
}

static int static_step(void *state, kvp_step *s, kvp_error *err)
{
    (void)state;
    (void)err;
    return kvp_step_place_new_default(s);
}

const kvp_policy_ops kvp_policy_static = {
    .name = "static",
    .doc = "fill HBM in write order until full, the rest in DRAM, never move",
    .caps = KVP_CAP_ONLINE | KVP_CAP_FIXED | KVP_CAP_STREAMS | KVP_CAP_WEIGHT_BLIND,
    .init = static_init,
    .step = static_step,
};
