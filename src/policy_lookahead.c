/*
 * `lookahead(W, R)`: perfect foresight over a window of W steps, token granularity
 * (DESIGN.md §5; docs/POLICIES.md).  f(b) counts the steps of [n, min(n+W, N)) that read
 * block b.  The existing blocks with f > 0, ranked by f descending (ties: resident first,
 * then lower index), give the wanted set (the first `slots`); of the wanted blocks not
 * resident, the first ceil(R * count) in rank order are promoted, into free slots first, then
 * in place of the unwanted resident blocks of lowest f, then lowest index.
 *
 * Cost per step: f moves as a sliding window (subtract A(n-1), add A(n+W-1)), and a histogram
 * of the existing blocks by (resident, f) moves with it, so every cut-off of the ranking (the
 * wanted set, the promoted prefix, the demoted prefix) is found from the histogram in O(W).
 * One pass over the existing blocks then names the blocks at those cut-offs, taking the
 * lowest indices first: a counting sort, O(context + W) per step, no comparison sort.
 */
#include "policy.h"

#include <math.h>
#include <stdlib.h>

enum { LOOKAHEAD_W, LOOKAHEAD_R }; /* indices into lookahead_params */

static const kvp_policy_param lookahead_params[] = {
    {"W", 16, 1, 1024, 1, "window: future steps counted, the current one included"},
    {"R", 1, 0, 1, 0, "share of the wanted blocks not in HBM promoted per step"},
};

/* ceil(R * count) is taken of R * count - CEIL_GUARD, so that a product a rounding error
 * above a whole number does not round up (the guard of k in DESIGN.md §2). */
#define CEIL_GUARD 1e-9

typedef struct lookahead_state {
    uint32_t W;
    double R;
    uint16_t *f;       /* per block: reads in the window (<= W <= 1024) */
    uint32_t *hist;    /* existing blocks by f: hist[f] not resident, hist[W + 1 + f] resident */
    uint32_t hexist;   /* blocks counted in hist: [0, hexist) */
    uint32_t *promote; /* blocks to promote this step, nblocks entries */
    uint32_t next_n;   /* the step expected next */
} lookahead_state;

/* Where a ranking runs out: every block above level `level` is in, plus, at `level`, the
 * first `res` resident and the first `non` non-resident blocks in index order.  The
 * resident-first tie rule makes the residents of a level come before its non-residents. */
typedef struct cutoff {
    uint32_t level;
    uint32_t res, non;
} cutoff;

static uint32_t lookahead_block_tokens(const double *param, const kvp_scenario *sc)
{
    (void)param;
    (void)sc;
    return 1;
}

static uint32_t lookahead_window(const double *param)
{
    return (uint32_t)param[LOOKAHEAD_W];
}

static uint32_t *hist_of(lookahead_state *st, int resident)
{
    return st->hist + (resident ? st->W + 1 : 0);
}

/* Adds (up) or subtracts one read of every position of a to f, moving the blocks counted in
 * hist between levels. */
static void window_add(lookahead_state *st, const kvp_access *a, const uint8_t *resident,
                       int up)
{
    for (uint32_t i = 0; i < a->count; i++) {
        uint32_t b = a->pos[i];
        uint16_t was = st->f[b], now = (uint16_t)(up ? was + 1 : was - 1);
        if (b < st->hexist) {
            uint32_t *h = hist_of(st, resident[b]);
            h[was]--;
            h[now]++;
        }
        st->f[b] = now;
    }
}

/* The wanted set: the first `slots` blocks with f > 0 in rank order.  *nonres receives the
 * number of wanted blocks not resident.  level 0 means every block with f > 0 is wanted. */
static cutoff wanted_cutoff(lookahead_state *st, uint32_t slots, uint32_t *nonres)
{
    const uint32_t *non = hist_of(st, 0), *res = hist_of(st, 1);
    cutoff c = {0, 0, 0};
    uint32_t left = slots, count = 0;
    for (uint32_t f = st->W; f >= 1; f--) {
        if (res[f] + non[f] <= left) {
            left -= res[f] + non[f];
            count += non[f];
            continue;
        }
        c.level = f;
        c.res = res[f] < left ? res[f] : left;
        c.non = left - c.res;
        count += c.non;
        break;
    }
    *nonres = count;
    return c;
}

/* The promoted prefix: the first `p` (1 <= p <= wanted non-resident) non-resident wanted
 * blocks in rank order. */
static cutoff promote_cutoff(lookahead_state *st, cutoff want, uint32_t p)
{
    const uint32_t *non = hist_of(st, 0);
    cutoff c = {0, 0, 0};
    for (uint32_t f = st->W; f >= 1 && f >= want.level; f--) {
        uint32_t avail = f > want.level ? non[f] : want.non;
        if (p <= avail) {
            c.level = f;
            c.non = p;
            return c;
        }
        p -= avail;
    }
    c.level = st->W + 1; /* cannot happen: p <= the wanted non-resident blocks */
    return c;
}

/* The demoted prefix: the first `d` (d >= 1) unwanted resident blocks by f ascending, then
 * index ascending.  At the wanted set's own level the first want.res residents are wanted,
 * so the unwanted ones there come after them in index order: c.res counts from there. */
static int demote_cutoff(lookahead_state *st, cutoff want, uint32_t d, cutoff *c)
{
    const uint32_t *res = hist_of(st, 1);
    for (uint32_t f = 0; f <= want.level; f++) {
        uint32_t avail = f < want.level ? res[f] : res[f] - want.res;
        if (d <= avail) {
            c->level = f;
            c->res = d;
            c->non = 0;
            return 0;
        }
        d -= avail;
    }
    return -1;
}

static void lookahead_free(void *state)
{
    lookahead_state *st = state;
    if (!st)
        return;
    free(st->f);
    free(st->hist);
    free(st->promote);
    free(st);
}

/* Checks that the engine handed the window the spec asked for. */
static int check_window(const lookahead_state *st, const kvp_step *s, kvp_error *err)
{
    const uint32_t N = s->li->steps, n = s->n;
    const uint32_t want = N - n < st->W ? N - n : st->W;
    int ok = want > 0 && s->nfuture == want && s->future && s->future[0]->step == n &&
             s->future[want - 1]->step == n + want - 1 &&
             (n == 0 || (s->prev && s->prev->step == n - 1));
    if (!ok)
        return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: the engine gave "
                             "%u future steps, want %u", s->li->layer, n, s->nfuture, want);
    return 0;
}

/* Counts the existing blocks [hexist, exist) into hist. */
static void hist_extend(lookahead_state *st, uint32_t exist, const uint8_t *resident)
{
    for (uint32_t b = st->hexist; b < exist; b++)
        hist_of(st, resident[b])[st->f[b]]++;
    if (exist > st->hexist)
        st->hexist = exist;
}

static int lookahead_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                          uint8_t *resident, kvp_error *err)
{
    *state = NULL;
    const kvp_policy_param *pw = &lookahead_params[LOOKAHEAD_W];
    const kvp_policy_param *pr = &lookahead_params[LOOKAHEAD_R];
    const double Wv = li->param[LOOKAHEAD_W], R = li->param[LOOKAHEAD_R];
    if (!(Wv >= pw->min && Wv <= pw->max) || !(R >= pr->min && R <= pr->max))
        return kvp_error_set(err, KVP_EINVAL, "lookahead: W=%g or R=%g out of range", Wv, R);
    const uint32_t W = (uint32_t)Wv;
    if (li->g != 1)
        return kvp_error_set(err, KVP_EINVAL, "lookahead: blocks of %u tokens; it works on "
                             "single tokens", li->g);
    size_t n = li->nblocks ? li->nblocks : 1;
    lookahead_state *st = calloc(1, sizeof *st);
    if (st) {
        st->f = calloc(n, sizeof *st->f);
        st->hist = calloc(2 * ((size_t)W + 1), sizeof *st->hist);
        st->promote = malloc(n * sizeof *st->promote);
    }
    if (!st || !st->f || !st->hist || !st->promote) {
        lookahead_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "lookahead: out of memory for layer %u",
                             li->layer);
    }
    st->W = W;
    st->R = R;
    int rc = KVP_ECHECK;
    if (!first)
        kvp_error_set(err, rc, "lookahead: layer %u: no look-ahead for the initial placement",
                      li->layer);
    else
        rc = check_window(st, first, err);
    if (rc < 0) {
        lookahead_free(st);
        return rc;
    }
    for (uint32_t m = 0; m < first->nfuture; m++)
        window_add(st, first->future[m], resident, 1);

    /* The wanted set of step 0 (nothing is resident yet), then the lowest prompt blocks. */
    const uint32_t exist = first->exist_blocks, slots = li->slots;
    hist_extend(st, exist, resident);
    uint32_t nonres, count = 0, seen = 0;
    cutoff want = wanted_cutoff(st, slots, &nonres);
    for (uint32_t b = 0; b < exist && count < nonres; b++) {
        uint32_t fb = st->f[b];
        if (fb > want.level || (fb == want.level && fb > 0 && seen++ < want.non)) {
            resident[b] = 1;
            count++;
        }
    }
    for (uint32_t b = 0; b < exist && count < slots; b++)
        if (!resident[b]) {
            resident[b] = 1;
            count++;
        }
    /* Recount with the residency just chosen. */
    for (uint32_t i = 0; i < 2 * (W + 1); i++)
        st->hist[i] = 0;
    st->hexist = 0;
    hist_extend(st, exist, resident);
    *state = st;
    return (int)count;
}

static int lookahead_step(void *state, kvp_step *s, kvp_error *err)
{
    lookahead_state *st = state;
    const uint32_t slots = s->li->slots;
    int rc;
    if (s->n != st->next_n)
        return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u: step %u where step %u "
                             "was due", s->li->layer, s->n, st->next_n);
    if ((rc = check_window(st, s, err)) < 0)
        return rc;
    st->next_n = s->n + 1;
    if (s->n > 0) {
        /* init counted the window of step 0; slide it by one step. */
        window_add(st, s->prev, s->resident, 0);
        if (s->nfuture == st->W)
            window_add(st, s->future[st->W - 1], s->resident, 1);
    }
    hist_extend(st, s->exist_blocks, s->resident);
    if (s->nresident > slots)
        return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: %u resident, "
                             "slots %u", s->li->layer, s->n, s->nresident, slots);

    uint32_t nonres;
    cutoff want = wanted_cutoff(st, slots, &nonres);
    double p_real = ceil(st->R * (double)nonres - CEIL_GUARD);
    uint32_t p = p_real <= 0 ? 0 : p_real >= (double)nonres ? nonres : (uint32_t)p_real;
    if (p > 0) {
        /* p <= nonres <= slots - (wanted resident), so p - free <= the unwanted resident
         * blocks: the demotions below always find their blocks. */
        const uint32_t free_slots = slots - s->nresident;
        const uint32_t d = p > free_slots ? p - free_slots : 0;
        cutoff pro = promote_cutoff(st, want, p), dem = {0, 0, 0};
        if (pro.level > st->W || (d > 0 && demote_cutoff(st, want, d, &dem) < 0))
            return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: histogram "
                                 "out of step", s->li->layer, s->n);
        /* Residents skipped at the demoted level before the unwanted ones start. */
        const uint32_t dem_skip = dem.level == want.level ? want.res : 0;
        uint32_t npro = 0, ndem = 0, res_seen = 0, non_seen = 0;
        uint32_t *hnon = hist_of(st, 0), *hres = hist_of(st, 1);
        for (uint32_t b = 0; b < s->exist_blocks && (npro < p || ndem < d); b++) {
            uint32_t fb = st->f[b];
            if (s->resident[b]) {
                if (ndem == d || fb > dem.level)
                    continue;
                if (fb == dem.level) {
                    uint32_t r = res_seen++;
                    if (r < dem_skip || r >= dem_skip + dem.res)
                        continue;
                }
                if ((rc = kvp_step_demote(s, b)) < 0)
                    return kvp_error_set(err, rc, "lookahead: layer %u step %u: cannot demote "
                                         "block %u", s->li->layer, s->n, b);
                hres[fb]--;
                hnon[fb]++;
                ndem++;
            } else if (npro < p && fb >= pro.level && (fb > pro.level || non_seen++ < pro.non)) {
                st->promote[npro++] = b;
            }
        }
        for (uint32_t i = 0; i < npro; i++) {
            uint32_t b = st->promote[i];
            if ((rc = kvp_step_promote(s, b)) < 0)
                return kvp_error_set(err, rc, "lookahead: layer %u step %u: cannot promote "
                                     "block %u", s->li->layer, s->n, b);
            hnon[st->f[b]]--;
            hres[st->f[b]]++;
        }
        if (npro != p || ndem != d)
            return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: moved %u in "
                                 "and %u out, meant %u and %u", s->li->layer, s->n, npro,
                                 ndem, p, d);
    }
    return kvp_step_place_new_default(s);
}

const kvp_policy_ops kvp_policy_lookahead = {
    .name = "lookahead",
    .doc = "perfect foresight over W steps; promotes a share R of the wanted blocks",
    .params = lookahead_params,
    .nparams = sizeof lookahead_params / sizeof *lookahead_params,
    .block_tokens = lookahead_block_tokens,
    .lookahead = lookahead_window,
    .init = lookahead_init,
    .step = lookahead_step,
    .free = lookahead_free,
};
