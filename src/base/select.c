/* Quickselect with random pivots and a branch-free partition (the partition loop was the hot
 * spot of reactive's overflow steps under perf: docs/PERF.md). */
#include "base/select.h"

#include <stddef.h>

static void swap_u32(uint32_t *a, uint32_t *b)
{
    uint32_t t = *a;
    *a = *b;
    *b = t;
}

static uint32_t next_random(uint64_t *x)
{
    /* xorshift64 */
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (uint32_t)(*x >> 32);
}

/* Entry i ranks above entry j (bitwise, not logical, operators: no branch to mispredict in
 * the partition loop).  With first NULL the preference drops out at compile time (the two
 * calls below pass it as a constant). */
static inline uint32_t ranks_above(const double *key, const uint8_t *first, uint32_t i,
                                   uint32_t j)
{
    uint32_t tie = (uint32_t)(key[i] == key[j]);
    if (!first)
        return (uint32_t)(key[i] > key[j]) | (tie & (i < j));
    uint32_t fi = first[i], fj = first[j];
    return (uint32_t)(key[i] > key[j]) | (tie & (fi > fj)) | (tie & (fi == fj) & (i < j));
}

static inline void select_top(uint32_t *idx, uint32_t n, uint32_t k, const double *key,
                              const uint8_t *first, uint64_t *rng)
{
    uint32_t lo = 0, hi = n;
    /* Invariant: idx[0..lo) rank above idx[lo..n), and idx[0..hi) above idx[hi..n). */
    while (lo < k && k < hi) {
        swap_u32(&idx[lo + next_random(rng) % (hi - lo)], &idx[hi - 1]);
        uint32_t pivot = idx[hi - 1], store = lo;
        /* Branch-free Lomuto: [store, i) holds the entries not above the pivot, so moving
         * idx[store] to i and the new entry to store keeps both parts whole. */
        for (uint32_t i = lo; i + 1 < hi; i++) {
            uint32_t x = idx[i];
            idx[i] = idx[store];
            idx[store] = x;
            store += ranks_above(key, first, x, pivot);
        }
        swap_u32(&idx[store], &idx[hi - 1]);
        if (k <= store)
            hi = store;
        else
            lo = store + 1;
    }
}

void kvp_select_top(uint32_t *idx, uint32_t n, uint32_t k, const double *key,
                    const uint8_t *first, uint64_t *rng)
{
    if (first)
        select_top(idx, n, k, key, first, rng);
    else
        select_top(idx, n, k, key, NULL, rng);
}
