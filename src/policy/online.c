/*
 * The online family's rule (docs/POLICIES.md "The online family"), token granularity.
 *
 * Importance: every token x keeps e(x), an exponential moving average of what its reads add
 * (est: 1; its score over the step's highest; or its margin over the step's lowest read
 * score as a share of the range), decayed by `decay` per step,
 * lazily: e and the step of its last read are stored, and e is decayed when it is read or
 * looked at.  p(x), the estimate that x is read at a step, is (1 - decay) e(x) (for decay 1:
 * e over the steps the token has existed).  For `whittle` (kappa > 0) p is its index instead,
 * q + (h - q) kappa with q that estimate and h = 1 if x is read at this step (w_index), and
 * its victims are the lowest of a pool of WHITTLE_POOL x those wanted.  Nothing of a later
 * step is read: it is online.
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
/* whittle's victims: the lowest indices among this many times those wanted (docs/POLICIES.md) */
#define WHITTLE_POOL 4u
/* Decay factors below this are taken as 0 (the table of powers ends there). */
#define DECAY_FLOOR 1e-7
#define DPOW_MAX 65536u
/* Smoothing of the balance's learnt shortfall (per step). */
#define LOSS_SMOOTH 0.5

typedef struct online_state {
    /* streams (docs/MODEL.md "Streams"): token x is position x / ns of stream x % ns, whose
     * prompt is sprompt[x % ns] (ns = 1, NULL: one stream) */
    uint32_t ns;
    const uint32_t *sprompt;
    double decay;
    int est_scores, balance, new_hbm;
    double horizon, payback, budget;
    /* whittle: the renewal model's weight of the token's present state in its index (0 for
     * the other members: the index is p itself) */
    double kappa;
    /* per token, side by side (one cache line for both): the estimate's sum at the step of
     * its last read, and that step + 1 (0: never read, and then e is 0) */
    struct tok_est {
        float e;
        uint32_t last;
    } *tk;
    double *dpow;      /* decay^k for k < ndpow (see init) */
    uint32_t ndpow;
    int cut;           /* 1 if the table stops before decay^k is negligible */
    /* Victim candidates: a ring of (token, its `last` when queued), the resident tokens in
     * the order they dropped out of the read set (never-read residents first); an entry is
     * live while its token is resident and unread since. */
    struct qent {
        uint32_t x, last;
    } *q, *q2, *drop; /* q2: where q_compact copies to; drop: the step's dropouts */
    uint32_t qcap, qhead, qlen;
    uint32_t *prev;    /* the last step's read positions */
    uint32_t nprev;
    double expect;     /* HBM reads the last step's placement was expected to serve next */
    double loss;       /* smoothed shortfall of the HBM reads against that expectation */
    double extra_h, extra_d; /* the last step's HBM and DRAM traffic beyond its reads, tokens */
    uint32_t cold_age; /* steps unread after which p is below the lowest bucket's top */
    uint8_t *cand_b, *vict_b; /* the buckets of cand[] and vict[] */
    uint32_t *cand;    /* misses, then the ranked victims */
    uint32_t *vict;    /* victims found */
    uint32_t *tmp;     /* the ranked misses */
    double *cand_p, *vict_p, *tmp_p; /* their p */
    uint32_t *up, *down; /* the moves of the step */
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
    free(st->q);
    free(st->q2);
    free(st->drop);
    free(st->prev);
    free(st->dpow);
    free(st->cand);
    free(st->cand_b);
    free(st->vict_b);
    free(st->vict);
    free(st->tmp);
    free(st->cand_p);
    free(st->vict_p);
    free(st->tmp_p);
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
    st->ns = li->streams > 1 ? li->streams : 1;
    st->sprompt = li->streams > 1 ? li->sprompt : NULL;
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
    st->cand_p = malloc(n * sizeof *st->cand_p);
    st->vict_p = malloc(n * sizeof *st->vict_p);
    st->tmp_p = malloc(n * sizeof *st->tmp_p);
    st->up = malloc(n * sizeof *st->up);
    st->down = malloc(n * sizeof *st->down);
    /* live entries are at most one per resident token; a step adds at most n + 1 */
    st->qcap = (uint32_t)(2 * n + 2);
    st->q = malloc(st->qcap * sizeof *st->q);
    st->q2 = malloc(st->qcap * sizeof *st->q2);
    st->drop = malloc(n * sizeof *st->drop);
    st->prev = malloc(n * sizeof *st->prev);
    if (!st->tk || !st->dpow || !st->cand || !st->vict || !st->tmp || !st->up ||
        !st->down || !st->cand_b || !st->vict_b || !st->q || !st->q2 || !st->drop || !st->prev ||
        !st->cand_p || !st->vict_p || !st->tmp_p) {
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
    for (uint32_t x = 0; x < li->nblocks; x++)
        if (resident[x])
            st->q[st->qlen++] = (struct qent){x, 0};
    return 0;
}

int kvp_whittle_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                     uint8_t *resident, kvp_error *err)
{
    int rc = kvp_online_init(state, li, first, resident, err);
    if (rc)
        return rc;
    online_state *st = *state;
    /* kappa = K / H, K = sum over t = 1..H of (1 - renew)^t: the mean, over the next H steps,
     * of the chance that the token's present state (read or not) has not been renewed. */
    const double keep = 1 - li->param[ON_RENEW], h = st->horizon;
    double k = keep >= 1 ? h : keep * (1 - pow(keep, h)) / (1 - keep);
    st->kappa = k / h;
    if (!(st->kappa > 0)) /* renew 1: the index is q alone, as for kappa 0 */
        st->kappa = 0;
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

/* whittle's index from p = q, the read-rate estimate: q + (h - q) kappa, h = 1 if x was read
 * at step n (stamp n + 1), else 0 (docs/POLICIES.md "whittle"). */
static inline double w_index(const online_state *st, double q, uint32_t last, uint32_t n)
{
    return q + ((last == n + 1 ? 1.0 : 0.0) - q) * st->kappa;
}

/* p_of beyond its inline case. */
static double p_slow(const online_state *st, uint32_t x, uint32_t n, uint32_t prompt)
{
    uint32_t l = st->tk[x].last;
    if (!l)
        return 0;
    if (st->decay >= 1) {
        uint32_t pos = x;
        if (st->sprompt) { /* its own stream's position and prompt */
            pos = x / st->ns;
            prompt = st->sprompt[x % st->ns];
        }
        uint32_t born = pos < prompt ? 0 : pos - prompt; /* the step that wrote x */
        double p = st->tk[x].e / (double)(n - born + 1);
        p = p < 1 ? p : 1;
        return st->kappa > 0 ? w_index(st, p, l, n) : p;
    }
    double p = (1 - st->decay) * st->tk[x].e * dpow(st, n + 1 - l);
    p = p < 1 ? p : 1;
    return st->kappa > 0 ? w_index(st, p, l, n) : p;
}

/* p(x) at step n: the estimated chance that x is read at a step, in [0, 1]. */
static inline double p_of(const online_state *st, uint32_t x, uint32_t n, uint32_t prompt)
{
    if (st->decay < 1 && !st->cut) { /* the common case inline: the table holds every power */
        uint32_t l = st->tk[x].last, k = n + 1 - l, end = st->ndpow - 1;
        double p = (1 - st->decay) * st->tk[x].e * st->dpow[k < end ? k : end];
        p = !l ? 0 : p < 1 ? p : 1;
        return st->kappa > 0 && l ? w_index(st, p, l, n) : p;
    }
    return p_slow(st, x, n, prompt);
}
static inline uint32_t bucket_of(double p)
{
    uint32_t b = (uint32_t)(p * P_BUCKETS);
    return b < P_BUCKETS ? b : P_BUCKETS - 1;
}

/* Stable counting sort of x[0..n) by their buckets b[0..n), descending (desc) or ascending;
 * out to y.  The counts are local (no store to y can alias them) and the order is in the
 * prefix sums, so the passes over the entries index by b alone. */
static void rank(const uint32_t *x, const double *p, const uint8_t *b, uint32_t n, uint32_t *y,
                 double *yp, int desc)
{
    uint32_t cnt[P_BUCKETS] = {0}, sum = 0;
    for (uint32_t i = 0; i < n; i++)
        cnt[b[i]]++;
    for (uint32_t j = 0; j < P_BUCKETS; j++) {
        uint32_t k = desc ? P_BUCKETS - 1 - j : j, c = cnt[k];
        cnt[k] = sum;
        sum += c;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = cnt[b[i]]++;
        y[k] = x[i];
        yp[k] = p[i];
    }
}

/* The step's traffic in tokens, and its time. */
typedef struct traffic {
    double hr, hw, dr, dw, up, dn;
} traffic;

/* fmax without the library call (no NaN here: bandwidths are positive). */
static double max2(double a, double b)
{
    return a > b ? a : b;
}

/* kvp_step_time of the step's traffic while swaps are priced, term by term in the same
 * arithmetic (so the same value): tier 1's link carries its reads up and its writes down; the
 * tiers beyond tier 1 carry nothing but their fixed bytes, a constant (t_rest).  The DRAM
 * reads (dr) do not change while swaps are priced: the link's up term is folded into the
 * constant c.  A term is divided out only when a bound on it, its numerator times an upper
 * bound u on 1 / bandwidth (2^-30 above it, far beyond the roundings), exceeds the max so
 * far: below that max, its rounded quotient cannot exceed it either (rounding is monotone),
 * so the max is the same value (docs/PERF.md §15.2). */
typedef struct pricer {
    double tok, f0, bh, uh, f1, drtok, bd, ud, bdn, udn, c;
} pricer;

static pricer pricer_make(const kvp_layer_info *li, double t_rest, double dr)
{
    const kvp_cost_model *m = li->model;
    const double tok = (double)li->tok_bytes, margin = 1 + 0x1p-30;
    const uint32_t l = m->link[1];
    pricer pr = {tok, m->fixed_bytes[0], m->bandwidth[0], 1 / m->bandwidth[0] * margin,
                 m->fixed_bytes[1], dr * tok, m->bandwidth[1], 1 / m->bandwidth[1] * margin,
                 m->down_bandwidth[l], 1 / m->down_bandwidth[l] * margin, 0};
    pr.c = max2(t_rest, dr * tok / m->up_bandwidth[l]);
    return pr;
}

/* The step's time with hr, hw, dw tokens of HBM reads, HBM writes and DRAM writes. */
static inline double price_time(const pricer *pr, double hr, double hw, double dw)
{
    const double n_h = pr->f0 + (hr * pr->tok + hw * pr->tok);
    const double n_d = pr->f1 + (pr->drtok + dw * pr->tok), n_dn = dw * pr->tok;
    double time = pr->c;
    if (n_h * pr->uh > time)
        time = max2(time, n_h / pr->bh);
    if (n_d * pr->ud > time)
        time = max2(time, n_d / pr->bd);
    if (n_dn * pr->udn > time)
        time = max2(time, n_dn / pr->bdn);
    return time;
}

/* The part of kvp_step_time that no move of the online family changes. */
static double step_time_rest(const kvp_cost_model *m)
{
    double time = 0;
    for (uint32_t k = 2; k < m->tiers; k++)
        time = fmax(time, m->fixed_bytes[k] / m->bandwidth[k]);
    return time;
}

/* The balanced split in tokens: the h of a reads that HBM should serve so that its time
 * (weights, h, and eh tokens of other traffic) equals DRAM's (a - h reads and ed other
 * tokens) or the link's (a - h up), whichever needs more h; within [0, min(a, capacity)].
 * With eh = ed = 0 it is the bound's split (kvp_step_time_bound); the moves and new tokens
 * of the last step stand in for this step's eh and ed. */
static double balanced_split(const kvp_layer_info *li, double a, double eh, double ed,
                             uint32_t row)
{
    const kvp_cost_model *m = li->model;
    const double tok = (double)li->tok_bytes * row, w = m->fixed_bytes[0] / tok;
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
                                  uint32_t *out, double *out_p, uint8_t *out_b, uint32_t want)
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
            out_p[found] = p;
            out_b[found++] = (uint8_t)bucket_of(p);
        }
    }
    return found;
}

/* The ring's slot of the i-th entry (i < qcap). */
static uint32_t q_at(const online_state *st, uint32_t i)
{
    uint32_t k = st->qhead + i;
    return k < st->qcap ? k : k - st->qcap;
}

static int q_live(const online_state *st, const uint8_t *res, struct qent e)
{
    return res[e.x] && st->tk[e.x].last == e.last;
}

/* Drops the entries that are no longer live, keeping the order (into the spare ring: in
 * place, a wrapped ring would overwrite entries not yet read). */
static void q_compact(online_state *st, const uint8_t *res)
{
    uint32_t w = 0;
    for (uint32_t i = 0; i < st->qlen; i++) {
        struct qent e = st->q[q_at(st, i)];
        if (q_live(st, res, e))
            st->q2[w++] = e;
    }
    struct qent *t = st->q;
    st->q = st->q2;
    st->q2 = t;
    st->qhead = 0;
    st->qlen = w;
}

/* Appends e (x with its current `last`). */
static inline void q_put(online_state *st, const uint8_t *res, struct qent e)
{
    if (st->qlen == st->qcap)
        q_compact(st, res); /* never still full: at most one live entry per token */
    st->q[q_at(st, st->qlen++)] = e;
}

static void q_push(online_state *st, const uint8_t *res, uint32_t x)
{
    q_put(st, res, (struct qent){x, st->tk[x].last});
}

/* Takes live entries from the front of the queue (the longest out of the read set first)
 * until `want` with p below pmax are found or `limit` entries are taken; a live one at or
 * above pmax goes to the back.  The caller ranks what was found and puts back what it does
 * not use. */
static uint32_t find_victims(online_state *st, const kvp_step *s, double pmax, uint32_t want,
                             uint32_t limit)
{
    const uint32_t n = s->n, prompt = s->li->prompt, cap = st->qcap;
    const uint8_t *res = s->resident;
    struct qent *q = st->q;
    /* the ring's head and length in locals: a store to q could alias them */
    uint32_t found = 0, head = st->qhead, len = st->qlen;
    if (limit > len)
        limit = len;
    for (uint32_t v = 0; v < limit && found < want; v++) {
        struct qent e = q[head];
        head = head + 1 < cap ? head + 1 : 0;
        len--;
        if (!q_live(st, res, e))
            continue;
        double p = p_of(st, e.x, n, prompt);
        if (p < pmax) {
            st->vict[found] = e.x;
            st->vict_p[found] = p;
            st->vict_b[found++] = (uint8_t)bucket_of(p);
        } else {
            uint32_t k = head + len;
            q[k < cap ? k : k - cap] = e;
            len++;
        }
    }
    st->qhead = head;
    st->qlen = len;
    return found;
}

/* Step 1's pass over the reads: every read token's estimate takes its read, and the misses
 * are listed with their estimates (p and bucket come after, for the misses alone).  The
 * flags are constants at each call, so that each case is a loop of its own without their
 * tests, and the loop's bounds and arrays sit in locals (a store to tk could otherwise alias
 * acc->count, which was then reloaded every read). */
static inline uint32_t take_reads(online_state *st, const kvp_access *acc, const uint8_t *res,
                                  uint32_t stamp, double vmin, double inv_span, int use_scores,
                                  int exact)
{
    const uint32_t count = acc->count, *pos = acc->pos, clamp = st->ndpow - 1;
    const float *score = acc->score;
    const double *tab = st->dpow;
    struct tok_est *tk = st->tk;
    uint32_t *cand = st->cand, nmiss = 0;
    double *cand_p = st->cand_p;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t x = pos[i];
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
        cand[nmiss] = x;
        cand_p[nmiss] = (double)(float)enew;
        nmiss += miss;
    }
    return nmiss;
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
        /* four running maxima (max is exact in any order), the minimum only for est 2 */
        float h0 = score[0], h1 = h0, h2 = h0, h3 = h0, lo = h0;
        uint32_t i = 0;
        for (; i + 4 <= acc->count; i += 4) {
            h0 = score[i] > h0 ? score[i] : h0;
            h1 = score[i + 1] > h1 ? score[i + 1] : h1;
            h2 = score[i + 2] > h2 ? score[i + 2] : h2;
            h3 = score[i + 3] > h3 ? score[i + 3] : h3;
        }
        for (; i < acc->count; i++)
            h0 = score[i] > h0 ? score[i] : h0;
        h0 = h1 > h0 ? h1 : h0;
        h0 = h2 > h0 ? h2 : h0;
        h0 = h3 > h0 ? h3 : h0;
        if (st->est_scores == 2)
            for (i = 1; i < acc->count; i++)
                lo = score[i] < lo ? score[i] : lo;
        vmax = h0;
        vmin = st->est_scores == 1 ? 0 : lo;
        if (!(vmax > vmin)) /* every read alike: each counts one */
            vmin = vmax - 1;
    }
    uint32_t hits = 0, nmiss = 0;
    const int use_scores = st->est_scores && score, exact = !st->cut;
    const double span = vmax - vmin, one_minus = 1 - st->decay, kappa = st->kappa;
    const double inv_span = 1 / span;
    struct tok_est *tk = st->tk;
    const uint8_t *res = s->resident;
    uint32_t *cand = st->cand;
    uint8_t *cand_b = st->cand_b;
    double *cand_p = st->cand_p;
    if (exact)
        nmiss = use_scores ? take_reads(st, acc, res, stamp, vmin, inv_span, 1, 1)
                           : take_reads(st, acc, res, stamp, vmin, inv_span, 0, 1);
    else
        nmiss = use_scores ? take_reads(st, acc, res, stamp, vmin, inv_span, 1, 0)
                           : take_reads(st, acc, res, stamp, vmin, inv_span, 0, 0);
    hits = acc->count - nmiss;
    for (uint32_t i = 0; i < nmiss; i++) {
        double p = one_minus * cand_p[i];
        p = p < 1 ? p : 1;
        cand_p[i] = p + (1 - p) * kappa; /* p_of(x): read now, h = 1 */
        cand_b[i] = (uint8_t)bucket_of(cand_p[i]);
    }
    /* The resident tokens read last step and not now join the victims' queue. */
    uint32_t ndrop = 0;
    struct qent *drop = st->drop;
    const uint32_t nprev = st->nprev, *prev = st->prev;
    for (uint32_t i = 0; i < nprev; i++) { /* branch-free */
        uint32_t x = prev[i], l = tk[x].last;
        drop[ndrop] = (struct qent){x, l};
        ndrop += (uint32_t)res[x] & (uint32_t)(l != stamp);
    }
    for (uint32_t i = 0; i < ndrop; i++)
        q_put(st, res, drop[i]);
    memcpy(st->prev, acc->pos, acc->count * sizeof *st->prev);
    st->nprev = acc->count;
    if (st->decay >= 1) /* p is e over the token's age: recompute the misses' buckets */
        for (uint32_t i = 0; i < nmiss; i++) {
            cand_p[i] = p_of(st, cand[i], n, prompt);
            cand_b[i] = (uint8_t)bucket_of(cand_p[i]);
        }
    traffic t = {hits, 0, nmiss, 0, nmiss, 0};

    /* 2. How many misses may come up: the balanced split, the budget.  The quota is counted
     * in rows of `row` tokens, one per stream (docs/POLICIES.md "Several streams"): with S
     * streams every count below is divided by S, so that S identical streams count what one
     * stream at batch x S counts, bit for bit (with one stream, row = 1: no change). */
    const uint32_t row = st->ns;
    const double rows = row; /* counts / rows are exact for integer multiples of row */
    const double hits_r = hits / rows, nmiss_r = nmiss / rows;
    double allow = nmiss_r + (s->nnew ? s->nnew / rows : 1); /* the misses and new token(s) */
    if (st->balance) {
        double hstar = floor(balanced_split(li, (double)acc->count / rows, st->extra_h / rows,
                                            st->extra_d / rows, row));
        /* Next step's HBM reads: this step's hits and promotions, less the share of them
         * that drift out of the read set, learnt from the past steps' shortfall. */
        if (n > 0)
            st->loss = LOSS_SMOOTH * st->loss + (1 - LOSS_SMOOTH) * fmax(0, st->expect - hits_r);
        allow = fmin(allow, fmax(0, hstar - hits_r + st->loss));
    }
    /* The new token is read while it is recent: under the balance it comes to HBM (beyond
     * a free slot) only where the split leaves room, and takes one of the promotions.  With
     * several streams each decoding one writes a token (s->new_blocks, lowest first), and
     * each in turn is taken as the one token is. */
    uint32_t free_slots = slots > s->nresident ? slots - s->nresident : 0;
    const uint32_t has_new = s->nnew;
    const uint32_t *new_blocks = s->new_blocks;
    const int row_in = st->new_hbm && allow >= 1; /* the row of new tokens may come in */
    uint32_t new_in = 0;
    while (new_in < has_new && (free_slots > new_in || row_in))
        new_in++;
    if (st->balance)
        allow = fmax(0, allow - new_in / rows);
    /* every miss, or whole rows of them */
    allow = fmin(allow, floor(st->budget * ((double)acc->count / rows)));
    const uint32_t want = allow >= nmiss_r ? nmiss : (uint32_t)allow * row;

    /* 3. The misses, hottest first; victims, coldest first.  The new token, when it is to go
     * to HBM and no slot is free, takes the coldest victim whatever its p. */
    uint32_t *ranked = st->tmp;
    double *ranked_p = st->tmp_p, ptop = 0;
    const int below = li->model->tiers > 2; /* the misses left out are ranked below HBM */
    if (want || (below && nmiss))
        rank(st->cand, st->cand_p, st->cand_b, nmiss, ranked, ranked_p, 1);
    if (want)
        ptop = ranked_p[0];
    const uint32_t wanted_slots = want + new_in;
    const uint32_t need_v = wanted_slots > free_slots ? wanted_slots - free_slots : 0;
    const double pmax = new_in > free_slots ? 2.0 : ptop;
    /* whittle looks at up to WHITTLE_POOL x need_v victims and takes the lowest indices of
     * them, so that HBM keeps the highest; the others go back to the queue.  The hand's floor
     * grows with the streams, so that S identical streams visit S times the entries of one */
    const uint32_t pool = st->kappa > 0 ? WHITTLE_POOL : 1;
    uint32_t nv = need_v ? find_victims(st, s, pmax, pool * need_v,
                                        SCAN_FACTOR * pool * need_v + SCAN_MIN * st->ns)
                         : 0;
    /* When the resident tokens not read this step run out (the reads nearly fill HBM), the
     * read ones may make room too, the coldest first, as reactive's overflow keeps the
     * highest scores: a read victim costs no HBM read. */
    if (nv < need_v && acc->count + row >= slots)
        nv += find_read_victims(st, s, pmax, st->vict + nv, st->vict_p + nv, st->vict_b + nv,
                                need_v - nv);
    rank(st->vict, st->vict_p, st->vict_b, nv, st->cand, st->cand_p, 0);
    const uint32_t *victims = st->cand; /* the misses are in ranked[] now */
    const double *victims_p = st->cand_p;
    uint32_t vi = 0, nup = 0, ndown = 0;
    uint32_t new_in_hbm = 0;

    /* 4. The new token(s). */
    for (uint32_t j = 0; j < has_new; j++) {
        if (j < new_in && (free_slots > 0 || vi < nv)) {
            if (free_slots > 0) {
                free_slots--;
            } else {
                st->down[ndown++] = victims[vi++];
                t.hr += st->tk[victims[vi - 1]].last != n + 1, t.dn += 1, t.dw += 1;
            }
            st->up[nup++] = new_blocks[j];
            new_in_hbm++;
            t.hw += 1;
        } else {
            t.dw += 1, t.dn += 1;
        }
    }

    /* 5. Swaps that pay, a row at a time (one swap with one stream): a row is made if each
     * of its pairs has its miss hotter than its victim and its weakest pair (the last) pays
     * for what the whole row adds to the step's time, priced for a row's token. */
    const double tok = (double)li->tok_bytes * rows;
    const kvp_cost_model *m = li->model;
    const double s_read = tok / fmin(m->bandwidth[1], m->up_bandwidth[m->link[1]]) -
                          tok / m->bandwidth[0];
    const int priced = st->payback > 0;
    const pricer pr = pricer_make(li, priced ? step_time_rest(m) : 0, t.dr);
    double tcur = priced ? price_time(&pr, t.hr, t.hw, t.dw) : 0;
    for (uint32_t i = 0; i < want;) {
        const uint32_t len = want - i < row ? want - i : row;
        double px = 0, py = 0, hr = 0, hw = 0, dw = 0;
        uint32_t fs = free_slots, v = vi, j = 0;
        for (; j < len; j++) {
            px = ranked_p[i + j];
            py = 0;
            if (fs > 0) {
                fs--;
            } else {
                if (v == nv)
                    break;
                py = victims_p[v];
                hr += st->tk[victims[v++]].last != stamp; /* an unread victim: an HBM read */
                dw += 1;
            }
            hw += 1;
            if (!(px > py))
                break;
        }
        if (j < len)
            break;
        if (priced) {
            double tnext = price_time(&pr, t.hr + hr, t.hw + hw, t.dw + dw);
            if (!((px - py) * st->horizon * s_read > st->payback * (tnext - tcur)))
                break;
            tcur = tnext;
        }
        for (j = 0; j < len; j++, i++) {
            t.hw += 1;
            if (free_slots > 0) {
                free_slots--;
            } else {
                const double h1 = st->tk[victims[vi]].last != stamp;
                st->down[ndown++] = victims[vi++];
                t.hr += h1, t.dn += 1, t.dw += 1;
            }
            st->up[nup++] = ranked[i];
        }
    }

    st->expect = (hits + (double)(nup - new_in_hbm)) / rows;
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
    const uint32_t up_misses = nup - new_in_hbm;
    if (below && nmiss > up_misses)
        kvp_step_rank_below(s, ranked + up_misses, nmiss - up_misses, 1);
    /* The new token in HBM and the victims found but not taken go (back) to the queue. */
    for (uint32_t j = 0; j < new_in_hbm; j++)
        q_push(st, s->resident, new_blocks[j]);
    for (; vi < nv; vi++)
        if (st->tk[victims[vi]].last != stamp)
            q_push(st, s->resident, victims[vi]);
    return 0;
}

