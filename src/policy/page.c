/*
 * `page`: Quest-like, with perfect knowledge of the current step's reads, moving whole pages of
 * page_tokens tokens (docs/MODEL.md §5; docs/POLICIES.md).  The target is the `slots` read
 * pages of highest summed score (ties: resident first, then lower index); the new set is the target
 * plus the previously resident pages of lowest index that still fit.  A promoted page drags
 * its unread tokens along; the engine charges them.
 */
#include "policy/policy.h"
#include "base/error.h"
#include "engine/cost.h"
#include "base/select.h"

#include <stdlib.h>

enum { PAGE_TOKENS }; /* index into page_params */

static const kvp_policy_param page_params[] = {
    {"page_tokens", 0, 0, 65536, 1, "page size in tokens (0: the scenario's page_tokens)"},
};

typedef struct page_state {
    uint32_t *mark; /* mark[b] == n + 1: page b is in the target of step n */
    uint32_t *idx;  /* selection scratch, nblocks entries */
    uint8_t *first; /* per read entry: its page is resident (ranks first on equal scores) */
    uint64_t rng;   /* pivot choice of the selection */
    struct ranked *ranked; /* more than two tiers: the read pages out of HBM, by rank */
    uint32_t *below;       /* and their pages, for kvp_step_rank_below */
} page_state;

typedef struct ranked {
    double score;
    uint32_t page;
} ranked;

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

static void page_free(void *state)
{
    page_state *st = state;
    if (!st)
        return;
    free(st->mark);
    free(st->idx);
    free(st->first);
    free(st->ranked);
    free(st->below);
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
        st->first = malloc(n);
    }
    int more = st && li->model && li->model->tiers > 2;
    if (more) {
        st->ranked = malloc(n * sizeof *st->ranked);
        st->below = malloc(n * sizeof *st->below);
    }
    if (!st || !st->mark || !st->idx || !st->first ||
        (more && (!st->ranked || !st->below))) {
        page_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "page: out of memory for layer %u", li->layer);
    }
    st->rng = KVP_SELECT_SEED;
    *state = st;
    kvp_initial_default(li, resident);
    return 0;
}

/* Higher summed score first, then the lower page. */
static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->page < y->page ? -1 : x->page > y->page;
}

/* More than two tiers: the pages read this step and left out of HBM, ranked by summed score
 * as the target is, fill the tiers below HBM fastest first (docs/POLICIES.md). */
static void rank_below(page_state *st, kvp_step *s)
{
    const double *score = kvp_step_read_score(s);
    uint32_t m = 0;
    for (uint32_t i = 0; i < s->nread; i++)
        if (!s->resident[s->read_block[i]])
            st->ranked[m++] = (ranked){score[i], s->read_block[i]};
    qsort(st->ranked, m, sizeof *st->ranked, ranked_cmp);
    for (uint32_t i = 0; i < m; i++)
        st->below[i] = st->ranked[i].page;
    kvp_step_rank_below(s, st->below, m, 1);
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
        /* Rank: higher summed score, then resident before this step, then lower page (read
         * entries ascend by page, so the lower entry). */
        for (uint32_t i = 0; i < s->nread; i++)
            st->first[i] = s->resident[s->read_block[i]];
        kvp_select_top(st->idx, s->nread, nt, kvp_step_read_score(s), st->first, &st->rng);
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
    if ((rc = kvp_step_place_new_default(s)) < 0 || !st->below)
        return rc;
    rank_below(st, s);
    return 0;
}

const kvp_policy_ops kvp_policy_page = {
    .name = "page",
    .doc = "Quest-like: the read pages of highest score move to HBM whole",
    .params = page_params,
    .nparams = sizeof page_params / sizeof *page_params,
    .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE | KVP_CAP_STREAMS,
    .resolve = page_resolve,
    .block_tokens = page_block_tokens,
    .init = page_init,
    .step = page_step,
    .free = page_free,
};
