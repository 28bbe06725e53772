/* Whether the vector forms wider than SSE2 (AVX2, AVX-512) may run: each is chosen at run time
 * where the CPU has it, unless the environment variable KVPLACE_SSE2_ONLY is set (any value),
 * so that the tests can run the SSE2 forms on a CPU that has the wider ones (tests/run.sh). */
#ifndef KVP_BASE_SIMD_H
#define KVP_BASE_SIMD_H

int kvp_simd_wide(void);

#endif
