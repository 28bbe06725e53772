/* Internal: what the sa search uses of a checkpoint (src/report/checkpoint.c).  A checkpoint holds
 * runs, one per fingerprint of scenario and trace; a run holds evaluations, each a (W, r)
 * point of lookahead (R = r / 10) and its result. */
#ifndef KVP_CHECKPOINT_H
#define KVP_CHECKPOINT_H

#include "kvplace.h"

/* The run of ck for this scenario and trace, created (empty, not yet saved) if absent. */
int kvp_ck_run(kvp_checkpoint *ck, const kvp_scenario *sc, const kvp_trace *tr, size_t *run,
               kvp_error *err);
size_t kvp_ck_nrec(const kvp_checkpoint *ck, size_t run);
/* Record i of a run, in the order saved. */
void kvp_ck_rec(const kvp_checkpoint *ck, size_t run, size_t i, uint32_t *w, uint32_t *r,
                kvp_result *res);
/* Appends an evaluation to a run and, if ck has a save path, rewrites the file. */
int kvp_ck_add(kvp_checkpoint *ck, size_t run, uint32_t w, uint32_t r, const kvp_result *res,
               kvp_error *err);

#endif
