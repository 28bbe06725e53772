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
    if (rc < 0)
        return rc;
    st->reads = sum.reads;
    st->mean_reads_per_step = sum.cells ? (double)sum.reads / (double)sum.cells : 0.0;
    st->mean_overlap = sum.overlap_terms ? sum.overlap_sum / (double)sum.overlap_terms : 0.0;
    st->mean_sink_share = sum.reads ? (double)sum.sink_reads / (double)sum.reads : 0.0;
    return 0;
}

int kvp_trace_heads_stats(const kvp_trace *const *heads, uint32_t H, kvp_budget budget,
                          kvp_heads_stats *st, kvp_error *err)
{
    memset(st, 0, sizeof *st);
    if (H < 2)
        return kvp_error_set(err, KVP_EINVAL, "heads: %u; the sets of two heads or more "
                             "can differ", H);
    const kvp_trace *t0 = heads[0];
    for (uint32_t h = 1; h < H; h++)
        if (heads[h]->steps != t0->steps || heads[h]->layers != t0->layers ||
            heads[h]->prompt != t0->prompt)
            return kvp_error_set(err, KVP_ESHAPE, "%s: shape (%u, %u, prompt %u) differs from "
                                 "head 0's (%u, %u, prompt %u)", heads[h]->name,
                                 heads[h]->steps, heads[h]->layers, heads[h]->prompt,
                                 t0->steps, t0->layers, t0->prompt);
    const size_t C = (size_t)t0->prompt + t0->steps;
    uint32_t *cnt = calloc(C ? C : 1, sizeof *cnt);
    kvp_cursor **cur = calloc(H, sizeof *cur);
    kvp_access *a = calloc(H, sizeof *a);
    int rc = cnt && cur && a ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
    double jac = 0, uni = 0;
    for (uint32_t l = 0; rc >= 0 && l < t0->layers; l++) {
        for (uint32_t h = 0; rc >= 0 && h < H; h++)
            if ((rc = kvp_cursor_create(&cur[h], heads[h], l, budget, err)) >= 0)
                kvp_cursor_sets_only(cur[h]);
        for (uint32_t n = 0; rc >= 0 && n < t0->steps; n++) {
            /* cnt[p]: the heads that read p; pairs sharing p: cnt (cnt - 1) / 2 */
            uint64_t reads = 0, shared = 0, any = 0;
            for (uint32_t h = 0; rc >= 0 && h < H; h++) {
                int r = kvp_cursor_next(cur[h], &a[h], err);
                if (r <= 0) {
                    rc = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                                   heads[h]->name);
                    break;
                }
                reads += a[h].count;
                for (uint32_t i = 0; i < a[h].count; i++) {
                    uint32_t p = a[h].pos[i];
                    shared += cnt[p];
                    any += cnt[p] == 0;
                    cnt[p]++;
                }
            }
            if (rc < 0)
                break;
            for (uint32_t h = 0; h < H; h++)
                for (uint32_t i = 0; i < a[h].count; i++)
                    cnt[a[h].pos[i]] = 0;
            /* sum over pairs of |A_i | A_j| = (H - 1) sum |A_h| - sum over pairs |A_i & A_j| */
            const double pairs_union = (double)(H - 1) * (double)reads - (double)shared;
            jac += pairs_union > 0 ? (double)shared / pairs_union : 1.0;
            uni += reads > 0 ? (double)any * H / (double)reads : 1.0;
        }
        for (uint32_t h = 0; h < H; h++) {
            kvp_cursor_free(cur[h]);
            cur[h] = NULL;
        }
    }
    free(cnt);
    free(cur);
    free(a);
    if (rc < 0)
        return rc;
    const double cells = (double)t0->steps * t0->layers;
    st->heads = H;
    st->mean_jaccard = cells > 0 ? jac / cells : 1.0;
    st->mean_union_ratio = cells > 0 ? uni / cells : 1.0;
    return 0;
}
