/* Summary statistics of a trace (`kvplace trace info`): one streaming pass over every layer's
 * cursor, O(reads) time and O(context) memory. */
#include "trace/trace.h"
#include "base/error.h"

#include <stdlib.h>
#include <string.h>

/* Positions counted as "sinks": the first few tokens that attention keeps returning to. */
#define KVP_SINK_POSITIONS 16u

/* |a ∩ b| of two ascending position lists; branch-free, since which list advances is as
 * unpredictable as the overlap is partial. */
static uint32_t merge_count(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb)
{
    uint32_t i = 0, j = 0, both = 0;
    while (i < na && j < nb) {
        uint32_t x = a[i], y = b[j];
        both += x == y;
        i += x <= y;
        j += y <= x;
    }
    return both;
}

/* The sums of one 3-D trace's pass (every layer). */
typedef struct stat_sums {
    uint64_t reads, sink_reads, overlap_terms, cells;
    double overlap_sum;
} stat_sums;

static int stats_of(const kvp_trace *t, kvp_budget budget, stat_sums *sum, kvp_error *err)
{
    uint64_t max_ctx = (uint64_t)t->prompt + t->steps; /* bound on |A(n)| */
    uint32_t *prev = malloc((size_t)(max_ctx ? max_ctx : 1) * sizeof *prev);
    if (!prev)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", t->name);
    int rc = 0;
    for (uint32_t l = 0; l < t->layers && rc >= 0; l++) {
        kvp_cursor *c;
        rc = kvp_cursor_create(&c, t, l, budget, err);
        if (rc < 0)
            break;
        kvp_cursor_sets_only(c);
        uint32_t nprev = 0;
        kvp_access a;
        while ((rc = kvp_cursor_next(c, &a, err)) > 0) {
            sum->reads += a.count;
            for (uint32_t i = 0; i < a.count && a.pos[i] < KVP_SINK_POSITIONS; i++)
                sum->sink_reads++;
            /* an empty set (possible with bool marks) has no share to average */
            if (a.step >= 1 && a.count > 0) {
                uint32_t both = merge_count(a.pos, a.count, prev, nprev);
                sum->overlap_sum += (double)both / (double)a.count;
                sum->overlap_terms++;
            }
            memcpy(prev, a.pos, (size_t)a.count * sizeof *prev);
            nprev = a.count;
        }
        kvp_cursor_free(c);
    }
    free(prev);
    sum->cells += (uint64_t)t->steps * t->layers;
    return rc;
}

/* Several heads of one sequence: the mean over steps, layers and ordered pairs of distinct
 * heads (h, h') of |A_h ∩ A_h'| / |A_h| (h's reads that h' reads too; 1: the heads read
 * alike), pairs with an empty A_h left out.  *terms and *sum accumulate. */
static int head_overlap(const kvp_streams *si, uint32_t q, kvp_budget budget, double *sum,
                        uint64_t *terms, kvp_error *err)
{
    const uint32_t H = si->heads;
    const kvp_trace *t0 = si->stream[q * H];
    kvp_cursor **c = calloc(H, sizeof *c);
    uint32_t **set = calloc(H, sizeof *set), *cnt = calloc(H, sizeof *cnt);
    const size_t cap = (size_t)t0->prompt + t0->steps;
    int rc = c && set && cnt ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (uint32_t h = 0; h < H && rc >= 0; h++)
        if (!(set[h] = malloc(cap * sizeof **set)))
            rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (uint32_t l = 0; l < t0->layers && rc >= 0; l++) {
        for (uint32_t h = 0; h < H && rc >= 0; h++) {
            rc = kvp_cursor_create(&c[h], si->stream[q * H + h], l, budget, err);
            if (rc >= 0)
                kvp_cursor_sets_only(c[h]);
        }
        for (uint32_t n = 0; n < t0->steps && rc >= 0; n++) {
            for (uint32_t h = 0; h < H && rc >= 0; h++) {
                kvp_access a;
                rc = kvp_cursor_next(c[h], &a, err);
                if (rc > 0) {
                    memcpy(set[h], a.pos, (size_t)a.count * sizeof **set);
                    cnt[h] = a.count;
                }
            }
            for (uint32_t h = 0; h < H && rc >= 0; h++)
                for (uint32_t k = 0; k < H && cnt[h]; k++)
                    if (k != h) {
                        *sum += (double)merge_count(set[h], cnt[h], set[k], cnt[k]) /
                                (double)cnt[h];
                        (*terms)++;
                    }
        }
        for (uint32_t h = 0; h < H; h++) {
            kvp_cursor_free(c ? c[h] : NULL);
            if (c)
                c[h] = NULL;
        }
    }
    for (uint32_t h = 0; set && h < H; h++)
        free(set[h]);
    free(set);
    free(cnt);
    free(c);
    return rc < 0 ? rc : 0;
}

int kvp_trace_stats_compute(const kvp_trace *t, kvp_budget budget, kvp_trace_stats *st,
                            kvp_error *err)
{
    memset(st, 0, sizeof *st);
    stat_sums sum = {0};
    const kvp_streams *si = t->streams;
    int rc = 0;
    /* several streams: each stream on its own positions, the sums over all of them */
    for (uint32_t i = 0; i < (si ? si->n : 1) && rc >= 0; i++)
        rc = stats_of(si ? si->stream[i] : t, budget, &sum, err);
    double hsum = 0;
    uint64_t hterms = 0;
    for (uint32_t q = 0; si && si->heads > 1 && q < si->nseq && rc >= 0; q++)
        rc = head_overlap(si, q, budget, &hsum, &hterms, err);
    if (rc < 0)
        return rc;
    st->reads = sum.reads;
    st->mean_reads_per_step = sum.cells ? (double)sum.reads / (double)sum.cells : 0.0;
    st->mean_overlap = sum.overlap_terms ? sum.overlap_sum / (double)sum.overlap_terms : 0.0;
    st->mean_sink_share = sum.reads ? (double)sum.sink_reads / (double)sum.reads : 0.0;
    st->mean_head_overlap = hterms ? hsum / (double)hterms : 0.0;
    return 0;
}
