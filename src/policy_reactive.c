/*
 * `reactive`: LRU over blocks of g tokens (DESIGN.md §5; docs/POLICIES.md).
 *
 * Resident blocks sit in a doubly-linked list ordered by (stamp, index), least recently used
 * first, so an eviction takes the head instead of scanning the blocks.  Why the list keeps
 * exactly that order (a never-accessed block has stamp -1):
 *   - init links the initial blocks in ascending index, all with stamp -1: sorted.
 *   - At step n every resident block that is accessed is unlinked first; what remains are the
 *     resident blocks not accessed at step n, whose stamps are all < n, still sorted (removing
 *     elements keeps a list sorted).  Evictions take the head of that list: the oldest stamp,
 *     ties the lower index, and by construction never a block accessed at step n nor the new
 *     block (not linked yet) -- the rule of DESIGN.md.
 *   - The accessed blocks (stamp n) are then appended in ascending index (read_block is
 *     ascending), then the new block (stamp n; its index P+n over g is above every accessed
 *     block's).  Every appended key (n, b) exceeds every key left in the list (stamp < n), and
 *     the appended keys ascend, so the list stays sorted by (stamp, index).
 *   - In the overflow case the list is rebuilt from the kept blocks alone, all with stamp n, in
 *     ascending index, then the new block: sorted again.
 * A block's stamp matters only while it is resident (a block leaves DRAM only when accessed
 * or new, which restamps it), so the list order is the whole of the stamps that matter.
 */
#include "policy.h"

#include <stdlib.h>

enum { REACTIVE_G }; /* index into reactive_params */

static const kvp_policy_param reactive_params[] = {
    {"g", 1, 1, 65536, 1, "block size in tokens"},
};

/* Seed of the pivot generator of the selection (any value: the result does not depend on it,
 * only the running time does). */
#define SELECT_SEED 0x9e3779b97f4a7c15ull

typedef struct reactive_state {
    uint32_t nblocks;
    uint32_t *next, *prev; /* nblocks + 1 entries; entry nblocks is the list's sentinel */
    uint32_t nlist;        /* blocks in the list (== resident blocks) */
    uint32_t *mark;        /* mark[b] == n + 1: block b is kept at step n (overflow case) */
    uint32_t *idx;         /* selection scratch, nblocks entries */
    uint64_t rng;          /* pivot choice of the selection */
} reactive_state;

static uint32_t reactive_block_tokens(const double *param, const kvp_scenario *sc)
{
    (void)sc;
    return (uint32_t)param[REACTIVE_G];
}

static uint32_t reactive_lookahead(const double *param)
{
    (void)param;
    return 0;
}

static void list_unlink(reactive_state *st, uint32_t b)
{
    st->next[st->prev[b]] = st->next[b];
    st->prev[st->next[b]] = st->prev[b];
    st->nlist--;
}

static void list_append(reactive_state *st, uint32_t b)
{
    uint32_t head = st->nblocks, last = st->prev[head];
    st->next[last] = b;
    st->prev[b] = last;
    st->next[b] = head;
    st->prev[head] = b;
    st->nlist++;
}

static void list_clear(reactive_state *st)
{
    st->next[st->nblocks] = st->prev[st->nblocks] = st->nblocks;
    st->nlist = 0;
}

static void swap_u32(uint32_t *a, uint32_t *b)
{
    uint32_t t = *a;
    *a = *b;
    *b = t;
}

static uint32_t next_random(uint64_t *x)
{
    /* xorshift64 */
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (uint32_t)(*x >> 32);
}

/* Read entry i ranks above read entry j: higher summed score, ties the lower block (read
 * entries ascend by block, so the lower entry). */
static uint32_t ranks_above(const double *score, uint32_t i, uint32_t j)
{
    /* bitwise, not logical, operators: no branch to mispredict in the partition loop */
    return (uint32_t)(score[i] > score[j]) | ((uint32_t)(score[i] == score[j]) & (i < j));
}

/* Reorders idx[0..n) so that its first k entries are the k best by ranks_above (a total
 * order, so the set does not depend on the pivots).  Expected O(n). */
static void select_top(uint32_t *idx, uint32_t n, uint32_t k, const double *score,
                       uint64_t *rng)
{
    uint32_t lo = 0, hi = n;
    /* Invariant: idx[0..lo) rank above idx[lo..n), and idx[0..hi) above idx[hi..n). */
    while (lo < k && k < hi) {
        swap_u32(&idx[lo + next_random(rng) % (hi - lo)], &idx[hi - 1]);
        uint32_t pivot = idx[hi - 1], store = lo;
        /* Branch-free Lomuto: [store, i) holds the entries not above the pivot, so moving
         * idx[store] to i and the new entry to store keeps both parts whole. */
        for (uint32_t i = lo; i + 1 < hi; i++) {
            uint32_t x = idx[i];
            idx[i] = idx[store];
            idx[store] = x;
            store += ranks_above(score, x, pivot);
        }
        swap_u32(&idx[store], &idx[hi - 1]);
        if (k <= store)
            hi = store;
        else
            lo = store + 1;
    }
}

/* kvp_step_promote/demote with a message naming the block (they fail only on a bug here). */
static int promote(kvp_step *s, uint32_t b, kvp_error *err)
{
    int rc = kvp_step_promote(s, b);
    if (rc < 0)
        return kvp_error_set(err, rc, "reactive: layer %u step %u: cannot promote block %u",
                             s->li->layer, s->n, b);
    return 0;
}

static int demote(kvp_step *s, uint32_t b, kvp_error *err)
{
    int rc = kvp_step_demote(s, b);
    if (rc < 0)
        return kvp_error_set(err, rc, "reactive: layer %u step %u: cannot demote block %u",
                             s->li->layer, s->n, b);
    return 0;
}

static void reactive_free(void *state)
{
    reactive_state *st = state;
    if (!st)
        return;
    free(st->next);
    free(st->prev);
    free(st->mark);
    free(st->idx);
    free(st);
}

static int reactive_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                         uint8_t *resident, kvp_error *err)
{
    (void)first;
    *state = NULL;
    size_t n = li->nblocks;
    reactive_state *st = calloc(1, sizeof *st);
    if (st) {
        st->next = malloc((n + 1) * sizeof *st->next);
        st->prev = malloc((n + 1) * sizeof *st->prev);
        st->mark = calloc(n ? n : 1, sizeof *st->mark);
        st->idx = malloc((n ? n : 1) * sizeof *st->idx);
    }
    if (!st || !st->next || !st->prev || !st->mark || !st->idx) {
        reactive_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "reactive: out of memory for layer %u",
                             li->layer);
    }
    st->nblocks = li->nblocks;
    st->rng = SELECT_SEED;
    list_clear(st);
    uint32_t count = kvp_initial_default(li, resident);
    /* Never accessed, so older than everything, in index order. */
    for (uint32_t b = 0; b < li->nblocks; b++)
        if (resident[b])
            list_append(st, b);
    *state = st;
    return (int)count;
}

/* More blocks wanted than slots: keep the new block, then the accessed blocks of highest
 * score; every other resident block goes. */
static int reactive_overflow(reactive_state *st, kvp_step *s, uint32_t nnew, kvp_error *err)
{
    const uint32_t slots = s->li->slots, gen = s->n + 1;
    const uint32_t keep_new = nnew && slots > 0;
    const uint32_t keep = slots - keep_new; /* accessed blocks kept; < nread here */
    int rc;
    for (uint32_t i = 0; i < s->nread; i++)
        st->idx[i] = i;
    select_top(st->idx, s->nread, keep, s->read_score, &st->rng);
    for (uint32_t i = 0; i < keep; i++)
        st->mark[s->read_block[st->idx[i]]] = gen;
    /* Demote before promoting so the layer never holds more than slots. */
    uint32_t head = st->nblocks;
    for (uint32_t b = st->next[head]; b != head; b = st->next[b])
        if (st->mark[b] != gen && (rc = demote(s, b, err)) < 0)
            return rc;
    list_clear(st);
    for (uint32_t i = 0; i < s->nread; i++) {
        uint32_t b = s->read_block[i];
        if (st->mark[b] != gen)
            continue;
        if (!s->resident[b] && (rc = promote(s, b, err)) < 0)
            return rc;
        list_append(st, b);
    }
    if (keep_new) {
        if ((rc = promote(s, s->new_block, err)) < 0)
            return rc;
        list_append(st, s->new_block);
    }
    return 0;
}

static int reactive_step(void *state, kvp_step *s, kvp_error *err)
{
    reactive_state *st = state;
    const uint32_t slots = s->li->slots;
    /* A new token in a block that already holds tokens opens no block: there is no new block,
     * and the token follows its block's residency (docs/POLICIES.md). */
    const uint32_t nnew = s->opens_block ? 1 : 0;
    int rc;
    if (st->nlist != s->nresident)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: LRU list holds %u "
                             "blocks, the engine %u", s->li->layer, s->n, st->nlist,
                             s->nresident);
    if ((uint64_t)s->nread + nnew > slots)
        return reactive_overflow(st, s, nnew, err);

    uint32_t fresh = 0; /* accessed blocks not resident */
    for (uint32_t i = 0; i < s->nread; i++) {
        uint32_t b = s->read_block[i];
        if (s->resident[b])
            list_unlink(st, b);
        else
            fresh++;
    }
    /* The list now holds exactly the eviction candidates, LRU first.  accessed + new <=
     * slots, so the excess never exceeds them. */
    uint64_t want = (uint64_t)s->nresident + fresh + nnew;
    const uint32_t head = st->nblocks;
    for (; want > slots; want--) {
        uint32_t b = st->next[head];
        if (b == head)
            return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: no block "
                                 "left to evict", s->li->layer, s->n);
        list_unlink(st, b);
        if ((rc = demote(s, b, err)) < 0)
            return rc;
    }
    for (uint32_t i = 0; i < s->nread; i++) {
        uint32_t b = s->read_block[i];
        if (!s->resident[b] && (rc = promote(s, b, err)) < 0)
            return rc;
        list_append(st, b);
    }
    if (nnew) {
        if ((rc = promote(s, s->new_block, err)) < 0)
            return rc;
        list_append(st, s->new_block);
    }
    return 0;
}

const kvp_policy_ops kvp_policy_reactive = {
    .needs_scores = 1,
    .name = "reactive",
    .doc = "LRU: accessed and new blocks to HBM, least recently used evicted",
    .params = reactive_params,
    .nparams = sizeof reactive_params / sizeof *reactive_params,
    .block_tokens = reactive_block_tokens,
    .lookahead = reactive_lookahead,
    .init = reactive_init,
    .step = reactive_step,
    .free = reactive_free,
};
