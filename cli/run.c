/* `kvplace run`: build a scenario, open or generate a trace, run the policies, write the
 * reports, print the table.  Nothing goes to stdout or to a report file until every run has
 * succeeded, so a failure leaves only its one line on stderr. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POLICIES 64
/* --threads: the engine uses at most one thread per layer and caps the count itself. */
#define MAX_THREADS 1024
#define LABEL_MAX 160
#define NUM_TEXT 32

/* ---------------------------------------------------------------------------------------- */
/* Output                                                                                   */

/* Appends n bytes of s to the string in out[len], as far as they fit. */
static void append_n(char *out, size_t len, const char *s, size_t n)
{
    size_t used = strlen(out);
    if (used + 1 >= len)
        return;
    if (n > len - used - 1)
        n = len - used - 1;
    memcpy(out + used, s, n);
    out[used + n] = 0;
}

/* "lookahead:W=16:R=0.29999999999999999" -> "lookahead:W=16:R=0.3" for the table (the
 * reports keep the exact text). */
static void short_label(char *out, size_t len, const char *params)
{
    out[0] = 0;
    const char *item = params;
    for (;;) {
        const char *colon = strchr(item, ':');
        size_t ilen = colon ? (size_t)(colon - item) : strlen(item);
        const char *eq = memchr(item, '=', ilen);
        char num[NUM_TEXT];
        size_t vlen = eq ? (size_t)(item + ilen - eq - 1) : 0;
        char *end = NULL;
        double v = 0;
        if (eq && vlen < sizeof num) {
            memcpy(num, eq + 1, vlen);
            num[vlen] = 0;
            v = strtod(num, &end);
        }
        if (end && end != num && !*end) {
            append_n(out, len, item, (size_t)(eq - item) + 1);
            snprintf(num, sizeof num, "%g", v);
            append_n(out, len, num, strlen(num));
        } else {
            append_n(out, len, item, ilen);
        }
        if (!colon)
            break;
        append_n(out, len, ":", 1);
        item = colon + 1;
    }
}

static void format_rate(char *buf, size_t len, double bytes_per_s)
{
    char b[NUM_TEXT - 4];
    cli_format_bytes(b, sizeof b, bytes_per_s);
    snprintf(buf, len, "%s/s", b);
}

/* " (modified: hbm_capacity)" when a --set changed the preset's values. */
static void print_modified(const kvp_scenario *sc, const char *kind)
{
    const kvp_param_info *mod[16];
    int n = kvp_preset_modified(sc, kind, mod, 16);
    for (int i = 0; i < n && i < 16; i++)
        printf("%s%s", i ? ", " : " (modified: ", mod[i]->name);
    if (n > 16)
        printf(", ...");
    if (n > 0)
        printf(")");
}

static void print_header(const kvp_scenario *sc, const kvp_trace *tr)
{
    kvp_derived d;
    kvp_error err;
    if (kvp_scenario_derive(sc, &d, &err) < 0)
        memset(&d, 0, sizeof d);
    char cap[NUM_TEXT], bw[NUM_TEXT], dcap[NUM_TEXT], dbw[NUM_TEXT], link[NUM_TEXT];
    char wb[NUM_TEXT], tb[NUM_TEXT], kb[NUM_TEXT], res[NUM_TEXT];
    cli_format_bytes(cap, sizeof cap, (double)sc->hbm_capacity);
    format_rate(bw, sizeof bw, sc->hbm_bandwidth);
    cli_format_bytes(dcap, sizeof dcap, (double)sc->dram_capacity);
    format_rate(dbw, sizeof dbw, sc->dram_bandwidth);
    format_rate(link, sizeof link, sc->link_bandwidth);
    cli_format_bytes(wb, sizeof wb, (double)sc->weight_bytes);
    cli_format_bytes(tb, sizeof tb, (double)d.tok_bytes);
    cli_format_bytes(kb, sizeof kb, (double)d.kv_budget);
    cli_format_bytes(res, sizeof res, (double)sc->reserve);

    printf("hardware  %s", sc->hw_name[0] ? sc->hw_name : "(custom)");
    print_modified(sc, "hw");
    printf(": HBM %s at %s, DRAM %s at %s, ", cap, bw, dcap, dbw);
    if (d.tiers >= 2 && d.link_up[d.tier_link[1]] != d.link_down[d.tier_link[1]]) {
        char up[NUM_TEXT], down[NUM_TEXT];
        format_rate(up, sizeof up, d.link_up[d.tier_link[1]]);
        format_rate(down, sizeof down, d.link_down[d.tier_link[1]]);
        printf("link %s up, %s down", up, down);
    } else {
        printf("link %s each way", link);
    }
    if (sc->reserve)
        printf(", reserve %s", res);
    printf("\n");
    /* More tiers: each below HBM with its link (the two-tier line says tier 1 and link 1). */
    for (uint32_t k = 2; k < d.tiers; k++) {
        uint32_t j = d.tier_link[k];
        char c[NUM_TEXT], b[NUM_TEXT], up[NUM_TEXT], down[NUM_TEXT];
        cli_format_bytes(c, sizeof c, (double)d.tier_capacity[k]);
        format_rate(b, sizeof b, d.tier_bandwidth[k]);
        format_rate(up, sizeof up, d.link_up[j]);
        format_rate(down, sizeof down, d.link_down[j]);
        printf("tier %u    %s at %s, behind link %u (%s up, %s down)%s\n", k, c, b, j, up,
               down, j == d.tier_link[1] ? ", shared with DRAM" : "");
    }
    if (d.tiers > 2) {
        char up[NUM_TEXT], down[NUM_TEXT];
        format_rate(up, sizeof up, d.link_up[d.tier_link[1]]);
        format_rate(down, sizeof down, d.link_down[d.tier_link[1]]);
        printf("link %u    (DRAM's) %s up, %s down\n", d.tier_link[1], up, down);
    }
    printf("model     %s", sc->model_name[0] ? sc->model_name : "(custom)");
    print_modified(sc, "model");
    printf(": %u layers, %u KV heads x %u dims x %u bytes, weights %s", sc->layers,
           sc->kv_heads, sc->head_dim, sc->dtype_bytes, wb);
    if (sc->tp > 1) {
        char gw[NUM_TEXT];
        cli_format_bytes(gw, sizeof gw, (double)d.weight_bytes);
        printf("; tp %u: one GPU of %u simulated, %u KV heads and weights %s", sc->tp, sc->tp,
               d.kv_heads, gw);
    }
    printf("\n");
    printf("trace     %s", kvp_trace_name(tr));
    if (strncmp(kvp_trace_name(tr), "synthetic", strlen("synthetic")) == 0)
        printf(", seed %llu", (unsigned long long)sc->seed);
    printf(": prompt P = %u, steps N = %u, layers L = %u\n", kvp_trace_prompt(tr),
           kvp_trace_steps(tr), kvp_trace_layers(tr));
    if (kvp_trace_is_bool(tr))
        printf("workload  sparsity (ignored: the trace marks its reads)");
    else if (sc->topk > 0)
        printf("workload  topk %u", sc->topk);
    else
        printf("workload  sparsity %g", sc->sparsity);
    printf(", batch %u, tok_bytes %llu (%s), KV budget %s, slots per layer %u (1-token "
           "blocks)\n", sc->batch, (unsigned long long)d.tok_bytes, tb, kb,
           kvp_slots(sc, &d, 1));
    const uint32_t S = kvp_trace_stream_count(tr), H = kvp_trace_heads(tr);
    if (S > 1 && d.tok_bytes) { /* docs/MODEL.md "Streams": slots count a stream's tokens */
        kvp_derived ds = d;
        ds.tok_bytes /= H > 1 ? H : 1;
        printf("streams   %u (%u sequence%s x %u head%s), a stream's token %llu bytes, slots "
               "per layer %u shared by the streams (1-token blocks)\n", S,
               kvp_trace_sequence_count(tr), kvp_trace_sequence_count(tr) == 1 ? "" : "s", H,
               H == 1 ? " (all heads)" : "s", (unsigned long long)ds.tok_bytes,
               kvp_slots(sc, &ds, 1));
    }
}

/* The policy's name for people: its spec with short numbers; a policy that reports
 * another's parameters (sa: the best lookahead) is named with them, "sa (lookahead:W=19:R=0.5)". */
static void policy_label(char *out, size_t len, const kvp_result *r)
{
    char shortened[LABEL_MAX - sizeof r->policy - 4];
    short_label(shortened, sizeof shortened, r->params);
    size_t plen = strlen(r->policy);
    if (strncmp(shortened, r->policy, plen) == 0 &&
        (shortened[plen] == ':' || shortened[plen] == 0))
        snprintf(out, len, "%s", shortened);
    else
        snprintf(out, len, "%s (%s)", r->policy, shortened);
}

static void print_table(const kvp_result *res, size_t n)
{
    char label[MAX_POLICIES][LABEL_MAX];
    int w = (int)strlen("policy");
    for (size_t i = 0; i < n && i < MAX_POLICIES; i++) {
        policy_label(label[i], sizeof label[i], &res[i]);
        int l = (int)strlen(label[i]);
        if (l > w)
            w = l;
    }
    printf("\n%-*s  %11s  %12s  %9s  %9s  %7s  %7s  %9s  %9s\n", w, "policy", "time (s)",
           "tok/s", "vs static", "vs unlim", "hit KV", "hit all", "promoted", "demoted");
    for (size_t i = 0; i < n && i < MAX_POLICIES; i++) {
        const kvp_result *r = &res[i];
        char pro[NUM_TEXT], dem[NUM_TEXT];
        cli_format_bytes(pro, sizeof pro, (double)r->promoted_bytes);
        cli_format_bytes(dem, sizeof dem, (double)r->demoted_bytes);
        printf("%-*s  %11.6f  %12.1f  %9.3f  %9.3f  %6.2f%%  %6.2f%%  %9s  %9s\n", w, label[i],
               r->total_time_s, r->throughput_tok_s, r->speedup_vs_static,
               r->speedup_vs_unlimited, r->hbm_hit_rate_kv * 100, r->hbm_hit_rate_all * 100,
               pro, dem);
    }
    printf("\nvs static, vs unlim: speedup over the static and unlimited policies; hit KV, hit "
           "all: share of\nKV bytes (of all bytes, weights included) read from HBM; promoted, "
           "demoted: KV bytes moved.\n");
    /* A placement with a certificate: how far from the optimum it is proven to be. */
    for (size_t i = 0; i < n && i < MAX_POLICIES; i++)
        if (res[i].lower_bound_s > 0 && res[i].promoted_bytes + res[i].kv_read_hbm > 0)
            printf("%s: certified within %.2f%% of the optimum (no placement takes less than "
                   "%.6f s; %u dual iterations)\n", label[i],
                   (res[i].total_time_s / res[i].lower_bound_s - 1) * 100,
                   res[i].lower_bound_s, res[i].dual_iterations);
}

/* -v: where each policy's bytes went, per tier and per link, and how long each was busy. */
static void print_tiers(const kvp_result *res, size_t n)
{
    for (size_t i = 0; i < n && i < MAX_POLICIES; i++) {
        const kvp_result *r = &res[i];
        printf("\n%s: %-6s %10s %10s %10s %10s %10s %11s\n", r->policy, "tier", "KV read",
               "read", "written", "moved in", "moved out", "busy (s)");
        for (uint32_t k = 0; k < r->tiers && k < KVP_MAX_TIERS; k++) {
            char t[5][NUM_TEXT];
            const uint64_t v[5] = {r->tier_kv_read[k], r->tier_read[k], r->tier_write[k],
                                   r->tier_moved_in[k], r->tier_moved_out[k]};
            for (int x = 0; x < 5; x++)
                cli_format_bytes(t[x], sizeof t[x], (double)v[x]);
            printf("%*s  %-6u %10s %10s %10s %10s %10s %11.6f\n", (int)strlen(r->policy), "",
                   k, t[0], t[1], t[2], t[3], t[4], r->tier_busy_s[k]);
        }
        for (uint32_t j = 1; j <= r->links && j < KVP_MAX_TIERS; j++) {
            char up[NUM_TEXT], down[NUM_TEXT];
            cli_format_bytes(up, sizeof up, (double)r->link_up_bytes[j]);
            cli_format_bytes(down, sizeof down, (double)r->link_down_bytes[j]);
            printf("%*s  link %u: %s up (busy %.6f s), %s down (busy %.6f s)\n",
                   (int)strlen(r->policy), "", j, up, r->link_up_busy_s[j], down,
                   r->link_down_busy_s[j]);
        }
    }
    printf("\nTier 0 is HBM (its busy time counts the weights); read and written count the "
           "reads,\nmoves and new tokens; a link carries what its tiers read (up) and write "
           "(down).\n");
}

/* When the whole KV cache fits in HBM, every policy runs as unlimited and a table of 1.000s
 * says nothing: one line says so instead (-v prints the table).  Returns 1 if it printed. */
static int print_no_spill(const kvp_scenario *sc, const kvp_trace *tr, const kvp_result *res,
                          size_t n)
{
    kvp_derived d;
    kvp_error err;
    if (kvp_scenario_derive(sc, &d, &err) < 0)
        return 0;
    uint64_t tokens = (uint64_t)kvp_trace_prompt(tr) + kvp_trace_steps(tr);
    uint32_t slots = kvp_slots(sc, &d, 1);
    if (slots < tokens || n == 0 || kvp_trace_stream_count(tr) > 1)
        return 0;
    for (size_t i = 1; i < n; i++) /* a block policy could still fall short by a block */
        if (res[i].total_time_s != res[0].total_time_s)
            return 0;
    printf("\nnothing spills: the KV cache (at most %llu tokens per layer) fits in the %u HBM "
           "slots per layer, so every policy runs as unlimited (%.6f s, %.1f tok/s); -v "
           "prints the table\n", (unsigned long long)tokens, slots,
           res[0].total_time_s, res[0].throughput_tok_s);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                              */

typedef struct run_opts {
    cli_scn scn;
    cli_ckpt ckpt; /* --checkpoint, --resume */
    const char *trace, *policies, *json, *csv, *threads, *sa_log;
    const char *traces[KVP_MAX_SEQUENCES]; /* --trace, repeatable: one file per sequence */
    int ntrace;
    const char *timeline, *placement, *placement_layer, *placement_policy;
    int check, quiet, verbose;
    int heads; /* --heads: one synthetic stream per KV head */
    cli_run_keys keys; /* the values taken from [run] sections */
} run_opts;

/* The sa searches' events, kept for --sa-log and written with the other reports. */
typedef struct sa_events {
    kvp_sa_event *ev;
    size_t n, cap;
    int failed; /* out of memory */
} sa_events;

static void keep_sa_event(void *user, const kvp_sa_event *ev)
{
    sa_events *log = user;
    if (log->failed)
        return;
    if (log->n == log->cap) {
        size_t cap = log->cap ? 2 * log->cap : 256;
        kvp_sa_event *grown = realloc(log->ev, cap * sizeof *grown);
        if (!grown) {
            log->failed = 1;
            return;
        }
        log->ev = grown;
        log->cap = cap;
    }
    log->ev[log->n++] = *ev;
}

/* sa's searches as progress phases, "[2/2] sa evaluation 7/40", and their events for
 * --sa-log. */
typedef struct sa_watch {
    cli_progress *pg;
    sa_events *log; /* NULL without --sa-log */
    const kvp_policy_spec *specs;
    size_t n;
    int search; /* the sa search under way, counted from 0; -1 before the first */
    char label[64];
} sa_watch;

static unsigned sa_budget(const sa_watch *w, int search)
{
    int k = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(kvp_policy_name(w->specs[i].ops), "sa") != 0 || k++ != search)
            continue;
        size_t np;
        const kvp_policy_param *pp = kvp_policy_params(w->specs[i].ops, &np);
        for (size_t j = 0; j < np; j++)
            if (strcmp(pp[j].name, "budget") == 0)
                return (unsigned)w->specs[i].value[j];
    }
    return 0;
}

static void watch_sa(void *user, const kvp_sa_event *ev)
{
    sa_watch *w = user;
    if (w->log)
        keep_sa_event(w->log, ev);
    if (ev->level == 0 && ev->move == 0)
        w->search++;
    snprintf(w->label, sizeof w->label, "sa evaluation %u/%u", ev->evaluations,
             sa_budget(w, w->search));
    w->pg->index = 1 + (unsigned)(w->search < 0 ? 0 : w->search);
    w->pg->label = w->label;
}

/* lpbound's and plan's dual search as the progress label: the layer and iteration under way
 * and the bound proven so far, then the bound, plan's time and the certified gap. */
typedef struct dual_watch {
    cli_progress *pg;
    char label[128];
} dual_watch;

static void watch_dual(void *user, const kvp_dual_event *ev)
{
    dual_watch *w = user;
    if (ev->plan_s > 0 && ev->lower_bound_s > 0)
        snprintf(w->label, sizeof w->label, "plan %.6g s, lpbound %.6g s, gap %.2f%%",
                 ev->plan_s, ev->lower_bound_s, 100 * (ev->plan_s / ev->lower_bound_s - 1));
    else if (ev->lower_bound_s > 0)
        snprintf(w->label, sizeof w->label, "lpbound %.6g s; replaying plan's candidates",
                 ev->lower_bound_s);
    else if (ev->iterations == 0)
        snprintf(w->label, sizeof w->label, "dual: %u layers", ev->layers);
    else
        snprintf(w->label, sizeof w->label,
                 "dual layer %u/%u it %u/%u, >= %.6g s on %u done",
                 ev->layer + 1, ev->layers, ev->iteration, ev->iterations, ev->bound_done_s,
                 ev->layers_done);
    w->pg->label = w->label;
}

/* The [run] sections of the --config files, for the options the command line left empty
 * (docs/CLI.md "A whole experiment in a config file"). */
static int load_run_keys(run_opts *o)
{
    cli_run_keys *k = &o->keys;
    const struct {
        const char *name;
        const char **slot;
    } map[] = {
        {"policy", &o->policies},          {"trace", &o->trace},
        {"synthetic", &o->scn.synthetic},  {"json", &o->json},
        {"csv", &o->csv},                  {"timeline", &o->timeline},
        {"placement", &o->placement},      {"placement_policy", &o->placement_policy},
        {"placement_layer", &o->placement_layer}, {"sa_log", &o->sa_log},
        {"threads", &o->threads},
    };
    /* the trace's source is one choice: a --trace or --synthetic given leaves both alone */
    const char *none = NULL, **trace = &o->trace, **synth = &o->scn.synthetic;
    int source_given = o->trace || o->scn.synthetic;
    k->n = 0;
    for (size_t i = 0; i < sizeof map / sizeof *map && k->n < CLI_RUN_KEYS_MAX; i++) {
        const char **slot = map[i].slot;
        if (source_given && (slot == trace || slot == synth))
            slot = &none; /* read and checked, then dropped */
        k->key[k->n++] = (cli_run_key){map[i].name, slot};
    }
    for (size_t i = 0; i < o->scn.n; i++) {
        if (o->scn.item[i].kind != CLI_SCN_CONFIG)
            continue;
        int rc = cli_run_keys_load(k, o->scn.item[i].text);
        if (rc)
            return rc;
        none = NULL;
    }
    return 0;
}

static int parse_args(const cli_args *a, run_opts *o, int *help)
{
    *help = 0;
    for (int i = 0; i < a->argc; i++) {
        const char *arg = a->argv[i];
        int m;
        if (cli_is_help(arg)) {
            *help = 1;
            return 0;
        }
        if ((m = cli_scn_option(&o->scn, a, &i)) != 0 ||
            (m = cli_ckpt_option(&o->ckpt, a, &i)) != 0 ||
            (m = cli_opt_value(a, &i, "--synthetic", NULL, &o->scn.synthetic)) != 0 ||
            (m = cli_opt_value(a, &i, "--policy", NULL, &o->policies)) != 0 ||
            (m = cli_opt_value(a, &i, "--json", NULL, &o->json)) != 0 ||
            (m = cli_opt_value(a, &i, "--csv", NULL, &o->csv)) != 0 ||
            (m = cli_opt_value(a, &i, "--sa-log", NULL, &o->sa_log)) != 0 ||
            (m = cli_opt_value(a, &i, "--timeline", NULL, &o->timeline)) != 0 ||
            (m = cli_opt_value(a, &i, "--placement", NULL, &o->placement)) != 0 ||
            (m = cli_opt_value(a, &i, "--placement-layer", NULL, &o->placement_layer)) != 0 ||
            (m = cli_opt_value(a, &i, "--placement-policy", NULL, &o->placement_policy)) != 0 ||
            (m = cli_opt_value(a, &i, "--threads", NULL, &o->threads)) != 0) {
            if (m < 0)
                return -m;
            continue;
        }
        const char *tv = NULL;
        if ((m = cli_opt_value(a, &i, "--trace", NULL, &tv)) != 0) {
            if (m < 0)
                return -m;
            if (o->ntrace == KVP_MAX_SEQUENCES)
                return cli_usage(a->cmd, "--trace: at most %d files (one per sequence)",
                                 KVP_MAX_SEQUENCES);
            o->traces[o->ntrace++] = tv;
            o->trace = o->traces[0];
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--heads", NULL)) != 0) {
            if (m < 0)
                return -m;
            o->heads = 1;
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--check", NULL)) != 0) {
            if (m < 0)
                return -m;
            o->check = 1;
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--verbose", "-v")) != 0) {
            if (m < 0)
                return -m;
            o->verbose = 1;
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--quiet", "-q")) != 0) {
            if (m < 0)
                return -m;
            o->quiet = 1;
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--verbose", "-v")) != 0) {
            if (m < 0)
                return -m;
            o->verbose = 1;
            continue;
        }
        return cli_unknown_arg(a, arg);
    }
    int rc = load_run_keys(o);
    if (rc)
        return rc;
    if (o->trace && o->ntrace == 0) /* from a [run] section */
        o->traces[o->ntrace++] = o->trace;
    if (o->trace && o->heads)
        return cli_usage(a->cmd, "--heads makes one synthetic trace per KV head; a trace file "
                         "has the heads its shape gives");
    if (o->trace && cli_scn_sets(&o->scn, "sequences"))
        return cli_usage(a->cmd, "--set sequences makes synthetic sequences; with --trace, "
                         "give one --trace per sequence");
    if (o->trace && o->scn.synthetic)
        return cli_usage(a->cmd, "--trace and --synthetic exclude each other: a run uses "
                         "one trace");
    static const char *const trace_defined[] = {"prompt", "steps"};
    for (size_t k = 0; o->trace && k < sizeof trace_defined / sizeof *trace_defined; k++)
        if (cli_scn_sets(&o->scn, trace_defined[k]))
            return cli_usage(a->cmd, "--set %s conflicts with --trace: the trace defines it",
                             trace_defined[k]);
    return 0;
}

/* --timeline and --placement: what the engine's step hook feeds. */
typedef struct steps_rec {
    kvp_timeline *tl;
    kvp_placement *pl;
    int pl_policy;   /* index in the list of --placement-policy */
    uint32_t pl_layer;
} steps_rec;

static void record_step(void *user, const kvp_step_record *r)
{
    steps_rec *sr = user;
    if (sr->tl)
        kvp_timeline_record(sr->tl, r);
    if (sr->pl)
        kvp_placement_record(sr->pl, r);
}

static void steps_free(steps_rec *sr)
{
    kvp_timeline_free(sr->tl);
    kvp_placement_free(sr->pl);
    sr->tl = NULL;
    sr->pl = NULL;
}

/* Chooses the policy and layer of --placement (the first policy asked, layer 0, unless
 * named) and allocates the records; the hook goes into ro. */
static int steps_open(const run_opts *o, const kvp_trace *tr, const kvp_policy_spec *specs,
                      size_t n, kvp_run_options *ro, steps_rec *sr)
{
    kvp_error err = {0};
    memset(sr, 0, sizeof *sr);
    if (!o->timeline && !o->placement)
        return 0;
    uint32_t L = kvp_trace_layers(tr), N = kvp_trace_steps(tr), P = kvp_trace_prompt(tr);
    if (o->placement && kvp_trace_stream_count(tr) > 1)
        return cli_error("--placement %s: a placement is one stream's positions; %s has %u "
                         "streams (not supported yet)", o->placement, kvp_trace_name(tr),
                         kvp_trace_stream_count(tr));
    if (o->placement) {
        sr->pl_policy = 0;
        if (o->placement_policy) {
            sr->pl_policy = -1;
            for (size_t i = 0; i < n && sr->pl_policy < 0; i++) {
                char text[LABEL_MAX];
                kvp_policy_format(&specs[i], text, sizeof text);
                if (strcmp(kvp_policy_name(specs[i].ops), o->placement_policy) == 0 ||
                    strcmp(text, o->placement_policy) == 0)
                    sr->pl_policy = (int)i;
            }
            if (sr->pl_policy < 0)
                return cli_error("--placement-policy %s: not among the policies run",
                                 o->placement_policy);
        }
        if (o->placement_layer) {
            char *end;
            errno = 0;
            unsigned long l = strtoul(o->placement_layer, &end, 10);
            if (end == o->placement_layer || *end || errno || o->placement_layer[0] == '-' ||
                l >= L)
                return cli_error("--placement-layer %s: expected a layer from 0 to %u",
                                 o->placement_layer, L - 1);
            sr->pl_layer = (uint32_t)l;
        }
        /* sa's placement is recorded on the rerun of its best point (record_sa) */
        int is_sa = strcmp(kvp_policy_name(specs[sr->pl_policy].ops), "sa") == 0;
        if (kvp_placement_create(&sr->pl, is_sa ? 0 : (size_t)sr->pl_policy, sr->pl_layer, P,
                                 N, &err) < 0)
            return cli_error("--placement %s: %s", o->placement, err.msg);
    }
    if (o->timeline && kvp_timeline_create(&sr->tl, n + 2, L, N, &err) < 0) {
        steps_free(sr);
        return cli_error("--timeline %s: %s", o->timeline, err.msg);
    }
    ro->step_hook = record_step;
    ro->step_user = sr;
    return 0;
}

/* sa runs its own passes, which the hook does not see: its steps are those of lookahead at
 * its best (W, R), run once more here. */
static int record_sa(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *specs,
                     size_t n, const kvp_result *res, const kvp_run_options *ro0, steps_rec *sr)
{
    kvp_error err = {0};
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kvp_policy_name(specs[i].ops), "sa") != 0)
            continue;
        int want_pl = sr->pl && (size_t)sr->pl_policy == i;
        if (!sr->tl && !want_pl)
            continue;
        kvp_policy_spec best;
        kvp_result r;
        steps_rec one = {NULL, want_pl ? sr->pl : NULL, 0, sr->pl_layer};
        kvp_run_options ro = *ro0;
        ro.progress = NULL;
        ro.checkpoint = NULL;
        ro.sa_log = NULL;
        ro.step_hook = record_step;
        ro.step_user = &one;
        if (kvp_policy_parse(&best, res[i].params, &err) < 0)
            return cli_error("sa's best point %s: %s", res[i].params, err.msg);
        if (sr->tl && kvp_timeline_create(&one.tl, 1, kvp_trace_layers(tr),
                                          kvp_trace_steps(tr), &err) < 0)
            return cli_error("--timeline: %s", err.msg);
        int rc = kvp_run_many(sc, tr, &best, 1, &ro, &r, &err);
        if (rc >= 0 && sr->tl)
            kvp_timeline_copy_policy(sr->tl, i, one.tl, 0);
        kvp_timeline_free(one.tl);
        if (rc < 0)
            return cli_run_failed(&err, NULL);
    }
    return 0;
}

static int write_steps(const run_opts *o, const kvp_scenario *sc, const kvp_result *res,
                       size_t n, const steps_rec *sr)
{
    kvp_error err = {0};
    if (sr->tl) {
        char label[MAX_POLICIES][LABEL_MAX];
        const char *labels[MAX_POLICIES];
        kvp_derived d;
        if (kvp_scenario_derive(sc, &d, &err) < 0)
            return cli_error("%s", err.msg);
        for (size_t i = 0; i < n && i < MAX_POLICIES; i++) {
            policy_label(label[i], sizeof label[i], &res[i]);
            labels[i] = label[i];
        }
        if (kvp_timeline_write_csv(sr->tl, labels, n, d.tok_bytes, o->timeline, &err) < 0)
            return cli_error("%s", err.msg);
    }
    if (sr->pl && kvp_placement_write_npy(sr->pl, o->placement, &err) < 0) {
        if (sr->tl)
            cli_remove_output(o->timeline);
        return cli_error("--placement-policy %s: %s", res[sr->pl_policy].policy, err.msg);
    }
    return 0;
}

/* Before anything is read or written: no output may be an input or another output. */
static int check_files(const cli_args *a, const run_opts *o)
{
    cli_file in[64 + KVP_MAX_SEQUENCES];
    size_t nin = cli_scn_inputs(&o->scn, in, 60);
    for (int k = 0; k < o->ntrace; k++)
        in[nin++] = (cli_file){o->traces[k], "--trace"};
    in[nin++] = (cli_file){o->ckpt.resume, "--resume"};
    in[nin++] = (cli_file){o->ckpt.checkpoint, "--checkpoint"};
    const cli_file out[] = {
        {o->json, "--json"},         {o->csv, "--csv"},
        {o->sa_log, "--sa-log"},     {o->timeline, "--timeline"},
        {o->placement, "--placement"},
    };
    return cli_check_files(a->cmd, in, nin, out, sizeof out / sizeof *out);
}

/* 1 if a report goes to stdout, which then carries only that report. */
static int report_on_stdout(const run_opts *o)
{
    const char *outs[] = {o->json, o->csv, o->sa_log, o->timeline, o->placement};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
        if (outs[i] && strcmp(outs[i], "-") == 0)
            return 1;
    return 0;
}

static int parse_threads(const char *text, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end || errno || text[0] == '-' || v < 1 || v > MAX_THREADS)
        return cli_error("--threads %s: expected a whole number from 1 to %d", text,
                         MAX_THREADS);
    *out = (unsigned)v;
    return 0;
}

static int find_policy(const kvp_policy_spec *specs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvp_policy_name(specs[i].ops), name) == 0)
            return (int)i;
    return -1;
}

/* Runs every spec, plus static and unlimited for the speedups when they were not asked for,
 * in one kvp_run_many call (the simulated policies share one pass over the trace); fills
 * res[0..n-1]. */
static int run_all(const kvp_scenario *sc, const kvp_trace *tr, const kvp_policy_spec *specs,
                   size_t n, kvp_run_options *ro, cli_progress *pg, const cli_ckpt *ckpt,
                   kvp_result *res)
{
    static const char *const refs[] = {"static", "unlimited"};
    enum { NREFS = sizeof refs / sizeof *refs };
    kvp_policy_spec *all = calloc(n + NREFS, sizeof *all);
    kvp_result *all_res = calloc(n + NREFS, sizeof *all_res);
    size_t where[NREFS];
    size_t total = n;
    kvp_error err = {0};
    int rc = 0;
    if (!all || !all_res) {
        rc = cli_error("out of memory");
        goto done;
    }
    memcpy(all, specs, n * sizeof *all);
    for (size_t k = 0; k < NREFS; k++) {
        int w = find_policy(specs, n, refs[k]);
        if (w >= 0) {
            where[k] = (size_t)w;
            continue;
        }
        if (kvp_policy_parse(&all[total], refs[k], &err) < 0) {
            rc = cli_error("%s", err.msg);
            goto done;
        }
        where[k] = total++;
    }
    pg->count = 1; /* the shared pass, then one phase per sa search */
    for (size_t i = 0; i < total; i++)
        pg->count += strcmp(kvp_policy_name(all[i].ops), "sa") == 0;
    pg->index = 0;
    pg->label = "simulating";
    if (kvp_run_many(sc, tr, all, total, ro, all_res, &err) < 0) {
        cli_progress_clear(pg);
        rc = cli_run_failed(&err, ckpt);
        goto done;
    }
    cli_progress_clear(pg);
    memcpy(res, all_res, n * sizeof *res);
    kvp_result_speedups(res, n, all_res[where[0]].total_time_s,
                        all_res[where[1]].total_time_s);
done:
    free(all);
    free(all_res);
    return rc;
}

static int write_reports(const run_opts *o, const kvp_scenario *sc, const kvp_trace *tr,
                         const kvp_result *res, size_t n, const sa_events *log)
{
    kvp_report rep = {sc, tr, res, n};
    kvp_error err = {0};
    if (log->failed)
        return cli_error("--sa-log %s: out of memory for the search's events", o->sa_log);
    if (o->json && kvp_report_json(&rep, o->json, &err) < 0)
        return cli_error("%s", err.msg);
    int csv_done = 0;
    if ((o->csv && (csv_done = kvp_report_csv(&rep, o->csv, &err) >= 0) == 0) ||
        (o->sa_log && kvp_report_sa_log(log->ev, log->n, o->sa_log, &err) < 0)) {
        /* Leave no part of the output behind: the run as a whole failed. */
        cli_remove_output(o->json);
        if (csv_done)
            cli_remove_output(o->csv);
        return cli_error("%s", err.msg);
    }
    return 0;
}

static int open_trace(const run_opts *o, kvp_scenario *sc, kvp_trace **tr)
{
    kvp_error err = {0};
    if (o->ntrace > 1) { /* distinct sequences, one file each (docs/MODEL.md "Streams") */
        kvp_trace *seq[KVP_MAX_SEQUENCES];
        for (int k = 0; k < o->ntrace; k++)
            if (kvp_trace_open_npy(&seq[k], o->traces[k], &err) < 0) {
                for (int j = 0; j < k; j++)
                    kvp_trace_free(seq[j]);
                return cli_error("%s", err.msg);
            }
        if (kvp_trace_sequences(tr, seq, (uint32_t)o->ntrace, &err) < 0)
            return cli_error("%s", err.msg);
        sc->prompt = kvp_trace_prompt(*tr);
        sc->steps = kvp_trace_steps(*tr);
        return 0;
    }
    if (o->trace) {
        if (kvp_trace_open_npy(tr, o->trace, &err) < 0)
            return cli_error("%s", err.msg);
        /* The trace defines the run's length; the report shows the values used. */
        sc->prompt = kvp_trace_prompt(*tr);
        sc->steps = kvp_trace_steps(*tr);
        return 0;
    }
    kvp_synth_params sp;
    kvp_synth_default(&sp, sc);
    if (o->heads && (sc->kv_heads < 2 || sc->kv_heads > KVP_SYNTH_HEADS_MAX))
        return cli_error("--heads: kv_heads is %u; per-head traces need 2 to %u heads",
                         sc->kv_heads, KVP_SYNTH_HEADS_MAX);
    if (o->heads)
        sp.heads = sc->kv_heads;
    if (kvp_trace_synthetic_sequences(tr, &sp, sc->sequences, &err) < 0)
        return cli_error("%s", err.msg);
    return 0;
}

int cli_cmd_run(const cli_args *a, int default_scenario)
{
    run_opts o;
    kvp_scenario sc;
    kvp_run_options ro;
    kvp_error err = {0};
    cli_progress pg;
    kvp_trace *tr = NULL;
    kvp_policy_spec *specs = NULL;
    kvp_result *res = NULL;
    char list[LABEL_MAX * 4], left_out[LABEL_MAX];
    sa_events log = {0};
    steps_rec steps = {0};
    sa_watch watch;
    dual_watch dwatch;
    int help, rc, n;

    memset(&o, 0, sizeof o);
    if (cli_scn_init(&o.scn, a->argc) != 0)
        return CLI_EXIT_INPUT;
    if ((rc = parse_args(a, &o, &help)) != 0 || help) {
        if (help)
            cli_help_run();
        goto done;
    }
    if ((rc = check_files(a, &o)) != 0)
        goto done;
    kvp_run_options_default(&ro);
    ro.check = o.check;
    if (o.threads && (rc = parse_threads(o.threads, &ro.threads)) != 0)
        goto done;
    if ((rc = cli_scn_build(&o.scn, &sc)) != 0)
        goto done;

    cli_default_policies(list, sizeof list, left_out, sizeof left_out);
    specs = calloc(MAX_POLICIES, sizeof *specs);
    res = calloc(MAX_POLICIES, sizeof *res);
    if (!specs || !res) {
        rc = cli_error("out of memory");
        goto done;
    }
    n = kvp_policy_parse_list(specs, MAX_POLICIES, o.policies ? o.policies : list, &err);
    if (n < 0) {
        rc = cli_error("--policy: %s", err.msg);
        goto done;
    }
    if (o.sa_log && find_policy(specs, (size_t)n, "sa") < 0) {
        rc = cli_usage(a->cmd, "--sa-log records the sa search, and no sa policy is asked for");
        goto done;
    }
    if ((o.ckpt.checkpoint || o.ckpt.resume) && find_policy(specs, (size_t)n, "sa") < 0) {
        rc = cli_usage(a->cmd, "--%s applies to the sa search, and no sa policy is asked for",
                       o.ckpt.checkpoint ? "checkpoint" : "resume");
        goto done;
    }
    if ((rc = open_trace(&o, &sc, &tr)) != 0)
        goto done;
    if (kvp_trace_stream_count(tr) > 1 && !o.policies) {
        /* the default list on streams: the policies that run on them (docs/MODEL.md
         * "Streams"); a list given names its own, and a policy that cannot is refused */
        char dropped[256] = "";
        size_t kept = 0, at = 0;
        for (size_t i = 0; i < (size_t)n; i++) {
            if (kvp_policy_streams(specs[i].ops))
                specs[kept++] = specs[i];
            else if (at < sizeof dropped)
                at += (size_t)snprintf(dropped + at, sizeof dropped - at, "%s%s",
                                       at ? ", " : "", kvp_policy_name(specs[i].ops));
        }
        n = (int)kept;
        if (at && !o.quiet)
            fprintf(stderr, "kvplace: %u streams: left out %s (not run on several streams "
                    "yet)\n", kvp_trace_stream_count(tr), dropped);
    }
    if ((rc = cli_ckpt_open(&o.ckpt, &sc, tr)) != 0)
        goto done;
    ro.checkpoint = o.ckpt.ck;
    ro.cancel = cli_cancel_install();
    cli_progress_init(&pg, o.quiet);
    watch = (sa_watch){&pg, o.sa_log ? &log : NULL, specs, (size_t)n, -1, ""};
    if (o.sa_log || pg.on) {
        ro.sa_log = watch_sa;
        ro.sa_log_user = &watch;
    }
    if (pg.on) { /* the engine polls for progress only when asked */
        ro.progress = cli_progress_fn;
        ro.progress_user = &pg;
        dwatch = (dual_watch){&pg, ""};
        ro.dual_log = watch_dual;
        ro.dual_log_user = &dwatch;
    }
    if ((rc = steps_open(&o, tr, specs, (size_t)n, &ro, &steps)) != 0)
        goto done;
    if ((rc = run_all(&sc, tr, specs, (size_t)n, &ro, &pg, &o.ckpt, res)) != 0)
        goto done;
    if ((rc = record_sa(&sc, tr, specs, (size_t)n, res, &ro, &steps)) != 0)
        goto done;
    if ((rc = write_steps(&o, &sc, res, (size_t)n, &steps)) != 0)
        goto done;
    if ((rc = write_reports(&o, &sc, tr, res, (size_t)n, &log)) != 0) {
        cli_remove_output(o.timeline);
        cli_remove_output(o.placement);
        goto done;
    }
    if (!report_on_stdout(&o)) {
        print_header(&sc, tr);
        if (o.verbose || !print_no_spill(&sc, tr, res, (size_t)n))
            print_table(res, (size_t)n);
        if (o.verbose)
            print_tiers(res, (size_t)n);
    }
    if (fflush(stdout) != 0)
        rc = cli_error("stdout: write failed");
    /* After the run, so that a failure stays one line. */
    else if (!o.policies && left_out[0] && !o.quiet && !default_scenario)
        fprintf(stderr, "kvplace: left out as slow: %s (ask by name, or --policy all)\n",
                left_out);

done:
    cli_run_keys_free(&o.keys);
    steps_free(&steps);
    kvp_trace_free(tr);
    free(specs);
    free(res);
    free(log.ev);
    cli_ckpt_close(&o.ckpt);
    cli_scn_free(&o.scn);
    return rc;
}
