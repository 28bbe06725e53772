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

#include <math.h>
#include <stdlib.h>

enum { PAGE_TOKENS }; /* index into page_params */

static const kvp_policy_param page_params[] = {
    {"page_tokens", 0, 0, 65536, 1, "page size in tokens (0: the scenario's page_tokens)"},
};

/* The overflow selection's band (select_target): its first half-width, as a fraction
 * 1 / BAND_INIT of the threshold score, and the number of entries it aims to hold. */
#define BAND_INIT 64.0
#define BAND_TARGET 128u

typedef struct page_state {
    uint32_t *mark; /* mark[b] == n + 1: page b is in the target of step n */
    uint32_t *idx;  /* the target's read entries, nblocks entries */
    uint32_t *band; /* the selection's band, then the pages to promote */
    uint32_t *down; /* the pages to demote */
    uint8_t *first; /* per read entry: its page is resident (ranks first on equal scores) */
    double centre, width; /* the band: last threshold, half-width (0: no band yet) */
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
    free(st->band);
    free(st->down);
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
        st->band = malloc(n * sizeof *st->band);
        st->down = malloc(n * sizeof *st->down);
        st->first = malloc(n);
    }
    int more = st && li->model && li->model->tiers > 2;
    if (more) {
        st->ranked = malloc(n * sizeof *st->ranked);
        st->below = malloc(n * sizeof *st->below);
    }
    if (!st || !st->mark || !st->idx || !st->band || !st->down || !st->first ||
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

/* Puts in st->idx[0..nt) the nt read entries that rank highest: higher summed score, then
 * resident before this step, then lower page (read entries ascend by page, so the lower entry).
 * From one step to the next the threshold score (the nt-th best) moves little, so the entries
 * are first split by value around the last one: those above the band (lo, hi] are in, those
 * below it out, and only the band's go through the quickselect (src/base/select.c).  Each group
 * ranks above the next whatever the residency, so the set is that of a selection over all the
 * entries (their order is not, and nothing depends on it); a band that misses the threshold
 * (the first step, or a jump) costs a full selection and a wider band. */
static void select_target(page_state *st, const kvp_step *s, const double *score, uint32_t nt)
{
    const uint32_t n = s->nread;
    const uint32_t *rb = s->read_block;
    const uint8_t *res = s->resident;
    uint32_t *idx = st->idx, *band = st->band, nabove = 0, nband = 0;
    const double lo = st->centre - st->width, hi = st->centre + st->width;
    double t;
    if (st->width > 0)
        for (uint32_t i = 0; i < n; i++) { /* no branch: which side is not predictable */
            double x = score[i];
            uint32_t above = x > hi;
            idx[nabove] = i;
            nabove += above;
            band[nband] = i;
            nband += (x > lo) & !above;
        }
    if (st->width > 0 && nabove <= nt && nt - nabove <= nband) {
        uint32_t r = nt - nabove;
        for (uint32_t j = 0; j < nband; j++)
            st->first[band[j]] = res[rb[band[j]]];
        kvp_select_top(band, nband, r, score, st->first, &st->rng);
        t = hi; /* the least score in; if r == 0 it is above hi */
        for (uint32_t j = 0; j < r; j++) {
            idx[nabove + j] = band[j];
            t = score[band[j]] < t ? score[band[j]] : t;
        }
        st->width *= nband > 2 * BAND_TARGET ? 0.75 : nband < BAND_TARGET / 2 ? 1.25 : 1;
        st->centre = t;
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        idx[i] = i;
        st->first[i] = res[rb[i]];
    }
    kvp_select_top(idx, n, nt, score, st->first, &st->rng);
    t = HUGE_VAL;
    for (uint32_t j = 0; j < nt; j++)
        t = score[idx[j]] < t ? score[idx[j]] : t;
    /* A threshold of 0 leaves the width 0: full selections from then on. */
    if (nt > 0) {
        st->centre = t;
        st->width = fmax(2 * st->width, fabs(t) / BAND_INIT);
    }
}

static int page_step(void *state, kvp_step *s, kvp_error *err)
{
    page_state *st = state;
    const uint32_t slots = s->li->slots, gen = s->n + 1;
    const uint32_t nt = s->nread < slots ? s->nread : slots; /* pages in the target */
    const uint32_t *rb = s->read_block;
    const uint8_t *res = s->resident;
    uint32_t *mark = st->mark;

    /* The target, ranked on the residency before any move. */
    const uint32_t *idx = st->idx;
    if (s->nread > slots)
        select_target(st, s, kvp_step_read_score(s), nt);
    else
        idx = NULL; /* every read entry */
    /* Mark it, and list its pages out of HBM (no branch: residency is not predictable). */
    uint32_t *up = st->band, nup = 0, target_resident = 0;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t b = rb[idx ? idx[i] : i];
        mark[b] = gen;
        target_resident += res[b];
        up[nup] = b;
        nup += !res[b];
    }

    /* Resident pages outside the target keep the free slots, lowest index first: demote the
     * highest-index ones, walking down from the last page that exists. */
    const uint32_t others = s->nresident - target_resident, free_slots = slots - nt;
    const uint32_t excess = others > free_slots ? others - free_slots : 0;
    uint32_t *down = st->down, ndown = 0;
    for (uint32_t b = s->exist_blocks; ndown < excess && b-- > 0;) {
        down[ndown] = b;
        ndown += res[b] & (mark[b] != gen);
    }
    if (ndown < excess)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: resident pages beyond "
                             "the existing ones", s->li->layer, s->n);
    uint32_t done = kvp_step_demote_many(s, down, ndown);
    if (done < ndown)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: cannot demote page %u",
                             s->li->layer, s->n, down[done]);
    done = kvp_step_promote_many(s, up, nup);
    if (done < nup)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: cannot promote page %u",
                             s->li->layer, s->n, up[done]);
    int rc;
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
