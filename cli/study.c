/*
 * `kvplace study NAME`: the study's experiments (PAPER.md Figs. 3 to 5, a batch sweep, and
 * the accounting variants of its headline).  Every point of the study runs first (the
 * simulated policies of a point share one pass over the trace, kvp_run_many); then NAME.csv,
 * NAME.json, NAME.md and NAME.gp are written under temporary names in --out DIR, gnuplot
 * draws NAME.png and NAME.svg from them, and everything is renamed into place.  A failure
 * leaves no file; a missing gnuplot only costs the plots.  docs/RESULTS.md reads the results.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_POLICIES 16
#define MAX_POINTS 16
#define MAX_VARS 4
#define MAX_STUDIES 5
#define MAX_FILES (MAX_STUDIES * 6)
#define VAR_TEXT 48
#define KEY_TEXT 2048
#define COL_TEXT 40
#define PATH_TEXT 4096
#define CMD_TEXT 2048
#define LABEL_TEXT 128
#define NUM_TEXT 40
#define MAX_THREADS 1024
#define MAX_QUERY_HEADS 65536
#define EXEC_FAILED 127 /* the shell's status for "command not found" */

/* The study's scenario (PAPER.md "The setup"); the user's --hw, --model, --config and --set
 * apply after it.  Batch 4 is ours (the study does not say): the smallest power of two at
 * which static holds at most half of the context in HBM over the whole run (15143 slots per
 * layer against 31,299 to 41,537 tokens; at batch 2, 30286 slots hold 73% to 97%). */
static const cli_scn_item study_defaults[] = {
    {CLI_SCN_HW, "gh200-paper"},   {CLI_SCN_MODEL, "llama-3.1-8b"},
    {CLI_SCN_SET, "prompt=31299"}, {CLI_SCN_SET, "steps=10239"},
    {CLI_SCN_SET, "batch=4"},      {CLI_SCN_SET, "sparsity=0.6"},
    {CLI_SCN_SET, "variation=actual"},
};

static const char default_policies[] = "static,reactive,page,lookahead,sa,unlimited,bound";
/* Policies every point needs for its normalisation; added when not asked for. */
static const char *const reference_policies[] = {"static", "unlimited"};

/* Llama-3.1-8B's attention heads (config.json num_attention_heads): KV per query head. */
#define LLAMA_8B_QUERY_HEADS 32
static const char query_heads_model[] = "llama-3.1-8b";

/* The study's published numbers (PAPER.md "The results"). */
#define STUDY_SA_MAX 5.87
#define STUDY_SA_LOW 4.0
#define STUDY_SA_HIGH 5.0

static const char *const sparsity_values[] = {"0.4", "0.5", "0.6", "0.8", "0.85", "0.9"};
static const char *const variation_values[] = {"low", "actual", "high"};
static const char *const batch_values[] = {"1", "2", "4", "8", "16", "32"};
#define NELEM(a) (sizeof(a) / sizeof *(a))

/* Colours per policy, the same in every plot; others take gnuplot's defaults. */
static const struct {
    const char *policy, *colour;
} policy_colours[] = {
    {"static", "#7f7f7f"},    {"reactive", "#ff7f0e"}, {"page", "#2ca02c"},
    {"lookahead", "#9467bd"}, {"sa", "#1f77b4"},       {"unlimited", "#303030"},
    {"bound", "#d62728"},
};

/* ---------------------------------------------------------------------------------------- */
/* Points and studies                                                                       */

typedef struct point {
    char var[MAX_VARS][VAR_TEXT]; /* the values of the study's variables, as CSV text */
    kvp_scenario sc;
    kvp_result res[MAX_POLICIES];
    char key[KEY_TEXT]; /* every parameter: points with equal keys give equal results */
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
} study_def;

typedef struct study_ctx {
    kvp_scenario base;
    kvp_policy_spec specs[MAX_POLICIES];
    char col[MAX_POLICIES][COL_TEXT]; /* CSV column prefix of each policy */
    size_t nspec;
    kvp_trace *file_trace; /* --trace, or NULL */
    kvp_run_options ro;
    cli_progress pg;
    char label[LABEL_TEXT];
    const char *cur_study;
    size_t cur_point, cur_count;
    uint32_t query_heads;
    int query_heads_given;
    int quiet;
    const cli_ckpt *ckpt;   /* for the message of an interrupted run */
    char cmdline[CMD_TEXT]; /* the options that shape the results, for the summaries */
    point *cache[MAX_STUDIES * MAX_POINTS];
    size_t ncache;
} study_ctx;

static int set_param(kvp_scenario *sc, const char *name, const char *value)
{
    kvp_error err = {0};
    if (kvp_param_set(sc, name, value, &err) < 0 || kvp_scenario_validate(sc, &err) < 0)
        return cli_error("%s", err.msg);
    return 0;
}

/* "Weights not counted": the weights keep their HBM capacity (reserve) but are not read. */
static int drop_weights(kvp_scenario *sc)
{
    kvp_error err = {0};
    sc->reserve += sc->weight_bytes; /* both fit hbm_capacity: validated */
    sc->weight_bytes = 0;
    return kvp_scenario_validate(sc, &err) < 0 ? cli_error("%s", err.msg) : 0;
}

static int one_var_points(study_ctx *c, point *pts, size_t *n, const char *param,
                          const char *const *values, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        pts[i].sc = c->base;
        snprintf(pts[i].var[0], VAR_TEXT, "%s", values[i]);
        int rc = set_param(&pts[i].sc, param, values[i]);
        if (rc)
            return rc;
    }
    *n = count;
    return 0;
}

static int sparsity_points(study_ctx *c, point *pts, size_t *n)
{
    return one_var_points(c, pts, n, "sparsity", sparsity_values, NELEM(sparsity_values));
}

static int variation_points(study_ctx *c, point *pts, size_t *n)
{
    return one_var_points(c, pts, n, "variation", variation_values, NELEM(variation_values));
}

static int hitrate_points(study_ctx *c, point *pts, size_t *n)
{
    pts[0].sc = c->base;
    *n = 1;
    return 0;
}

static const char *const weight_modes[] = {"counted", "not_counted"};

static int batch_points(study_ctx *c, point *pts, size_t *n)
{
    size_t k = 0;
    for (size_t w = 0; w < NELEM(weight_modes); w++) {
        for (size_t b = 0; b < NELEM(batch_values); b++, k++) {
            point *p = &pts[k];
            p->sc = c->base;
            snprintf(p->var[0], VAR_TEXT, "%s", batch_values[b]);
            snprintf(p->var[1], VAR_TEXT, "%s", weight_modes[w]);
            int rc = set_param(&p->sc, "batch", batch_values[b]);
            if (!rc && w)
                rc = drop_weights(&p->sc);
            if (rc)
                return rc;
        }
    }
    *n = k;
    return 0;
}

static int accounting_points(study_ctx *c, point *pts, size_t *n)
{
    if (!c->query_heads_given && strcmp(c->base.model_name, query_heads_model) != 0)
        return cli_error("study accounting: --query-heads N is needed for model %s (the "
                         "default, %d, is %s's)", c->base.model_name[0] ? c->base.model_name
                         : "(custom)", LLAMA_8B_QUERY_HEADS, query_heads_model);
    /* Batch 1 (a single sequence, as the study's prompt suggests) and the scenario's. */
    uint32_t batches[2] = {1, c->base.batch};
    size_t nb = c->base.batch == 1 ? 1 : 2, k = 0;
    for (size_t b = 0; b < nb; b++) {
        for (size_t w = 0; w < NELEM(weight_modes); w++) {
            for (int q = 0; q < 2; q++, k++) {
                point *p = &pts[k];
                p->sc = c->base;
                char heads[NUM_TEXT], batch[NUM_TEXT];
                snprintf(heads, sizeof heads, "%" PRIu32, q ? c->query_heads
                                                                : c->base.kv_heads);
                snprintf(batch, sizeof batch, "%" PRIu32, batches[b]);
                int rc = set_param(&p->sc, "kv_heads", heads);
                if (!rc)
                    rc = set_param(&p->sc, "batch", batch);
                if (!rc && w)
                    rc = drop_weights(&p->sc);
                if (rc)
                    return rc;
                snprintf(p->var[0], VAR_TEXT, "%s", weight_modes[w]);
                snprintf(p->var[1], VAR_TEXT, "%s", q ? "query_head" : "kv_head");
                snprintf(p->var[2], VAR_TEXT, "%s", heads);
                snprintf(p->var[3], VAR_TEXT, "%s", batch);
            }
        }
    }
    *n = k;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers for the outputs                                                                  */

/* The shortest of %.15g, %.16g, %.17g that reads back to exactly d. */
static void fmt_double(char *buf, size_t len, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            return;
    }
}

static const kvp_result *find_res(const study_ctx *c, const point *p, const char *policy)
{
    for (size_t i = 0; i < c->nspec; i++)
        if (strcmp(p->res[i].policy, policy) == 0)
            return &p->res[i];
    return NULL;
}

static double tput(const study_ctx *c, const point *p, const char *policy)
{
    const kvp_result *r = find_res(c, p, policy);
    return r ? r->throughput_tok_s : NAN;
}

/* Throughput of policy over that of ref at the point. */
static double ratio(const study_ctx *c, const point *p, const char *policy, const char *ref)
{
    return tput(c, p, policy) / tput(c, p, ref);
}

/* Throughput of the best baseline the study compares sa with: static, reactive, page. */
static double best_baseline(const study_ctx *c, const point *p)
{
    static const char *const baselines[] = {"static", "reactive", "page"};
    double best = 0;
    for (size_t i = 0; i < NELEM(baselines); i++) {
        double t = tput(c, p, baselines[i]);
        if (t > best)
            best = t;
    }
    return best;
}

static int has_policy(const study_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nspec; i++)
        if (strcmp(kvp_policy_name(c->specs[i].ops), name) == 0)
            return 1;
    return 0;
}

static const char *colour_of(const char *policy)
{
    for (size_t i = 0; i < NELEM(policy_colours); i++)
        if (strcmp(policy_colours[i].policy, policy) == 0)
            return policy_colours[i].colour;
    return NULL;
}

/* Hardware, model, workload and trace of a scenario in one line. */
static void describe(FILE *f, const study_ctx *c, const kvp_scenario *sc)
{
    kvp_derived d;
    kvp_error err;
    if (kvp_scenario_derive(sc, &d, &err) < 0)
        memset(&d, 0, sizeof d);
    char hbm[NUM_TEXT], wb[NUM_TEXT], kb[NUM_TEXT];
    cli_format_bytes(hbm, sizeof hbm, (double)sc->hbm_capacity);
    cli_format_bytes(wb, sizeof wb, (double)sc->weight_bytes);
    cli_format_bytes(kb, sizeof kb, (double)d.kv_budget);
    fprintf(f, "%s (HBM %s at %.4g TB/s, DRAM at %.4g GB/s, link %.4g GB/s), %s (%" PRIu32
            " layers, %" PRIu32 " KV heads x %" PRIu32 " x %" PRIu32 " bytes, weights %s), "
            "batch %" PRIu32 ", sparsity %g, ", sc->hw_name[0] ? sc->hw_name : "(custom)",
            hbm, sc->hbm_bandwidth / 1e12, sc->dram_bandwidth / 1e9, sc->link_bandwidth / 1e9,
            sc->model_name[0] ? sc->model_name : "(custom)", sc->layers, sc->kv_heads,
            sc->head_dim, sc->dtype_bytes, wb, sc->batch, sc->sparsity);
    if (c->file_trace)
        fprintf(f, "trace %s", kvp_trace_name(c->file_trace));
    else
        fprintf(f, "synthetic trace (%s, seed %" PRIu64 ")",
                sc->variation == KVP_VAR_LOW ? "low" : sc->variation == KVP_VAR_HIGH ? "high"
                : "actual", sc->seed);
    fprintf(f, ", prompt %" PRIu32 ", %" PRIu32 " steps; KV budget %s, %" PRIu32
            " slots per layer", sc->prompt, sc->steps, kb, kvp_slots(sc, &d, 1));
}

/* ---------------------------------------------------------------------------------------- */
/* CSV                                                                                      */

static void csv_wide(FILE *f, const study_ctx *c, const study_out *s)
{
    const study_def *def = s->def;
    for (size_t v = 0; v < def->nvars; v++)
        fprintf(f, "%s,", def->vars[v]);
    fprintf(f, "tok_bytes,kv_budget_bytes,slots_per_layer");
    for (size_t i = 0; i < c->nspec; i++) {
        const char *cn = c->col[i];
        fprintf(f, ",%s_tok_s,%s_vs_%s,%s_hit_rate_kv,%s_hit_rate_all", cn, cn, def->norm, cn,
                cn);
        if (strcmp(kvp_policy_name(c->specs[i].ops), "sa") == 0)
            fprintf(f, ",%s_params,%s_evaluations", cn, cn);
    }
    fputc('\n', f);
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        kvp_derived d;
        kvp_error err;
        if (kvp_scenario_derive(&p->sc, &d, &err) < 0)
            memset(&d, 0, sizeof d);
        for (size_t v = 0; v < def->nvars; v++)
            fprintf(f, "%s,", p->var[v]);
        fprintf(f, "%" PRIu64 ",%" PRIu64 ",%" PRIu32, d.tok_bytes, d.kv_budget,
                kvp_slots(&p->sc, &d, 1));
        double ref = tput(c, p, def->norm);
        for (size_t i = 0; i < c->nspec; i++) {
            const kvp_result *r = &p->res[i];
            char a[NUM_TEXT], b[NUM_TEXT], h1[NUM_TEXT], h2[NUM_TEXT];
            fmt_double(a, sizeof a, r->throughput_tok_s);
            fmt_double(b, sizeof b, r->throughput_tok_s / ref);
            fmt_double(h1, sizeof h1, r->hbm_hit_rate_kv);
            fmt_double(h2, sizeof h2, r->hbm_hit_rate_all);
            fprintf(f, ",%s,%s,%s,%s", a, b, h1, h2);
            if (strcmp(r->policy, "sa") == 0)
                fprintf(f, ",%s,%" PRIu32, r->params, r->sa_evaluations);
        }
        fputc('\n', f);
    }
}

/* Time each memory would need for its bytes alone, summed over the run (a lower bound on
 * the time it is busy: the step takes the slowest of them). */
static void busy_times(const kvp_scenario *sc, const kvp_result *r, double *hbm, double *dram,
                       double *link)
{
    *hbm = ((double)r->weight_read + (double)r->hbm_read + (double)r->hbm_write) /
           sc->hbm_bandwidth;
    *dram = ((double)r->dram_read + (double)r->dram_write) / sc->dram_bandwidth;
    double up = (double)r->link_up, down = (double)r->link_down;
    *link = (up > down ? up : down) / sc->link_bandwidth;
}

static void csv_hitrate(FILE *f, const study_ctx *c, const study_out *s)
{
    const point *p = &s->pts[0];
    fprintf(f, "policy,params,throughput_tok_s,speedup_vs_static,hbm_hit_rate_kv,"
               "hbm_hit_rate_all,weights_share,kv_hbm_share,kv_dram_share,hbm_busy_s,"
               "dram_busy_s,link_busy_s,total_time_s\n");
    for (size_t i = 0; i < c->nspec; i++) {
        const kvp_result *r = &p->res[i];
        double kv = (double)r->kv_read_hbm + (double)r->kv_read_dram;
        double all = (double)r->weight_read + kv;
        double v[11];
        v[0] = r->throughput_tok_s;
        v[1] = r->speedup_vs_static;
        v[2] = r->hbm_hit_rate_kv;
        v[3] = r->hbm_hit_rate_all;
        v[4] = all > 0 ? (double)r->weight_read / all : 0;
        /* from the hit rate, not the counters: bound counts its reads as DRAM reads and
         * reports its optimal HBM share as the hit rate */
        v[5] = all > 0 ? r->hbm_hit_rate_kv * kv / all : 0;
        v[6] = all > 0 ? (1 - r->hbm_hit_rate_kv) * kv / all : 0;
        busy_times(&p->sc, r, &v[7], &v[8], &v[9]);
        v[10] = r->total_time_s;
        fprintf(f, "%s,%s", c->col[i], r->params);
        for (size_t k = 0; k < NELEM(v); k++) {
            char t[NUM_TEXT];
            fmt_double(t, sizeof t, v[k]);
            fprintf(f, ",%s", t);
        }
        fputc('\n', f);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                     */

static int add_raw(cJSON *obj, const char *name, const char *text)
{
    return cJSON_AddRawToObject(obj, name, text) ? 0 : -1;
}

static int add_u64(cJSON *obj, const char *name, uint64_t v)
{
    char t[NUM_TEXT];
    snprintf(t, sizeof t, "%" PRIu64, v);
    return add_raw(obj, name, t);
}

static int add_double(cJSON *obj, const char *name, double v)
{
    char t[NUM_TEXT];
    if (!isfinite(v))
        return cJSON_AddNullToObject(obj, name) ? 0 : -1;
    fmt_double(t, sizeof t, v);
    return add_raw(obj, name, t);
}

static cJSON *json_scenario(const kvp_scenario *sc)
{
    cJSON *o = cJSON_CreateObject();
    size_t n;
    const kvp_param_info *params = kvp_params(&n);
    int bad = !o;
    for (size_t i = 0; i < n && !bad; i++) {
        char t[NUM_TEXT];
        if (kvp_param_format(sc, &params[i], t, sizeof t) < 0)
            bad = 1;
        else if (params[i].kind == KVP_PK_VARIATION)
            bad = !cJSON_AddStringToObject(o, params[i].name, t);
        else if (params[i].kind == KVP_PK_FRACTION || params[i].kind == KVP_PK_BANDWIDTH)
            bad = add_double(o, params[i].name, strtod(t, NULL)) < 0;
        else
            bad = add_raw(o, params[i].name, t) < 0;
    }
    if (!bad)
        bad = !cJSON_AddStringToObject(o, "hw", sc->hw_name) ||
              !cJSON_AddStringToObject(o, "model", sc->model_name);
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *json_result(const kvp_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const struct {
        const char *name;
        uint64_t v;
    } ints[] = {
        {"promoted_bytes", r->promoted_bytes},   {"demoted_bytes", r->demoted_bytes},
        {"kv_read_hbm_bytes", r->kv_read_hbm},   {"kv_read_dram_bytes", r->kv_read_dram},
        {"hbm_read_bytes", r->hbm_read},         {"hbm_write_bytes", r->hbm_write},
        {"dram_read_bytes", r->dram_read},       {"dram_write_bytes", r->dram_write},
        {"link_up_bytes", r->link_up},           {"link_down_bytes", r->link_down},
        {"weight_read_bytes", r->weight_read},   {"block_tokens", r->block_tokens},
        {"sa_evaluations", r->sa_evaluations},
    };
    int bad = !cJSON_AddStringToObject(o, "policy", r->policy) ||
              !cJSON_AddStringToObject(o, "params", r->params) ||
              add_double(o, "total_time_s", r->total_time_s) < 0 ||
              add_double(o, "throughput_tok_s", r->throughput_tok_s) < 0 ||
              add_double(o, "hbm_hit_rate_kv", r->hbm_hit_rate_kv) < 0 ||
              add_double(o, "hbm_hit_rate_all", r->hbm_hit_rate_all) < 0 ||
              add_double(o, "speedup_vs_static", r->speedup_vs_static) < 0 ||
              add_double(o, "speedup_vs_unlimited", r->speedup_vs_unlimited) < 0;
    for (size_t i = 0; i < NELEM(ints) && !bad; i++)
        bad = add_u64(o, ints[i].name, ints[i].v) < 0;
    if (!bad)
        bad = r->slots == UINT32_MAX ? !cJSON_AddNullToObject(o, "slots")
                                     : add_u64(o, "slots", r->slots) < 0;
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int json_write(FILE *f, const study_ctx *c, const study_out *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *pols, *pts;
    int bad = !root || !cJSON_AddStringToObject(root, "kvplace_version", KVP_VERSION) ||
              !cJSON_AddStringToObject(root, "study", s->def->name) ||
              !cJSON_AddStringToObject(root, "normalised_to", s->def->norm) ||
              !cJSON_AddStringToObject(root, "command", c->cmdline);
    if (!bad) {
        cJSON *sc = json_scenario(&c->base);
        bad = !sc || !cJSON_AddItemToObject(root, "scenario", sc);
    }
    if (!bad)
        bad = !cJSON_AddStringToObject(root, "trace", c->file_trace
                                       ? kvp_trace_name(c->file_trace) : "synthetic") ||
              add_u64(root, "seed", c->base.seed) < 0;
    if (!bad) {
        pols = cJSON_AddArrayToObject(root, "policies");
        bad = !pols;
        for (size_t i = 0; i < c->nspec && !bad; i++) {
            char t[LABEL_TEXT];
            kvp_policy_format(&c->specs[i], t, sizeof t);
            cJSON *item = cJSON_CreateString(t);
            bad = !item || !cJSON_AddItemToArray(pols, item);
        }
    }
    pts = bad ? NULL : cJSON_AddArrayToObject(root, "points");
    bad = bad || !pts;
    for (size_t k = 0; k < s->n && !bad; k++) {
        const point *p = &s->pts[k];
        cJSON *po = cJSON_CreateObject(), *vars = NULL, *res = NULL, *sc = NULL;
        bad = !po || !cJSON_AddItemToArray(pts, po);
        if (!bad) {
            vars = cJSON_AddObjectToObject(po, "vars");
            bad = !vars;
        }
        for (size_t v = 0; v < s->def->nvars && !bad; v++)
            bad = !cJSON_AddStringToObject(vars, s->def->vars[v], p->var[v]);
        if (!bad) {
            sc = json_scenario(&p->sc);
            bad = !sc || !cJSON_AddItemToObject(po, "scenario", sc);
        }
        if (!bad) {
            res = cJSON_AddArrayToObject(po, "results");
            bad = !res;
        }
        for (size_t i = 0; i < c->nspec && !bad; i++) {
            cJSON *r = json_result(&p->res[i]);
            bad = !r || !cJSON_AddItemToArray(res, r);
        }
    }
    char *text = bad ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return -1;
    fputs(text, f);
    fputc('\n', f);
    free(text);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* gnuplot scripts                                                                          */

/* Every script reads `data` and writes `out`.png and `out`.svg, with defaults for a user who
 * re-plots by hand (`cd DIR && gnuplot NAME.gp`); kvplace sets both to temporary names. */
static void gp_head(FILE *f, const study_ctx *c, const study_out *s, const char *xlabel,
                    const char *ylabel)
{
    const char *n = s->def->name;
    fprintf(f, "# kvplace study %s: re-plot with `gnuplot %s.gp` in this directory.\n", n, n);
    fprintf(f, "if (!exists(\"data\")) data = \"%s.csv\"\n", n);
    fprintf(f, "if (!exists(\"out\")) out = \"%s\"\n", n);
    fprintf(f, "set datafile separator comma\nset key autotitle columnhead\n");
    fprintf(f, "set terminal pngcairo noenhanced size 1200,650 font \"sans,11\"\n");
    fprintf(f, "set output out.\".png\"\n");
    const kvp_scenario *sc = &s->pts[0].sc;
    fprintf(f, "set title \"%s\\n%s, %s, prompt %" PRIu32 ", %" PRIu32 " steps",
            s->def->title, sc->hw_name[0] ? sc->hw_name : "custom hardware",
            sc->model_name[0] ? sc->model_name : "custom model", sc->prompt, sc->steps);
    if (strcmp(n, "batch") != 0 && strcmp(n, "accounting") != 0)
        fprintf(f, ", batch %" PRIu32, c->base.batch);
    if (strcmp(n, "sparsity") != 0)
        fprintf(f, ", sparsity %g", c->base.sparsity);
    fprintf(f, ", %s\"\n", c->file_trace ? "trace file" : "synthetic trace");
    fprintf(f, "set xlabel \"%s\"\nset ylabel \"%s\"\n", xlabel, ylabel);
    fprintf(f, "set grid ytics\nset key outside right top Left reverse\nset yrange [0:*]\n");
}

static void gp_tail(FILE *f)
{
    fprintf(f, "set terminal svg noenhanced size 1200,650 font \"sans,11\"\n");
    fprintf(f, "set output out.\".svg\"\nreplot\nset output\n");
}

static void gp_colour(FILE *f, const char *policy)
{
    const char *col = colour_of(policy);
    if (col)
        fprintf(f, " lc rgb \"%s\"", col);
}

/* A clustered bar chart: one cluster per point (xtic: the expression xtic), one bar per policy
 * of column <policy>_vs_<norm>; bound hatched (a cap, not a policy). */
static void gp_bars(FILE *f, const study_ctx *c, const study_out *s, const char *xtic,
                    const char *study_line)
{
    fprintf(f, "set style data histogram\nset style histogram clustered gap 1\n");
    fprintf(f, "set style fill solid 0.85 border -1\nset xtics nomirror\n");
    fprintf(f, "plot ");
    for (size_t i = 0; i < c->nspec; i++) {
        const char *pol = kvp_policy_name(c->specs[i].ops);
        int is_bound = strcmp(pol, "bound") == 0;
        fprintf(f, "%sdata using \"%s_vs_%s\"%s%s%s title \"%s%s\"", i ? ", \\\n     " : "",
                c->col[i], s->def->norm, i ? "" : ":xtic(", i ? "" : xtic, i ? "" : ")",
                c->col[i], is_bound ? " (cap)" : "");
        if (is_bound)
            fprintf(f, " fs pattern 4 border");
        gp_colour(f, pol);
    }
    if (study_line)
        fprintf(f, ", \\\n     %s", study_line);
    fprintf(f, "\n");
}

/* The study's headline as a dashed line across the plot. */
static void study_max_line(char *buf, size_t len)
{
    snprintf(buf, len, "%g with lines dt 2 lw 2 lc rgb \"black\" title \"study: sa up to "
             "%gx over static\"", STUDY_SA_MAX, STUDY_SA_MAX);
}

static void gp_sparsity(FILE *f, const study_ctx *c, const study_out *s)
{
    char line[LABEL_TEXT];
    study_max_line(line, sizeof line);
    gp_head(f, c, s, "attention sparsity (share of past tokens not read per step)",
            "throughput / static throughput (x)");
    gp_bars(f, c, s, "1", line);
    gp_tail(f);
}

static void gp_variation(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "token-importance variation of the synthetic trace",
            "throughput / unlimited-HBM throughput (x)");
    gp_bars(f, c, s, "1", NULL);
    gp_tail(f);
}

static void gp_accounting(FILE *f, const study_ctx *c, const study_out *s)
{
    char xlabel[LABEL_TEXT], line[LABEL_TEXT];
    study_max_line(line, sizeof line);
    snprintf(xlabel, sizeof xlabel, "variant (not counted: weight_bytes=0, reserve kept; "
             "kv_heads %" PRIu32 ": per KV head, %" PRIu32 ": per query head)",
             c->base.kv_heads, c->query_heads);
    gp_head(f, c, s, xlabel, "throughput / static throughput (x)");
    /* four-line tic labels: a smaller font, and the axis label moved below them */
    fprintf(f, "set bmargin 8\nset xtics font \",9\"\nset xlabel offset 0,-3\n");
    gp_bars(f, c, s, "sprintf(\"weights\\n%s\\nkv_heads %s\\nbatch %s\", strcol(1) eq "
            "\"counted\" ? \"counted\" : \"not counted\", strcol(3), strcol(4))", line);
    gp_tail(f);
}

static void gp_hitrate(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "policy",
            "share of all bytes read (weights + KV)");
    fprintf(f, "set style data histogram\nset style histogram rowstacked\n");
    fprintf(f, "set style fill solid 0.85 border -1\nset boxwidth 0.6\nset yrange [0:1.05]\n");
    fprintf(f, "plot data using \"weights_share\":xtic(1) title \"weights, read from HBM\" "
               "lc rgb \"#bbbbbb\", \\\n"
               "     '' using \"kv_hbm_share\" title \"KV read from HBM\" lc rgb \"#1f77b4\", "
               "\\\n     '' using \"kv_dram_share\" title \"KV read from DRAM\" "
               "lc rgb \"#ff7f0e\", \\\n"
               "     '' using 0:\"hbm_hit_rate_kv\" with points pt 7 ps 1.6 lc rgb \"black\" "
               "title \"HBM hit rate of KV alone\"\n");
    gp_tail(f);
}

static void gp_batch(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "batch (sequences decoded together; KV bytes scale with it)",
            "throughput / static throughput (x)");
    fprintf(f, "set logscale x 2\nset xrange [0.8:40]\nset xtics (1,2,4,8,16,32)\n");
    fprintf(f, "plot ");
    static const char *const pols[] = {"sa", "bound", "page", "reactive"};
    int first = 1;
    for (size_t w = 0; w < NELEM(weight_modes); w++) {
        for (size_t k = 0; k < NELEM(pols); k++) {
            if (!has_policy(c, pols[k]))
                continue;
            fprintf(f, "%sdata using \"batch\":(strcol(\"weights\") eq \"%s\" ? "
                    "column(\"%s_vs_static\") : NaN) with linespoints lw 2 pt %d dt %d",
                    first ? "" : ", \\\n     ", weight_modes[w], pols[k], w ? 6 : 7,
                    w ? 2 : 1);
            gp_colour(f, pols[k]);
            fprintf(f, " title \"%s, weights %s\"", pols[k], w ? "not counted" : "counted");
            first = 0;
        }
    }
    char line[LABEL_TEXT];
    study_max_line(line, sizeof line);
    fprintf(f, "%s%s, \\\n     %g with lines dt 3 lc rgb \"#555555\" title \"study: sa %gx "
            "to %gx ahead of the baselines\", \\\n     %g with lines dt 3 lc rgb \"#555555\" "
            "notitle\n", first ? "" : ", \\\n     ", line, STUDY_SA_LOW, STUDY_SA_LOW,
            STUDY_SA_HIGH, STUDY_SA_HIGH);
    gp_tail(f);
}

/* ---------------------------------------------------------------------------------------- */
/* Markdown summaries                                                                       */

static void md_head(FILE *f, const study_ctx *c, const study_out *s, const char *what)
{
    const char *n = s->def->name;
    fprintf(f, "# kvplace study `%s`: %s\n\n%s\n\n", n, s->def->title, what);
    fprintf(f, "Scenario: ");
    describe(f, c, &c->base);
    fprintf(f, ". Policies:");
    for (size_t i = 0; i < c->nspec; i++) {
        char t[LABEL_TEXT];
        kvp_policy_format(&c->specs[i], t, sizeof t);
        fprintf(f, "%s `%s`", i ? "," : "", t);
    }
    fprintf(f, ".\n\nCommand: `%s`\n\n![%s](%s.png)\n\nData: [%s.csv](%s.csv), [%s.json](%s.json)"
            "; plot script [%s.gp](%s.gp).\n\n", c->cmdline, n, n, n, n, n, n, n, n);
}

/* A table: one row per point, the variables then each policy's throughput over norm. */
static void md_table(FILE *f, const study_ctx *c, const study_out *s)
{
    const study_def *def = s->def;
    fprintf(f, "Throughput over %s's (x):\n\n|", def->norm);
    for (size_t v = 0; v < def->nvars; v++)
        fprintf(f, " %s |", def->vars[v]);
    for (size_t i = 0; i < c->nspec; i++)
        fprintf(f, " %s |", c->col[i]);
    if (has_policy(c, "sa"))
        fprintf(f, " sa's (W, R) | sa / best baseline |");
    fprintf(f, "\n|");
    for (size_t v = 0; v < def->nvars + c->nspec + 2 * (size_t)has_policy(c, "sa"); v++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        fputc('|', f);
        for (size_t v = 0; v < def->nvars; v++)
            fprintf(f, " %s |", p->var[v]);
        for (size_t i = 0; i < c->nspec; i++)
            fprintf(f, " %.3f |", p->res[i].throughput_tok_s / tput(c, p, def->norm));
        const kvp_result *sa = find_res(c, p, "sa");
        if (sa)
            fprintf(f, " %s | %.3f |", sa->params, sa->throughput_tok_s / best_baseline(c, p));
        fputc('\n', f);
    }
    fprintf(f, "\nThe best baseline is the fastest of static, reactive and page. `bound` is a "
               "provable cap on every capacity-limited policy (DESIGN.md §5), not a "
               "policy.\n\n");
}

/* Index of the point where policy's ratio over ref is largest (or smallest). */
static size_t arg_ext(const study_ctx *c, const study_out *s, const char *policy,
                      const char *ref, int largest, size_t from, size_t to)
{
    size_t best = from;
    for (size_t k = from; k < to; k++) {
        double v = ratio(c, &s->pts[k], policy, ref), b = ratio(c, &s->pts[best], policy, ref);
        if (largest ? v > b : v < b)
            best = k;
    }
    return best;
}

static void md_range(FILE *f, const study_ctx *c, const study_out *s, const char *policy,
                     const char *ref, size_t from, size_t to)
{
    size_t lo = arg_ext(c, s, policy, ref, 0, from, to);
    size_t hi = arg_ext(c, s, policy, ref, 1, from, to);
    fprintf(f, "%.2fx (%s) to %.2fx (%s)", ratio(c, &s->pts[lo], policy, ref),
            s->pts[lo].var[0], ratio(c, &s->pts[hi], policy, ref), s->pts[hi].var[0]);
}

static void md_sa_vs_baselines(FILE *f, const study_ctx *c, const study_out *s, size_t from,
                               size_t to)
{
    double lo = INFINITY, hi = 0;
    for (size_t k = from; k < to; k++) {
        const point *p = &s->pts[k];
        double v = tput(c, p, "sa") / best_baseline(c, p);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    fprintf(f, "%.2fx to %.2fx", lo, hi);
}

static void md_sparsity(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study's Fig. 3: throughput normalised to static at six sparsities.");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\n| | the study (Fig. 3) | ours |\n|---|---|---|\n");
    if (has_policy(c, "sa")) {
        fprintf(f, "| sa over static | up to %.2fx | ", STUDY_SA_MAX);
        md_range(f, c, s, "sa", "static", 0, s->n);
        fprintf(f, " |\n| sa over the best baseline | %.0fx to %.0fx | ", STUDY_SA_LOW,
                STUDY_SA_HIGH);
        md_sa_vs_baselines(f, c, s, 0, s->n);
        fprintf(f, " |\n");
    }
    if (has_policy(c, "bound")) {
        fprintf(f, "| bound over static (the most any placement could gain) | not given | ");
        md_range(f, c, s, "bound", "static", 0, s->n);
        fprintf(f, " |\n");
    }
    static const char *const gainers[] = {"reactive", "page"};
    for (size_t g = 0; g < NELEM(gainers); g++) {
        if (!has_policy(c, gainers[g]))
            continue;
        fprintf(f, "| %s over static | gains little below 60%%, closer to sa above 80%% | ",
                gainers[g]);
        md_range(f, c, s, gainers[g], "static", 0, s->n);
        if (has_policy(c, "sa")) {
            fprintf(f, "; of sa's throughput: ");
            md_range(f, c, s, gainers[g], "sa", 0, s->n);
        }
        fprintf(f, " |\n");
    }
    fprintf(f, "\nRanges name the sparsity where they occur. docs/RESULTS.md explains where "
               "and why these differ from the study's.\n");
}

static void md_variation(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study's Fig. 4: throughput normalised to unlimited HBM, with low, "
                     "actual and high variation of token importance.");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\n| | the study (Fig. 4) | ours (of unlimited) |\n"
               "|---|---|---|\n");
    static const char *const pols[] = {"page", "sa", "reactive", "static", "bound"};
    for (size_t k = 0; k < NELEM(pols); k++) {
        if (!has_policy(c, pols[k]))
            continue;
        const char *claim = k < 2 ? "close to the optimum at low variation; loses ground at "
                                    "high variation" : "not stated";
        fprintf(f, "| %s | %s |", pols[k], claim);
        for (size_t i = 0; i < s->n; i++)
            fprintf(f, " %s %.3f%s", s->pts[i].var[0], ratio(c, &s->pts[i], pols[k],
                    "unlimited"), i + 1 < s->n ? "," : "");
        fprintf(f, " |\n");
    }
    fprintf(f, "\nThe study's variation traces are not published (PAPER.md); ours are "
               "the synthetic presets of docs/SYNTHETIC.md. docs/RESULTS.md compares.\n");
}

static void md_hitrate(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study's Fig. 5: the HBM hit rate of each policy, weights counted "
                     "as HBM traffic, here with the weights' share shown apart.");
    const point *p = &s->pts[0];
    fprintf(f, "| policy | hit rate, KV only | hit rate, all bytes | weights' share of bytes "
               "read | HBM busy (s) | DRAM busy (s) | time (s) | throughput / static |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < c->nspec; i++) {
        const kvp_result *r = &p->res[i];
        double all = (double)r->weight_read + (double)r->kv_read_hbm + (double)r->kv_read_dram;
        double hb, db, lb;
        busy_times(&p->sc, r, &hb, &db, &lb);
        fprintf(f, "| %s | %.1f%% | %.1f%% | %.1f%% | ", c->col[i], 100 * r->hbm_hit_rate_kv,
                100 * r->hbm_hit_rate_all, all > 0 ? 100 * (double)r->weight_read / all : 0.0);
        /* bound splits each step's reads at the optimum; it counts no tier traffic */
        if (strcmp(r->policy, "bound") == 0)
            fprintf(f, "- | - |");
        else
            fprintf(f, "%.4g | %.4g |", hb, db);
        fprintf(f, " %.4g | %.3f |\n", r->total_time_s, r->speedup_vs_static);
    }
    fprintf(f, "\nHBM busy and DRAM busy: each memory's bytes over its bandwidth, summed over "
               "the run; a step lasts as long as the busier one, so a policy is fast when "
               "both are low and close to each other (bound counts no tier traffic: -).\n\n");
    fprintf(f, "## Beside the study\n\n| | the study (Fig. 5) | ours |\n|---|---|---|\n");
    const kvp_result *sa = find_res(c, p, "sa");
    const kvp_result *st = find_res(c, p, "static");
    if (sa && st)
        fprintf(f, "| sa's hit rate | balanced, not the highest | KV %.1f%% (static %.1f%%), "
                "all bytes %.1f%% (static %.1f%%) |\n", 100 * sa->hbm_hit_rate_kv,
                100 * st->hbm_hit_rate_kv, 100 * sa->hbm_hit_rate_all,
                100 * st->hbm_hit_rate_all);
    fprintf(f, "| weights in the hit rate | counted as HBM traffic | shown apart: the grey "
               "share of each bar |\n");
}

static void md_batch(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study does not give its batch size (PAPER.md), so this sweeps it, "
                     "with the weights' traffic counted (the model of DESIGN.md) and not "
                     "counted (weight_bytes=0, the weights' bytes kept as reserve so the KV "
                     "budget is unchanged).");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\n| | the study | ours, weights counted | ours, weights "
               "not counted |\n|---|---|---|---|\n");
    size_t half = s->n / 2;
    static const struct {
        const char *policy, *claim;
    } rows[] = {{"sa", "up to 5.87x"}, {"bound", "not given"}};
    for (size_t k = 0; k < NELEM(rows); k++) {
        if (!has_policy(c, rows[k].policy))
            continue;
        fprintf(f, "| %s over static, by batch | %s | ", rows[k].policy, rows[k].claim);
        md_range(f, c, s, rows[k].policy, "static", 0, half);
        fprintf(f, " | ");
        md_range(f, c, s, rows[k].policy, "static", half, s->n);
        fprintf(f, " |\n");
    }
    if (has_policy(c, "sa")) {
        fprintf(f, "| sa over the best baseline | 4x to 5x | ");
        md_sa_vs_baselines(f, c, s, 0, half);
        fprintf(f, " | ");
        md_sa_vs_baselines(f, c, s, half, s->n);
        fprintf(f, " |\n");
    }
    fprintf(f, "\nRanges name the batch where they occur. docs/RESULTS.md works out why.\n");
}

static void md_accounting(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "PAPER.md \"Reading the headline\": the accounting variants side by side. "
                     "\"Weights not counted\" keeps the weights' HBM capacity (reserve = the "
                     "model's weight bytes) but drops their traffic (weight_bytes=0); \"per "
                     "query head\" counts KV for every query head (kv_heads = query heads), "
                     "which multiplies tok_bytes as a larger batch would. Each at batch 1 "
                     "(one sequence, as the study's single prompt suggests) and at the "
                     "scenario's batch.");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\n| variant | sa over static | bound over static | "
               "nearest to the study's 5.87x? |\n|---|---|---|---|\n");
    double best_gap = INFINITY;
    size_t best = 0;
    const char *metric = has_policy(c, "sa") ? "sa" : "bound";
    for (size_t k = 0; k < s->n; k++) {
        double gap = fabs(ratio(c, &s->pts[k], metric, "static") - STUDY_SA_MAX);
        if (gap < best_gap) {
            best_gap = gap;
            best = k;
        }
    }
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        fprintf(f, "| weights %s, KV per %s (kv_heads=%s), batch %s | %.2fx | %.2fx | %s |\n",
                strcmp(p->var[0], "counted") == 0 ? "counted" : "not counted",
                strcmp(p->var[1], "kv_head") == 0 ? "KV head" : "query head", p->var[2],
                p->var[3], ratio(c, p, "sa", "static"), ratio(c, p, "bound", "static"),
                k == best ? "nearest" : "");
    }
    fprintf(f, "\nThe study: sa up to %.2fx over static. A variant is near it only if its "
               "bound over static reaches it: no policy passes the bound.\n", STUDY_SA_MAX);
}

/* ---------------------------------------------------------------------------------------- */
/* The table of studies                                                                     */

static const char *const vars_sparsity[] = {"sparsity"};
static const char *const vars_variation[] = {"variation"};
static const char *const vars_batch[] = {"batch", "weights"};
static const char *const vars_accounting[] = {"weights", "kv_per", "kv_heads", "batch"};

static const study_def studies[] = {
    {"sparsity", "Throughput over static at each sparsity", "Fig. 3", vars_sparsity, 1,
     "static", 1, 0, sparsity_points, gp_sparsity, md_sparsity},
    {"variation", "Throughput over unlimited HBM by variation", "Fig. 4", vars_variation, 1,
     "unlimited", 0, 1, variation_points, gp_variation, md_variation},
    {"hitrate", "HBM hit rate per policy, the weights' share apart", "Fig. 5", NULL, 0,
     "static", 0, 0, hitrate_points, gp_hitrate, md_hitrate},
    {"batch", "Throughput over static by batch, weights counted and not", "batch", vars_batch,
     2, "static", 0, 0, batch_points, gp_batch, md_batch},
    {"accounting", "Throughput over static under each accounting", "headline",
     vars_accounting, 4, "static", 0, 0, accounting_points, gp_accounting, md_accounting},
};

static const study_def *find_study(const char *name)
{
    for (size_t i = 0; i < NELEM(studies); i++)
        if (strcmp(studies[i].name, name) == 0)
            return &studies[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                  */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void point_key(point *p)
{
    size_t n, used = 0;
    const kvp_param_info *params = kvp_params(&n);
    p->key[0] = 0;
    for (size_t i = 0; i < n && used < sizeof p->key; i++) {
        char t[NUM_TEXT];
        if (kvp_param_format(&p->sc, &params[i], t, sizeof t) < 0)
            t[0] = 0;
        int w = snprintf(p->key + used, sizeof p->key - used, "%s=%s;", params[i].name, t);
        used += w > 0 ? (size_t)w : 0;
    }
}

static void sa_log(void *user, const kvp_sa_event *ev)
{
    study_ctx *c = user;
    snprintf(c->label, sizeof c->label, "%s sa %" PRIu32, c->cur_study, ev->evaluations);
}

static void point_text(char *buf, size_t len, const study_def *def, const point *p)
{
    buf[0] = 0;
    for (size_t v = 0; v < def->nvars; v++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s=%s", v ? " " : "", def->vars[v], p->var[v]);
    }
    if (!def->nvars)
        snprintf(buf, len, "the scenario");
}

/* The trace of a point: the --trace file, or the point's synthetic trace (which the caller
 * frees). */
static int point_trace(const study_ctx *c, const point *p, kvp_trace **tr)
{
    kvp_error err = {0};
    *tr = c->file_trace;
    if (!*tr) {
        kvp_synth_params sp;
        kvp_synth_default(&sp, &p->sc);
        if (kvp_trace_synthetic(tr, &sp, &err) < 0)
            return cli_error("%s", err.msg);
    }
    return 0;
}

static int run_point(study_ctx *c, const study_def *def, point *p, size_t i, size_t n)
{
    kvp_error err = {0};
    point_key(p);
    for (size_t k = 0; k < c->ncache; k++) {
        if (strcmp(c->cache[k]->key, p->key) == 0) {
            memcpy(p->res, c->cache[k]->res, sizeof p->res);
            if (!c->quiet) {
                char what[LABEL_TEXT];
                point_text(what, sizeof what, def, p);
                fprintf(stderr, "kvplace: %s %zu/%zu (%s): the same scenario as a point run "
                        "before; its results reused\n", def->name, i + 1, n, what);
            }
            return 0;
        }
    }
    kvp_trace *tr;
    int rc = point_trace(c, p, &tr);
    if (rc != 0)
        return rc;
    c->cur_study = def->name;
    snprintf(c->label, sizeof c->label, "%s", def->name);
    c->pg.index = (unsigned)i;
    c->pg.count = (unsigned)n;
    c->pg.label = c->label;
    double t0 = now_s();
    rc = kvp_run_many(&p->sc, tr, c->specs, c->nspec, &c->ro, p->res, &err);
    cli_progress_clear(&c->pg);
    if (tr != c->file_trace)
        kvp_trace_free(tr);
    if (rc < 0)
        return cli_run_failed(&err, c->ckpt);
    kvp_result_speedups(p->res, c->nspec, find_res(c, p, "static")->total_time_s,
                        find_res(c, p, "unlimited")->total_time_s);
    if (!c->quiet) {
        char what[LABEL_TEXT];
        point_text(what, sizeof what, def, p);
        fprintf(stderr, "kvplace: %s %zu/%zu (%s): %.1f s", def->name, i + 1, n, what,
                now_s() - t0);
        const kvp_result *sa = find_res(c, p, "sa");
        if (sa)
            fprintf(stderr, "; sa: %" PRIu32 " evaluations, best %s, %.3fx static",
                    sa->sa_evaluations, sa->params, sa->speedup_vs_static);
        fputc('\n', stderr);
    }
    if (c->ncache < NELEM(c->cache))
        c->cache[c->ncache++] = p;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                  */

typedef struct pending {
    char tmp[PATH_TEXT], final[PATH_TEXT];
} pending;

typedef struct writer {
    const char *dir;
    pending files[MAX_FILES];
    size_t n;
} writer;

static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
    int w = snprintf(buf, len, "%s/%s", dir, name);
    return w < 0 || (size_t)w >= len ? cli_error("--out %s: path too long", dir) : 0;
}

/* Registers DIR/NAME.EXT, to be written under a temporary name now. */
static int add_file(writer *w, const char *name, const char *ext, pending **out)
{
    if (w->n >= MAX_FILES)
        return cli_error("too many output files");
    pending *p = &w->files[w->n];
    char base[LABEL_TEXT], final[PATH_TEXT];
    snprintf(base, sizeof base, "%s.%s", name, ext);
    if (path_join(final, sizeof final, w->dir, base))
        return CLI_EXIT_INPUT;
    int n = snprintf(p->tmp, sizeof p->tmp, "%s.tmp%ld", final, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof p->tmp)
        return cli_error("--out %s: path too long", w->dir);
    memcpy(p->final, final, sizeof final);
    w->n++;
    *out = p;
    return 0;
}

typedef int (*emit_fn)(FILE *f, const study_ctx *c, const study_out *s);

static int emit_csv(FILE *f, const study_ctx *c, const study_out *s)
{
    if (s->def->nvars)
        csv_wide(f, c, s);
    else
        csv_hitrate(f, c, s);
    return 0;
}

static int emit_md(FILE *f, const study_ctx *c, const study_out *s)
{
    s->def->md(f, c, s);
    return 0;
}

static int emit_gp(FILE *f, const study_ctx *c, const study_out *s)
{
    s->def->gp(f, c, s);
    return 0;
}

static int write_file(writer *w, const study_ctx *c, const study_out *s, const char *ext,
                      emit_fn emit)
{
    pending *p;
    int rc = add_file(w, s->def->name, ext, &p);
    if (rc)
        return rc;
    FILE *f = fopen(p->tmp, "w");
    if (!f)
        return cli_error("%s: cannot create: %s", p->final, strerror(errno));
    int bad = emit(f, c, s) < 0;
    bad |= ferror(f);
    if (fclose(f) != 0)
        bad = 1;
    return bad ? cli_error("%s: write failed", p->final) : 0;
}

/* gnuplot draws NAME.png and NAME.svg from the temporary CSV and script.  Returns 1 when
 * the plots were made, 0 when they were not (with a warning). */
static int run_gnuplot(writer *w, const study_def *def, const char *csv_tmp,
                       const char *gp_tmp, int quiet)
{
    char vars[PATH_TEXT * 2], out[LABEL_TEXT];
    const char *csv_base = strrchr(csv_tmp, '/') + 1, *gp_base = strrchr(gp_tmp, '/') + 1;
    snprintf(out, sizeof out, "%s.tmp%ld", def->name, (long)getpid());
    snprintf(vars, sizeof vars, "data='%s'; out='%s'", csv_base, out);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        if (!quiet)
            fprintf(stderr, "kvplace: warning: cannot start gnuplot: %s; %s has no plots\n",
                    strerror(errno), def->name);
        return 0;
    }
    if (pid == 0) {
        if (chdir(w->dir) != 0)
            _exit(EXEC_FAILED);
        execlp("gnuplot", "gnuplot", "-e", vars, gp_base, (char *)NULL);
        _exit(EXEC_FAILED);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 0;
    static const char *const exts[] = {"png", "svg"};
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    for (size_t k = 0; k < NELEM(exts); k++) {
        pending *p;
        char name[LABEL_TEXT * 2], made[PATH_TEXT];
        snprintf(name, sizeof name, "%s.%s", out, exts[k]);
        if (path_join(made, sizeof made, w->dir, name))
            return 0;
        if (ok && access(made, F_OK) != 0)
            ok = 0;
        if (!ok) {
            unlink(made);
            continue;
        }
        if (add_file(w, def->name, exts[k], &p)) {
            unlink(made);
            return 0;
        }
        snprintf(p->tmp, sizeof p->tmp, "%s", made);
    }
    if (!ok && !quiet) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == EXEC_FAILED)
            fprintf(stderr, "kvplace: warning: gnuplot not found; %s has its data but no "
                    "plots (install gnuplot, then run gnuplot %s.gp in the output "
                    "directory)\n", def->name, def->name);
        else
            fprintf(stderr, "kvplace: warning: gnuplot failed; %s has its data but no "
                    "plots\n", def->name);
    }
    return ok;
}

static void writer_abort(writer *w)
{
    for (size_t i = 0; i < w->n; i++)
        unlink(w->files[i].tmp);
    w->n = 0;
}

static int writer_commit(writer *w)
{
    for (size_t i = 0; i < w->n; i++) {
        if (rename(w->files[i].tmp, w->files[i].final) != 0) {
            int rc = cli_error("%s: cannot rename into place: %s", w->files[i].final,
                               strerror(errno));
            for (size_t k = i; k < w->n; k++)
                unlink(w->files[k].tmp);
            for (size_t k = 0; k < i; k++)
                unlink(w->files[k].final);
            return rc;
        }
    }
    return 0;
}

/* mkdir -p */
static int make_dir(const char *dir)
{
    char buf[PATH_TEXT];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return cli_error("--out %s: path too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return cli_error("--out %s: cannot create %s: %s", dir, buf, strerror(errno));
        *p = c;
        if (!c)
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error("--out %s: not a directory", dir);
    return 0;
}

static int write_study(writer *w, const study_ctx *c, study_out *s)
{
    static const struct {
        const char *ext;
        emit_fn emit;
    } files[] = {{"csv", emit_csv}, {"json", json_write}, {"md", emit_md}, {"gp", emit_gp}};
    for (size_t k = 0; k < NELEM(files); k++) {
        int rc = write_file(w, c, s, files[k].ext, files[k].emit);
        if (rc)
            return rc;
    }
    const char *csv_tmp = w->files[w->n - NELEM(files)].tmp;
    const char *gp_tmp = w->files[w->n - 1].tmp;
    s->plotted = run_gnuplot(w, s->def, csv_tmp, gp_tmp, c->quiet);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                              */

typedef struct study_opts {
    cli_scn scn;
    const char *name, *out, *trace, *policies, *threads, *sa_budget, *query_heads;
    cli_ckpt ckpt; /* --checkpoint, --resume */
    int quiet;
} study_opts;

/* Appends an argument to the summaries' command line, quoted for a POSIX shell if needed. */
static void cmd_append(char *buf, size_t len, const char *arg)
{
    size_t used = strlen(buf);
    int plain = *arg != 0;
    for (const char *p = arg; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "-_=.,:/+@%", *p))
            plain = 0;
    if (plain) {
        snprintf(buf + used, len - used, " %s", arg);
        return;
    }
    snprintf(buf + used, len - used, " '");
    for (const char *p = arg; *p; p++) {
        used = strlen(buf);
        if (*p == '\'')
            snprintf(buf + used, len - used, "'\\''");
        else
            snprintf(buf + used, len - used, "%c", *p);
    }
    used = strlen(buf);
    snprintf(buf + used, len - used, "'");
}

static int parse_args(const cli_args *a, study_opts *o, study_ctx *c, int *help)
{
    *help = 0;
    snprintf(c->cmdline, sizeof c->cmdline, "kvplace study");
    for (int i = 0; i < a->argc; i++) {
        const char *arg = a->argv[i];
        int start = i, m;
        if (cli_is_help(arg)) {
            *help = 1;
            return 0;
        }
        if ((m = cli_opt_value(a, &i, "--out", NULL, &o->out)) != 0 ||
            (m = cli_opt_value(a, &i, "--threads", NULL, &o->threads)) != 0 ||
            (m = cli_ckpt_option(&o->ckpt, a, &i)) != 0) {
            if (m < 0)
                return -m;
            continue; /* neither changes a result */
        }
        if ((m = cli_opt_flag(a, i, "--quiet", "-q")) != 0) {
            if (m < 0)
                return -m;
            o->quiet = 1;
            continue;
        }
        if ((m = cli_scn_option(&o->scn, a, &i)) != 0 ||
            (m = cli_opt_value(a, &i, "--trace", NULL, &o->trace)) != 0 ||
            (m = cli_opt_value(a, &i, "--policy", NULL, &o->policies)) != 0 ||
            (m = cli_opt_value(a, &i, "--sa-budget", NULL, &o->sa_budget)) != 0 ||
            (m = cli_opt_value(a, &i, "--query-heads", NULL, &o->query_heads)) != 0) {
            if (m < 0)
                return -m;
        } else if (arg[0] != '-' && !o->name) {
            o->name = arg;
        } else {
            return cli_unknown_arg(a, arg);
        }
        for (int k = start; k <= i; k++)
            cmd_append(c->cmdline, sizeof c->cmdline, a->argv[k]);
    }
    if (!o->name)
        return cli_usage(a->cmd, "which study? one of sparsity, variation, hitrate, batch, "
                         "accounting, all");
    if (strcmp(o->name, "all") != 0 && !find_study(o->name))
        return cli_usage(a->cmd, "unknown study \"%s\"; one of sparsity, variation, hitrate, "
                         "batch, accounting, all", o->name);
    if (o->trace) {
        static const char *const trace_defined[] = {"prompt", "steps"};
        for (size_t k = 0; k < NELEM(trace_defined); k++)
            if (cli_scn_sets(&o->scn, trace_defined[k]))
                return cli_usage(a->cmd, "--set %s conflicts with --trace: the trace "
                                 "defines it", trace_defined[k]);
        if (strcmp(o->name, "variation") == 0 || strcmp(o->name, "all") == 0)
            return cli_usage(a->cmd, "--trace: study %s needs the synthetic traces of each "
                             "variation; run the other studies by name", o->name);
    }
    return 0;
}

static int parse_whole(const char *opt, const char *text, unsigned long lo, unsigned long hi,
                       unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end || errno || text[0] == '-' || v < lo || v > hi)
        return cli_error("%s %s: expected a whole number from %lu to %lu", opt, text, lo, hi);
    *out = v;
    return 0;
}

/* The policy list, static and unlimited added, --sa-budget applied, column names made. */
static int setup_policies(study_ctx *c, const study_opts *o)
{
    kvp_error err = {0};
    int n = kvp_policy_parse_list(c->specs, MAX_POLICIES - NELEM(reference_policies),
                                  o->policies ? o->policies : default_policies, &err);
    if (n < 0)
        return cli_error("--policy: %s", err.msg);
    c->nspec = (size_t)n;
    for (size_t k = 0; k < NELEM(reference_policies); k++) {
        if (has_policy(c, reference_policies[k]))
            continue;
        if (kvp_policy_parse(&c->specs[c->nspec], reference_policies[k], &err) < 0)
            return cli_error("%s", err.msg);
        c->nspec++;
    }
    if (o->sa_budget) {
        unsigned long budget;
        for (size_t i = 0; i < c->nspec; i++) {
            if (strcmp(kvp_policy_name(c->specs[i].ops), "sa") != 0)
                continue;
            size_t np;
            const kvp_policy_param *pp = kvp_policy_params(c->specs[i].ops, &np);
            for (size_t k = 0; k < np; k++) {
                if (strcmp(pp[k].name, "budget") != 0)
                    continue;
                int rc = parse_whole("--sa-budget", o->sa_budget, (unsigned long)pp[k].min,
                                     (unsigned long)pp[k].max, &budget);
                if (rc)
                    return rc;
                c->specs[i].value[k] = (double)budget;
            }
        }
    }
    for (size_t i = 0; i < c->nspec; i++) {
        const char *name = kvp_policy_name(c->specs[i].ops);
        unsigned same = 0;
        for (size_t k = 0; k < i; k++)
            same += strcmp(kvp_policy_name(c->specs[k].ops), name) == 0;
        if (same)
            snprintf(c->col[i], sizeof c->col[i], "%s_%u", name, same + 1);
        else
            snprintf(c->col[i], sizeof c->col[i], "%s", name);
    }
    return 0;
}

static int build_base(study_ctx *c, study_opts *o)
{
    cli_scn defaults = {(cli_scn_item *)study_defaults, NELEM(study_defaults), NULL};
    kvp_scenario_default(&c->base);
    int rc = cli_scn_apply(&defaults, &c->base);
    if (!rc)
        rc = cli_scn_apply(&o->scn, &c->base);
    if (rc)
        return rc;
    if (o->query_heads) {
        unsigned long q;
        if ((rc = parse_whole("--query-heads", o->query_heads, 1, MAX_QUERY_HEADS, &q)) != 0)
            return rc;
        c->query_heads = (uint32_t)q;
        c->query_heads_given = 1;
    } else {
        c->query_heads = LLAMA_8B_QUERY_HEADS;
    }
    if (o->trace) {
        kvp_error err = {0};
        if (kvp_trace_open_npy(&c->file_trace, o->trace, &err) < 0)
            return cli_error("%s", err.msg);
        if (kvp_trace_is_bool(c->file_trace) && strcmp(o->name, "sparsity") == 0)
            return cli_error("--trace %s: a bool trace marks its reads, so it cannot vary "
                             "sparsity; study sparsity needs scores", o->trace);
        c->base.prompt = kvp_trace_prompt(c->file_trace);
        c->base.steps = kvp_trace_steps(c->file_trace);
    }
    return 0;
}

/* Opens --checkpoint / --resume for all the points: one file holds every point's sa
 * evaluations.  A file to resume that matches none of the points is refused, naming its first
 * difference from the first point. */
static int open_checkpoint(study_ctx *c, study_opts *o, const study_out *outs, size_t nout)
{
    int rc;
    if (!o->ckpt.checkpoint && !o->ckpt.resume)
        return 0;
    if (!has_policy(c, "sa"))
        return cli_error("--%s applies to the sa search, and no sa policy is asked for",
                         o->ckpt.checkpoint ? "checkpoint" : "resume");
    if ((rc = cli_ckpt_open(&o->ckpt, NULL, NULL)) != 0)
        return rc;
    c->ckpt = &o->ckpt;
    c->ro.checkpoint = o->ckpt.ck;
    c->ro.cancel = cli_cancel_install();
    if (!o->ckpt.resume)
        return 0;
    for (int verbose = 0; verbose <= 1; verbose++)
        for (size_t i = 0; i < nout; i++)
            for (size_t k = 0; k < outs[i].n; k++) {
                const point *p = &outs[i].pts[k];
                kvp_trace *tr;
                if ((rc = point_trace(c, p, &tr)) != 0)
                    return rc;
                rc = cli_ckpt_match(&o->ckpt, &p->sc, tr, !verbose);
                if (tr != c->file_trace)
                    kvp_trace_free(tr);
                if (rc == 0 || verbose)
                    return rc;
            }
    return CLI_EXIT_INPUT;
}

int cli_cmd_study(const cli_args *a)
{
    study_opts o;
    study_ctx *c = calloc(1, sizeof *c);
    point *pts = calloc(MAX_STUDIES * MAX_POINTS, sizeof *pts);
    writer *w = calloc(1, sizeof *w);
    study_out outs[MAX_STUDIES];
    size_t nout = 0;
    int help = 0, rc;

    memset(&o, 0, sizeof o);
    if (!c || !pts || !w) {
        free(c);
        free(pts);
        free(w);
        return cli_error("out of memory");
    }
    if ((rc = cli_scn_init(&o.scn, a->argc)) != 0)
        goto done;
    if ((rc = parse_args(a, &o, c, &help)) != 0 || help) {
        if (help)
            cli_help_study();
        goto done;
    }
    kvp_run_options_default(&c->ro);
    if (o.threads) {
        unsigned long t;
        if ((rc = parse_whole("--threads", o.threads, 1, MAX_THREADS, &t)) != 0)
            goto done;
        c->ro.threads = (unsigned)t;
    }
    c->quiet = o.quiet;
    if ((rc = build_base(c, &o)) != 0 || (rc = setup_policies(c, &o)) != 0)
        goto done;
    cli_progress_init(&c->pg, o.quiet);
    if (c->pg.on) {
        c->ro.progress = cli_progress_fn;
        c->ro.progress_user = &c->pg;
    }
    if (!o.quiet) {
        c->ro.sa_log = sa_log;
        c->ro.sa_log_user = c;
    }

    /* The points of every study first: a checkpoint to resume must hold one of them. */
    for (size_t i = 0; i < NELEM(studies); i++) {
        if (strcmp(o.name, "all") != 0 && strcmp(o.name, studies[i].name) != 0)
            continue;
        study_out *s = &outs[nout];
        s->def = &studies[i];
        s->pts = &pts[nout * MAX_POINTS];
        s->plotted = 0;
        if ((rc = s->def->points(c, s->pts, &s->n)) != 0)
            goto done;
        nout++;
    }
    if ((rc = open_checkpoint(c, &o, outs, nout)) != 0)
        goto done;

    /* Every point of every study, so that nothing is written unless all ran. */
    for (size_t i = 0; i < nout; i++) {
        study_out *s = &outs[i];
        double t0 = now_s();
        for (size_t k = 0; k < s->n; k++)
            if ((rc = run_point(c, s->def, &s->pts[k], k, s->n)) != 0)
                goto done;
        if (!o.quiet)
            fprintf(stderr, "kvplace: study %s: %zu points in %.1f s\n", s->def->name, s->n,
                    now_s() - t0);
    }

    w->dir = o.out ? o.out : ".";
    if ((rc = make_dir(w->dir)) != 0)
        goto done;
    for (size_t i = 0; i < nout; i++) {
        if ((rc = write_study(w, c, &outs[i])) != 0) {
            writer_abort(w);
            goto done;
        }
    }
    if ((rc = writer_commit(w)) != 0)
        goto done;
    if (!o.quiet)
        for (size_t i = 0; i < nout; i++)
            fprintf(stderr, "kvplace: wrote %s/%s.{csv,json,md,gp%s}\n", w->dir,
                    outs[i].def->name, outs[i].plotted ? ",png,svg" : "");
done:
    kvp_trace_free(c->file_trace);
    cli_ckpt_close(&o.ckpt);
    cli_scn_free(&o.scn);
    free(c);
    free(pts);
    free(w);
    return rc;
}
