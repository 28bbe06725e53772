/*
 * `sa`: the study's simulated annealing over the (W, R) of `lookahead` (Fang et al. 2025,
 * arXiv 2508.13231; docs/MODEL.md §5).  Every point it evaluates is one full lookahead run,
 * memoised; the result is the best point's lookahead result, byte for byte, with policy "sa".
 *
 * Moves: W by +-1 or +-2 (probability 0.4), R by +-0.1 (0.4), both (0.2); a proposal that
 * leaves [1, W_max] x [0, 1] is drawn again (it costs nothing).  Acceptance: Metropolis,
 * exp(-dT / C) with dT in seconds.  Initial temperature: C0 = mean(dT > 0) / -ln(0.8) over
 * `moves` random neighbours of the start, so that a typical uphill move is accepted with
 * probability 0.8 at first.  Cooling: C *= 0.9 per level of `moves` proposals.  Stop when a
 * level improves the best by less than 0.1%, when C < C0 * 1e-3, or when `budget` distinct
 * points have been evaluated.  docs/POLICIES.md has the reasons for each choice.
 */
#include "report/checkpoint.h"
#include "base/error.h"
#include "engine/runner.h"
#include "policy/lookahead_grid.h"
#include "trace/trace.h"
#include "trace/trace_cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_WMAX, P_W0, P_R0, P_MOVES, P_BUDGET, P_SEED };

static const kvp_policy_param sa_params[] = {
    {"W_max", 64, 1, 1024, 1, "largest look-ahead window searched (steps)"},
    {"W0", 16, 1, 1024, 1, "starting window (steps)"},
    {"R0", 0.5, 0, 1, 0, "starting migration fraction (rounded to the 0.1 grid)"},
    {"moves", 6, 1, 1000, 1, "proposals per temperature level"},
    {"budget", 40, 1, 100000, 1, "most distinct (W, R) points evaluated"},
    {"seed", 1, 0, 9007199254740992.0, 1, "seed of the search's random choices"},
};

#define SA_R_STEPS 10      /* R on a 0.1 grid: r / 10 */
#define SA_ACCEPT0 0.8     /* initial acceptance of an uphill move */
#define SA_COOLING 0.9
#define SA_MIN_GAIN 0.001  /* stop when a level improves the best by less than 0.1% */
#define SA_FLOOR 1e-3      /* temperature floor, relative to C0 */

extern const kvp_policy_ops kvp_policy_lookahead;
extern const kvp_policy_ops kvp_policy_sa;

/* The searches of several accountings of one run (src/engine/runner.h, kvp_accts), one
 * after the other: a grid pass of search j runs its points for accountings j.. at once (the
 * same placements, a time per accounting), so that a later search finds in `got` the points
 * an earlier one ran, and takes them as computed ahead (HAVE_AHEAD below): counted when it
 * reaches them, as if it had run them itself.  One accounting: a search alone. */
typedef struct sa_shared {
    const kvp_accts *ac;
    size_t cells;     /* (wmax) x (SA_R_STEPS + 1) */
    kvp_result *memo; /* [accounting * cells + cell] */
    uint8_t *got;     /* [accounting * cells + cell]: 1 once a pass has filled memo's cell */
    /* Riders (src/policy/policy.h): lookahead specs of the caller's list run in the first
     * search's level-0 pass, their results into rres[accounting * nriders + k]. */
    const kvp_policy_spec *riders;
    size_t nriders;
    kvp_result *rres;
} sa_shared;

typedef struct sa_state {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_run_options *ro;
    uint32_t wmax, budget;
    const sa_shared *sh;
    uint32_t acct;    /* this search's accounting: sh->ac->sc[acct] is sc */
    kvp_result *memo; /* this accounting's cells of sh->memo */
    uint8_t *got;     /* and of sh->got */
    uint8_t *have;    /* per memo cell: HAVE_NONE, HAVE_SAVED, HAVE_AHEAD or HAVE_DONE */
    uint32_t evals;
    kvp_checkpoint *ck; /* NULL: no checkpoint */
    size_t ck_run;
    uint64_t rng;
    kvp_sa_event ev;
    /* The chain as it stands when a move's proposal is evaluated (walk_on), for the pass
     * that runs it to run the points the chain may propose next too (follow). */
    struct chain_at {
        uint32_t w, r, level, i, moves;
        double tcur, tbest, level_start, c, c0; /* NAN: not known */
        uint64_t rng;
    } walk;
    int walk_on;
} sa_state;

static uint64_t next_u64(uint64_t *s)
{
    /* splitmix64: small, well mixed, and the same on every platform */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

/* A memo cell is unknown, or known from a checkpoint but not yet reached by this search, or
 * computed ahead (below) but not yet reached, or evaluated (reached).  A saved or
 * computed-ahead point counts as an evaluation only when the search first reaches it,
 * exactly when a search without them would have run it, so the budget stops a resumed search
 * at the same place, and a checkpoint gets each point when it is reached. */
enum { HAVE_NONE, HAVE_SAVED, HAVE_AHEAD, HAVE_DONE };

/* R steps computed ahead on each side of a point run: the grid's pass serves several R of
 * one W for little more than one (docs/PERF.md §17), and 0.4 of the moves change R alone. */
#define SA_AHEAD 1

/* The accountings this search's passes serve: its own and those of the searches after it. */
static kvp_accts later_accts(const sa_state *st)
{
    kvp_accts ac;
    memset(&ac, 0, sizeof ac);
    for (uint32_t j = st->acct; j < st->sh->ac->n; j++)
        ac.sc[ac.n++] = st->sh->ac->sc[j];
    return ac;
}

/* A pass's results for the memo cells cell[0..n) into those cells of each accounting it
 * served (res: stride results per accounting, the cells' first). */
static void keep_points(sa_state *st, const size_t *cell, uint32_t n, const kvp_result *res,
                        size_t stride)
{
    for (uint32_t j = st->acct; j < st->sh->ac->n; j++)
        for (uint32_t k = 0; k < n; k++) {
            const size_t c = j * st->sh->cells + cell[k];
            st->sh->memo[c] = res[(j - st->acct) * stride + k];
            st->sh->got[c] = 1;
        }
}

/* The memo cell of (w, r): cell c is (W, R) = (c / 11 + 1, c % 11 / 10). */
static size_t cell_of(uint32_t w, uint32_t r) { return (size_t)(w - 1) * (SA_R_STEPS + 1) + r; }

/* Most cells of one grid pass: level 0's points with their R steps on either side. */
#define SA_LEVEL0_MAX 16 /* level 0's samples at most (a larger `moves` goes point by point) */
#define SA_PASS_MAX ((SA_LEVEL0_MAX + 1) * (2 * SA_AHEAD + 1))

/* A list of memo cells (cell_of) for one grid pass. */
typedef struct cells {
    size_t c[SA_PASS_MAX];
    uint32_t n;
} cells;

/* Adds (w, r) to the list if no search has it and it is not listed yet. */
static void add_cell(const sa_state *st, cells *l, uint32_t w, uint32_t r)
{
    const size_t c = cell_of(w, r);
    for (uint32_t j = 0; j < l->n; j++)
        if (l->c[j] == c)
            return;
    if (l->n < SA_PASS_MAX && st->have[c] == HAVE_NONE && !st->got[c])
        l->c[l->n++] = c;
}

/* (w, r) and the R steps on either side of it. */
static void add_row(const sa_state *st, cells *l, uint32_t w, uint32_t r, uint32_t ahead)
{
    const uint32_t lo = r > ahead ? r - ahead : 0;
    const uint32_t hi = r + ahead < SA_R_STEPS ? r + ahead : SA_R_STEPS;
    add_cell(st, l, w, r); /* first: the point the search needs now */
    for (uint32_t k = lo; k <= hi; k++)
        add_cell(st, l, w, k);
}

/* Runs the cells of l in one pass of the lookahead grid (all their W at once) and keeps
 * their results for every accounting the pass serves; each is then computed ahead (`got`):
 * a search counts it when it reaches it.  With `riders`, the riders' specs too (the first
 * search's level 0 serves every accounting), their results into sh->rres. */
static int run_cells(sa_state *st, const cells *l, int riders, kvp_error *err)
{
    const size_t nr = riders ? st->sh->nriders : 0, n = l->n + nr;
    if (n == 0)
        return 0;
    if (st->ro && st->ro->cancel && *st->ro->cancel)
        return kvp_error_set(err, KVP_EINTR, "sa: interrupted after %u evaluations",
                             st->evals);
    kvp_policy_spec *ps = malloc(n * sizeof *ps);
    kvp_result *res = malloc(n * KVP_ACCTS_MAX * sizeof *res);
    int rc = ps && res ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (uint32_t j = 0; j < l->n && rc >= 0; j++) {
        char spec[64];
        snprintf(spec, sizeof spec, "lookahead:W=%zu:R=%.1f", l->c[j] / (SA_R_STEPS + 1) + 1,
                 (double)(l->c[j] % (SA_R_STEPS + 1)) / SA_R_STEPS);
        rc = kvp_policy_parse(&ps[j], spec, err);
    }
    for (size_t k = 0; k < nr && rc >= 0; k++)
        ps[l->n + k] = st->sh->riders[k];
    const kvp_accts ac = later_accts(st);
    if (rc >= 0)
        rc = kvp_lookahead_grid_accts(&ac, st->tr, ps, n, st->ro, res, err);
    if (rc >= 0)
        keep_points(st, l->c, l->n, res, n);
    for (uint32_t a = st->acct; rc >= 0 && a < st->sh->ac->n; a++)
        for (size_t k = 0; k < nr; k++)
            st->sh->rres[a * nr + k] = res[(a - st->acct) * n + l->n + k];
    free(ps);
    free(res);
    return rc;
}

static void propose(uint64_t *rng, uint32_t wmax, uint32_t w, uint32_t r, uint32_t *nw,
                    uint32_t *nr);

/* The time of (w, r) if this search has it (run, saved or computed ahead), else NAN. */
static double known_time(const sa_state *st, uint32_t w, uint32_t r)
{
    const size_t i = cell_of(w, r);
    return st->have[i] != HAVE_NONE || st->got[i] ? st->memo[i].total_time_s : NAN;
}

/* Points computed ahead by following the chain (follow): the most in one pass, the most
 * moves whose acceptance is not known yet that a path crosses, the most moves a path takes.
 * Where a pass reads a trace cache (one stream) it costs little more than its points, and
 * points that may not be reached are not worth their cost (docs/PERF.md §51): there only the
 * next proposal either way (one move, one fork, two points). */
typedef struct follow_limits {
    uint32_t points, forks, moves;
} follow_limits;
static const follow_limits SA_FOLLOW[2] = {
    {6, 2, 24}, /* the trace made again each pass (streams) */
    {2, 1, 1},  /* a trace cache */
};

/* The chain's possible futures after the proposal (pw, pr) of state a (its time tp, NAN if
 * not known): the acceptance drawn as sa_search draws it, taken where the times decide it,
 * both ways where they do not (at most `forks` times a path), for `moves` moves; each next
 * proposal that no search has is added to l, up to `room` of them.  The search's own draws
 * are not taken (a works on a copy); points computed ahead count only when the search
 * reaches them, so whatever this adds changes what a pass runs, never the search's path or
 * result. */
static void follow(sa_state *st, cells *l, struct chain_at a, uint32_t pw, uint32_t pr,
                   double tp, uint32_t forks, uint32_t moves, uint32_t room)
{
    if (moves == 0 || l->n >= room)
        return;
    const double u = uniform(&a.rng);
    const int decided = !isnan(tp) && !isnan(a.tcur);
    const int accept = decided && (tp <= a.tcur || u < exp(-(tp - a.tcur) / a.c));
    for (int way = 1; way >= 0; way--) {
        if (decided ? way != accept : forks == 0)
            continue;
        struct chain_at b = a;
        if (way) {
            b.w = pw;
            b.r = pr;
            b.tcur = tp;
        }
        b.tbest = isnan(tp) || isnan(b.tbest) ? NAN : tp < b.tbest ? tp : b.tbest;
        if (++b.i == b.moves) { /* the level's end, as sa_search */
            if (!isnan(b.level_start) && !isnan(b.tbest) &&
                (b.level_start - b.tbest) / b.level_start < SA_MIN_GAIN)
                continue;
            b.c *= SA_COOLING;
            if (b.c < b.c0 * SA_FLOOR)
                continue;
            b.level++;
            b.i = 0;
            b.level_start = b.tbest;
        }
        uint32_t nw, nr;
        propose(&b.rng, st->wmax, b.w, b.r, &nw, &nr);
        const double t = known_time(st, nw, nr);
        if (isnan(t))
            add_cell(st, l, nw, nr);
        follow(st, l, b, nw, nr, t, decided ? forks : forks - 1, moves - 1, room);
    }
}

/* Runs (w, r), which no search has, in one pass of the lookahead grid with the R steps on
 * either side not yet known (the grid serves several R of a W for little more than one),
 * and, when the chain is moving (st->walk), the points it may propose next (follow). */
static int run_points(sa_state *st, uint32_t w, uint32_t r, kvp_error *err)
{
    cells l = {.n = 0};
    /* Ahead only when the budget leaves room for them to be reached. */
    const uint32_t left = st->budget - st->evals - 1;
    add_row(st, &l, w, r, left ? SA_AHEAD : 0);
    if (st->walk_on && left) {
        const follow_limits *f = &SA_FOLLOW[kvp_trace_is_cache(st->tr) != 0];
        const uint32_t room = l.n + (left < f->points ? left : f->points);
        follow(st, &l, st->walk, w, r, NAN, f->forks, f->moves, room);
    }
    return run_cells(st, &l, 0, err);
}

/* Whether level 0 runs in one grid pass (run_level0). */
static int level0_takes(const kvp_scenario *sc, const kvp_trace *tr, uint32_t moves,
                        const kvp_run_options *ro)
{
    return moves <= SA_LEVEL0_MAX && kvp_lookahead_grid_takes(sc, tr, ro);
}

/* Level 0 in one grid pass: its points, the start and the `moves` samples drawn around it,
 * depend on the start and the search's random draws only (the chain does not move in level
 * 0), so they are known before any is run.  The unknown ones among the first the budget
 * reaches, each with the R steps on either side (as run_points), are run in one pass of the
 * grid for all their W, and taken as computed ahead: counted when the search reaches them,
 * so that its path, evaluations and result are those of a search that runs them one pass at
 * a time.  The first search's pass also runs the riders.  Nothing to do where the grid does
 * not run. */
static int run_level0(sa_state *st, uint32_t w, uint32_t r, uint32_t moves, kvp_error *err)
{
    if (!level0_takes(st->sc, st->tr, moves, st->ro))
        return 0;
    uint32_t pw[SA_LEVEL0_MAX + 1], pr[SA_LEVEL0_MAX + 1], np = 0;
    const uint64_t rng = st->rng; /* the search draws the same samples again */
    for (uint32_t i = 0; i <= moves; i++) {
        uint32_t nw = w, nr = r;
        if (i)
            propose(&st->rng, st->wmax, w, r, &nw, &nr);
        uint32_t k = 0;
        while (k < np && (pw[k] != nw || pr[k] != nr))
            k++;
        if (k == np && np < st->budget - st->evals) { /* distinct, and the budget reaches it */
            pw[np] = nw;
            pr[np++] = nr;
        }
    }
    st->rng = rng;
    const uint32_t ahead = np < st->budget - st->evals ? SA_AHEAD : 0;
    cells l = {.n = 0};
    for (uint32_t k = 0; k < np; k++)
        add_row(st, &l, pw[k], pr[k], ahead);
    return run_cells(st, &l, st->acct == 0, err);
}

/* Returns 1 and the time, 0 when the budget is spent, or < 0. */
static int evaluate(sa_state *st, uint32_t w, uint32_t r, double *t, kvp_error *err)
{
    size_t i = cell_of(w, r);
    if (st->have[i] == HAVE_NONE && st->got[i]) /* an earlier accounting's search ran it */
        st->have[i] = HAVE_AHEAD;
    if (st->have[i] == HAVE_SAVED || st->have[i] == HAVE_AHEAD) {
        if (st->evals >= st->budget)
            return 0;
        int rc = 0;
        if (st->have[i] == HAVE_AHEAD && st->ck)
            rc = kvp_ck_add(st->ck, st->ck_run, w, r, &st->memo[i], err);
        if (rc < 0)
            return rc;
        st->have[i] = HAVE_DONE;
        st->evals++;
    } else if (st->have[i] == HAVE_NONE) {
        if (st->evals >= st->budget)
            return 0;
        if (st->ro && st->ro->cancel && *st->ro->cancel)
            return kvp_error_set(err, KVP_EINTR, "sa: interrupted after %u evaluations",
                                 st->evals);
        int rc = 0;
        /* The bitset run (src/policy/lookahead_grid.c) gives the engine's result, faster;
         * a run it does not take (checked, more than two tiers, streams that do not all
         * decode every step) is the engine's own. */
        if (!kvp_lookahead_grid_takes(st->sc, st->tr, st->ro)) {
            char spec[64];
            snprintf(spec, sizeof spec, "lookahead:W=%u:R=%.1f", w, r / (double)SA_R_STEPS);
            kvp_policy_spec ps;
            kvp_result res[KVP_ACCTS_MAX];
            const kvp_accts ac = later_accts(st);
            rc = kvp_policy_parse(&ps, spec, err);
            if (rc >= 0)
                rc = kvp_engine_run_accts(&ac, st->tr, &ps, st->ro, res, err);
            if (rc >= 0)
                keep_points(st, &i, 1, res, 1);
        } else {
            rc = run_points(st, w, r, err);
        }
        if (rc >= 0 && st->ck)
            rc = kvp_ck_add(st->ck, st->ck_run, w, r, &st->memo[i], err);
        if (rc < 0)
            return rc;
        st->have[i] = HAVE_DONE;
        st->evals++;
    }
    *t = st->memo[i].total_time_s;
    return 1;
}

static void log_event(sa_state *st)
{
    if (st->ro && st->ro->sa_log)
        st->ro->sa_log(st->ro->sa_log_user, &st->ev);
}

/* Draws a neighbour of (w, r) inside the box (W up to wmax) from rng. */
static void propose(uint64_t *rng, uint32_t wmax, uint32_t w, uint32_t r, uint32_t *nw,
                    uint32_t *nr)
{
    static const int dw[] = {-2, -1, 1, 2};
    for (;;) {
        double u = uniform(rng);
        long cw = w, cr = r;
        if (u < 0.4 || u >= 0.8)
            cw += dw[next_u64(rng) % 4];
        if (u >= 0.4)
            cr += next_u64(rng) % 2 ? 1 : -1;
        if (cw >= 1 && cw <= (long)wmax && cr >= 0 && cr <= SA_R_STEPS) {
            *nw = (uint32_t)cw;
            *nr = (uint32_t)cr;
            return;
        }
    }
}

/* The search of accounting acct of sh (the points earlier searches ran are in sh). */
static int sa_search(const sa_shared *sh, uint32_t acct, const kvp_trace *tr,
                     const kvp_policy_spec *ps, const kvp_run_options *ro, kvp_result *res,
                     kvp_error *err)
{
    const kvp_scenario *sc = sh->ac->sc[acct];
    sa_state st;
    memset(&st, 0, sizeof st);
    st.sc = sc;
    st.tr = tr;
    st.ro = ro;
    st.wmax = (uint32_t)ps->value[P_WMAX];
    st.budget = (uint32_t)ps->value[P_BUDGET];
    st.rng = (uint64_t)ps->value[P_SEED];
    st.sh = sh;
    st.acct = acct;
    st.memo = sh->memo + acct * sh->cells;
    st.got = sh->got + acct * sh->cells;
    uint32_t moves = (uint32_t)ps->value[P_MOVES];
    uint32_t w = (uint32_t)ps->value[P_W0];
    uint32_t r = (uint32_t)lround(ps->value[P_R0] * SA_R_STEPS);
    st.have = calloc(sh->cells, 1);
    if (!st.have)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    int rc = 0;
    if (ro && ro->checkpoint) {
        /* Points outside this search's box (a larger W_max saved them) are never reached. */
        st.ck = ro->checkpoint;
        if ((rc = kvp_ck_run(st.ck, sc, tr, &st.ck_run, err)) < 0)
            goto done;
        for (size_t k = 0; k < kvp_ck_nrec(st.ck, st.ck_run); k++) {
            uint32_t cw, cr;
            kvp_result cres;
            kvp_ck_rec(st.ck, st.ck_run, k, &cw, &cr, &cres);
            if (cw > st.wmax || cr > SA_R_STEPS)
                continue;
            size_t i = cell_of(cw, cr);
            st.memo[i] = cres;
            st.have[i] = HAVE_SAVED;
        }
    }

    double tcur, tbest;
    uint32_t bw = w, br = r;
    if ((rc = run_level0(&st, w, r, moves, err)) < 0)
        goto done;
    rc = evaluate(&st, w, r, &tcur, err);
    if (rc <= 0)
        goto done;
    tbest = tcur;
    st.ev = (kvp_sa_event){0, 0, 0.0, w, r / (double)SA_R_STEPS, tcur, 1, tbest, st.evals};
    log_event(&st);

    /* Initial temperature from the uphill moves around the start. */
    double up_sum = 0;
    uint32_t up_n = 0;
    for (uint32_t i = 0; i < moves; i++) {
        uint32_t nw, nr;
        double t;
        propose(&st.rng, st.wmax, w, r, &nw, &nr);
        if ((rc = evaluate(&st, nw, nr, &t, err)) < 0)
            goto done;
        if (rc == 0)
            break;
        if (t > tcur) {
            up_sum += t - tcur;
            up_n++;
        }
        if (t < tbest) {
            tbest = t;
            bw = nw;
            br = nr;
        }
        /* Level 0: samples for the initial temperature, not moves of the chain. */
        st.ev = (kvp_sa_event){0, i + 1, 0.0, nw, nr / (double)SA_R_STEPS, t, 0, tbest,
                               st.evals};
        log_event(&st);
    }
    /* No uphill neighbour: the landscape is flat here; start at 0.1% of the time. */
    double c0 = up_n ? (up_sum / up_n) / -log(SA_ACCEPT0) : tcur * SA_MIN_GAIN;
    double c = c0;
    uint32_t level = 0;
    rc = 1;
    while (rc > 0) {
        double level_start = tbest;
        level++;
        for (uint32_t i = 0; i < moves; i++) {
            uint32_t nw, nr;
            double t;
            propose(&st.rng, st.wmax, w, r, &nw, &nr);
            st.walk = (struct chain_at){w, r, level, i, moves, tcur, tbest, level_start, c, c0,
                                        st.rng};
            st.walk_on = 1;
            rc = evaluate(&st, nw, nr, &t, err);
            st.walk_on = 0;
            if (rc <= 0)
                break;
            double u = uniform(&st.rng); /* drawn every time: the stream never forks */
            int accept = t <= tcur || u < exp(-(t - tcur) / c);
            if (t < tbest) {
                tbest = t;
                bw = nw;
                br = nr;
            }
            st.ev = (kvp_sa_event){level, i + 1, c, nw, nr / (double)SA_R_STEPS, t, accept,
                                   tbest, st.evals};
            log_event(&st);
            if (accept) {
                w = nw;
                r = nr;
                tcur = t;
            }
        }
        if (rc <= 0)
            break;
        if ((level_start - tbest) / level_start < SA_MIN_GAIN)
            break;
        c *= SA_COOLING;
        if (c < c0 * SA_FLOOR)
            break;
    }
    if (rc < 0)
        goto done;
    rc = 0;
    *res = st.memo[cell_of(bw, br)];
    snprintf(res->policy, sizeof res->policy, "sa");
    snprintf(res->params, sizeof res->params, "lookahead:W=%u:R=%.1f", bw,
             br / (double)SA_R_STEPS);
    res->sa_evaluations = st.evals;
done:
    free(st.have);
    return rc;
}

/* The searches of every accounting of ac, res[j] that of ac->sc[j], each exactly what a
 * search of its own gives: the same path (a point counts when the search reaches it,
 * whoever ran it), the same evaluations, the same result. */
static int sa_riders(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                     const kvp_run_options *ro, kvp_result *res,
                     const kvp_policy_spec *riders, size_t nriders, kvp_result *rres,
                     kvp_error *err)
{
    const uint32_t wmax = (uint32_t)ps->value[P_WMAX], w0 = (uint32_t)ps->value[P_W0];
    if (w0 > wmax)
        return kvp_error_set(err, KVP_EINVAL, "policy sa: W0=%u exceeds W_max=%u", w0, wmax);
    if (ac->n > 1 && ro && ro->checkpoint)
        return kvp_error_set(err, KVP_EINVAL, "policy sa: a checkpoint keeps one "
                             "accounting's search at a time");
    sa_shared sh = {ac, (size_t)wmax * (SA_R_STEPS + 1), NULL, NULL, riders, nriders, rres};
    sh.memo = calloc(sh.cells * ac->n, sizeof *sh.memo);
    sh.got = calloc(sh.cells * ac->n, 1);
    int rc = sh.memo && sh.got ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (uint32_t j = 0; j < ac->n && rc >= 0; j++)
        rc = sa_search(&sh, j, tr, ps, ro, &res[j], err);
    free(sh.memo);
    free(sh.got);
    return rc;
}

static int sa_run_accts(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                        const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    return sa_riders(ac, tr, ps, ro, res, NULL, 0, NULL, err);
}

/* Riders (src/policy/policy.h): when level 0 runs in one grid pass, the first search's
 * level-0 pass runs them too, for every accounting. */
static int sa_takes_riders(const kvp_scenario *sc, const kvp_trace *tr,
                           const kvp_policy_spec *ps, const kvp_run_options *ro)
{
    return ps->ops == &kvp_policy_sa && level0_takes(sc, tr, (uint32_t)ps->value[P_MOVES], ro);
}

static int sa_run_riders(const kvp_accts *ac, const kvp_trace *tr, const kvp_policy_spec *ps,
                         const kvp_run_options *ro, kvp_result *res,
                         const kvp_policy_spec *riders, size_t nriders, kvp_result *rres,
                         kvp_error *err)
{
    if (!sa_takes_riders(ac->sc[0], tr, ps, ro) || !kvp_lookahead_grid_all(riders, nriders))
        return kvp_error_set(err, KVP_EINVAL, "sa: riders are lookahead specs, on a run whose "
                             "level 0 is one grid pass");
    return sa_riders(ac, tr, ps, ro, res, riders, nriders, rres, err);
}

static int sa_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                  const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    const kvp_accts ac = kvp_accts_one(sc);
    return sa_run_accts(&ac, tr, ps, ro, res, err);
}

const kvp_policy_ops kvp_policy_sa = {
    .name = "sa",
    .doc = "the study's upper bound: simulated annealing over lookahead's (W, R)",
    .params = sa_params,
    .nparams = sizeof sa_params / sizeof *sa_params,
    .caps = KVP_CAP_MANY_PASSES | KVP_CAP_STREAMS,
    .run = sa_run,
    .run_accts = sa_run_accts,
    .takes_riders = sa_takes_riders,
    .run_riders = sa_run_riders,
};
