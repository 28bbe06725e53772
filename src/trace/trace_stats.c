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

int kvp_trace_stats_compute(const kvp_trace *t, kvp_budget budget, kvp_trace_stats *st,
                            kvp_error *err)
{
    memset(st, 0, sizeof *st);
    uint64_t max_ctx = (uint64_t)t->prompt + t->steps; /* bound on |A(n)| */
    uint32_t *prev = malloc((size_t)(max_ctx ? max_ctx : 1) * sizeof *prev);
    if (!prev)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", t->name);

    uint64_t reads = 0, sink_reads = 0, overlap_terms = 0;
    double overlap_sum = 0.0;
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
            reads += a.count;
            for (uint32_t i = 0; i < a.count && a.pos[i] < KVP_SINK_POSITIONS; i++)
                sink_reads++;
            /* an empty set (possible with bool marks) has no share to average */
            if (a.step >= 1 && a.count > 0) {
                uint32_t both = merge_count(a.pos, a.count, prev, nprev);
                overlap_sum += (double)both / (double)a.count;
                overlap_terms++;
            }
            memcpy(prev, a.pos, (size_t)a.count * sizeof *prev);
            nprev = a.count;
        }
        kvp_cursor_free(c);
    }
    free(prev);
    if (rc < 0)
        return rc;

    uint64_t cells = (uint64_t)t->steps * t->layers;
    st->reads = reads;
    st->mean_reads_per_step = cells ? (double)reads / (double)cells : 0.0;
    st->mean_overlap = overlap_terms ? overlap_sum / (double)overlap_terms : 0.0;
    st->mean_sink_share = reads ? (double)sink_reads / (double)reads : 0.0;
    return 0;
}
