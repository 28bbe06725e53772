/*
 * `lookahead(W, R)`: perfect foresight over a window of W steps, token granularity
 * (docs/MODEL.md §5; docs/POLICIES.md).  Rule: f(b) counts the steps of [n, min(n+W, N)) that read
 * block b; the `slots` existing blocks of highest f (ties: resident first, then lower index)
 * are wanted, and of the wanted blocks not resident the first ceil(R * count) are promoted,
 * into free slots, then in place of the unwanted residents of lowest f, then lowest index.
 * Why: the best a placement of this kind does knowing the next W steps (sa searches W, R).
 *
 * f slides with the window and a histogram of the blocks by (resident, f) gives every cut-off
 * in O(W), so a step is O(context + W) with no sort; how, and the speed notes:
 * docs/POLICIES.md, "lookahead".
 */
#include "policy/policy.h"
#include "base/error.h"
#include "engine/cost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LOOKAHEAD_W, LOOKAHEAD_R }; /* indices into lookahead_params */

static const kvp_policy_param lookahead_params[] = {
    {"W", 16, 1, 1024, 1, "window: future steps counted, the current one included"},
    {"R", 1, 0, 1, 0, "share of the wanted blocks not in HBM promoted per step"},
};

/* ceil(R * count) is taken of R * count - CEIL_GUARD, so that a product a rounding error
 * above a whole number does not round up (the guard of k in docs/MODEL.md §2). */
#define CEIL_GUARD 1e-9
/* Copies of the histogram (a power of two), and blocks tested together by the pass (a
 * multiple of 8: the flags are read eight at a time). */
#define HIST_WAYS 4u
#define SCAN_GROUP 64u
/* A block's code: f (reads in the window, <= W <= 1024) in the low bits, RES_BIT if it is
 * resident (kept equal to the engine's resident[]). */
#define RES_BIT 0x8000u
#define F_MASK 0x7FFFu

typedef struct lookahead_state {
    uint32_t W;
    double R;
    uint16_t *code;    /* per block: f | RES_BIT if resident */
    /* existing blocks by f, in HIST_WAYS copies of 2 (W + 1) counters: in copy w,
     * hist[w * 2 (W + 1) + f] not resident, hist[w * 2 (W + 1) + W + 1 + f] resident.
     * Counters wrap: only the sum over the copies is a count. */
    uint32_t *hist;
    uint32_t hexist;   /* blocks counted in hist: [0, hexist) */
    uint32_t *promote; /* blocks to promote this step, nblocks entries */
    uint32_t *below;   /* more than two tiers: the ranking below HBM, nblocks entries */
    uint32_t *level;   /* and its counting sort's W + 1 counters */
    uint32_t next_n;   /* the step expected next */
    /* Several streams (docs/MODEL.md "Streams"): block b of stream i is b * S + i, and the
     * blocks that exist are not a prefix: counted[b] says whether b is in hist (it exists),
     * sexist[i] how many of stream i's blocks are; per-stream quotas use scnt (S (W + 1)
     * counters), slevel, stake, sseen.  All NULL with one stream. */
    uint32_t S;
    uint8_t *counted;
    uint32_t *sexist, *scnt, *slevel, *stake, *sseen;
} lookahead_state;

/* Where a ranking runs out: every block above level `level` is in, plus, at `level`, the
 * first `res` resident and the first `non` non-resident blocks in index order.  The
 * resident-first tie rule makes the residents of a level come before its non-residents. */
typedef struct cutoff {
    uint32_t level;
    uint32_t res, non;
} cutoff;

static uint32_t lookahead_window(const double *param)
{
    return (uint32_t)param[LOOKAHEAD_W];
}

/* Copy 0's counters of one residency (the copy that counts moves other than reads). */
static uint32_t *hist_of(lookahead_state *st, int resident)
{
    return st->hist + (resident ? st->W + 1 : 0);
}

/* The number of existing blocks at level f of one residency. */
static uint32_t hcount(const lookahead_state *st, int resident, uint32_t f)
{
    const size_t stride = 2 * ((size_t)st->W + 1);
    const uint32_t *h = st->hist + (resident ? st->W + 1 : 0) + f;
    uint32_t sum = 0;
    for (uint32_t w = 0; w < HIST_WAYS; w++)
        sum += h[w * stride];
    return sum;
}

static uint32_t f_of(const lookahead_state *st, uint32_t b) { return st->code[b] & F_MASK; }

/* Keeps the code's residency equal to the engine's after a move. */
static void sync_resident(lookahead_state *st, uint32_t b, const uint8_t *resident)
{
    st->code[b] = (uint16_t)((st->code[b] & F_MASK) | (resident[b] ? RES_BIT : 0));
}

/* Adds (up) or subtracts one read of every position of a to f, moving the blocks counted in
 * hist between levels (f never leaves [0, W], so the residency bit is never carried into).
 * The fields are copied into locals: through *st every store to the uint32_t histogram would
 * make the compiler reload them. */
static void window_add(lookahead_state *st, const kvp_access *a, int up)
{
    uint16_t *code = st->code;
    uint32_t *hist = st->hist;
    const uint32_t hexist = st->hexist, count = a->count, res_off = st->W + 1;
    const uint32_t stride = 2 * (st->W + 1);
    const uint32_t *pos = a->pos;
    const uint16_t delta = up ? 1 : (uint16_t)0xFFFFu; /* +1 or -1 modulo 2^16 */
    const uint8_t *counted = st->counted;
    if (counted) { /* several streams: the existing blocks are those counted */
        for (uint32_t i = 0; i < count; i++) {
            uint32_t b = pos[i];
            uint32_t was = code[b], now = (uint16_t)(was + delta);
            if (counted[b]) {
                uint32_t *h = hist + (i % HIST_WAYS) * stride + (was >> 15) * res_off;
                h[was & F_MASK]--;
                h[now & F_MASK]++;
            }
            code[b] = (uint16_t)now;
        }
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t b = pos[i];
        uint32_t was = code[b], now = (uint16_t)(was + delta);
        if (b < hexist) {
            /* a product, not a choice: residency is a coin toss the branch would miss */
            uint32_t *h = hist + (i % HIST_WAYS) * stride + (was >> 15) * res_off;
            h[was & F_MASK]--;
            h[now & F_MASK]++;
        }
        code[b] = (uint16_t)now;
    }
}

/* The wanted set: the first `slots` blocks with f > 0 in rank order.  *nonres receives the
 * number of wanted blocks not resident.  level 0 means every block with f > 0 is wanted. */
static cutoff wanted_cutoff(lookahead_state *st, uint32_t slots, uint32_t *nonres)
{
    cutoff c = {0, 0, 0};
    uint32_t left = slots, count = 0;
    for (uint32_t f = st->W; f >= 1; f--) {
        const uint32_t res = hcount(st, 1, f), non = hcount(st, 0, f);
        if (res + non <= left) {
            left -= res + non;
            count += non;
            continue;
        }
        c.level = f;
        c.res = res < left ? res : left;
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
    cutoff c = {0, 0, 0};
    for (uint32_t f = st->W; f >= 1 && f >= want.level; f--) {
        uint32_t avail = f > want.level ? hcount(st, 0, f) : want.non;
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
    for (uint32_t f = 0; f <= want.level; f++) {
        const uint32_t res = hcount(st, 1, f);
        uint32_t avail = f < want.level ? res : res - want.res;
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
    free(st->code);
    free(st->hist);
    free(st->promote);
    free(st->counted);
    free(st->sexist);
    free(st->scnt);
    free(st->slevel);
    free(st->stake);
    free(st->sseen);
    free(st->below);
    free(st->level);
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

/* Several streams: counts into hist the blocks of each stream that exist at step n (its
 * context P_i + n; a finished stream's blocks were taken out by hist_free). */
static void hist_extend_streams(lookahead_state *st, const kvp_layer_info *li, uint32_t n,
                                const uint8_t *resident)
{
    const uint32_t S = st->S;
    for (uint32_t i = 0; i < S; i++) {
        if (n >= li->ssteps[i])
            continue;
        const uint32_t exist = li->sprompt[i] + n; /* g = 1 */
        for (uint32_t b = st->sexist[i]; b < exist; b++) {
            const uint32_t vb = b * S + i;
            st->counted[vb] = 1;
            hist_of(st, resident[vb])[f_of(st, vb)]++;
        }
        if (exist > st->sexist[i])
            st->sexist[i] = exist;
    }
}

/* Blocks of finished sequences leave hist and HBM (the engine has cleared their residency). */
static void hist_free(lookahead_state *st, const kvp_step *s)
{
    for (uint32_t i = 0; i < s->nfreed; i++) {
        const uint32_t b = s->freed[i];
        if (st->counted[b]) {
            hist_of(st, (st->code[b] & RES_BIT) != 0)[f_of(st, b)]--;
            st->counted[b] = 0;
        }
        st->code[b] &= F_MASK;
    }
}

/* Counts the existing blocks [hexist, exist) into hist. */
static void hist_extend(lookahead_state *st, uint32_t exist, const uint8_t *resident)
{
    for (uint32_t b = st->hexist; b < exist; b++)
        hist_of(st, resident[b])[f_of(st, b)]++;
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
        st->code = calloc(n, sizeof *st->code);
        st->hist = calloc(HIST_WAYS * 2 * ((size_t)W + 1), sizeof *st->hist);
        st->promote = malloc(n * sizeof *st->promote);
    }
    if (st && li->streams > 1) {
        const uint32_t S = li->streams;
        st->S = S;
        st->counted = calloc(n, 1);
        st->sexist = calloc(S, sizeof *st->sexist);
        st->scnt = calloc((size_t)S * (W + 1), sizeof *st->scnt);
        st->slevel = calloc(S, sizeof *st->slevel);
        st->stake = calloc(S, sizeof *st->stake);
        st->sseen = calloc(S, sizeof *st->sseen);
        if (!st->counted || !st->sexist || !st->scnt || !st->slevel || !st->stake ||
            !st->sseen) {
            lookahead_free(st);
            return kvp_error_set(err, KVP_ENOMEM, "lookahead: out of memory for layer %u",
                                 li->layer);
        }
    }
    if (st && li->model && li->model->tiers > 2) {
        st->below = malloc(n * sizeof *st->below);
        st->level = malloc(((size_t)W + 1) * sizeof *st->level);
        if (!st->below || !st->level) {
            lookahead_free(st);
            st = NULL;
        }
    }
    if (!st || !st->code || !st->hist || !st->promote) {
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
        window_add(st, first->future[m], 1);

    /* The wanted set of step 0 (nothing is resident yet), then the lowest prompt blocks. */
    const uint32_t exist = first->exist_blocks, slots = li->slots;
    if (st->S)
        hist_extend_streams(st, li, 0, resident);
    else
        hist_extend(st, exist, resident);
    uint32_t nonres, count = 0, seen = 0;
    cutoff want = wanted_cutoff(st, slots, &nonres);
    for (uint32_t b = 0; b < exist && count < nonres; b++) {
        if (st->counted && !st->counted[b])
            continue;
        uint32_t fb = f_of(st, b);
        if (fb > want.level || (fb == want.level && fb > 0 && seen++ < want.non)) {
            resident[b] = 1;
            count++;
        }
    }
    for (uint32_t b = 0; b < exist && count < slots; b++)
        if (!resident[b] && (!st->counted || st->counted[b])) {
            resident[b] = 1;
            count++;
        }
    /* Recount with the residency just chosen. */
    for (uint32_t b = 0; b < exist; b++)
        sync_resident(st, b, resident);
    for (uint32_t i = 0; i < HIST_WAYS * 2 * (W + 1); i++)
        st->hist[i] = 0;
    st->hexist = 0;
    if (st->S) {
        memset(st->counted, 0, n);
        memset(st->sexist, 0, (size_t)st->S * sizeof *st->sexist);
        hist_extend_streams(st, li, 0, resident);
    } else {
        hist_extend(st, exist, resident);
    }
    *state = st;
    return 0;
}

/* ceil(R * count), guarded, within [0, count]. */
static uint32_t quota(double R, uint32_t count)
{
    double p_real = ceil(R * (double)count - CEIL_GUARD);
    return p_real <= 0 ? 0 : p_real >= (double)count ? count : (uint32_t)p_real;
}

/* 1 if block b (existing, not resident) is wanted: above the wanted level, or at it among
 * the first want.non non-resident blocks in index order (*seen counts those met). */
static int wanted_nonres(const lookahead_state *st, uint32_t b, cutoff want, uint32_t *seen)
{
    const uint32_t f = f_of(st, b);
    return f > 0 && (f > want.level || (f == want.level && (*seen)++ < want.non));
}

/* Several streams: lists in st->promote, in index order, the first ceil(R * count_i) wanted
 * blocks not resident of each stream i in rank order (f descending, then lower index), and
 * returns how many.  Two passes over the existing blocks: the counts per stream and level,
 * then the blocks. */
static uint32_t quota_per_stream(lookahead_state *st, const kvp_step *s, cutoff want)
{
    const uint32_t S = st->S, W = st->W, exist = s->exist_blocks;
    uint32_t seen = 0, total = 0;
    memset(st->scnt, 0, (size_t)S * (W + 1) * sizeof *st->scnt);
    for (uint32_t b = 0; b < exist; b++)
        if (st->counted[b] && !s->resident[b] && wanted_nonres(st, b, want, &seen))
            st->scnt[(size_t)(b % S) * (W + 1) + f_of(st, b)]++;
    for (uint32_t i = 0; i < S; i++) {
        const uint32_t *c = st->scnt + (size_t)i * (W + 1);
        uint32_t count = 0;
        for (uint32_t f = 1; f <= W; f++)
            count += c[f];
        uint32_t left = quota(st->R, count);
        st->slevel[i] = W + 1; /* none */
        st->stake[i] = 0;
        st->sseen[i] = 0;
        for (uint32_t f = W; f >= 1 && left > 0; f--) {
            if (left <= c[f]) {
                st->slevel[i] = f;
                st->stake[i] = left;
                break;
            }
            left -= c[f];
        }
    }
    seen = 0;
    for (uint32_t b = 0; b < exist; b++) {
        if (!st->counted[b] || s->resident[b] || !wanted_nonres(st, b, want, &seen))
            continue;
        const uint32_t i = b % S, f = f_of(st, b);
        if (f > st->slevel[i] || (f == st->slevel[i] && st->sseen[i]++ < st->stake[i]))
            st->promote[total++] = b;
    }
    return total;
}

/* The pass that names the blocks at the cut-offs (lowest index first). */
typedef struct scan {
    kvp_step *s;
    lookahead_state *st;
    uint32_t p, d;       /* promotions and demotions wanted */
    cutoff pro, dem;
    uint32_t dem_skip;   /* residents at dem.level that are wanted, passed over first */
    uint32_t npro, ndem; /* found so far */
    uint32_t res_seen, non_seen; /* residents at dem.level, non-residents at pro.level */
    uint32_t *hnon, *hres;
} scan;

/* Block b, one that may move: demoted at once, or listed for promotion. */
static int scan_visit(scan *sc, uint32_t b, kvp_error *err)
{
    kvp_step *s = sc->s;
    const uint32_t fb = f_of(sc->st, b);
    if (sc->st->counted && !sc->st->counted[b])
        return 0; /* several streams: a block not yet (or no longer) there */
    if (s->resident[b]) {
        if (sc->ndem == sc->d || fb > sc->dem.level)
            return 0;
        if (fb == sc->dem.level) {
            uint32_t r = sc->res_seen++;
            if (r < sc->dem_skip || r >= sc->dem_skip + sc->dem.res)
                return 0;
        }
        int rc = kvp_step_demote(s, b);
        if (rc < 0)
            return kvp_error_set(err, rc, "lookahead: layer %u step %u: cannot demote block "
                                 "%u", s->li->layer, s->n, b);
        sync_resident(sc->st, b, s->resident);
        sc->hres[fb]--;
        sc->hnon[fb]++;
        sc->ndem++;
    } else if (sc->npro < sc->p && fb >= sc->pro.level &&
               (fb > sc->pro.level || sc->non_seen++ < sc->pro.non)) {
        sc->st->promote[sc->npro++] = b;
    }
    return 0;
}

/* Visits the blocks in index order until every move is found.  A block can move only if it
 * is resident with f <= dem.level while demotions remain, or not resident with f >=
 * pro.level while promotions remain; any other block is passed over by scan_visit without
 * effect.  So the codes of SCAN_GROUP blocks are tested against those limits into flags, in a
 * loop without branches (two unsigned range tests on the code), and only the flagged blocks
 * are visited, in index order. */
static int scan_blocks(scan *sc, kvp_error *err)
{
    const uint32_t exist = sc->s->exist_blocks;
    const uint16_t *code = sc->st->code;
    uint8_t flag[SCAN_GROUP];
    uint32_t b = 0;
    while (b < exist && (sc->npro < sc->p || sc->ndem < sc->d)) {
        /* resident, f < dem_lim: code - RES_BIT in [0, dem_lim); not resident, f >= pro_lim:
         * code - pro_lim in [0, RES_BIT - pro_lim).  Limits 0 and RES_BIT test nothing. */
        const uint16_t dem_lim = (uint16_t)(sc->ndem < sc->d ? sc->dem.level + 1 : 0);
        const uint16_t pro_lim = (uint16_t)(sc->npro < sc->p ? sc->pro.level : RES_BIT);
        const uint16_t pro_span = (uint16_t)(RES_BIT - pro_lim);
        if (exist - b >= SCAN_GROUP) {
            const uint16_t *c = code + b;
            for (uint32_t j = 0; j < SCAN_GROUP; j++)
                flag[j] = (uint8_t)(((uint16_t)(c[j] - RES_BIT) < dem_lim) |
                                    ((uint16_t)(c[j] - pro_lim) < pro_span));
            /* In index order; the limits stay valid for the group's later blocks, since
             * scan_visit checks the counts itself. */
            for (uint32_t j = 0; j < SCAN_GROUP; j += 8) {
                uint64_t eight; /* eight flags at once: most are all clear */
                memcpy(&eight, flag + j, sizeof eight);
                for (uint32_t k = 0; eight && k < 8; k++) {
                    int rc = flag[j + k] ? scan_visit(sc, b + j + k, err) : 0;
                    if (rc < 0)
                        return rc;
                }
            }
            b += SCAN_GROUP;
        } else {
            int rc = scan_visit(sc, b++, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* More than two tiers: the existing blocks out of HBM with f > 0, by f (highest first, ties
 * the lower index: a counting sort), fill the tiers below HBM fastest first, R of the moves
 * that takes made per step as R of the promotions into HBM are (docs/POLICIES.md). */
static void rank_below(lookahead_state *st, kvp_step *s)
{
    const uint32_t W = st->W, exist = s->exist_blocks;
    memset(st->level, 0, ((size_t)W + 1) * sizeof *st->level);
    for (uint32_t b = 0; b < exist; b++)
        if (!s->resident[b])
            st->level[f_of(st, b)]++;
    uint32_t at = 0;
    for (uint32_t f = W; f >= 1; f--) { /* level f's first place in the ranking */
        uint32_t c = st->level[f];
        st->level[f] = at;
        at += c;
    }
    for (uint32_t b = 0; b < exist; b++) {
        uint32_t f = f_of(st, b);
        if (!s->resident[b] && f > 0)
            st->below[st->level[f]++] = b;
    }
    kvp_step_rank_below(s, st->below, at, st->R);
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
        window_add(st, s->prev, 0);
        if (s->nfuture == st->W)
            window_add(st, s->future[st->W - 1], 1);
    }
    if (st->S) {
        hist_free(st, s);
        hist_extend_streams(st, s->li, s->n, s->resident);
    } else {
        hist_extend(st, s->exist_blocks, s->resident);
    }
    if (s->nresident > slots)
        return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: %u resident, "
                             "slots %u", s->li->layer, s->n, s->nresident, slots);

    uint32_t nonres;
    cutoff want = wanted_cutoff(st, slots, &nonres);
    /* Several streams and R < 1: the quota is per stream (listed in st->promote here);
     * with R = 1 every wanted block is promoted either way. */
    const int per_stream = st->S && st->R < 1;
    uint32_t p = per_stream ? quota_per_stream(st, s, want) : quota(st->R, nonres);
    if (p > 0) {
        /* p <= nonres <= slots - (wanted resident), so p - free <= the unwanted resident
         * blocks: the demotions below always find their blocks. */
        const uint32_t free_slots = slots - s->nresident;
        const uint32_t d = p > free_slots ? p - free_slots : 0;
        cutoff pro = per_stream ? (cutoff){1, 0, 0} : promote_cutoff(st, want, p);
        cutoff dem = {0, 0, 0};
        if (pro.level > st->W || (d > 0 && demote_cutoff(st, want, d, &dem) < 0))
            return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: histogram "
                                 "out of step", s->li->layer, s->n);
        /* Residents skipped at the demoted level before the unwanted ones start. */
        scan sc = {s, st, per_stream ? 0 : p, d, pro, dem,
                   dem.level == want.level ? want.res : 0, 0, 0, 0, 0,
                   hist_of(st, 0), hist_of(st, 1)};
        if ((rc = scan_blocks(&sc, err)) < 0)
            return rc;
        const uint32_t npro = per_stream ? p : sc.npro, ndem = sc.ndem;
        for (uint32_t i = 0; i < npro; i++) {
            uint32_t b = st->promote[i];
            if ((rc = kvp_step_promote(s, b)) < 0)
                return kvp_error_set(err, rc, "lookahead: layer %u step %u: cannot promote "
                                     "block %u", s->li->layer, s->n, b);
            sync_resident(st, b, s->resident);
            sc.hnon[f_of(st, b)]--;
            sc.hres[f_of(st, b)]++;
        }
        if (npro != p || ndem != d)
            return kvp_error_set(err, KVP_ECHECK, "lookahead: layer %u step %u: moved %u in "
                                 "and %u out, meant %u and %u", s->li->layer, s->n, npro,
                                 ndem, p, d);
    }
    rc = kvp_step_place_new_default(s);
    if (s->nnew <= 1 && s->new_block < s->li->nblocks)
        sync_resident(st, s->new_block, s->resident);
    for (uint32_t i = 0; s->nnew > 1 && i < s->nnew; i++)
        sync_resident(st, s->new_blocks[i], s->resident);
    if (st->below)
        rank_below(st, s);
    return rc;
}

const kvp_policy_ops kvp_policy_lookahead = {
    .name = "lookahead",
    .doc = "perfect foresight over W steps; promotes a share R of the wanted blocks",
    .params = lookahead_params,
    .nparams = sizeof lookahead_params / sizeof *lookahead_params,
    .caps = KVP_CAP_STREAMS | KVP_CAP_WEIGHT_BLIND, /* reads the model's tiers alone */
    .lookahead = lookahead_window,
    .init = lookahead_init,
    .step = lookahead_step,
    .free = lookahead_free,
};
