/*
 * `static` and `unlimited` (and the bound riding along) without the engine's per-read work
 * (docs/PERF.md §12).  With 1-token blocks both keep a prefix of the context in HBM: unlimited
 * every position, static the first min(P + n, slots) at step n (its initial placement is the
 * lowest prompt blocks, and every new token is placed while a slot is free; it never moves
 * anything).  So a step's reads in HBM are k (unlimited) or the positions below the prefix
 * (static), and the bound needs k alone: from a trace cache, popcounts of the step's bitset;
 * from any other trace, kvp_cursor_count_below (a .npy trace counts the top-k below the
 * prefix without making the set; others make it and search it once).
 * The charges and the step time are the engine's (src/engine/engine.c, pol_step), summed in
 * the same order, so the results are the same, byte for byte (tests/test_fast.c).
 */
#include "engine/fast.h"

#include "base/parallel.h"
#include "trace/trace.h"
#include "trace/trace_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const kvp_policy_ops kvp_policy_static;
extern const kvp_policy_ops kvp_policy_unlimited;

#define WORD_BITS 64u

int kvp_fast_prefix_takes(const kvp_policy_spec *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ps[i].ops != &kvp_policy_static && ps[i].ops != &kvp_policy_unlimited)
            return 0;
    return 1;
}

/* The pass's sums (the bound and the reads) from its per-layer sums, in layer order: one
 * per accounting (sums[j] from bound_time and bound_h + j * L). */
static void pass_sums(kvp_pass_sums *sums, uint32_t nm, uint32_t L, const double *bound_time,
                      const double *bound_h, const uint64_t *reads)
{
    for (uint32_t j = 0; j < nm; j++) {
        memset(&sums[j], 0, sizeof *sums);
        for (uint32_t l = 0; l < L; l++) {
            sums[j].bound_time_s += bound_time[(size_t)j * L + l];
            sums[j].bound_hbm_bytes += bound_h[(size_t)j * L + l];
            sums[j].reads += reads[l];
        }
    }
}

typedef struct fast_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_derived *d;
    kvp_cost_model model[KVP_ACCTS_MAX]; /* per accounting (runner.h) */
    uint32_t nm, L;
    size_t npol;
    const uint32_t *slots; /* per policy; KVP_UNLIMITED_SLOTS for unlimited */
    volatile sig_atomic_t *cancel;
    double *time_s;       /* [(accounting * L + layer) * npol + i] */
    kvp_counters *cnt;    /* [layer * npol + i] */
    double *bound_time, *bound_h; /* [accounting * L + layer] */
    uint64_t *reads;
    kvp_error *err;
} fast_ctx;

/* Set bits of w[0..nw) and, of those, the ones below position `below`. */
static void count_cache(const uint64_t *w, uint32_t nw, uint32_t below, uint32_t *k,
                        uint32_t *h)
{
    uint32_t all = 0, low = 0;
    const uint32_t full = below / WORD_BITS < nw ? below / WORD_BITS : nw;
    for (uint32_t i = 0; i < full; i++)
        low += (uint32_t)__builtin_popcountll(w[i]);
    all = low;
    if (full < nw && below % WORD_BITS) {
        const uint64_t x = w[full];
        low += (uint32_t)__builtin_popcountll(x & ((1ull << (below % WORD_BITS)) - 1));
    }
    for (uint32_t i = full; i < nw; i++)
        all += (uint32_t)__builtin_popcountll(w[i]);
    *k = all;
    *h = low;
}

/* Every static has the same slots (1-token blocks), so one count below them serves all. */
static uint32_t static_slots_of(const fast_ctx *c)
{
    uint32_t static_slots = 0;
    for (size_t i = 0; i < c->npol; i++)
        if (c->slots[i] != KVP_UNLIMITED_SLOTS)
            static_slots = c->slots[i];
    return static_slots;
}

/* Step n of layer l from its counts: k reads, k_below of them below static's slots (bits:
 * the step's cache bitset, or NULL when k_below is given). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KVP_NO_SIMD)
__attribute__((target_clones("popcnt", "default")))
#endif
static void fast_step(const fast_ctx *c, uint32_t l, uint32_t n, const uint64_t *bits,
                      uint32_t k, uint32_t k_below)
{
    const uint32_t ctx = kvp_trace_prompt(c->tr) + n;
    const uint64_t tok_bytes = c->d->tok_bytes;
    const double tok = (double)tok_bytes;
    for (uint32_t j = 0; j < c->nm; j++) {
        double h_b;
        c->bound_time[(size_t)j * c->L + l] += kvp_step_time_bound(&c->model[j],
                                                                   (double)k * tok, &h_b);
        c->bound_h[(size_t)j * c->L + l] += h_b;
    }
    c->reads[l] += k;
    for (size_t i = 0; i < c->npol; i++) {
        const uint32_t slots = c->slots[i];
        const uint32_t pre = ctx < slots ? ctx : slots; /* resident prefix */
        uint32_t hits = k;
        if (pre < ctx) {
            if (bits) {
                uint32_t unused;
                count_cache(bits, (pre + WORD_BITS - 1) / WORD_BITS, pre, &unused, &hits);
            } else {
                hits = k_below; /* pre = slots = static_slots here */
            }
        }
        kvp_counters st = {0};
        st.kv_read[0] = st.read[0] = hits;
        st.kv_read[1] = st.read[1] = k - hits;
        st.write[pre < slots ? 0 : 1] = 1; /* the new token takes a free slot, or DRAM */
        kvp_traffic traffic;
        kvp_traffic_of(&traffic, &st, 2, tok_bytes);
        const size_t o = (size_t)l * c->npol + i, per = (size_t)c->L * c->npol;
        for (uint32_t j = 0; j < c->nm; j++)
            c->time_s[j * per + o] += kvp_step_time(&c->model[j], &traffic);
        kvp_counters_add(&c->cnt[o], &st);
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KVP_NO_SIMD)
__attribute__((target_clones("popcnt", "default")))
#endif
static int fast_layer(uint32_t l, void *user, atomic_ullong *done)
{
    const fast_ctx *c = user;
    kvp_error *err = &c->err[l];
    const kvp_scenario *sc = c->sc;
    const uint32_t P = kvp_trace_prompt(c->tr), N = kvp_trace_steps(c->tr);
    const int cached = kvp_trace_cache_bits(c->tr, l, 0, kvp_scenario_budget(sc)) != NULL;
    kvp_cursor *cur = NULL;
    int rc = 0;
    if (!cached) {
        if ((rc = kvp_cursor_create(&cur, c->tr, l, kvp_scenario_budget(sc), err)) < 0)
            return rc;
        kvp_cursor_sets_only(cur);
    }
    const uint32_t static_slots = static_slots_of(c);
    for (uint32_t n = 0; n < N; n++) {
        if (c->cancel && *c->cancel) {
            rc = kvp_error_set(err, KVP_EINTR, "interrupted at step %u of layer %u", n, l);
            break;
        }
        const uint32_t ctx = P + n;
        const uint64_t *bits = NULL;
        uint32_t k, k_below = 0;
        if (cached) {
            bits = kvp_trace_cache_bits(c->tr, l, n, kvp_scenario_budget(sc));
            uint32_t unused;
            count_cache(bits, (ctx + WORD_BITS - 1) / WORD_BITS, 0, &k, &unused);
        } else {
            /* a synthetic trace counts them without listing the set */
            int r = kvp_cursor_writes_bits(cur)
                        ? kvp_cursor_next_counts(cur, &static_slots, static_slots > 0, &k,
                                                 &k_below, err)
                        : kvp_cursor_count_below(cur, static_slots, &k, &k_below, err);
            if (r <= 0) {
                rc = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                               kvp_trace_name(c->tr));
                break;
            }
        }
        fast_step(c, l, n, bits, k, k_below);
        atomic_fetch_add(done, 1ull);
    }
    kvp_cursor_free(cur);
    return rc;
}

/* A trace that counts without making the set (a .npy file, a memory trace) is read step
 * by step across a group of layers: its rows (n, l) lie in the file in that order, so the
 * reads stream through it as one pass does, where layer by layer they would jump a step's
 * rows at every row (docs/PERF.md §27).  Layers are independent and each one's sums still
 * add in step order, so the results are the same.  A layer that fails stops alone; the
 * others run on, so the error reported (the lowest failing layer's) is the one the
 * layer-by-layer order reports. */
typedef struct fast_groups {
    const fast_ctx *c;
    uint32_t groups;
    int *lrc; /* per layer */
} fast_groups;

static int fast_group(uint32_t g, void *user, atomic_ullong *done)
{
    const fast_groups *fg = user;
    const fast_ctx *c = fg->c;
    const uint32_t L = kvp_trace_layers(c->tr), N = kvp_trace_steps(c->tr);
    const uint32_t l0 = (uint32_t)((uint64_t)L * g / fg->groups);
    const uint32_t l1 = (uint32_t)((uint64_t)L * (g + 1) / fg->groups);
    const uint32_t static_slots = static_slots_of(c);
    kvp_cursor **cur = calloc(l1 - l0, sizeof *cur);
    if (!cur) {
        for (uint32_t l = l0; l < l1; l++)
            fg->lrc[l] = kvp_error_set(&c->err[l], KVP_ENOMEM, "out of memory");
        return 0;
    }
    uint32_t live = 0;
    for (uint32_t l = l0; l < l1; l++) {
        fg->lrc[l] = kvp_cursor_create(&cur[l - l0], c->tr, l, kvp_scenario_budget(c->sc),
                                       &c->err[l]);
        if (fg->lrc[l] < 0)
            continue;
        kvp_cursor_sets_only(cur[l - l0]);
        if (l > l0 && cur[0]) /* one read for a step's rows of the group (a .npy file) */
            kvp_cursor_read_with(cur[l - l0], cur[0]);
        live++;
    }
    for (uint32_t n = 0; n < N && live > 0; n++) {
        for (uint32_t l = l0; l < l1; l++) {
            if (fg->lrc[l] < 0)
                continue;
            kvp_error *err = &c->err[l];
            int rc = 0;
            uint32_t k, k_below = 0;
            if (c->cancel && *c->cancel) {
                rc = kvp_error_set(err, KVP_EINTR, "interrupted at step %u of layer %u", n, l);
            } else {
                const int r = kvp_cursor_count_below(cur[l - l0], static_slots, &k, &k_below,
                                                     err);
                if (r <= 0)
                    rc = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                                   kvp_trace_name(c->tr));
            }
            if (rc < 0) {
                fg->lrc[l] = rc;
                live--;
                continue;
            }
            fast_step(c, l, n, NULL, k, k_below);
            atomic_fetch_add(done, 1ull);
        }
    }
    for (uint32_t l = l0; l < l1; l++)
        kvp_cursor_free(cur[l - l0]);
    free(cur);
    return 0;
}

int kvp_fast_prefix_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                        size_t n, const kvp_run_options *ro, kvp_result *res,
                        kvp_pass_sums *sums, kvp_error *err)
{
    const kvp_accts ac = kvp_accts_one(sc);
    return kvp_fast_prefix_run_accts(&ac, tr, ps, n, ro, res, sums, err);
}

int kvp_fast_prefix_run_accts(const kvp_accts *ac, const kvp_trace *tr,
                              const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                              kvp_result *res, kvp_pass_sums *sums, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    if (!kvp_fast_prefix_takes(ps, n) || (ro && ro->check) || sc->tiers > 2 ||
        kvp_trace_streams(tr))
        return kvp_error_set(err, KVP_EINVAL, "fast prefix run: static and unlimited only, "
                             "unchecked, one stream");
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_scenario_derive(sc, &d, err)) < 0 ||
        (rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    const uint32_t L = kvp_trace_layers(tr);
    const size_t np = n ? n : 1;
    fast_ctx c;
    memset(&c, 0, sizeof c);
    c.sc = sc;
    c.tr = tr;
    c.d = &d;
    if ((rc = kvp_accts_models(ac, tr, c.model, err)) < 0)
        return rc;
    c.nm = ac->n;
    c.L = L;
    c.npol = n;
    c.cancel = ro ? ro->cancel : NULL;
    uint32_t *slots = calloc(np, sizeof *slots);
    int *lrc = calloc(L, sizeof *lrc);
    c.time_s = calloc((size_t)c.nm * L * np, sizeof *c.time_s);
    c.cnt = calloc((size_t)L * np, sizeof *c.cnt);
    c.bound_time = calloc((size_t)c.nm * L, sizeof *c.bound_time);
    c.bound_h = calloc((size_t)c.nm * L, sizeof *c.bound_h);
    c.reads = calloc(L, sizeof *c.reads);
    c.err = calloc(L, sizeof *c.err);
    if (!slots || !lrc || !c.time_s || !c.cnt || !c.bound_time || !c.bound_h || !c.reads ||
        !c.err) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        slots[i] = ps[i].ops == &kvp_policy_unlimited ? KVP_UNLIMITED_SLOTS
                                                      : kvp_slots(sc, &d, 1);
    c.slots = slots;
    const uint64_t units = (uint64_t)L * kvp_trace_steps(tr);
    if (!kvp_trace_cache_bits(tr, 0, 0, kvp_scenario_budget(sc)) && tr->vt->count_below) {
        /* one group of layers per thread (fast_group) */
        const unsigned threads = ro && ro->threads ? ro->threads : 1;
        fast_groups fg = {&c, threads < L ? threads : L, lrc};
        int *grc = calloc(fg.groups, sizeof *grc);
        if (!grc) {
            rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
            goto done;
        }
        kvp_parallel_layers(fg.groups, ro, units, fast_group, &fg, grc);
        free(grc);
    } else {
        kvp_parallel_layers(L, ro, units, fast_layer, &c, lrc);
    }
    for (uint32_t l = 0; l < L; l++)
        if (lrc[l] < 0) {
            rc = lrc[l];
            if (err)
                *err = c.err[l];
            goto done;
        }
    rc = kvp_result_fill_layers_accts(res, ac, tr, ps, n, L, c.time_s, c.cnt, slots, 1, err);
    if (sums && rc >= 0)
        pass_sums(sums, c.nm, L, c.bound_time, c.bound_h, c.reads);
done:
    free(slots);
    free(lrc);
    free(c.time_s);
    free(c.cnt);
    free(c.bound_time);
    free(c.bound_h);
    free(c.reads);
    free(c.err);
    return rc;
}

/* ---- Several streams (docs/MODEL.md "Streams") ----
 * With every stream decoding the same N steps nothing is freed before the end, and static's
 * HBM is, for stream i, the positions [0, c_i) of its prompt that the initial placement took
 * (the lowest virtual blocks p * S + i holding prompt tokens, up to the slots) and its new
 * tokens [P_i, P_i + m_i(n)) placed while slots were free (the step's new blocks in index
 * order, that is by (P_i, i), the same order every step).  Neither depends on the reads, so
 * a step's hits of stream i are three binary searches of its own set, and each stream's
 * sets are made one stream after the other: no merge of the streams' sets, and one
 * generator's state in the cache at a time.  The charges and times are the engine's
 * (pol_step with S > 1), summed in its order. */

typedef struct fast_streams_ctx {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_streams *si;
    kvp_cost_model model[KVP_ACCTS_MAX]; /* per accounting (runner.h) */
    uint32_t nm, L;
    uint64_t tok_bytes;
    size_t npol;
    const int *unlimited;   /* per policy */
    int any_static;
    const uint32_t *c;      /* per stream: prompt positions in HBM from the start (static) */
    const uint32_t *rank;   /* per stream: its new block's place in a step's order */
    uint64_t f, r;          /* static: steps [0, f) place every new block, step f the first r */
    volatile sig_atomic_t *cancel;
    double *time_s;         /* [(accounting * L + layer) * npol + i] */
    kvp_counters *cnt;      /* [layer * npol + i] */
    uint64_t *seq_out;      /* [((layer * npol + i) * nseq + q) * 4 + k] */
    double *bound_time, *bound_h; /* [accounting * L + layer] */
    uint64_t *reads;
    kvp_error *err;
} fast_streams_ctx;

/* The next step of cur as counts: the size *k of its set and its positions below at[j] (h[j],
 * j < nat); a synthetic trace counts them without listing the set, or, for nat = 0, without
 * making it (kvp_cursor_next_counts); another lists it and searches the list.  As
 * kvp_cursor_next: 1, 0 past the last step, or < 0. */
static int step_counts(kvp_cursor *cur, const uint32_t *at, uint32_t nat, uint32_t *k,
                       uint32_t *h, kvp_error *err)
{
    if (kvp_cursor_writes_bits(cur))
        return kvp_cursor_next_counts(cur, at, nat, k, h, err);
    kvp_access a;
    int r = kvp_cursor_next(cur, &a, err);
    if (r <= 0)
        return r;
    *k = a.count;
    for (uint32_t j = 0; j < nat; j++)
        kvp_access_count_below(&a, at[j], k, &h[j]);
    return 1;
}

static int fast_streams_layer(uint32_t l, void *user, atomic_ullong *done)
{
    const fast_streams_ctx *c = user;
    const kvp_streams *si = c->si;
    kvp_error *err = &c->err[l];
    const uint32_t S = si->n, N = kvp_trace_steps(c->tr), H = si->heads;
    const size_t np = c->npol;
    uint32_t *k = malloc((size_t)S * N * sizeof *k);
    uint32_t *h = c->any_static ? malloc((size_t)S * N * sizeof *h) : NULL;
    if (!k || (c->any_static && !h)) {
        free(k);
        free(h);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory for layer %u", l);
    }
    int rc = 0;
    uint64_t reported = 0;
    for (uint32_t i = 0; i < S && rc == 0; i++) {
        kvp_cursor *cur = NULL;
        if ((rc = kvp_cursor_create(&cur, kvp_trace_stream(c->tr, i), l,
                                    kvp_scenario_budget(c->sc), err)) < 0)
            break;
        kvp_cursor_sets_only(cur);
        const uint32_t P = si->prompt[i];
        uint64_t kin = 0, hin = 0; /* the stream's reads, and static's hits */
        for (uint32_t n = 0; n < N; n++) {
            if (c->cancel && *c->cancel) {
                rc = kvp_error_set(err, KVP_EINTR, "interrupted at step %u of layer %u", n, l);
                break;
            }
            /* static's hits: below c[i], and in [P, P + m) */
            uint64_t m = 0;
            uint32_t at[3] = {0, 0, 0}, nat = 0, count, hb[3];
            if (h) {
                m = n <= c->f ? n : c->f + (c->rank[i] < c->r);
                at[0] = c->c[i];
                at[1] = (uint32_t)(P + m);
                at[2] = P;
                nat = m ? 3 : 1;
            }
            int r = step_counts(cur, at, nat, &count, hb, err);
            if (r <= 0) {
                rc = r < 0 ? r : kvp_error_set(err, KVP_ESHAPE, "%s: trace ended early",
                                               kvp_trace_name(c->tr));
                break;
            }
            k[(size_t)n * S + i] = count;
            kin += count;
            if (h) {
                const uint32_t hits = hb[0] + (m ? hb[1] - hb[2] : 0);
                h[(size_t)n * S + i] = hits;
                hin += hits;
            }
        }
        kvp_cursor_free(cur);
        for (size_t p = 0; p < np && rc == 0; p++) {
            uint64_t *q = c->seq_out + (((size_t)l * np + p) * si->nseq + i / H) * 4;
            const uint64_t hits = c->unlimited[p] ? kin : hin;
            q[0] += hits;
            q[1] += kin - hits;
        }
        const uint64_t upto = (uint64_t)N * (i + 1) / S;
        atomic_fetch_add(done, upto - reported);
        reported = upto;
    }
    const double tok = (double)c->tok_bytes;
    for (uint32_t n = 0; n < N && rc == 0; n++) {
        uint64_t kn = 0, hn = 0;
        for (uint32_t i = 0; i < S; i++) {
            kn += k[(size_t)n * S + i];
            if (h)
                hn += h[(size_t)n * S + i];
        }
        for (uint32_t j = 0; j < c->nm; j++) {
            double h_b;
            c->bound_time[(size_t)j * c->L + l] += kvp_step_time_bound(&c->model[j],
                                                                       (double)kn * tok, &h_b);
            c->bound_h[(size_t)j * c->L + l] += h_b;
        }
        c->reads[l] += kn;
        const uint64_t placed = n < c->f ? S : n == c->f ? c->r : 0;
        for (size_t p = 0; p < np; p++) {
            const uint64_t hits = c->unlimited[p] ? kn : hn;
            const uint64_t in_hbm = c->unlimited[p] ? S : placed;
            kvp_counters st = {0};
            st.kv_read[0] = st.read[0] = hits;
            st.kv_read[1] = st.read[1] = kn - hits;
            st.write[0] += in_hbm;
            st.write[1] += S - in_hbm;
            kvp_traffic traffic;
            kvp_traffic_of(&traffic, &st, 2, c->tok_bytes);
            const size_t o = (size_t)l * np + p, per = (size_t)c->L * np;
            for (uint32_t j = 0; j < c->nm; j++)
                c->time_s[j * per + o] += kvp_step_time(&c->model[j], &traffic);
            kvp_counters_add(&c->cnt[o], &st);
        }
    }
    free(k);
    free(h);
    return rc;
}

int kvp_fast_streams_takes(const kvp_scenario *sc, const kvp_trace *tr,
                           const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro)
{
    const kvp_streams *si = kvp_trace_streams(tr);
    if (!si || sc->tiers > 2 || (ro && (ro->check || ro->step_hook)) ||
        !kvp_fast_prefix_takes(ps, n) || (uint64_t)si->n * si->positions > UINT32_MAX)
        return 0;
    for (uint32_t i = 0; i < si->n; i++)
        if (si->steps[i] != kvp_trace_steps(tr))
            return 0;
    return 1;
}

int kvp_fast_streams_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                         size_t n, const kvp_run_options *ro, kvp_result *res,
                         kvp_pass_sums *sums, kvp_error *err)
{
    const kvp_accts ac = kvp_accts_one(sc);
    return kvp_fast_streams_run_accts(&ac, tr, ps, n, ro, res, sums, err);
}

int kvp_fast_streams_run_accts(const kvp_accts *ac, const kvp_trace *tr,
                               const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                               kvp_result *res, kvp_pass_sums *sums, kvp_error *err)
{
    const kvp_scenario *sc = ac->sc[0];
    if (!kvp_fast_streams_takes(sc, tr, ps, n, ro))
        return kvp_error_set(err, KVP_EINVAL, "fast streams run: static and unlimited only, "
                             "unchecked, two tiers, every stream the same steps");
    kvp_derived d;
    int rc;
    if ((rc = kvp_scenario_validate(sc, err)) < 0 || (rc = kvp_derive_for(sc, tr, &d, err)) < 0 ||
        (rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    const kvp_streams *si = kvp_trace_streams(tr);
    const uint32_t L = kvp_trace_layers(tr), S = si->n;
    const size_t np = n ? n : 1;
    fast_streams_ctx c;
    memset(&c, 0, sizeof c);
    c.sc = sc;
    c.tr = tr;
    c.si = si;
    if ((rc = kvp_accts_models(ac, tr, c.model, err)) < 0)
        return rc;
    c.nm = ac->n;
    c.L = L;
    c.tok_bytes = d.tok_bytes;
    c.npol = n;
    c.cancel = ro ? ro->cancel : NULL;
    const uint32_t static_slots = kvp_slots(sc, &d, 1);
    uint32_t *slots = calloc(np, sizeof *slots);
    int *unl = calloc(np, sizeof *unl);
    uint32_t *cpre = calloc(S, sizeof *cpre), *rank = calloc(S, sizeof *rank);
    int *lrc = calloc(L, sizeof *lrc);
    c.time_s = calloc((size_t)c.nm * L * np, sizeof *c.time_s);
    c.cnt = calloc((size_t)L * np, sizeof *c.cnt);
    c.seq_out = calloc((size_t)L * np * si->nseq * 4, sizeof *c.seq_out);
    c.bound_time = calloc((size_t)c.nm * L, sizeof *c.bound_time);
    c.bound_h = calloc((size_t)c.nm * L, sizeof *c.bound_h);
    c.reads = calloc(L, sizeof *c.reads);
    c.err = calloc(L, sizeof *c.err);
    if (!slots || !unl || !cpre || !rank || !lrc || !c.time_s || !c.cnt || !c.seq_out ||
        !c.bound_time || !c.bound_h || !c.reads || !c.err) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        unl[i] = ps[i].ops == &kvp_policy_unlimited;
        slots[i] = unl[i] ? KVP_UNLIMITED_SLOTS : static_slots;
        c.any_static |= !unl[i];
    }
    /* static's initial placement (kvp_initial_fill): prompt blocks in virtual order */
    uint64_t held = 0, prompts = 0;
    for (uint32_t i = 0; i < S; i++)
        prompts += si->prompt[i];
    if (prompts <= static_slots) {
        for (uint32_t i = 0; i < S; i++)
            cpre[i] = si->prompt[i];
        held = prompts;
    } else {
        for (uint32_t p = 0; held < static_slots; p++)
            for (uint32_t i = 0; i < S && held < static_slots; i++)
                if (p < si->prompt[i]) {
                    cpre[i] = p + 1;
                    held++;
                }
    }
    for (uint32_t i = 0; i < S; i++)
        for (uint32_t j = 0; j < S; j++)
            rank[i] += si->prompt[j] < si->prompt[i] || (si->prompt[j] == si->prompt[i] && j < i);
    c.f = (static_slots - held) / S;
    c.r = (static_slots - held) % S;
    c.c = cpre;
    c.rank = rank;
    c.unlimited = unl;
    kvp_parallel_layers(L, ro, (uint64_t)L * kvp_trace_steps(tr), fast_streams_layer, &c, lrc);
    for (uint32_t l = 0; l < L; l++)
        if (lrc[l] < 0) {
            rc = lrc[l];
            if (err)
                *err = c.err[l];
            goto done;
        }
    rc = kvp_result_fill_layers_accts(res, ac, tr, ps, n, L, c.time_s, c.cnt, slots, 1, err);
    for (size_t i = 0; i < n * ac->n && rc >= 0; i++)
        rc = kvp_result_fill_seqs(&res[i], si->nseq, L, n, i % (n ? n : 1), c.seq_out,
                                  c.tok_bytes, err);
    if (sums && rc >= 0)
        pass_sums(sums, c.nm, L, c.bound_time, c.bound_h, c.reads);
done:
    free(slots);
    free(unl);
    free(cpre);
    free(rank);
    free(lrc);
    free(c.time_s);
    free(c.cnt);
    free(c.seq_out);
    free(c.bound_time);
    free(c.bound_h);
    free(c.reads);
    free(c.err);
    return rc;
}
