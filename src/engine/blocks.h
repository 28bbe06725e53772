/* Internal: a step's reads grouped by block of g > 1 tokens, for the engine's one-stream pass
 * (src/engine/engine.c serve_reads) and the blocks' score sums (kvp_step_read_score):
 * docs/PERF.md §40. */
#ifndef KVP_BLOCKS_H
#define KVP_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

/* The read entries of the ascending set pos[0 .. n) with blocks of g tokens: the blocks
 * read, ascending, into block[], and how many positions each holds into count[] (n entries
 * each); returns how many entries (at most n). */
uint32_t kvp_blocks_of_pos(const uint32_t *pos, uint32_t n, uint32_t g, uint32_t *block,
                           uint32_t *count);

/* The same entries from the set as bits (bit p % 64 of word p / 64 for every position read,
 * no bit at or past context), g > 1: a popcount per block instead of a look at each read,
 * cheaper when there are fewer blocks in the context than reads.  block and count hold
 * ceil(context / g) + 1 entries. */
uint32_t kvp_blocks_of_bits(const uint64_t *bits, uint32_t context, uint32_t g,
                            uint32_t *block, uint32_t *count);

/* sum[i] = the scores of entry i's reads added in position order to 0.0, in double: the
 * entries' reads are consecutive in score[] (entry 0's first), count[i] of them.  Each sum
 * is a chain of dependent additions; the chains of several entries are independent, so the
 * AVX-512 form runs 8 entries side by side, one lane each, with the same additions in the
 * same order: the same sums, bit for bit.  wide: that form where the CPU has it (and
 * KVPLACE_SSE2_ONLY is not set), else the plain loop. */
void kvp_block_sums(const float *score, const uint32_t *count, uint32_t n, double *sum,
                    int wide);

/* The read entries of a step of S streams from its set as bits of virtual positions p S + i
 * (S bits a position, stream i's lowest; no bit at or past context, a multiple of S), with
 * blocks of g > 1 tokens: for each block row (positions [b g, (b + 1) g) of every stream)
 * with reads, one entry a stream that reads there, stream ascending: block b S + i, its
 * reads' count, and their scores (score[]: the set's, in its order; NULL: none) added in
 * position order to 0.0, in double.  So the engine's pass over the positions gives them,
 * bit for bit (src/engine/engine.c serve_reads_streams).  block, count and sum hold
 * ceil(context / (S g)) S entries.  Only in AVX-512, for S = 2, 4 or 8, where
 * kvp_block_sums_wide(); else UINT32_MAX and nothing written. */
uint32_t kvp_blocks_of_streams(const uint64_t *bits, uint32_t context, uint32_t S, uint32_t g,
                               const float *score, uint32_t *block, uint32_t *count,
                               double *sum);

/* kvp_blocks_of_streams's entries from the streams' own sets (kvp_streams_view's form,
 * src/trace/trace.h: stream i's word w at bits[w * S + i], no bit at or past its context
 * ctx[i]; its reads' scores in position order from score[i]; score NULL: none, the sums 0),
 * so no pass over the merged set's positions: the same entries and sums, bit for bit.  block,
 * count and sum hold max_i ceil(ctx[i] / g) S entries.  Only in AVX-512, for S = 2, 4 or 8
 * and g dividing 64, where kvp_block_sums_wide(); else UINT32_MAX and nothing written. */
uint32_t kvp_blocks_of_view(const uint64_t *bits, uint32_t S, const uint32_t *ctx,
                            const float *const *score, uint32_t g, uint32_t *block,
                            uint32_t *count, double *sum);

/* 1 if kvp_blocks_of_view has its form on this CPU (kvp_block_sums_wide() and VPOPCNTDQ). */
int kvp_blocks_of_view_wide(void);

/* Each stream's reads and reads from HBM of a step of S streams merged by position (stream i
 * the bits i, i + S, ... of every word): reads[i] = the set bits of stream i in set[0 .. nw),
 * hits[i] = those also set in res.  Only where kvp_blocks_of_view_wide() and S is 2, 4 or 8
 * (a popcount of each stream's bits of 8 words at a time); else 0 and nothing written. */
int kvp_tally_streams(const uint64_t *set, const uint64_t *res, size_t nw, uint32_t S,
                      uint64_t *reads, uint64_t *hits);

/* 1 if kvp_block_sums(.., wide = 1) takes its AVX-512 form on this CPU. */
int kvp_block_sums_wide(void);

#endif
