/* Internal: the trace handle is a small vtable so that .npy files and the synthetic
 * generator stream through the same cursor API (src/trace/trace.c dispatches). */
#ifndef KVP_TRACE_H
#define KVP_TRACE_H

#include "kvplace.h"
#include "base/error.h"

typedef struct kvp_trace_vt {
    const char *kind; /* "npy", "synthetic" */
    /* Creates a cursor's private state for one layer. */
    int (*cursor_open)(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
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
    /* Optional: the size *k of step n's access set and the number *h of its positions below
     * `below`, without making the set (src/engine/fast.c); steps in order, as cursor_step. */
    int (*count_below)(void *state, uint32_t n, uint32_t below, uint32_t *k, uint32_t *h,
                       kvp_error *err);
    /* Optional: cursor_step writing the set into the caller's pos[0 .. count) and, unless
     * sets only, score[0 .. count) (a->pos and a->score point there); pos holds at least
     * P + n entries.  Spares a caller that keeps the sets (the streams' read-ahead) a copy. */
    int (*step_into)(void *state, uint32_t n, kvp_access *a, uint32_t *pos, float *score,
                     kvp_error *err);
    /* Optional: state's rows come from reads shared with `leader` (a cursor of the same
     * trace, on a lower layer, kept open while state is asked for steps): its caller asks
     * each step of the group's layers in order, lowest layer first, so one read can serve
     * several layers (a .npy file: a step's rows lie side by side).  A hint: results are
     * the same without it. */
    void (*read_with)(void *state, void *leader);
} kvp_trace_vt;

/* KVP_EINVAL, naming the trace `name`, for a budget that reads no defined set (a sparsity
 * outside [0, 1) with topk 0). */
int kvp_budget_check(kvp_budget b, const char *name, kvp_error *err);

/* Tells c's trace that its caller will not read the scores of c's sets (kvp_access.score
 * may then be NULL).  Internal: the engine and the trace cache ask it when no policy of
 * theirs reads scores. */
void kvp_cursor_sets_only(kvp_cursor *c);
/* Tells c's trace that c and leader (same trace, leader on a lower layer, not freed while c
 * is asked for steps) are asked each step in layer order: it may read their rows together
 * (the vtable's read_with).  Internal: the fast path's groups of layers (src/engine/fast.c). */
void kvp_cursor_read_with(kvp_cursor *c, kvp_cursor *leader);

/* Top-k selection shared by every score source: the k highest of scores[0..n-1], ties to
 * the lower position, written ascending by position.  scratch must hold n uint32_t. */
void kvp_topk(const float *scores, uint32_t n, uint32_t k, uint32_t *pos_out, float *score_out,
              uint32_t *scratch);

/* The cursor's next step as two counts: the size *k of its access set and how many of its
 * positions lie below `below` (*h).  Returns 1, 0 past the last step, or < 0, as
 * kvp_cursor_next; the trace's count_below when it has one (no set made), else the set's
 * size and a binary search of it. */
int kvp_cursor_count_below(kvp_cursor *c, uint32_t below, uint32_t *k, uint32_t *h,
                           kvp_error *err);
/* Whether c's trace can write its sets as bits (kvp_cursor_next_bits): the synthetic one. */
int kvp_cursor_writes_bits(const kvp_cursor *c);
/* kvp_cursor_next, the set written as bits: bit p & 63 of bits[(p >> 6) * stride] for each
 * position p of it, every word below (P + n + 63) / 64 written (zeros too); and, unless sets
 * only, its scores ascending by position into score (at least P + n entries); a->pos is
 * NULL.  Spares the streams' merge a list and its conversion to bits (src/trace/synth.c). */
int kvp_cursor_next_bits(kvp_cursor *c, kvp_access *a, uint64_t *bits, size_t stride,
                         float *score, kvp_error *err);
/* The next step of c (a cursor that kvp_cursor_writes_bits) as counts: the size *k of its set
 * and, for j < nb (at most 64), how many of its positions lie below below[j] (h[j]), the set
 * itself not made (nb = 0: the size alone, no generation).  Returns 1, 0 past the last step,
 * or < 0, as kvp_cursor_next.  The fast path's (src/engine/fast.c). */
int kvp_cursor_next_counts(kvp_cursor *c, const uint32_t *below, uint32_t nb, uint32_t *k,
                           uint32_t *h, kvp_error *err);
/* kvp_cursor_next_bits of each of c[0 .. n) (every one a cursor that kvp_cursor_writes_bits),
 * step c[i]->next of cursor i into a[i], bits[i] (the same stride for all) and score[i]
 * (score NULL: none); the same sets and scores as n calls in turn, each generator drawing
 * what it draws alone, but their steps made together (with AVX-512, eight generators in the
 * lanes of one register: src/trace/synth.c).  Returns 1, 0 when some cursor is past its
 * last step (then none is asked), or < 0. */
int kvp_cursor_next_bits_many(kvp_cursor *const *c, uint32_t n, kvp_access *a,
                              uint64_t *const *bits, size_t stride, float *const *score,
                              kvp_error *err);
/* Whether c[0 .. n) can be asked together (each one kvp_cursor_writes_bits) and gain from
 * kvp_cursor_next_bits_many over being asked one at a time (each one's steps in a row keeps
 * its generator in the cache): with AVX-512, from six of them. */
int kvp_cursors_together(kvp_cursor *const *c, uint32_t n);
/* Whether c's trace can write its sets into the caller's arrays (kvp_cursor_next_into). */
int kvp_cursor_writes_into(const kvp_cursor *c);
/* kvp_cursor_next, the set written into pos (at least P + n entries) and score (unless sets
 * only); only for a cursor whose trace kvp_cursor_writes_into. */
int kvp_cursor_next_into(kvp_cursor *c, kvp_access *a, uint32_t *pos, float *score,
                         kvp_error *err);
/* The same two counts of a set in hand: its size and a binary search. */
void kvp_access_count_below(const kvp_access *a, uint32_t below, uint32_t *k, uint32_t *h);

/* How many of the top-k of scores[0..n) (kvp_topk's set: ties to the lower positions) lie
 * below position `below`; scratch holds n entries.  *kth_key (if not NULL) receives the k-th
 * highest score as an order-preserving key (its float bits with the sign bit set if
 * positive, all bits flipped if negative; -0 as +0) when 0 < below < n and 0 < k < n, and
 * is left alone otherwise. */
uint32_t kvp_topk_count_below(const float *scores, uint32_t n, uint32_t k, uint32_t below,
                              uint32_t *scratch, uint32_t *kth_key);

/* The streams' own sets of the step a cursor of a streams trace gave last, where it merges
 * them by transposition (S a power of two up to 64): stream i's word w of bits at
 * bits[w * S + i] (bit p % 64 of word p / 64 for each position p it reads), its context
 * ctx[i] (0: finished, no bits), and its reads' scores in position order from score[i]
 * (NULL: the cursor gives no scores, or the stream has read nothing yet).  Valid until the
 * cursor's next step.  Returns 1 and fills v, or 0 where there is no such view (another
 * trace, a merge by scatter).  Internal: the engine sums blocks stream by stream from it. */
typedef struct kvp_streams_view {
    uint32_t S;
    const uint64_t *bits;
    const uint32_t *ctx;
    const float *const *score;
} kvp_streams_view;
int kvp_cursor_streams_view(const kvp_cursor *c, kvp_streams_view *v);
/* Tells c (a fresh cursor of a streams trace that merges by transposition) to keep its
 * scores stream by stream only: its sets' a->score is NULL, each stream's scores are in its
 * view (kvp_cursor_streams_view), and kvp_streams_view_scores merges them when asked.
 * Returns 1, or 0 where c cannot (another trace, a merge by scatter, a step already made).
 * Internal: the engine, when every policy of its pass takes scores from the view. */
int kvp_cursor_scores_by_stream(kvp_cursor *c);
/* The merged set's scores, in its order (position, then stream), as doubles into out (the
 * set's count of them). */
void kvp_streams_view_scores(const kvp_streams_view *v, double *out);

/* IEEE half to single, exact for every value (src/trace/npy.c); shared by the .npy reader and
 * in-memory buffers so that both give the same floats. */
float kvp_half_to_float(uint16_t h);

/* The streams of a trace (docs/MODEL.md "Streams"): KV heads of a 4-D trace and distinct
 * sequences.  Stream i = sequence q * heads + head h; each stream is an ordinary 3-D trace
 * (a head of a 4-D trace is a view of it).  A trace with streams has a cursor of its own that
 * merges the streams' sets of a step into one set of virtual positions p * n + i (ascending:
 * position, then stream); the engine maps them to its blocks (src/engine/engine.c). */
typedef struct kvp_streams {
    uint32_t n;     /* streams */
    uint32_t nseq;  /* sequences */
    uint32_t heads; /* streams per sequence: 1 for 3-D traces, kv_heads for 4-D ones */
    int per_head;   /* 4-D: a stream is one KV head (its token weighs tok_bytes / heads) */
    const kvp_trace *const *stream; /* n 3-D traces */
    const uint32_t *prompt, *steps; /* per stream: P_i, N_i */
    uint32_t positions;             /* max over the streams of P_i + N_i */
} kvp_streams;

/* The trace's streams, or NULL for a single-stream trace. */
const kvp_streams *kvp_trace_streams(const kvp_trace *t);
/* 64 positions of S = 2^lg streams (x[i] bit p: stream i reads position p, S <= 64) as the
 * S words of their virtual positions: bit p * S + i of y[0..S) read as one string of 64 S
 * bits.  x is overwritten.  The streams' merge and the lookahead grid's read-ahead. */
void kvp_bits_interleave(uint64_t *x, uint64_t *y, uint32_t S, unsigned lg);
/* kvp_bits_interleave of S = 2^lg streams for nwords words of each: stream k's word i at
 * x[k ks + i ws], its S words of virtual positions at y[S i .. S i + S - 1].  Eight streams
 * with GFNI and AVX-512 VBMI: one affine transformation a word; two or four with BMI2: a
 * pdep per stream and output word (neither with KVPLACE_SSE2_ONLY); the same words any way. */
void kvp_bits_interleave_words(const uint64_t *x, size_t ks, size_t ws, uint32_t nwords,
                               uint32_t S, uint64_t *y);
/* A trace of the H heads of base, whose layers are the (layer, head) pairs layer * H + head of
 * an (N, L, H, C) array read as (N, L * H, C); takes base over (freed on failure too). */
int kvp_trace_heads_of(kvp_trace **out, kvp_trace *base, uint32_t heads, kvp_error *err);

struct kvp_trace {
    const kvp_trace_vt *vt;
    uint32_t steps, layers, prompt;
    int is_bool;
    char name[256];
    void *impl; /* owned by the implementation; freed by vt->destroy */
    const kvp_streams *streams; /* NULL: one stream (set by src/trace/streams.c only) */
};

struct kvp_cursor {
    const kvp_trace *t;
    uint32_t layer;
    uint32_t next; /* next step to produce */
    void *state;
};

#endif
