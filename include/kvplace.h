/*
 * kvplace: where should each token's KV cache live, HBM or off-package DRAM, at each decode
 * step, and what throughput does that buy?  The model, in full, is docs/MODEL.md.
 *
 * A worked example, error handling elided:
 *
 *     kvp_scenario sc;
 *     kvp_error err;
 *     kvp_scenario_default(&sc);
 *     kvp_preset_apply(&sc, "gh200-paper", "hw", &err);    // hardware
 *     kvp_preset_apply(&sc, "llama-3.1-8b", "model", &err); // model
 *     kvp_param_set(&sc, "sparsity", "0.6", &err);
 *     kvp_param_set(&sc, "batch", "4", &err);
 *
 *     kvp_trace *tr;                                       // or kvp_trace_open_npy()
 *     kvp_synth_params sp;
 *     kvp_synth_default(&sp, &sc);
 *     kvp_trace_synthetic(&tr, &sp, &err);
 *
 *     kvp_policy_spec ps;
 *     kvp_policy_parse(&ps, "static", &err);
 *     kvp_result r;
 *     kvp_run_options ro;
 *     kvp_run_options_default(&ro);
 *     if (kvp_run(&sc, tr, &ps, &ro, &r, &err) < 0)
 *         fprintf(stderr, "kvplace: %s\n", err.msg);
 *     printf("%.6g tokens/s\n", r.throughput_tok_s);
 *     kvp_trace_free(tr);
 *
 * Conventions: functions return 0 (or a count) on success and a negative KVP_E* code on
 * failure, with a one-line message in the caller's kvp_error.  The library never prints and
 * never exits.  Handles come in create/free pairs; free accepts NULL.
 */
#ifndef KVPLACE_H
#define KVPLACE_H

#include <signal.h> /* sig_atomic_t */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* FILE, for kvp_out_file */

#ifdef __cplusplus
extern "C" {
#endif

#define KVP_VERSION "0.1.0"
/* The layout of the JSON and CSV reports (docs/CLI.md "Reports"); raised when it changes. */
#define KVP_SCHEMA_VERSION 2

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                   */

enum {
    KVP_OK = 0,
    KVP_EINVAL = -1,  /* a value out of range, malformed, or unknown                     */
    KVP_EIO = -2,     /* a file could not be opened, read or written                     */
    KVP_EFORMAT = -3, /* a file is not in the expected format                            */
    KVP_ENOMEM = -4,  /* out of memory                                                   */
    KVP_ERANGE = -5,  /* a size or count overflows 64 bits                               */
    KVP_ESHAPE = -6,  /* a trace does not fit the scenario (layers, steps, positions)    */
    KVP_ECHECK = -7,  /* a checking-mode invariant failed: a bug in a policy             */
    KVP_EINTR = -8    /* interrupted on request (a signal); partial work was saved      */
};

typedef struct kvp_error {
    int code;
    char msg[512]; /* one line, no trailing newline, names the file or option at fault */
} kvp_error;

const char *kvp_strerror(int code);

/* ---------------------------------------------------------------------------------------- */
/* Scenario parameters (docs/MODEL.md §1).  Names, units, bounds, defaults and docs live in one
 * table (src/scenario/params.c), used by the config reader, --set, --help and validation. */

/* HBM and up to seven tiers below it; links are numbered 1..KVP_MAX_TIERS-1. */
#define KVP_MAX_TIERS 8
/* Distinct sequences of one run at most (docs/MODEL.md "Streams"). */
#define KVP_MAX_SEQUENCES 64

typedef enum kvp_variation {
    KVP_VAR_LOW = 0,
    KVP_VAR_ACTUAL = 1,
    KVP_VAR_HIGH = 2
} kvp_variation;

typedef struct kvp_scenario {
    /* tiers */
    uint64_t hbm_capacity;  /* bytes */
    double hbm_bandwidth;   /* bytes/s */
    uint64_t dram_capacity; /* bytes */
    double dram_bandwidth;  /* bytes/s */
    double link_bandwidth;  /* bytes/s, each direction */
    uint64_t reserve;       /* bytes of HBM held back from the KV cache */
    /* tiers beyond two (docs/MODEL.md "Tiers beyond two"): tier 0 is HBM, tier 1 is
     * dram_capacity/dram_bandwidth behind link 1 (link_bandwidth); entries [k] for k >= 2
     * (tiers) and [j] for j >= 1 (links) hold the rest.  Bandwidths of 0 are unset. */
    uint32_t tiers;                             /* K, 2..KVP_MAX_TIERS */
    uint64_t tier_capacity[KVP_MAX_TIERS];      /* bytes, [k] k >= 2 */
    double tier_bandwidth[KVP_MAX_TIERS];       /* bytes/s, [k] k >= 2 */
    uint32_t tier_link[KVP_MAX_TIERS];          /* link of tier k >= 1, 1..KVP_MAX_TIERS-1 */
    double link_bw[KVP_MAX_TIERS];              /* bytes/s each way, [j] j >= 2 */
    double link_up_bw[KVP_MAX_TIERS];           /* bytes/s towards HBM, [j] j >= 1; 0: each way */
    double link_down_bw[KVP_MAX_TIERS];         /* bytes/s away from HBM, [j] j >= 1 */
    /* model */
    uint32_t layers;
    uint32_t kv_heads;
    uint32_t head_dim;
    uint32_t dtype_bytes;
    uint64_t weight_bytes; /* all weights, resident in HBM, read once per step */
    /* workload */
    uint32_t batch;
    uint32_t tp; /* tensor parallelism: GPUs sharing weights and KV heads; one is simulated */
    double sparsity; /* share of past tokens NOT read per step, [0, 1) */
    uint32_t topk;   /* tokens read per step (docs/MODEL.md "A fixed token budget"); 0: off,
                      * sparsity decides */
    uint32_t page_tokens;
    /* synthetic trace (ignored with a trace file) */
    uint32_t prompt; /* tokens */
    uint32_t steps;  /* decode steps */
    uint64_t seed;
    kvp_variation variation;
    /* distinct synthetic sequences, each with its own seed and prompt length (docs/MODEL.md
     * "Streams"); 1: one sequence, as before */
    uint32_t sequences;
    /* names of the presets applied, for the report ("" if none) */
    char hw_name[64];
    char model_name[64];
    /* KVP_GIVEN_* bits: parameters given by kvp_param_set since kvp_scenario_default (the
     * table's defaults and presets do not count), so that validation can refuse a choice
     * made twice (topk and sparsity both given). */
    uint32_t given;
} kvp_scenario;
#define KVP_GIVEN_SPARSITY 1u
#define KVP_GIVEN_TOPK 2u

typedef enum kvp_param_kind {
    KVP_PK_BYTES,     /* uint64_t, accepts 24GB, 8GiB, 1.6e10 */
    KVP_PK_BANDWIDTH, /* double bytes/s, accepts 4.9TB/s, 500GB/s, 9e11 */
    KVP_PK_COUNT,     /* uint32_t, whole number */
    KVP_PK_U64,       /* uint64_t, whole number (seed) */
    KVP_PK_FRACTION,  /* double */
    KVP_PK_VARIATION, /* kvp_variation: low | actual | high */
    KVP_PK_BANDWIDTH_OPT /* double bytes/s as BANDWIDTH, or 0: unset */
} kvp_param_kind;

typedef struct kvp_param_info {
    const char *name;
    kvp_param_kind kind;
    size_t offset;     /* into kvp_scenario */
    const char *unit;  /* for --help and CSV headers: "bytes", "bytes/s", "" */
    const char *deflt; /* default, as text, parsed by the same code as user input */
    double min, max;   /* inclusive bounds on the parsed value (fractions: see min_open) */
    int max_open;      /* 1 if max itself is not allowed (sparsity < 1) */
    const char *group; /* "hardware", "model", "workload", "synthetic" */
    const char *doc;   /* one line */
} kvp_param_info;

/* The table; *count receives its length. */
const kvp_param_info *kvp_params(size_t *count);
const kvp_param_info *kvp_param_find(const char *name);
/* The one of names[0..n-1] a mistyped name most likely meant ("did you mean"): edit distance
 * at most 2 ignoring case, '-' and '_', or a prefix of 3 letters or more; NULL when none is
 * that close or two are equally close. */
const char *kvp_closest_name(const char *name, const char *const *names, size_t n);
/* All parameters at their defaults. */
void kvp_scenario_default(kvp_scenario *sc);
/* Parses text for one parameter and stores it.  Rejects unknown names, junk, overflow and
 * out-of-range values with a message naming the parameter. */
int kvp_param_set(kvp_scenario *sc, const char *name, const char *value, kvp_error *err);
/* Applies "name=value" (the --set form). */
int kvp_param_assign(kvp_scenario *sc, const char *assignment, kvp_error *err);
/* 0 for the parameters of tiers and links a scenario does not use (all of them on a
 * two-tier machine, whose two-tier names say everything), 1 for the others: reports and
 * checkpoints record these. */
int kvp_param_in_use(const kvp_scenario *sc, const kvp_param_info *p);
/* Formats the current value of a parameter so that kvp_param_set reads it back exactly. */
int kvp_param_format(const kvp_scenario *sc, const kvp_param_info *p, char *buf, size_t len);
/* Cross-parameter checks (weights + reserve fit in HBM, ...). */
int kvp_scenario_validate(const kvp_scenario *sc, kvp_error *err);
/* Reads an INI config file: keys are parameter names, sections are ignored except that
 * "hw = PRESET" and "model = PRESET" apply presets first.  Messages name file:line. */
int kvp_config_load(kvp_scenario *sc, const char *path, kvp_error *err);
/* The INI dialect of config files and sweep specs, for inih's ini_parse_stream (pass the
 * reader as its stream): reads a line from f and counts it (line); skips a line longer than
 * inih's buffer (max_line), noting the first (long_line); notes whether the line began with a
 * blank (indented) and drops the blanks unless keep_indent (inih reads an indented line as
 * the continuation of the previous value); '#' after a blank starts a comment, as ';' does. */
typedef struct kvp_ini_reader {
    FILE *f;
    int keep_indent;
    int line, long_line, max_line, indented;
} kvp_ini_reader;
char *kvp_ini_read_line(char *str, int num, void *reader);

/* Number parsing shared by everything that reads user text.  Suffixes: k M G T P (1e3..)
 * and Ki Mi Gi Ti Pi (2^10..), optionally followed by B (bytes) or B/s (bandwidth). */
int kvp_parse_bytes(const char *text, uint64_t *out, kvp_error *err);
int kvp_parse_bandwidth(const char *text, double *out, kvp_error *err);

/* Presets: named lists of assignments applied with kvp_param_assign. */
typedef struct kvp_preset {
    const char *name;
    const char *kind;        /* "hw" or "model" */
    const char *assignments; /* "hbm_capacity=24GB hbm_bandwidth=4.9TB/s ..." */
    const char *doc;
} kvp_preset;
const kvp_preset *kvp_presets(size_t *count);
/* Applies a preset by name, or (if the name is not a preset and names a readable file) a
 * config file.  kind may be "hw", "model" or NULL for either. */
int kvp_preset_apply(kvp_scenario *sc, const char *name, const char *kind, kvp_error *err);
/* The parameters of sc's hardware (kind "hw") or model ("model") group that differ from its
 * named preset (a --set after --hw): their count (out[] gets the first max), 0 for none or
 * no preset name, KVP_EINVAL if the preset can no longer be applied. */
int kvp_preset_modified(const kvp_scenario *sc, const char *kind, const kvp_param_info **out,
                        size_t max);

/* Derived quantities (docs/MODEL.md §1). */
typedef struct kvp_derived {
    /* One GPU of tp (docs/MODEL.md "Tensor parallelism"): with tp = 1, the scenario's own. */
    uint32_t kv_heads;     /* per GPU: kv_heads / tp */
    uint64_t weight_bytes; /* per GPU: ceil(weight_bytes / tp) */
    uint64_t tok_bytes; /* 2 * kv_heads * head_dim * dtype_bytes * batch, per GPU */
    double w_layer;     /* weight_bytes / layers, bytes, per GPU */
    uint64_t kv_budget; /* hbm_capacity - weight_bytes - reserve, per GPU */
    double cap_layer;   /* kv_budget / layers, bytes */
    /* The machine (docs/MODEL.md "Tiers beyond two"), resolved: K tiers, tier 0 HBM. */
    uint32_t tiers;
    uint64_t tier_capacity[KVP_MAX_TIERS]; /* bytes of KV; [0] = kv_budget */
    double tier_bandwidth[KVP_MAX_TIERS];  /* bytes/s; [0] = hbm_bandwidth */
    uint32_t tier_link[KVP_MAX_TIERS];     /* [k] k >= 1: its link */
    double link_up[KVP_MAX_TIERS], link_down[KVP_MAX_TIERS]; /* bytes/s, [j] j >= 1, of the
                                            * links some tier uses; 0 for the others */
} kvp_derived;
int kvp_scenario_derive(const kvp_scenario *sc, kvp_derived *d, kvp_error *err);
/* floor(kv_budget / (layers * g * tok_bytes)), saturated at UINT32_MAX. */
uint32_t kvp_slots(const kvp_scenario *sc, const kvp_derived *d, uint32_t g);
/* The same for tier k (k = 0: kvp_slots): floor(tier_capacity[k] / (layers * g * tok_bytes)). */
uint32_t kvp_tier_slots(const kvp_scenario *sc, const kvp_derived *d, uint32_t g, uint32_t k);

/* ---------------------------------------------------------------------------------------- */
/* Traces (docs/MODEL.md §2).  A trace is N steps x L layers; a cursor streams one layer's access
 * sets step by step, so layers can be simulated independently (and in parallel).           */

typedef struct kvp_trace kvp_trace;
typedef struct kvp_cursor kvp_cursor;

/* One access set A(n, l): positions ascending, with their scores (1 for bool marks). */
typedef struct kvp_access {
    uint32_t step;
    uint32_t layer;
    uint32_t context; /* P + n: positions 0..context-1 exist */
    uint32_t count;
    const uint32_t *pos;
    const float *score;
    /* NULL, or the same set as (context + 63) / 64 words: bit p % 64 of word p / 64 set
     * for every p in pos and no other (a trace that has it at no cost gives it) */
    const uint64_t *bits;
} kvp_access;

/* How many positions a step of a score trace reads: a fixed count (topk > 0, docs/MODEL.md
 * "A fixed token budget") or a share (sparsity).  Bool traces ignore it. */
typedef struct kvp_budget {
    double sparsity; /* share of past tokens NOT read, [0, 1); used when topk is 0 */
    uint32_t topk;   /* tokens read per step; 0: off */
} kvp_budget;
/* The scenario's budget: its sparsity and topk.  The others: a share, or a count. */
kvp_budget kvp_scenario_budget(const kvp_scenario *sc);
kvp_budget kvp_budget_sparsity(double sparsity);
kvp_budget kvp_budget_topk(uint32_t topk);
/* The one k rule: min(topk, context) if topk > 0, else ceil((1 - sparsity) * context - 1e-9)
 * held to [0, context]. */
uint32_t kvp_access_k(kvp_budget b, uint32_t context);
/* 1 if a and b read the same sets (same topk; same sparsity when topk is 0). */
int kvp_budget_same(kvp_budget a, kvp_budget b);

int kvp_trace_open_npy(kvp_trace **out, const char *path, kvp_error *err);
/* A trace over the caller's data of shape (steps, layers, positions), C order, copied: scores,
 * or (is_bool) read marks where nonzero means read.  Checked like a file (NaN, shape). */
int kvp_trace_from_memory(kvp_trace **out, const float *data, uint32_t steps, uint32_t layers,
                          uint32_t positions, int is_bool, const char *name, kvp_error *err);
void kvp_trace_free(kvp_trace *t);
/* Element types of a caller's trace buffer. */
typedef enum kvp_dtype {
    KVP_DTYPE_F32 = 0,  /* float */
    KVP_DTYPE_F16 = 1,  /* IEEE half, as uint16_t bits; converted to float exactly */
    KVP_DTYPE_BOOL = 2  /* one byte per position: nonzero means read */
} kvp_dtype;
/* A trace over a caller's buffer (a NumPy array's data, say): ndim dimensions of sizes
 * shape[], (steps, layers, positions) or, one stream per KV head, (steps, layers, heads,
 * positions), C order, native byte order.  Checked
 * at once, like a .npy file: the dtype, the dimensions, and every used position
 * of a score buffer (NaN or infinite is KVP_EFORMAT naming step, layer and position; the
 * padding is not looked at).  The data is copied as float, so the buffer may go afterwards.
 * name is the trace's name in messages and reports. */
int kvp_trace_from_buffer(kvp_trace **out, const void *data, int dtype, size_t ndim,
                          const uint64_t *shape, const char *name, kvp_error *err);

/* A trace built step by step, as an inference engine records it (examples/stream.c).  Step
 * n (the count appended so far) gives layers x (prompt + n) values, layer-major, no padding:
 * scores (checked finite) or, for a bool builder, marks (nonzero means read).  Rows are kept
 * unpadded, so a builder holds about half of the (N, L, P + N - 1) array. */
typedef struct kvp_trace_builder kvp_trace_builder;
int kvp_trace_builder_create(kvp_trace_builder **out, uint32_t layers, uint32_t prompt,
                             int is_bool, const char *name, kvp_error *err);
int kvp_trace_builder_append(kvp_trace_builder *b, const float *values, kvp_error *err);
uint32_t kvp_trace_builder_steps(const kvp_trace_builder *b);
/* Hands the steps appended so far (at least one) over to a new trace; the builder is then
 * empty (and may be appended to again for another trace, or freed). */
int kvp_trace_builder_finish(kvp_trace_builder *b, kvp_trace **out, kvp_error *err);
void kvp_trace_builder_free(kvp_trace_builder *b);
/* Streams (docs/MODEL.md "Streams"): a 4-D trace (a .npy file or buffer of shape (N, L, H,
 * C)) holds one stream per KV head, each with its own access sets; a batch of distinct
 * sequences holds each sequence's stream(s).  kvp_trace_sequences makes one trace of n
 * sequence traces (3-D, or 4-D with the same heads: all alike), with the same layers and
 * their own prompts and steps; it takes the n traces over (freed with the result, or at
 * once on failure).  Stream i is head i % heads of sequence i / heads. */
int kvp_trace_sequences(kvp_trace **out, kvp_trace **seqs, uint32_t n, kvp_error *err);
uint32_t kvp_trace_stream_count(const kvp_trace *t);   /* 1 for a 3-D trace */
uint32_t kvp_trace_heads(const kvp_trace *t);          /* streams per sequence: 1 if 3-D */
uint32_t kvp_trace_sequence_count(const kvp_trace *t); /* 1 but for kvp_trace_sequences */
/* Stream i (< kvp_trace_stream_count) as a 3-D trace of its own (t itself for one stream);
 * it lives as long as t. */
const kvp_trace *kvp_trace_stream(const kvp_trace *t, uint32_t i);
uint32_t kvp_trace_sequence_prompt(const kvp_trace *t, uint32_t q);
uint32_t kvp_trace_sequence_steps(const kvp_trace *t, uint32_t q);
/* Of a trace with streams: the longest prompt and the most steps of its sequences (the run's
 * global steps). */
uint32_t kvp_trace_steps(const kvp_trace *t);
uint32_t kvp_trace_layers(const kvp_trace *t);
uint32_t kvp_trace_prompt(const kvp_trace *t);
const char *kvp_trace_name(const kvp_trace *t); /* file path or "synthetic:actual" */
int kvp_trace_is_bool(const kvp_trace *t);

/* The budget is ignored for bool traces. */
int kvp_cursor_create(kvp_cursor **out, const kvp_trace *t, uint32_t layer, kvp_budget budget,
                      kvp_error *err);
/* Fills a with the next step's set; returns 1, or 0 after the last step, or < 0 on error
 * (a NaN or infinite score, a short read).  a's arrays stay valid until the next call. */
int kvp_cursor_next(kvp_cursor *c, kvp_access *a, kvp_error *err);
void kvp_cursor_free(kvp_cursor *c);

/* Synthetic traces (docs/MODEL.md §6; docs/SYNTHETIC.md for the model and its sources). */
typedef struct kvp_synth_params {
    uint32_t prompt, steps, layers;
    kvp_budget budget; /* checked here; each cursor reads with its own (kvp_cursor_create) */
    kvp_variation variation;
    uint64_t seed;
    /* knobs the presets set; 0 means "the preset's value" */
    uint32_t sinks;      /* always-read first positions */
    uint32_t window;     /* always-read most recent positions */
    double drift;        /* share of positions whose importance is redrawn per step */
    double heavy_share;  /* share of positions that are persistent heavy hitters */
    /* Heads (docs/SYNTHETIC.md "Heads"): with heads = H > 1 the trace is KV head `head` of
     * H, a 3-D trace of its own; in each layer a share retrieval_share of the H heads (0:
     * the published default) are retrieval heads, the rest streaming heads, which head is
     * which drawn from (seed, layer).  heads 0 or 1: one stream for all heads, as before. */
    uint32_t heads, head;
    double retrieval_share;
} kvp_synth_params;
void kvp_synth_default(kvp_synth_params *sp, const kvp_scenario *sc);
int kvp_trace_synthetic(kvp_trace **out, const kvp_synth_params *sp, kvp_error *err);
/* `sequences` distinct synthetic sequences of sp's steps and layers (docs/MODEL.md
 * "Streams"): sequence q has seed kvp_synth_sequence_seed(sp->seed, q) and prompt
 * kvp_synth_sequence_prompt(sp->seed, q, sp->prompt) (q = 0: sp's own); with sp->heads =
 * H > 1 each sequence is H per-head synthetic traces, one stream per KV head.  1 sequence
 * of one head is kvp_trace_synthetic itself. */
int kvp_trace_synthetic_sequences(kvp_trace **out, const kvp_synth_params *sp,
                                  uint32_t sequences, kvp_error *err);

#define KVP_SYNTH_HEADS_MAX 1024u /* as kv_heads */
typedef enum kvp_head_kind {
    KVP_HEAD_ALL = 0,       /* heads <= 1: the one stream stands for every head */
    KVP_HEAD_RETRIEVAL = 1, /* reads across the whole context (today's generator) */
    KVP_HEAD_STREAMING = 2  /* reads the sinks and the most recent tokens */
} kvp_head_kind;
/* The kind of head sp->head in `layer` (sp as given to kvp_trace_synthetic); KVP_HEAD_ALL
 * when sp->heads <= 1.  Exactly round(retrieval_share * heads) heads of a layer retrieve. */
kvp_head_kind kvp_synth_head_kind(const kvp_synth_params *sp, uint32_t layer);

/* Sequences of a synthetic batch (docs/SYNTHETIC.md "Sequences"): sequence s's seed and
 * prompt.  s = 0 is the scenario's own (seed, base_prompt); s >= 1 draws a prompt from
 * LongBench's task lengths scaled so that their mean is base_prompt, deterministically from
 * (seed, s); at least 1 and at most KVP_SYNTH_PROMPT_MAX tokens. */
#define KVP_SYNTH_PROMPT_MAX (1u << 26)
uint64_t kvp_synth_sequence_seed(uint64_t seed, uint32_t s);
uint32_t kvp_synth_sequence_prompt(uint64_t seed, uint32_t s, uint32_t base_prompt);
/* Writes a trace's scores as a float32 .npy of shape (N, L, P+N-1). */
int kvp_trace_write_npy(const kvp_trace *t, const char *path, kvp_error *err);
/* The same, stopping with KVP_EINTR (and no file) when *cancel becomes nonzero. */
int kvp_trace_write_npy_cancel(const kvp_trace *t, const char *path,
                               volatile sig_atomic_t *cancel, kvp_error *err);

/* Summary statistics (kvplace trace info). */
typedef struct kvp_trace_stats {
    uint64_t reads;           /* sum of |A(n,l)| */
    double mean_reads_per_step; /* per (n,l) */
    double mean_overlap;      /* mean |A(n)∩A(n-1)| / |A(n)| over n >= 1 and layers */
    double mean_sink_share;   /* share of reads among the first 16 positions */
    /* (With streams the figures above are per stream-step.) */
} kvp_trace_stats;
int kvp_trace_stats_compute(const kvp_trace *t, kvp_budget budget, kvp_trace_stats *st,
                            kvp_error *err);
/* How much the heads' sets differ (kvplace trace info; docs/CLI.md): heads[0..H-1] are one
 * trace per head (same shape), read at this budget; per step and layer, with A_h head h's
 * set, the pooled pairwise Jaccard  sum_{i<j} |A_i & A_j| / sum_{i<j} |A_i | A_j|  (1 when
 * no head reads) and the union ratio |A_0 | ... | A_{H-1}| / (sum_h |A_h| / H) (1 when no
 * head reads), each averaged over steps and layers.  One pass, O(reads). */
typedef struct kvp_heads_stats {
    uint32_t heads;
    double mean_jaccard;     /* 1: every head reads the same positions; 0: none shared */
    double mean_union_ratio; /* 1: the same positions; H: disjoint sets */
} kvp_heads_stats;
int kvp_trace_heads_stats(const kvp_trace *const *heads, uint32_t H, kvp_budget budget,
                          kvp_heads_stats *st, kvp_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Policies (docs/MODEL.md §5).  Each is one file in src/ behind a kvp_policy_ops table.        */

#define KVP_POLICY_MAX_PARAMS 8

typedef struct kvp_policy_param {
    const char *name;
    double deflt, min, max;
    int integer; /* 1: whole numbers only */
    const char *doc;
} kvp_policy_param;

typedef struct kvp_policy_ops kvp_policy_ops;

/* A policy with its parameters resolved: "lookahead:W=16:R=0.5". */
typedef struct kvp_policy_spec {
    const kvp_policy_ops *ops;
    double value[KVP_POLICY_MAX_PARAMS]; /* in the order of ops->params */
    /* Internal: what a policy that runs another hands it (plan and optimal hand the replay
     * policy their schedule).  NULL from the parser. */
    const void *ctx;
} kvp_policy_spec;

const kvp_policy_ops *const *kvp_policies(size_t *count);
const char *kvp_policy_name(const kvp_policy_ops *ops);
const char *kvp_policy_doc(const kvp_policy_ops *ops);
const kvp_policy_param *kvp_policy_params(const kvp_policy_ops *ops, size_t *count);
/* 1 if the policy is online (docs/MODEL.md §10): its decisions at step n use only the trace up
 * to step n, the reads of step n included; an engine could run it. */
int kvp_policy_online(const kvp_policy_ops *ops);
/* 1 if the policy runs on traces of several streams (KV heads, distinct sequences). */
int kvp_policy_streams(const kvp_policy_ops *ops);
/* Parses "name[:key=value]..."; unknown names and keys, junk and out-of-range values fail. */
int kvp_policy_parse(kvp_policy_spec *ps, const char *text, kvp_error *err);
/* Parses a comma-separated list; "all" expands to every policy.  Returns the count. */
int kvp_policy_parse_list(kvp_policy_spec *out, size_t max, const char *text, kvp_error *err);
/* 1 if a run without a policy list runs this policy (every one but the slow ones: sa,
 * lpbound), else 0.  The CLI's default list and the bindings' come from here. */
int kvp_policy_is_default(const kvp_policy_ops *ops);
/* "lookahead:W=16:R=0.5" with every parameter, %.17g where not whole. */
void kvp_policy_format(const kvp_policy_spec *ps, char *buf, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                  */

typedef struct kvp_result {
    char policy[32];
    char params[160]; /* kvp_policy_format of the spec run (sa: the best W and R) */
    uint32_t steps, layers, prompt;
    uint32_t block_tokens; /* g */
    uint32_t slots;        /* per layer; UINT32_MAX for unlimited */
    double total_time_s;
    double throughput_tok_s;
    double hbm_hit_rate_kv;
    double hbm_hit_rate_all;
    /* exact byte counters, summed over all steps and layers */
    uint64_t kv_read_hbm, kv_read_dram;
    uint64_t hbm_read, hbm_write, dram_read, dram_write, link_up, link_down; /* KV only */
    uint64_t weight_read; /* weight_bytes * steps */
    uint64_t promoted_bytes, demoted_bytes;
    double speedup_vs_static, speedup_vs_unlimited; /* filled by kvp_result_speedups */
    uint32_t sa_evaluations; /* sa: distinct (W, R) points run; 0 for other policies */
    char spec[160]; /* the policy as run, defaults resolved (sa: its own settings; params
                     * then holds its best point); filled by kvp_run_many */
    /* lpbound, plan: the proven lower bound on every placement's time (0: none), and the
     * dual iterations of the layer that took most */
    double lower_bound_s;
    uint32_t dual_iterations;
    /* Per tier k < tiers (0 = HBM) and per link j in 1..links (0 unused), the same exact
     * byte counts in every report (docs/MODEL.md "Tiers beyond two"): KV reads served,
     * bytes read and written (moves and new tokens included), bytes moved in and out, and
     * busy time (bytes / bandwidth summed over steps; HBM's with the weights). */
    uint32_t tiers, links;
    uint32_t tier_slots[KVP_MAX_TIERS]; /* per layer; UINT32_MAX for no limit */
    uint64_t tier_kv_read[KVP_MAX_TIERS], tier_read[KVP_MAX_TIERS], tier_write[KVP_MAX_TIERS];
    uint64_t tier_moved_in[KVP_MAX_TIERS], tier_moved_out[KVP_MAX_TIERS];
    double tier_busy_s[KVP_MAX_TIERS];
    uint64_t link_up_bytes[KVP_MAX_TIERS], link_down_bytes[KVP_MAX_TIERS];
    double link_up_busy_s[KVP_MAX_TIERS], link_down_busy_s[KVP_MAX_TIERS];
    uint32_t online;         /* 1 if the policy is online (kvp_policy_online) */
    /* A trace of several streams (docs/MODEL.md "Streams"): its sequences (0 for a trace of
     * one stream) and per sequence its prompt, decoded tokens (steps), and the KV bytes its
     * streams read from HBM and from below and had promoted and demoted, summed over the
     * layers (0 for a policy that is not simulated step by step, as bound). */
    uint32_t sequences;
    struct kvp_seq_result {
        uint32_t prompt, steps;
        uint64_t kv_read_hbm, kv_read_dram, promoted_bytes, demoted_bytes;
    } seq[KVP_MAX_SEQUENCES];
} kvp_result;

typedef void (*kvp_progress_fn)(void *user, uint64_t done, uint64_t total);

/* One proposal of the sa search.  Level 0 is the start (move 0) and the neighbours sampled
 * to set the initial temperature (moves 1.., temperature 0, never accepted); levels 1.. are
 * the Metropolis chain at one temperature each. */
typedef struct kvp_sa_event {
    uint32_t level, move;
    double temperature; /* seconds */
    uint32_t W;
    double R;
    double time_s;     /* total decode time at (W, R) */
    int accepted;
    double best_time_s;
    uint32_t evaluations; /* distinct points evaluated so far */
} kvp_sa_event;
typedef void (*kvp_sa_log_fn)(void *user, const kvp_sa_event *ev);

/* The dual search of lpbound and plan (docs/BOUNDS.md) as it runs, from the calling thread
 * only: the layers done and the bound proven on them, the layer last reported and its
 * iteration; plan adds one event when its dual is done (lower_bound_s) and one when its
 * candidates are replayed (plan_s).  Times in seconds; 0 where not known yet. */
typedef struct kvp_dual_event {
    uint32_t layers, layers_done;
    uint32_t layer, iteration, iterations; /* iteration counts from 1, of at most iterations */
    double bound_done_s;  /* no placement takes less than this on the layers done */
    double lower_bound_s; /* the whole run's proven bound, once every layer is done */
    double plan_s;        /* plan's time, once replayed */
} kvp_dual_event;
typedef void (*kvp_dual_log_fn)(void *user, const kvp_dual_event *ev);

/* Checkpoints of long runs (docs/ROBUSTNESS.md): the sa search's finished evaluations, one
 * run per scenario and trace (a fingerprint of every parameter, the trace's name and shape,
 * and the version).  A search given one replays the evaluations saved for its scenario and
 * trace, counting each only when the search reaches it, so a resumed search takes exactly
 * the path and gives exactly the result of an uninterrupted one.  Not thread-safe: one
 * search at a time. */
typedef struct kvp_checkpoint kvp_checkpoint;

/* What one step of one layer of one policy did (kvp_run_options.step_hook).  Counts are in
 * tokens (times tok_bytes for bytes); the busy times are each tier's and each link
 * direction's bytes over its bandwidth, HBM's with the layer's weights; time_s is their max. */
typedef struct kvp_step_record {
    size_t policy; /* index into the specs given to kvp_run_many */
    uint32_t layer, step;
    double time_s, hbm_busy_s, dram_busy_s, link_up_busy_s, link_down_busy_s;
    uint64_t kv_read_hbm, kv_read_dram, promoted, demoted; /* tokens */
    uint32_t resident;     /* blocks in HBM after the step */
    uint32_t slots;        /* UINT32_MAX: no limit */
    uint32_t block_tokens; /* g */
    uint32_t blocks;       /* blocks that exist after the step (the new token's included);
                            * 0 on a trace of several streams (no per-position placement) */
    const uint8_t *in_hbm; /* per block, 1 if in HBM after the step; valid during the call */
} kvp_step_record;
/* Called from the engine's worker threads, for different layers at the same time (one
 * layer's steps come in order, from one thread); the hook must not share unguarded state
 * between layers. */
typedef void (*kvp_step_fn)(void *user, const kvp_step_record *r);

typedef struct kvp_run_options {
    unsigned threads;  /* layers run in parallel; results identical for any count */
    int check;         /* verify invariants after every step (tests) */
    kvp_progress_fn progress; /* called from the calling thread only; may be NULL */
    void *progress_user;
    kvp_sa_log_fn sa_log; /* the sa search's trajectory; may be NULL */
    void *sa_log_user;
    kvp_dual_log_fn dual_log; /* lpbound's and plan's dual search; may be NULL */
    void *dual_log_user;
    /* sa: finished evaluations are taken from and saved to this checkpoint (NULL: none). */
    kvp_checkpoint *checkpoint;
    /* A long run stops when *cancel becomes nonzero (a signal handler may set it): checked
     * before every step of every layer and before each sa evaluation.  The run returns
     * KVP_EINTR; what the checkpoint holds is saved.  NULL: never. */
    volatile sig_atomic_t *cancel;
    /* Every step of every layer of every simulated policy of kvp_run_many's shared pass
     * (not the passes sa makes for itself, not bound); NULL: none. */
    kvp_step_fn step_hook;
    void *step_user;
} kvp_run_options;
void kvp_run_options_default(kvp_run_options *ro);

int kvp_run(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
            const kvp_run_options *ro, kvp_result *res, kvp_error *err);
/* Runs n policies; those that are simulations share one pass over the trace (one trace
 * generation), which is much faster than n calls of kvp_run.  Results identical to kvp_run. */
int kvp_run_many(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *ps,
                 size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err);
/* kvp_run_many for m (1 to 4) scenarios that differ only in how the weights are counted:
 * weight_bytes, and the reserve that keeps their HBM when they are not (the same KV budget,
 * slots and tiers; KVP_EINVAL names the first other difference).  res[j * n + i] is exactly
 * kvp_run_many(sc[j])'s res[i], byte for byte; the policies whose decisions do not depend
 * on the weights (static, unlimited, reactive, page, lookahead) are simulated once for all,
 * each step's time summed per accounting, and sa's searches share their evaluations; the
 * others run once per scenario.  No step hook and no checkpoint with m > 1. */
int kvp_run_many_accountings(const kvp_scenario *const *sc, size_t m, const kvp_trace *tr,
                             const kvp_policy_spec *ps, size_t n, const kvp_run_options *ro,
                             kvp_result *res, kvp_error *err);
/* A trace cache: t's access sets at this budget, materialised once (one pass over t, its
 * layers on ro->threads threads) as one bitset per step and layer, and replayed from memory
 * by its cursors, much faster than a synthetic trace is generated or a file's top-k taken.
 * It keeps no scores (each reads 1): kvp_run refuses policies that read scores (reactive,
 * page) on it; the others give exactly their results on t.  Name, shape and kind are t's;
 * t may be freed once it is built.  kvp_trace_cache_bytes() is its size, about
 * (P + N/2) * N * L / 8 bytes (docs/PERF.md).  kvp_run_many gives `sa` one of its own when
 * it fits in 4 GiB: filled during the pass of the list's simulated policies if there are
 * any, else by a pass of its own. */
int kvp_trace_cache(kvp_trace **out, const kvp_trace *t, kvp_budget budget,
                    const kvp_run_options *ro, kvp_error *err);
uint64_t kvp_trace_cache_bytes(const kvp_trace *t);

/* Reads resume_path (NULL: start empty), refusing a file that is not a checkpoint, has a
 * bad checksum or is cut short; then, if save_path is not NULL (it may equal resume_path),
 * writes what it holds there at once and again after every evaluation added, each time to
 * a temporary name renamed over the file, so the file is always whole. */
int kvp_checkpoint_open(kvp_checkpoint **out, const char *save_path, const char *resume_path,
                        kvp_error *err);
void kvp_checkpoint_free(kvp_checkpoint *ck);
/* Evaluations held, over all runs. */
uint64_t kvp_checkpoint_count(const kvp_checkpoint *ck);
const char *kvp_checkpoint_save_path(const kvp_checkpoint *ck); /* NULL if none */
/* 1 if ck holds a run for this scenario and trace, 0 if it holds no run at all, or
 * KVP_EINVAL with a message naming the first difference from the saved run. */
int kvp_checkpoint_match(const kvp_checkpoint *ck, const kvp_scenario *sc, const kvp_trace *tr,
                         kvp_error *err);

/* Fills speedup fields of every result from the static and unlimited times. */
void kvp_result_speedups(kvp_result *res, size_t n, double static_time_s,
                         double unlimited_time_s);

/* ---------------------------------------------------------------------------------------- */
/* Reports                                                                                  */

typedef struct kvp_report {
    const kvp_scenario *sc;
    const kvp_trace *tr;
    const kvp_result *res;
    size_t nres;
} kvp_report;

/* Output files (every writer below goes through them).  "-" is stdout; a symbolic link is
 * written through (its target replaced, the link kept); a device, FIFO or socket is written to
 * directly; a regular file or a new name is written under a temporary name beside it and
 * renamed into place by kvp_out_close(o, 1, err), or removed by kvp_out_close(o, 0, NULL), so
 * that a failure leaves no half-written file.  kvp_out_close frees o (NULL is fine). */
typedef struct kvp_out kvp_out;
int kvp_out_open(kvp_out **o, const char *path, kvp_error *err);
FILE *kvp_out_file(const kvp_out *o);
int kvp_out_close(kvp_out *o, int ok, kvp_error *err);
/* 1 if the two paths name one file: the same device and inode when both exist, else the same
 * name once links and "." are resolved; "-" names no file. */
int kvp_path_same(const char *a, const char *b);

/* The JSON object of one result (without the per-tier and per-link keys, which a run's
 * report appends), and of a scenario, as the run report writes them (docs/CLI.md
 * "Reports"), for a report of one's own (the study's): malloc'd text, free with
 * free(), with depth tabs after every newline (the indent of its place in an enclosing
 * document as cJSON prints it).  NULL on failure (err says why). */
char *kvp_result_json(const kvp_scenario *sc, const kvp_result *r, int depth, kvp_error *err);
char *kvp_scenario_json(const kvp_scenario *sc, int depth, kvp_error *err);

/* All write through kvp_out: no half-written file is left. */
int kvp_report_json(const kvp_report *rep, const char *path, kvp_error *err);
int kvp_report_csv(const kvp_report *rep, const char *path, kvp_error *err);
/* The JSON report as text, exactly what kvp_report_json writes; *out is freed with kvp_free. */
int kvp_report_json_text(const kvp_report *rep, char **out, kvp_error *err);
void kvp_free(void *p);
/* The sa searches' trajectories as CSV: one row per kvp_sa_event, a `search` column counting
 * the searches (each starts at level 0, move 0). */
int kvp_report_sa_log(const kvp_sa_event *ev, size_t n, const char *path, kvp_error *err);
/* A result's stored fields as flat cells that read back exactly, for writers of other
 * layouts (kvplace sweep, docs/SWEEP.md): their count, the name of column i (NULL past the
 * end), and the text of column i of r (the CSV report's text for a column of the same name;
 * empty for unlimited's slots), with *is_number (may be NULL) set to 1 for a number column.
 * buf must hold at least 40 bytes. */
size_t kvp_result_ncolumns(void);
const char *kvp_result_column(size_t i);
int kvp_result_cell(const kvp_result *r, size_t i, char *buf, size_t len, int *is_number,
                    kvp_error *err);
/* The per-tier and per-link cells (tier<k>_*, link<j>_*: docs/MODEL.md "Tiers beyond two")
 * as fixed columns for every tier and link a machine may have: their count, the name of
 * column i (NULL past the end), and its text for r (empty where r's machine has no such tier
 * or link; every column is a number). buf must hold at least 40 bytes. */
size_t kvp_result_ntier_columns(void);
const char *kvp_result_tier_column(size_t i);
int kvp_result_tier_cell(const kvp_result *r, size_t i, char *buf, size_t len, kvp_error *err);
/* The inverse of kvp_result_cell: sets column i of r from its text. */
int kvp_result_parse_cell(kvp_result *r, size_t i, const char *text, kvp_error *err);
/* The shortest of %.15g, %.16g, %.17g that reads back to exactly d, as the reports write
 * doubles. */
void kvp_format_double(char *buf, size_t len, double d);
/* Writes text to f as one CSV cell (RFC 4180: quoted when it holds a comma, a quote or a
 * line break, quotes doubled), as the reports write their text cells. */
void kvp_csv_cell(FILE *f, const char *text);

/* The timeline (docs/CLI.md "Timeline"): give kvp_timeline_record as step_hook and the
 * timeline as step_user; then one CSV row per policy and step, summed over the layers in layer
 * order.  labels[i] names policy i in the file (NULL: left out; a policy the engine did not
 * simulate step by step, such as bound, has no rows); tok_bytes turns tokens into bytes. */
typedef struct kvp_timeline kvp_timeline;
extern const char kvp_timeline_header[];
int kvp_timeline_create(kvp_timeline **t, size_t npolicies, uint32_t layers, uint32_t steps,
                        kvp_error *err);
void kvp_timeline_free(kvp_timeline *t);
void kvp_timeline_record(void *timeline, const kvp_step_record *r);
/* Copies policy from_policy of one timeline (same layers and steps) to to_policy of another. */
void kvp_timeline_copy_policy(kvp_timeline *to, size_t to_policy, const kvp_timeline *from,
                              size_t from_policy);
int kvp_timeline_write_csv(const kvp_timeline *t, const char *const *labels, size_t nlabels,
                           uint64_t tok_bytes, const char *path, kvp_error *err);

/* The placement of one policy on one layer: which positions are in HBM after each step, as a
 * bool .npy of shape (N, P + N) (row n: positions 0..P+n, the rest false). */
typedef struct kvp_placement kvp_placement;
int kvp_placement_create(kvp_placement **p, size_t policy, uint32_t layer, uint32_t prompt,
                         uint32_t steps, kvp_error *err);
void kvp_placement_free(kvp_placement *p);
void kvp_placement_record(void *placement, const kvp_step_record *r);
int kvp_placement_write_npy(const kvp_placement *p, const char *path, kvp_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Sessions: a whole `kvplace run` behind one opaque handle, for bindings (the Python package
 * calls these through ctypes, so it never depends on the layout of a struct).              */

typedef struct kvp_session kvp_session;
/* A session holds a scenario at its defaults and no trace. */
int kvp_session_create(kvp_session **out, kvp_error *err);
void kvp_session_free(kvp_session *s);
/* Applies a preset or a config file (kvp_preset_apply; kind "hw", "model" or NULL). */
int kvp_session_preset(kvp_session *s, const char *name, const char *kind, kvp_error *err);
/* Sets one scenario parameter; synthetic_only: refuse parameters outside the "synthetic"
 * group (a synthetic trace's spec). */
int kvp_session_set(kvp_session *s, const char *name, const char *value, int synthetic_only,
                    kvp_error *err);
/* The trace to run: a .npy file or a buffer (kvp_trace_from_buffer).  Without one, a run
 * generates the synthetic trace of the scenario's synthetic parameters. */
int kvp_session_trace_npy(kvp_session *s, const char *path, kvp_error *err);
int kvp_session_trace_buffer(kvp_session *s, const void *data, int dtype, size_t ndim,
                             const uint64_t *shape, const char *name, kvp_error *err);
/* Validates the scenario, then runs the comma-separated policies (`all` expands) as
 * `kvplace run --policy` does: static and unlimited run as well for the speedups, the
 * simulated policies share one pass.  prompt and steps set with a trace given are an error
 * (the trace defines them).  threads: 0 for the library's default. */
int kvp_session_run(kvp_session *s, const char *policies, unsigned threads, kvp_error *err);
/* The last run's report, the text `kvplace run --json` writes; NULL before a run. */
const char *kvp_session_json(const kvp_session *s);

#ifdef __cplusplus
}
#endif
#endif /* KVPLACE_H */
