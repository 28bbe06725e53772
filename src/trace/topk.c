/* Top-k selection shared by every score source (DESIGN.md §2): exact, linear time, no
 * allocation.  Each float maps to a uint32 key whose unsigned order is the float order.  A
 * histogram of the top 11 key bits finds the bucket b1 holding the k-th highest key; one pass
 * then writes the positions above b1 (all taken) straight to the output and collects those in
 * b1; a radix select on the rest of their keys (11 + 10 bits) picks the ones to take, ties to
 * the lower positions; a merge of the two ascending lists gives the answer.  Two passes over
 * the row, then work on the bucket and on k: at 60% sparsity this is what the trace reader
 * spends its time on. */
#include "trace/trace.h"

#include <string.h>

#define RADIX_BITS_HI 11u /* key bits 31..21 */
#define RADIX_BITS_MID 11u /* key bits 20..10 */
#define RADIX_BITS_LO 10u /* key bits 9..0 */
#define RADIX_SHIFT_HI (RADIX_BITS_MID + RADIX_BITS_LO)
#define RADIX_SHIFT_MID RADIX_BITS_LO
#define RADIX_BUCKETS (1u << RADIX_BITS_HI) /* the widest level */
#define SIGN_BIT 0x80000000u
#define HIST_WAYS 4u /* level-1 histogram copies */

/* Order-preserving key: positive floats get the sign bit set (so they sort above every
 * negative), negative floats have all bits flipped (larger magnitude, smaller key).  -0.0 is
 * folded onto +0.0 first, because the model compares values and -0 == +0. */
static inline uint32_t float_key(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (bits == SIGN_BIT)
        bits = 0;
    return (bits & SIGN_BIT) ? ~bits : (bits | SIGN_BIT);
}

/* Walks the histogram from the highest bucket down to the one holding the remaining-th
 * highest element; subtracts the counts of the buckets above it from *remaining. */
static uint32_t pick_bucket(const uint32_t *hist, uint32_t nbuckets, uint32_t *remaining)
{
    uint32_t b = nbuckets;
    while (b-- > 0) {
        if (hist[b] >= *remaining)
            return b;
        *remaining -= hist[b];
    }
    return 0; /* unreachable: the counts add up to at least *remaining */
}

/* Keeps, in place and in order, the `take` candidates (positions in cand[0..c-1], all with
 * top key bits b1) of highest key, ties to the lower positions. */
static void select_in_bucket(const float *scores, uint32_t *cand, uint32_t c, uint32_t b1,
                             uint32_t take)
{
    uint32_t hist[RADIX_BUCKETS];
    if (take == c)
        return;
    memset(hist, 0, sizeof hist);
    for (uint32_t j = 0; j < c; j++)
        hist[(float_key(scores[cand[j]]) >> RADIX_SHIFT_MID) & ((1u << RADIX_BITS_MID) - 1)]++;
    uint32_t remaining = take;
    uint32_t b2 = pick_bucket(hist, 1u << RADIX_BITS_MID, &remaining);
    uint32_t prefix = (b1 << RADIX_BITS_MID) | b2; /* key bits 31..10 */
    uint32_t lo, take_eq; /* keep keys above lo and the first take_eq equal to it */
    if (hist[b2] == remaining) {
        lo = prefix << RADIX_SHIFT_MID; /* the whole sub-bucket */
        take_eq = UINT32_MAX;
    } else {
        memset(hist, 0, sizeof hist);
        for (uint32_t j = 0; j < c; j++) {
            uint32_t key = float_key(scores[cand[j]]);
            if ((key >> RADIX_SHIFT_MID) == prefix)
                hist[key & ((1u << RADIX_BITS_LO) - 1)]++;
        }
        uint32_t b3 = pick_bucket(hist, 1u << RADIX_BITS_LO, &remaining);
        lo = (prefix << RADIX_SHIFT_MID) | b3;
        take_eq = remaining;
    }
    uint32_t m = 0;
    for (uint32_t j = 0; j < c; j++) {
        uint32_t p = cand[j];
        uint32_t key = float_key(scores[p]);
        uint32_t keep = key > lo;
        if (key == lo && take_eq > 0) {
            take_eq--;
            keep = 1;
        }
        cand[m] = p; /* m <= j: that slot is already read */
        m += keep;
    }
}

/* Pass 1: the keys of scores[0..n) into scratch, and a histogram of their top 11 bits; returns
 * the bucket b1 holding the *need-th highest key, and in *need how many to take from it. */
static uint32_t keys_and_bucket(const float *scores, uint32_t n, uint32_t *scratch,
                                uint32_t *need)
{
    /* HIST_WAYS copies: consecutive elements often fall in the same bucket, and a single
     * table would serialise on that counter. */
    uint32_t hist1[HIST_WAYS][RADIX_BUCKETS];
    uint32_t hist[RADIX_BUCKETS];
    memset(hist1, 0, sizeof hist1);
    uint32_t i = 0;
    for (; i + HIST_WAYS <= n; i += HIST_WAYS) { /* unrolled by hand: HIST_WAYS is 4 */
        uint32_t k0 = float_key(scores[i]), k1 = float_key(scores[i + 1]);
        uint32_t k2 = float_key(scores[i + 2]), k3 = float_key(scores[i + 3]);
        scratch[i] = k0;
        scratch[i + 1] = k1;
        scratch[i + 2] = k2;
        scratch[i + 3] = k3;
        hist1[0][k0 >> RADIX_SHIFT_HI]++;
        hist1[1][k1 >> RADIX_SHIFT_HI]++;
        hist1[2][k2 >> RADIX_SHIFT_HI]++;
        hist1[3][k3 >> RADIX_SHIFT_HI]++;
    }
    for (; i < n; i++) {
        uint32_t key = float_key(scores[i]);
        scratch[i] = key;
        hist1[0][key >> RADIX_SHIFT_HI]++;
    }
    for (uint32_t b = 0; b < RADIX_BUCKETS; b++) {
        uint32_t sum = 0;
        for (uint32_t w = 0; w < HIST_WAYS; w++)
            sum += hist1[w][b];
        hist[b] = sum;
    }
    return pick_bucket(hist, RADIX_BUCKETS, need);
}

/* scratch first holds the keys of all n elements, then (compacted in place) the positions in
 * bucket b1; its content on entry and exit is irrelevant.  Scores must not be NaN (the caller
 * checks); a NaN would still be placed, memory-safely. */
void kvp_topk(const float *scores, uint32_t n, uint32_t k, uint32_t *pos_out, float *score_out,
              uint32_t *scratch)
{
    if (k > n)
        k = n;
    if (k == 0)
        return;
    if (k == n) {
        for (uint32_t i = 0; i < n; i++) {
            pos_out[i] = i;
            score_out[i] = scores[i];
        }
        return;
    }

    uint32_t need = k; /* after pick_bucket: how many to take from bucket b1 (>= 1) */
    uint32_t b1 = keys_and_bucket(scores, n, scratch, &need);

    /* Pass 2, branch-free (which side an element falls is a coin toss at 40-60% sparsity):
     * positions above b1 go to the output, those in b1 to scratch (in place: slot c <= i is
     * already read).  Every store lands in pos_out[0..k-1]: exactly k - need <= k - 1
     * positions are above b1, so a never reaches k. */
    uint32_t a = 0, c = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t top = scratch[i] >> RADIX_SHIFT_HI;
        pos_out[a] = i;
        score_out[a] = scores[i];
        a += top > b1;
        scratch[c] = i;
        c += top == b1;
    }
    select_in_bucket(scores, scratch, c, b1, need);

    /* Merge the ascending lists pos_out[0..a-1] and scratch[0..need-1] into pos_out[0..k-1],
     * back to front (o = ia + jc, so no unread entry is overwritten), branch-free. */
    uint32_t ia = a, jc = need, o = k;
    while (jc > 0) {
        uint32_t pc = scratch[jc - 1];
        uint32_t peek = ia - (ia > 0); /* pos_out[0] is always written by pass 2 */
        uint32_t pa = pos_out[peek];
        float sa = score_out[peek];
        uint32_t from_a = (ia > 0) & (pa > pc);
        o--;
        pos_out[o] = from_a ? pa : pc;
        score_out[o] = from_a ? sa : scores[pc];
        ia -= from_a;
        jc -= 1 - from_a;
    }
}

uint32_t kvp_topk_count_below(const float *scores, uint32_t n, uint32_t k, uint32_t below,
                              uint32_t *scratch, uint32_t *kth_key)
{
    if (k > n)
        k = n;
    if (k == 0 || below == 0)
        return 0;
    if (below >= n)
        return k;
    if (k == n)
        return below;
    uint32_t need = k;
    const uint32_t b1 = keys_and_bucket(scores, n, scratch, &need);
    /* Above b1 every position is taken: count those below `below`; those in b1 are listed
     * (in place, as in kvp_topk) and the taken ones among them picked as kvp_topk picks. */
    uint32_t low = 0, c = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t top = scratch[i] >> RADIX_SHIFT_HI;
        low += (top > b1) & (i < below);
        scratch[c] = i;
        c += top == b1;
    }
    select_in_bucket(scores, scratch, c, b1, need);
    uint32_t kth = UINT32_MAX; /* the least key taken: the k-th highest */
    for (uint32_t j = 0; j < need; j++) {
        const uint32_t key = float_key(scores[scratch[j]]);
        kth = key < kth ? key : kth;
        low += scratch[j] < below;
    }
    if (kth_key)
        *kth_key = kth;
    return low;
}
