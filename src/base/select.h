/* Internal: the k best of n entries by a precomputed key (the targets of reactive's and
 * page's overflow steps), in expected O(n). */
#ifndef KVP_SELECT_H
#define KVP_SELECT_H

#include <stdint.h>

/* The seed of the pivot generator (any value: the set selected does not depend on it, only
 * the running time does).  Each user keeps its own state, seeded with it. */
#define KVP_SELECT_SEED 0x9e3779b97f4a7c15ull

/* Reorders idx[0..n) (entry numbers, each < the length of key) so that its first k entries
 * are the k that rank highest: entry i ranks above entry j if key[i] > key[j]; on equal keys
 * if first[i] > first[j] (first may be NULL: no such preference); then if i < j.  A total
 * order, so the set selected does not depend on the pivots drawn from *rng. */
void kvp_select_top(uint32_t *idx, uint32_t n, uint32_t k, const double *key,
                    const uint8_t *first, uint64_t *rng);

#endif
