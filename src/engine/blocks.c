/*
 * A step's reads grouped by block of g > 1 tokens, and the blocks' score sums
 * (src/engine/blocks.h; docs/PERF.md §40).
 */
#include "engine/blocks.h"
#include "base/simd.h"

#include <pthread.h>

/* On x86-64 with GCC or clang the sums have an AVX-512 form (F and VL), chosen at run time
 * (KVPLACE_SSE2_ONLY turns it off, src/base/simd.h); not under KVP_NO_SIMD. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(KVP_NO_SIMD)
#define BLOCKS_AVX512 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512vl")))
#define VIEW __attribute__((target("avx512f,avx512vl,avx512vpopcntdq")))
#else
#define BLOCKS_AVX512 0
#endif

/* GCC: a popcnt clone of the pass over the bits, chosen at load time (as src/engine/fast.c). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(KVP_NO_SIMD)
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define POPCNT_CLONES
#endif

uint32_t kvp_blocks_of_pos(const uint32_t *pos, uint32_t n, uint32_t g, uint32_t *block,
                           uint32_t *count)
{
    uint32_t nread = 0;
    uint32_t b = UINT32_MAX; /* the last block read; b + 1 wraps to block 0 */
    uint64_t end = 0;        /* its end, (b + 1) g */
    for (uint32_t i = 0; i < n;) {
        /* Most blocks of a context are read: try the next block before dividing. */
        if (pos[i] < end + g) {
            b++;
            end += g;
        } else {
            b = pos[i] / g;
            end = ((uint64_t)b + 1) * g;
        }
        uint32_t j = i;
        while (j < n && pos[j] < end)
            j++;
        block[nread] = b;
        count[nread++] = j - i;
        i = j;
    }
    return nread;
}

/* g divides 64: a word's blocks are its g-bit fields, counted with no carry from one to the
 * next.  Blocks past the context in the last word have no bits, so they write an entry
 * that none keeps (at index at most ceil(context / g)). */
POPCNT_CLONES static uint32_t of_words(const uint64_t *bits, uint32_t context, uint32_t g,
                                       uint32_t *block, uint32_t *count)
{
    const uint64_t field = g == 64 ? ~0ull : (1ull << g) - 1;
    const uint32_t words = (uint32_t)(((uint64_t)context + 63) / 64);
    uint32_t nread = 0, b = 0;
    for (uint32_t w = 0; w < words; w++) {
        const uint64_t x = bits[w];
        for (uint32_t e = 0; e < 64; e += g, b++) {
            const uint32_t c = (uint32_t)__builtin_popcountll(x >> e & field);
            block[nread] = b;
            count[nread] = c;
            nread += c != 0;
        }
    }
    return nread;
}

/* Any g: block b's count is rank(hi) - rank(lo) with rank(x) the set bits below x, the ranks
 * at the blocks' ends kept as the popcount of the whole words passed plus that of the current
 * word's part. */
POPCNT_CLONES static uint32_t of_ranks(const uint64_t *bits, uint32_t context, uint32_t g,
                                       uint32_t *block, uint32_t *count)
{
    uint32_t nread = 0, w = 0, whole = 0, rank = 0, b = 0;
    for (uint64_t lo = 0; lo < context; lo += g, b++) {
        const uint64_t hi = lo + g < context ? lo + g : context;
        for (; w < hi / 64; w++)
            whole += (uint32_t)__builtin_popcountll(bits[w]);
        const uint32_t part = (uint32_t)(hi % 64); /* hi % 64 > 0: word w exists */
        const uint32_t r =
            whole + (part ? (uint32_t)__builtin_popcountll(bits[w] & ((1ull << part) - 1)) : 0);
        block[nread] = b;
        count[nread] = r - rank;
        nread += r != rank;
        rank = r;
    }
    return nread;
}

/* Every existing block writes its entry and only a block read keeps it: no branch on
 * whether a block is read, which is not predictable. */
uint32_t kvp_blocks_of_bits(const uint64_t *bits, uint32_t context, uint32_t g,
                            uint32_t *block, uint32_t *count)
{
    return 64 % g == 0 ? of_words(bits, context, g, block, count)
                       : of_ranks(bits, context, g, block, count);
}

static void sums_plain(const float *score, const uint32_t *count, uint32_t n, double *sum)
{
    for (uint32_t i = 0; i < n; i++) {
        double t = 0;
        for (const float *end = score + count[i]; score < end; score++)
            t += (double)*score;
        sum[i] = t;
    }
}

#if BLOCKS_AVX512
/* Up to 16 reads of an entry whose reads start at p and number c, from its q-th on, as a row
 * of 16 floats (zeros past its count; nothing is loaded there). */
AVX512 static inline __m512 row16(const float *p, uint32_t c, uint32_t q)
{
    const uint32_t left = c > q ? c - q : 0, take = left < 16 ? left : 16;
    return _mm512_maskz_loadu_ps((__mmask16)((1u << take) - 1), take ? p + q : p);
}

/* Half h (0: low, 1: high) of v's 16 floats, widened to 8 doubles. */
AVX512 static inline __m512d half_pd(__m512 v, int h)
{
    const __m256 x = h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))
                       : _mm512_castps512_ps256(v);
    return _mm512_cvtps_pd(x);
}

/* s plus the columns of the 8 rows u0..u3 (rows 0-3) and u4..u7 (rows 4-7), each already
 * 4 x 4-transposed within its 128-bit lanes (u_m's lane L holds column 4 L + m of its four
 * rows), in column order: columns 0-7 through the permutation lo (low half: columns m,
 * high half: 4 + m), and, if more than 8 columns are wanted, 8-15 through hi. */
AVX512 static inline __m512d add_columns(__m512d s, __m512 u0, __m512 u1, __m512 u2, __m512 u3,
                                         __m512 u4, __m512 u5, __m512 u6, __m512 u7,
                                         uint32_t cols)
{
    const __m512i lo = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    __m512 c0 = _mm512_permutex2var_ps(u0, lo, u4), c1 = _mm512_permutex2var_ps(u1, lo, u5);
    __m512 c2 = _mm512_permutex2var_ps(u2, lo, u6), c3 = _mm512_permutex2var_ps(u3, lo, u7);
    for (int h = 0; h < 2; h++) {
        s = _mm512_add_pd(s, half_pd(c0, h));
        s = _mm512_add_pd(s, half_pd(c1, h));
        s = _mm512_add_pd(s, half_pd(c2, h));
        s = _mm512_add_pd(s, half_pd(c3, h));
    }
    if (cols <= 8)
        return s;
    c0 = _mm512_permutex2var_ps(u0, hi, u4), c1 = _mm512_permutex2var_ps(u1, hi, u5);
    c2 = _mm512_permutex2var_ps(u2, hi, u6), c3 = _mm512_permutex2var_ps(u3, hi, u7);
    for (int h = 0; h < 2; h++) {
        s = _mm512_add_pd(s, half_pd(c0, h));
        s = _mm512_add_pd(s, half_pd(c1, h));
        s = _mm512_add_pd(s, half_pd(c2, h));
        s = _mm512_add_pd(s, half_pd(c3, h));
    }
    return s;
}

/* The sums of 8 entries, lane k for entry k, whose reads start at p[k] and number c[k]: 16
 * of each entry's reads loaded as a row (zeros past its count), the 8 rows transposed, and
 * column j (every entry's j-th read) widened and added to the lanes, j ascending: each lane's
 * additions are the plain loop's, in its order, followed by additions of +0.0 past its count,
 * which leave a sum as it is (a sum that starts at +0.0 is never -0.0; x + 0.0 == x for every
 * other x, NaN and infinities included).  Columns past the longest entry are skipped, 8 at a
 * time. */
AVX512 __attribute__((always_inline)) static inline __m512d sums8(const float *const *p,
                                                                const uint32_t *c)
{
    uint32_t most = 0;
    for (uint32_t k = 0; k < 8; k++)
        most = c[k] > most ? c[k] : most;
    __m512d s = _mm512_setzero_pd();
    for (uint32_t q = 0; q < most; q += 16) {
        const __m512 r0 = row16(p[0], c[0], q), r1 = row16(p[1], c[1], q);
        const __m512 r2 = row16(p[2], c[2], q), r3 = row16(p[3], c[3], q);
        const __m512 r4 = row16(p[4], c[4], q), r5 = row16(p[5], c[5], q);
        const __m512 r6 = row16(p[6], c[6], q), r7 = row16(p[7], c[7], q);
        const __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
        const __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
        const __m512 t4 = _mm512_unpacklo_ps(r4, r5), t5 = _mm512_unpackhi_ps(r4, r5);
        const __m512 t6 = _mm512_unpacklo_ps(r6, r7), t7 = _mm512_unpackhi_ps(r6, r7);
        s = add_columns(s, _mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xEE),
                        _mm512_shuffle_ps(t1, t3, 0x44), _mm512_shuffle_ps(t1, t3, 0xEE),
                        _mm512_shuffle_ps(t4, t6, 0x44), _mm512_shuffle_ps(t4, t6, 0xEE),
                        _mm512_shuffle_ps(t5, t7, 0x44), _mm512_shuffle_ps(t5, t7, 0xEE),
                        most - q);
    }
    return s;
}

/* 8 entries at a time (sums8), entry i + k's reads following entry i + k - 1's. */
AVX512 static void sums_avx512(const float *score, const uint32_t *count, uint32_t n,
                               double *sum)
{
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float *p[8];
        p[0] = score;
        for (uint32_t k = 1; k < 8; k++)
            p[k] = p[k - 1] + count[i + k - 1];
        _mm512_storeu_pd(sum + i, sums8(p, count + i));
        score = p[7] + count[i + 7];
    }
    sums_plain(score, count + i, n - i, sum + i);
}

/* A block row's entries: lane i (stream i) of cnt and s as block b0 + i, its count and its
 * sum, for the lanes with reads, in lane order; returns how many. */
AVX512 static inline uint32_t put_row(uint32_t b0, __m256i cnt, __m512d s, uint32_t *block,
                                      uint32_t *count, double *sum)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __mmask8 has = _mm256_cmpgt_epi32_mask(cnt, _mm256_setzero_si256());
    const __mmask8 first = (__mmask8)((1u << __builtin_popcount(has)) - 1);
    const __m256i vb = _mm256_add_epi32(lane, _mm256_set1_epi32((int)b0));
    _mm256_mask_storeu_epi32(block, first, _mm256_maskz_compress_epi32(has, vb));
    _mm256_mask_storeu_epi32(count, first, _mm256_maskz_compress_epi32(has, cnt));
    _mm512_mask_storeu_pd(sum, first, _mm512_maskz_compress_pd(has, s));
    return (uint32_t)__builtin_popcount(has);
}

/* kvp_blocks_of_view with 2, 4 or 8 streams and g dividing 64: R = 8 / S block rows at a
 * time, lane k holding row b + k / S of stream k % S (block (b + k / S) S + k % S = b S + k,
 * so the lanes are in the entries' order).  The rows' words (R g bits of each stream: part
 * of one word, or R g / 64 whole ones, S side by side) loaded at once and put in their lanes
 * by a permutation; the counts by a popcount of each lane's g-bit field; a lane's next read
 * is its stream's pointer plus the counts of the rows before it in the group (a scan over
 * the lanes S apart); the sums by sums8 with those pointers; the lanes with reads compressed
 * out in lane order.  With fewer than 8 streams a row alone would leave lanes empty, each
 * costing a row's transposition.  Counts and pointers go to memory by whole vectors (one
 * store read back lane by lane forwards; lanes stored one by one and read back as a vector
 * would stall). */
VIEW static uint32_t view_avx512(const uint64_t *bits, uint32_t S, const uint32_t *ctx,
                                 const float *const *score, uint32_t g, uint32_t *block,
                                 uint32_t *count, double *sum)
{
    const __m512i field = _mm512_set1_epi64(g == 64 ? -1ll : (long long)((1ull << g) - 1));
    const uint32_t R = 8 / S; /* rows of a group: R g bits of each stream, within a word or
                               * whole words (g and R divide 64, b is a multiple of R) */
    /* a stream with no scores loads nothing, but from a mapped address: a masked load from
     * an unmapped one (NULL) is not a fault but costs a microcode assist each time */
    static const float none[16];
    _Alignas(64) const float *p[8];
    _Alignas(64) uint64_t idx[8], sh[8], tot[8];
    _Alignas(32) uint32_t c[8];
    uint32_t rows = 0, n = 0;
    for (uint32_t k = 0; k < 8; k++) {
        const uint32_t i = k % S, j = k / S;
        const uint32_t r = (uint32_t)(((uint64_t)ctx[i] + g - 1) / g);
        rows = r > rows ? r : rows;
        p[k] = score && score[i] ? score[i] : none;
        idx[k] = (uint64_t)(j * g / 64) * S + i; /* the lane's word, from the group's first */
        sh[k] = j * g % 64;                        /* and its field's place there */
        tot[k] = (uint64_t)(R - 1) * S + i;       /* the lane with its stream's group total */
    }
    if (rows == 0)
        return 0;
    const uint32_t words = ((rows - 1) * g / 64 + 1) * S; /* the view's words that hold rows */
    const __m512i vidx = _mm512_load_si512((const void *)idx);
    const __m512i vsh = _mm512_load_si512((const void *)sh);
    const __m512i vtot = _mm512_load_si512((const void *)tot);
    __m512i pv = _mm512_load_si512((const void *)p); /* lane k: stream k % S's next read */
    for (uint32_t b = 0; b < rows; b += R) {
        const uint32_t w = b * g / 64 * S, left = words - w;
        const __mmask8 m = (__mmask8)(left >= 8 ? 0xFF : (1u << left) - 1);
        const __m512i x = _mm512_permutexvar_epi64(vidx, _mm512_maskz_loadu_epi64(m, bits + w));
        const __m512i at = _mm512_add_epi64(vsh, _mm512_set1_epi64(b * g % 64));
        const __m512i cnt = _mm512_popcnt_epi64(_mm512_and_si512(_mm512_srlv_epi64(x, at), field));
        const __m256i cnt32 = _mm512_cvtepi64_epi32(cnt);
        __m512d s = _mm512_setzero_pd();
        if (score) {
            /* the counts of the rows before each lane's, in its stream: a scan S lanes apart */
            __m512i inc = cnt;
            for (uint32_t d = S; d < 8; d *= 2)
                inc = _mm512_add_epi64(inc, _mm512_maskz_expand_epi64((__mmask8)(0xFFu << d),
                                                                      inc));
            const __m512i before = _mm512_sub_epi64(inc, cnt);
            _mm256_store_si256((__m256i *)(void *)c, cnt32);
            _mm512_store_si512((void *)p, _mm512_add_epi64(pv, _mm512_slli_epi64(before, 2)));
            s = sums8(p, c);
            pv = _mm512_add_epi64(pv, _mm512_slli_epi64(_mm512_permutexvar_epi64(vtot, inc), 2));
        }
        n += put_row(b * S, cnt32, s, block + n, count + n, sum + n);
    }
    return n;
}

/* kvp_blocks_of_streams with 2, 4 or 8 streams: a position's S bits are a lane mask (lane i,
 * stream i), its reads' scores (consecutive in score[], stream ascending) are expanded into
 * those lanes and added to the row's sums there: each lane's additions are its stream's
 * reads in position order, from +0.0, as the plain loop adds them; a lane not read at a
 * position is left as it is (a masked add).  The counts likewise, one lane a stream. */
AVX512 static uint32_t streams_avx512(const uint64_t *bits, uint32_t context, uint32_t S,
                                      uint32_t g, const float *score, uint32_t *block,
                                      uint32_t *count, double *sum)
{
    const unsigned lg = (unsigned)__builtin_ctz(S), shift = 6 - lg; /* p >> shift: p's word */
    const uint64_t field = (1ull << S) - 1;
    const uint32_t npos = context >> lg, per = 64 >> lg;
    const __m256i one = _mm256_set1_epi32(1);
    uint32_t n = 0, k = 0; /* entries, reads so far */
    for (uint32_t p0 = 0, b = 0; p0 < npos; p0 += g, b++) {
        const uint32_t p1 = npos - p0 > g ? p0 + g : npos;
        __m512d acc = _mm512_setzero_pd();
        __m256i cnt = _mm256_setzero_si256();
        for (uint32_t p = p0; p < p1; p++) {
            const __mmask8 m = (__mmask8)(bits[p >> shift] >> ((p & (per - 1)) << lg) & field);
            const uint32_t c = (uint32_t)__builtin_popcount(m);
            cnt = _mm256_mask_add_epi32(cnt, m, cnt, one);
            if (score) {
                const __m256 v = _mm256_maskz_loadu_ps((__mmask8)((1u << c) - 1), score + k);
                acc = _mm512_mask_add_pd(acc, m, acc,
                                         _mm512_cvtps_pd(_mm256_maskz_expand_ps(m, v)));
            }
            k += c;
        }
        n += put_row(b * S, cnt, acc, block + n, count + n, sum + n);
    }
    return n;
}

/* kvp_tally_streams: stream i's bits of 8 words at a time (a mask of its bits, the same in
 * every word as 64 is a multiple of S), counted by VPOPCNTQ into lane sums; the words past
 * the last multiple of 8, one at a time. */
VIEW static void tally_avx512(const uint64_t *set, const uint64_t *res, size_t nw, uint32_t S,
                              uint64_t *reads, uint64_t *hits)
{
    __m512i m[8], r[8], h[8];
    uint64_t mask = 0;
    for (uint32_t b = 0; b < 64; b += S)
        mask |= 1ull << b;
    for (uint32_t i = 0; i < S; i++) {
        m[i] = _mm512_set1_epi64((long long)(mask << i));
        r[i] = h[i] = _mm512_setzero_si512();
    }
    size_t w = 0;
    for (; w + 8 <= nw; w += 8) {
        const __m512i x = _mm512_loadu_si512((const void *)(set + w));
        const __m512i y = _mm512_and_si512(x, _mm512_loadu_si512((const void *)(res + w)));
        for (uint32_t i = 0; i < S; i++) {
            r[i] = _mm512_add_epi64(r[i], _mm512_popcnt_epi64(_mm512_and_si512(x, m[i])));
            h[i] = _mm512_add_epi64(h[i], _mm512_popcnt_epi64(_mm512_and_si512(y, m[i])));
        }
    }
    for (uint32_t i = 0; i < S; i++) {
        uint64_t cr = (uint64_t)_mm512_reduce_add_epi64(r[i]);
        uint64_t ch = (uint64_t)_mm512_reduce_add_epi64(h[i]);
        for (size_t v = w; v < nw; v++) {
            cr += (uint64_t)__builtin_popcountll(set[v] & mask << i);
            ch += (uint64_t)__builtin_popcountll(set[v] & res[v] & mask << i);
        }
        reads[i] = cr;
        hits[i] = ch;
    }
}

static int has_view;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int has_avx512;

static void probe(void)
{
    __builtin_cpu_init();
    has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                 kvp_simd_wide();
    has_view = has_avx512 && __builtin_cpu_supports("avx512vpopcntdq");
}
#endif

int kvp_block_sums_wide(void)
{
#if BLOCKS_AVX512
    pthread_once(&once, probe);
    return has_avx512;
#else
    return 0;
#endif
}

void kvp_block_sums(const float *score, const uint32_t *count, uint32_t n, double *sum,
                    int wide)
{
#if BLOCKS_AVX512
    if (wide && kvp_block_sums_wide()) {
        sums_avx512(score, count, n, sum);
        return;
    }
#endif
    (void)wide;
    sums_plain(score, count, n, sum);
}

int kvp_blocks_of_view_wide(void)
{
#if BLOCKS_AVX512
    return kvp_block_sums_wide() && has_view;
#else
    return 0;
#endif
}

uint32_t kvp_blocks_of_view(const uint64_t *bits, uint32_t S, const uint32_t *ctx,
                            const float *const *score, uint32_t g, uint32_t *block,
                            uint32_t *count, double *sum)
{
#if BLOCKS_AVX512
    if ((S == 2 || S == 4 || S == 8) && 64 % g == 0 && kvp_blocks_of_view_wide())
        return view_avx512(bits, S, ctx, score, g, block, count, sum);
#endif
    (void)bits, (void)S, (void)ctx, (void)score, (void)g, (void)block, (void)count, (void)sum;
    return UINT32_MAX;
}

int kvp_tally_streams(const uint64_t *set, const uint64_t *res, size_t nw, uint32_t S,
                      uint64_t *reads, uint64_t *hits)
{
#if BLOCKS_AVX512
    if ((S == 2 || S == 4 || S == 8) && kvp_blocks_of_view_wide()) {
        tally_avx512(set, res, nw, S, reads, hits);
        return 1;
    }
#endif
    (void)set, (void)res, (void)nw, (void)S, (void)reads, (void)hits;
    return 0;
}

uint32_t kvp_blocks_of_streams(const uint64_t *bits, uint32_t context, uint32_t S, uint32_t g,
                               const float *score, uint32_t *block, uint32_t *count,
                               double *sum)
{
#if BLOCKS_AVX512
    if ((S == 2 || S == 4 || S == 8) && kvp_block_sums_wide())
        return streams_avx512(bits, context, S, g, score, block, count, sum);
#endif
    (void)bits, (void)context, (void)S, (void)g, (void)score, (void)block, (void)count,
        (void)sum;
    return UINT32_MAX;
}
