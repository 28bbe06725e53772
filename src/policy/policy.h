/*
 * The engine <-> policy interface.  A policy is one file in src/ that defines a
 * kvp_policy_ops and one line in the list of policies (src/policy/list.h).
 *
 * The engine (src/engine/engine.c) runs each layer on its own: it keeps the residency of every
 * block of the layer, serves the reads of the step, calls the policy's step, then charges what the
 * policy changed (docs/MODEL.md §3).  The policy changes residency only through kvp_step_promote()
 * and kvp_step_demote(); the engine logs the changes and charges them.
 */
#ifndef KVP_POLICY_H
#define KVP_POLICY_H

#include "kvplace.h"
#include "base/error.h" /* kvp_error_set: a policy reports its errors with it */

#include <stdint.h>

#define KVP_UNLIMITED_SLOTS UINT32_MAX

/* What a policy sees of its layer, fixed for the run. */
typedef struct kvp_layer_info {
    uint32_t layer;
    uint32_t g;       /* block size in tokens */
    uint32_t slots;   /* HBM slots of this layer (KVP_UNLIMITED_SLOTS: no limit) */
    uint32_t prompt;  /* P */
    uint32_t steps;   /* N */
    uint32_t nblocks; /* blocks that ever exist: ceil((P + N) / g) */
    const double *param; /* kvp_policy_spec.value */
    const void *ctx;     /* kvp_policy_spec.ctx */
    /* The layer's cost model and token bytes, for policies that weigh the cost of their
     * moves (the online family of src/policy/online.c). */
    const struct kvp_cost_model *model;
    uint64_t tok_bytes;
    /* Streams (docs/MODEL.md "Streams"): with S > 1 streams, block b of stream i is the
     * layer's block b * S + i, so that index order is "lower b, then lower stream"; prompt,
     * steps and nblocks are then the largest over the streams, and sprompt/ssteps give each
     * stream's own (NULL with one stream).  kvp_block_in_prompt tells which blocks exist. */
    uint32_t streams;
    const uint32_t *sprompt, *ssteps;
} kvp_layer_info;

/* One step of one layer, as the policy sees it. */
typedef struct kvp_step {
    const kvp_layer_info *li;
    uint32_t n;            /* step */
    uint32_t context;      /* P + n: tokens present before this step */
    uint32_t new_block;    /* (P + n) / g: block of this step's new token */
    int opens_block;       /* (P + n) % g == 0 */
    uint32_t exist_blocks; /* blocks with pres > 0: ceil((P + n) / g) */

    const kvp_access *acc; /* A(n, l) */
    /* Blocks read this step, in ascending order, with the number of positions read in each
     * (a(b)) and their summed score (read_score only for policies with KVP_CAP_SCORES, and
     * only through kvp_step_read_score()). */
    uint32_t nread;
    const uint32_t *read_block;
    const uint32_t *read_count;
    const double *read_score;

    /* A(n .. n+nfuture-1, l) when the policy asked for a look-ahead (future[0] == acc),
     * and A(n-1, l) (NULL at n = 0). */
    const kvp_access *const *future;
    uint32_t nfuture;
    const kvp_access *prev;

    /* Residency: resident[b] is 1 if block b is in HBM.  Read freely; change only through
     * kvp_step_promote/kvp_step_demote. */
    const uint8_t *resident;
    uint32_t nresident;

    /* The blocks this step's new tokens open, ascending: new_block when opens_block with
     * one stream; with several, one per decoding stream whose token opens a block (then
     * new_block is the first of them and opens_block tells whether there is one). */
    uint32_t nnew;
    const uint32_t *new_blocks;
    /* Blocks of sequences that finished before this step (several streams only): they left
     * both tiers at no cost, the engine has cleared their residency, and they never come
     * back.  Ascending; every block the stream ever had. */
    uint32_t nfreed;
    const uint32_t *freed;

    /* KVP_CAP_SERVES, when the engine serves for it (s->serves): the step sets hbm_reads to
     * how many of the step's reads found their block in HBM before any move, and read_bits to
     * a bitset where bit b % 64 of word b / 64 is set for every block b read at step n, and
     * for no other block of the context (the new block's bit may be set): the engine then
     * makes no pass of its own over the reads (docs/PERF.md §24, §32). */
    int serves;
    uint64_t hbm_reads;
    const uint64_t *read_bits;

    /* Several streams merged by transposition: each stream's own set of this step, its
     * bits and scores (src/trace/trace.h), or NULL.  With 1-token blocks, in a pass of
     * policies that all take their scores from it (KVP_CAP_VIEW_BAND), acc->score is NULL
     * and kvp_step_read_score merges the view's. */
    const struct kvp_streams_view *view;

    /* engine-private */
    struct kvp_engine_layer *eng;
} kvp_step;

/* Moves block b into (out of) HBM for the placement of this step.  Returns 0, or KVP_ECHECK
 * if b is already there (not there) or out of range. */
int kvp_step_promote(kvp_step *s, uint32_t b);
int kvp_step_demote(kvp_step *s, uint32_t b);
/* The same for blocks[0..count), in order: returns how many were moved; fewer than count
 * means blocks[that many] was refused (KVP_ECHECK) and the rest were not tried. */
uint32_t kvp_step_promote_many(kvp_step *s, const uint32_t *blocks, uint32_t count);
uint32_t kvp_step_demote_many(kvp_step *s, const uint32_t *blocks, uint32_t count);
/* Fills s->read_score if it is not yet filled this step, and returns it.  With 1-token blocks
 * it is acc->score converted, with larger ones on one stream each block's sum (in position
 * order, src/engine/blocks.c): a pass over the reads that the engine leaves to the policies
 * that need the scores in this step (reactive and page only when they overflow). */
const double *kvp_step_read_score(kvp_step *s);
/* With more than two tiers (s->li->model->tiers > 2; a no-op otherwise): the policy's
 * ranking of the blocks out of HBM after this step, best first.  After the step the engine
 * fills tiers 1, 2, ... fastest first in this order (docs/POLICIES.md "Tiers beyond two"),
 * making the first ceil(rate x count) of the count moves up that needs, in rank order.
 * blocks must stay valid until the step returns; resident blocks in it are passed over. */
void kvp_step_rank_below(kvp_step *s, const uint32_t *blocks, uint32_t count, double rate);
/* A policy with KVP_CAP_TIERS on more than two tiers: block b, out of HBM after this step
 * (a block it demotes, the new block, or one below HBM), is in tier k >= 1 after it, in place
 * of the engine's rules below HBM (a block it names nowhere keeps them).  Its init may put a
 * prompt block in tier k by resident[b] = k + 1.  Returns 0, or KVP_ECHECK for a block or
 * tier out of range; a tier filled past its slots stops the step with KVP_ECHECK. */
int kvp_step_set_tier(kvp_step *s, uint32_t b, uint32_t k);
/* The default for a new block: into HBM if it opens this step and a slot is free. */
int kvp_step_place_new_default(kvp_step *s);

/* Initial placement (after prefill, free of cost): init receives resident[] all zero and
 * sets it.  The default fills the lowest-numbered prompt blocks up to slots. */
uint32_t kvp_initial_default(const kvp_layer_info *li, uint8_t *resident);
/* The same up to `limit` blocks (KVP_UNLIMITED_SLOTS: every prompt block). */
uint32_t kvp_initial_fill(const kvp_layer_info *li, uint8_t *resident, uint32_t limit);
/* 1 if block b holds prompt tokens (exists after prefill); with several streams, block b of
 * stream b % S exists while b / S < ceil(P_stream / g). */
int kvp_block_in_prompt(const kvp_layer_info *li, uint32_t b);

/* What a policy is, as the engine needs to know it (kvp_policy_ops.caps).  The engine asks
 * these, never a policy's name. */
#define KVP_CAP_UNLIMITED 0x01u   /* no capacity limit: slots are KVP_UNLIMITED_SLOTS */
#define KVP_CAP_SCORES 0x02u      /* step reads read_score (the engine fills it only then) */
#define KVP_CAP_ONLINE 0x04u      /* its decisions at step n depend on the trace up to n only */
#define KVP_CAP_BOUND 0x08u       /* a lower bound on the time, not a placement */
#define KVP_CAP_MANY_PASSES 0x10u /* run reads the trace many times: give it a trace cache */
#define KVP_CAP_SMALL_ONLY 0x20u  /* refuses all but small cases (optimal): "all" leaves it out */
#define KVP_CAP_STREAMS 0x100u    /* runs on traces of several streams (docs/MODEL.md
                                   * "Streams"); the others refuse them */
#define KVP_CAP_FIXED 0x40u       /* never moves a block: with more than two tiers, a new block
                                   * out of HBM takes the fastest free tier instead of pushing
                                   * tier 1's least recent block down (docs/POLICIES.md) */
#define KVP_CAP_TIERS 0x80u       /* names the tiers below HBM itself (kvp_step_set_tier) */
#define KVP_CAP_SERVES 0x200u     /* with 1-token blocks and two tiers, its step counts the
                                   * reads' hits and marks the reads (kvp_step's hbm_reads,
                                   * read_bits; on streams, the virtual blocks') */
#define KVP_CAP_VIEW_BAND 0x800u  /* with 1-token blocks on streams, reads acc->score only
                                   * where it is not NULL, else the streams' view (s->view)
                                   * or kvp_step_read_score */
#define KVP_CAP_WEIGHT_BLIND 0x400u /* its decisions never depend on how the weights are
                                   * counted (the cost model's fixed bytes, weight_bytes,
                                   * reserve): one simulation serves every accounting of a run
                                   * (kvp_run_many_accountings).  Set only after reading the
                                   * policy: one that prices its moves does not have it */

/* The sums of the shared pass over a trace (src/engine/runner.h). */
struct kvp_pass_sums;
struct kvp_accts;

struct kvp_policy_ops {
    const char *name;
    const char *doc;
    const kvp_policy_param *params;
    size_t nparams;
    unsigned caps; /* KVP_CAP_* */
    /* Replaces parameters that default to the scenario (page_tokens=0) by their values, so
     * that results name what ran.  May be NULL. */
    void (*resolve)(double *param, const kvp_scenario *sc);
    /* Block size for this spec.  NULL: 1 (token granularity). */
    uint32_t (*block_tokens)(const double *param, const kvp_scenario *sc);
    /* Steps of look-ahead the policy needs; the engine supplies future[].  NULL: none. */
    uint32_t (*lookahead)(const double *param);
    /* Per-layer state.  init may read future[] of step 0 through *first (NULL when
     * lookahead is 0), and sets the initial residency; returns 0 or a negative KVP_E* code
     * with err set. */
    int (*init)(void **state, const kvp_layer_info *li, const kvp_step *first,
                uint8_t *resident, kvp_error *err);
    int (*step)(void *state, kvp_step *s, kvp_error *err);
    void (*free)(void *state); /* NULL: the state needs no freeing */
    /* A policy that is not a simulation (bound, sa) replaces the whole run. */
    int (*run)(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
               const kvp_run_options *ro, kvp_result *res, kvp_error *err);
    /* Optional, with run: the result from the sums of a pass the engine makes anyway for
     * the simulated policies of the same list, instead of a pass of its own. */
    int (*from_shared_pass)(const kvp_scenario *sc, const kvp_trace *tr,
                            const kvp_policy_spec *ps, const struct kvp_pass_sums *sums,
                            kvp_result *res, kvp_error *err);
    /* Optional, with run: the runs of several accountings of one run at once (src/engine/
     * runner.h, kvp_accts), res[j] exactly what run gives for ac->sc[j] (sa: the searches
     * share their evaluations).  NULL: run once per accounting. */
    int (*run_accts)(const struct kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_run_options *ro, kvp_result *res, kvp_error *err);
    /* Optional, with run_accts: riders, lookahead specs of the same list run in the
     * policy's own grid passes instead of a pass of theirs (sa: its first).  takes_riders
     * says whether this run can; run_riders is run_accts that also fills rres[j * nriders
     * + k] for riders[k] and accounting j, byte for byte what they give alone. */
    int (*takes_riders)(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                        const kvp_run_options *ro);
    int (*run_riders)(const struct kvp_accts *ac, const kvp_trace *tr,
                      const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                      const kvp_policy_spec *riders, size_t nriders, kvp_result *rres,
                      kvp_error *err);
};

#endif
