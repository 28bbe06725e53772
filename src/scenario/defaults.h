/* Internal: the default scenario is gh200-paper + llama-3.1-8b.  Their numbers live here
 * only: the preset strings (presets.c) are built from these macros, and the parameter table's
 * defaults (params.c) are the same texts, so each number is written once. */
#ifndef KVP_DEFAULTS_H
#define KVP_DEFAULTS_H

#define KVP_DFLT_HW "gh200-paper"
#define KVP_DFLT_MODEL "llama-3.1-8b"
#define PAPER_HBM_CAPACITY "24GB"      /* PAPER.md Table I: HBM cut from 96 GB on purpose */
#define PAPER_HBM_BANDWIDTH "4.9TB/s"  /* Table I */
#define PAPER_DRAM_CAPACITY "480GB"    /* Table I */
#define PAPER_DRAM_BANDWIDTH "500GB/s" /* Table I */
#define PAPER_LINK_BANDWIDTH "900GB/s" /* Table I, taken as each direction (docs/presets.md) */
#define L31_8B_LAYERS "32"             /* meta-llama/Llama-3.1-8B config.json */
#define L31_8B_KV_HEADS "8"
#define L31_8B_HEAD_DIM "128"           /* hidden_size 4096 / 32 attention heads */
#define L31_8B_DTYPE_BYTES "2"          /* bf16 */
#define L31_8B_WEIGHT_BYTES "16060522496" /* 8,030,261,248 parameters x 2 bytes */

#endif
