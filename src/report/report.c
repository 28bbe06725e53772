/*
 * Reports: the results of a run as JSON (with cJSON) or CSV.
 *
 * One table of result fields serves both formats, so a column is named once.  Numbers are
 * written so that they read back exactly: byte counters as exact integers (cJSON keeps numbers
 * as doubles, which lose integers above 2^53, so they go in as raw text) and doubles with the
 * fewest of 15, 16 or 17 significant digits that read back to the same double (cJSON 1.7.15
 * accepts 15 digits when the value read back is within one ulp, which is not a round trip).
 * Non-finite values have no JSON form and are refused.  Both writers write to a temporary
 * name beside the target and rename it on success, so a failure leaves no file behind.
 */
#include "kvplace.h"
#include "base/error.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Cells: one value of a column, as CSV and JSON text                                       */

#define NUM_BUF 40
#define CELL_TEXT 512

typedef struct cell {
    int is_str;   /* 1: a string; 0: number text, written raw */
    int is_null;  /* JSON null (CSV: the column's documented sentinel, already in text) */
    char text[CELL_TEXT];
} cell;

/* The shortest of %.15g, %.16g, %.17g that reads back to exactly d (17 always does). */
static void format_double(char *buf, size_t len, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            return;
    }
}

static void cell_str(cell *c, const char *s)
{
    c->is_str = 1;
    c->is_null = 0;
    snprintf(c->text, sizeof c->text, "%s", s);
}

static void cell_u64(cell *c, uint64_t v)
{
    c->is_str = c->is_null = 0;
    snprintf(c->text, sizeof c->text, "%" PRIu64, v);
}

static int cell_double(cell *c, double d, const char *what, kvp_error *err)
{
    c->is_str = c->is_null = 0;
    if (!isfinite(d))
        return kvp_error_set(err, KVP_ERANGE, "%s is %g, which a report cannot hold", what, d);
    format_double(c->text, sizeof c->text, d);
    return 0;
}

/* The per-tier and per-link cells of a result (docs/MODEL.md "Tiers beyond two"), after the
 * fixed fields: tier k's KV reads served, bytes read, written, moved in and out, busy time;
 * link j's bytes up and down and busy time each way; then, for a trace of several streams,
 * the per-sequence cells (docs/MODEL.md "Streams"): sequence q's prompt, steps, KV bytes read
 * from HBM and from below, promoted and demoted (seq<q>_...). */
typedef struct tier_cell {
    char name[40];
    char text[NUM_BUF];
} tier_cell;
#define SEQ_CELLS 6
#define MAX_TIER_CELLS (KVP_MAX_TIERS * 6 + KVP_MAX_TIERS * 4 + KVP_MAX_SEQUENCES * SEQ_CELLS)

static int tier_cells(const kvp_result *r, tier_cell *out, kvp_error *err)
{
    int n = 0;
    if (r->tiers > KVP_MAX_TIERS || r->links >= KVP_MAX_TIERS)
        return kvp_error_set(err, KVP_EINVAL, "policy %s: %u tiers, %u links", r->policy,
                             r->tiers, r->links);
    for (uint32_t k = 0; k < r->tiers; k++) {
        const uint64_t u[] = {r->tier_kv_read[k], r->tier_read[k], r->tier_write[k],
                              r->tier_moved_in[k], r->tier_moved_out[k]};
        static const char *const un[] = {"kv_read_bytes", "read_bytes", "write_bytes",
                                         "moved_in_bytes", "moved_out_bytes"};
        for (size_t i = 0; i < 5; i++, n++) {
            snprintf(out[n].name, sizeof out[n].name, "tier%u_%s", k, un[i]);
            snprintf(out[n].text, sizeof out[n].text, "%" PRIu64, u[i]);
        }
        if (!isfinite(r->tier_busy_s[k]))
            return kvp_error_set(err, KVP_ERANGE, "policy %s: tier %u busy time is not finite",
                                 r->policy, k);
        snprintf(out[n].name, sizeof out[n].name, "tier%u_busy_s", k);
        format_double(out[n++].text, sizeof out[n].text, r->tier_busy_s[k]);
    }
    for (uint32_t j = 1; j <= r->links; j++) {
        snprintf(out[n].name, sizeof out[n].name, "link%u_up_bytes", j);
        snprintf(out[n++].text, sizeof out[n].text, "%" PRIu64, r->link_up_bytes[j]);
        snprintf(out[n].name, sizeof out[n].name, "link%u_down_bytes", j);
        snprintf(out[n++].text, sizeof out[n].text, "%" PRIu64, r->link_down_bytes[j]);
        if (!isfinite(r->link_up_busy_s[j]) || !isfinite(r->link_down_busy_s[j]))
            return kvp_error_set(err, KVP_ERANGE, "policy %s: link %u busy time is not finite",
                                 r->policy, j);
        snprintf(out[n].name, sizeof out[n].name, "link%u_up_busy_s", j);
        format_double(out[n++].text, sizeof out[n].text, r->link_up_busy_s[j]);
        snprintf(out[n].name, sizeof out[n].name, "link%u_down_busy_s", j);
        format_double(out[n++].text, sizeof out[n].text, r->link_down_busy_s[j]);
    }
    if (r->sequences > KVP_MAX_SEQUENCES)
        return kvp_error_set(err, KVP_EINVAL, "policy %s: %u sequences", r->policy,
                             r->sequences);
    for (uint32_t q = 0; q < r->sequences; q++) {
        const struct kvp_seq_result *sq = &r->seq[q];
        const uint64_t u[SEQ_CELLS] = {sq->prompt,         sq->steps,
                                       sq->kv_read_hbm,    sq->kv_read_dram,
                                       sq->promoted_bytes, sq->demoted_bytes};
        static const char *const un[SEQ_CELLS] = {"prompt", "steps", "kv_read_hbm_bytes",
                                                  "kv_read_dram_bytes", "promoted_bytes",
                                                  "demoted_bytes"};
        for (size_t i = 0; i < SEQ_CELLS; i++, n++) {
            snprintf(out[n].name, sizeof out[n].name, "seq%u_%s", q, un[i]);
            snprintf(out[n].text, sizeof out[n].text, "%" PRIu64, u[i]);
        }
    }
    return n;
}

/* Names the report file in a message about its content. */
static int prefix_path(kvp_error *err, const char *path, int rc)
{
    if (err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        kvp_error_set(err, rc, "%s: %s", path, msg);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The result columns, in order (docs/CLI.md "Reports")                                     */

typedef enum col_kind {
    CK_STR,    /* char[] member */
    CK_DOUBLE, /* double member */
    CK_U64,    /* uint64_t member */
    CK_U32,    /* uint32_t member */
    CK_SLOTS,  /* uint32_t; UINT32_MAX (no limit): null in JSON, -1 in CSV */
    CK_BUSY,   /* a tier's or link's busy time, from the counters; arg: which */
    CK_SA_W,   /* sa's best W; null / -1 for other policies */
    CK_SA_R,   /* sa's best R; null / -1 */
    CK_CHOSEN  /* what a searching policy chose (params, where it differs from the spec); null /
                * "" for the others */
} col_kind;

enum { BUSY_HBM, BUSY_DRAM, BUSY_UP, BUSY_DOWN };

typedef struct col {
    const char *name; /* JSON key and CSV column, with its unit */
    col_kind kind;
    size_t offset; /* into kvp_result */
    int arg;
} col;

#define COL(name, kind, member) {name, kind, offsetof(kvp_result, member), 0}
#define COLX(name, kind, arg) {name, kind, 0, arg}

static const col result_cols[] = {
    COL("policy", CK_STR, policy),
    COL("spec", CK_STR, spec),
    /* JSON: "params" (the spec's values, typed) goes here */
    COL("total_time_s", CK_DOUBLE, total_time_s),
    COL("throughput_tok_s", CK_DOUBLE, throughput_tok_s),
    COL("speedup_vs_static", CK_DOUBLE, speedup_vs_static),
    COL("speedup_vs_unlimited", CK_DOUBLE, speedup_vs_unlimited),
    COL("hbm_hit_rate_kv", CK_DOUBLE, hbm_hit_rate_kv),
    COL("hbm_hit_rate_all", CK_DOUBLE, hbm_hit_rate_all),
    COLX("hbm_busy_s", CK_BUSY, BUSY_HBM),
    COLX("dram_busy_s", CK_BUSY, BUSY_DRAM),
    COLX("link_up_busy_s", CK_BUSY, BUSY_UP),
    COLX("link_down_busy_s", CK_BUSY, BUSY_DOWN),
    COL("kv_read_hbm_bytes", CK_U64, kv_read_hbm),
    COL("kv_read_dram_bytes", CK_U64, kv_read_dram),
    COL("hbm_read_bytes", CK_U64, hbm_read),
    COL("hbm_write_bytes", CK_U64, hbm_write),
    COL("dram_read_bytes", CK_U64, dram_read),
    COL("dram_write_bytes", CK_U64, dram_write),
    COL("link_up_bytes", CK_U64, link_up),
    COL("link_down_bytes", CK_U64, link_down),
    COL("promoted_bytes", CK_U64, promoted_bytes),
    COL("demoted_bytes", CK_U64, demoted_bytes),
    COL("weight_read_bytes", CK_U64, weight_read),
    COL("block_tokens", CK_U32, block_tokens),
    COL("slots", CK_SLOTS, slots),
    COL("lower_bound_s", CK_DOUBLE, lower_bound_s),
    COL("dual_iterations", CK_U32, dual_iterations),
    COLX("chosen", CK_CHOSEN, 0),
    COLX("sa_best_W", CK_SA_W, 0),
    COLX("sa_best_R", CK_SA_R, 0),
    COL("sa_evaluations", CK_U32, sa_evaluations),
    COL("online", CK_U32, online),
};

#define NCOLS (sizeof result_cols / sizeof *result_cols)
#define PARAMS_AFTER 2 /* JSON's "params" follows the first two columns */

static int is_sa(const kvp_result *r) { return strcmp(r->policy, "sa") == 0; }

/* The busy time of a tier or link over the run: its bytes over its bandwidth (HBM's with the
 * weights), as each step's terms of docs/MODEL.md summed. */
static double busy_time(const kvp_scenario *sc, const kvp_result *r, int which)
{
    switch (which) {
    case BUSY_HBM:
        return ((double)r->weight_read + (double)r->hbm_read + (double)r->hbm_write) /
               sc->hbm_bandwidth;
    case BUSY_DRAM:
        return ((double)r->dram_read + (double)r->dram_write) / sc->dram_bandwidth;
    case BUSY_UP:
        return (double)r->link_up / sc->link_bandwidth;
    default:
        return (double)r->link_down / sc->link_bandwidth;
    }
}

/* sa's best point, parsed from its params ("lookahead:W=18:R=0.6"); 0 if there is none. */
static int sa_best(const kvp_result *r, kvp_policy_spec *best)
{
    kvp_error e;
    if (!is_sa(r) || kvp_policy_parse(best, r->params, &e) < 0)
        return 0;
    return 1;
}

static double spec_value(const kvp_policy_spec *ps, const char *name)
{
    size_t np;
    const kvp_policy_param *pp = kvp_policy_params(ps->ops, &np);
    for (size_t i = 0; i < np; i++)
        if (strcmp(pp[i].name, name) == 0)
            return ps->value[i];
    return -1;
}

static int col_cell(const kvp_scenario *sc, const kvp_result *r, const col *k, cell *c,
                    kvp_error *err)
{
    const char *p = (const char *)r + k->offset;
    kvp_policy_spec best;
    char what[96];
    snprintf(what, sizeof what, "policy %s: %s", r->policy, k->name);
    memset(c, 0, sizeof *c);
    switch (k->kind) {
    case CK_STR:
        cell_str(c, p);
        return 0;
    case CK_DOUBLE: {
        double d;
        memcpy(&d, p, sizeof d);
        return cell_double(c, d, what, err);
    }
    case CK_U64: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        cell_u64(c, v);
        return 0;
    }
    case CK_U32:
    case CK_SLOTS: {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        if (k->kind == CK_SLOTS && v == UINT32_MAX) {
            snprintf(c->text, sizeof c->text, "-1");
            c->is_null = 1;
        } else {
            cell_u64(c, v);
        }
        return 0;
    }
    case CK_BUSY:
        return cell_double(c, busy_time(sc, r, k->arg), what, err);
    case CK_SA_W:
    case CK_SA_R:
        if (!sa_best(r, &best)) {
            snprintf(c->text, sizeof c->text, "-1");
            c->is_null = 1;
            return 0;
        }
        return cell_double(c, spec_value(&best, k->kind == CK_SA_W ? "W" : "R"), what, err);
    case CK_CHOSEN:
        if (strcmp(r->params, r->spec) == 0) {
            cell_str(c, "");
            c->is_null = 1;
            return 0;
        }
        cell_str(c, r->params);
        return 0;
    }
    return kvp_error_set(err, KVP_EINVAL, "report: column %s has no kind", k->name);
}

/* ---------------------------------------------------------------------------------------- */
/* The scenario columns (CSV) and object (JSON)                                             */

#define MOD_MAX 32

/* "hbm_capacity=1000819200;weight_bytes=0": the preset's parameters that --set changed. */
static void modified_text(const kvp_scenario *sc, const char *kind, char *buf, size_t len)
{
    const kvp_param_info *mod[MOD_MAX];
    int n = kvp_preset_modified(sc, kind, mod, MOD_MAX);
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && i < MOD_MAX && used < len; i++) {
        char v[64];
        kvp_param_format(sc, mod[i], v, sizeof v);
        int w = snprintf(buf + used, len - used, "%s%s=%s", i ? ";" : "", mod[i]->name, v);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* A parameter's value as a cell: bytes and counts exact integers, fractions and bandwidths
 * doubles that read back exactly, the variation a string. */
static int param_cell(const kvp_scenario *sc, const kvp_param_info *p, cell *c, kvp_error *err)
{
    const char *at = (const char *)sc + p->offset;
    memset(c, 0, sizeof *c);
    switch (p->kind) {
    case KVP_PK_BYTES:
    case KVP_PK_U64: {
        uint64_t v;
        memcpy(&v, at, sizeof v);
        cell_u64(c, v);
        return 0;
    }
    case KVP_PK_COUNT: {
        uint32_t v;
        memcpy(&v, at, sizeof v);
        cell_u64(c, v);
        return 0;
    }
    case KVP_PK_BANDWIDTH:
    case KVP_PK_BANDWIDTH_OPT:
    case KVP_PK_FRACTION: {
        double v;
        memcpy(&v, at, sizeof v);
        char what[80];
        snprintf(what, sizeof what, "scenario: %s", p->name);
        return cell_double(c, v, what, err);
    }
    case KVP_PK_VARIATION: {
        char buf[64];
        if (kvp_param_format(sc, p, buf, sizeof buf) < 0)
            return kvp_error_set(err, KVP_EINVAL, "scenario: cannot format %s", p->name);
        cell_str(c, buf);
        return 0;
    }
    }
    return kvp_error_set(err, KVP_EINVAL, "scenario: %s has no kind", p->name);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON objects, shared by run and study reports                                            */

static int add_cell(cJSON *obj, const char *name, const cell *c)
{
    cJSON *item = c->is_null ? cJSON_AddNullToObject(obj, name)
                  : c->is_str ? cJSON_AddStringToObject(obj, name, c->text)
                              : cJSON_AddRawToObject(obj, name, c->text);
    return item ? 0 : KVP_ENOMEM;
}

/* {"W": 16, "R": 0.5}: a spec's values, whole numbers as integers. */
static cJSON *params_object(const char *spec)
{
    cJSON *o = cJSON_CreateObject();
    kvp_policy_spec ps;
    kvp_error e;
    if (!o || kvp_policy_parse(&ps, spec, &e) < 0)
        return o;
    size_t np;
    const kvp_policy_param *pp = kvp_policy_params(ps.ops, &np);
    for (size_t i = 0; i < np; i++) {
        char buf[NUM_BUF];
        if (pp[i].integer)
            snprintf(buf, sizeof buf, "%.0f", ps.value[i]);
        else
            format_double(buf, sizeof buf, ps.value[i]);
        if (!cJSON_AddRawToObject(o, pp[i].name, buf)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* with_tiers: the per-tier and per-link keys follow (a run's report; a study's results keep
 * the fixed keys only, as its points may come back from a sweep's flat cells). */
static cJSON *json_result(const kvp_scenario *sc, const kvp_result *r, int with_tiers,
                          kvp_error *err)
{
    cJSON *o = cJSON_CreateObject();
    int rc = o ? 0 : KVP_ENOMEM;
    for (size_t i = 0; i < NCOLS && rc >= 0; i++) {
        cell c;
        if (i == PARAMS_AFTER) {
            cJSON *p = params_object(r->spec);
            if (!p || !cJSON_AddItemToObject(o, "params", p)) {
                cJSON_Delete(p);
                rc = KVP_ENOMEM;
                break;
            }
        }
        if (result_cols[i].kind == CK_SA_W) { /* JSON: one typed object for W and R */
            kvp_policy_spec best;
            cJSON *b = sa_best(r, &best) ? params_object(r->params) : cJSON_CreateNull();
            if (!b || !cJSON_AddItemToObject(o, "sa_best", b)) {
                cJSON_Delete(b);
                rc = KVP_ENOMEM;
            }
            continue;
        }
        if (result_cols[i].kind == CK_SA_R)
            continue;
        if ((rc = col_cell(sc, r, &result_cols[i], &c, err)) < 0)
            break;
        rc = add_cell(o, result_cols[i].name, &c);
    }
    /* the per-tier and per-link columns follow the fixed ones */
    tier_cell cells[MAX_TIER_CELLS];
    int nc = rc < 0 || !with_tiers ? 0 : tier_cells(r, cells, err);
    if (nc < 0)
        rc = nc;
    for (int i = 0; i < nc && rc >= 0; i++)
        if (!cJSON_AddRawToObject(o, cells[i].name, cells[i].text))
            rc = KVP_ENOMEM;
    if (rc < 0) {
        if (rc == KVP_ENOMEM)
            kvp_error_set(err, KVP_ENOMEM, "out of memory");
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int add_modified(cJSON *o, const kvp_scenario *sc, const char *kind, const char *key)
{
    const kvp_param_info *mod[MOD_MAX];
    int n = kvp_preset_modified(sc, kind, mod, MOD_MAX);
    cJSON *m = cJSON_AddObjectToObject(o, key);
    if (!m)
        return KVP_ENOMEM;
    for (int i = 0; i < n && i < MOD_MAX; i++) {
        cell c;
        if (param_cell(sc, mod[i], &c, NULL) < 0 || add_cell(m, mod[i]->name, &c) < 0)
            return KVP_ENOMEM;
    }
    return 0;
}

static cJSON *json_scenario(const kvp_scenario *sc, kvp_error *err)
{
    cJSON *o = cJSON_CreateObject();
    size_t np;
    const kvp_param_info *params = kvp_params(&np);
    int rc = o ? 0 : KVP_ENOMEM;
    for (size_t i = 0; i < np && rc >= 0; i++) {
        cell c;
        if (!kvp_param_in_use(sc, &params[i])) /* a tier's or link's the machine lacks */
            continue;
        if ((rc = param_cell(sc, &params[i], &c, err)) >= 0)
            rc = add_cell(o, params[i].name, &c);
    }
    kvp_derived d;
    if (rc >= 0 && (rc = kvp_scenario_derive(sc, &d, err)) >= 0) {
        cell tb, kb;
        cell_u64(&tb, d.tok_bytes);
        cell_u64(&kb, d.kv_budget);
        if (!cJSON_AddStringToObject(o, "hw", sc->hw_name) ||
            add_modified(o, sc, "hw", "hw_modified") < 0 ||
            !cJSON_AddStringToObject(o, "model", sc->model_name) ||
            add_modified(o, sc, "model", "model_modified") < 0 ||
            add_cell(o, "tok_bytes", &tb) < 0 || add_cell(o, "kv_budget", &kb) < 0)
            rc = KVP_ENOMEM;
    }
    if (rc < 0) {
        if (rc == KVP_ENOMEM)
            kvp_error_set(err, KVP_ENOMEM, "out of memory");
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing a file (kvp_out: stdout, devices, links, temporary names)                        */

typedef struct out_file {
    kvp_out *out;
    FILE *f;
} out_file;

static int out_open(out_file *o, const char *path, kvp_error *err)
{
    int rc = kvp_out_open(&o->out, path, err);
    o->f = rc < 0 ? NULL : kvp_out_file(o->out);
    return rc;
}

static int out_close(out_file *o, int ok, kvp_error *err)
{
    int rc = kvp_out_close(o->out, ok, err);
    o->out = NULL;
    o->f = NULL;
    return rc;
}

/* cJSON's text of an object printed at the top, indented as if nested depth objects down:
 * depth tabs after every newline.  Takes text (cJSON_free'd); the result is malloc'd. */
static char *indented(char *text, int depth)
{
    size_t n = 0, len = strlen(text);
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    char *out = malloc(len + n * (size_t)depth + 1), *q = out;
    for (const char *p = text; out && *p; p++) {
        *q++ = *p;
        if (*p == '\n')
            for (int d = 0; d < depth; d++)
                *q++ = '\t';
    }
    if (out)
        *q = 0;
    cJSON_free(text);
    return out;
}

static char *object_text(cJSON *o, int depth, kvp_error *err)
{
    char *t = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    char *out = t ? indented(t, depth) : NULL;
    if (!out && (!err || !err->code))
        kvp_error_set(err, KVP_ENOMEM, "out of memory");
    return out;
}

char *kvp_result_json(const kvp_scenario *sc, const kvp_result *r, int depth, kvp_error *err)
{
    if (err)
        err->code = 0;
    return object_text(json_result(sc, r, 0, err), depth, err);
}

char *kvp_scenario_json(const kvp_scenario *sc, int depth, kvp_error *err)
{
    if (err)
        err->code = 0;
    return object_text(json_scenario(sc, err), depth, err);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                     */

static int json_build(const kvp_report *rep, cJSON *root, kvp_error *err)
{
    int rc = 0;
    char ver[NUM_BUF];
    snprintf(ver, sizeof ver, "%d", KVP_SCHEMA_VERSION);
    if (!cJSON_AddRawToObject(root, "schema_version", ver) ||
        !cJSON_AddStringToObject(root, "kvplace_version", KVP_VERSION))
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    cJSON *sc = json_scenario(rep->sc, err);
    if (!sc)
        return err && err->code ? err->code : KVP_ENOMEM;
    cJSON_AddItemToObject(root, "scenario", sc);
    cJSON *t = cJSON_AddObjectToObject(root, "trace");
    cell pr, st, ly, sd;
    cell_u64(&pr, kvp_trace_prompt(rep->tr));
    cell_u64(&st, kvp_trace_steps(rep->tr));
    cell_u64(&ly, kvp_trace_layers(rep->tr));
    cell_u64(&sd, rep->sc->seed);
    if (!t || !cJSON_AddStringToObject(t, "source", kvp_trace_name(rep->tr)) ||
        add_cell(t, "prompt", &pr) < 0 || add_cell(t, "steps", &st) < 0 ||
        add_cell(t, "layers", &ly) < 0 || add_cell(root, "seed", &sd) < 0)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    if (kvp_trace_stream_count(rep->tr) > 1) { /* docs/MODEL.md "Streams" */
        cell ns, nh, nq;
        cell_u64(&ns, kvp_trace_stream_count(rep->tr));
        cell_u64(&nh, kvp_trace_heads(rep->tr));
        cell_u64(&nq, kvp_trace_sequence_count(rep->tr));
        if (add_cell(t, "streams", &ns) < 0 || add_cell(t, "heads", &nh) < 0 ||
            add_cell(t, "sequences", &nq) < 0)
            return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    if (!arr)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (size_t i = 0; i < rep->nres && rc >= 0; i++) {
        cJSON *r = json_result(rep->sc, &rep->res[i], 1, err);
        if (!r)
            return err && err->code ? err->code : KVP_ENOMEM;
        cJSON_AddItemToArray(arr, r);
    }
    return rc;
}

static int check_report(const kvp_report *rep, const char *path, kvp_error *err)
{
    if (!rep || !rep->sc || !rep->tr || (rep->nres && !rep->res))
        return kvp_error_set(err, KVP_EINVAL, "%s: report without a scenario, trace or "
                             "results", path);
    return 0;
}

/* The report's text, as the file holds it (newline included), in *out (kvp_free it). */
static int json_text(const kvp_report *rep, const char *path, char **out, kvp_error *err)
{
    *out = NULL;
    if (check_report(rep, path, err) < 0)
        return KVP_EINVAL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    if (err)
        err->code = 0;
    int rc = json_build(rep, root, err);
    char *text = NULL;
    if (rc >= 0 && !(text = cJSON_Print(root)))
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
    cJSON_Delete(root);
    if (rc < 0)
        return prefix_path(err, path, rc);
    size_t len = strlen(text);
    *out = malloc(len + 2);
    if (*out) {
        memcpy(*out, text, len);
        (*out)[len] = '\n';
        (*out)[len + 1] = 0;
    }
    cJSON_free(text);
    return *out ? 0 : kvp_error_set(err, KVP_ENOMEM, "out of memory");
}

int kvp_report_json_text(const kvp_report *rep, char **out, kvp_error *err)
{
    return json_text(rep, "report", out, err);
}

void kvp_free(void *p)
{
    free(p);
}

int kvp_report_json(const kvp_report *rep, const char *path, kvp_error *err)
{
    char *text;
    int rc = json_text(rep, path, &text, err);
    if (rc < 0)
        return rc;
    out_file o;
    if ((rc = out_open(&o, path, err)) >= 0) {
        fputs(text, o.f);
        rc = out_close(&o, 1, err);
    }
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* CSV (RFC 4180): long format, the scenario on every row                                   */

void kvp_csv_cell(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The scenario's columns: names and cells (the same for every row of a run). */
#define SCN_FIXED 5 /* hw, hw_modified, model, model_modified, trace */
#define SCN_TAIL 2  /* tok_bytes, kv_budget */

static int scenario_cells(const kvp_report *rep, const char **names, cell *cells, size_t max,
                          size_t *n, kvp_error *err)
{
    size_t np, k = 0;
    const kvp_param_info *params = kvp_params(&np);
    if (np + SCN_FIXED + SCN_TAIL > max)
        return kvp_error_set(err, KVP_EINVAL, "report: too many scenario columns");
    const kvp_scenario *sc = rep->sc;
    char buf[CELL_TEXT];
    names[k] = "hw";
    cell_str(&cells[k++], sc->hw_name);
    names[k] = "hw_modified";
    modified_text(sc, "hw", buf, sizeof buf);
    cell_str(&cells[k++], buf);
    names[k] = "model";
    cell_str(&cells[k++], sc->model_name);
    names[k] = "model_modified";
    modified_text(sc, "model", buf, sizeof buf);
    cell_str(&cells[k++], buf);
    names[k] = "trace";
    cell_str(&cells[k++], kvp_trace_name(rep->tr));
    for (size_t i = 0; i < np; i++) {
        if (!kvp_param_in_use(sc, &params[i])) /* a tier's or link's the machine lacks */
            continue;
        int rc = param_cell(sc, &params[i], &cells[k], err);
        if (rc < 0)
            return rc;
        names[k++] = params[i].name;
    }
    kvp_derived d;
    int rc = kvp_scenario_derive(sc, &d, err);
    if (rc < 0)
        return rc;
    names[k] = "tok_bytes";
    cell_u64(&cells[k++], d.tok_bytes);
    names[k] = "kv_budget";
    cell_u64(&cells[k++], d.kv_budget);
    *n = k;
    return 0;
}

#define MAX_SCN_COLS 256

int kvp_report_csv(const kvp_report *rep, const char *path, kvp_error *err)
{
    int rc;
    if ((rc = check_report(rep, path, err)) < 0)
        return rc;
    const char *snames[MAX_SCN_COLS];
    cell *scells = calloc(MAX_SCN_COLS, sizeof *scells);
    cell *rcells = calloc(rep->nres * NCOLS + 1, sizeof *rcells);
    tier_cell *tcells = calloc(rep->nres * MAX_TIER_CELLS + 1, sizeof *tcells);
    size_t ns = 0;
    int ntc = 0;
    if (!scells || !rcells || !tcells) {
        free(scells);
        free(rcells);
        free(tcells);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    }
    /* Every cell first, so that a value with no text form fails before any file exists. */
    rc = scenario_cells(rep, snames, scells, MAX_SCN_COLS, &ns, err);
    for (size_t r = 0; r < rep->nres && rc >= 0; r++)
        for (size_t i = 0; i < NCOLS && rc >= 0; i++)
            rc = col_cell(rep->sc, &rep->res[r], &result_cols[i], &rcells[r * NCOLS + i], err);
    /* The per-tier columns follow: every result of a report is of one machine. */
    for (size_t r = 0; r < rep->nres && rc >= 0; r++) {
        int nc = tier_cells(&rep->res[r], &tcells[r * MAX_TIER_CELLS], err);
        if (nc < 0)
            rc = nc;
        else if (r && nc != ntc)
            rc = kvp_error_set(err, KVP_EINVAL, "results of machines with different tiers "
                               "cannot share a CSV");
        ntc = nc;
    }
    out_file o = {0};
    if (rc < 0)
        rc = prefix_path(err, path, rc);
    else
        rc = out_open(&o, path, err);
    if (rc >= 0) {
        for (size_t i = 0; i < ns; i++)
            fprintf(o.f, "%s%s", i ? "," : "", snames[i]);
        for (size_t i = 0; i < NCOLS; i++)
            fprintf(o.f, ",%s", result_cols[i].name);
        for (int i = 0; i < ntc; i++)
            fprintf(o.f, ",%s", tcells[i].name);
        fputc('\n', o.f);
        for (size_t r = 0; r < rep->nres; r++) {
            for (size_t i = 0; i < ns + NCOLS; i++) {
                const cell *c = i < ns ? &scells[i] : &rcells[r * NCOLS + i - ns];
                if (i)
                    fputc(',', o.f);
                if (c->is_str)
                    kvp_csv_cell(o.f, c->text);
                else
                    fputs(c->text, o.f);
            }
            for (int i = 0; i < ntc; i++)
                fprintf(o.f, ",%s", tcells[r * MAX_TIER_CELLS + (size_t)i].text);
            fputc('\n', o.f);
        }
        rc = out_close(&o, 1, err);
    }
    free(scells);
    free(rcells);
    free(tcells);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The sa search's trajectory                                                               */

int kvp_report_sa_log(const kvp_sa_event *ev, size_t n, const char *path, kvp_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(ev[i].temperature) || !isfinite(ev[i].time_s) ||
            !isfinite(ev[i].best_time_s) || !isfinite(ev[i].R))
            return kvp_error_set(err, KVP_ERANGE, "%s: event %zu of the search is not finite",
                                 path, i);
    out_file o;
    int rc = out_open(&o, path, err);
    if (rc < 0)
        return rc;
    fputs("search,level,move,temperature_s,W,R,time_s,accepted,best_time_s,evaluations\n",
          o.f);
    unsigned search = 0;
    for (size_t i = 0; i < n; i++) {
        char t[NUM_BUF], r[NUM_BUF], ts[NUM_BUF], best[NUM_BUF];
        /* Each search opens with its starting point, level 0 move 0. */
        if (i && ev[i].level == 0 && ev[i].move == 0)
            search++;
        format_double(t, sizeof t, ev[i].temperature);
        format_double(r, sizeof r, ev[i].R);
        format_double(ts, sizeof ts, ev[i].time_s);
        format_double(best, sizeof best, ev[i].best_time_s);
        fprintf(o.f, "%u,%u,%u,%s,%u,%s,%s,%d,%s,%u\n", search, ev[i].level, ev[i].move, t,
                ev[i].W, r, ts, ev[i].accepted, best, ev[i].evaluations);
    }
    return out_close(&o, 1, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Schema 1's result fields: the flat, round-trippable columns kvplace sweep stores and      */
/* reads back (its own files; the reports above are schema 2)                              */

typedef enum field_kind {
    FK_STRING, /* char[] */
    FK_DOUBLE, /* double */
    FK_U64,    /* uint64_t */
    FK_U32,    /* uint32_t */
    FK_SLOTS   /* uint32_t, UINT32_MAX meaning "no limit": null in JSON, empty in CSV */
} field_kind;

typedef struct result_field {
    const char *name; /* JSON key and CSV column, with its unit */
    field_kind kind;
    size_t offset; /* into kvp_result */
} result_field;

#define RF(name, kind, member) {name, kind, offsetof(kvp_result, member)}

static const result_field result_fields[] = {
    RF("policy", FK_STRING, policy),
    RF("spec", FK_STRING, spec),
    RF("params", FK_STRING, params),
    RF("total_time_s", FK_DOUBLE, total_time_s),
    RF("throughput_tok_s", FK_DOUBLE, throughput_tok_s),
    RF("hbm_hit_rate_kv", FK_DOUBLE, hbm_hit_rate_kv),
    RF("hbm_hit_rate_all", FK_DOUBLE, hbm_hit_rate_all),
    RF("promoted_bytes", FK_U64, promoted_bytes),
    RF("demoted_bytes", FK_U64, demoted_bytes),
    RF("speedup_vs_static", FK_DOUBLE, speedup_vs_static),
    RF("speedup_vs_unlimited", FK_DOUBLE, speedup_vs_unlimited),
    RF("kv_read_hbm_bytes", FK_U64, kv_read_hbm),
    RF("kv_read_dram_bytes", FK_U64, kv_read_dram),
    RF("hbm_read_bytes", FK_U64, hbm_read),
    RF("hbm_write_bytes", FK_U64, hbm_write),
    RF("dram_read_bytes", FK_U64, dram_read),
    RF("dram_write_bytes", FK_U64, dram_write),
    RF("link_up_bytes", FK_U64, link_up),
    RF("link_down_bytes", FK_U64, link_down),
    RF("weight_read_bytes", FK_U64, weight_read),
    RF("block_tokens", FK_U32, block_tokens),
    RF("slots", FK_SLOTS, slots),
    RF("lower_bound_s", FK_DOUBLE, lower_bound_s),
    RF("dual_iterations", FK_U32, dual_iterations),
    RF("online", FK_U32, online),
};

#define NFIELDS (sizeof result_fields / sizeof *result_fields)

static const void *field_ptr(const kvp_result *r, const result_field *f)
{
    return (const char *)r + f->offset;
}

/* Formats field f of r as JSON number text or (csv) a CSV cell; returns 0, or < 0 for a
 * value that has no text form (non-finite).  Strings are not handled here. */
static int format_number(const kvp_result *r, const result_field *f, int csv, char *buf,
                         size_t len, kvp_error *err)
{
    const void *p = field_ptr(r, f);
    switch (f->kind) {
    case FK_DOUBLE: {
        double d;
        memcpy(&d, p, sizeof d);
        if (!isfinite(d))
            return kvp_error_set(err, KVP_ERANGE, "policy %s: %s is %g, which a report "
                                 "cannot hold", r->policy, f->name, d);
        format_double(buf, len, d);
        return 0;
    }
    case FK_U64: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        snprintf(buf, len, "%" PRIu64, v);
        return 0;
    }
    case FK_U32:
    case FK_SLOTS: {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        if (f->kind == FK_SLOTS && v == UINT32_MAX)
            snprintf(buf, len, "%s", csv ? "" : "null");
        else
            snprintf(buf, len, "%" PRIu32, v);
        return 0;
    }
    case FK_STRING:
        break;
    }
    return kvp_error_set(err, KVP_EINVAL, "report: field %s is not a number", f->name);
}

/* ---------------------------------------------------------------------------------------- */
/* ---------------------------------------------------------------------------------------- */
/* The result columns, one cell at a time (kvplace sweep lays them out in its own files)    */

size_t kvp_result_ncolumns(void) { return NFIELDS; }

const char *kvp_result_column(size_t i) { return i < NFIELDS ? result_fields[i].name : NULL; }

int kvp_result_cell(const kvp_result *r, size_t i, char *buf, size_t len, int *is_number,
                    kvp_error *err)
{
    if (!r || i >= NFIELDS || !buf || len < NUM_BUF)
        return kvp_error_set(err, KVP_EINVAL, "result cell %zu: no such column or no room", i);
    const result_field *f = &result_fields[i];
    if (is_number)
        *is_number = f->kind != FK_STRING;
    if (f->kind != FK_STRING)
        return format_number(r, f, 1, buf, len, err);
    const char *s = (const char *)field_ptr(r, f);
    if (strlen(s) >= len)
        return kvp_error_set(err, KVP_ERANGE, "result cell %s: no room", f->name);
    memcpy(buf, s, strlen(s) + 1);
    return 0;
}

void kvp_format_double(char *buf, size_t len, double d) { format_double(buf, len, d); }

/* The per-tier and per-link cells as fixed columns, for every tier and link a machine may
 * have (tier_cells names them the same way): empty where the result's machine has none. */
#define TIER_COLUMNS(k)                                                                      \
    "tier" #k "_kv_read_bytes", "tier" #k "_read_bytes", "tier" #k "_write_bytes",            \
        "tier" #k "_moved_in_bytes", "tier" #k "_moved_out_bytes", "tier" #k "_busy_s"
#define LINK_COLUMNS(j)                                                                      \
    "link" #j "_up_bytes", "link" #j "_down_bytes", "link" #j "_up_busy_s",                   \
        "link" #j "_down_busy_s"
static const char *const tier_column_names[] = {
    TIER_COLUMNS(0), TIER_COLUMNS(1), TIER_COLUMNS(2), TIER_COLUMNS(3), TIER_COLUMNS(4),
    TIER_COLUMNS(5), TIER_COLUMNS(6), TIER_COLUMNS(7), LINK_COLUMNS(1), LINK_COLUMNS(2),
    LINK_COLUMNS(3), LINK_COLUMNS(4), LINK_COLUMNS(5), LINK_COLUMNS(6), LINK_COLUMNS(7)};
_Static_assert(sizeof tier_column_names / sizeof *tier_column_names ==
                   KVP_MAX_TIERS * 6 + (KVP_MAX_TIERS - 1) * 4,
               "a column for every tier and link");
#define NTIER_COLUMNS (sizeof tier_column_names / sizeof *tier_column_names)

size_t kvp_result_ntier_columns(void) { return NTIER_COLUMNS; }

const char *kvp_result_tier_column(size_t i)
{
    return i < NTIER_COLUMNS ? tier_column_names[i] : NULL;
}

int kvp_result_tier_cell(const kvp_result *r, size_t i, char *buf, size_t len, kvp_error *err)
{
    if (!r || i >= NTIER_COLUMNS || !buf || len < NUM_BUF)
        return kvp_error_set(err, KVP_EINVAL, "tier cell %zu: no such column or no room", i);
    tier_cell cells[MAX_TIER_CELLS];
    int n = tier_cells(r, cells, err);
    if (n < 0)
        return n;
    buf[0] = 0;
    for (int k = 0; k < n; k++)
        if (strcmp(cells[k].name, tier_column_names[i]) == 0)
            memcpy(buf, cells[k].text, strlen(cells[k].text) + 1);
    return 0;
}


int kvp_result_parse_cell(kvp_result *r, size_t i, const char *text, kvp_error *err)
{
    if (!r || i >= NFIELDS || !text)
        return kvp_error_set(err, KVP_EINVAL, "result cell %zu: no such column", i);
    const result_field *f = &result_fields[i];
    void *p = (char *)r + f->offset;
    char *end = NULL;
    errno = 0;
    switch (f->kind) {
    case FK_STRING: {
        size_t cap = f->offset == offsetof(kvp_result, policy) ? sizeof r->policy
                     : f->offset == offsetof(kvp_result, spec) ? sizeof r->spec
                                                               : sizeof r->params;
        if (strlen(text) >= cap)
            return kvp_error_set(err, KVP_ERANGE, "%s: \"%s\" is too long", f->name, text);
        memcpy(p, text, strlen(text) + 1);
        return 0;
    }
    case FK_DOUBLE: {
        double d = strtod(text, &end);
        if (end == text || *end || !isfinite(d))
            break;
        memcpy(p, &d, sizeof d);
        return 0;
    }
    case FK_U64: {
        unsigned long long v = strtoull(text, &end, 10);
        if (end == text || *end || errno || text[0] == '-')
            break;
        uint64_t u = v;
        memcpy(p, &u, sizeof u);
        return 0;
    }
    case FK_U32:
    case FK_SLOTS: {
        uint32_t u = UINT32_MAX;
        if (f->kind == FK_SLOTS && !text[0]) {
            memcpy(p, &u, sizeof u);
            return 0;
        }
        unsigned long long v = strtoull(text, &end, 10);
        if (end == text || *end || errno || text[0] == '-' || v >= UINT32_MAX)
            break;
        u = (uint32_t)v;
        memcpy(p, &u, sizeof u);
        return 0;
    }
    }
    return kvp_error_set(err, KVP_EFORMAT, "%s: \"%s\" is not a value of this column", f->name,
                         text);
}
