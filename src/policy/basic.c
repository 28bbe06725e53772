/* The two reference policies: `unlimited` (everything in HBM, no capacity limit) and
 * `static` (the initial placement, never changed).  DESIGN.md §5. */
#include "policy/policy.h"

#include <string.h>

static uint32_t one_token(const double *param, const kvp_scenario *sc)
{
    (void)param;
    (void)sc;
    return 1;
}

static int unlimited_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                          uint8_t *resident, kvp_error *err)
{
    (void)first;
    (void)err;
    *state = NULL;
    uint32_t prompt_blocks = (uint32_t)(((uint64_t)li->prompt + li->g - 1) / li->g);
    memset(resident, 1, prompt_blocks);
    return (int)prompt_blocks;
}

static int unlimited_step(void *state, kvp_step *s, kvp_error *err)
{
    (void)state;
    (void)err;
    return s->opens_block ? kvp_step_promote(s, s->new_block) : 0;
}

const kvp_policy_ops kvp_policy_unlimited = {
    .name = "unlimited",
    .doc = "every block in HBM, no capacity limit (a reference, not a bound)",
    .block_tokens = one_token,
    .unlimited = 1,
    .online = 1,
    .init = unlimited_init,
    .step = unlimited_step,
};

static int static_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                       uint8_t *resident, kvp_error *err)
{
    (void)first;
    (void)err;
    *state = NULL;
    return (int)kvp_initial_default(li, resident);
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
    .online = 1,
    .block_tokens = one_token,
    .init = static_init,
    .step = static_step,
};
