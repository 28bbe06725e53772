/*
 * The online family's rule (docs/POLICIES.md "The online family"), token granularity.
 *
 * Importance: every token x keeps e(x), an exponential moving average of what its reads add
 * (est: 1; its score over the step's highest; or its margin over the step's lowest read
 * score as a share of the range), decayed by `decay` per step,
 * lazily: e and the step of its last read are stored, and e is decayed when it is read or
 * looked at.  p(x), the estimate that x is read at a step, is (1 - decay) e(x) (for decay 1:
 * e over the steps the token has existed).  Nothing of a later step is read: it is online.
 *
 * Each step, after the reads of step n are served (they are known: docs/MODEL.md), the
 * policy knows this step's traffic exactly and prices each move by what it adds to the
 * step's time (the max of the four terms).  It then
 *   1. with `balance`, lets at most H* - H + L misses come up: H the step's HBM reads, H* the
 *      balanced split of this step's reads (the bound's, with the last step's other traffic
 *      on each side), L the learnt shortfall of the HBM reads against what was expected, so
 *      HBM is not filled past the split at which HBM and DRAM take the same time;
 *   2. places the new token (new_hbm: into HBM, evicting the coldest resident token if full;
 *      under the balance only where the split leaves room);
 *   3. ranks this step's misses by p, hottest first, and finds victims among the resident
 *      tokens not read this step with a CLOCK hand (the positions visited in turn, a bounded
 *      number a step), the coldest first; when they run out and the reads nearly fill HBM,
 *      among the read ones too;
 *   4. pairs the hottest miss with the coldest victim (or a free slot) while p(x) > p(y) and,
 *      with payback > 0, (p(x) - p(y)) * horizon * s > payback * dT, where s is the time a read
 *      saves by coming from HBM instead of DRAM and the link, and dT what the swap adds to this
 *      step's time (0 while it fits in the slack of the terms that are not the max), and while
 *      the promotions stay within budget * (reads of the step).
 * A promoted token was just read, so its move is a write to HBM alone (the read carried it up);
 * a victim costs the link down and a DRAM write, and an HBM read unless it was read.
 *
 * Cost per step: O(reads) for the estimates and the ranking (a counting sort on p in
 * P_BUCKETS buckets), plus the hand's visits, at most SCAN_FACTOR times the swaps wanted plus
 * SCAN_MIN.
 */
#include "policy/online.h"
#include "engine/cost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* p is ranked in this many buckets (ties within a bucket: lower position first). */
#define P_BUCKETS 256u
/* The hand visits at most SCAN_FACTOR x (victims wanted) + SCAN_MIN positions a step. */
#define SCAN_FACTOR 8u
#define SCAN_MIN 256u
/* Decay factors below this are taken as 0 (the table of powers ends there). */
#define DECAY_FLOOR 1e-7
#define DPOW_MAX 65536u
/* Smoothing of the balance's learnt shortfall (per step). */
#define LOSS_SMOOTH 0.5

typedef struct online_state {
    double decay;
    int est_scores, balance, new_hbm;
    double horizon, payback, budget;
    /* per token, side by side (one cache line for both): the estimate's sum at the step of
     * its last read, and that step + 1 (0: never read, and then e is 0) */
    struct tok_est {
        float e;
        uint32_t last;
    } *tk;
    double *dpow;      /* decay^k for k < ndpow (see init) */
    uint32_t ndpow;
    int cut;           /* 1 if the table stops before decay^k is negligible */
    uint32_t hand;     /* the CLOCK hand: next position to visit */
    double expect;     /* HBM reads the last step's placement was expected to serve next */
    double loss;       /* smoothed shortfall of the HBM reads against that expectation */
    double extra_h, extra_d; /* the last step's HBM and DRAM traffic beyond its reads, tokens */
    uint32_t cold_age; /* steps unread after which p is below the lowest bucket's top */
    uint8_t *cand_b, *vict_b; /* the buckets of cand[] and vict[] */
    uint32_t *cand;    /* misses, then the ranked ones */
    uint32_t *vict;    /* victims found, then ranked */
    uint32_t *tmp;
    uint32_t *up, *down; /* the moves of the step */
    uint32_t bucket[P_BUCKETS + 1];
} online_state;

uint32_t kvp_online_block_tokens(const double *param, const kvp_scenario *sc)
{
    (void)param;
    (void)sc;
    return 1;
}

uint32_t kvp_online_lookahead(const double *param)
{
    (void)param;
    return 0;
}

void kvp_online_free(void *state)
{
    online_state *st = state;
    if (!st)
        return;
    free(st->tk);
    free(st->dpow);
    free(st->cand);
    free(st->cand_b);
    free(st->vict_b);
    free(st->vict);
    free(st->tmp);
    free(st->up);
    free(st->down);
    free(st);
}

int kvp_online_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                    uint8_t *resident, kvp_error *err)
{
    (void)first;
    *state = NULL;
    size_t n = li->nblocks ? li->nblocks : 1;
    online_state *st = calloc(1, sizeof *st);
    if (!st)
        return kvp_error_set(err, KVP_ENOMEM, "online: out of memory for layer %u", li->layer);
    const double *pa = li->param;
    st->decay = pa[ON_DECAY];
    st->est_scores = (int)pa[ON_EST];
    st->balance = pa[ON_BALANCE] != 0;
    st->horizon = pa[ON_HORIZON];
    st->payback = pa[ON_PAYBACK];
    st->budget = pa[ON_BUDGET];
    st->new_hbm = pa[ON_NEW] != 0;
    /* decay^k for k until it falls below DECAY_FLOOR, then one entry that every later k
     * takes (0, or 1 for decay 1); a table cut at DPOW_MAX (decay near 1) leaves the later
     * powers to pow(). */
    uint32_t nd = 1;
    if (st->decay > 0 && st->decay < 1) {
        double need = ceil(log(DECAY_FLOOR) / log(st->decay)) + 1;
        st->cut = need > DPOW_MAX;
        nd = st->cut ? DPOW_MAX : (uint32_t)need;
    }
    st->ndpow = nd + 1;
    st->tk = calloc(n, sizeof *st->tk);
    st->dpow = malloc((nd + 1) * sizeof *st->dpow);
    st->cand = malloc(n * sizeof *st->cand);
    st->cand_b = malloc(n);
    st->vict_b = malloc(n);
    st->vict = malloc(n * sizeof *st->vict);
    st->tmp = malloc(n * sizeof *st->tmp);
    st->up = malloc(n * sizeof *st->up);
    st->down = malloc(n * sizeof *st->down);
    if (!st->tk || !st->dpow || !st->cand || !st->vict || !st->tmp || !st->up ||
        !st->down || !st->cand_b || !st->vict_b) {
        kvp_online_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "online: out of memory for layer %u", li->layer);
    }
    st->dpow[0] = 1;
    for (uint32_t k = 1; k < nd; k++)
        st->dpow[k] = st->dpow[k - 1] * st->decay;
    st->dpow[nd] = st->decay >= 1 ? 1 : 0;
    /* p <= decay^k after k steps unread (p <= 1 when read): cold from decay^k < 1 / buckets. */
    st->cold_age = UINT32_MAX;
    if (st->decay < 1)
        st->cold_age = st->decay > 0
                           ? (uint32_t)fmin(UINT32_MAX - 1, ceil(log(1.0 / P_BUCKETS) /
                                                                 log(st->decay)) + 1)
                           : 1;
    *state = st;
    kvp_initial_default(li, resident);
    return 0;
}

/* decay^k (k steps since the last read). */
static double dpow(const online_state *st, uint32_t k)
{
    const uint32_t end = st->ndpow - 1;
    if (k < end || !st->cut)
        return st->dpow[k < end ? k : end];
    return pow(st->decay, (double)k);
}

/* p(x) at step n: the estimated chance that x is read at a step, in [0, 1]. */
static double p_of(const online_state *st, uint32_t x, uint32_t n, uint32_t prompt)
{
    uint32_t l = st->tk[x].last;
    if (!l)
        return 0;
    if (st->decay >= 1) {
        uint32_t born = x < prompt ? 0 : x - prompt; /* the step that wrote x */
        double p = st->tk[x].e / (double)(n - born + 1);
        return p < 1 ? p : 1;
    }
    double p = (1 - st->decay) * st->tk[x].e * dpow(st, n + 1 - l);
    return p < 1 ? p : 1;
}

static uint32_t bucket_of(double p)
{
    uint32_t b = (uint32_t)(p * P_BUCKETS);
    return b < P_BUCKETS ? b : P_BUCKETS - 1;
}

/* Stable counting sort of x[0..n) by their buckets b[0..n), descending (desc) or ascending;
 * out to y. */
static void rank(online_state *st, const uint32_t *x, const uint8_t *b, uint32_t n, uint32_t *y,
                 int desc)
{
    uint32_t *cnt = st->bucket;
    memset(cnt, 0, sizeof st->bucket);
    for (uint32_t i = 0; i < n; i++)
        cnt[(desc ? P_BUCKETS - 1 - b[i] : b[i]) + 1]++;
    for (uint32_t k = 1; k <= P_BUCKETS; k++)
        cnt[k] += cnt[k - 1];
    for (uint32_t i = 0; i < n; i++)
        y[cnt[desc ? P_BUCKETS - 1 - b[i] : b[i]]++] = x[i];
}

/* The step's traffic in tokens, and its time. */
typedef struct traffic {
    double hr, hw, dr, dw, up, dn;
} traffic;

static double step_time(const kvp_layer_info *li, const traffic *t)
{
    const double tok = (double)li->tok_bytes;
    /* the link carries tier 1's reads up and its writes down (t->up, t->dn equal them) */
    kvp_traffic k = {{t->hr * tok, t->dr * tok}, {t->hw * tok, t->dw * tok}};
    return kvp_step_time(li->model, &k);
}

/* The balanced split in tokens: the h of a reads that HBM should serve so that its time
 * (weights, h, and eh tokens of other traffic) equals DRAM's (a - h reads and ed other
 * tokens) or the link's (a - h up), whichever needs more h; within [0, min(a, capacity)].
 * With eh = ed = 0 it is the bound's split (kvp_step_time_bound); the moves and new tokens
 * of the last step stand in for this step's eh and ed. */
static double balanced_split(const kvp_layer_info *li, double a, double eh, double ed)
{
    const kvp_cost_model *m = li->model;
    const double tok = (double)li->tok_bytes, w = m->fixed_bytes[0] / tok;
    const double bh = m->bandwidth[0], bd = m->bandwidth[1], bl = m->up_bandwidth[m->link[1]];
    double h_dram = ((a + ed) * bh - (w + eh) * bd) / (bh + bd);
    double h_link = (a * bh - (w + eh) * bl) / (bh + bl);
    double h = h_dram > h_link ? h_dram : h_link;
    double hmax = fmin(a, m->kv_capacity[0] / tok);
    return h < 0 ? 0 : h > hmax ? hmax : h;
}

/* The resident tokens read this step whose p is below pmax, up to `want`, the lowest
 * positions of the read set first (the caller ranks them). */
static uint32_t find_read_victims(online_state *st, const kvp_step *s, double pmax,
                                  uint32_t *out, uint8_t *out_b, uint32_t want)
{
    const kvp_access *acc = s->acc;
    uint32_t found = 0;
    for (uint32_t i = 0; i < acc->count && found < want; i++) {
        uint32_t x = acc->pos[i];
        if (!s->resident[x])
            continue;
        double p = p_of(st, x, s->n, s->li->prompt);
        if (p < pmax) {
            out[found] = x;
            out_b[found++] = (uint8_t)bucket_of(p);
        }
    }
    return found;
}

/* Visits positions from the hand, collecting the resident tokens not read this step whose p
 * is below pmax, until `want` of them are cold (p in the lowest bucket) or `limit` positions
 * are visited; the caller ranks what was found and takes the coldest. */
static uint32_t find_victims(online_state *st, const kvp_step *s, double pmax, uint32_t want,
                             uint32_t limit)
{
    const uint32_t ctx = s->context, stamp = s->n + 1, prompt = s->li->prompt;
    const uint32_t cold_age = st->cold_age;
    const struct tok_est *tk = st->tk;
    const uint8_t *res = s->resident;
    uint32_t found = 0, ncold = 0, h = st->hand < ctx ? st->hand : 0;
    if (limit > ctx)
        limit = ctx;
    for (uint32_t v = 0; v < limit && ncold < want; v++) {
        uint32_t x = h;
        h = h + 1 < ctx ? h + 1 : 0;
        /* Branch-free for the common cases (not resident, read this step, cold): residency
         * is a coin toss a branch would miss.  The slot is overwritten unless counted. */
        const uint32_t l = tk[x].last;
        const uint32_t eligible = (uint32_t)res[x] & (uint32_t)(l != stamp);
        const uint32_t cold = eligible & (uint32_t)(stamp - l >= cold_age); /* l 0: huge */
        st->vict[found] = x;
        st->vict_b[found] = 0;
        found += cold;
        ncold += cold;
        if (!(eligible & !cold))
            continue;
        double p = p_of(st, x, s->n, prompt);
        if (p < pmax) {
            uint32_t b = bucket_of(p);
            st->vict[found] = x;
            st->vict_b[found++] = (uint8_t)b;
            ncold += b == 0;
        }
    }
    st->hand = h;
    return found;
}

int kvp_online_step(void *state, kvp_step *s, kvp_error *err)
{
    online_state *st = state;
    const kvp_layer_info *li = s->li;
    const uint32_t n = s->n, stamp = n + 1, slots = li->slots, prompt = li->prompt;
    const kvp_access *acc = s->acc;
    int rc;

    /* 1. The estimates take this step's reads; the step's reads are counted by tier. */
    double vmax = 1, vmin = 0;
    const float *score = acc->score;
    if (st->est_scores && score && acc->count) {
        float hi = score[0], lo = score[0];
        for (uint32_t i = 1; i < acc->count; i++) {
            hi = score[i] > hi ? score[i] : hi;
            lo = score[i] < lo ? score[i] : lo;
        }
        vmax = hi;
        vmin = lo;
        if (st->est_scores == 1)
            vmin = 0;
        if (!(vmax > vmin)) /* every read alike: each counts one */
            vmin = vmax - 1;
    }
    uint32_t hits = 0, nmiss = 0;
    const int use_scores = st->est_scores && score, exact = !st->cut;
    const double span = vmax - vmin, one_minus = 1 - st->decay;
    const uint32_t clamp = st->ndpow - 1;
    const double inv_span = 1 / span;
    const double *tab = st->dpow;
    struct tok_est *tk = st->tk;
    const uint8_t *res = s->resident;
    uint32_t *cand = st->cand;
    uint8_t *cand_b = st->cand_b;
    for (uint32_t i = 0; i < acc->count; i++) {
        uint32_t x = acc->pos[i];
        /* never read: e is 0, so any power does (k = stamp is clamped) */
        uint32_t k = stamp - tk[x].last;
        double v = use_scores ? ((double)score[i] - vmin) * inv_span : 1;
        /* the table's last entry holds for every later k unless it was cut */
        double w = exact ? tab[k < clamp ? k : clamp] : dpow(st, k);
        double enew = (double)tk[x].e * w + v;
        tk[x].e = (float)enew;
        tk[x].last = stamp;
        /* misses are appended without a branch: the slot is overwritten unless counted */
        uint32_t miss = (uint32_t)!res[x];
        double p = one_minus * (double)(float)enew;
        cand[nmiss] = x;
        cand_b[nmiss] = (uint8_t)bucket_of(p);
        nmiss += miss;
    }
    hits = acc->count - nmiss;
    if (st->decay >= 1) /* p is e over the token's age: recompute the misses' buckets */
        for (uint32_t i = 0; i < nmiss; i++)
            cand_b[i] = (uint8_t)bucket_of(p_of(st, cand[i], n, prompt));
    traffic t = {hits, 0, nmiss, 0, nmiss, 0};

    /* 2. How many misses may come up: the balanced split, the budget. */
    double allow = nmiss + 1; /* the misses and the new token */
    if (st->balance) {
        double hstar = floor(balanced_split(li, (double)acc->count, st->extra_h, st->extra_d));
        /* Next step's HBM reads: this step's hits and promotions, less the share of them
         * that drift out of the read set, learnt from the past steps' shortfall. */
        if (n > 0)
            st->loss = LOSS_SMOOTH * st->loss + (1 - LOSS_SMOOTH) * fmax(0, st->expect - hits);
        allow = fmin(allow, fmax(0, hstar - hits + st->loss));
    }
    /* The new token is read while it is recent: under the balance it comes to HBM (beyond
     * a free slot) only where the split leaves room, and takes one of the promotions. */
    uint32_t free_slots = slots > s->nresident ? slots - s->nresident : 0;
    const int has_new = s->opens_block;
    const int new_in = has_new && (free_slots > 0 || (st->new_hbm && allow >= 1));
    if (new_in && st->balance)
        allow = fmax(0, allow - 1);
    allow = fmin(fmin(allow, nmiss), floor(st->budget * acc->count));
    const uint32_t want = (uint32_t)allow;

    /* 3. The misses, hottest first; victims, coldest first.  The new token, when it is to go
     * to HBM and no slot is free, takes the coldest victim whatever its p. */
    uint32_t *ranked = st->tmp;
    double ptop = 0;
    const int below = li->model->tiers > 2; /* the misses left out are ranked below HBM */
    if (want || (below && nmiss))
        rank(st, st->cand, st->cand_b, nmiss, ranked, 1);
    if (want)
        ptop = p_of(st, ranked[0], n, prompt);
    const uint32_t wanted_slots = want + (uint32_t)new_in;
    const uint32_t need_v = wanted_slots > free_slots ? wanted_slots - free_slots : 0;
    const double pmax = new_in && free_slots == 0 ? 2.0 : ptop;
    uint32_t nv = need_v ? find_victims(st, s, pmax, need_v, SCAN_FACTOR * need_v + SCAN_MIN)
                         : 0;
    /* When the resident tokens not read this step run out (the reads nearly fill HBM), the
     * read ones may make room too, the coldest first, as reactive's overflow keeps the
     * highest scores: a read victim costs no HBM read. */
    if (nv < need_v && acc->count + 1 >= slots)
        nv += find_read_victims(st, s, pmax, st->vict + nv, st->vict_b + nv, need_v - nv);
    rank(st, st->vict, st->vict_b, nv, st->cand, 0);
    const uint32_t *victims = st->cand; /* the misses are in ranked[] now */
    uint32_t vi = 0, nup = 0, ndown = 0;
    int new_in_hbm = 0;

    /* 4. The new token. */
    if (new_in && (free_slots > 0 || nv > 0)) {
        if (free_slots > 0) {
            free_slots--;
        } else {
            st->down[ndown++] = victims[vi++];
            t.hr += st->tk[victims[vi - 1]].last != n + 1, t.dn += 1, t.dw += 1;
        }
        st->up[nup++] = s->new_block;
        new_in_hbm = 1;
        t.hw += 1;
    } else if (has_new) {
        t.dw += 1, t.dn += 1;
    }

    /* 5. Swaps that pay. */
    const double tok = (double)li->tok_bytes;
    const kvp_cost_model *m = li->model;
    const double s_read = tok / fmin(m->bandwidth[1], m->up_bandwidth[m->link[1]]) -
                          tok / m->bandwidth[0];
    const int priced = st->payback > 0;
    double tcur = priced ? step_time(li, &t) : 0;
    for (uint32_t i = 0; i < want; i++) {
        uint32_t x = ranked[i];
        double px = p_of(st, x, n, prompt), py = 0;
        traffic next = t;
        next.hw += 1;
        int use_free = free_slots > 0;
        if (!use_free) {
            if (vi == nv)
                break;
            py = p_of(st, victims[vi], n, prompt);
            next.hr += st->tk[victims[vi]].last != n + 1, next.dn += 1, next.dw += 1;
        }
        if (!(px > py))
            break;
        double tnext = priced ? step_time(li, &next) : 0;
        if (priced && !((px - py) * st->horizon * s_read > st->payback * (tnext - tcur)))
            break;
        if (use_free)
            free_slots--;
        else
            st->down[ndown++] = victims[vi++];
        st->up[nup++] = x;
        t = next;
        tcur = tnext;
    }

    st->expect = hits + (double)(nup - (uint32_t)new_in_hbm);
    st->extra_h = t.hr - hits + t.hw;
    st->extra_d = t.dw;
    /* Demotions first: the promotions then find their slots free. */
    if (kvp_step_demote_many(s, st->down, ndown) != ndown)
        return kvp_error_set(err, KVP_ECHECK, "online: layer %u step %u: bad demotion",
                             li->layer, n);
    if ((rc = (int)kvp_step_promote_many(s, st->up, nup)) != (int)nup)
        return kvp_error_set(err, KVP_ECHECK, "online: layer %u step %u: bad promotion",
                             li->layer, n);
    /* More than two tiers: the misses left out of HBM, hottest first (the promoted ones are
     * ranked[]'s first), fill the tiers below it fastest first (docs/POLICIES.md). */
    const uint32_t up_misses = nup - (uint32_t)new_in_hbm;
    if (below && nmiss > up_misses)
        kvp_step_rank_below(s, ranked + up_misses, nmiss - up_misses, 1);
    return 0;
}
