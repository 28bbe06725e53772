/*
 * The engine: runs the policies over a trace, step by step and layer by layer, and charges
 * what they read and move by the cost model of docs/MODEL.md (src/engine/cost.c).
 *
 * Each layer is simulated on its own (layers never share slots), so layers run in parallel
 * threads; every per-layer total is kept separately and the layers are summed in layer order,
 * so the result is identical for any thread count.  Byte counts are kept in tokens (exact
 * integers) and multiplied by tok_bytes once, with an overflow check, at the end.
 */
#include "engine/runner.h"
#include "base/error.h"
#include "base/parallel.h"
#include "engine/blocks.h"
#include "engine/cost.h"
#include "engine/fast.h"
#include "policy/lookahead_grid.h"
#include "trace/trace.h"
#include "trace/trace_cache.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A policy that reads the trace many times (KVP_CAP_MANY_PASSES) gets a trace cache
 * (src/trace/trace_cache.c) when the cache takes at most this many bytes, and the source
 * itself otherwise.  At the study's scenario the cache takes 1.5 GB (docs/PERF.md). */
#define CACHE_MAX_BYTES (4ull << 30)

/* ---------------------------------------------------------------------------------------- */
/* The per-layer simulation                                                                 */

/* a % d and a / d of a 32-bit a with multiplications, no division (Lemire, Kaser and Kurz,
 * "Faster Remainder by Direct Computation", Software: Practice and Experience 2019,
 * arXiv:1902.01961): m = UINT64_MAX / d + 1, exact for every a and every d >= 2.  The streams'
 * per-read tallies divided twice per read, a third of a run on 32 streams (docs/PERF.md). */
__extension__ typedef unsigned __int128 fast_u128;
static inline uint64_t fast_m(uint32_t d) { return UINT64_MAX / d + 1; }
static inline uint32_t fast_mod(uint32_t a, uint64_t m, uint32_t d)
{
    return (uint32_t)(((fast_u128)(m * a) * d) >> 64);
}
static inline uint32_t fast_div(uint32_t a, uint64_t m)
{
    return (uint32_t)(((fast_u128)m * a) >> 64);
}

struct kvp_engine_layer {
    uint8_t *resident;
    uint32_t nresident;
    uint32_t nblocks;
    /* One stream: 1 while resident[] has been exactly the blocks [0, nresident) at every
     * step so far (static, unlimited): a read is a hit iff its block is below nresident. */
    uint32_t prefix;
    /* More than two tiers (docs/MODEL.md "Tiers beyond two"): the policy places HBM through
     * resident[]; the engine keeps every existing block's tier (0 = HBM, TIER_NONE: not yet
     * written) and, per tier below HBM, a recency list (head: last read or arrived) whose
     * tail moves one tier down when an arrival finds the tier full.  NULL with two tiers. */
    uint8_t *tier;
    uint32_t *prev, *next;
    uint32_t head[KVP_MAX_TIERS], tail[KVP_MAX_TIERS], count[KVP_MAX_TIERS];
    uint32_t tslots[KVP_MAX_TIERS];
    uint32_t tiers;
    int fixed; /* the policy has KVP_CAP_FIXED */
    const uint32_t *rank; /* this step's ranking below HBM (kvp_step_rank_below), or NULL */
    uint32_t nrank;
    double rank_rate;
    /* KVP_CAP_TIERS: the tiers the policy named this step (kvp_step_set_tier), or NULL */
    uint32_t *named_b;
    uint8_t *named_k;
    uint32_t nnamed;
    /* blocks whose residency changed this step, with their state before the step */
    uint32_t *touched;
    uint32_t ntouched;
    uint8_t *was;     /* per block: 0 untouched, 1 was out, 2 was in */
    /* KVP_CAP_SERVES (s->serves): the step's promotions and demotions of blocks of the
     * context, and of those the read ones, counted as they are made (direct[0..1] up,
     * [2..3] down); the list above kept only in checking mode (charge_served) */
    uint64_t direct[4];
    int untracked;
    double *rscore;   /* read_score's buffer (kvp_step_read_score) */
    /* Several streams (docs/MODEL.md "Streams"): S, and per stream the blocks b < slim[i]
     * that may be resident this step (0 once its sequence finished). */
    uint32_t S;
    uint64_t mod_s; /* fast_mod and fast_div by S (S > 1) */
    uint32_t lg_s;  /* S a power of two: log2 S, else 0 */
    const uint32_t *slim;
    /* ... each stream's context (pol_layer.sctx) and, KVP_CAP_SERVES, the step's moves of
     * its tokens as they are made (smoved[2 i] up, [2 i + 1] down: count_served) */
    const uint32_t *sctx;
    uint64_t *smoved;
    /* Several streams, S a power of two up to 64: resident[] as bits (bit b & 63 of word
     * b >> 6), kept beside it by every change, so that a step's hits are counted from the
     * set's bits (tally_bits); NULL otherwise. */
    uint64_t *rbits;
};

/* Blocks of fewer tokens are served from the merged positions, not from the streams' view:
 * there the view's block rows, 8 blocks a transposition, cost more than the positions they
 * spare (2 tokens: 1.05x to 1.35x the time on 2 to 8 streams; 4 tokens on 2 streams: 0.75x;
 * docs/PERF.md §53). */
#define VIEW_G_MIN 4u

/* Several streams: the stream of virtual block b, and its row (block b / S of stream b % S):
 * a mask and a shift when S is a power of two. */
static inline uint32_t stream_of(const struct kvp_engine_layer *e, uint32_t b)
{
    return e->lg_s ? b & (e->S - 1) : fast_mod(b, e->mod_s, e->S);
}
static inline uint32_t row_of(const struct kvp_engine_layer *e, uint32_t b)
{
    return e->lg_s ? b >> e->lg_s : fast_div(b, e->mod_s);
}

/* Tests: 0 makes the engine ignore the sets' bits (the serving and charging from the
 * positions, as before docs/PERF.md 37), to compare the two paths. */
static int serve_bits = 1;

void kvp_engine_set_serve_bits(int on)
{
    serve_bits = on != 0;
}

static inline void rbit_set(struct kvp_engine_layer *e, uint32_t b)
{
    if (e->rbits)
        e->rbits[b >> 6] |= 1ull << (b & 63);
}

static inline void rbit_clear(struct kvp_engine_layer *e, uint32_t b)
{
    if (e->rbits)
        e->rbits[b >> 6] &= ~(1ull << (b & 63));
}

static int touch(struct kvp_engine_layer *e, uint32_t b)
{
    if (!e->was[b]) {
        e->was[b] = (uint8_t)(e->resident[b] ? 2 : 1);
        e->touched[e->ntouched++] = b;
    }
    return 0;
}

/* ---- more than two tiers ---- */

#define TIER_NONE 0xFFu
#define NIL UINT32_MAX

static void list_remove(struct kvp_engine_layer *e, uint32_t b)
{
    uint32_t k = e->tier[b];
    if (e->prev[b] != NIL)
        e->next[e->prev[b]] = e->next[b];
    else
        e->head[k] = e->next[b];
    if (e->next[b] != NIL)
        e->prev[e->next[b]] = e->prev[b];
    else
        e->tail[k] = e->prev[b];
    e->count[k]--;
}

static void list_push(struct kvp_engine_layer *e, uint32_t b, uint32_t k)
{
    e->tier[b] = (uint8_t)k;
    e->prev[b] = NIL;
    e->next[b] = e->head[k];
    if (e->head[k] != NIL)
        e->prev[e->head[k]] = b;
    else
        e->tail[k] = b;
    e->head[k] = b;
    e->count[k]++;
}

/* Block b was read from tier k >= 1: it becomes that tier's most recent. */
static void list_touch(struct kvp_engine_layer *e, uint32_t b)
{
    if (e->head[e->tier[b]] != b) {
        uint32_t k = e->tier[b];
        list_remove(e, b);
        list_push(e, b, k);
    }
}

/* Marks b as changed this step, remembering its tier before the step in was[] (tier + 1;
 * TIER_NONE for a block not yet written). */
static void touch_tier(struct kvp_engine_layer *e, uint32_t b)
{
    if (!e->was[b])
        e->touched[e->ntouched++] = b;
    e->was[b] = (uint8_t)(e->tier[b] == TIER_NONE ? TIER_NONE : e->tier[b] + 1u);
}

/* Puts a block out of HBM below it: into tier `from` (1 for a block leaving HBM), and while
 * the tier it enters is full, the tier's least recent block moves one tier down (the slowest
 * tier takes any: the run's capacities hold the whole KV, checked before it starts). */
static void place_below(struct kvp_engine_layer *e, uint32_t b, uint32_t from)
{
    for (uint32_t k = from;; k++) {
        if (e->count[k] < e->tslots[k] || k + 1 == e->tiers) {
            list_push(e, b, k);
            return;
        }
        if (e->count[k] == 0)
            continue; /* a tier of no slots: on to the next */
        uint32_t v = e->tail[k];
        if (!e->was[v])
            touch_tier(e, v);
        list_remove(e, v);
        list_push(e, b, k);
        b = v;
    }
}

/* A policy's ranking below HBM (docs/POLICIES.md "Tiers beyond two"): the ranked blocks out
 * of HBM fill tiers 1, 2, ... fastest first in rank order, slots_k of them belonging in tier
 * k (the slowest tier takes the rest); one in a slower tier than its place moves up, and the
 * least recent block of that tier not ranked into it goes one tier down; one already in a
 * faster tier stays.  With rate < 1, of the moves up (counted before any is made) only the
 * first ceil(rate x count) in rank order are made.
 * Each tier's blocks ranked into it are first made its most recent, so the tail that gives
 * way is never one of them (fewer of them are there than slots while one is still to come). */
static void rank_below(struct kvp_engine_layer *e)
{
    uint32_t i = 0, moves = UINT32_MAX;
    if (e->rank_rate < 1) { /* count the moves up first, to take the rate of */
        uint32_t want = 0;
        for (uint32_t k = 1, j = 0; k + 1 < e->tiers; k++)
            for (uint32_t take = 0; j < e->nrank && take < e->tslots[k]; j++) {
                uint32_t b = e->rank[j];
                if (b >= e->nblocks || e->tier[b] == 0 || e->tier[b] == TIER_NONE)
                    continue;
                take++;
                want += e->tier[b] > k;
            }
        double q = e->rank_rate * want - 1e-9; /* the ceiling as lookahead's quota takes it */
        moves = q <= 0 ? 0 : (uint32_t)q + ((double)(uint32_t)q < q);
    }
    for (uint32_t k = 1; k + 1 < e->tiers && moves > 0; k++) {
        uint32_t j = i, take = 0;
        for (; j < e->nrank && take < e->tslots[k]; j++) {
            uint32_t b = e->rank[j];
            if (b >= e->nblocks || e->tier[b] == 0 || e->tier[b] == TIER_NONE)
                continue;
            take++;
            if (e->tier[b] == k)
                list_touch(e, b);
        }
        for (; i < j && moves > 0; i++) {
            uint32_t b = e->rank[i];
            if (b >= e->nblocks || e->tier[b] == 0 || e->tier[b] == TIER_NONE ||
                e->tier[b] <= k)
                continue;
            if (!e->was[b])
                touch_tier(e, b);
            list_remove(e, b);
            moves--;
            if (e->count[k] < e->tslots[k]) {
                list_push(e, b, k);
                continue;
            }
            uint32_t v = e->tail[k];
            if (!e->was[v])
                touch_tier(e, v);
            list_remove(e, v);
            list_push(e, b, k);
            place_below(e, v, k + 1);
        }
        i = j;
    }
}

int kvp_step_set_tier(kvp_step *s, uint32_t b, uint32_t k)
{
    struct kvp_engine_layer *e = s->eng;
    const uint32_t exist = s->exist_blocks + (s->opens_block ? 1u : 0u);
    if (!e->named_b || k == 0 || k >= e->tiers || b >= exist || b >= e->nblocks ||
        e->nnamed >= e->nblocks)
        return KVP_ECHECK;
    e->named_b[e->nnamed] = b;
    e->named_k[e->nnamed++] = (uint8_t)k;
    return 0;
}

void kvp_step_rank_below(kvp_step *s, const uint32_t *blocks, uint32_t count, double rate)
{
    struct kvp_engine_layer *e = s->eng;
    e->rank = blocks;
    e->nrank = count;
    e->rank_rate = rate;
}

/* A new block out of HBM, for a policy that never moves a block: the fastest tier with a
 * free slot (the slowest if none), as HBM takes a new block while it has a slot.  Any other
 * policy's new block is its most recent and enters tier 1 as a demoted block does
 * (place_below). */
static void place_new(struct kvp_engine_layer *e, uint32_t b)
{
    uint32_t k = 1;
    while (k + 1 < e->tiers && e->count[k] >= e->tslots[k])
        k++;
    list_push(e, b, k);
}

/* The initial placement below HBM: the blocks the policy left out of HBM, lowest-numbered
 * first, fill the tiers fastest first (static's "fills tiers in order"). */
static void initial_below(struct kvp_engine_layer *e, uint32_t exist)
{
    uint32_t k = 1;
    for (uint32_t b = 0; b < e->nblocks; b++) {
        e->tier[b] = TIER_NONE;
        if (b >= exist)
            continue;
        if (e->resident[b]) {
            e->tier[b] = 0;
            continue;
        }
        if (e->named_b && e->was[b]) { /* KVP_CAP_TIERS: the tier its init named */
            list_push(e, b, e->was[b] - 1u);
            e->was[b] = 0;
            continue;
        }
        while (k + 1 < e->tiers && e->count[k] >= e->tslots[k])
            k++;
        list_push(e, b, k); /* prompt order is arrival order: block 0 the least recent */
    }
}

/* The reads of a step per tier below HBM, each making its block the tier's most recent. */
static void serve_reads_tiers(struct kvp_engine_layer *e, const kvp_step *s, kvp_counters *st)
{
    for (uint32_t i = 0; i < s->nread; i++) {
        uint32_t b = s->read_block[i], k = e->tier[b];
        if (k) {
            st->kv_read[k] += s->read_count[i];
            list_touch(e, b);
        }
    }
    for (uint32_t k = 1; k < e->tiers; k++)
        st->read[k] = st->kv_read[k];
}

/* KVP_CAP_SERVES: such a policy moves a block at most once a step (checking mode compares
 * with the list of touched blocks, kept then), so each move is charged as it is made, from
 * the read bits it set before its first move (no bits: served() stops the run). */
static inline void count_served(struct kvp_engine_layer *e, const kvp_step *s, uint32_t b,
                                int down)
{
    if (!e->untracked)
        touch(e, b);
    const uint64_t *bits = s->read_bits;
    /* 1-token blocks: present unless it is the new block (of its stream: block b / S of
     * stream b % S, in that stream's context) */
    uint32_t str = 0;
    int present = b < s->context;
    if (e->S > 1) {
        str = stream_of(e, b);
        present = row_of(e, b) < e->sctx[str];
    }
    if (present && bits) {
        e->direct[down]++;
        e->direct[down + 1] += bits[b >> 6] >> (b & 63) & 1;
        if (e->S > 1)
            e->smoved[2 * str + (down != 0)]++;
    }
}

/* The checks are the same for one block or many; a batch keeps the loop in one function
 * (a policy moving thousands of blocks a step paid a call per block, docs/PERF.md). */
uint32_t kvp_step_promote_many(kvp_step *s, const uint32_t *blocks, uint32_t count)
{
    struct kvp_engine_layer *e = s->eng;
    const uint32_t exist = s->exist_blocks + (s->opens_block ? 1u : 0u);
    const uint32_t limit = e->S > 1 ? e->nblocks : exist < e->nblocks ? exist : e->nblocks;
    uint32_t i = 0, prefix = e->prefix;
    for (; i < count; i++) {
        uint32_t b = blocks[i];
        if (b >= limit || e->resident[b] ||
            (e->S > 1 && row_of(e, b) >= e->slim[stream_of(e, b)]))
            break;
        if (s->serves)
            count_served(e, s, b, 0);
        else
            touch(e, b);
        e->resident[b] = 1;
        rbit_set(e, b);
        prefix &= b == e->nresident + i;
    }
    e->prefix = prefix;
    e->nresident += i;
    s->nresident = e->nresident;
    return i;
}

uint32_t kvp_step_demote_many(kvp_step *s, const uint32_t *blocks, uint32_t count)
{
    struct kvp_engine_layer *e = s->eng;
    uint32_t i = 0, prefix = e->prefix;
    for (; i < count; i++) {
        uint32_t b = blocks[i];
        if (b >= e->nblocks || !e->resident[b])
            break;
        if (s->serves)
            count_served(e, s, b, 2);
        else
            touch(e, b);
        e->resident[b] = 0;
        rbit_clear(e, b);
        prefix &= b + 1 + i == e->nresident;
    }
    e->prefix = prefix;
    e->nresident -= i;
    s->nresident = e->nresident;
    return i;
}

int kvp_step_promote(kvp_step *s, uint32_t b)
{
    return kvp_step_promote_many(s, &b, 1) == 1 ? 0 : KVP_ECHECK;
}

int kvp_step_demote(kvp_step *s, uint32_t b)
{
    return kvp_step_demote_many(s, &b, 1) == 1 ? 0 : KVP_ECHECK;
}

const double *kvp_step_read_score(kvp_step *s)
{
    if (!s->read_score) {
        double *r = s->eng->rscore;
        const float *score = s->acc->score;
        if (s->li->g == 1 && !score && s->view) /* streams whose scores the view keeps */
            kvp_streams_view_scores(s->view, r);
        else if (s->li->g == 1) /* 1-token blocks: the positions' own scores */
            for (uint32_t i = 0; i < s->nread; i++)
                r[i] = (double)score[i];
        else /* one stream: each block's reads added in position order */
            kvp_block_sums(score, s->read_count, s->nread, r, 1);
        s->read_score = r;
    }
    return s->read_score;
}

int kvp_step_place_new_default(kvp_step *s)
{
    for (uint32_t i = 0; i < s->nnew && s->nresident < s->li->slots; i++) {
        int rc = kvp_step_promote(s, s->new_blocks[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kvp_block_in_prompt(const kvp_layer_info *li, uint32_t b)
{
    const uint32_t S = li->streams > 1 ? li->streams : 1;
    const uint32_t P = S > 1 ? li->sprompt[b % S] : li->prompt;
    return b / S < (uint32_t)(((uint64_t)P + li->g - 1) / li->g);
}

uint32_t kvp_initial_fill(const kvp_layer_info *li, uint8_t *resident, uint32_t limit)
{
    if (li->streams <= 1) {
        uint32_t prompt_blocks = (uint32_t)(((uint64_t)li->prompt + li->g - 1) / li->g);
        uint32_t n = prompt_blocks < limit ? prompt_blocks : limit;
        memset(resident, 1, n);
        return n;
    }
    uint32_t n = 0;
    for (uint32_t b = 0; b < li->nblocks && n < limit; b++)
        if (kvp_block_in_prompt(li, b)) {
            resident[b] = 1;
            n++;
        }
    return n;
}

uint32_t kvp_initial_default(const kvp_layer_info *li, uint8_t *resident)
{
    return kvp_initial_fill(li, resident, li->slots);
}

/* A copy of an access set, for the look-ahead ring. */
typedef struct acc_buf {
    kvp_access a;
    uint32_t *pos;
    float *score;
    uint64_t *bits;
} acc_buf;

static void copy_access(acc_buf *dst, const kvp_access *src)
{
    dst->a = *src;
    memcpy(dst->pos, src->pos, (size_t)src->count * sizeof *dst->pos);
    if (src->score)
        memcpy(dst->score, src->score, (size_t)src->count * sizeof *dst->score);
    dst->a.pos = dst->pos;
    dst->a.score = src->score ? dst->score : NULL;
    /* the trace's buffers are the next step's: its bits copied too, when it has them */
    if (src->bits)
        memcpy(dst->bits, src->bits, ((size_t)src->context + 63) / 64 * sizeof *dst->bits);
    dst->a.bits = src->bits ? dst->bits : NULL;
}

/* What one layer of one policy adds up to. */
typedef struct layer_out {
    double time_s[KVP_ACCTS_MAX]; /* per accounting (runner.h) */
    kvp_counters c; /* in tokens */
} layer_out;

/* One policy's simulation of one layer: its residency and per-step scratch. */
typedef struct pol_layer {
    const kvp_policy_spec *ps;
    kvp_layer_info li;
    uint32_t lookahead;
    struct kvp_engine_layer e;
    void *state;
    int state_ok;
    uint32_t *acount; /* per block: positions read this step, a(b) (g = 1: see charge_moves) */
    int mark_next;    /* g = 1: mark the reads of the next step as they are served */
    uint32_t *rblock, *rcount;
    double *rscore;
    kvp_step s;
    layer_out *out;
    /* Several streams: per stream its context P_i + n (0 once finished), slim (see
     * kvp_engine_layer), the scratch of the reads' per-stream tallies; the step's new and
     * freed blocks; per sequence the counts of docs/MODEL.md "Streams" (seq_out, in tokens:
     * KV read from HBM, from below, promoted, demoted). */
    uint32_t *sctx, *slim, *scnt, *sseen, *newb, *freed;
    double *ssum;
    uint64_t *stally; /* g = 1: per stream, reads << 32 | reads from HBM, of the step */
    uint64_t *smoved; /* KVP_CAP_SERVES: kvp_engine_layer.smoved */
    uint64_t *seq_out;
    uint32_t heads; /* streams per sequence */
    uint64_t div_h; /* fast_div by heads (> 1); by streams: e.mod_s */
    /* the step's sets stream by stream (serve_reads_view), NULL when the pass has none */
    const kvp_streams_view *view;
} pol_layer;

/* The sequence of stream i (streams i / heads of sequence i / heads). */
static inline uint32_t seq_of(const pol_layer *pl, uint32_t i)
{
    return pl->heads > 1 ? fast_div(i, pl->div_h) : i;
}

/* A pass over the trace, simulating every policy of the group on each layer.  The pass's
 * sums (the bound of every step, the reads) are kept alongside: they cost O(1) a step. */
typedef struct run_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    kvp_policy_spec *ps; /* npol specs, scenario-dependent defaults resolved */
    size_t npol;
    kvp_cost_model model; /* the policies' (kvp_layer_info.model): the first accounting's */
    kvp_cost_model models[KVP_ACCTS_MAX]; /* each accounting's (runner.h): times, bounds */
    uint32_t nm;
    uint64_t tok_bytes;
    uint32_t *g, *slots, *lookahead; /* per policy */
    uint32_t (*tslots)[KVP_MAX_TIERS]; /* per policy: slots of each tier (more than two) */
    uint32_t max_lookahead;
    uint32_t *ones; /* read_count of 1-token blocks: all 1 */
    const kvp_streams *si; /* NULL: one stream */
    uint32_t S;            /* streams (1 without) */
    uint32_t positions;    /* bound on any step's positions (virtual ones with streams) */
    uint64_t *seq_out;     /* [(layer * npol + policy) * nseq * 4 + ...]: pol_layer.seq_out */
    int check;
    volatile sig_atomic_t *cancel; /* kvp_run_options.cancel */
    layer_out *out;       /* [layer * npol + policy] */
    kvp_pass_sums *sums;  /* [layer * nm + accounting] */
    kvp_trace *fill;      /* NULL, or an empty cache of tr that the pass fills */
    int scores;           /* 1 if a policy of the group reads scores */
    int by_stream;        /* ... and each takes them from the streams' view (view_scores) */
    int *rc;              /* per layer */
    kvp_error *err;       /* per layer */
    kvp_step_fn hook;     /* kvp_run_options.step_hook, for kvp_run_many's pass only */
    void *hook_user;
    const size_t *hook_index; /* per policy of the group: its index in kvp_run_many's list */
} run_ctx;

static void pol_free(pol_layer *pl)
{
    if (pl->state_ok && pl->ps->ops->free)
        pl->ps->ops->free(pl->state);
    free(pl->e.resident);
    free(pl->e.rbits);
    free(pl->e.tier);
    free(pl->e.prev);
    free(pl->e.next);
    free(pl->e.named_b);
    free(pl->e.named_k);
    free(pl->e.was);
    free(pl->e.touched);
    free(pl->acount);
    free(pl->rblock);
    free(pl->rcount);
    free(pl->rscore);
    free(pl->sctx);
    free(pl->slim);
    free(pl->scnt);
    free(pl->sseen);
    free(pl->newb);
    free(pl->freed);
    free(pl->ssum);
    free(pl->stally);
    free(pl->smoved);
}

static int pol_alloc(pol_layer *pl, uint32_t positions, const uint32_t *tslots, uint32_t tiers)
{
    uint32_t nb = pl->li.nblocks;
    pl->e.nblocks = nb;
    pl->e.tiers = tiers;
    pl->e.fixed = (pl->ps->ops->caps & KVP_CAP_FIXED) != 0;
    if (tiers > 2) {
        pl->e.tier = malloc(nb ? nb : 1);
        pl->e.prev = malloc((size_t)(nb ? nb : 1) * sizeof *pl->e.prev);
        pl->e.next = malloc((size_t)(nb ? nb : 1) * sizeof *pl->e.next);
        if (!pl->e.tier || !pl->e.prev || !pl->e.next)
            return 0;
        if (pl->ps->ops->caps & KVP_CAP_TIERS) {
            pl->e.named_b = malloc((size_t)(nb ? nb : 1) * sizeof *pl->e.named_b);
            pl->e.named_k = malloc(nb ? nb : 1);
            if (!pl->e.named_b || !pl->e.named_k)
                return 0;
        }
        for (uint32_t k = 0; k < KVP_MAX_TIERS; k++) {
            pl->e.head[k] = pl->e.tail[k] = NIL;
            pl->e.tslots[k] = k < tiers ? tslots[k] : 0;
        }
    }
    pl->e.resident = calloc(nb, 1);
    pl->e.was = calloc(nb, 1);
    pl->e.touched = malloc((size_t)nb * sizeof *pl->e.touched);
    pl->acount = calloc(nb, sizeof *pl->acount);
    pl->rblock = malloc((size_t)positions * sizeof *pl->rblock);
    pl->rcount = malloc((size_t)positions * sizeof *pl->rcount);
    pl->rscore = malloc((size_t)positions * sizeof *pl->rscore);
    pl->e.rscore = pl->rscore;
    const uint32_t S = pl->li.streams;
    pl->e.S = S;
    pl->e.mod_s = S > 1 ? fast_m(S) : 0;
    pl->e.lg_s = S > 1 && (S & (S - 1)) == 0 ? (uint32_t)__builtin_ctz(S) : 0;
    if (S > 1 && S <= 64 && (S & (S - 1)) == 0 && tiers <= 2) {
        pl->e.rbits = calloc((size_t)nb / 64 + 1, sizeof *pl->e.rbits);
        if (!pl->e.rbits)
            return 0;
    }
    if (S > 1) {
        pl->sctx = calloc(S, sizeof *pl->sctx);
        pl->slim = calloc(S, sizeof *pl->slim);
        pl->scnt = calloc(S, sizeof *pl->scnt);
        pl->sseen = calloc(S, sizeof *pl->sseen);
        pl->newb = calloc(S, sizeof *pl->newb);
        pl->ssum = calloc(S, sizeof *pl->ssum);
        pl->stally = calloc(2 * (size_t)S, sizeof *pl->stally); /* tally_bits: reads, hits */
        pl->smoved = calloc(2 * (size_t)S, sizeof *pl->smoved);
        pl->freed = malloc((size_t)(nb ? nb : 1) * sizeof *pl->freed);
        pl->e.slim = pl->slim;
        pl->e.sctx = pl->sctx;
        pl->e.smoved = pl->smoved;
        if (!pl->sctx || !pl->slim || !pl->scnt || !pl->sseen || !pl->newb || !pl->ssum ||
            !pl->stally || !pl->smoved || !pl->freed)
            return 0;
    }
    return pl->e.resident && pl->e.was && pl->e.touched && pl->acount && pl->rblock &&
           pl->rcount && pl->rscore;
}

/* Steps of the access sets are kept in the ring at index m % ring_n. */
static void window(kvp_step *s, const acc_buf *ring, uint32_t ring_n, const kvp_access **future,
                   uint32_t W, uint32_t n, uint32_t N)
{
    s->nfuture = n + W <= N ? W : N - n;
    for (uint32_t i = 0; i < s->nfuture; i++)
        future[i] = &ring[(n + i) % ring_n].a;
    s->future = future;
    s->prev = n ? &ring[(n - 1) % ring_n].a : NULL;
}

static int pol_init(pol_layer *pl, const acc_buf *ring, uint32_t ring_n, const kvp_access **future,
                    kvp_error *err)
{
    const kvp_policy_ops *ops = pl->ps->ops;
    kvp_step *s = &pl->s;
    memset(s, 0, sizeof *s);
    s->li = &pl->li;
    s->eng = &pl->e;
    s->resident = pl->e.resident;
    s->serves = (ops->caps & KVP_CAP_SERVES) && pl->li.g == 1 && pl->e.tiers <= 2;
    kvp_step first = *s;
    first.context = pl->li.prompt;
    first.exist_blocks = (uint32_t)(((uint64_t)pl->li.prompt + pl->li.g - 1) / pl->li.g);
    if (pl->li.streams > 1) { /* the largest prompt's blocks, of every stream */
        first.context *= pl->li.streams;
        first.exist_blocks *= pl->li.streams;
    }
    if (pl->lookahead) {
        window(&first, ring, ring_n, future, pl->lookahead, 0, pl->li.steps);
        first.acc = future[0];
    }
    int rc = ops->init(&pl->state, &pl->li, pl->lookahead ? &first : NULL, pl->e.resident, err);
    if (rc < 0) {
        if (err && err->msg[0] == 0)
            kvp_error_set(err, rc, "policy %s: init of layer %u failed", ops->name,
                          pl->li.layer);
        return rc;
    }
    pl->state_ok = 1;
    if (rc > 0)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: init returned %d, not a status",
                             ops->name, rc);
    pl->e.nresident = 0;
    for (uint32_t b = 0; b < pl->li.nblocks; b++) {
        if (pl->e.resident[b] > 1) { /* KVP_CAP_TIERS: k + 1 names tier k for initial_below */
            if (!pl->e.named_b || pl->e.resident[b] - 1u >= pl->e.tiers || b >= first.exist_blocks)
                return kvp_error_set(err, KVP_ECHECK, "policy %s: initial placement of layer "
                                     "%u puts block %u in tier %u", ops->name, pl->li.layer, b,
                                     pl->e.resident[b] - 1u);
            pl->e.was[b] = pl->e.resident[b];
            pl->e.resident[b] = 0;
        }
        pl->e.nresident += pl->e.resident[b];
    }
    for (uint32_t b = 0; pl->e.rbits && b < pl->li.nblocks; b++)
        if (pl->e.resident[b])
            rbit_set(&pl->e, b);
    pl->e.prefix = pl->li.streams <= 1;
    for (uint32_t b = 0; b < pl->e.nresident; b++)
        pl->e.prefix &= pl->e.resident[b] == 1;
    for (uint32_t b = 0; pl->li.streams > 1 && b < pl->li.nblocks; b++)
        if (pl->e.resident[b] && !kvp_block_in_prompt(&pl->li, b))
            return kvp_error_set(err, KVP_ECHECK, "policy %s: initial placement of layer %u "
                                 "holds block %u of stream %u, which holds no prompt token",
                                 ops->name, pl->li.layer, b / pl->li.streams,
                                 b % pl->li.streams);
    if (pl->e.tier)
        initial_below(&pl->e, first.exist_blocks);
    for (uint32_t k = 1; pl->e.named_b && k < pl->e.tiers; k++)
        if (pl->e.count[k] > pl->e.tslots[k])
            return kvp_error_set(err, KVP_ECHECK, "policy %s: initial placement of layer %u "
                                 "puts %u blocks in tier %u, slots %u", ops->name, pl->li.layer,
                                 pl->e.count[k], k, pl->e.tslots[k]);
    if (pl->e.nresident > pl->li.slots)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: initial placement of layer %u holds "
                             "%u blocks, slots %u", ops->name, pl->li.layer, pl->e.nresident,
                             pl->li.slots);
    return 0;
}

/* With 1-token blocks, a(b) of a block whose residency changed is found by a binary search
 * of the access set, unless so many changed that marking the set is cheaper: acount[p] = n + 1
 * for every position p read at step n (a stamp, so nothing is cleared), one store a read, in
 * the pass that serves the reads when the policy's previous step moved that many blocks, in
 * a pass of its own otherwise.  A search costs some log2(count) mispredicted probes, a mark
 * about one store: marking pays from some count / 50 changes; it is used from count / 32. */
#define READ_MARK_RATIO 32u

/* 1 if position p is in the (ascending) access set. */
static uint32_t is_read(const kvp_access *acc, uint32_t p)
{
    uint32_t lo = 0, hi = acc->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (acc->pos[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < acc->count && acc->pos[lo] == p;
}

/* 1. Reads: each position from the tier its block is in.  Fills the step's read_* fields
 * and returns how many positions were read from HBM; *marked tells whether acount holds this
 * step's stamp for every read (g = 1). */
static uint64_t serve_reads(pol_layer *pl, const run_ctx *rc, const kvp_access *acc,
                            int *marked)
{
    const uint32_t g = pl->li.g;
    const uint8_t *res = pl->e.resident;
    const uint32_t stamp = acc->step + 1;
    uint32_t *acount = pl->acount;
    kvp_step *s = &pl->s;
    uint64_t hbm_hits = 0;
    *marked = 0;
    if (g == 1) {
        /* The blocks read are the positions themselves, a(b) = 1, and the per-block tallies
         * are not needed: the loop is one gather per read, and none for a policy that counts
         * the hits and marks the reads in its own pass (KVP_CAP_SERVES; in checking mode the
         * engine counts them too, to compare). */
        if (s->serves && !rc->check) {
            /* counted and marked by the policy (served, after its step) */
        } else if (pl->e.prefix && !pl->mark_next) {
            /* resident[] is [0, nresident) (static, unlimited): the reads below it, found
             * by a binary search of the ascending set */
            uint32_t lo = 0, hi = acc->count;
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (acc->pos[mid] < pl->e.nresident)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            hbm_hits = lo;
        } else if (pl->mark_next) {
            for (uint32_t i = 0; i < acc->count; i++) {
                hbm_hits += res[acc->pos[i]];
                acount[acc->pos[i]] = stamp;
            }
            *marked = 1;
        } else {
            for (uint32_t i = 0; i < acc->count; i++)
                hbm_hits += res[acc->pos[i]];
        }
        s->nread = acc->count;
        s->read_block = acc->pos;
        s->read_count = rc->ones;
        s->read_score = NULL; /* filled on demand by kvp_step_read_score */
        return hbm_hits;
    }
    /* The blocks read and their counts: from the set's bits when the trace gives them and
     * there are no more blocks than reads (a popcount per block), else from the positions;
     * the score sums only when a policy asks (kvp_step_read_score), on overflow steps. */
    uint32_t *rblock = pl->rblock, *rcount = pl->rcount;
    const uint32_t nread =
        acc->bits && s->exist_blocks <= acc->count
            ? kvp_blocks_of_bits(acc->bits, acc->context, g, rblock, rcount)
            : kvp_blocks_of_pos(acc->pos, acc->count, g, rblock, rcount);
    for (uint32_t i = 0; i < nread; i++) {
        acount[rblock[i]] = rcount[i];
        hbm_hits += (uint64_t)res[rblock[i]] * rcount[i];
    }
    s->nread = nread;
    s->read_block = rblock;
    s->read_count = rcount;
    s->read_score = NULL;
    return hbm_hits;
}

/* The step's read entries, nread of them in pl's rblock, rcount and rscore, handed to the
 * policy; returns hbm_hits. */
static uint64_t read_entries(pol_layer *pl, uint32_t nread, uint64_t hbm_hits)
{
    kvp_step *s = &pl->s;
    s->nread = nread;
    s->read_block = pl->rblock;
    s->read_count = pl->rcount;
    s->read_score = pl->rscore;
    return hbm_hits;
}

/* Reads with several streams and blocks of g > 1 tokens: the set's virtual positions
 * v = p * S + i ascend by position, then stream, so the reads of block row b (positions
 * [b g, (b + 1) g) of every stream) are consecutive; each stream's count and score sum (in
 * position order, as serve_reads sums) give the read entry of block b * S + i, listed by
 * stream ascending. */
/* Out of line: the one-stream step stays as compact as before streams (docs/PERF.md 18);
 * not cold, which GCC compiles for size (docs/PERF.md 37). */
__attribute__((noinline)) static uint64_t serve_reads_streams(pol_layer *pl,
                                                              const kvp_access *acc)
{
    const uint32_t g = pl->li.g, S = pl->li.streams;
    const int scores = (pl->ps->ops->caps & KVP_CAP_SCORES) != 0;
    const uint32_t *pos = acc->pos, count = acc->count;
    const float *score = acc->score;
    const uint8_t *res = pl->e.resident;
    uint32_t *cnt = pl->scnt, *seen = pl->sseen, nread = 0;
    double *sum = pl->ssum;
    const uint64_t m = pl->e.mod_s; /* v % S and v / S by multiplications, as below */
    uint64_t hbm_hits = 0;
    /* The set's bits (S = 2, 4, 8, AVX-512): the same entries, a position at a time */
    const uint32_t nbits =
        acc->bits ? kvp_blocks_of_streams(acc->bits, acc->context, S, g, scores ? score : NULL,
                                          pl->rblock, pl->rcount, pl->rscore)
                  : UINT32_MAX;
    if (nbits != UINT32_MAX) {
        for (uint32_t k = 0; k < nbits; k++) {
            const uint32_t vb = pl->rblock[k];
            pl->acount[vb] = pl->rcount[k];
            hbm_hits += (uint64_t)res[vb] * pl->rcount[k];
        }
        nread = nbits;
    }
    for (uint32_t i = nbits != UINT32_MAX ? count : 0; i < count;) {
        const uint32_t b = fast_div(pos[i], m) / g;
        const uint64_t end = ((uint64_t)b + 1) * g * S;
        uint32_t ns = 0, j = i;
        uint64_t mask = 0; /* S <= 64: the streams read, as bits (ascending by ctz) */
        if (S <= 64) {
            for (; j < count && pos[j] < end; j++) {
                uint32_t st = fast_mod(pos[j], m, S);
                if (!cnt[st]++)
                    sum[st] = 0;
                mask |= 1ull << st;
                if (scores)
                    sum[st] += (double)score[j];
            }
            for (uint64_t z = mask; z; z &= z - 1)
                seen[ns++] = (uint32_t)__builtin_ctzll(z);
        } else {
            for (; j < count && pos[j] < end; j++) {
                uint32_t st = fast_mod(pos[j], m, S);
                if (!cnt[st]++) {
                    uint32_t k = ns++; /* insertion: seen[] ascends */
                    for (; k > 0 && seen[k - 1] > st; k--)
                        seen[k] = seen[k - 1];
                    seen[k] = st;
                    sum[st] = 0;
                }
                if (scores)
                    sum[st] += (double)score[j];
            }
        }
        for (uint32_t k = 0; k < ns; k++) {
            const uint32_t st = seen[k], vb = b * S + st;
            pl->rblock[nread] = vb;
            pl->rcount[nread] = cnt[st];
            pl->rscore[nread++] = sum[st];
            pl->acount[vb] = cnt[st];
            hbm_hits += (uint64_t)res[vb] * cnt[st];
            cnt[st] = 0;
        }
        i = j;
    }
    return read_entries(pl, nread, hbm_hits);
}

/* serve_reads_streams from the streams' own sets (kvp_cursor_streams_view) where
 * kvp_blocks_of_view takes them (AVX-512, S = 2, 4, 8, g dividing 64): the same entries and
 * sums, without a pass over the merged set's positions; the per-sequence counts
 * (streams_count_reads) on the way, the stream of entry vb being vb % S.  UINT64_MAX where it
 * does not take them (nothing done). */
__attribute__((noinline)) static uint64_t serve_reads_view(pol_layer *pl,
                                                           const kvp_streams_view *v)
{
    const uint32_t S = v->S;
    const int scores = (pl->ps->ops->caps & KVP_CAP_SCORES) != 0;
    const uint32_t nread = kvp_blocks_of_view(v->bits, S, v->ctx, scores ? v->score : NULL,
                                              pl->li.g, pl->rblock, pl->rcount, pl->rscore);
    if (nread == UINT32_MAX)
        return UINT64_MAX;
    const uint8_t *res = pl->e.resident;
    uint64_t hbm_hits = 0, reads[64] = {0}, hits[64] = {0};
    for (uint32_t k = 0; k < nread; k++) {
        const uint32_t vb = pl->rblock[k], c = pl->rcount[k];
        pl->acount[vb] = c;
        hits[vb & (S - 1)] += (uint64_t)res[vb] * c;
        reads[vb & (S - 1)] += c;
    }
    for (uint32_t i = 0; i < S; i++) {
        uint64_t *q = pl->seq_out + (size_t)seq_of(pl, i) * 4;
        q[0] += hits[i];
        q[1] += reads[i] - hits[i];
        hbm_hits += hits[i];
    }
    return read_entries(pl, nread, hbm_hits);
}

/* The reads and the reads from HBM of each stream of a step (S a power of two up to 64:
 * stream i is bits i, i + S, ... of every word), from the set's bits and the residency's,
 * into reads[0..S) and hits[0..S): no pass over the positions, 64 virtual positions a word.
 * Each bit's count is kept in lanes (a per-bit popcount, no popcnt instruction needed): bits
 * 4 k + j of 15 words summed in nibble k of n[j] (j < 4, three operations each a word),
 * every 15 words the nibbles added into bytes (bit 8 k + j in byte k of c[j], j < 8), and
 * every 255 words the bytes into the streams' counts, before any lane can overflow. */
typedef struct bit_lanes {
    uint64_t n[4], c[8];
} bit_lanes;

static inline void lanes_add(bit_lanes *l, uint64_t x)
{
    const uint64_t m = 0x1111111111111111ull;
    l->n[0] += x & m;
    l->n[1] += x >> 1 & m;
    l->n[2] += x >> 2 & m;
    l->n[3] += x >> 3 & m;
}

static inline void lanes_fold(bit_lanes *l)
{
    const uint64_t m = 0x0F0F0F0F0F0F0F0Full;
    for (unsigned j = 0; j < 4; j++) {
        l->c[j] += l->n[j] & m;
        l->c[j + 4] += l->n[j] >> 4 & m;
        l->n[j] = 0;
    }
}

static inline void lanes_out(bit_lanes *l, uint32_t S, uint64_t *count)
{
    for (unsigned j = 0; j < 8; j++) {
        for (unsigned k = 0; k < 8; k++)
            count[(8 * k + j) & (S - 1)] += l->c[j] >> 8 * k & 0xFF;
        l->c[j] = 0;
    }
}

static void tally_bits(const uint64_t *set, const uint64_t *res, size_t nw, uint32_t S,
                       uint64_t *reads, uint64_t *hits)
{
    bit_lanes lr = {{0}, {0}}, lh = {{0}, {0}};
    memset(reads, 0, S * sizeof *reads);
    memset(hits, 0, S * sizeof *hits);
    for (size_t w0 = 0; w0 < nw; w0 += 255) {
        const size_t w1 = nw - w0 < 255 ? nw : w0 + 255;
        for (size_t v0 = w0; v0 < w1; v0 += 15) {
            const size_t v1 = w1 - v0 < 15 ? w1 : v0 + 15;
            for (size_t w = v0; w < v1; w++) {
                lanes_add(&lr, set[w]);
                lanes_add(&lh, set[w] & res[w]);
            }
            lanes_fold(&lr);
            lanes_fold(&lh);
        }
        lanes_out(&lr, S, reads);
        lanes_out(&lh, S, hits);
    }
}

/* Reads with several streams and 1-token blocks.  With the set's bits and the residency's
 * (S a power of two up to 64), the per-stream tallies by tally_bits.  Otherwise
 * serve_reads's loop, with each read's stream tallied on the way (the per-sequence counts of
 * streams_count_reads), one pass and one residency load a read; reads of stream v % S: a mask
 * when S is a power of two.  Out of line, not cold: GCC compiles cold code for size. */
__attribute__((noinline)) static uint64_t serve_reads_streams1(pol_layer *pl,
                                                               const run_ctx *rc,
                                                               const kvp_access *acc,
                                                               int *marked)
{
    const uint32_t S = pl->li.streams;
    const uint8_t *res = pl->e.resident;
    const uint32_t *pos = acc->pos, count = acc->count, stamp = acc->step + 1;
    uint32_t *acount = pl->acount;
    uint64_t *tally = pl->stally;
    const int mark = pl->mark_next;
    kvp_step *s = &pl->s;
    s->nread = count;
    s->read_block = pos;
    s->read_count = rc->ones;
    s->read_score = NULL; /* filled on demand by kvp_step_read_score */
    *marked = 0;
    if (acc->bits && pl->e.rbits) { /* charge_moves tests the set's bits: no marks */
        uint64_t *hits = pl->stally + S;
        const size_t nw = ((size_t)acc->context + 63) / 64;
        if (!kvp_tally_streams(acc->bits, pl->e.rbits, nw, S, tally, hits))
            tally_bits(acc->bits, pl->e.rbits, nw, S, tally, hits);
        uint64_t hbm_hits = 0;
        for (uint32_t i = 0; i < S; i++) {
            uint64_t *q = pl->seq_out + (size_t)seq_of(pl, i) * 4;
            q[0] += hits[i];
            q[1] += tally[i] - hits[i];
            hbm_hits += hits[i];
        }
        return hbm_hits;
    }
    memset(tally, 0, (size_t)S * sizeof *tally);
    if ((S & (S - 1)) == 0) {
        const uint32_t mask = S - 1;
        for (uint32_t i = 0; i < count; i++) {
            const uint32_t v = pos[i];
            tally[v & mask] += (1ull << 32) | res[v];
            if (mark)
                acount[v] = stamp;
        }
    } else {
        const uint64_t m = pl->e.mod_s;
        for (uint32_t i = 0; i < count; i++) {
            const uint32_t v = pos[i];
            tally[fast_mod(v, m, S)] += (1ull << 32) | res[v];
            if (mark)
                acount[v] = stamp;
        }
    }
    *marked = mark;
    uint64_t hbm_hits = 0;
    for (uint32_t i = 0; i < S; i++) {
        const uint64_t reads = tally[i] >> 32, hits = tally[i] & 0xFFFFFFFFu;
        uint64_t *q = pl->seq_out + (size_t)seq_of(pl, i) * 4;
        q[0] += hits;
        q[1] += reads - hits;
        hbm_hits += hits;
    }
    return hbm_hits;
}

/* 2. The charges for what the policy changed: every block whose residency differs from
 * before the step moved whole, but for the positions just read (docs/MODEL.md). */
static void charge_moves(pol_layer *pl, const kvp_access *acc, int marked, kvp_counters *st)
{
    struct kvp_engine_layer *e = &pl->e;
    const uint32_t g = pl->li.g, ctx = acc->context, stamp = acc->step + 1;
    const int serves = pl->s.serves;
    /* KVP_CAP_SERVES: the policy's read bits; the new block (pres 0) may hold one */
    const uint32_t *acount = pl->acount;
    const uint64_t *rbits = pl->s.read_bits;
    /* the set's own bits (a block present is inside its words): neither marks nor searches */
    const uint64_t *sbits = g == 1 && !serves ? acc->bits : NULL;
    const int mark = g == 1 && !sbits &&
                     (serves || (uint64_t)e->ntouched * READ_MARK_RATIO >= acc->count);
    if (mark && !marked && !serves)
        for (uint32_t i = 0; i < acc->count; i++)
            pl->acount[acc->pos[i]] = stamp;
    pl->mark_next = mark && !serves;
    const uint32_t S = e->S;
    for (uint32_t i = 0; i < e->ntouched; i++) {
        uint32_t b = e->touched[i];
        uint8_t before = e->was[b];
        e->was[b] = 0;
        /* with several streams: block b / S of stream b % S, in that stream's context */
        const uint32_t str = S > 1 ? stream_of(e, b) : 0;
        const uint64_t cx = S > 1 ? pl->sctx[str] : ctx;
        uint64_t lo = (uint64_t)(S > 1 ? row_of(e, b) : b) * g, hi = lo + g;
        uint64_t pres = hi <= cx ? g : (cx > lo ? cx - lo : 0);
        uint64_t a = g != 1   ? acount[b]
                     : serves ? pres && (rbits[b >> 6] >> (b & 63) & 1)
                     : sbits  ? pres && (sbits[b >> 6] >> (b & 63) & 1)
                     : mark   ? pres && acount[b] == stamp
                              : is_read(acc, b);
        if (S > 1 && !serves && before != (e->resident[b] ? 2 : 1)) {
            uint64_t *q = pl->seq_out + (size_t)seq_of(pl, str) * 4;
            q[e->resident[b] ? 2 : 3] += pres;
        }
        if (e->tier) { /* was[] holds the tier before + 1, tier[] the tier after */
            if (before == TIER_NONE || before - 1u == e->tier[b])
                continue;
            uint32_t from = before - 1u, to = e->tier[b];
            st->read[from] += pres - a;
            st->write[to] += pres;
            st->moved_out[from] += pres;
            st->moved_in[to] += pres;
            if (to < from)
                st->promoted += pres;
            else
                st->demoted += pres;
        } else if (before == 1 && e->resident[b]) { /* promotion: the unread rest comes up */
            st->read[1] += pres - a;
            st->write[0] += pres;
            st->moved_out[1] += pres;
            st->moved_in[0] += pres;
            st->promoted += pres;
        } else if (before == 2 && !e->resident[b]) { /* demotion: the unread rest is read */
            st->read[0] += pres - a;
            st->write[1] += pres;
            st->moved_out[0] += pres;
            st->moved_in[1] += pres;
            st->demoted += pres;
        }
    }
    e->ntouched = 0;
}

/* KVP_CAP_SERVES: charge_moves's charges from the counts of the moves as made (two tiers). */
static void charge_served(const struct kvp_engine_layer *e, kvp_counters *st)
{
    const uint64_t up = e->direct[0], down = e->direct[2];
    st->read[1] += up - e->direct[1];
    st->write[0] += up;
    st->moved_out[1] += up;
    st->moved_in[0] += up;
    st->promoted += up;
    st->read[0] += down - e->direct[3];
    st->write[1] += down;
    st->moved_out[0] += down;
    st->moved_in[1] += down;
    st->demoted += down;
}

/* After the policy's step, with more than two tiers: the blocks it took into HBM leave their
 * tier, those it put out of HBM go below (place_below), in the order it moved them, and so
 * does a new block it left out of HBM. */
static int resolve_tiers(struct kvp_engine_layer *e, const kvp_step *s)
{
    const uint32_t n = e->ntouched;
    for (uint32_t i = 0; i < n; i++)
        touch_tier(e, e->touched[i]);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = e->touched[i];
        if (e->resident[b] && e->tier[b] != 0) {
            if (e->tier[b] != TIER_NONE)
                list_remove(e, b);
            e->tier[b] = 0;
        }
    }
    for (uint32_t i = 0; i < e->nnamed; i++) { /* KVP_CAP_TIERS: where the policy says */
        uint32_t b = e->named_b[i];
        if (e->resident[b])
            return KVP_ECHECK;
        if (!e->was[b])
            touch_tier(e, b);
        if (e->tier[b] != 0 && e->tier[b] != TIER_NONE)
            list_remove(e, b);
        list_push(e, b, e->named_k[i]);
    }
    e->nnamed = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = e->touched[i];
        if (!e->resident[b] && e->tier[b] == 0)
            place_below(e, b, 1);
    }
    if (s->opens_block && e->tier[s->new_block] == TIER_NONE) {
        if (e->resident[s->new_block])
            e->tier[s->new_block] = 0;
        else if (e->fixed)
            place_new(e, s->new_block);
        else
            place_below(e, s->new_block, 1);
    }
    if (e->rank) {
        rank_below(e);
        e->rank = NULL;
    }
    for (uint32_t k = 1; e->named_b && k < e->tiers; k++) /* what it named must fit */
        if (e->count[k] > e->tslots[k])
            return KVP_ECHECK;
    return 0;
}

/* Checking mode: the tiers agree with the HBM residency and none holds more than its slots. */
static int check_tiers(const pol_layer *pl, uint32_t n, kvp_error *err)
{
    const struct kvp_engine_layer *e = &pl->e;
    uint32_t cnt[KVP_MAX_TIERS] = {0};
    for (uint32_t b = 0; b < e->nblocks; b++) {
        if (e->tier[b] == TIER_NONE)
            continue;
        if ((e->tier[b] == 0) != (e->resident[b] != 0))
            return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u block %u in tier %u "
                                 "but resident %u after step %u", pl->ps->ops->name,
                                 pl->li.layer, b, e->tier[b], e->resident[b], n);
        cnt[e->tier[b]]++;
    }
    for (uint32_t k = 1; k < e->tiers; k++)
        if (cnt[k] != e->count[k] || cnt[k] > e->tslots[k])
            return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u tier %u holds %u blocks "
                                 "(list %u), slots %u, after step %u", pl->ps->ops->name,
                                 pl->li.layer, k, cnt[k], e->count[k], e->tslots[k], n);
    return 0;
}

/* Checking mode: the residency's bits (rbits) are resident[]'s. */
static int check_rbits(const pol_layer *pl, uint32_t n, kvp_error *err)
{
    const struct kvp_engine_layer *e = &pl->e;
    for (uint32_t b = 0; b < e->nblocks; b++)
        if ((e->rbits[b >> 6] >> (b & 63) & 1) != (e->resident[b] != 0))
            return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u block %u resident %u "
                                 "but its bit %u after step %u", pl->ps->ops->name,
                                 pl->li.layer, b, e->resident[b],
                                 (unsigned)(e->rbits[b >> 6] >> (b & 63) & 1), n);
    return 0;
}

/* Several streams, before step n: the sequences that finished leave both tiers at no cost;
 * each stream's context, the blocks it may hold (slim), and the blocks the new tokens open
 * (docs/MODEL.md "Streams").  The step's exist_blocks bounds every block that exists. */
__attribute__((noinline, cold)) static void streams_prepare(pol_layer *pl, uint32_t n)
{
    const kvp_layer_info *li = &pl->li;
    const uint32_t S = li->streams, g = li->g;
    struct kvp_engine_layer *e = &pl->e;
    kvp_step *s = &pl->s;
    uint32_t nnew = 0, nfreed = 0, exist = 0, maxb = 0;
    for (uint32_t i = 0; i < S; i++)
        if (li->ssteps[i] == n) {
            uint32_t blocks = (uint32_t)(((uint64_t)li->sprompt[i] + li->ssteps[i] + g - 1) / g);
            maxb = blocks > maxb ? blocks : maxb;
        }
    for (uint32_t b = 0; b < maxb; b++)
        for (uint32_t i = 0; i < S; i++) {
            if (li->ssteps[i] != n ||
                b >= (uint32_t)(((uint64_t)li->sprompt[i] + li->ssteps[i] + g - 1) / g))
                continue;
            const uint32_t vb = b * S + i;
            pl->freed[nfreed++] = vb;
            if (e->resident[vb]) {
                e->resident[vb] = 0;
                rbit_clear(e, vb);
                e->nresident--;
            }
        }
    for (uint32_t i = 0; i < S; i++) {
        const int active = n < li->ssteps[i];
        const uint32_t C = active ? li->sprompt[i] + n : 0;
        pl->sctx[i] = C;
        pl->slim[i] = active ? C / g + 1 : 0;
        if (!active)
            continue;
        const uint32_t eb = (uint32_t)(((uint64_t)C + g - 1) / g);
        exist = eb > exist ? eb : exist;
        if (C % g == 0) {
            uint32_t k = nnew++, vb = C / g * S + i;
            for (; k > 0 && pl->newb[k - 1] > vb; k--)
                pl->newb[k] = pl->newb[k - 1];
            pl->newb[k] = vb;
        }
    }
    s->exist_blocks = exist * S;
    s->nnew = nnew;
    s->new_blocks = pl->newb;
    s->opens_block = nnew > 0;
    s->new_block = nnew ? pl->newb[0] : 0;
    s->nfreed = nfreed;
    s->freed = pl->freed;
}

/* Several streams: the step's reads per sequence (before the placement), into seq_out. */
__attribute__((noinline, cold)) static void streams_count_reads(pol_layer *pl)
{
    const kvp_step *s = &pl->s;
    const uint32_t S = pl->li.streams;
    for (uint32_t i = 0; i < s->nread; i++) {
        const uint32_t vb = s->read_block[i];
        pl->seq_out[(size_t)seq_of(pl, fast_mod(vb, pl->e.mod_s, S)) * 4 +
                    (pl->e.resident[vb] ? 0 : 1)] +=
            s->read_count[i];
    }
}

/* KVP_CAP_SERVES, after the policy's step: its count of the reads from HBM into st; in
 * checking mode, its count and marks against the engine's (hbm_hits, is_read). */
static int served(pol_layer *pl, const run_ctx *rc, const kvp_access *acc, uint64_t hbm_hits,
                  kvp_counters *st, kvp_error *err)
{
    const kvp_step *s = &pl->s;
    const uint64_t h = s->hbm_reads;
    const uint64_t *bits = s->read_bits;
    int bad = h > acc->count || !bits;
    if (rc->check && !bad) {
        bad = h != hbm_hits;
        for (uint32_t i = 0; i < acc->count && !bad; i++)
            bad = !(bits[acc->pos[i] >> 6] >> (acc->pos[i] & 63) & 1);
        for (uint32_t i = 0; i < pl->e.ntouched && !bad; i++) {
            const uint32_t b = pl->e.touched[i];
            bad = b < acc->context && (bits[b >> 6] >> (b & 63) & 1) && !is_read(acc, b);
        }
    }
    if (bad)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u step %u: reads from HBM "
                             "or read marks not as the engine's", pl->ps->ops->name,
                             pl->li.layer, acc->step);
    st->kv_read[0] = st->read[0] = h;
    st->kv_read[1] = st->read[1] = acc->count - h;
    return 0;
}

/* One step of one policy: reads, placement and its charges, the new token, the step's time
 * (kvp_step_time, src/engine/cost.c). */
static int pol_step(pol_layer *pl, const run_ctx *rc, const kvp_access *acc, const double *bound_t,
                    const acc_buf *ring, uint32_t ring_n, const kvp_access **future,
                    kvp_error *err)
{
    const kvp_policy_ops *ops = pl->ps->ops;
    const uint32_t g = pl->li.g, n = acc->step, ctx = acc->context;
    struct kvp_engine_layer *e = &pl->e;
    kvp_step *s = &pl->s;

    s->n = n;
    s->context = ctx;
    s->new_block = ctx / g;
    s->opens_block = ctx % g == 0;
    s->exist_blocks = (uint32_t)(((uint64_t)ctx + g - 1) / g);
    s->nnew = s->opens_block ? 1u : 0u;
    s->new_blocks = &s->new_block;
    s->acc = acc;
    s->view = pl->view;
    if (pl->lookahead)
        window(s, ring, ring_n, future, pl->lookahead, n, pl->li.steps);
    const uint32_t S = pl->li.streams;
    if (S > 1)
        streams_prepare(pl, n);

    int marked = 0;
    uint64_t hbm_hits = S > 1 && g >= VIEW_G_MIN && pl->view
                            ? serve_reads_view(pl, pl->view)
                            : UINT64_MAX;
    if (hbm_hits == UINT64_MAX) {
        hbm_hits = S == 1   ? serve_reads(pl, rc, acc, &marked)
                   : g == 1 ? serve_reads_streams1(pl, rc, acc, &marked)
                            : serve_reads_streams(pl, acc);
        if (S > 1 && g > 1)
            streams_count_reads(pl);
    }
    const uint64_t reads = acc->count;
    kvp_counters st = {0};
    st.kv_read[0] = st.read[0] = hbm_hits;
    if (e->tier)
        serve_reads_tiers(e, s, &st);
    else
        st.kv_read[1] = st.read[1] = reads - hbm_hits;

    const uint32_t nread = s->nread;
    s->nresident = e->nresident;
    s->hbm_reads = UINT64_MAX;
    s->read_bits = NULL;
    memset(e->direct, 0, sizeof e->direct);
    e->untracked = s->serves && !rc->check;
    int ret = ops->step(pl->state, s, err);
    if (ret < 0) {
        if (ret == KVP_ECHECK && err->msg[0] == 0)
            kvp_error_set(err, ret, "policy %s: bad promotion or demotion at step %u, layer %u",
                          ops->name, n, pl->li.layer);
        return ret;
    }
    if (s->serves && (ret = served(pl, rc, acc, hbm_hits, &st, err)) < 0)
        return ret;
    if (e->nresident > pl->li.slots)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u holds %u blocks after step "
                             "%u, slots %u", ops->name, pl->li.layer, e->nresident, n,
                             pl->li.slots);
    if (e->tier && resolve_tiers(e, s) < 0)
        return kvp_error_set(err, KVP_ECHECK, "policy %s: step %u layer %u names a tier below "
                             "HBM for a block in HBM, or fills a tier past its slots",
                             ops->name, n, pl->li.layer);
    if (s->serves) {
        kvp_counters direct = st;
        charge_served(e, &direct);
        for (uint32_t i = 0; S > 1 && i < S; i++) { /* each stream's moves, as made */
            uint64_t *q = pl->seq_out + (size_t)seq_of(pl, i) * 4;
            q[2] += pl->smoved[2 * i];
            q[3] += pl->smoved[2 * i + 1];
            pl->smoved[2 * i] = pl->smoved[2 * i + 1] = 0;
        }
        if (e->untracked)
            st = direct;
        else if (charge_moves(pl, acc, marked, &st), memcmp(&st, &direct, sizeof st))
            return kvp_error_set(err, KVP_ECHECK, "policy %s: layer %u step %u moves a block "
                                 "twice", ops->name, pl->li.layer, n);
    } else {
        charge_moves(pl, acc, marked, &st);
    }
    if (e->tier && rc->check && (ret = check_tiers(pl, n, err)) < 0)
        return ret;
    if (e->rbits && rc->check && (ret = check_rbits(pl, n, err)) < 0)
        return ret;

    /* 3. The new token, where its block now is (one per decoding stream). */
    if (e->tier)
        st.write[e->tier[s->new_block]] += 1;
    else if (S > 1)
        for (uint32_t i = 0; i < S; i++) {
            if (pl->slim[i])
                st.write[e->resident[pl->sctx[i] / g * S + i] ? 0 : 1] += 1;
        }
    else
        st.write[e->resident[s->new_block] ? 0 : 1] += 1;

    kvp_traffic traffic;
    kvp_traffic_of(&traffic, &st, rc->model.tiers, rc->tok_bytes);
    double t = 0;
    for (uint32_t j = 0; j < rc->nm; j++) { /* each accounting's time of the same step */
        const double tj = kvp_step_time(&rc->models[j], &traffic);
        if (rc->check && !(ops->caps & KVP_CAP_UNLIMITED) && tj < bound_t[j] * (1 - 1e-12))
            return kvp_error_set(err, KVP_ECHECK, "policy %s: step %u layer %u takes %.17g s, "
                                 "below the bound's %.17g s", ops->name, n, pl->li.layer, tj,
                                 bound_t[j]);
        pl->out->time_s[j] += tj;
        if (j == 0)
            t = tj;
    }
    kvp_counters_add(&pl->out->c, &st);
    if (rc->hook) { /* the busy times as kvp_step_time forms them, for the timeline */
        const kvp_cost_model *m = &rc->model;
        /* the timeline's columns are two tiers': DRAM is tier 1, the link is its link (with
         * what every tier behind it carries), the KV read below HBM is every lower tier's */
        const uint32_t l1 = m->link[1];
        double up = 0, down = 0;
        uint64_t below = 0;
        for (uint32_t k = 1; k < m->tiers; k++) {
            below += st.kv_read[k];
            if (m->link[k] == l1) {
                up += traffic.read[k];
                down += traffic.write[k];
            }
        }
        kvp_step_record r = {
            rc->hook_index[pl->ps - rc->ps], pl->li.layer, n, t,
            (m->fixed_bytes[0] + (traffic.read[0] + traffic.write[0])) / m->bandwidth[0],
            (m->fixed_bytes[1] + (traffic.read[1] + traffic.write[1])) / m->bandwidth[1],
            up / m->up_bandwidth[l1], down / m->down_bandwidth[l1],
            st.kv_read[0], below, st.promoted, st.demoted, e->nresident,
            pl->li.slots, g, S > 1 ? 0 : s->new_block + 1, e->resident};
        rc->hook(rc->hook_user, &r);
    }
    if (g != 1)
        for (uint32_t i = 0; i < nread; i++)
            pl->acount[pl->rblock[i]] = 0;
    return 0;
}

static int check_access(const kvp_access *acc, const kvp_trace *tr, kvp_error *err)
{
    for (uint32_t i = 0; i < acc->count; i++)
        if (acc->pos[i] >= acc->context || (i && acc->pos[i] <= acc->pos[i - 1]))
            return kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u: access set not "
                                 "ascending inside the context", kvp_trace_name(tr), acc->step,
                                 acc->layer);
    return 0;
}

/* What one layer's pass owns: the policies' simulations, the look-ahead ring of the last
 * W + 1 access sets (W the group's longest look-ahead), the cursor. */
typedef struct layer_pass {
    pol_layer *pl;
    size_t npol;
    acc_buf *ring;
    uint32_t ring_n;
    const kvp_access **future;
    kvp_cursor *cur;
    kvp_streams_view view; /* the step's, when the cursor has it (no ring) */
} layer_pass;

static void layer_pass_free(layer_pass *lp)
{
    for (size_t i = 0; lp->pl && i < lp->npol; i++)
        pol_free(&lp->pl[i]);
    free(lp->pl);
    kvp_cursor_free(lp->cur);
    for (uint32_t i = 0; lp->ring && i < lp->ring_n; i++) {
        free(lp->ring[i].pos);
        free(lp->ring[i].score);
        free(lp->ring[i].bits);
    }
    free(lp->ring);
    free((void *)lp->future);
}

static int layer_pass_alloc(layer_pass *lp, const run_ctx *rc, uint32_t l, kvp_error *err)
{
    const uint32_t P = kvp_trace_prompt(rc->tr), N = kvp_trace_steps(rc->tr);
    const uint32_t W = rc->max_lookahead;
    const uint32_t positions = rc->positions; /* enough for any step's set or blocks */
    memset(lp, 0, sizeof *lp);
    lp->npol = rc->npol;
    lp->ring_n = W ? W + 1 : 1;
    lp->pl = calloc(rc->npol ? rc->npol : 1, sizeof *lp->pl);
    lp->ring = calloc(lp->ring_n, sizeof *lp->ring);
    lp->future = calloc(lp->ring_n, sizeof *lp->future);
    int ok = lp->pl && lp->ring && lp->future;
    for (uint32_t i = 0; ok && W && i < lp->ring_n; i++) {
        lp->ring[i].pos = malloc((size_t)positions * sizeof *lp->ring[i].pos);
        lp->ring[i].score = malloc((size_t)positions * sizeof *lp->ring[i].score);
        lp->ring[i].bits = malloc(((size_t)positions / 64 + 1) * sizeof *lp->ring[i].bits);
        ok = lp->ring[i].pos && lp->ring[i].score && lp->ring[i].bits;
    }
    for (size_t i = 0; ok && i < rc->npol; i++) {
        pol_layer *p = &lp->pl[i];
        p->ps = &rc->ps[i];
        p->lookahead = rc->lookahead[i];
        p->out = &rc->out[(size_t)l * rc->npol + i];
        uint32_t g = rc->g[i];
        p->li = (kvp_layer_info){l, g, rc->slots[i], P, N,
                                 (uint32_t)(((uint64_t)P + N + g - 1) / g), p->ps->value,
                                 p->ps->ctx, &rc->model, rc->tok_bytes, 1, NULL, NULL};
        if (rc->si) { /* block b of stream i is b * S + i */
            const kvp_streams *si = rc->si;
            uint32_t most = 0;
            for (uint32_t k = 0; k < si->n; k++) {
                uint32_t blocks = (uint32_t)(((uint64_t)si->prompt[k] + si->steps[k] + g - 1) / g);
                most = blocks > most ? blocks : most;
            }
            p->li.nblocks = most * si->n;
            p->li.streams = si->n;
            p->li.sprompt = si->prompt;
            p->li.ssteps = si->steps;
            p->heads = si->heads;
            p->div_h = si->heads > 1 ? fast_m(si->heads) : 0;
            p->seq_out = rc->seq_out + ((size_t)l * rc->npol + i) * si->nseq * 4;
        }
        ok = pol_alloc(p, positions, rc->tslots[i], rc->model.tiers);
    }
    if (!ok)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
    int ret = kvp_cursor_create(&lp->cur, rc->tr, l, kvp_scenario_budget(rc->sc), err);
    if (ret < 0)
        return ret;
    if (!rc->scores)
        kvp_cursor_sets_only(lp->cur);
    else if (rc->by_stream && !kvp_cursor_scores_by_stream(lp->cur))
        return kvp_error_set(err, KVP_ECHECK, "layer %u: the streams' scores cannot be kept "
                             "apart", l);
    return 0;
}

/* The next access set into the ring. */
static int fetch(layer_pass *lp, uint32_t m, kvp_error *err)
{
    kvp_access a;
    int ret = kvp_cursor_next(lp->cur, &a, err);
    if (ret < 0)
        return ret;
    if (!serve_bits)
        a.bits = NULL;
    copy_access(&lp->ring[m % lp->ring_n], &a);
    return 0;
}

static int layer_steps(layer_pass *lp, run_ctx *rc, uint32_t l, atomic_ullong *done,
                       kvp_error *err)
{
    const uint32_t N = kvp_trace_steps(rc->tr), W = rc->max_lookahead;
    const double tok = (double)rc->tok_bytes;
    kvp_pass_sums *sums = &rc->sums[(size_t)l * rc->nm];
    int ret;
    uint32_t fetched = 0; /* steps read from the cursor so far */
    for (; W && fetched < W && fetched < N; fetched++)
        if ((ret = fetch(lp, fetched, err)) < 0)
            return ret;
    for (size_t i = 0; i < rc->npol; i++)
        if ((ret = pol_init(&lp->pl[i], lp->ring, lp->ring_n, lp->future, err)) < 0)
            return ret;

    kvp_access direct;
    for (uint32_t n = 0; n < N; n++) {
        const kvp_access *acc;
        if (rc->cancel && *rc->cancel)
            return kvp_error_set(err, KVP_EINTR, "interrupted at step %u of layer %u", n, l);
        if (W) {
            if (fetched < N && fetched < n + W) {
                if ((ret = fetch(lp, fetched, err)) < 0)
                    return ret;
                fetched++;
            }
            acc = &lp->ring[n % lp->ring_n].a;
        } else {
            int r = kvp_cursor_next(lp->cur, &direct, err);
            if (r <= 0)
                return r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                                 kvp_trace_name(rc->tr));
            if (!serve_bits)
                direct.bits = NULL;
            acc = &direct;
        }
        /* the streams' own sets, of this step only: not with a ring read ahead */
        const kvp_streams_view *view =
            !W && serve_bits && kvp_cursor_streams_view(lp->cur, &lp->view) ? &lp->view : NULL;
        for (size_t i = 0; i < rc->npol; i++)
            lp->pl[i].view = view;
        if (rc->check && (ret = check_access(acc, rc->tr, err)) < 0)
            return ret;
        if (rc->fill && (ret = kvp_trace_cache_record(rc->fill, l, acc, err)) < 0)
            return ret;
        double bt[KVP_ACCTS_MAX];
        for (uint32_t j = 0; j < rc->nm; j++) {
            double h;
            bt[j] = kvp_step_time_bound(&rc->models[j], (double)acc->count * tok, &h);
            sums[j].bound_time_s += bt[j];
            sums[j].bound_hbm_bytes += h;
            sums[j].reads += acc->count;
        }
        for (size_t i = 0; i < rc->npol; i++)
            if ((ret = pol_step(&lp->pl[i], rc, acc, bt, lp->ring, lp->ring_n, lp->future,
                                err)) < 0)
                return ret;
        atomic_fetch_add(done, 1ull);
    }
    return 0;
}

static int layer_run(uint32_t l, void *user, atomic_ullong *done)
{
    run_ctx *rc = user;
    kvp_error *err = &rc->err[l];
    layer_pass lp;
    int ret = layer_pass_alloc(&lp, rc, l, err);
    if (ret >= 0)
        ret = layer_steps(&lp, rc, l, done, err);
    layer_pass_free(&lp);
    return rc->rc[l] = ret;
}


int kvp_check_tier_capacity(const kvp_scenario *sc, const kvp_derived *d, const kvp_trace *tr,
                            uint32_t g, kvp_error *err)
{
    uint64_t total = 0, need = ((uint64_t)kvp_trace_prompt(tr) + kvp_trace_steps(tr) + g - 1) / g;
    for (uint32_t k = 1; k < d->tiers; k++)
        total += kvp_tier_slots(sc, d, g, k);
    if (total >= need)
        return 0;
    return kvp_error_set(err, KVP_EINVAL, "tiers 1..%u hold %" PRIu64 " blocks of %u tokens "
                         "per layer (%" PRIu64 " bytes each); the trace's %" PRIu64 " tokens "
                         "need %" PRIu64 ": the capacities cannot hold the KV (raise a tier's "
                         "capacity or lower batch)", d->tiers - 1, total, g,
                         (uint64_t)g * d->tok_bytes, (uint64_t)kvp_trace_prompt(tr) +
                         kvp_trace_steps(tr), need);
}


static void run_ctx_free(run_ctx *ctx)
{
    free(ctx->ps);
    free(ctx->g);
    free(ctx->slots);
    free(ctx->lookahead);
    free(ctx->tslots);
    free(ctx->out);
    free(ctx->sums);
    free(ctx->rc);
    free(ctx->err);
    free(ctx->ones);
    free(ctx->seq_out);
}

/* Whether the pass's policies that read scores all take them from the streams' view, so
 * that the merge need not put each stream's scores in the merged order (docs/PERF.md §52):
 * on a streams trace merged by transposition (2, 4 or 8 streams) where the view's blocks
 * have their form, in a pass with no look-ahead ring (the view is of the step just made)
 * serving from the sets' bits; each such policy either has blocks of g > 1 tokens that
 * serve_reads_view takes (g >= VIEW_G_MIN, g dividing 64), or 1-token blocks and its own pass
 * over the view (KVP_CAP_VIEW_BAND).  kvp_step_read_score merges them when asked anyway. */
static int view_scores(const run_ctx *ctx, const kvp_trace *tr, size_t npol)
{
    const kvp_streams *si = kvp_trace_streams(tr);
    const uint32_t S = ctx->S;
    if (!ctx->scores || !si || (S != 2 && S != 4 && S != 8) || ctx->max_lookahead ||
        !serve_bits || !kvp_blocks_of_view_wide())
        return 0;
    for (size_t i = 0; i < npol; i++) {
        const uint32_t caps = ctx->ps[i].ops->caps, g = ctx->g[i];
        if ((caps & KVP_CAP_SCORES) &&
            !(g == 1 ? (caps & KVP_CAP_VIEW_BAND) != 0 : g >= VIEW_G_MIN && 64 % g == 0))
            return 0;
    }
    return 1;
}

/* The pass's state for npol policies over tr's layers; what each policy needs of the pass
 * (block size, slots, look-ahead, scores) comes from its ops. */
static int run_ctx_alloc(run_ctx *ctx, const kvp_accts *ac, const kvp_derived *d,
                         const kvp_trace *tr, const kvp_policy_spec *ps, size_t npol,
                         kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    const uint32_t L = kvp_trace_layers(tr);
    const size_t np = npol ? npol : 1;
    const kvp_streams *si = kvp_trace_streams(tr);
    const size_t positions = si ? (size_t)si->n * si->positions
                                : (size_t)kvp_trace_prompt(tr) + kvp_trace_steps(tr);
    int rc;
    memset(ctx, 0, sizeof *ctx);
    ctx->sc = sc;
    ctx->tr = tr;
    ctx->npol = npol;
    ctx->si = si;
    ctx->S = si ? si->n : 1;
    if ((rc = kvp_streams_fit(sc, tr, err)) < 0)
        return rc;
    if (positions > UINT32_MAX)
        return kvp_error_set(err, KVP_ERANGE, "%s: %llu positions are too many for 32-bit "
                             "block numbers", kvp_trace_name(tr), (unsigned long long)positions);
    ctx->positions = (uint32_t)positions;
    if (si) {
        ctx->seq_out = calloc((size_t)L * np * si->nseq * 4, sizeof *ctx->seq_out);
        if (!ctx->seq_out)
            return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    kvp_cost_model_of(&ctx->model, sc, d);
    if ((rc = kvp_accts_models(ac, tr, ctx->models, err)) < 0)
        return rc;
    ctx->nm = ac->n;
    ctx->tok_bytes = d->tok_bytes;
    ctx->ps = calloc(np, sizeof *ctx->ps);
    ctx->g = calloc(np, sizeof *ctx->g);
    ctx->slots = calloc(np, sizeof *ctx->slots);
    ctx->lookahead = calloc(np, sizeof *ctx->lookahead);
    ctx->tslots = calloc(np, sizeof *ctx->tslots);
    ctx->out = calloc((size_t)L * np, sizeof *ctx->out);
    ctx->sums = calloc((size_t)L * ctx->nm, sizeof *ctx->sums);
    ctx->rc = calloc(L, sizeof *ctx->rc);
    ctx->err = calloc(L, sizeof *ctx->err);
    ctx->ones = malloc(positions * sizeof *ctx->ones);
    if (!ctx->ps || !ctx->g || !ctx->slots || !ctx->lookahead || !ctx->tslots || !ctx->out ||
        !ctx->sums ||
        !ctx->rc || !ctx->err || !ctx->ones)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (size_t i = 0; i < positions; i++)
        ctx->ones[i] = 1;
    for (size_t i = 0; i < npol; i++) {
        const kvp_policy_ops *ops = ps[i].ops;
        if (si && !(ops->caps & KVP_CAP_STREAMS))
            return kvp_streams_refuse(ops, tr, err);
        ctx->ps[i] = ps[i]; /* as run: scenario-dependent defaults resolved */
        if (ops->resolve)
            ops->resolve(ctx->ps[i].value, sc);
        if ((ops->caps & KVP_CAP_SCORES) && kvp_trace_is_cache_without_scores(tr))
            return kvp_error_set(err, KVP_EINVAL, "policy %s reads scores; the trace cache of "
                                 "%s holds none", ops->name, kvp_trace_name(tr));
        ctx->scores |= (ops->caps & KVP_CAP_SCORES) != 0;
        ctx->g[i] = ops->block_tokens ? ops->block_tokens(ctx->ps[i].value, sc) : 1;
        if (ctx->g[i] == 0)
            return kvp_error_set(err, KVP_EINVAL, "policy %s: block size 0", ops->name);
        ctx->slots[i] = ops->caps & KVP_CAP_UNLIMITED ? KVP_UNLIMITED_SLOTS
                                                      : kvp_slots(sc, d, ctx->g[i]);
        ctx->lookahead[i] = ops->lookahead ? ops->lookahead(ctx->ps[i].value) : 0;
        for (uint32_t k = 0; k < d->tiers; k++)
            ctx->tslots[i][k] = k ? kvp_tier_slots(sc, d, ctx->g[i], k) : ctx->slots[i];
        if (d->tiers > 2 && !(ops->caps & KVP_CAP_UNLIMITED) &&
            (rc = kvp_check_tier_capacity(sc, d, tr, ctx->g[i], err)) < 0)
            return rc;
        if (ctx->lookahead[i] > ctx->max_lookahead)
            ctx->max_lookahead = ctx->lookahead[i];
    }
    ctx->by_stream = view_scores(ctx, tr, npol);
    return 0;
}

/* One pass over the trace for a group of simulated policies (none: the pass's sums alone),
 * for each accounting of ac: res + j * npol and sums[j] those of ac->sc[j].  The step hook
 * sees the first accounting's steps. */
static int engine_group_accts(const kvp_accts *ac, const kvp_trace *tr,
                              const kvp_policy_spec *ps, size_t npol,
                              const kvp_run_options *ro, kvp_result *res, kvp_pass_sums *sums,
                              kvp_trace *fill, const size_t *hook_index, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_derive_for(sc, tr, &d, err)) < 0)
        return rc;
    if ((rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    if (d.tiers > 2 && npol == 0 && (rc = kvp_check_tier_capacity(sc, &d, tr, 1, err)) < 0)
        return rc; /* the bound's own pass (the policies' g are checked with them) */
    const uint32_t L = kvp_trace_layers(tr);
    run_ctx ctx;
    if ((rc = run_ctx_alloc(&ctx, ac, &d, tr, ps, npol, err)) < 0)
        goto done;
    ctx.check = ro ? ro->check : 0;
    ctx.cancel = ro ? ro->cancel : NULL;
    ctx.fill = fill;
    if (hook_index && ro && ro->step_hook) {
        ctx.hook = ro->step_hook;
        ctx.hook_user = ro->step_user;
        ctx.hook_index = hook_index;
    }
    kvp_parallel_layers(L, ro, (uint64_t)L * kvp_trace_steps(tr), layer_run, &ctx, ctx.rc);
    /* Sum the layers in layer order: the same result for any thread count. */
    for (uint32_t l = 0; l < L; l++)
        if (ctx.rc[l] < 0) {
            rc = ctx.rc[l];
            if (err)
                *err = ctx.err[l];
            goto done;
        }
    for (size_t k = 0; k < npol * ac->n && rc >= 0; k++) {
        const size_t i = k % npol, j = k / npol;
        double t = 0;
        kvp_counters c = {0};
        for (uint32_t l = 0; l < L; l++) {
            t += ctx.out[(size_t)l * npol + i].time_s[j];
            kvp_counters_add(&c, &ctx.out[(size_t)l * npol + i].c);
        }
        rc = kvp_result_fill(&res[k], ac->sc[j], tr, &ctx.ps[i], ctx.g[i], ctx.slots[i], t, &c,
                             err);
        if (rc >= 0 && ctx.si)
            rc = kvp_result_fill_seqs(&res[k], ctx.si->nseq, L, npol, i, ctx.seq_out,
                                      ctx.tok_bytes, err);
    }
    for (uint32_t j = 0; sums && rc >= 0 && j < ac->n; j++) {
        memset(&sums[j], 0, sizeof *sums);
        for (uint32_t l = 0; l < L; l++) {
            const kvp_pass_sums *ls = &ctx.sums[(size_t)l * ctx.nm + j];
            sums[j].bound_time_s += ls->bound_time_s;
            sums[j].bound_hbm_bytes += ls->bound_hbm_bytes;
            sums[j].reads += ls->reads;
        }
    }
done:
    run_ctx_free(&ctx);
    return rc;
}

static int engine_group(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                        size_t npol, const kvp_run_options *ro, kvp_result *res,
                        kvp_pass_sums *sums, kvp_trace *fill, const size_t *hook_index,
                        kvp_error *err)
{
    const kvp_accts ac = kvp_accts_one(sc);
    return engine_group_accts(&ac, tr, ps, npol, ro, res, sums, fill, hook_index, err);
}

int kvp_engine_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                   const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    return engine_group(sc, tr, ps, 1, ro, res, NULL, NULL, NULL, err);
}

int kvp_engine_run_accts(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                         const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    return engine_group_accts(ac, tr, ps, 1, ro, res, NULL, NULL, NULL, err);
}

int kvp_engine_pass(const kvp_scenario *sc, const kvp_trace *tr, const kvp_run_options *ro,
                    kvp_pass_sums *sums, kvp_error *err)
{
    if (kvp_fast_streams_takes(sc, tr, NULL, 0, ro)) /* the bound alone, on streams */
        return kvp_fast_streams_run(sc, tr, NULL, 0, ro, NULL, sums, err);
    return engine_group(sc, tr, NULL, 0, ro, NULL, sums, NULL, NULL, err);
}

void kvp_run_options_default(kvp_run_options *ro)
{
    memset(ro, 0, sizeof *ro);
    ro->threads = 2;
}

int kvp_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
            const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    if (!ps || !ps->ops)
        return kvp_error_set(err, KVP_EINVAL, "no policy given");
    return kvp_run_many(sc, tr, ps, 1, ro, res, err);
}

/* Whether a policy that makes many passes gets a trace cache of tr: when tr is not one
 * already and its cache fits. */
static int wants_cache(const kvp_trace *tr)
{
    /* a cache keeps one stream's sets: a trace of several streams is read as it is */
    return !kvp_trace_is_cache(tr) && !kvp_trace_streams(tr) &&
           kvp_trace_cache_bytes(tr) <= CACHE_MAX_BYTES;
}

/* A policy that makes many passes, on `cache` if given, else on a trace cache of tr built
 * here when one fits, else on tr; for each accounting of ac (res[j]: ac->sc[j]'s), by the
 * policy's run_accts when it has one, else by a run per accounting. */
static int run_cached(const kvp_accts *ac, const kvp_trace *tr, const kvp_trace *cache,
                      const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                      kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    kvp_trace *own = NULL;
    int rc = 0;
    if (!cache && wants_cache(tr)) {
        if ((rc = kvp_check_trace(sc, tr, err)) < 0 ||
            (rc = kvp_trace_cache(&own, tr, kvp_scenario_budget(sc), ro, err)) < 0)
            return rc;
        cache = own;
    }
    if (ac->n > 1 && ps->ops->run_accts)
        rc = ps->ops->run_accts(ac, cache ? cache : tr, ps, ro, res, err);
    else
        for (uint32_t j = 0; j < ac->n && rc >= 0; j++)
            rc = ps->ops->run(ac->sc[j], cache ? cache : tr, ps, ro, &res[j], err);
    kvp_trace_free(own);
    return rc;
}

extern const kvp_policy_ops kvp_policy_lookahead;

/* A list of n specs run in parts: a part's specs (sub, each one's place in the list at),
 * their results (sres, m per accounting), and which of the list's specs are done. */
typedef struct parts {
    kvp_policy_spec *sub;
    size_t *at;
    kvp_result *sres;
    uint8_t *done;
    size_t n;    /* the list's specs */
    uint32_t nm; /* accountings */
} parts;

static void parts_free(parts *p)
{
    free(p->sub);
    free(p->at);
    free(p->sres);
    free(p->done);
}

static int parts_alloc(parts *p, size_t n, uint32_t nm, kvp_error *err)
{
    p->sub = calloc(n, sizeof *p->sub);
    p->at = calloc(n, sizeof *p->at);
    p->sres = calloc(n * nm, sizeof *p->sres);
    p->done = calloc(n, 1);
    p->n = n;
    p->nm = nm;
    if (p->sub && p->at && p->sres && p->done)
        return 0;
    parts_free(p);
    return kvp_error_set(err, KVP_ENOMEM, "out of memory");
}

/* The part of the specs not done that are not lookahead; returns its size. */
static size_t parts_others(parts *p, const kvp_policy_spec *ps, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!p->done[i] && ps[i].ops != &kvp_policy_lookahead) {
            p->sub[m] = ps[i];
            p->at[m++] = i;
        }
    return m;
}

/* The part's m results of each accounting into res (n per accounting), its specs marked
 * done. */
static void parts_take(parts *p, kvp_result *res, size_t m)
{
    for (uint32_t j = 0; j < p->nm; j++)
        for (size_t k = 0; k < m; k++)
            res[j * p->n + p->at[k]] = p->sres[j * m + k];
    for (size_t k = 0; k < m; k++)
        p->done[p->at[k]] = 1;
}

/* Most W of one grid pass: each has its own window counts and level masks (some W + 1
 * bitsets of the context a layer running), so that a pass of many W stays small. */
#define GRID_PASS_W 16

/* The specs of ps not done (lookahead, all of them) by the grid on tr, in passes of up to
 * GRID_PASS_W values of W (the access sets made once a pass), the W in list order of first
 * appearance, each spec marked done. */
static int grid_by_w(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                     size_t n, const kvp_run_options *ro, kvp_result *res, parts *p,
                     kvp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (p->done[i])
            continue;
        double w[GRID_PASS_W];
        size_t m = 0, nw = 0;
        for (size_t j = i; j < n; j++) {
            if (p->done[j])
                continue;
            size_t k = 0;
            while (k < nw && w[k] != ps[j].value[0])
                k++;
            if (k == nw && nw == GRID_PASS_W)
                continue; /* the next pass's */
            if (k == nw)
                w[nw++] = ps[j].value[0];
            p->sub[m] = ps[j];
            p->at[m++] = j;
        }
        int rc = kvp_lookahead_grid_accts(ac, tr, p->sub, m, ro, p->sres, err);
        if (rc < 0)
            return rc;
        parts_take(p, res, m);
    }
    return 0;
}

/* A list of lookahead alone by the grid (grid_by_w's passes). */
static int grid_alone(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                      size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    parts p;
    int rc = parts_alloc(&p, n, ac->n, err);
    if (rc < 0)
        return rc;
    rc = grid_by_w(ac, tr, ps, n, ro, res, &p, err);
    parts_free(&p);
    return rc;
}

/* Streams the grid takes, a list of lookahead and other policies: the others in their pass
 * (or their fast path), which gives the sums, then lookahead by the grid. */
static int streams_split(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                         size_t n, const kvp_run_options *ro, kvp_result *res,
                         kvp_pass_sums *sums, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    parts p;
    int rc = parts_alloc(&p, n, ac->n, err);
    if (rc < 0)
        return rc;
    const size_t m = parts_others(&p, ps, n);
    rc = kvp_fast_streams_takes(sc, tr, p.sub, m, ro)
             ? kvp_fast_streams_run_accts(ac, tr, p.sub, m, ro, p.sres, sums, err)
             : engine_group_accts(ac, tr, p.sub, m, ro, p.sres, sums, NULL, NULL, err);
    if (rc >= 0) {
        parts_take(&p, res, m);
        rc = grid_by_w(ac, tr, ps, n, ro, res, &p, err);
    }
    parts_free(&p);
    return rc;
}

/* The simulated policies of a list by the quickest path that gives the engine's results, byte
 * for byte (docs/PERF.md §12): `static` and `unlimited` by the prefix fast path
 * (src/engine/fast.c), `lookahead` by the bitset grid (src/policy/lookahead_grid.c), up
 * to GRID_PASS_W values of W a pass, the others by the engine's pass.  Each path reads the
 * trace once, so on a trace that costs its generation to read, the grid runs on a trace
 * cache that the engine's pass fills (as for sa), and the fast path takes the whole list
 * only when nothing else needs a pass.  Checked runs (ro->check) are the engine's alone.
 * *fill (may be NULL) is the empty cache the caller wants filled; this may make one (then
 * the caller frees it).  Every path serves each accounting of ac (res + j * n, sums[j]). */
static int run_group(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                     size_t n, const kvp_run_options *ro, kvp_result *res, kvp_pass_sums *sums,
                     int need_sums, kvp_trace **fill, const size_t *hook_index, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    /* static and unlimited alone on streams that decode the same steps: their own fast path */
    if (!*fill && kvp_fast_streams_takes(sc, tr, ps, n, ro))
        return kvp_fast_streams_run_accts(ac, tr, ps, n, ro, res, sums, err);
    /* the prefix fast path models two tiers and one stream (docs/MODEL.md); the grid also
     * streams that decode every step: a list of lookahead alone, and lookahead among other
     * policies, in passes of its own (up to GRID_PASS_W values of W a pass), which cost less
     * than its share of theirs (docs/PERF.md §38) */
    if (sc->tiers > 2 || kvp_trace_streams(tr)) {
        if (!*fill && !(ro && ro->step_hook) && kvp_lookahead_grid_takes(sc, tr, ro)) {
            size_t nla = 0;
            for (size_t i = 0; i < n; i++)
                nla += ps[i].ops == &kvp_policy_lookahead;
            if (nla == n && !need_sums)
                return grid_alone(ac, tr, ps, n, ro, res, err);
            if (nla && nla < n)
                return streams_split(ac, tr, ps, n, ro, res, sums, err); /* sums: the others' */
        }
        return engine_group_accts(ac, tr, ps, n, ro, res, sums, *fill, hook_index, err);
    }
    /* checking mode, and a step hook, need every step of every policy: the engine's pass */
    const int checked = ro && (ro->check || ro->step_hook), on_cache = kvp_trace_is_cache(tr);
    size_t nla = 0, nfast = 0;
    int one_w = 1;
    double w0 = 0;
    for (size_t i = 0; i < n && !checked; i++) {
        if (ps[i].ops == &kvp_policy_lookahead) {
            one_w &= nla == 0 || ps[i].value[0] == w0;
            w0 = ps[i].value[0];
            nla++;
        } else if (kvp_fast_prefix_takes(&ps[i], 1)) {
            nfast++;
        }
    }
    const size_t nrest = n - nla - nfast;
    if (nla == 0 && nfast == 0)
        return engine_group_accts(ac, tr, ps, n, ro, res, sums, *fill, hook_index, err);
    if (nla == 0 && nrest == 0 && !*fill)
        return kvp_fast_prefix_run_accts(ac, tr, ps, n, ro, res, sums, err);
    int rc = 0;
    if (nla && !on_cache && !*fill && wants_cache(tr) && kvp_check_trace(sc, tr, NULL) == 0) {
        /* A single W with nothing else to run and no sums wanted: one grid pass on tr. */
        if (nla == n && !need_sums && one_w)
            return kvp_lookahead_grid_accts(ac, tr, ps, n, ro, res, err);
        /* No memory for the cache: lookahead stays in the engine's pass, as before. */
        if (kvp_trace_cache_empty(fill, tr, kvp_scenario_budget(sc), NULL) < 0)
            *fill = NULL;
    }
    const kvp_trace *la_tr = on_cache ? tr : *fill; /* NULL: lookahead stays in the pass */
    parts p;
    if ((rc = parts_alloc(&p, n, ac->n, err)) < 0)
        return rc;
    /* The pass: the other policies, and on a trace that is not a cache the fast ones (they
     * ride the pass for little) and lookahead when there is no cache for it. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const int la = !checked && ps[i].ops == &kvp_policy_lookahead;
        const int fast = !checked && !la && kvp_fast_prefix_takes(&ps[i], 1);
        if ((la && la_tr) || (fast && on_cache))
            continue;
        p.sub[m] = ps[i];
        p.at[m++] = i;
    }
    const int pass = m || !on_cache; /* on a cache, the fast path below gives the sums */
    if (pass) {
        if ((rc = engine_group_accts(ac, tr, p.sub, m, ro, p.sres, sums, *fill, NULL, err)) < 0)
            goto out;
        parts_take(&p, res, m);
    }
    if (on_cache && (nfast || (need_sums && !pass))) {
        m = parts_others(&p, ps, n);
        if ((rc = kvp_fast_prefix_run_accts(ac, tr, p.sub, m, ro, p.sres, pass ? NULL : sums,
                                            err)) < 0)
            goto out;
        parts_take(&p, res, m);
    }
    if (la_tr)
        rc = grid_by_w(ac, la_tr, ps, n, ro, res, &p, err);
out:
    parts_free(&p);
    return rc;
}

/* 1 if policy ops joins the shared pass of a run of nm accountings: a simulated policy, and
 * with several accountings one whose decisions do not depend on them. */
static int in_group(const kvp_policy_ops *ops, uint32_t nm)
{
    return !ops->run && (nm == 1 || (ops->caps & KVP_CAP_WEIGHT_BLIND));
}

/* kvp_run_many for each accounting of ac: res[j * n + i] is policy i's of ac->sc[j].  The
 * policies blind to the weights share one simulation (the shared pass, the grid, the fast
 * paths) that sums each step's time per accounting; the others run once per accounting. */
static int run_many_accts(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                          size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    const uint32_t nm = ac->n;
    /* Simulated policies share one pass over the trace; the others (with a run of their
     * own) run alone. */
    kvp_policy_spec *group = calloc(n ? n : 1, sizeof *group);
    size_t *where = calloc(n ? n : 1, sizeof *where);
    kvp_result *gres = calloc((n ? n : 1) * nm, sizeof *gres);
    kvp_trace *cache = NULL;
    kvp_policy_spec *riders = NULL; /* lookahead riding on sa's passes (below) */
    size_t *rider_at = NULL;
    size_t ng = 0;
    int rc = 0, many = 0;
    if (!group || !where || !gres) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].ops) {
            rc = kvp_error_set(err, KVP_EINVAL, "no policy given");
            goto done;
        }
        if (kvp_trace_streams(tr) && !(ps[i].ops->caps & KVP_CAP_STREAMS)) {
            rc = kvp_streams_refuse(ps[i].ops, tr, err);
            goto done;
        }
        if (in_group(ps[i].ops, nm)) {
            group[ng] = ps[i];
            where[ng++] = i;
        }
        many |= (ps[i].ops->caps & KVP_CAP_MANY_PASSES) != 0;
    }
    /* The pass of the simulated policies makes its sums as it goes (O(1) a step): a policy
     * that can take its result from them does, instead of a pass of its own.  With a policy
     * that makes many passes in the list, the same pass fills its trace cache, which would
     * otherwise cost a pass of its own (a whole generation of a synthetic trace). */
    kvp_pass_sums sums[KVP_ACCTS_MAX];
    int need_sums = 0;
    for (size_t i = 0; i < n; i++)
        need_sums |= ps[i].ops->run && ps[i].ops->from_shared_pass;
    if (ng && many && wants_cache(tr) && kvp_check_trace(sc, tr, NULL) == 0 &&
        (rc = kvp_trace_cache_empty(&cache, tr, kvp_scenario_budget(sc), err)) < 0)
        goto done;
    /* Without a trace cache (streams), lookahead rides on a policy's grid passes (sa's
     * first, src/policy/policy.h) when the list has both and others for the shared pass:
     * one generation of the trace less than its own pass.  The riders leave the group. */
    size_t sa_at = n, nriders = 0;
    for (size_t i = 0; i < n && sa_at == n; i++)
        if (!cache && !(ro && ro->step_hook) && ps[i].ops->takes_riders &&
            ps[i].ops->takes_riders(sc, tr, &ps[i], ro))
            sa_at = i;
    if (sa_at < n) {
        size_t nla = 0;
        for (size_t k = 0; k < ng; k++)
            nla += group[k].ops == &kvp_policy_lookahead;
        if (nla == 0 || nla == ng)
            sa_at = n;
    }
    if (sa_at < n) {
        riders = malloc(ng * sizeof *riders);
        rider_at = malloc(ng * sizeof *rider_at);
        if (!riders || !rider_at) {
            rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
            goto done;
        }
        size_t keep = 0;
        for (size_t k = 0; k < ng; k++) {
            if (group[k].ops == &kvp_policy_lookahead) {
                riders[nriders] = group[k];
                rider_at[nriders++] = where[k];
            } else {
                group[keep] = group[k];
                where[keep++] = where[k];
            }
        }
        ng = keep;
    }
    if (ng && (rc = run_group(ac, tr, group, ng, ro, gres, sums, need_sums, &cache, where,
                              err)) < 0)
        goto done;
    for (uint32_t j = 0; j < nm; j++)
        for (size_t k = 0; k < ng; k++)
            res[j * n + where[k]] = gres[j * ng + k];
    /* A policy with a run of its own may make passes of its own: they are not this list's
     * steps, and the step hook does not see them. */
    kvp_run_options own;
    if (ro) {
        own = *ro;
        own.step_hook = NULL;
        own.step_user = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const kvp_policy_ops *ops = ps[i].ops;
        if (in_group(ops, nm))
            continue;
        if (!ops->run) { /* simulated, not blind to the weights: once per accounting */
            for (uint32_t j = 0; j < nm && rc >= 0; j++) {
                const kvp_accts one = kvp_accts_one(ac->sc[j]);
                rc = run_many_accts(&one, tr, &ps[i], 1, ro, &res[j * n + i], err);
            }
        } else if (ng && ops->from_shared_pass) {
            for (uint32_t j = 0; j < nm && rc >= 0; j++)
                rc = ops->from_shared_pass(ac->sc[j], tr, &ps[i], &sums[j], &res[j * n + i],
                                           err);
        } else if (i == sa_at) {
            kvp_result r[KVP_ACCTS_MAX], *rr = malloc(nm * nriders * sizeof *rr);
            rc = rr ? ops->run_riders(ac, tr, &ps[i], ro ? &own : NULL, r, riders, nriders,
                                      rr, err)
                    : kvp_error_set(err, KVP_ENOMEM, "out of memory");
            for (uint32_t j = 0; j < nm && rc >= 0; j++) {
                res[j * n + i] = r[j];
                for (size_t k = 0; k < nriders; k++)
                    res[j * n + rider_at[k]] = rr[j * nriders + k];
            }
            free(rr);
        } else if (ops->caps & KVP_CAP_MANY_PASSES) {
            kvp_result r[KVP_ACCTS_MAX];
            rc = run_cached(ac, tr, cache, &ps[i], ro ? &own : NULL, r, err);
            for (uint32_t j = 0; j < nm && rc >= 0; j++)
                res[j * n + i] = r[j];
        } else {
            for (uint32_t j = 0; j < nm && rc >= 0; j++)
                rc = ops->run(ac->sc[j], tr, &ps[i], ro ? &own : NULL, &res[j * n + i], err);
        }
        if (rc < 0)
            goto done;
    }
    for (size_t k = 0; k < n * nm; k++) { /* the reports name each policy by its own spec */
        const kvp_policy_spec *p = &ps[k % (n ? n : 1)];
        if (p->ops->caps & KVP_CAP_MANY_PASSES)
            kvp_policy_format(p, res[k].spec, sizeof res[k].spec);
        else
            snprintf(res[k].spec, sizeof res[k].spec, "%s", res[k].params);
    }
done:
    kvp_trace_free(cache);
    free(group);
    free(where);
    free(gres);
    free(riders);
    free(rider_at);
    return rc;
}

int kvp_run_many(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                 size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    const kvp_accts ac = kvp_accts_one(sc);
    return run_many_accts(&ac, tr, ps, n, ro, res, err);
}

int kvp_run_many_accountings(const kvp_scenario *const *sc, size_t m, const kvp_trace *tr,
                             const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                             kvp_result *res, kvp_error *err)
{
    kvp_accts ac;
    memset(&ac, 0, sizeof ac);
    if (m < 1 || m > KVP_ACCTS_MAX)
        return kvp_error_set(err, KVP_EINVAL, "%zu accountings: 1 to %d", m, KVP_ACCTS_MAX);
    ac.n = (uint32_t)m;
    for (size_t j = 0; j < m; j++)
        ac.sc[j] = sc[j];
    if (m > 1 && ro && (ro->step_hook || ro->checkpoint))
        return kvp_error_set(err, KVP_EINVAL, "several accountings at once: no step hook and "
                             "no sa checkpoint (run each accounting by kvp_run_many)");
    int rc = kvp_accts_check(&ac, tr, err);
    if (rc < 0)
        return rc;
    if ((rc = kvp_check_trace(sc[0], tr, err)) < 0)
        return rc;
    return run_many_accts(&ac, tr, ps, n, ro, res, err);
}

void kvp_result_speedups(kvp_result *res, size_t n, double static_time_s,
                         double unlimited_time_s)
{
    for (size_t i = 0; i < n; i++) {
        res[i].speedup_vs_static = static_time_s / res[i].total_time_s;
        res[i].speedup_vs_unlimited = unlimited_time_s / res[i].total_time_s;
    }
}

/* kvp_engine_run_record: the step hook's records of one policy, kept per layer and step. */
typedef struct summary_ctx {
    kvp_step_summary *rec;
    uint32_t steps;
} summary_ctx;

static void summary_hook(void *user, const kvp_step_record *r)
{
    const summary_ctx *c = user;
    kvp_step_summary *s = &c->rec[(size_t)r->layer * c->steps + r->step];
    *s = (kvp_step_summary){r->time_s, r->kv_read_hbm, r->promoted, r->demoted};
}

int kvp_engine_run_record(const kvp_scenario *sc, const kvp_trace *tr,
                          const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                          kvp_step_summary *rec, kvp_error *err)
{
    if (ps->ops->run)
        return kvp_error_set(err, KVP_EINVAL, "policy %s is not simulated step by step",
                             ps->ops->name);
    summary_ctx c = {rec, kvp_trace_steps(tr)};
    kvp_run_options o;
    if (ro)
        o = *ro;
    else
        kvp_run_options_default(&o);
    o.step_hook = summary_hook;
    o.step_user = &c;
    return kvp_run_many(sc, tr, ps, 1, &o, res, err);
}
