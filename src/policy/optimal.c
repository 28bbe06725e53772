/*
 * `optimal`: the exact optimum of the integer program of docs/BOUNDS.md on small cases,
 * solved with GLPK, and `optimal:relax=1`, the value of its linear relaxation (a lower bound, not a
 * placement).  docs/BOUNDS.md "Exact optima" writes the model out.
 *
 * Per layer, at token granularity: y(x, n) = 1 if token x is in HBM after the placement of
 * step n (n = -1: the initial placement, free); p(x, n) >= y(x, n) - y(x, n-1) and
 * d(x, n) >= y(x, n-1) - y(x, n) are the promotions and demotions (they cost, so they are
 * tight at the optimum); t(n) = w + s(n), s(n) >= 0 above each of the four terms of the step's
 * max.  Times are in units of tok_bytes / hbm_bandwidth (one token through HBM), so that the
 * coefficients are the bandwidth ratios and GLPK sees numbers near 1.
 *
 * The MIP's placement is replayed through the engine (src/policy/schedule.h) and the engine's
 * result is reported: the solver's objective must equal it, or the model is wrong.
 */
#include "policy/optimal.h"
#include "engine/runner.h"
#include "policy/schedule.h"
#include "trace/trace.h"

#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_RELAX, P_TLIM };

static const kvp_policy_param optimal_params[] = {
    {"relax", 0, 0, 1, 1, "1: the linear relaxation's value, a lower bound (not a placement)"},
    {"tlim", 60, 0.001, 86400, 0, "GLPK's time limit per layer, seconds (reached: an error)"},
};

/* One layer's model: the access sets read from the trace, then the columns and rows. */
typedef struct model {
    uint32_t P, N, slots;
    /* Streams (docs/MODEL.md "Streams"): token x is position x / ns of stream x % ns, whose
     * prompt and steps are sprompt[], ssteps[] (ns = 1, NULL: one stream); C token ids in
     * all, P + N with one stream, ns x the longest stream's positions with several. */
    uint32_t ns, C;
    const uint32_t *sprompt, *ssteps;
    uint8_t *read;  /* read[n * C + x]: x in A(n) */
    uint32_t *nread; /* |A(n)| */
    double wt;       /* w_layer in units: w_layer / tok_bytes */
    double kd;       /* hbm_bandwidth / dram_bandwidth (two tiers; link 1: ku[1], kdn[1]) */
    /* 1-based GLPK columns: y(x, n) at ycol[n + 1] + x (x < P + n + 1; P at n = -1),
     * p(x, n) at pcol[n] + x, d(x, n) at dcol[n] + x (x < P + n), s(n) at scol + n. */
    int *ycol, *pcol, *dcol, scol, ncols;
    glp_prob *lp;
    /* More than two tiers (build_tiers): K tiers, their slots and bandwidth ratios
     * hbm_bandwidth / bandwidth[k], each tier's link and the links' ratios each way.  Then
     * y(x, n, k) is at ycol[n + 1] + x K + k, tokens moved into (out of) tier k at step n at
     * pcol[n] + x K + k (dcol[n] + x K + k). */
    uint32_t K;
    uint32_t tslots[KVP_MAX_TIERS], link[KVP_MAX_TIERS];
    double kt[KVP_MAX_TIERS], ku[KVP_MAX_TIERS], kdn[KVP_MAX_TIERS];
} model;

static void model_free(model *m)
{
    free(m->read);
    free(m->nread);
    free(m->ycol);
    free(m->pcol);
    free(m->dcol);
    if (m->lp)
        glp_delete_prob(m->lp);
    memset(m, 0, sizeof *m);
}

/* Token ids that the columns of step n1 (the placement of step n1 - 1; 0: the initial one)
 * cover: P + n1, or with streams every id (those of tokens not there then are fixed at 0). */
static uint32_t ids(const model *m, uint32_t n1)
{
    return m->ns > 1 ? m->C : m->P + n1;
}

/* 1 if token x is there after the placement of step n1 - 1: written, and its sequence not
 * finished before step n1 - 1 (docs/MODEL.md "Streams": a finished one's tokens leave). */
static int live(const model *m, uint32_t x, uint32_t n1)
{
    if (m->ns <= 1)
        return x < m->P + n1;
    const uint32_t i = x % m->ns;
    return n1 <= m->ssteps[i] && x / m->ns < m->sprompt[i] + n1;
}

/* 1 if token x is there before and after step n: it may be read and moved at step n. */
static int moves(const model *m, uint32_t x, uint32_t n)
{
    return live(m, x, n) && (m->ns <= 1 || n < m->ssteps[x % m->ns]);
}

/* The tokens that step n writes (one per decoding stream), into out; their count. */
static uint32_t new_tokens(const model *m, uint32_t n, uint32_t *out)
{
    if (m->ns <= 1) {
        out[0] = m->P + n;
        return 1;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < m->ns; i++)
        if (n < m->ssteps[i])
            out[k++] = (m->sprompt[i] + n) * m->ns + i;
    return k;
}

/* (P + N) * N, the size the limits are stated in (with streams: all token ids x N). */
static uint64_t cells(uint32_t P, uint32_t N)
{
    return ((uint64_t)P + N) * N;
}

static int check_size(const kvp_trace *tr, uint32_t L, kvp_error *err)
{
    uint32_t P = kvp_trace_prompt(tr), N = kvp_trace_steps(tr);
    const kvp_streams *si = kvp_trace_streams(tr);
    uint64_t c = si ? (uint64_t)si->n * si->positions * N : cells(P, N);
    if (si && (c > KVP_OPTIMAL_MAX_CELLS || c * L > KVP_OPTIMAL_MAX_TOTAL_CELLS))
        return kvp_error_set(err, KVP_EINVAL, "optimal: %s is too large for the exact solver: "
                             "%u streams x up to %u positions x steps %u = %llu per layer (at "
                             "most %u), x %u layers = %llu (at most %u); see docs/BOUNDS.md",
                             kvp_trace_name(tr), si->n, si->positions, N,
                             (unsigned long long)c, KVP_OPTIMAL_MAX_CELLS, L,
                             (unsigned long long)(c * L), KVP_OPTIMAL_MAX_TOTAL_CELLS);
    if (c > KVP_OPTIMAL_MAX_CELLS || c * L > KVP_OPTIMAL_MAX_TOTAL_CELLS)
        return kvp_error_set(err, KVP_EINVAL, "optimal: %s is too large for the exact solver: "
                             "(prompt %u + steps %u) x steps %u = %llu per layer (at most %u) "
                             ", x %u layers = %llu (at most %u); see docs/BOUNDS.md",
                             kvp_trace_name(tr), P, N, N, (unsigned long long)c,
                             KVP_OPTIMAL_MAX_CELLS, L, (unsigned long long)(c * L),
                             KVP_OPTIMAL_MAX_TOTAL_CELLS);
    return 0;
}

static int read_sets(model *m, const kvp_scenario *sc, const kvp_trace *tr, uint32_t layer,
                     kvp_error *err)
{
    const size_t C = m->C;
    m->read = calloc((size_t)m->N * C, 1);
    m->nread = calloc(m->N, sizeof *m->nread);
    if (!m->read || !m->nread)
        return kvp_error_set(err, KVP_ENOMEM, "optimal: out of memory for layer %u", layer);
    kvp_cursor *c = NULL;
    int rc = kvp_cursor_create(&c, tr, layer, kvp_scenario_budget(sc), err);
    if (rc < 0)
        return rc;
    kvp_cursor_sets_only(c);
    for (uint32_t n = 0; n < m->N; n++) {
        kvp_access a;
        int r = kvp_cursor_next(c, &a, err);
        if (r <= 0) {
            rc = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                           kvp_trace_name(tr));
            break;
        }
        for (uint32_t i = 0; i < a.count; i++) {
            if (a.pos[i] >= C || !moves(m, a.pos[i], n)) {
                rc = kvp_error_set(err, KVP_ECHECK, "%s: step %u layer %u reads position %u "
                                   "outside the context", kvp_trace_name(tr), n, layer,
                                   a.pos[i]);
                break;
            }
            m->read[n * C + a.pos[i]] = 1;
        }
        m->nread[n] = a.count;
        if (rc < 0)
            break;
    }
    kvp_cursor_free(c);
    return rc;
}

/* Appends one row: sum val[k] * col[k] >= lo (or <= hi when upper). */
static void add_row(glp_prob *lp, int cnt, const int *ind, const double *val, int upper,
                    double bound)
{
    int r = glp_add_rows(lp, 1);
    glp_set_row_bnds(lp, r, upper ? GLP_UP : GLP_LO, upper ? 0 : bound, upper ? bound : 0);
    glp_set_mat_row(lp, r, cnt, ind, val);
}

/* The problem and its columns, `per` of each kind per token (1, or K tiers): y at ycol[n + 1],
 * moves at pcol[n] and dcol[n], s at scol; and 1-based row and column buffers (GLPK's
 * convention) for the largest row, 2 (P + N) per + 2 entries, or a column, at most 11. */
static int layout(model *m, uint32_t per, int **ind, double **val)
{
    const uint32_t N = m->N;
    const size_t buf = 2 * (size_t)m->C * per + 16;
    m->ycol = malloc(((size_t)N + 1) * sizeof *m->ycol);
    m->pcol = malloc((size_t)N * sizeof *m->pcol);
    m->dcol = malloc((size_t)N * sizeof *m->dcol);
    *ind = malloc(buf * sizeof **ind);
    *val = malloc(buf * sizeof **val);
    m->lp = glp_create_prob();
    if (!m->ycol || !m->pcol || !m->dcol || !*ind || !*val || !m->lp) {
        free(*ind);
        free(*val);
        return -1;
    }
    glp_set_obj_dir(m->lp, GLP_MIN);
    int col = 1;
    for (uint32_t n1 = 0; n1 <= N; n1++) { /* n1 = n + 1 */
        m->ycol[n1] = col;
        col += (int)(ids(m, n1) * per);
    }
    for (uint32_t n = 0; n < N; n++) {
        m->pcol[n] = col;
        col += (int)(ids(m, n) * per);
        m->dcol[n] = col;
        col += (int)(ids(m, n) * per);
    }
    m->scol = col;
    col += (int)N;
    m->ncols = col - 1;
    glp_add_cols(m->lp, m->ncols);
    return 0;
}

/* Builds the model of one layer (the access sets must be read). */
static int build(model *m, int relax, kvp_error *err)
{
    const uint32_t N = m->N;
    const size_t C = m->C;
    int *ind;
    double *val;
    uint32_t *nw = malloc(((size_t)m->ns + 1) * sizeof *nw);
    if (!nw || layout(m, 1, &ind, &val) < 0) {
        free(nw);
        return kvp_error_set(err, KVP_ENOMEM, "optimal: out of memory for a model");
    }
    glp_prob *lp = m->lp;
    const int yend = m->ycol[N] + (int)ids(m, N); /* the first column after the y */
    for (int j = 1; j < m->scol; j++) {
        if (j < yend) {
            if (relax) {
                glp_set_col_bnds(lp, j, GLP_DB, 0, 1);
            } else {
                glp_set_col_kind(lp, j, GLP_BV);
            }
        } else {
            glp_set_col_bnds(lp, j, GLP_LO, 0, 0);
        }
    }
    for (uint32_t n = 0; n < N; n++) {
        glp_set_col_bnds(lp, m->scol + (int)n, GLP_LO, 0, 0);
        glp_set_obj_coef(lp, m->scol + (int)n, 1);
    }
    /* streams: the ids of tokens not there at a step are columns fixed at 0 (in no row) */
    for (uint32_t n1 = 0; m->ns > 1 && n1 <= N; n1++)
        for (uint32_t x = 0; x < ids(m, n1); x++)
            if (!live(m, x, n1))
                glp_set_col_bnds(lp, m->ycol[n1] + (int)x, GLP_FX, 0, 0);
    if (!relax) {
        /* A promotion from the step of a token's last read on only costs (no read is served
         * by it), and so does a never-read prompt token in the initial placement: some
         * optimum has neither, and fixing them prunes the search (docs/BOUNDS.md).  The
         * relaxation (relax=1) is left as the plain model's. */
        for (uint32_t x = 0; x < C; x++) {
            int64_t last = -1;
            for (uint32_t n = 0; n < N; n++)
                if (m->read[(size_t)n * C + x])
                    last = n;
            if (live(m, x, 0) && last < 0)
                glp_set_col_bnds(lp, m->ycol[0] + (int)x, GLP_FX, 0, 0);
            for (uint32_t n = last < 0 ? 0 : (uint32_t)last; n < N; n++)
                if (moves(m, x, n))
                    glp_set_col_bnds(lp, m->pcol[n] + (int)x, GLP_FX, 0, 0);
        }
    }

    /* Capacity: at most `slots` resident after each placement (the new token included). */
    for (uint32_t n1 = 0; n1 <= N; n1++) {
        uint32_t cnt = 0;
        for (uint32_t x = 0; x < ids(m, n1); x++)
            if (live(m, x, n1)) {
                ind[cnt + 1] = m->ycol[n1] + (int)x;
                val[++cnt] = 1;
            }
        if (cnt > m->slots)
            add_row(lp, (int)cnt, ind, val, 1, m->slots);
    }

    for (uint32_t n = 0; n < N; n++) {
        const uint8_t *rd = m->read + (size_t)n * C;
        const int yb = m->ycol[n], ya = m->ycol[n + 1]; /* before and after the step */
        const int pb = m->pcol[n], db = m->dcol[n], s = m->scol + (int)n;
        const uint32_t nnew = new_tokens(m, n, nw);
        /* The moves: p >= y(n) - y(n-1), d >= y(n-1) - y(n). */
        for (uint32_t x = 0; x < ids(m, n); x++) {
            if (!moves(m, x, n))
                continue;
            int i3[4] = {0, pb + (int)x, ya + (int)x, yb + (int)x};
            double v3[4] = {0, 1, -1, 1};
            add_row(lp, 3, i3, v3, 0, 0);
            i3[1] = db + (int)x;
            v3[2] = 1;
            v3[3] = -1;
            add_row(lp, 3, i3, v3, 0, 0);
        }
        /* HBM: s >= reads from HBM + demotions' unread rest + promotions + the new token. */
        int k = 0;
        ind[++k] = s;
        val[k] = 1;
        for (uint32_t x = 0; x < ids(m, n); x++) {
            if (!moves(m, x, n))
                continue;
            ind[++k] = rd[x] ? yb + (int)x : db + (int)x;
            val[k] = -1;
            ind[++k] = pb + (int)x;
            val[k] = -1;
        }
        for (uint32_t j = 0; j < nnew; j++) {
            ind[++k] = ya + (int)nw[j];
            val[k] = -1;
        }
        add_row(lp, k, ind, val, 0, 0);
        /* DRAM: s >= kd (|A| - reads from HBM + promotions' unread rest + demotions
         * + 1 - new in HBM) - w. */
        k = 0;
        ind[++k] = s;
        val[k] = 1;
        for (uint32_t x = 0; x < ids(m, n); x++) {
            if (!moves(m, x, n))
                continue;
            ind[++k] = rd[x] ? yb + (int)x : pb + (int)x;
            val[k] = rd[x] ? m->kd : -m->kd;
            ind[++k] = db + (int)x;
            val[k] = -m->kd;
        }
        for (uint32_t j = 0; j < nnew; j++) {
            ind[++k] = ya + (int)nw[j];
            val[k] = m->kd;
        }
        add_row(lp, k, ind, val, 0, m->kd * (m->nread[n] + (double)nnew) - m->wt);
        /* Link up: s >= ku (|A| - reads from HBM + promotions' unread rest) - w. */
        const double ku = m->ku[1], kdn = m->kdn[1];
        k = 0;
        ind[++k] = s;
        val[k] = 1;
        for (uint32_t x = 0; x < ids(m, n); x++) {
            if (!moves(m, x, n))
                continue;
            ind[++k] = rd[x] ? yb + (int)x : pb + (int)x;
            val[k] = rd[x] ? ku : -ku;
        }
        add_row(lp, k, ind, val, 0, ku * m->nread[n] - m->wt);
        /* Link down: s >= kdn (demotions + 1 - new in HBM) - w. */
        k = 0;
        ind[++k] = s;
        val[k] = 1;
        for (uint32_t x = 0; x < ids(m, n); x++) {
            if (!moves(m, x, n))
                continue;
            ind[++k] = db + (int)x;
            val[k] = -kdn;
        }
        for (uint32_t j = 0; j < nnew; j++) {
            ind[++k] = ya + (int)nw[j];
            val[k] = kdn;
        }
        add_row(lp, k, ind, val, 0, kdn * (double)nnew - m->wt);
    }
    /* glp_set_mat_row leaves each column's list of rows in descending order; GLPK's branch
     * and cut (its presolver and MIR cuts see the matrix through these lists) closes these
     * models far faster with them ascending: 1 x 40 x 12 cases that did not close in 20 s
     * close in 0.1-0.3 s (docs/BOUNDS.md).  Setting each column again reverses its list. */
    for (int j = 1; j <= m->ncols; j++) {
        int cnt = glp_get_mat_col(lp, j, ind, val);
        glp_set_mat_col(lp, j, cnt, ind, val);
    }
    free(ind);
    free(val);
    free(nw);
    return 0;
}

/* The model of more than two tiers (docs/BOUNDS.md "More than two tiers"): a binary per
 * token, step and tier, exactly one tier per token; in(x, n, k) >= y(x, n, k) - y(x, n-1, k)
 * and out(x, n, k) >= y(x, n-1, k) - y(x, n, k); per step, s(n) above every tier's term
 * (reads from it, unread tokens moved out, tokens moved in, the new token, over its
 * bandwidth) and every link's term each way (its tiers' reads up, writes down). */
static int build_tiers(model *m, int relax, kvp_error *err)
{
    const uint32_t P = m->P, N = m->N, K = m->K;
    const size_t C = (size_t)P + N;
    int *ind;
    double *val;
    if (layout(m, K, &ind, &val) < 0)
        return kvp_error_set(err, KVP_ENOMEM, "optimal: out of memory for a model");
    glp_prob *lp = m->lp;
    const int yend = m->ycol[N] + (int)((P + N) * K);
    for (int j = 1; j <= m->ncols; j++) {
        if (j < yend && !relax)
            glp_set_col_kind(lp, j, GLP_BV);
        else if (j < yend)
            glp_set_col_bnds(lp, j, GLP_DB, 0, 1);
        else
            glp_set_col_bnds(lp, j, GLP_LO, 0, 0);
    }
    for (uint32_t n = 0; n < N; n++)
        glp_set_obj_coef(lp, m->scol + (int)n, 1);
#define Y(n1, x, k) (m->ycol[n1] + (int)((x) * K + (k)))
    /* One tier per token; at most slots_k tokens in tier k. */
    for (uint32_t n1 = 0; n1 <= N; n1++) {
        for (uint32_t x = 0; x < P + n1; x++) {
            for (uint32_t k = 0; k < K; k++) {
                ind[k + 1] = Y(n1, x, k);
                val[k + 1] = 1;
            }
            int r = glp_add_rows(lp, 1);
            glp_set_row_bnds(lp, r, GLP_FX, 1, 1);
            glp_set_mat_row(lp, r, (int)K, ind, val);
        }
        for (uint32_t k = 0; k < K; k++) {
            if (P + n1 <= m->tslots[k])
                continue;
            for (uint32_t x = 0; x < P + n1; x++) {
                ind[x + 1] = Y(n1, x, k);
                val[x + 1] = 1;
            }
            add_row(lp, (int)(P + n1), ind, val, 1, m->tslots[k]);
        }
    }
    for (uint32_t n = 0; n < N; n++) {
        const uint8_t *rd = m->read + (size_t)n * C;
        const int s = m->scol + (int)n;
        for (uint32_t x = 0; x < P + n; x++)
            for (uint32_t k = 0; k < K; k++) {
                const int in = m->pcol[n] + (int)(x * K + k), out = m->dcol[n] + (int)(x * K + k);
                int i3[4] = {0, in, Y(n + 1, x, k), Y(n, x, k)};
                double v3[4] = {0, 1, -1, 1};
                add_row(lp, 3, i3, v3, 0, 0);
                i3[1] = out;
                v3[2] = 1;
                v3[3] = -1;
                add_row(lp, 3, i3, v3, 0, 0);
            }
        /* Tier k's reads (the set's tokens it held, the unread ones it gives up) and writes
         * (tokens moved in, the new token), in terms of tier k alone or of its link. */
        for (uint32_t part = 0; part < 2 * K + 2 * KVP_MAX_TIERS; part++) {
            int tier_row = part < K, up = 0;
            uint32_t k0 = 0, j = 0;
            double coef;
            if (tier_row) {
                k0 = part;
                coef = m->kt[k0];
            } else {
                uint32_t q = part - K;
                if (q >= 2 * KVP_MAX_TIERS)
                    break;
                j = q / 2;
                up = q % 2 == 0;
                coef = up ? m->ku[j] : m->kdn[j];
                int any = 0;
                for (uint32_t k = 1; k < K; k++)
                    any |= m->link[k] == j;
                if (j == 0 || !any)
                    continue;
            }
            int c = 0;
            ind[++c] = s;
            val[c] = 1;
            for (uint32_t k = 0; k < K; k++) {
                if (tier_row ? k != k0 : k == 0 || m->link[k] != j)
                    continue;
                for (uint32_t x = 0; x < P + n; x++) {
                    if (tier_row || up) { /* reads */
                        ind[++c] = rd[x] ? Y(n, x, k) : m->dcol[n] + (int)(x * K + k);
                        val[c] = -coef;
                    }
                    if (tier_row || !up) { /* writes */
                        ind[++c] = m->pcol[n] + (int)(x * K + k);
                        val[c] = -coef;
                    }
                }
                if (tier_row || !up) {
                    ind[++c] = Y(n + 1, P + n, k);
                    val[c] = -coef;
                }
            }
            add_row(lp, c, ind, val, 0, tier_row && k0 == 0 ? 0 : -m->wt);
        }
    }
#undef Y
    for (int j = 1; j <= m->ncols; j++) { /* ascending row lists, as build() */
        int cnt = glp_get_mat_col(lp, j, ind, val);
        glp_set_mat_col(lp, j, cnt, ind, val);
    }
    free(ind);
    free(val);
    return 0;
}

/* Reads the access sets of one layer and builds its model. */
static int model_init(model *m, const kvp_scenario *sc, const kvp_derived *d,
                      const kvp_trace *tr, uint32_t layer, int relax, kvp_error *err)
{
    memset(m, 0, sizeof *m);
    m->P = kvp_trace_prompt(tr);
    m->N = kvp_trace_steps(tr);
    m->ns = 1;
    m->C = m->P + m->N;
    const kvp_streams *si = kvp_trace_streams(tr);
    if (si) {
        m->ns = si->n;
        m->C = si->n * si->positions; /* within the cells checked by check_size */
        m->sprompt = si->prompt;
        m->ssteps = si->steps;
    }
    m->slots = kvp_slots(sc, d, 1);
    m->wt = d->w_layer / (double)d->tok_bytes;
    m->kd = sc->hbm_bandwidth / sc->dram_bandwidth;
    m->K = d->tiers;
    for (uint32_t k = 0; k < d->tiers; k++) {
        m->tslots[k] = k ? kvp_tier_slots(sc, d, 1, k) : m->slots;
        m->kt[k] = d->tier_bandwidth[0] / d->tier_bandwidth[k];
        m->link[k] = k ? d->tier_link[k] : 0;
    }
    for (uint32_t j = 1; j < KVP_MAX_TIERS; j++) {
        m->ku[j] = d->link_up[j] > 0 ? d->tier_bandwidth[0] / d->link_up[j] : 0;
        m->kdn[j] = d->link_down[j] > 0 ? d->tier_bandwidth[0] / d->link_down[j] : 0;
    }
    int rc = read_sets(m, sc, tr, layer, err);
    return rc < 0 ? rc : m->K > 2 ? build_tiers(m, relax, err) : build(m, relax, err);
}

typedef struct solve_ctx {
    volatile sig_atomic_t *cancel;
} solve_ctx;

static void on_node(glp_tree *tree, void *info)
{
    const solve_ctx *c = info;
    if (c->cancel && *c->cancel)
        glp_ios_terminate(tree);
}

/* Solves the layer's model; *obj receives its objective (units, without N w). */
static int solve(model *m, int relax, double tlim_s, volatile sig_atomic_t *cancel,
                 uint32_t layer, double *obj, kvp_error *err)
{
    int old = glp_term_out(GLP_OFF); /* the library never prints */
    int tm = (int)(tlim_s * 1000);
    int rc = 0;
    if (relax) {
        glp_smcp p;
        glp_init_smcp(&p);
        p.msg_lev = GLP_MSG_OFF;
        p.presolve = GLP_ON;
        p.tm_lim = tm;
        int r = glp_simplex(m->lp, &p);
        if (r == GLP_ETMLIM)
            rc = kvp_error_set(err, KVP_EINVAL, "optimal: the relaxation of layer %u was not "
                               "solved within tlim=%g s", layer, tlim_s);
        else if (r != 0 || glp_get_status(m->lp) != GLP_OPT)
            rc = kvp_error_set(err, KVP_ECHECK, "optimal: GLPK's simplex failed on layer %u "
                               "(code %d, status %d)", layer, r, glp_get_status(m->lp));
        else
            *obj = glp_get_obj_val(m->lp);
    } else {
        glp_iocp p;
        solve_ctx ctx = {cancel};
        glp_init_iocp(&p);
        p.msg_lev = GLP_MSG_OFF;
        p.presolve = GLP_ON;
        /* Without MIR cuts GLPK closes 1 layer x 40 tokens x 12 steps at 80% sparsity in
         * minutes, with them in about a second (docs/BOUNDS.md). */
        p.mir_cuts = GLP_ON;
        if (m->K > 2) /* one tier per token: branching on pseudocosts */
            p.br_tech = GLP_BR_PCH;
        p.tm_lim = tm;
        p.cb_func = on_node;
        p.cb_info = &ctx;
        int r = glp_intopt(m->lp, &p);
        if (r == GLP_ETMLIM)
            rc = kvp_error_set(err, KVP_EINVAL, "optimal: layer %u did not close within "
                               "tlim=%g s (no optimum proven; a smaller case or a larger tlim)",
                               layer, tlim_s);
        else if (r == GLP_ESTOP)
            rc = kvp_error_set(err, KVP_EINTR, "optimal: interrupted in layer %u", layer);
        else if (r != 0 || glp_mip_status(m->lp) != GLP_OPT)
            rc = kvp_error_set(err, KVP_ECHECK, "optimal: GLPK's branch and bound failed on "
                               "layer %u (code %d, status %d)", layer, r,
                               glp_mip_status(m->lp));
        else
            *obj = glp_mip_obj_val(m->lp);
    }
    glp_term_out(old);
    return rc;
}

/* The tier of token x after step n1 - 1 in the MIP's solution (more than two tiers). */
static uint32_t tier_of(const model *m, uint32_t n1, uint32_t x)
{
    for (uint32_t k = 0; k < m->K; k++)
        if (glp_mip_col_val(m->lp, m->ycol[n1] + (int)(x * m->K + k)) > 0.5)
            return k;
    return 0; /* not reached: one tier per token */
}

/* The same with more than two tiers: HBM's moves, then where each token goes below it. */
static int schedule_layer_tiers(const model *m, kvp_schedule *s, uint32_t layer,
                                kvp_error *err)
{
    const uint32_t P = m->P, N = m->N;
    int rc = 0;
    for (uint32_t x = 0; x < P && rc >= 0; x++) {
        uint32_t k = tier_of(m, 0, x);
        rc = k ? kvp_schedule_add_tier(s, layer, -1, x, k, err)
               : kvp_schedule_add(s, layer, -1, x, 1, err);
    }
    for (uint32_t n = 0; n < N && rc >= 0; n++)
        for (uint32_t x = 0; x <= P + n && rc >= 0; x++) {
            uint32_t before = x < P + n ? tier_of(m, n, x) : KVP_MAX_TIERS, after = tier_of(m, n + 1, x);
            if (before == after)
                continue;
            if (after == 0)
                rc = kvp_schedule_add(s, layer, n, x, 1, err);
            else if (before == 0)
                rc = kvp_schedule_add(s, layer, n, x, 0, err);
            if (rc >= 0 && after)
                rc = kvp_schedule_add_tier(s, layer, n, x, after, err);
        }
    return rc;
}

/* The MIP's placement of one layer into the schedule. */
static int schedule_layer(const model *m, kvp_schedule *s, uint32_t layer, kvp_error *err)
{
    const uint32_t N = m->N;
    int rc = 0;
    if (m->K > 2)
        return schedule_layer_tiers(m, s, layer, err);
    for (uint32_t x = 0; x < ids(m, 0) && rc >= 0; x++)
        if (live(m, x, 0) && glp_mip_col_val(m->lp, m->ycol[0] + (int)x) > 0.5)
            rc = kvp_schedule_add(s, layer, -1, x, 1, err);
    for (uint32_t n = 0; n < N && rc >= 0; n++) {
        const int yb = m->ycol[n], ya = m->ycol[n + 1];
        for (uint32_t x = 0; x < ids(m, n + 1) && rc >= 0; x++) {
            if (!live(m, x, n + 1)) /* not yet written, or its sequence finished */
                continue;
            int before = live(m, x, n) && glp_mip_col_val(m->lp, yb + (int)x) > 0.5;
            int after = glp_mip_col_val(m->lp, ya + (int)x) > 0.5;
            if (before != after)
                rc = kvp_schedule_add(s, layer, n, x, after, err);
        }
    }
    return rc;
}

static int optimal_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                       const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_derive_for(sc, tr, &d, err)) < 0 ||
        (rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    if ((rc = kvp_streams_fit(sc, tr, err)) < 0 ||
        (d.tiers > 2 && (rc = kvp_check_tier_capacity(sc, &d, tr, 1, err)) < 0))
        return rc;
    const uint32_t L = kvp_trace_layers(tr), N = kvp_trace_steps(tr);
    if ((rc = check_size(tr, L, err)) < 0)
        return rc;
    const int relax = ps->value[P_RELAX] != 0;
    const double tlim = ps->value[P_TLIM];
    const double unit = (double)d.tok_bytes / sc->hbm_bandwidth; /* seconds */
    volatile sig_atomic_t *cancel = ro ? ro->cancel : NULL;
    kvp_schedule *sched = NULL;
    if (!relax && (rc = kvp_schedule_create(&sched, L, N, err)) < 0)
        return rc;
    double total = 0, hbm_reads = 0;
    uint64_t reads = 0;
    for (uint32_t l = 0; l < L && rc >= 0; l++) {
        model m;
        double obj = 0;
        if (cancel && *cancel) {
            rc = kvp_error_set(err, KVP_EINTR, "optimal: interrupted before layer %u", l);
            break;
        }
        if ((rc = model_init(&m, sc, &d, tr, l, relax, err)) >= 0 &&
            (rc = solve(&m, relax, tlim, cancel, l, &obj, err)) >= 0) {
            total += (obj + N * m.wt) * unit;
            for (uint32_t n = 0; n < N; n++) {
                reads += m.nread[n];
                for (uint32_t x = 0; relax && x < ids(&m, n); x++)
                    if (m.read[(size_t)n * m.C + x])
                        hbm_reads += glp_get_col_prim(m.lp, m.ycol[n] + (int)(m.K > 2 ? x * m.K
                                                                                   : x));
            }
            if (!relax)
                rc = schedule_layer(&m, sched, l, err);
        }
        model_free(&m);
    }
    if (rc >= 0 && relax) {
        /* Like `bound`, the relaxation moves no data: the counters hold the reads alone
         * (as DRAM reads) and the hit rates its fractional HBM reads (docs/BOUNDS.md). */
        kvp_counters c = {0};
        c.kv_read[1] = reads;
        rc = kvp_result_fill(res, sc, tr, ps, 1, kvp_slots(sc, &d, 1), total, &c, err);
        if (rc >= 0) {
            double tok = (double)d.tok_bytes, w = (double)res->weight_read;
            double all = (double)reads * tok, h = hbm_reads * tok;
            res->hbm_hit_rate_kv = all > 0 ? h / all : 1.0;
            res->hbm_hit_rate_all = all + w > 0 ? (h + w) / (all + w) : 1.0;
        }
    } else if (rc >= 0) {
        rc = kvp_schedule_replay(sc, tr, sched, ro, res, err);
        if (rc >= 0 && !(fabs(res->total_time_s - total) <= 1e-9 * total))
            rc = kvp_error_set(err, KVP_ECHECK, "optimal: the solver's optimum %.17g s differs "
                               "from the engine's time of its placement %.17g s (a bug in "
                               "the model)", total, res->total_time_s);
        if (rc >= 0) {
            snprintf(res->policy, sizeof res->policy, "%s", ps->ops->name);
            kvp_policy_format(ps, res->params, sizeof res->params);
        }
    }
    kvp_schedule_free(sched);
    return rc;
}

int kvp_optimal_write_lp(const kvp_scenario *sc, const kvp_trace *tr, uint32_t layer,
                         int relax, const char *path, double *objective, double *const_units,
                         double *units_s, kvp_error *err)
{
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_derive_for(sc, tr, &d, err)) < 0 ||
        (rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    if (layer >= kvp_trace_layers(tr))
        return kvp_error_set(err, KVP_EINVAL, "optimal: no layer %u", layer);
    if ((rc = kvp_streams_fit(sc, tr, err)) < 0 || (rc = check_size(tr, 1, err)) < 0)
        return rc;
    model m;
    if ((rc = model_init(&m, sc, &d, tr, layer, relax, err)) >= 0) {
        int old = glp_term_out(GLP_OFF);
        if (glp_write_lp(m.lp, NULL, path) != 0)
            rc = kvp_error_set(err, KVP_EIO, "%s: cannot write the LP file", path);
        glp_term_out(old);
    }
    if (rc >= 0 && (rc = solve(&m, relax, 600, NULL, layer, objective, err)) >= 0) {
        *const_units = m.N * m.wt;
        *units_s = (double)d.tok_bytes / sc->hbm_bandwidth;
    }
    model_free(&m);
    return rc;
}

const kvp_policy_ops kvp_policy_optimal = {
    .name = "optimal",
    .doc = "the exact optimum of small cases (GLPK); relax=1: its LP relaxation's value",
    .params = optimal_params,
    .nparams = sizeof optimal_params / sizeof *optimal_params,
    .caps = KVP_CAP_SMALL_ONLY | KVP_CAP_STREAMS,
    .run = optimal_run,
};
