/*
 * `page`: Quest-like, with perfect knowledge of the current step's reads, moving whole pages of
 * page_tokens tokens (DESIGN.md §5; docs/POLICIES.md).  The target is the `slots` read pages of
 * highest summed score (ties: resident first, then lower index); the new set is the target
 * plus the previously resident pages of lowest index that still fit.  A promoted page drags
 * its unread tokens along; the engine charges them.
 */
#include "policy/policy.h"

#include <stdlib.h>

enum { PAGE_TOKENS }; /* index into page_params */

static const kvp_policy_param page_params[] = {
    {"page_tokens", 0, 0, 65536, 1, "page size in tokens (0: the scenario's page_tokens)"},
};

/* Seed of the pivot generator of the selection (the result does not depend on it). */
#define SELECT_SEED 0x9e3779b97f4a7c15ull

typedef struct page_state {
    uint32_t *mark; /* mark[b] == n + 1: page b is in the target of step n */
    uint32_t *idx;  /* selection scratch, nblocks entries */
    uint64_t rng;   /* pivot choice of the selection */
} page_state;

static void page_resolve(double *param, const kvp_scenario *sc)
{
    if (param[PAGE_TOKENS] == 0)
        param[PAGE_TOKENS] = sc->page_tokens;
}

static uint32_t page_block_tokens(const double *param, const kvp_scenario *sc)
{
    uint32_t g = (uint32_t)param[PAGE_TOKENS];
    return g ? g : sc->page_tokens;
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

/* Read entry i ranks above read entry j: higher summed score, then resident (before this
 * step's placement), then lower page (read entries ascend by page, so the lower entry). */
static uint32_t ranks_above(const kvp_step *s, uint32_t i, uint32_t j)
{
    double si = s->read_score[i], sj = s->read_score[j];
    uint32_t ri = s->resident[s->read_block[i]], rj = s->resident[s->read_block[j]];
    /* bitwise, not logical, operators: no branch to mispredict in the partition loop */
    uint32_t tie = (uint32_t)(si == sj);
    return (uint32_t)(si > sj) | (tie & (ri > rj)) | (tie & (ri == rj) & (i < j));
}

/* Reorders idx[0..n) so that its first k entries are the k best by ranks_above (a total
 * order, so the set does not depend on the pivots).  Expected O(n). */
static void select_top(uint32_t *idx, uint32_t n, uint32_t k, const kvp_step *s,
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
            store += ranks_above(s, x, pivot);
        }
        swap_u32(&idx[store], &idx[hi - 1]);
        if (k <= store)
            hi = store;
        else
            lo = store + 1;
    }
}

static void page_free(void *state)
{
    page_state *st = state;
    if (!st)
        return;
    free(st->mark);
    free(st->idx);
    free(st);
}

static int page_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                     uint8_t *resident, kvp_error *err)
{
    (void)first;
    *state = NULL;
    size_t n = li->nblocks ? li->nblocks : 1;
    page_state *st = calloc(1, sizeof *st);
    if (st) {
        st->mark = calloc(n, sizeof *st->mark);
        st->idx = malloc(n * sizeof *st->idx);
    }
    if (!st || !st->mark || !st->idx) {
        page_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "page: out of memory for layer %u", li->layer);
    }
    st->rng = SELECT_SEED;
    *state = st;
    kvp_initial_default(li, resident);
    return 0;
}

static int page_step(void *state, kvp_step *s, kvp_error *err)
{
    page_state *st = state;
    const uint32_t slots = s->li->slots, gen = s->n + 1;
    const uint32_t nt = s->nread < slots ? s->nread : slots; /* pages in the target */
    int rc;

    /* The target, ranked on the residency before any move. */
    for (uint32_t i = 0; i < s->nread; i++)
        st->idx[i] = i;
    if (s->nread > slots) {
        kvp_step_read_score(s); /* fills s->read_score, which ranks_above reads */
        select_top(st->idx, s->nread, nt, s, &st->rng);
    }
    uint32_t target_resident = 0;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t b = s->read_block[st->idx[i]];
        st->mark[b] = gen;
        target_resident += s->resident[b];
    }

    /* Resident pages outside the target keep the free slots, lowest index first: demote the
     * highest-index ones, walking down from the last page that exists. */
    const uint32_t others = s->nresident - target_resident, free_slots = slots - nt;
    uint32_t excess = others > free_slots ? others - free_slots : 0;
    for (uint32_t b = s->exist_blocks; excess > 0 && b-- > 0;) {
        if (!s->resident[b] || st->mark[b] == gen)
            continue;
        if ((rc = kvp_step_demote(s, b)) < 0)
            return kvp_error_set(err, rc, "page: layer %u step %u: cannot demote page %u",
                                 s->li->layer, s->n, b);
        excess--;
    }
    if (excess > 0)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: resident pages beyond "
                             "the existing ones", s->li->layer, s->n);
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t b = s->read_block[st->idx[i]];
        if (!s->resident[b] && (rc = kvp_step_promote(s, b)) < 0)
            return kvp_error_set(err, rc, "page: layer %u step %u: cannot promote page %u",
                                 s->li->layer, s->n, b);
    }
    return kvp_step_place_new_default(s);
}

const kvp_policy_ops kvp_policy_page = {
    .name = "page",
    .doc = "Quest-like: the read pages of highest score move to HBM whole",
    .params = page_params,
    .nparams = sizeof page_params / sizeof *page_params,
    .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE,
    .resolve = page_resolve,
    .block_tokens = page_block_tokens,
    .init = page_init,
    .step = page_step,
    .free = page_free,
};
