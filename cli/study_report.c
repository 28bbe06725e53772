/*
 * `kvplace study`: the files a study's points become (cli/study_report.h): the CSV tables,
 * the JSON document, the gnuplot script of each study and its Markdown summary.  cli/study.c
 * runs the points and puts these files in place.
 */
#include "study_report.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers for the outputs                                                                  */

const char *const study_weight_modes[2] = {"counted", "not_counted"};
const char *const study_batch_series[2] = {"copies", "distinct"};


const kvp_result *study_find_res(const study_ctx *c, const point *p, const char *policy)
{
    for (size_t i = 0; i < c->nspec; i++)
        if (strcmp(p->res[i].policy, policy) == 0)
            return &p->res[i];
    return NULL;
}

static double tput(const study_ctx *c, const point *p, const char *policy)
{
    const kvp_result *r = study_find_res(c, p, policy);
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

int study_has_policy(const study_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nspec; i++)
        if (strcmp(kvp_policy_name(c->specs[i].ops), name) == 0)
            return 1;
    return 0;
}

/* Colours per policy, the same in every plot; others take gnuplot's defaults. */
static const struct {
    const char *policy, *colour;
} policy_colours[] = {
    {"static", "#7f7f7f"},    {"reactive", "#ff7f0e"}, {"page", "#2ca02c"},
    {"lookahead", "#9467bd"}, {"sa", "#1f77b4"},       {"unlimited", "#303030"},
    {"bound", "#d62728"},
};

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
            "batch %" PRIu32 ", ", sc->hw_name[0] ? sc->hw_name : "(custom)",
            hbm, sc->hbm_bandwidth / 1e12, sc->dram_bandwidth / 1e9, sc->link_bandwidth / 1e9,
            sc->model_name[0] ? sc->model_name : "(custom)", sc->layers, sc->kv_heads,
            sc->head_dim, sc->dtype_bytes, wb, sc->batch);
    if (sc->topk > 0)
        fprintf(f, "topk %" PRIu32 ", ", sc->topk);
    else
        fprintf(f, "sparsity %g, ", sc->sparsity);
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

void study_csv_wide(FILE *f, const study_ctx *c, const study_out *s)
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
            kvp_format_double(a, sizeof a, r->throughput_tok_s);
            kvp_format_double(b, sizeof b, r->throughput_tok_s / ref);
            kvp_format_double(h1, sizeof h1, r->hbm_hit_rate_kv);
            kvp_format_double(h2, sizeof h2, r->hbm_hit_rate_all);
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

void study_csv_hitrate(FILE *f, const study_ctx *c, const study_out *s)
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
            kvp_format_double(t, sizeof t, v[k]);
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


/* The library's text of a scenario or result, kept verbatim (its numbers exact). */
static cJSON *raw_object(char *text)
{
    cJSON *o = text ? cJSON_CreateRaw(text) : NULL;
    free(text);
    return o;
}

int study_json_write(FILE *f, const study_ctx *c, const study_out *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *pols, *pts;
    int bad = !root || add_u64(root, "schema_version", KVP_SCHEMA_VERSION) < 0 ||
              !cJSON_AddStringToObject(root, "kvplace_version", KVP_VERSION) ||
              !cJSON_AddStringToObject(root, "study", s->def->name) ||
              !cJSON_AddStringToObject(root, "normalised_to", s->def->norm) ||
              !cJSON_AddStringToObject(root, "command", c->cmdline);
    if (!bad) {
        cJSON *sc = raw_object(kvp_scenario_json(&c->base, 1, NULL));
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
        for (size_t v = 0; v < s->def->nvars && !bad; v++) {
            /* a number where the variable is one (sparsity 0.4), else its word (counted) */
            char *end;
            double num = strtod(p->var[v], &end);
            if (end != p->var[v] && !*end && isfinite(num))
                bad = add_raw(vars, s->def->vars[v], p->var[v]) < 0;
            else
                bad = !cJSON_AddStringToObject(vars, s->def->vars[v], p->var[v]);
        }
        if (!bad) {
            sc = raw_object(kvp_scenario_json(&p->sc, 3, NULL));
            bad = !sc || !cJSON_AddItemToObject(po, "scenario", sc);
        }
        if (!bad) {
            res = cJSON_AddArrayToObject(po, "results");
            bad = !res;
        }
        for (size_t i = 0; i < c->nspec && !bad; i++) {
            cJSON *r = raw_object(kvp_result_json(&p->sc, &p->res[i], 4, NULL));
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
    if (strcmp(n, "batch") != 0 && strcmp(n, "accounting") != 0 && strcmp(n, "tiers") != 0)
        fprintf(f, ", batch %" PRIu32, c->base.batch);
    if (c->base.topk > 0)
        fprintf(f, ", topk %" PRIu32, c->base.topk);
    else if (strcmp(n, "sparsity") != 0 && strcmp(n, "heads") != 0)
        fprintf(f, ", sparsity %g", c->base.sparsity);
    fprintf(f, ", %s\"\n", c->file_trace ? "trace file" : "synthetic trace");
    fprintf(f, "set xlabel \"%s\"\nset ylabel \"%s\"\n", xlabel, ylabel);
    fprintf(f, "set grid ytics\nset key outside right top Left reverse\nset yrange [0:*]\n");
}

static void gp_tail(FILE *f)
{
    fprintf(f, "set terminal svg noenhanced size 1200,650 font \"sans,11\"\n");
    fprintf(f, "set output out.\".svg\"\nreplot\nset output\n");
    /* a paper column: 7 x 3.8 inches, the same plot, fonts to scale */
    fprintf(f, "set terminal pdfcairo noenhanced size 7in,3.8in font \"sans,8\"\n");
    fprintf(f, "set output out.\".pdf\"\nreplot\nset output\n");
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
                    double ref, const char *ref_title)
{
    /* The scale is the bars': a reference above them is a labelled marker at the top, not a
     * line that would squash every bar into the bottom of the plot. */
    double top = 0;
    for (size_t k = 0; k < s->n; k++)
        for (size_t i = 0; i < c->nspec; i++) {
            double v = s->pts[k].res[i].throughput_tok_s / tput(c, &s->pts[k], s->def->norm);
            if (isfinite(v) && v > top)
                top = v;
        }
    top = top > 0 ? top * 1.12 : 1;
    char study_line[LABEL_TEXT] = "";
    if (ref_title && ref <= top)
        snprintf(study_line, sizeof study_line, "%g with lines dt 2 lw 2 lc rgb \"black\" "
                 "title \"%s %gx over static\"", ref, ref_title, ref);
    else if (ref_title)
        fprintf(f, "set label 1 \"^ %s %gx over static (above this scale)\" at graph 0.01, "
                "graph 0.96 left front\n", ref_title, ref);
    fprintf(f, "set yrange [0:%g]\n", top);
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
    if (study_line[0])
        fprintf(f, ", \\\n     %s", study_line);
    fprintf(f, "\n");
}

/* The study's headline as a dashed line across the plot. */
static void study_max_line(char *buf, size_t len)
{
    snprintf(buf, len, "%g with lines dt 2 lw 2 lc rgb \"black\" title \"study: sa up to "
             "%gx over static\"", STUDY_SA_MAX, STUDY_SA_MAX);
}

void study_gp_sparsity(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "attention sparsity (share of past tokens not read per step)",
            "throughput / static throughput (x)");
    gp_bars(f, c, s, "1", STUDY_SA_MAX, "study: sa up to");
    gp_tail(f);
}

void study_gp_variation(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "token-importance variation of the synthetic trace",
            "throughput / unlimited-HBM throughput (x)");
    gp_bars(f, c, s, "1", 0, NULL);
    gp_tail(f);
}

void study_gp_accounting(FILE *f, const study_ctx *c, const study_out *s)
{
    char xlabel[LABEL_TEXT];
    snprintf(xlabel, sizeof xlabel, "variant: weights' traffic counted or not, KV per KV head "
             "(%" PRIu32 ") or per query head (%" PRIu32 "), batch", c->base.kv_heads,
             c->query_heads);
    gp_head(f, c, s, xlabel, "throughput / static throughput (x)");
    /* three-line tic labels: a smaller font, and the axis label moved below them */
    fprintf(f, "set bmargin 8\nset xtics font \",9\"\nset xlabel offset 0,-3\n");
    gp_bars(f, c, s, "sprintf(\"%s\\n%s\\nbatch %s\", strcol(1) eq \"counted\" ? "
            "\"weights\" : \"no weights\", strcol(2) eq \"kv_head\" ? \"KV/KV head\" : "
            "\"KV/query head\", strcol(4))", STUDY_SA_MAX, "study: sa up to");
    gp_tail(f);
}

void study_gp_hitrate(FILE *f, const study_ctx *c, const study_out *s)
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

void study_gp_batch(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "batch (sequences decoded together; KV bytes scale with it)",
            "throughput / static throughput (x)");
    fprintf(f, "set logscale x 2\nset xrange [0.8:40]\nset xtics (1,2,4,8,16,32)\n");
    fprintf(f, "plot ");
    static const char *const pols[] = {"sa", "bound", "page", "reactive"};
    int first = 1;
    for (size_t w = 0; w < NELEM(study_weight_modes); w++) {
        for (size_t k = 0; k < NELEM(pols); k++) {
            if (!study_has_policy(c, pols[k]))
                continue;
            fprintf(f, "%sdata using \"batch\":(strcol(\"weights\") eq \"%s\" && "
                    "strcol(\"series\") eq \"copies\" ? column(\"%s_vs_static\") : NaN) "
                    "with linespoints lw 2 pt %d dt %d", first ? "" : ", \\\n     ",
                    study_weight_modes[w], pols[k], w ? 6 : 7, w ? 2 : 1);
            gp_colour(f, pols[k]);
            fprintf(f, " title \"%s, weights %s\"", pols[k], w ? "not counted" : "counted");
            first = 0;
        }
    }
    /* the distinct sequences, weights counted: open squares, dotted */
    for (size_t k = 0; k < NELEM(pols); k++) {
        if (!study_has_policy(c, pols[k]))
            continue;
        fprintf(f, "%sdata using \"batch\":(strcol(\"weights\") eq \"counted\" && "
                "strcol(\"series\") eq \"distinct\" ? column(\"%s_vs_static\") : NaN) "
                "with linespoints lw 2 pt 4 dt 4", first ? "" : ", \\\n     ", pols[k]);
        gp_colour(f, pols[k]);
        fprintf(f, " title \"%s, distinct sequences\"", pols[k]);
        first = 0;
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

/* 1 if the point's whole KV cache fits in HBM: static then equals unlimited. */
static int no_spill(const point *p)
{
    kvp_derived d;
    kvp_error err;
    if (kvp_scenario_derive(&p->sc, &d, &err) < 0)
        return 0;
    return kvp_slots(&p->sc, &d, 1) >= (uint64_t)p->sc.prompt + p->sc.steps;
}

/* One line naming the points where nothing spills (their ratios are all 1 by construction). */
static void md_no_spill(FILE *f, const study_out *s)
{
    size_t k, count = 0;
    for (k = 0; k < s->n; k++)
        count += (size_t)no_spill(&s->pts[k]);
    if (!count)
        return;
    if (count == s->n) {
        fprintf(f, "Nothing spills at any point: the KV cache fits in HBM, so static equals "
                   "unlimited and no placement can gain.\n\n");
        return;
    }
    fprintf(f, "Nothing spills at");
    for (size_t i = 0, shown = 0; i < s->n; i++) {
        if (!no_spill(&s->pts[i]))
            continue;
        fprintf(f, "%s %s", shown++ ? "," : "", s->pts[i].var[0]);
    }
    fprintf(f, " (%s): the KV cache fits in HBM there, so static equals unlimited.\n\n",
            s->def->nvars ? s->def->vars[0] : "point");
}

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
    fprintf(f, ".\n\n");
    md_no_spill(f, s);
    fprintf(f, "Command: `%s`\n\n![%s](%s.png)\n\nData: [%s.csv](%s.csv), [%s.json](%s.json)"
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
    if (study_has_policy(c, "sa"))
        fprintf(f, " sa's (W, R) | sa / best baseline |");
    fprintf(f, "\n|");
    for (size_t v = 0; v < def->nvars + c->nspec + 2 * (size_t)study_has_policy(c, "sa"); v++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        fputc('|', f);
        for (size_t v = 0; v < def->nvars; v++)
            fprintf(f, " %s |", p->var[v]);
        for (size_t i = 0; i < c->nspec; i++)
            fprintf(f, " %.3f |", p->res[i].throughput_tok_s / tput(c, p, def->norm));
        const kvp_result *sa = study_find_res(c, p, "sa");
        if (sa)
            fprintf(f, " %s | %.3f |", sa->params, sa->throughput_tok_s / best_baseline(c, p));
        fputc('\n', f);
    }
    fprintf(f, "\nThe best baseline is the fastest of static, reactive and page. `bound` is a "
               "provable cap on every capacity-limited policy (docs/MODEL.md §5), not a "
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

void study_md_sparsity(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study's Fig. 3: throughput normalised to static at six sparsities.");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\n| | the study (Fig. 3) | ours |\n|---|---|---|\n");
    if (study_has_policy(c, "sa")) {
        fprintf(f, "| sa over static | up to %.2fx | ", STUDY_SA_MAX);
        md_range(f, c, s, "sa", "static", 0, s->n);
        fprintf(f, " |\n| sa over the best baseline | %.0fx to %.0fx | ", STUDY_SA_LOW,
                STUDY_SA_HIGH);
        md_sa_vs_baselines(f, c, s, 0, s->n);
        fprintf(f, " |\n");
    }
    if (study_has_policy(c, "bound")) {
        fprintf(f, "| bound over static (the most any placement could gain) | not given | ");
        md_range(f, c, s, "bound", "static", 0, s->n);
        fprintf(f, " |\n");
    }
    static const char *const gainers[] = {"reactive", "page"};
    for (size_t g = 0; g < NELEM(gainers); g++) {
        if (!study_has_policy(c, gainers[g]))
            continue;
        fprintf(f, "| %s over static | gains little below 60%%, closer to sa above 80%% | ",
                gainers[g]);
        md_range(f, c, s, gainers[g], "static", 0, s->n);
        if (study_has_policy(c, "sa")) {
            fprintf(f, "; of sa's throughput: ");
            md_range(f, c, s, gainers[g], "sa", 0, s->n);
        }
        fprintf(f, " |\n");
    }
    fprintf(f, "\nRanges name the sparsity where they occur. docs/RESULTS.md explains where "
               "and why these differ from the study's.\n");
}

void study_md_variation(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study's Fig. 4: throughput normalised to unlimited HBM, with low, "
                     "actual and high variation of token importance.");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\n| | the study (Fig. 4) | ours (of unlimited) |\n"
               "|---|---|---|\n");
    static const char *const pols[] = {"page", "sa", "reactive", "static", "bound"};
    for (size_t k = 0; k < NELEM(pols); k++) {
        if (!study_has_policy(c, pols[k]))
            continue;
        const char *claim = k < 2 ? "close to the optimum at low variation; loses ground at "
                                    "high variation" : "not stated";
        fprintf(f, "| %s | %s |", pols[k], claim);
        for (size_t i = 0; i < s->n; i++)
            fprintf(f, " %s %.3f%s", s->pts[i].var[0], ratio(c, &s->pts[i], pols[k],
                    "unlimited"), i + 1 < s->n ? "," : "");
        fprintf(f, " |\n");
    }
    fprintf(f, "\nThe study's variation traces are not published; ours are "
               "the synthetic presets of docs/SYNTHETIC.md. docs/RESULTS.md compares.\n");
}

void study_md_hitrate(FILE *f, const study_ctx *c, const study_out *s)
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
    const kvp_result *sa = study_find_res(c, p, "sa");
    const kvp_result *st = study_find_res(c, p, "static");
    if (sa && st)
        fprintf(f, "| sa's hit rate | balanced, not the highest | KV %.1f%% (static %.1f%%), "
                "all bytes %.1f%% (static %.1f%%) |\n", 100 * sa->hbm_hit_rate_kv,
                100 * st->hbm_hit_rate_kv, 100 * sa->hbm_hit_rate_all,
                100 * st->hbm_hit_rate_all);
    fprintf(f, "| weights in the hit rate | counted as HBM traffic | shown apart: the grey "
               "share of each bar |\n");
}

void study_md_batch(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The study does not give its batch size, so this sweeps it, "
                     "with the weights' traffic counted (the model of docs/MODEL.md) and not "
                     "counted (weight_bytes=0, the weights' bytes kept as reserve so the KV "
                     "budget is unchanged).");
    md_table(f, c, s);
    fprintf(f, "## Beside the study\n\nThe identical copies (batch B):\n\n| | the study | ours, "
               "weights counted | ours, weights not counted |\n|---|---|---|---|\n");
    /* per weights mode: the copies, then (synthetic traces) the distinct sequences */
    size_t half = s->n / 2, nc = STUDY_BATCH_COPIES;
    static const struct {
        const char *policy, *claim;
    } rows[] = {{"sa", "up to 5.87x"}, {"bound", "not given"}};
    for (size_t k = 0; k < NELEM(rows); k++) {
        if (!study_has_policy(c, rows[k].policy))
            continue;
        fprintf(f, "| %s over static, by batch | %s | ", rows[k].policy, rows[k].claim);
        md_range(f, c, s, rows[k].policy, "static", 0, nc);
        fprintf(f, " | ");
        md_range(f, c, s, rows[k].policy, "static", half, half + nc);
        fprintf(f, " |\n");
    }
    if (study_has_policy(c, "sa")) {
        fprintf(f, "| sa over the best baseline | 4x to 5x | ");
        md_sa_vs_baselines(f, c, s, 0, nc);
        fprintf(f, " | ");
        md_sa_vs_baselines(f, c, s, half, half + nc);
        fprintf(f, " |\n");
    }
    if (half > nc) {
        fprintf(f, "\nB distinct sequences (sequences=B, batch 1: each its own seed and prompt "
                   "length, and its own reads) against B copies of one, weights counted "
                   "(throughput over static; the distinct series stops at %s):\n\n| policy |",
                s->pts[half - 1].var[0]);
        for (size_t b = 0; b < half - nc; b++)
            fprintf(f, " B=%s copies | B=%s distinct |", s->pts[b].var[0],
                    s->pts[nc + b].var[0]);
        fprintf(f, "\n|---|");
        for (size_t b = 0; b < half - nc; b++)
            fprintf(f, "---|---|");
        fputc('\n', f);
        for (size_t i = 0; i < c->nspec; i++) {
            fprintf(f, "| %s |", c->col[i]);
            for (size_t b = 0; b < half - nc; b++)
                fprintf(f, " %.3f | %.3f |", ratio(c, &s->pts[b], c->col[i], "static"),
                        ratio(c, &s->pts[nc + b], c->col[i], "static"));
            fputc('\n', f);
        }
    }
    fprintf(f, "\nRanges name the batch where they occur. docs/RESULTS.md works out why.\n");
}

void study_md_accounting(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "The accounting variants of the study's headline side by side. "
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
    const char *metric = study_has_policy(c, "sa") ? "sa" : "bound";
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
/* The online study                                                                         */

/* An online policy of the table: online and capacity-limited (unlimited is online too, but
 * holds everything). */
static int is_online_row(const kvp_result *r)
{
    return r->online && r->slots != UINT32_MAX;
}

/* The best offline reference at a point: `plan` if it ran, else the best lookahead point of
 * the grid.  *which receives its spec. */
static double online_reference(const study_ctx *c, const point *p, const char **which)
{
    const kvp_result *plan = study_find_res(c, p, "plan");
    *which = "";
    if (plan) {
        *which = "plan"; /* its params name the winning candidate, not the policy */
        return plan->throughput_tok_s;
    }
    double best = NAN;
    for (size_t i = 0; i < c->nspec; i++) {
        const kvp_result *r = &p->res[i];
        if (strcmp(r->policy, "lookahead") == 0 && !(r->throughput_tok_s <= best)) {
            best = r->throughput_tok_s;
            *which = r->params;
        }
    }
    return best;
}

/* The certificate: the throughput no policy passes, `lpbound` (it charges migration) if it
 * ran, else `bound`. */
static double online_certificate(const study_ctx *c, const point *p, const char **which)
{
    *which = study_find_res(c, p, "lpbound") ? "lpbound" : "bound";
    return tput(c, p, *which);
}

void study_csv_online(FILE *f, const study_ctx *c, const study_out *s)
{
    /* The wide table, then the headline columns after it. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return;
    study_csv_wide(m, c, s);
    fclose(m);
    char *line = buf, *next;
    for (size_t k = 0; line && *line; k++, line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        fputs(line, f);
        if (k == 0) {
            fprintf(f, ",reference,reference_tok_s,certificate,certificate_tok_s");
            for (size_t i = 0; i < c->nspec; i++)
                if (is_online_row(&s->pts[0].res[i]))
                    fprintf(f, ",%s_of_reference,%s_of_certificate", c->col[i], c->col[i]);
        } else {
            const point *p = &s->pts[k - 1];
            const char *rw, *cw;
            double ref = online_reference(c, p, &rw), cert = online_certificate(c, p, &cw);
            char a[NUM_TEXT], b[NUM_TEXT];
            kvp_format_double(a, sizeof a, ref);
            kvp_format_double(b, sizeof b, cert);
            fprintf(f, ",%s,%s,%s,%s", rw, a, cw, b);
            for (size_t i = 0; i < c->nspec; i++) {
                if (!is_online_row(&p->res[i]))
                    continue;
                kvp_format_double(a, sizeof a, p->res[i].throughput_tok_s / ref);
                kvp_format_double(b, sizeof b, p->res[i].throughput_tok_s / cert);
                fprintf(f, ",%s,%s", a, b);
            }
        }
        fputc('\n', f);
    }
    free(buf);
}

void study_gp_online(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "attention sparsity (share of past tokens not read per step)",
            "throughput / best offline reference (plan, else the best lookahead point)");
    fprintf(f, "set yrange [0:1.4]\nplot ");
    int first = 1;
    for (size_t w = 0; w < NELEM(study_weight_modes); w++) {
        for (size_t i = 0; i < c->nspec; i++) {
            if (!is_online_row(&s->pts[0].res[i]))
                continue;
            fprintf(f, "%sdata using \"sparsity\":(strcol(\"variation\") eq \"actual\" && "
                    "strcol(\"weights\") eq \"%s\" ? column(\"%s_of_reference\") : NaN) with "
                    "linespoints lw 2 pt %d dt %d", first ? "" : ", \\\n     ",
                    study_weight_modes[w], c->col[i], w ? 6 : 7, w ? 2 : 1);
            gp_colour(f, kvp_policy_name(c->specs[i].ops));
            fprintf(f, " title \"%s, weights %s\"", c->col[i], w ? "not counted" : "counted");
            first = 0;
        }
    }
    fprintf(f, "%s1 with lines dt 3 lc rgb \"#555555\" title \"the reference\"\n",
            first ? "" : ", \\\n     ");
    gp_tail(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One table: a row per point, a column per online policy: its throughput over ref_fn's. */
static void md_online_table(FILE *f, const study_ctx *c, const study_out *s, int cert)
{
    fprintf(f, "| sparsity | topk | variation | weights | %s |",
            cert ? "certificate" : "reference");
    size_t cols = 5;
    for (size_t i = 0; i < c->nspec; i++)
        if (is_online_row(&s->pts[0].res[i])) {
            fprintf(f, " %s |", c->col[i]);
            cols++;
        }
    fprintf(f, "\n|");
    for (size_t k = 0; k < cols; k++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        const char *which;
        double ref = cert ? online_certificate(c, p, &which) : online_reference(c, p, &which);
        fprintf(f, "| %s | %s | %s | %s | %s |", p->var[0], p->var[3], p->var[1], p->var[2],
                which);
        for (size_t i = 0; i < c->nspec; i++)
            if (is_online_row(&p->res[i]))
                fprintf(f, " %.3f |", p->res[i].throughput_tok_s / ref);
        fputc('\n', f);
    }
    fputc('\n', f);
}

/* A point's budget: its sparsity, or "topk N" at a fixed-budget point. */
static void online_where(char *buf, size_t size, const point *p)
{
    if (strcmp(p->var[0], "-") == 0)
        snprintf(buf, size, "topk %s", p->var[3]);
    else
        snprintf(buf, size, "%s", p->var[0]);
}

void study_md_online(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "What a deployable scheduler gets: every online policy (its decisions at "
                     "step n use the trace up to step n only) against the best offline "
                     "reference and the certificate no policy can pass, over sparsity, "
                     "variation and the weights' accounting (not counted: weight_bytes=0, "
                     "the weights' bytes kept as reserve).");
    fprintf(f, "The reference is `plan` (an offline near-optimal placement) when it ran, else "
               "the best lookahead point of the grid run here; the certificate is `lpbound` "
               "(a lower bound on the time that charges migration) when it ran, else "
               "`bound` (which does not charge it).\n\n");
    fprintf(f, "## Throughput as a share of the best reference\n\n");
    md_online_table(f, c, s, 0);
    fprintf(f, "## Throughput as a share of the certificate\n\n");
    md_online_table(f, c, s, 1);
    fprintf(f, "## Per policy, over the %zu points\n\n| policy | share of the reference: "
               "lowest (where) | median | over static: lowest (where) | points more than 1%% "
               "behind static |\n|---|---|---|---|---|\n", s->n);
    double *v = malloc((s->n ? s->n : 1) * sizeof *v);
    for (size_t i = 0; v && i < c->nspec; i++) {
        if (!is_online_row(&s->pts[0].res[i]))
            continue;
        size_t lo = 0, lo_s = 0, behind = 0;
        for (size_t k = 0; k < s->n; k++) {
            const point *p = &s->pts[k];
            const char *w;
            v[k] = p->res[i].throughput_tok_s / online_reference(c, p, &w);
            const point *q = &s->pts[lo];
            if (v[k] < q->res[i].throughput_tok_s / online_reference(c, q, &w))
                lo = k;
            double vs = p->res[i].throughput_tok_s / tput(c, p, "static");
            double lo_v = s->pts[lo_s].res[i].throughput_tok_s / tput(c, &s->pts[lo_s],
                                                                       "static");
            if (vs < lo_v)
                lo_s = k;
            behind += vs < 0.99;
        }
        double lo_ref = v[lo];
        qsort(v, s->n, sizeof *v, cmp_double);
        double med = s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
        const point *pl = &s->pts[lo], *ps = &s->pts[lo_s];
        char wl[2 * VAR_TEXT], ws[2 * VAR_TEXT]; /* the sparsity, or the topk in its place */
        online_where(wl, sizeof wl, pl);
        online_where(ws, sizeof ws, ps);
        fprintf(f, "| %s | %.3f (%s, %s, %s) | %.3f | %.3f (%s, %s, %s) | %zu |\n", c->col[i],
                lo_ref, wl, pl->var[1], pl->var[2], med,
                ps->res[i].throughput_tok_s / tput(c, ps, "static"), ws, ps->var[1],
                ps->var[2], behind);
    }
    free(v);
    fprintf(f, "\nTargets (docs/RESULTS.md, \"What a deployable scheduler gets\"): the "
               "recommended policy `%s` at >= 90%% of the reference with the weights counted "
               "and >= 75%% without, at sparsity 0.6 and actual variation; never more than 1%% "
               "behind static.\n", ONLINE_RECOMMENDED);
}

/* ---------------------------------------------------------------------------------------- */
/* study gap                                                                                 */

/* The fastest of the policies named `name` at the point (several lookahead points). */
static const kvp_result *best_named(const study_ctx *c, const point *p, const char *name)
{
    const kvp_result *best = NULL;
    for (size_t i = 0; i < c->nspec; i++)
        if (strcmp(kvp_policy_name(c->specs[i].ops), name) == 0 &&
            (!best || p->res[i].total_time_s < best->total_time_s))
            best = &p->res[i];
    return best;
}

void study_gp_gap(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "sparsity, variation, weights (c: counted, n: not counted)",
            "throughput / static throughput (x)");
    gp_bars(f, c, s, "stringcolumn(1).\" \".stringcolumn(2).\" \".substr(stringcolumn(3),1,1)",
            STUDY_SA_MAX, "study: sa up to");
    gp_tail(f);
}

void study_md_gap(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "What the best placement is, proven both ways: `lpbound` is a lower "
                     "bound on the time of every placement that charges migration "
                     "(docs/BOUNDS.md), `plan` a placement replayed by the engine; "
                     "`plan / lpbound - 1` is the certified distance from the optimum. "
                     "`bound` ignores migration; the study's `sa` and the lookahead grid are "
                     "placements. \"Weights not counted\" keeps the weights' HBM capacity but "
                     "drops their traffic, the study's own accounting.");
    md_table(f, c, s);
    fprintf(f, "## The certified optimum\n\n| sparsity | variation | weights | best lookahead "
               "| sa | plan | lpbound | bound | certified gap | plan / best lookahead |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        const kvp_result *la = best_named(c, p, "lookahead"), *plan = study_find_res(c, p, "plan");
        double st = tput(c, p, "static");
        double lb = plan && plan->lower_bound_s > 0 ? plan->throughput_tok_s *
                                                            plan->total_time_s /
                                                            plan->lower_bound_s
                                                      : tput(c, p, "lpbound");
        fprintf(f, "| %s | %s | %s | %.3fx | %.3fx | %.3fx | %.3fx | %.3fx | ", p->var[0],
                p->var[1], p->var[2], la ? la->throughput_tok_s / st : NAN,
                tput(c, p, "sa") / st, tput(c, p, "plan") / st, lb / st,
                tput(c, p, "bound") / st);
        if (plan && plan->lower_bound_s > 0)
            fprintf(f, "%.2f%% |", (plan->total_time_s / plan->lower_bound_s - 1) * 100);
        else
            fprintf(f, "- |");
        fprintf(f, " %.3f |\n", la && plan ? la->total_time_s / plan->total_time_s : NAN);
    }
    fprintf(f, "\nThroughputs over static's; lpbound's is the throughput of plan's "
               "certificate (the lower bound on time it was built with). The optimum's "
               "throughput lies between plan's and lpbound's. The study reports sa up to "
               "%.2fx over static.\n", STUDY_SA_MAX);
}

/* ---------------------------------------------------------------------------------------- */
/* The tiers study                                                                          */

/* The policy a plot follows beside static: the first of these the study ran. */
static const char *tiers_best_policy(const study_ctx *c)
{
    static const char *const order[] = {"sa", "lookahead", "reactive", "page"};
    for (size_t k = 0; k < NELEM(order); k++)
        if (study_has_policy(c, order[k]))
            return order[k];
    return NULL;
}

static const char *const tiers_machine_names[] = {"dram", "dram+cxl", "dram+nvme",
                                                   "dram+cxl+nvme"};

void study_gp_tiers(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "batch (sequences decoded together)", "throughput (tokens/s)");
    fprintf(f, "set logscale x 2\nplot ");
    const char *pols[2] = {"static", tiers_best_policy(c)};
    int first = 1;
    for (size_t m = 0; m < NELEM(tiers_machine_names); m++) {
        for (size_t k = 0; k < 2; k++) {
            if (!pols[k])
                continue;
            const char *col = NULL;
            for (size_t i = 0; i < c->nspec; i++)
                if (strcmp(kvp_policy_name(c->specs[i].ops), pols[k]) == 0) {
                    col = c->col[i];
                    break;
                }
            if (!col)
                continue;
            fprintf(f, "%sdata using \"batch\":(strcol(\"machine\") eq \"%s\" ? "
                    "column(\"%s_tok_s\") : NaN) with linespoints lw 2 pt %d dt %d lc %zu "
                    "title \"%s, %s\"", first ? "" : ", \\\n     ", tiers_machine_names[m],
                    col, k ? 7 : 6, k ? 1 : 2, m + 1, pols[k], tiers_machine_names[m]);
            first = 0;
        }
    }
    fprintf(f, "\n");
    gp_tail(f);
}

void study_md_tiers(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "DRAM alone stops holding the KV of the run at some batch. This study adds "
                     "below the machine's DRAM a CXL tier (1024 GB at 144 GB/s), an NVMe tier "
                     "(61.44 TB at 52 GB/s) or both, each behind the DRAM's link (the tiers of "
                     "the x86-h100-cxl-nvme preset), and runs every machine at half that batch, "
                     "at it, at twice and at four times it; a machine that cannot hold the KV "
                     "at a batch has no row.");
    fprintf(f, "Throughput (tokens/s):\n\n| batch | machine | KV of the run |");
    for (size_t i = 0; i < c->nspec; i++)
        fprintf(f, " %s |", c->col[i]);
    fprintf(f, "\n|---|---|---|");
    for (size_t i = 0; i < c->nspec; i++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        kvp_derived d;
        kvp_error err;
        char kv[NUM_TEXT];
        if (kvp_scenario_derive(&p->sc, &d, &err) < 0)
            memset(&d, 0, sizeof d);
        cli_format_bytes(kv, sizeof kv, (double)d.tok_bytes * p->sc.layers *
                                            ((double)p->res[0].prompt + p->res[0].steps));
        fprintf(f, "| %s | %s | %s |", p->var[0], p->var[1], kv);
        for (size_t i = 0; i < c->nspec; i++)
            fprintf(f, " %.1f |", p->res[i].throughput_tok_s);
        fprintf(f, "\n");
    }
    fprintf(f, "\nWhere the KV reads were served (share of the KV bytes read; tier 0 is HBM, "
               "tier 1 DRAM, then the added tiers in the order of the machine's name), and "
               "each tier's busy time over the run's time:\n\n| batch | machine | policy | "
               "reads by tier | busy by tier |\n|---|---|---|---|---|\n");
    for (size_t k = 0; k < s->n; k++) {
        const point *p = &s->pts[k];
        for (size_t i = 0; i < c->nspec; i++) {
            const kvp_result *r = &p->res[i];
            /* placements only: bound and unlimited place nothing within the tiers */
            if (strcmp(r->policy, "bound") == 0 || strcmp(r->policy, "unlimited") == 0 ||
                strcmp(r->policy, "lpbound") == 0)
                continue;
            double all = (double)r->kv_read_hbm + (double)r->kv_read_dram;
            fprintf(f, "| %s | %s | %s |", p->var[0], p->var[1], c->col[i]);
            for (uint32_t t = 0; t < r->tiers; t++)
                fprintf(f, "%s%.1f%%", t ? " / " : " ", all > 0 ? 100.0 *
                        (double)r->tier_kv_read[t] / all : 0.0);
            fprintf(f, " |");
            for (uint32_t t = 0; t < r->tiers; t++)
                fprintf(f, "%s%.0f%%", t ? " / " : " ", 100.0 * r->tier_busy_s[t] /
                        r->total_time_s);
            fprintf(f, " |\n");
        }
    }
    fprintf(f, "\n");
    md_table(f, c, s);
    fprintf(f, "docs/RESULTS.md (8c) reads these numbers.\n");
}

/* ---------------------------------------------------------------------------------------- */
/* The heads study                                                                          */

void study_gp_heads(FILE *f, const study_ctx *c, const study_out *s)
{
    gp_head(f, c, s, "sparsity (share of the context not read)",
            "throughput / static throughput (x), weights counted");
    fprintf(f, "set xrange [0.35:0.95]\nplot ");
    static const char *const pols[] = {"bound", "lookahead", "page", "reactive"};
    int first = 1;
    for (size_t h = 0; h < 2; h++) {
        const char *place = h ? "head" : "token";
        for (size_t k = 0; k < NELEM(pols); k++) {
            if (!study_has_policy(c, pols[k]))
                continue;
            fprintf(f, "%sdata using \"sparsity\":(strcol(\"weights\") eq \"counted\" && "
                    "strcol(\"placement\") eq \"%s\" ? column(\"%s_vs_static\") : NaN) with "
                    "linespoints lw 2 pt %d dt %d", first ? "" : ", \\\n     ", place, pols[k],
                    h ? 7 : 6, h ? 1 : 2);
            gp_colour(f, pols[k]);
            fprintf(f, " title \"%s, per %s\"", pols[k], place);
            first = 0;
        }
    }
    fprintf(f, "%s1 with lines dt 3 lc rgb \"#555555\" title \"static\"\n",
            first ? "" : ", \\\n     ");
    gp_tail(f);
}

void study_md_heads(FILE *f, const study_ctx *c, const study_out *s)
{
    md_head(f, c, s, "What placing each KV head's tokens on their own buys over placing a "
                     "token's KV of every head together: the same model, KV bytes and budget, "
                     "the synthetic trace run as one stream standing for all heads (placement "
                     "per token) and as one stream per KV head (placement per head; some heads "
                     "streaming, some retrieval, docs/SYNTHETIC.md), weights counted and not.");
    md_table(f, c, s);
    /* points: weights x placement x sparsity; per head over per token at the same index */
    size_t per = s->n / 4;
    fprintf(f, "## Per head over per token\n\nEach policy's throughput with placement per head "
               "over its throughput per token (above 1: per-head placement is faster):\n\n"
               "| weights | sparsity |");
    for (size_t i = 0; i < c->nspec; i++)
        fprintf(f, " %s |", c->col[i]);
    fprintf(f, "\n|---|---|");
    for (size_t i = 0; i < c->nspec; i++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (size_t w = 0; w < 2; w++)
        for (size_t k = 0; k < per; k++) {
            const point *tok = &s->pts[w * 2 * per + k], *head = &s->pts[w * 2 * per + per + k];
            fprintf(f, "| %s | %s |", tok->var[2], tok->var[0]);
            for (size_t i = 0; i < c->nspec; i++)
                fprintf(f, " %.3f |", head->res[i].throughput_tok_s /
                                         tok->res[i].throughput_tok_s);
            fputc('\n', f);
        }
    fprintf(f, "\nstatic and unlimited do not depend on which tokens are read, so their "
               "ratio is 1 unless the heads' reads differ in number. docs/RESULTS.md works "
               "out why.\n");
}
