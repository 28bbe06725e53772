/*
 * `page`: Quest-like, with perfect knowledge of the current step's reads, moving whole pages of
 * page_tokens tokens (docs/MODEL.md §5; docs/POLICIES.md).  The target is the `slots` read
 * pages of highest summed score (ties: resident first, then lower index); the new set is the target
 * plus the previously resident pages of lowest index that still fit.  A promoted page drags
 * its unread tokens along; the engine charges them.
 */
#include "policy/policy.h"
#include "base/error.h"
#include "base/simd.h"
#include "engine/cost.h"
#include "base/select.h"

#include <math.h>
#include <stdlib.h>

/* On x86-64 with GCC or clang the passes over the read entries and the pages (the band's
 * split, the walk that lists the pages to demote) have an AVX-512 form, chosen at run time
 * (KVPLACE_SSE2_ONLY turns it off, src/base/simd.h): the same lists, in the same order. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(KVP_NO_SIMD)
#define PAGE_AVX512 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,popcnt")))
#else
#define PAGE_AVX512 0
#endif

enum { PAGE_TOKENS }; /* index into page_params */

static const kvp_policy_param page_params[] = {
    {"page_tokens", 0, 0, 65536, 1, "page size in tokens (0: the scenario's page_tokens)"},
};

/* The overflow selection's band (select_target): its first half-width, as a fraction
 * 1 / BAND_INIT of the threshold score, and the number of entries it aims to hold. */
#define BAND_INIT 64.0
#define BAND_TARGET 128u

typedef struct page_state {
    uint32_t *mark; /* mark[b] == n + 1: page b is in the target of step n */
    uint32_t *idx;  /* the target's read entries, nblocks entries */
    uint32_t *band; /* the selection's band, then the pages to promote */
    uint32_t *down; /* the pages to demote */
    uint8_t *first; /* per read entry: its page is resident (ranks first on equal scores) */
    double centre, width; /* the band: last threshold, half-width (0: no band yet) */
    uint64_t rng;   /* pivot choice of the selection */
    struct ranked *ranked; /* more than two tiers: the read pages out of HBM, by rank */
    uint32_t *below;       /* and their pages, for kvp_step_rank_below */
    int wide;              /* the AVX-512 forms of split and the demotions' walk */
} page_state;

typedef struct ranked {
    double score;
    uint32_t page;
} ranked;

static void page_resolve(double *param, const kvp_scenario *sc)
{
    if (param[PAGE_TOKENS] == 0)
        param[PAGE_TOKENS] = sc->page_tokens;
}

static uint32_t page_block_tokens(const double *param, const kvp_scenario *sc)
{
    uint32_t g = (uint32_t)param[PAGE_TOKENS];
    return g ? g : sc->page_tokens;
}

static void page_free(void *state)
{
    page_state *st = state;
    if (!st)
        return;
    free(st->mark);
    free(st->idx);
    free(st->band);
    free(st->down);
    free(st->first);
    free(st->ranked);
    free(st->below);
    free(st);
}

static int page_init(void **state, const kvp_layer_info *li, const kvp_step *first,
                     uint8_t *resident, kvp_error *err)
{
    (void)first;
    *state = NULL;
    size_t n = li->nblocks ? li->nblocks : 1;
    page_state *st = calloc(1, sizeof *st);
    if (st) {
        st->mark = calloc(n, sizeof *st->mark);
        st->idx = malloc(n * sizeof *st->idx);
        st->band = malloc(n * sizeof *st->band);
        st->down = malloc(n * sizeof *st->down);
        st->first = malloc(n);
    }
    int more = st && li->model && li->model->tiers > 2;
    if (more) {
        st->ranked = malloc(n * sizeof *st->ranked);
        st->below = malloc(n * sizeof *st->below);
    }
    if (!st || !st->mark || !st->idx || !st->band || !st->down || !st->first ||
        (more && (!st->ranked || !st->below))) {
        page_free(st);
        return kvp_error_set(err, KVP_ENOMEM, "page: out of memory for layer %u", li->layer);
    }
    st->rng = KVP_SELECT_SEED;
#if PAGE_AVX512
    __builtin_cpu_init();
    st->wide = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && kvp_simd_wide();
#endif
    *state = st;
    kvp_initial_default(li, resident);
    return 0;
}

/* Higher summed score first, then the lower page. */
static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->page < y->page ? -1 : x->page > y->page;
}

/* More than two tiers: the pages read this step and left out of HBM, ranked by summed score
 * as the target is, fill the tiers below HBM fastest first (docs/POLICIES.md). */
static void rank_below(page_state *st, kvp_step *s)
{
    const double *score = kvp_step_read_score(s);
    uint32_t m = 0;
    for (uint32_t i = 0; i < s->nread; i++)
        if (!s->resident[s->read_block[i]])
            st->ranked[m++] = (ranked){score[i], s->read_block[i]};
    qsort(st->ranked, m, sizeof *st->ranked, ranked_cmp);
    for (uint32_t i = 0; i < m; i++)
        st->below[i] = st->ranked[i].page;
    kvp_step_rank_below(s, st->below, m, 1);
}

/* The entries i < n with score[i] > hi into idx[*nabove ..], those in (lo, hi] into
 * band[*nband ..], ascending; *nabove and *nband grow by their counts.  No branch: which
 * side an entry falls is not predictable. */
static void split_plain(const double *score, uint32_t i, uint32_t n, double lo, double hi,
                        uint32_t *idx, uint32_t *nabove, uint32_t *band, uint32_t *nband)
{
    uint32_t na = *nabove, nb = *nband;
    for (; i < n; i++) {
        double x = score[i];
        uint32_t above = x > hi;
        idx[na] = i;
        na += above;
        band[nb] = i;
        nb += (x > lo) & !above;
    }
    *nabove = na;
    *nband = nb;
}

#if PAGE_AVX512
/* 8 entries at a time: the two comparisons as masks (false for a NaN, as the plain >), the
 * entries of each compressed in a register and stored by a mask of as many. */
AVX512 static void split_avx512(const double *score, uint32_t n, double lo, double hi,
                                uint32_t *idx, uint32_t *nabove, uint32_t *band,
                                uint32_t *nband)
{
    const __m512d vlo = _mm512_set1_pd(lo), vhi = _mm512_set1_pd(hi);
    const __m256i step = _mm256_set1_epi32(8);
    __m256i vi = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    uint32_t i = 0, na = 0, nb = 0;
    for (; i + 8 <= n; i += 8, vi = _mm256_add_epi32(vi, step)) {
        const __m512d x = _mm512_loadu_pd(score + i);
        const __mmask8 above = _mm512_cmp_pd_mask(x, vhi, _CMP_GT_OQ);
        const __mmask8 in = _mm512_cmp_pd_mask(x, vlo, _CMP_GT_OQ) & (__mmask8)~above;
        const uint32_t ca = (uint32_t)__builtin_popcount(above);
        const uint32_t cb = (uint32_t)__builtin_popcount(in);
        _mm256_mask_storeu_epi32(idx + na, (__mmask8)((1u << ca) - 1),
                                 _mm256_maskz_compress_epi32(above, vi));
        _mm256_mask_storeu_epi32(band + nb, (__mmask8)((1u << cb) - 1),
                                 _mm256_maskz_compress_epi32(in, vi));
        na += ca;
        nb += cb;
    }
    *nabove = na;
    *nband = nb;
    split_plain(score, i, n, lo, hi, idx, nabove, band, nband);
}
#endif

static void split(const double *score, uint32_t n, double lo, double hi, uint32_t *idx,
                  uint32_t *nabove, uint32_t *band, uint32_t *nband, int wide)
{
#if PAGE_AVX512
    if (wide) {
        split_avx512(score, n, lo, hi, idx, nabove, band, nband);
        return;
    }
#endif
    (void)wide;
    split_plain(score, 0, n, lo, hi, idx, nabove, band, nband);
}

/* The resident pages b < top outside the target (mark[b] != gen), from the highest down,
 * into down[*ndown ..] until it holds excess (or the pages run out); *ndown grows by their
 * count.  No branch on a page. */
static void walk_plain(const uint8_t *res, const uint32_t *mark, uint32_t gen, uint32_t top,
                       uint32_t excess, uint32_t *down, uint32_t *ndown)
{
    uint32_t nd = *ndown, b = top;
    while (nd < excess && b-- > 0) {
        down[nd] = b;
        nd += res[b] & (mark[b] != gen);
    }
    *ndown = nd;
}

#if PAGE_AVX512
/* 16 pages at a time, highest first: the lanes reversed (lane j for page b - 1 - j), the
 * pages kept compressed in a register, and of them as many stored as the count still needs. */
AVX512 static void walk_avx512(const uint8_t *res, const uint32_t *mark, uint32_t gen,
                               uint32_t top, uint32_t excess, uint32_t *down, uint32_t *ndown)
{
    const __m512i rev = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i vgen = _mm512_set1_epi32((int)gen);
    uint32_t nd = *ndown, b = top;
    for (; nd < excess && b >= 16; b -= 16) {
        const __m512i r = _mm512_permutexvar_epi32(
            rev, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(res + b - 16))));
        const __m512i m =
            _mm512_permutexvar_epi32(rev, _mm512_loadu_si512((const void *)(mark + b - 16)));
        const __mmask16 keep = _mm512_test_epi32_mask(r, r) & _mm512_cmpneq_epi32_mask(m, vgen);
        const uint32_t got = (uint32_t)__builtin_popcount(keep);
        const uint32_t take = got < excess - nd ? got : excess - nd;
        const __m512i pages = _mm512_sub_epi32(_mm512_set1_epi32((int)(b - 1)), lane);
        _mm512_mask_storeu_epi32(down + nd, (__mmask16)((1u << take) - 1),
                                 _mm512_maskz_compress_epi32(keep, pages));
        nd += take;
    }
    *ndown = nd;
    walk_plain(res, mark, gen, b, excess, down, ndown);
}
#endif

/* Puts in st->idx[0..nt) the nt read entries that rank highest: higher summed score, then
 * resident before this step, then lower page (read entries ascend by page, so the lower entry).
 * From one step to the next the threshold score (the nt-th best) moves little, so the entries
 * are first split by value around the last one: those above the band (lo, hi] are in, those
 * below it out, and only the band's go through the quickselect (src/base/select.c).  Each group
 * ranks above the next whatever the residency, so the set is that of a selection over all the
 * entries (their order is not, and nothing depends on it); a band that misses the threshold
 * (the first step, or a jump) costs a full selection and a wider band. */
static void select_target(page_state *st, const kvp_step *s, const double *score, uint32_t nt)
{
    const uint32_t n = s->nread;
    const uint32_t *rb = s->read_block;
    const uint8_t *res = s->resident;
    uint32_t *idx = st->idx, *band = st->band, nabove = 0, nband = 0;
    const double lo = st->centre - st->width, hi = st->centre + st->width;
    double t;
    if (st->width > 0)
        split(score, n, lo, hi, idx, &nabove, band, &nband, st->wide);
    if (st->width > 0 && nabove <= nt && nt - nabove <= nband) {
        uint32_t r = nt - nabove;
        for (uint32_t j = 0; j < nband; j++)
            st->first[band[j]] = res[rb[band[j]]];
        kvp_select_top(band, nband, r, score, st->first, &st->rng);
        t = hi; /* the least score in; if r == 0 it is above hi */
        for (uint32_t j = 0; j < r; j++) {
            idx[nabove + j] = band[j];
            t = score[band[j]] < t ? score[band[j]] : t;
        }
        st->width *= nband > 2 * BAND_TARGET ? 0.75 : nband < BAND_TARGET / 2 ? 1.25 : 1;
        st->centre = t;
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        idx[i] = i;
        st->first[i] = res[rb[i]];
    }
    kvp_select_top(idx, n, nt, score, st->first, &st->rng);
    t = HUGE_VAL;
    for (uint32_t j = 0; j < nt; j++)
        t = score[idx[j]] < t ? score[idx[j]] : t;
    /* A threshold of 0 leaves the width 0: full selections from then on. */
    if (nt > 0) {
        st->centre = t;
        st->width = fmax(2 * st->width, fabs(t) / BAND_INIT);
    }
}

static int page_step(void *state, kvp_step *s, kvp_error *err)
{
    page_state *st = state;
    const uint32_t slots = s->li->slots, gen = s->n + 1;
    const uint32_t nt = s->nread < slots ? s->nread : slots; /* pages in the target */
    const uint32_t *rb = s->read_block;
    const uint8_t *res = s->resident;
    uint32_t *mark = st->mark;

    /* The target, ranked on the residency before any move. */
    const uint32_t *idx = st->idx;
    if (s->nread > slots)
        select_target(st, s, kvp_step_read_score(s), nt);
    else
        idx = NULL; /* every read entry */
    /* Mark it, and list its pages out of HBM (no branch: residency is not predictable). */
    uint32_t *up = st->band, nup = 0, target_resident = 0;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t b = rb[idx ? idx[i] : i];
        mark[b] = gen;
        target_resident += res[b];
        up[nup] = b;
        nup += !res[b];
    }

    /* Resident pages outside the target keep the free slots, lowest index first: demote the
     * highest-index ones, walking down from the last page that exists. */
    const uint32_t others = s->nresident - target_resident, free_slots = slots - nt;
    const uint32_t excess = others > free_slots ? others - free_slots : 0;
    uint32_t *down = st->down, ndown = 0;
#if PAGE_AVX512
    if (st->wide)
        walk_avx512(res, mark, gen, s->exist_blocks, excess, down, &ndown);
    else
#endif
        walk_plain(res, mark, gen, s->exist_blocks, excess, down, &ndown);
    if (ndown < excess)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: resident pages beyond "
                             "the existing ones", s->li->layer, s->n);
    uint32_t done = kvp_step_demote_many(s, down, ndown);
    if (done < ndown)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: cannot demote page %u",
                             s->li->layer, s->n, down[done]);
    done = kvp_step_promote_many(s, up, nup);
    if (done < nup)
        return kvp_error_set(err, KVP_ECHECK, "page: layer %u step %u: cannot promote page %u",
                             s->li->layer, s->n, up[done]);
    int rc;
    if ((rc = kvp_step_place_new_default(s)) < 0 || !st->below)
        return rc;
    rank_below(st, s);
    return 0;
}

const kvp_policy_ops kvp_policy_page = {
    .name = "page",
    .doc = "Quest-like: the read pages of highest score move to HBM whole",
    .params = page_params,
    .nparams = sizeof page_params / sizeof *page_params,
    .caps = KVP_CAP_SCORES | KVP_CAP_ONLINE | KVP_CAP_STREAMS |
            KVP_CAP_WEIGHT_BLIND, /* reads the model's tiers alone */
    .resolve = page_resolve,
    .block_tokens = page_block_tokens,
    .init = page_init,
    .step = page_step,
    .free = page_free,
};
