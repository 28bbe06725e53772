/*
 * `kvplace study NAME`: the study's experiments (Figs. 3 to 5 of Fang et al. 2025, arXiv
 * 2508.13231; a batch sweep, and the accounting variants of its headline).  Each study is its
 * points (a built-in sweep: the functions below) and its report (cli/study_report.c).  The
 * points run first, as a sweep into DIR/NAME.sweep (cli/sweep.c: worker processes, --jobs,
 * --shard, resume; in this process with an sa checkpoint), and come back from its point files;
 * then NAME.csv, NAME.json, NAME.md and NAME.gp are written under temporary names in --out DIR,
 * gnuplot draws NAME.png and NAME.svg from them, and everything is renamed into place.  A failure
 * leaves no file; a missing gnuplot only costs the plots.  docs/RESULTS.md reads the results.
 */
#include "study_report.h"
#include "sweep.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FILES (MAX_STUDIES * 7) /* csv json md gp png svg pdf */
#define PATH_TEXT 4096
#define MAX_THREADS 1024
#define MAX_QUERY_HEADS 65536
#define EXEC_FAILED 127 /* the shell's status for "command not found" */

/* The study's scenario (Fang et al. 2025, arXiv 2508.13231, its setup); the user's --hw, --model,
 * --config and --set apply after it.  Batch 4 is ours (the study does not say): the smallest power
 * of two at which static holds at most half of the context in HBM over the whole run (15143 slots
 * per layer against 31,299 to 41,537 tokens; at batch 2, 30286 slots hold 73% to 97%). */
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


/* `study gap`: the certified distance from the optimum, beside every other answer.  plan
 * carries the bound it was built with (lpbound's value), so lpbound needs no run of its own. */
static const char gap_policies[] =
    "static,reactive,page,lookahead:W=2:R=0.5,lookahead:W=4:R=0.5,lookahead:W=8:R=0.5,"
    "lookahead:W=16:R=1,sa,unlimited,bound,plan";
static const char *const gap_sparsity[] = {"0.4", "0.6", "0.8", "0.9"};
static const char *const gap_variation[] = {"low", "high"};

static const char *const sparsity_values[] = {"0.4", "0.5", "0.6", "0.8", "0.85", "0.9"};
static const char *const variation_values[] = {"low", "actual", "high"};
static const char *const batch_values[] = {"1", "2", "4", "8", "16", "32"};


/* ---------------------------------------------------------------------------------------- */
/* Points                                                                                   */

static int set_param(kvp_scenario *sc, const char *name, const char *value)
{
    kvp_error err = {0};
    if (kvp_param_set(sc, name, value, &err) < 0 || kvp_scenario_validate(sc, &err) < 0)
        return cli_error("%s", err.msg);
    return 0;
}

/* "Weights not counted": the weights keep their HBM capacity (reserve) but are not read.
 * With tp > 1, the simulated GPU's share of them. */
static int drop_weights(kvp_scenario *sc)
{
    kvp_error err = {0};
    kvp_derived d;
    if (kvp_scenario_derive(sc, &d, &err) < 0)
        return cli_error("%s", err.msg);
    sc->reserve += d.weight_bytes; /* both fit hbm_capacity: derived */
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


/* Two series per weights mode: batch B as B identical copies of one sequence, then B
 * distinct synthetic sequences (sequences=B, batch 1; each its own seed and prompt,
 * docs/MODEL.md section 12).  The distinct series stops at 8: a run of several streams is
 * slower per read than one (docs/PERF.md section 18). */
static int batch_points(study_ctx *c, point *pts, size_t *n)
{
    size_t k = 0;
    const size_t count[2] = {STUDY_BATCH_COPIES, STUDY_BATCH_DISTINCT};
    for (size_t w = 0; w < NELEM(study_weight_modes); w++) {
        for (size_t d = 0; d < NELEM(study_batch_series); d++) {
            if (d && c->file_trace)
                continue; /* a trace file is one sequence */
            for (size_t b = 0; b < count[d]; b++, k++) {
                point *p = &pts[k];
                p->sc = c->base;
                snprintf(p->var[0], VAR_TEXT, "%s", batch_values[b]);
                snprintf(p->var[1], VAR_TEXT, "%s", study_weight_modes[w]);
                snprintf(p->var[2], VAR_TEXT, "%s", study_batch_series[d]);
                int rc = set_param(&p->sc, "batch", d ? "1" : batch_values[b]);
                if (!rc && d)
                    rc = set_param(&p->sc, "sequences", batch_values[b]);
                if (!rc && w)
                    rc = drop_weights(&p->sc);
                if (rc)
                    return rc;
            }
        }
    }
    *n = k;
    return 0;
}

/* The heads study (docs/RESULTS.md): the same model and KV bytes, its synthetic trace as one
 * stream standing for every KV head (placement per token) and as one stream per KV head
 * (placement per head, docs/SYNTHETIC.md "Heads"), at four sparsities, weights counted and
 * not.  Its own default size, prompt 8000, 256 steps and batch 16 (--set prompt, steps,
 * batch change them): kv_heads streams cost more than kv_heads times one (docs/PERF.md
 * section 18; about 8 minutes on two cores); batch 16 keeps about the study's KV bytes
 * (16 x 8256 tokens against 4 x 41538), so that static holds under half of the context
 * (3785 slots per layer). */
static const char *const heads_sparsity[] = {"0.4", "0.6", "0.8", "0.9"};
static const char *const heads_placement[] = {"token", "head"};
#define HEADS_PROMPT "8000"
#define HEADS_STEPS "256"
#define HEADS_BATCH "16"

static int heads_points(study_ctx *c, point *pts, size_t *n)
{
    size_t k = 0;
    int rc = 0;
    if (!c->prompt_given)
        rc = set_param(&c->base, "prompt", HEADS_PROMPT); /* the summaries describe the base */
    if (!rc && !c->steps_given)
        rc = set_param(&c->base, "steps", HEADS_STEPS);
    if (!rc && !c->batch_given)
        rc = set_param(&c->base, "batch", HEADS_BATCH);
    if (rc)
        return rc;
    if (c->base.kv_heads > KVP_SYNTH_HEADS_MAX)
        return cli_error("study heads: kv_heads is %u; per-head traces take at most %u",
                         c->base.kv_heads, KVP_SYNTH_HEADS_MAX);
    for (size_t w = 0; w < NELEM(study_weight_modes); w++)
        for (size_t h = 0; h < NELEM(heads_placement); h++)
            for (size_t i = 0; i < NELEM(heads_sparsity); i++, k++) {
                point *p = &pts[k];
                p->sc = c->base;
                p->heads = (int)h;
                snprintf(p->var[0], VAR_TEXT, "%s", heads_sparsity[i]);
                snprintf(p->var[1], VAR_TEXT, "%s", heads_placement[h]);
                snprintf(p->var[2], VAR_TEXT, "%s", study_weight_modes[w]);
                rc = set_param(&p->sc, "sparsity", heads_sparsity[i]);
                if (!rc && w)
                    rc = drop_weights(&p->sc);
                if (rc)
                    return rc;
            }
    *n = k;
    return 0;
}

/* (sparsity, then the fixed budgets topk, docs/MODEL.md) x variation x weights: every online
 * policy against the references.  A topk point has no sparsity ("-"); a sparsity point has
 * topk 0 (off). */
static const char *const online_topk_values[] = {"512", "2048", "8192"};

static int online_points(study_ctx *c, point *pts, size_t *n)
{
    size_t k = 0;
    const size_t ns = NELEM(sparsity_values), nt = NELEM(online_topk_values);
    for (size_t w = 0; w < NELEM(study_weight_modes); w++)
        for (size_t v = 0; v < NELEM(variation_values); v++)
            for (size_t i = 0; i < ns + nt; i++, k++) {
                point *p = &pts[k];
                p->sc = c->base;
                const int topk = i >= ns;
                snprintf(p->var[0], VAR_TEXT, "%s", topk ? "-" : sparsity_values[i]);
                snprintf(p->var[1], VAR_TEXT, "%s", variation_values[v]);
                snprintf(p->var[2], VAR_TEXT, "%s", study_weight_modes[w]);
                snprintf(p->var[3], VAR_TEXT, "%s", topk ? online_topk_values[i - ns] : "0");
                int rc = topk ? set_param(&p->sc, "topk", online_topk_values[i - ns])
                              : set_param(&p->sc, "sparsity", sparsity_values[i]);
                if (!rc)
                    rc = set_param(&p->sc, "variation", variation_values[v]);
                if (!rc && w)
                    rc = drop_weights(&p->sc);
                if (rc)
                    return rc;
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
        for (size_t w = 0; w < NELEM(study_weight_modes); w++) {
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
                snprintf(p->var[0], VAR_TEXT, "%s", study_weight_modes[w]);
                snprintf(p->var[1], VAR_TEXT, "%s", q ? "query_head" : "kv_head");
                snprintf(p->var[2], VAR_TEXT, "%s", heads);
                snprintf(p->var[3], VAR_TEXT, "%s", batch);
            }
        }
    }
    *n = k;
    return 0;
}

/* The tiers study (docs/RESULTS.md 8c): the base machine (two tiers) alone and with a
 * CXL tier, an NVMe tier, or both below its DRAM, each behind the DRAM's link (a CXL
 * expander or an NVMe drive on the host's PCIe reaches the GPU through it), at batch sizes
 * around the first at which DRAM alone cannot hold the KV.  The tiers are those of the
 * x86-h100-cxl-nvme preset (docs/presets.md). */
static const struct {
    const char *name, *set;
} tier_machines[] = {
    {"dram", ""},
    {"dram+cxl", "tiers=3 tier2_capacity=1024GB tier2_bandwidth=144GB/s tier2_link=1"},
    {"dram+nvme", "tiers=3 tier2_capacity=61.44TB tier2_bandwidth=52GB/s tier2_link=1"},
    {"dram+cxl+nvme", "tiers=4 tier2_capacity=1024GB tier2_bandwidth=144GB/s tier2_link=1 "
                      "tier3_capacity=61.44TB tier3_bandwidth=52GB/s tier3_link=1"},
};
/* Batches as multiples of the first that overflows DRAM: half of it (every machine), it,
 * twice and four times it. */
static const double tier_batch_scale[] = {0.5, 1, 2, 4};

static int tiers_points(study_ctx *c, point *pts, size_t *n)
{
    kvp_error err = {0};
    kvp_derived d;
    if (c->base.tiers != 2)
        return cli_error("study tiers: the base machine has %u tiers; the study adds its own "
                         "below a two-tier machine's DRAM (use a two-tier --hw)",
                         c->base.tiers);
    kvp_scenario one = c->base;
    one.batch = 1;
    if (kvp_scenario_derive(&one, &d, &err) < 0)
        return cli_error("%s", err.msg);
    uint64_t tokens = c->file_trace ? (uint64_t)kvp_trace_prompt(c->file_trace) +
                                          kvp_trace_steps(c->file_trace)
                                    : (uint64_t)c->base.prompt + c->base.steps;
    /* KV of the whole run at batch 1: every layer's P + N tokens */
    double kv1 = (double)tokens * (double)d.tok_bytes * (double)c->base.layers;
    double over = floor((double)c->base.dram_capacity / kv1) + 1;
    if (over * 4 > 65536)
        return cli_error("study tiers: DRAM (%" PRIu64 " bytes) holds the KV up to batch "
                         "%.0f; the study's batches would pass 65536", c->base.dram_capacity,
                         over - 1);
    size_t k = 0;
    /* machine by machine, so that each machine's rows are consecutive (its plotted line) */
    for (size_t m = 0; m < NELEM(tier_machines); m++) {
        for (size_t b = 0; b < NELEM(tier_batch_scale); b++) {
            double batch = fmax(1, floor(over * tier_batch_scale[b]));
            point *p = &pts[k];
            p->sc = c->base;
            char text[NUM_TEXT];
            snprintf(text, sizeof text, "%.0f", batch);
            int rc = set_param(&p->sc, "batch", text);
            for (const char *a = tier_machines[m].set; !rc && *a;) {
                char one_set[96];
                size_t len = strcspn(a, " ");
                snprintf(one_set, sizeof one_set, "%.*s", (int)len, a);
                if (kvp_param_assign(&p->sc, one_set, &err) < 0)
                    rc = cli_error("%s", err.msg);
                a += len + (a[len] == ' ');
            }
            if (rc)
                return rc;
            /* a machine that cannot hold the KV at this batch has no point */
            double cap = (double)p->sc.dram_capacity;
            for (uint32_t t = 2; t < p->sc.tiers; t++)
                cap += (double)p->sc.tier_capacity[t];
            if (cap < kv1 * batch)
                continue;
            snprintf(p->var[0], VAR_TEXT, "%s", text);
            snprintf(p->var[1], VAR_TEXT, "%s", tier_machines[m].name);
            k++;
        }
    }
    *n = k;
    return 0;
}

/* Sparsities at the actual variation, then low and high variation at 0.6; each with the
 * weights' traffic counted and not. */
static int gap_points(study_ctx *c, point *pts, size_t *n)
{
    size_t k = 0;
    for (size_t w = 0; w < NELEM(study_weight_modes); w++) {
        for (size_t i = 0; i < NELEM(gap_sparsity) + NELEM(gap_variation); i++, k++) {
            point *p = &pts[k];
            p->sc = c->base;
            int vary = i >= NELEM(gap_sparsity);
            const char *sp = vary ? "0.6" : gap_sparsity[i];
            const char *var = vary ? gap_variation[i - NELEM(gap_sparsity)] : "actual";
            snprintf(p->var[0], VAR_TEXT, "%s", sp);
            snprintf(p->var[1], VAR_TEXT, "%s", var);
            snprintf(p->var[2], VAR_TEXT, "%s", study_weight_modes[w]);
            int rc = set_param(&p->sc, "sparsity", sp);
            if (!rc)
                rc = set_param(&p->sc, "variation", var);
            if (!rc && w)
                rc = drop_weights(&p->sc);
            if (rc)
                return rc;
        }
    }
    *n = k;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The table of studies                                                                     */

static const char *const vars_sparsity[] = {"sparsity"};
static const char *const vars_variation[] = {"variation"};
static const char *const vars_batch[] = {"batch", "weights", "series"};
static const char *const vars_heads[] = {"sparsity", "placement", "weights"};
/* The heads study's default policies: those that ran on streams when it was built, but sa,
 * whose search over 16 points of several streams would dominate it (--policy adds any). */
static const char heads_policies[] = "static,reactive,page,lookahead,unlimited,bound";
static const char *const vars_accounting[] = {"weights", "kv_per", "kv_heads", "batch"};
static const char *const vars_gap[] = {"sparsity", "variation", "weights"};
static const char *const vars_tiers[] = {"batch", "machine"};

static const char *const vars_online[] = {"sparsity", "variation", "weights", "topk"};

/* The online study's policies: every online policy, the baselines, a lookahead grid of
 * W in {4, 16, 64} x R in {0.25, 0.5, 1} around the points sa finds best (docs/RESULTS.md
 * §7), unlimited and bound; `plan` and `lpbound` are added when the registry has them
 * (the study's `optional`). */
static const char online_policies[] =
    "static,reactive,page,hot,balanced,payback,steer,whittle,lookahead:W=4:R=0.25,"
    "lookahead:W=4:R=0.5,lookahead:W=4:R=1,lookahead:W=16:R=0.25,lookahead:W=16:R=0.5,"
    "lookahead:W=16:R=1,"
    "lookahead:W=64:R=0.25,lookahead:W=64:R=0.5,lookahead:W=64:R=1,unlimited,bound";

static const study_def studies[] = {
    {"sparsity", "Throughput over static at each sparsity", "Fig. 3", vars_sparsity, 1,
     "static", 1, 0, sparsity_points, study_gp_sparsity, study_md_sparsity, NULL, 0, NULL, NULL},
    {"variation", "Throughput over unlimited HBM by variation", "Fig. 4", vars_variation, 1,
     "unlimited", 0, 1, variation_points, study_gp_variation, study_md_variation, NULL, 0, NULL,
     NULL},
    {"hitrate", "HBM hit rate per policy, the weights' share apart", "Fig. 5", NULL, 0,
     "static", 0, 0, hitrate_points, study_gp_hitrate, study_md_hitrate, NULL, 0, NULL, NULL},
    {"batch", "Throughput over static by batch, weights counted and not", "batch", vars_batch,
     3, "static", 0, 0, batch_points, study_gp_batch, study_md_batch, NULL, 0, NULL, NULL},
    {"accounting", "Throughput over static under each accounting", "headline",
     vars_accounting, 4, "static", 0, 0, accounting_points, study_gp_accounting,
     study_md_accounting, NULL, 0, NULL, NULL},
    {"gap", "How far each answer is from the certified optimum", "optimum", vars_gap, 3,
     "static", 1, 1, gap_points, study_gp_gap, study_md_gap, gap_policies, 1, NULL, NULL},
    {"tiers", "What a CXL or NVMe tier adds where DRAM alone overflows", "beyond the study",
     vars_tiers, 2, "static", 0, 0, tiers_points, study_gp_tiers, study_md_tiers, NULL, 1, NULL,
     NULL},
    {"online", "Online policies against the best offline reference", "online", vars_online, 4,
     "static", 1, 1, online_points, study_gp_online, study_md_online, online_policies, 1,
     study_csv_online, "plan,lpbound"},
    {"heads", "Per-head placement against per-token placement", "beyond the study", vars_heads,
     3, "static", 1, 1, heads_points, study_gp_heads, study_md_heads, heads_policies, 1, NULL,
     NULL},
};

/* 1 if the study's points set parameter `name`. */
static int varies(const study_def *def, const char *name)
{
    for (size_t i = 0; i < def->nvars; i++)
        if (strcmp(def->vars[i], name) == 0)
            return 1;
    return 0;
}

static const study_def *find_study(const char *name)
{
    for (size_t i = 0; i < NELEM(studies); i++)
        if (strcmp(studies[i].name, name) == 0)
            return &studies[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                  */

static void point_key(point *p)
{
    size_t n, used = 0;
    const kvp_param_info *params = kvp_params(&n);
    p->key[0] = 0;
    for (size_t i = 0; i < n && used < sizeof p->key; i++) {
        char t[NUM_TEXT];
        if (!kvp_param_in_use(&p->sc, &params[i]))
            continue;
        if (kvp_param_format(&p->sc, &params[i], t, sizeof t) < 0)
            t[0] = 0;
        int w = snprintf(p->key + used, sizeof p->key - used, "%s=%s;", params[i].name, t);
        used += w > 0 ? (size_t)w : 0;
    }
    if (p->heads && used < sizeof p->key)
        snprintf(p->key + used, sizeof p->key - used, "per-head;");
}

/* The sweep's trace of a point: per-head synthetic traces, the --trace file, or synthetic. */
static const char *point_trace_name(const point *p, const char *trace)
{
    return p->heads ? "synthetic-heads" : trace ? trace : "synthetic";
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
        sp.heads = p->heads ? p->sc.kv_heads : 0;
        if (kvp_trace_synthetic_sequences(tr, &sp, p->sc.sequences, &err) < 0)
            return cli_error("%s", err.msg);
    }
    return 0;
}

/* A point's results from a sweep's directory: the same numbers as running it. */
static int point_from_sweep(study_ctx *c, const study_def *def, point *p, const char *dir,
                            const char *trace)
{
    int rc = cli_sweep_results(dir, &p->sc, point_trace_name(p, trace), c->specs, c->nspec,
                               p->res);
    if (rc >= 0)
        return rc;
    char what[LABEL_TEXT];
    point_text(what, sizeof what, def, p);
    return cli_error("study %s: point %s is not in the sweep %s (run kvplace sweep "
                     "examples/studies/%s.ini --out %s with the same --set options)", def->name,
                     what, dir, def->name, dir);
}

/* The study's points as a sweep (docs/SWEEP.md): every distinct scenario of the studies run
 * is one point, in the studies' order; the policies are the study's.  A point shared by two
 * studies (study all) runs once. */
static int study_sweep(sweep_spec *s, study_ctx *c, const char *name, const char *trace,
                       study_out *outs, size_t nout)
{
    memset(s, 0, sizeof *s);
    size_t total = 0;
    for (size_t i = 0; i < nout; i++)
        total += outs[i].n;
    char path[LABEL_TEXT];
    snprintf(path, sizeof path, "study %s", name);
    s->path = strdup(path);
    s->pts = calloc(total ? total : 1, sizeof *s->pts);
    const point **first = calloc(total ? total : 1, sizeof *first); /* of each sweep point */
    if (!s->path || !s->pts || !first) {
        free(first);
        return cli_error("out of memory");
    }
    memcpy(s->specs, c->specs, c->nspec * sizeof *c->specs);
    s->nspecs = c->nspec;
    for (size_t i = 0; i < nout; i++) {
        for (size_t k = 0; k < outs[i].n; k++) {
            point *p = &outs[i].pts[k];
            point_key(p);
            size_t j = 0;
            while (j < s->npts && strcmp(first[j]->key, p->key) != 0)
                j++;
            if (j < s->npts)
                continue;
            first[s->npts] = p;
            sweep_point *sp = &s->pts[s->npts];
            char what[LABEL_TEXT], settings[LABEL_TEXT + VAR_TEXT];
            point_text(what, sizeof what, outs[i].def, p);
            snprintf(settings, sizeof settings, "%s: %s", outs[i].def->name, what);
            sp->index = s->npts++;
            sp->sc = p->sc;
            sp->trace = point_trace_name(p, trace);
            sp->settings = strdup(settings);
            sp->trace_path = trace && !p->heads ? strdup(trace) : NULL;
            if (!sp->settings || (trace && !p->heads && !sp->trace_path)) {
                free(first);
                return cli_error("out of memory");
            }
        }
    }
    free(first);
    return sweep_spec_seal(s);
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
    if (s->def->csv)
        s->def->csv(f, c, s);
    else if (s->def->nvars)
        study_csv_wide(f, c, s);
    else
        study_csv_hitrate(f, c, s);
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
    static const char *const exts[] = {"png", "svg", "pdf"};
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    for (size_t k = 0; k < NELEM(exts); k++) {
        pending *p;
        char name[LABEL_TEXT * 2], made[PATH_TEXT];
        snprintf(name, sizeof name, "%s.%s", out, exts[k]);
        if (path_join(made, sizeof made, w->dir, name))
            return 0;
        if (ok && access(made, F_OK) != 0)
            ok = 0;
        if (ok && strcmp(exts[k], "pdf") == 0 && cli_pdf_fix_date(made) != 0)
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
    } files[] = {{"csv", emit_csv}, {"json", study_json_write}, {"md", emit_md}, {"gp", emit_gp}};
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
    const char *from; /* --from DIR: the points' results from a sweep's directory */
    const char *jobs, *shard; /* the study's sweep: points at once, the share to run */
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
            (m = cli_opt_value(a, &i, "--from", NULL, &o->from)) != 0 ||
            (m = cli_opt_value(a, &i, "--jobs", "-j", &o->jobs)) != 0 ||
            (m = cli_opt_value(a, &i, "--shard", NULL, &o->shard)) != 0 ||
            (m = cli_ckpt_option(&o->ckpt, a, &i)) != 0) {
            if (m < 0)
                return -m;
            continue; /* none changes a result */
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
                         "accounting, gap, tiers, online, heads, all");
    if (strcmp(o->name, "all") != 0 && !find_study(o->name)) {
        const char *names[NELEM(studies) + 1];
        for (size_t k = 0; k < NELEM(studies); k++)
            names[k] = studies[k].name;
        names[NELEM(studies)] = "all";
        const char *s = kvp_closest_name(o->name, names, NELEM(names));
        return cli_usage(a->cmd, "unknown study \"%s\"%s%s%s; one of sparsity, variation, "
                         "hitrate, batch, accounting, gap, tiers, online, heads, all", o->name,
                         s ? " (did you mean \"" : "", s ? s : "", s ? "\"?)" : "");
    }
    if ((o->ckpt.checkpoint || o->ckpt.resume || o->from) && o->shard)
        return cli_usage(a->cmd, "--shard runs a share of the study's sweep; not with --%s",
                         o->from ? "from" : o->ckpt.checkpoint ? "checkpoint" : "resume");
    if (o->from && (o->trace || o->ckpt.checkpoint || o->ckpt.resume))
        return cli_usage(a->cmd, "--from takes the results of a sweep of synthetic traces; "
                         "not with --%s", o->trace ? "trace" : o->ckpt.checkpoint
                         ? "checkpoint" : "resume");
    if (o->trace) {
        static const char *const trace_defined[] = {"prompt", "steps"};
        for (size_t k = 0; k < NELEM(trace_defined); k++)
            if (cli_scn_sets(&o->scn, trace_defined[k]))
                return cli_usage(a->cmd, "--set %s conflicts with --trace: the trace "
                                 "defines it", trace_defined[k]);
        if (strcmp(o->name, "variation") == 0 || strcmp(o->name, "online") == 0 ||
            strcmp(o->name, "heads") == 0 || strcmp(o->name, "all") == 0)
            return cli_usage(a->cmd, "--trace: study %s needs the synthetic traces of each "
                             "variation (heads: of each head); run the other studies by "
                             "name", o->name);
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
    const study_def *def = find_study(o->name);
    char own[CMD_TEXT];
    const char *list = o->policies            ? o->policies
                       : def && def->policies ? def->policies
                                              : default_policies;
    if (!o->policies && def && def->optional) {
        /* The study's own list, with those of its optional policies the registry has. */
        snprintf(own, sizeof own, "%s", def->policies);
        for (const char *q = def->optional; *q;) {
            size_t len = strcspn(q, ",");
            char name[LABEL_TEXT];
            snprintf(name, sizeof name, "%.*s", (int)len, q);
            kvp_policy_spec probe;
            if (kvp_policy_parse(&probe, name, NULL) == 0) {
                size_t used = strlen(own);
                snprintf(own + used, sizeof own - used, ",%s", name);
            }
            q += len + (q[len] == ',');
        }
        list = own;
    }
    int n = kvp_policy_parse_list(c->specs, MAX_POLICIES - NELEM(reference_policies), list,
                                  &err);
    if (n < 0)
        return cli_error("--policy: %s", err.msg);
    c->nspec = (size_t)n;
    for (size_t k = 0; k < NELEM(reference_policies); k++) {
        if (study_has_policy(c, reference_policies[k]))
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
    c->base.given = 0; /* the study's own settings are not the user's: topk may replace them */
    if (!rc)
        rc = cli_scn_apply(&o->scn, &c->base);
    if (rc)
        return rc;
    c->prompt_given = cli_scn_sets(&o->scn, "prompt");
    c->steps_given = cli_scn_sets(&o->scn, "steps");
    c->batch_given = cli_scn_sets(&o->scn, "batch");
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
    if (!study_has_policy(c, "sa"))
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

/* Before anything runs: no file the study writes may be one it reads. */
static int check_files(const cli_args *a, const study_opts *o)
{
    static const char *const exts[] = {"csv", "json", "md", "gp", "png", "svg", "pdf"};
    enum { NOUT = NELEM(studies) * NELEM(exts) };
    static char paths[NOUT][PATH_TEXT];
    cli_file in[64], out[NOUT];
    size_t nin = cli_scn_inputs(&o->scn, in, 60), nout = 0;
    in[nin++] = (cli_file){o->trace, "--trace"};
    in[nin++] = (cli_file){o->ckpt.resume, "--resume"};
    in[nin++] = (cli_file){o->ckpt.checkpoint, "--checkpoint"};
    for (size_t i = 0; i < NELEM(studies); i++) {
        if (strcmp(o->name, "all") == 0 ? studies[i].not_in_all
                                         : strcmp(o->name, studies[i].name) != 0)
            continue;
        for (size_t k = 0; k < NELEM(exts); k++, nout++) {
            snprintf(paths[nout], PATH_TEXT, "%s/%s.%s", o->out ? o->out : ".",
                     studies[i].name, exts[k]);
            out[nout] = (cli_file){paths[nout], "--out"};
        }
    }
    return cli_check_files(a->cmd, in, nin, out, nout);
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
    sweep_spec sw;
    char sweep_dir[PATH_TEXT];
    memset(&sw, 0, sizeof sw);

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
    if ((rc = check_files(a, &o)) != 0)
        goto done;
    kvp_run_options_default(&c->ro);
    if (o.threads) {
        unsigned long t;
        if ((rc = parse_whole("--threads", o.threads, 1, MAX_THREADS, &t)) != 0)
            goto done;
        c->ro.threads = (unsigned)t;
    }
    sweep_run_opts sro;
    if ((rc = sweep_run_parse(o.jobs, o.threads, o.shard, &sro)) != 0)
        goto done;
    sro.quiet = o.quiet;
    c->quiet = o.quiet;
    if ((rc = build_base(c, &o)) != 0 || (rc = setup_policies(c, &o)) != 0)
        goto done;
    /* The points of every study first: a checkpoint to resume must hold one of them. */
    for (size_t i = 0; i < NELEM(studies); i++) {
        if (strcmp(o.name, "all") == 0 ? studies[i].not_in_all
                                       : strcmp(o.name, studies[i].name) != 0)
            continue;
        study_out *s = &outs[nout];
        s->def = &studies[i];
        s->pts = &pts[nout * MAX_POINTS];
        s->plotted = 0;
        if (c->base.topk > 0 && varies(s->def, "sparsity")) {
            rc = cli_error("study %s varies sparsity, which topk (%u) replaces; leave topk "
                           "unset for it", s->def->name, c->base.topk);
            goto done;
        }
        if ((rc = s->def->points(c, s->pts, &s->n)) != 0)
            goto done;
        nout++;
    }
    if ((rc = open_checkpoint(c, &o, outs, nout)) != 0)
        goto done;

    /* The points run as a sweep into DIR/NAME.sweep (in parallel, resumable, sharded), and
     * the study reads their results back from there; --from names a sweep made before.
     * With an sa checkpoint they run in this process, one after the other (one checkpoint
     * file takes one search at a time). */
    const char *from = o.from, *trace = o.trace ? o.trace : "synthetic";
    if (!from) {
        if ((rc = snprintf(sweep_dir, sizeof sweep_dir, "%s/%s.sweep", o.out ? o.out : ".",
                           o.name)) < 0 || (size_t)rc >= sizeof sweep_dir) {
            rc = cli_error("--out %s: path too long", o.out);
            goto done;
        }
        if (c->ckpt) {
            sro.in_process = 1;
            sro.ro = &c->ro;
        }
        if ((rc = study_sweep(&sw, c, o.name, o.trace, outs, nout)) != 0 ||
            (rc = sweep_run(&sw, sweep_dir, NULL, &sro)) != 0)
            goto done;
        if (sro.shard_n > 1) {
            if (!o.quiet)
                fprintf(stderr, "kvplace: shard %s of study %s done; once every shard is, "
                        "the same command without --shard writes the study (kvplace sweep "
                        "merge %s merges the points)\n", o.shard, o.name, sweep_dir);
            goto done;
        }
        if ((rc = sweep_merge(sweep_dir, 0, 1)) != 0)
            goto done;
        from = sweep_dir;
    }
    /* Every point of every study, so that nothing is written unless all are there. */
    for (size_t i = 0; i < nout; i++)
        for (size_t k = 0; k < outs[i].n; k++)
            if ((rc = point_from_sweep(c, outs[i].def, &outs[i].pts[k], from, trace)) != 0)
                goto done;

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
                    outs[i].def->name, outs[i].plotted ? ",png,svg,pdf" : "");
done:
    sweep_spec_free(&sw);
    kvp_trace_free(c->file_trace);
    cli_ckpt_close(&o.ckpt);
    cli_scn_free(&o.scn);
    free(c);
    free(pts);
    free(w);
    return rc;
}
