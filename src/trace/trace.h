/* Internal: the trace handle is a small vtable so that .npy files and the synthetic
 * generator stream through the same cursor API (src/trace/trace.c dispatches). */
#ifndef KVP_TRACE_H
#define KVP_TRACE_H

#include "kvplace.h"
#include "base/error.h"

typedef struct kvp_trace_vt {
    const char *kind; /* "npy", "synthetic" */
    /* Creates a cursor's private state for one layer. */
    int (*cursor_open)(const kvp_trace *t, uint32_t layer, double sparsity, void **state,
                       kvp_error *err);
    /* Fills a with step n of the cursor's layer (steps are asked in order 0, 1, ...).
     * Returns 0 or < 0. */
    int (*cursor_step)(void *state, uint32_t n, kvp_access *a, kvp_error *err);
    void (*cursor_close)(void *state);
    /* Scores of all positions 0..P+n-1 of (n, l) (for writing .npy); may be NULL.  Called
     * right after cursor_step(state, n, ...) for the same n; out holds at least P+n floats. */
    int (*scores)(void *state, uint32_t n, float *out, kvp_error *err);
    void (*destroy)(kvp_trace *t);
    /* Optional: from now on the cursor's sets need no scores (a->score may be NULL), which
     * spares a trace that makes them (the synthetic one) that work. */
    void (*sets_only)(void *state);
} kvp_trace_vt;

/* Tells c's trace that its caller will not read the scores of c's sets (kvp_access.score
 * may then be NULL).  Internal: the engine and the trace cache ask it when no policy of
 * theirs reads scores. */
void kvp_cursor_sets_only(kvp_cursor *c);

/* Top-k selection shared by every score source: the k highest of scores[0..n-1], ties to
 * the lower position, written ascending by position.  scratch must hold n uint32_t. */
void kvp_topk(const float *scores, uint32_t n, uint32_t k, uint32_t *pos_out, float *score_out,
              uint32_t *scratch);

struct kvp_trace {
    const kvp_trace_vt *vt;
    uint32_t steps, layers, prompt;
    int is_bool;
    char name[256];
    void *impl; /* owned by the implementation; freed by vt->destroy */
};

struct kvp_cursor {
    const kvp_trace *t;
    uint32_t layer;
    uint32_t next; /* next step to produce */
    void *state;
};

#endif
