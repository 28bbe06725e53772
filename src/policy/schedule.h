/* Internal: placement schedules at token granularity, built by the offline planners (plan,
 * optimal) and replayed by the engine like any other policy, so that a planner's time is
 * the model's own, never the planner's estimate of it. */
#ifndef KVP_SCHEDULE_H
#define KVP_SCHEDULE_H

#include "kvplace.h"
#include "policy/policy.h"

#include <stdint.h>

typedef struct kvp_schedule kvp_schedule;

int kvp_schedule_create(kvp_schedule **out, uint32_t layers, uint32_t steps, kvp_error *err);
void kvp_schedule_free(kvp_schedule *s);

/* Token x moves into HBM (promote = 1) or out of it (promote = 0) in the placement of step n
 * of layer l; n = -1 is the initial placement (promotions only, prompt tokens only).  Within a
 * layer and a kind, n must not decrease from call to call.  Layers may be added from
 * different threads at once, one layer from one thread at a time. */
int kvp_schedule_add(kvp_schedule *s, uint32_t layer, int64_t n, uint32_t x, int promote,
                     kvp_error *err);

/* With more than two tiers: token x is in tier `tier` >= 1 after the placement of step n of
 * layer l (n = -1: initially), having left HBM, changed tier below it, or (the new token of
 * step n) been written there.  n must not decrease from call to call within a layer. */
int kvp_schedule_add_tier(kvp_schedule *s, uint32_t layer, int64_t n, uint32_t x, uint32_t tier,
                          kvp_error *err);

/* With more than two tiers, after the moves of layer l are all added: the tokens out of HBM
 * over tiers 1 .. tiers - 1 (tslots[k] tokens each), fastest first and never moved between
 * them: initially the prompt tokens left out of HBM in index order, then at each step the
 * tokens demoted and the new token (unless it enters HBM) each take the fastest tier with a
 * free slot, the slots of the tokens promoted being free again (docs/BOUNDS.md "lpbound and
 * plan with more than two tiers").  The tiers must hold every token out of HBM (KVP_ECHECK). */
int kvp_schedule_place_below(kvp_schedule *s, uint32_t layer, uint32_t prompt, uint32_t tiers,
                             const uint32_t *tslots, kvp_error *err);

/* Moves of layer l so far (promotions + demotions, the initial placement included). */
uint64_t kvp_schedule_moves(const kvp_schedule *s, uint32_t layer);

/* Replays the schedule on the trace through the engine: each step demotes, then promotes,
 * what the schedule says.  A schedule that breaks the model (a slot too many, a move of a
 * token not there) is an error, not a result.  res is named `policy` with params `params`. */
int kvp_schedule_replay(const kvp_scenario *sc, const kvp_trace *tr, const kvp_schedule *s,
                        const kvp_run_options *ro, kvp_result *res, kvp_error *err);

/* The replay policy's spec for schedule s (several replay in one pass with kvp_run_many). */
void kvp_schedule_spec(kvp_policy_spec *ps, const kvp_schedule *s);

/* The replay policy's own steps, for a policy that makes a schedule per layer in its init
 * (plan's candidates): kvp_replay_init follows layer li->layer of s, which must outlive it. */
int kvp_replay_init(void **state, const kvp_schedule *s, const kvp_layer_info *li,
                    uint8_t *resident, kvp_error *err);
int kvp_replay_step(void *state, kvp_step *s, kvp_error *err);
void kvp_replay_free(void *state);

#endif
