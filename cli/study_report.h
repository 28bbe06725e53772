/*
 * Internal to `kvplace study`: cli/study.c defines the studies and runs their points as a
 * sweep (cli/sweep.h); cli/study_report.c turns the points into CSV, JSON, gnuplot scripts
 * and Markdown.
 */
#ifndef KVP_CLI_STUDY_REPORT_H
#define KVP_CLI_STUDY_REPORT_H

#include "cli.h"

#include <stdio.h>

#define MAX_POLICIES 24
#define MAX_POINTS 54 /* the online study: (6 sparsities + 3 topk) x 3 x 2 */
#define MAX_VARS 4
#define MAX_STUDIES 8
#define VAR_TEXT 48
#define KEY_TEXT 2048
#define COL_TEXT 40
#define CMD_TEXT 2048
#define LABEL_TEXT 128
#define NUM_TEXT 40

#define NELEM(a) (sizeof(a) / sizeof *(a))

/* The study's published numbers (Fang et al. 2025, arXiv 2508.13231, Figs. 3 to 5). */
#define STUDY_SA_MAX 5.87
#define STUDY_SA_LOW 4.0
#define STUDY_SA_HIGH 5.0

typedef struct point {
    char var[MAX_VARS][VAR_TEXT]; /* the values of the study's variables, as CSV text */
    kvp_scenario sc;
    kvp_result res[MAX_POLICIES];
    char key[KEY_TEXT]; /* every parameter: points with equal keys give equal results */
    int heads; /* 1: synthetic traces as one stream per KV head (the sweep's synthetic-heads) */
} point;

struct study_ctx;
struct study_def;

typedef struct study_out {
    const struct study_def *def;
    point *pts;
    size_t n;
    int plotted;
} study_out;

typedef struct study_def {
    const char *name;
    const char *title;  /* plot and summary title */
    const char *figure; /* what of the study it repeats */
    const char *const *vars;
    size_t nvars;
    const char *norm; /* the policy throughputs are divided by */
    int scores_only;  /* 1: a bool trace cannot serve (the study varies sparsity) */
    int synthetic_only;
    int (*points)(struct study_ctx *c, point *pts, size_t *n);
    void (*gp)(FILE *f, const struct study_ctx *c, const study_out *s);
    void (*md)(FILE *f, const struct study_ctx *c, const study_out *s);
    const char *policies; /* its default policy list (NULL: the studies' common one) */
    int not_in_all;       /* 1: `study all` leaves it out (it needs its own policies, or is
                           * not one of the study's figures) */
    /* The CSV, when not the generic one; NULL for the generic one. */
    void (*csv)(FILE *f, const struct study_ctx *c, const study_out *s);
    /* Policies added to the default list when the registry has them ("plan,lpbound"). */
    const char *optional;
} study_def;

typedef struct study_ctx {
    kvp_scenario base;
    kvp_policy_spec specs[MAX_POLICIES];
    char col[MAX_POLICIES][COL_TEXT]; /* CSV column prefix of each policy */
    size_t nspec;
    kvp_trace *file_trace; /* --trace, or NULL */
    kvp_run_options ro; /* with --checkpoint: the points' sa checkpoint */
    uint32_t query_heads;
    int query_heads_given;
    int quiet;
    int prompt_given, steps_given, batch_given; /* --set: the heads study keeps them */
    const cli_ckpt *ckpt;   /* for the message of an interrupted run */
    char cmdline[CMD_TEXT]; /* the options that shape the results, for the summaries */
} study_ctx;

/* The second variable of the batch study, the first of the accounting study. */
extern const char *const study_weight_modes[2];

/* cli/study_report.c: what the points of a study become. */
const kvp_result *study_find_res(const study_ctx *c, const point *p, const char *policy);
int study_has_policy(const study_ctx *c, const char *name);
void study_csv_wide(FILE *f, const study_ctx *c, const study_out *s);
void study_csv_hitrate(FILE *f, const study_ctx *c, const study_out *s);
int study_json_write(FILE *f, const study_ctx *c, const study_out *s);
/* The gnuplot script and the Markdown summary of each study. */
void study_gp_sparsity(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_variation(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_hitrate(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_batch(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_accounting(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_tiers(FILE *f, const study_ctx *c, const study_out *s);
void study_md_sparsity(FILE *f, const study_ctx *c, const study_out *s);
void study_md_variation(FILE *f, const study_ctx *c, const study_out *s);
void study_md_hitrate(FILE *f, const study_ctx *c, const study_out *s);
void study_md_batch(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_gap(FILE *f, const study_ctx *c, const study_out *s);
void study_md_gap(FILE *f, const study_ctx *c, const study_out *s);
void study_md_accounting(FILE *f, const study_ctx *c, const study_out *s);
void study_md_tiers(FILE *f, const study_ctx *c, const study_out *s);
void study_csv_online(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_online(FILE *f, const study_ctx *c, const study_out *s);
void study_md_online(FILE *f, const study_ctx *c, const study_out *s);
void study_gp_heads(FILE *f, const study_ctx *c, const study_out *s);
void study_md_heads(FILE *f, const study_ctx *c, const study_out *s);
/* The batch study's series: B identical copies (batch B), B distinct sequences. */
extern const char *const study_batch_series[2];
#define STUDY_BATCH_COPIES 6   /* batch 1 to 32 */
#define STUDY_BATCH_DISTINCT 4 /* sequences 1 to 8 */

/* The online study's recommended policy (docs/POLICIES.md). */
#define ONLINE_RECOMMENDED "steer"

#endif
