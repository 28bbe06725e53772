/*
 * `reactive`: LRU over blocks of g tokens (DESIGN.md §5; docs/POLICIES.md).
 *
 * The LRU order is kept as a queue of entries (block, stamp), appended in the order the
 * blocks are stamped, least recently used at the head, so an eviction takes the head instead
 * of scanning the blocks.  A block's latest stamp is kept per block; an entry is live while
 * its stamp is the block's latest, and stale entries are skipped when met at the head, or
 * dropped when the queue is compacted.  A live entry's block is resident: it was resident
 * when appended, and a block leaves HBM only by an eviction, which consumes its live entry,
 * or in the overflow case, which empties the queue (docs/PERF.md: this replaced a
 * doubly-linked list, whose unlink and append of every read block cost eight scattered
 * memory accesses a read, by two sequential stores).  Why the live entries are in the order
 * of (stamp, index), the rule of DESIGN.md (a never-accessed block has stamp -1):
 *   - init appends the initial blocks in ascending index, all with stamp -1: sorted.
 *   - At step n, evictions happen before step n's entries are appended, so every entry in the
 *     queue has a stamp < n; the blocks accessed at step n are stamped n first, which makes
 *     their entries stale.  The live entries are then exactly the resident blocks not
 *     accessed at step n, still sorted (dropping entries keeps a queue sorted), and the first
 *     of them is the oldest stamp, ties the lower index, never a block accessed at step n nor
 *     the new block (not appended yet) -- the eviction of DESIGN.md.
 *   - The accessed blocks (stamp n) are then appended in ascending index (read_block is
 *     ascending), then the new block (stamp n; its index P+n over g is above every accessed
 *     block's).  Every appended key (n, b) exceeds every key left (stamp < n), and the
 *     appended keys ascend, so the live entries stay sorted by (stamp, index).
 *   - In the overflow case the queue is rebuilt from the kept blocks alone, all with stamp n,
 *     in ascending index, then the new block: sorted again.
 * A block's stamp matters only while it is resident (a block leaves DRAM only when accessed
 * or new, which restamps it), so the live entries' order is the whole of the stamps that
 * matter.
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

/* Stamps are held as step + 1, so that 0 is "never accessed" (stamp -1 of DESIGN.md). */
/* Queue capacity in blocks (>= 2).  A larger queue is compacted less often, and most of its
 * entries are then passed over at the head (one check each) instead of copied and checked
 * again: with 2, a third of the reactive step went to compaction (docs/PERF.md). */
#define QUEUE_FACTOR 8u
#define NEVER 0u

typedef struct lru_entry {
    uint32_t block, stamp;
} lru_entry;

typedef struct reactive_state {
    uint32_t nblocks;
    uint32_t *stamp;       /* per block: its latest stamp (+1) */
    lru_entry *queue;      /* cap entries; the queue is queue[head .. tail) */
    size_t head, tail, cap;
    uint32_t nlist;        /* live entries (== resident blocks) */
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

static int entry_live(const reactive_state *st, lru_entry e)
{
    return st->stamp[e.block] == e.stamp;
}

/* Room for `more` appends: if the tail would pass the end, the live entries move to the
 * front, in order.  cap = QUEUE_FACTOR nblocks + 2 and live entries <= nblocks, so that leaves
 * room for at least nblocks + 2 >= more, and a compaction (O(cap)) comes at most once per
 * (QUEUE_FACTOR - 1) nblocks + 2 appends: O(1) amortised per append. */
static void queue_reserve(reactive_state *st, size_t more)
{
    if (st->tail + more <= st->cap)
        return;
    size_t w = 0;
    for (size_t i = st->head; i < st->tail; i++)
        if (entry_live(st, st->queue[i]))
            st->queue[w++] = st->queue[i];
    st->head = 0;
    st->tail = w;
}

/* Stamps block b with the step's stamp and appends it; the caller has reserved the room. */
static void queue_append(reactive_state *st, uint32_t b, uint32_t stamp)
{
    st->stamp[b] = stamp;
    st->queue[st->tail++] = (lru_entry){b, stamp};
}

static void queue_clear(reactive_state *st)
{
    st->head = st->tail = 0;
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
    free(st->stamp);
    free(st->queue);
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
        st->cap = QUEUE_FACTOR * n + 2;
        st->stamp = calloc(n ? n : 1, sizeof *st->stamp);
        st->queue = malloc(st->cap * sizeof *st->queue);
        st->mark = calloc(n ? n : 1, sizeof *st->mark);
        st->idx = malloc((n ? n : 1) * sizeof *st->idx);
    }
    if (!st || !st->stamp || !st->queue || !st->mark || !st->idx) {
        reactive_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "reactive: out of memory for layer %u",
                             li->layer);
    }
    st->nblocks = li->nblocks;
    st->rng = SELECT_SEED;
    queue_clear(st);
    uint32_t count = kvp_initial_default(li, resident);
    /* Never accessed, so older than everything, in index order. */
    for (uint32_t b = 0; b < li->nblocks; b++)
        if (resident[b]) {
            queue_append(st, b, NEVER);
            st->nlist++;
        }
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
    /* Demote before promoting so the layer never holds more than slots: every resident
     * block (each has exactly one live entry) that is not kept. */
    for (size_t i = st->head; i < st->tail; i++) {
        lru_entry e = st->queue[i];
        if (entry_live(st, e) && st->mark[e.block] != gen &&
            (rc = demote(s, e.block, err)) < 0)
            return rc;
    }
    queue_clear(st);
    /* Every accessed block is stamped, kept or not; the kept ones are the new queue. */
    for (uint32_t i = 0; i < s->nread; i++) {
        uint32_t b = s->read_block[i];
        st->stamp[b] = gen;
        if (st->mark[b] != gen)
            continue;
        if (!s->resident[b] && (rc = promote(s, b, err)) < 0)
            return rc;
        queue_append(st, b, gen);
        st->nlist++;
    }
    if (keep_new) {
        if ((rc = promote(s, s->new_block, err)) < 0)
            return rc;
        queue_append(st, s->new_block, gen);
        st->nlist++;
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

    /* One pass stamps, promotes and appends the accessed blocks (their old entries go
     * stale), then the new block; then the excess is evicted from the head.  The layer holds
     * more than slots only inside this call, which the engine does not see, and the charges
     * do not depend on the order of the moves.  The evictions never reach this step's
     * entries: the live entries before them are exactly the resident blocks not accessed at
     * step n, and accessed + new <= slots, so the excess never exceeds those. */
    const uint32_t gen = s->n + 1;
    uint64_t want = s->nresident;
    queue_reserve(st, (size_t)s->nread + nnew);
    lru_entry *queue = st->queue;
    size_t tail = st->tail;
    for (uint32_t i = 0; i < s->nread; i++) {
        uint32_t b = s->read_block[i];
        if (!s->resident[b]) {
            if ((rc = promote(s, b, err)) < 0)
                return rc;
            want++;
        }
        st->stamp[b] = gen;
        queue[tail++] = (lru_entry){b, gen};
    }
    st->tail = tail;
    if (nnew) {
        if ((rc = promote(s, s->new_block, err)) < 0)
            return rc;
        queue_append(st, s->new_block, gen);
        want++;
    }
    st->nlist = (uint32_t)want;
    for (; want > slots; want--) {
        while (st->head < st->tail && !entry_live(st, st->queue[st->head]))
            st->head++;
        if (st->head == st->tail || st->queue[st->head].stamp == gen)
            return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: no block "
                                 "left to evict", s->li->layer, s->n);
        uint32_t b = st->queue[st->head++].block;
        st->nlist--;
        if ((rc = demote(s, b, err)) < 0)
            return rc;
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
