/*
 * `reactive`: LRU over blocks of g tokens (docs/MODEL.md §5; docs/POLICIES.md).  Rule: the blocks
 * read and the new block go to HBM, evicting the least recently used resident blocks; when
 * they alone are more than the slots, the new block and the read blocks of highest score are
 * kept.  Why: the classic online policy, which needs only the reads so far.
 *
 * The LRU order is a queue of (block, stamp) entries appended in stamping order, the least
 * recently used live entry at the head; why it stays in LRU order, and what it replaced for
 * speed: docs/POLICIES.md, "reactive".
 */
#include "policy/policy.h"
#include "base/error.h"
#include "base/select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { REACTIVE_G }; /* index into reactive_params */

static const kvp_policy_param reactive_params[] = {
    {"g", 1, 1, 65536, 1, "block size in tokens"},
};

/* The band of the overflow selection (select_kept): its first half-width, as a fraction
 * 1 / BAND_INIT of the threshold score, and the number of entries it aims to hold. */
#define BAND_INIT 64.0
#define BAND_TARGET 512u

/* Stamps are held as step + 1, so that 0 is "never accessed" (oldest of all, docs/MODEL.md §5). */
/* Queue capacity in blocks (>= 2).  A larger queue is compacted less often, and most of its
 * entries are then passed over at the head (one check each) instead of copied and checked
 * again: with 2, a third of the reactive step went to compaction (docs/PERF.md). */
#define QUEUE_FACTOR 8u
#define NEVER 0u
/* The stamp of a block whose sequence finished (docs/MODEL.md "Streams"): no entry holds it,
 * so its entries are stale. */
#define GONE UINT32_MAX

typedef struct lru_entry {
    uint32_t block, stamp;
} lru_entry;

typedef struct reactive_state {
    uint32_t nblocks;
    uint32_t *stamp;       /* per block: its latest stamp (+1) */
    lru_entry *queue;      /* cap entries; the queue is queue[head .. tail) */
    size_t head, tail, cap;
    uint32_t nlist;        /* live entries (== resident blocks) */
    uint8_t *kept;         /* nblocks entries: kept[i], read entry i is kept (overflow case) */
    double centre, width;  /* the overflow selection's band: last threshold, half-width */
    double *bscore;        /* nblocks entries: the band's scores, with 1-token blocks */
    uint32_t *idx;         /* nblocks entries: the selection's scratch, the blocks to promote */
    uint32_t *down;        /* nblocks entries: the blocks to demote */
    uint64_t rng;          /* pivot choice of the selection */
} reactive_state;

static uint32_t reactive_block_tokens(const double *param, const kvp_scenario *sc)
{
    (void)sc;
    return (uint32_t)param[REACTIVE_G];
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

/* Several streams: the new blocks are appended after the reads, but a new block of a short
 * stream may rank below a read block of a longer one; equal stamps must stay in index order
 * (ties: lower index first, docs/MODEL.md §5).  The entries from `from` on ascend by block,
 * as do the n new blocks nb[]: one merge from the end puts each where it belongs, every
 * entry above the lowest new block moved once (a new block is never read at its step).  The
 * caller has reserved the room. */
static void queue_merge_new(reactive_state *st, size_t from, const uint32_t *nb, uint32_t n,
                            uint32_t stamp)
{
    lru_entry *q = st->queue;
    size_t i = st->tail, w = st->tail + n;
    st->tail = w;
    for (uint32_t j = n; j > 0;) {
        const uint32_t b = nb[j - 1];
        if (i > from && q[i - 1].block > b) {
            q[--w] = q[--i];
        } else {
            st->stamp[b] = stamp;
            q[--w] = (lru_entry){b, stamp};
            j--;
        }
    }
}

static void queue_clear(reactive_state *st)
{
    st->head = st->tail = 0;
    st->nlist = 0;
}

/* One entry of the band pass: kept[i] = x above the band, i listed if x is in the band
 * (without a branch: which side of the band an entry falls is not predictable). */
static inline void band_split(double x, uint32_t i, double lo, double hi, uint8_t *kept,
                              uint32_t *band, uint32_t *nabove, uint32_t *nband)
{
    uint32_t above = x > hi;
    kept[i] = (uint8_t)above;
    *nabove += above;
    band[*nband] = i;
    *nband += (x > lo) & !above;
}

/* Sets kept[i] to 1 for the `keep` read entries that rank highest (higher summed score, ties
 * the lower block: read entries ascend by block, so the lower entry), 0 for the others.  From
 * one overflow step to the next the threshold score (the keep-th best) moves little, so the
 * entries are first split by value around the last one: those above the band (lo, hi] are
 * kept, those below it dropped, and only the band's (some 750 of 16,000 at the study's
 * scenario) go through the quickselect (src/base/select.c).  Each group ranks above the next
 * whatever the band, so the set kept is the same as a selection over all entries; a band that
 * misses the threshold (the first step, or a jump) costs a full selection and a wider band.
 * With 1-token blocks the scores are the positions' own floats (read_score[i] ==
 * acc->score[i]): the band pass reads those, and only the band's are converted, into bscore. */
static void select_kept(reactive_state *st, kvp_step *s, uint32_t keep)
{
    const uint32_t n = s->nread;
    const float *fscore = s->li->g == 1 ? s->acc->score : NULL;
    const double *score = fscore ? st->bscore : kvp_step_read_score(s);
    uint32_t *band = st->idx, nabove = 0, nband = 0;
    uint8_t *kept = st->kept;
    double lo = st->centre - st->width, hi = st->centre + st->width, t;
    if (st->width > 0) {
        if (fscore) {
            for (uint32_t i = 0; i < n; i++)
                band_split((double)fscore[i], i, lo, hi, kept, band, &nabove, &nband);
            for (uint32_t j = 0; j < nband; j++)
                st->bscore[band[j]] = (double)fscore[band[j]];
        } else {
            for (uint32_t i = 0; i < n; i++)
                band_split(score[i], i, lo, hi, kept, band, &nabove, &nband);
        }
    }
    if (st->width > 0 && nabove <= keep && keep - nabove <= nband) {
        uint32_t r = keep - nabove;
        kvp_select_top(band, nband, r, score, NULL, &st->rng);
        t = hi; /* the least kept score; if r == 0 it is above hi */
        for (uint32_t j = 0; j < r; j++) {
            kept[band[j]] = 1;
            t = score[band[j]] < t ? score[band[j]] : t;
        }
        /* Aim at a band of about BAND_TARGET entries. */
        st->width *= nband > 2 * BAND_TARGET ? 0.75 : nband < BAND_TARGET / 2 ? 1.25 : 1;
        st->centre = t;
    } else {
        score = kvp_step_read_score(s);
        for (uint32_t i = 0; i < n; i++)
            band[i] = i;
        kvp_select_top(band, n, keep, score, NULL, &st->rng);
        memset(kept, 0, n);
        t = HUGE_VAL;
        for (uint32_t j = 0; j < keep; j++) {
            kept[band[j]] = 1;
            t = score[band[j]] < t ? score[band[j]] : t;
        }
        /* Keeping nothing has no threshold to centre on.  A threshold of 0 leaves the width
         * 0: full selections from then on, as before. */
        if (keep > 0) {
            st->centre = t;
            st->width = fmax(2 * st->width, fabs(t) / BAND_INIT);
        }
    }
}

/* kvp_step_promote/demote_many with a message naming the block refused (only on a bug here). */
static int promote_all(kvp_step *s, const uint32_t *blocks, uint32_t count, kvp_error *err)
{
    uint32_t done = kvp_step_promote_many(s, blocks, count);
    if (done < count)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: cannot promote "
                             "block %u", s->li->layer, s->n, blocks[done]);
    return 0;
}

static int demote_all(kvp_step *s, const uint32_t *blocks, uint32_t count, kvp_error *err)
{
    uint32_t done = kvp_step_demote_many(s, blocks, count);
    if (done < count)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: cannot demote "
                             "block %u", s->li->layer, s->n, blocks[done]);
    return 0;
}

static void reactive_free(void *state)
{
    reactive_state *st = state;
    if (!st)
        return;
    free(st->stamp);
    free(st->queue);
    free(st->idx);
    free(st->down);
    free(st->kept);
    free(st->bscore);
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
        st->idx = malloc((n ? n : 1) * sizeof *st->idx);
        st->down = malloc((n ? n : 1) * sizeof *st->down);
        st->kept = malloc(n ? n : 1);
        st->bscore = malloc((n ? n : 1) * sizeof *st->bscore);
    }
    if (!st || !st->stamp || !st->queue || !st->idx || !st->down || !st->kept ||
        !st->bscore) {
        reactive_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "reactive: out of memory for layer %u",
                             li->layer);
    }
    st->nblocks = li->nblocks;
    st->rng = KVP_SELECT_SEED;
    queue_clear(st);
    kvp_initial_default(li, resident);
    /* Never accessed, so older than everything, in index order. */
    for (uint32_t b = 0; b < li->nblocks; b++)
        if (resident[b]) {
            queue_append(st, b, NEVER);
            st->nlist++;
        }
    *state = st;
    return 0;
}

/* More blocks wanted than slots: keep the new block, then the accessed blocks of highest
 * score; every other resident block goes. */
static int reactive_overflow(reactive_state *st, kvp_step *s, uint32_t nnew, kvp_error *err)
{
    const uint32_t slots = s->li->slots, gen = s->n + 1;
    const uint32_t keep_new = nnew < slots ? nnew : slots; /* the lowest new blocks */
    const uint32_t keep = slots - keep_new; /* accessed blocks kept; < nread here */
    int rc;
    select_kept(st, s, keep);
    queue_reserve(st, (size_t)s->nread + (nnew > 1 ? nnew : 1));
    /* One pass without branches stamps every accessed block, appends the kept ones (the new
     * queue, after the old one), and lists the kept ones to promote and the resident
     * others to demote.  The old queue's live entries are then exactly the resident blocks
     * not accessed: all go too. */
    const uint8_t *resident = s->resident, *kept = st->kept;
    const uint32_t *read_block = s->read_block, nread = s->nread;
    uint32_t *stamp = st->stamp, *up = st->idx, *down = st->down, nup = 0, ndown = 0;
    const size_t old_head = st->head, old_tail = st->tail;
    lru_entry *queue = st->queue;
    size_t tail = old_tail;
    uint64_t hits = 0;
    for (uint32_t i = 0; i < nread; i++) {
        uint32_t b = read_block[i], k = kept[i], r = resident[b];
        hits += r;
        stamp[b] = gen;
        queue[tail] = (lru_entry){b, gen};
        tail += k;
        up[nup] = b;
        nup += k & !r;
        down[ndown] = b;
        ndown += r & !k;
    }
    for (size_t i = old_head; i < old_tail; i++) {
        lru_entry e = queue[i];
        down[ndown] = e.block;
        ndown += (uint32_t)entry_live(st, e);
    }
    s->hbm_reads = hits; /* KVP_CAP_SERVES: the stamps are the read marks */
    s->read_mark = stamp;
    st->head = old_tail;
    st->tail = tail;
    for (uint32_t i = 0; i < keep_new; i++)
        up[nup++] = s->new_blocks[i];
    queue_merge_new(st, old_tail, s->new_blocks, keep_new, gen);
    st->nlist = keep + keep_new;
    /* Demote before promoting so the layer never holds more than slots. */
    if ((rc = demote_all(s, down, ndown, err)) < 0)
        return rc;
    return promote_all(s, up, nup, err);
}

static int reactive_step(void *state, kvp_step *s, kvp_error *err)
{
    reactive_state *st = state;
    const uint32_t slots = s->li->slots;
    /* A new token in a block that already holds tokens opens no block: there is no new block,
     * and the token follows its block's residency (docs/POLICIES.md). */
    const uint32_t nnew = s->nnew;
    int rc;
    if (s->nfreed) { /* finished sequences: their blocks left HBM at no cost */
        for (uint32_t i = 0; i < s->nfreed; i++)
            st->stamp[s->freed[i]] = GONE;
        st->nlist = s->nresident;
    }
    if (st->nlist != s->nresident)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: LRU list holds %u "
                             "blocks, the engine %u", s->li->layer, s->n, st->nlist,
                             s->nresident);
    if ((uint64_t)s->nread + nnew > slots)
        return reactive_overflow(st, s, nnew, err);

    /* One pass stamps and appends the accessed blocks (their old entries go stale), then
     * the new block; the missing ones are promoted; then the excess is evicted from the
     * head.  The layer holds more than slots only inside this call, which the engine does
     * not see, and the charges do not depend on the order of the moves.  The evictions never
     * reach this step's entries: the live entries before them are exactly the resident
     * blocks not accessed at step n, and accessed + new <= slots, so the excess never
     * exceeds those. */
    const uint32_t gen = s->n + 1;
    queue_reserve(st, (size_t)s->nread + nnew);
    /* The blocks to promote are listed without a branch (a fifth of the accessed blocks are
     * missing, at random: a branch per block was mispredicted), then moved in one call. */
    const uint8_t *resident = s->resident;
    const uint32_t *read_block = s->read_block, nread = s->nread;
    uint32_t *stamp = st->stamp, *up = st->idx, nup = 0;
    lru_entry *queue = st->queue + st->tail;
    for (uint32_t i = 0; i < nread; i++) {
        uint32_t b = read_block[i];
        stamp[b] = gen;
        queue[i] = (lru_entry){b, gen};
        up[nup] = b;
        nup += !resident[b];
    }
    s->hbm_reads = nread - nup; /* KVP_CAP_SERVES: the stamps are the read marks */
    s->read_mark = stamp;
    const size_t from = st->tail;
    st->tail += nread;
    if (nnew == 1 && s->li->streams <= 1) {
        up[nup++] = s->new_block;
        queue_append(st, s->new_block, gen);
    } else {
        for (uint32_t i = 0; i < nnew; i++)
            up[nup++] = s->new_blocks[i];
        queue_merge_new(st, from, s->new_blocks, nnew, gen);
    }
    if ((rc = promote_all(s, up, nup, err)) < 0)
        return rc;
    st->nlist = s->nresident;
    if (s->nresident <= slots)
        return 0;
    /* The excess: the first live entries from the head, found without a branch on
     * liveness (most entries met there are stale, but not predictably), then demoted in one
     * call.  The scan stops just after the last of them, as skipping one at a time did. */
    const uint32_t excess = s->nresident - slots;
    const lru_entry *q = st->queue;
    uint32_t *down = st->down, ndown = 0;
    size_t h = st->head, tail = st->tail;
    while (ndown < excess && h < tail) {
        lru_entry e = q[h++];
        down[ndown] = e.block;
        ndown += (uint32_t)entry_live(st, e);
    }
    if (ndown < excess || q[h - 1].stamp == gen)
        return kvp_error_set(err, KVP_ECHECK, "reactive: layer %u step %u: no block left to "
                             "evict", s->li->layer, s->n);
    st->head = h;
    st->nlist -= excess;
    return demote_all(s, down, excess, err);
}

const kvp_policy_ops kvp_policy_reactive = {
    .name = "reactive",
    .doc = "LRU: accessed and new blocks to HBM, least recently used evicted",
    .params = reactive_params,
    .nparams = sizeof reactive_params / sizeof *reactive_params,
    .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE | KVP_CAP_STREAMS | KVP_CAP_SERVES,
    .block_tokens = reactive_block_tokens,
    .init = reactive_init,
    .step = reactive_step,
    .free = reactive_free,
};
