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
/* The result fields, in column order                                                       */

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

/* Room for "%.17g" of any double and for any uint64_t. */
#define NUM_BUF 40

static const void *field_ptr(const kvp_result *r, const result_field *f)
{
    return (const char *)r + f->offset;
}

/* The shortest of %.15g, %.16g, %.17g that reads back to exactly d (17 always does). */
static void format_double(char *buf, size_t len, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            return;
    }
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

/* The per-tier and per-link cells of a result (docs/MODEL.md "Tiers beyond two"), after the
 * fixed fields: tier k's KV reads served, bytes read, written, moved in and out, busy time;
 * link j's bytes up and down and busy time each way. */
typedef struct tier_cell {
    char name[40];
    char text[NUM_BUF];
} tier_cell;
#define MAX_TIER_CELLS (KVP_MAX_TIERS * 6 + KVP_MAX_TIERS * 4)

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
/* Writing a file through a temporary name                                                  */

#define TMP_ATTEMPTS 100

typedef struct out_file {
    const char *path;
    char tmp[4096];
    FILE *f;
} out_file;

static int out_open(out_file *o, const char *path, kvp_error *err)
{
    o->path = path;
    o->f = NULL;
    /* O_EXCL on a name beside the target: rename() is atomic only within one file system,
     * and 0666 (less the umask) gives the file the permissions a plain fopen would. */
    for (unsigned i = 0; i < TMP_ATTEMPTS; i++) {
        int w = snprintf(o->tmp, sizeof o->tmp, "%s.tmp%ld-%u", path, (long)getpid(), i);
        if (w < 0 || (size_t)w >= sizeof o->tmp)
            return kvp_error_set(err, KVP_EIO, "%s: path too long", path);
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return kvp_error_set(err, KVP_EIO, "%s: cannot create: %s", path,
                                 strerror(errno));
        }
        o->f = fdopen(fd, "w");
        if (!o->f) {
            int e = errno;
            close(fd);
            unlink(o->tmp);
            return kvp_error_set(err, KVP_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        return 0;
    }
    return kvp_error_set(err, KVP_EIO, "%s: cannot find a free temporary name", path);
}

/* Closes the file; on success (ok) renames it into place, otherwise removes it. */
static int out_close(out_file *o, int ok, kvp_error *err)
{
    int rc = 0;
    if (!o->f)
        return 0;
    int werr = ferror(o->f);
    if (fclose(o->f) != 0 || werr) {
        if (ok)
            rc = kvp_error_set(err, KVP_EIO, "%s: write failed: %s", o->path,
                               strerror(errno));
        ok = 0;
    }
    o->f = NULL;
    if (ok && rename(o->tmp, o->path) != 0) {
        rc = kvp_error_set(err, KVP_EIO, "%s: cannot rename into place: %s", o->path,
                           strerror(errno));
        ok = 0;
    }
    if (!ok)
        unlink(o->tmp);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                     */

static int add_raw_u64(cJSON *obj, const char *name, uint64_t v, kvp_error *err)
{
    char buf[NUM_BUF];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_AddRawToObject(obj, name, buf) ? 0 : kvp_error_set(err, KVP_ENOMEM,
                                                                    "out of memory");
}

static int add_raw_double(cJSON *obj, const char *name, double v, kvp_error *err)
{
    char buf[NUM_BUF];
    if (!isfinite(v))
        return kvp_error_set(err, KVP_ERANGE, "scenario: %s is %g, which a report cannot "
                             "hold", name, v);
    format_double(buf, sizeof buf, v);
    return cJSON_AddRawToObject(obj, name, buf) ? 0 : kvp_error_set(err, KVP_ENOMEM,
                                                                    "out of memory");
}

static int json_scenario(cJSON *root, const kvp_scenario *sc, kvp_error *err)
{
    cJSON *o = cJSON_AddObjectToObject(root, "scenario");
    if (!o)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    size_t np;
    const kvp_param_info *params = kvp_params(&np);
    int rc = 0;
    for (size_t i = 0; i < np && rc >= 0; i++) {
        const kvp_param_info *p = &params[i];
        const char *at = (const char *)sc + p->offset;
        if (!kvp_param_in_use(sc, p))
            continue;
        switch (p->kind) {
        case KVP_PK_BYTES:
        case KVP_PK_U64: {
            uint64_t v;
            memcpy(&v, at, sizeof v);
            rc = add_raw_u64(o, p->name, v, err);
            break;
        }
        case KVP_PK_COUNT: {
            uint32_t v;
            memcpy(&v, at, sizeof v);
            rc = add_raw_u64(o, p->name, v, err);
            break;
        }
        case KVP_PK_BANDWIDTH:
        case KVP_PK_BANDWIDTH_OPT:
        case KVP_PK_FRACTION: {
            double v;
            memcpy(&v, at, sizeof v);
            rc = add_raw_double(o, p->name, v, err);
            break;
        }
        case KVP_PK_VARIATION: {
            char buf[64];
            if (kvp_param_format(sc, p, buf, sizeof buf) < 0)
                return kvp_error_set(err, KVP_EINVAL, "scenario: cannot format %s", p->name);
            rc = cJSON_AddStringToObject(o, p->name, buf)
                     ? 0
                     : kvp_error_set(err, KVP_ENOMEM, "out of memory");
            break;
        }
        }
    }
    if (rc < 0)
        return rc;
    kvp_derived d;
    if ((rc = kvp_scenario_derive(sc, &d, err)) < 0)
        return rc;
    if (!cJSON_AddStringToObject(o, "hw", sc->hw_name) ||
        !cJSON_AddStringToObject(o, "model", sc->model_name) ||
        add_raw_u64(o, "tok_bytes", d.tok_bytes, err) < 0 ||
        add_raw_u64(o, "kv_budget", d.kv_budget, err) < 0)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    return 0;
}

static int json_result(cJSON *arr, const kvp_result *r, kvp_error *err)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const result_field *f = &result_fields[i];
        cJSON *item;
        if (f->kind == FK_STRING) {
            item = cJSON_AddStringToObject(o, f->name, (const char *)field_ptr(r, f));
        } else {
            char buf[NUM_BUF];
            int rc = format_number(r, f, 0, buf, sizeof buf, err);
            if (rc < 0)
                return rc;
            item = cJSON_AddRawToObject(o, f->name, buf);
        }
        if (!item)
            return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    }
    tier_cell cells[MAX_TIER_CELLS];
    int nc = tier_cells(r, cells, err);
    for (int i = 0; i < nc; i++)
        if (!cJSON_AddRawToObject(o, cells[i].name, cells[i].text))
            return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    return nc < 0 ? nc : 0;
}

static int json_build(const kvp_report *rep, cJSON *root, kvp_error *err)
{
    int rc;
    if (!cJSON_AddStringToObject(root, "kvplace_version", KVP_VERSION))
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    if ((rc = json_scenario(root, rep->sc, err)) < 0)
        return rc;
    cJSON *t = cJSON_AddObjectToObject(root, "trace");
    if (!t || !cJSON_AddStringToObject(t, "source", kvp_trace_name(rep->tr)) ||
        add_raw_u64(t, "prompt", kvp_trace_prompt(rep->tr), err) < 0 ||
        add_raw_u64(t, "steps", kvp_trace_steps(rep->tr), err) < 0 ||
        add_raw_u64(t, "layers", kvp_trace_layers(rep->tr), err) < 0 ||
        add_raw_u64(root, "seed", rep->sc->seed, err) < 0)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    if (!arr)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    for (size_t i = 0; i < rep->nres; i++)
        if ((rc = json_result(arr, &rep->res[i], err)) < 0)
            return rc;
    return 0;
}

static int check_report(const kvp_report *rep, const char *path, kvp_error *err)
{
    if (!rep || !rep->sc || !rep->tr || (rep->nres && !rep->res))
        return kvp_error_set(err, KVP_EINVAL, "%s: report without a scenario, trace or "
                             "results", path);
    return 0;
}

int kvp_report_json(const kvp_report *rep, const char *path, kvp_error *err)
{
    if (check_report(rep, path, err) < 0)
        return KVP_EINVAL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    int rc = json_build(rep, root, err);
    char *text = NULL;
    if (rc >= 0 && !(text = cJSON_Print(root)))
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
    cJSON_Delete(root);
    if (rc < 0)
        return prefix_path(err, path, rc);
    out_file o;
    if ((rc = out_open(&o, path, err)) >= 0) {
        fputs(text, o.f);
        fputc('\n', o.f);
        rc = out_close(&o, 1, err);
    }
    cJSON_free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* CSV (RFC 4180)                                                                           */

static void csv_string(FILE *f, const char *s)
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

int kvp_report_csv(const kvp_report *rep, const char *path, kvp_error *err)
{
    /* Format every cell first, so that a value with no text form fails before any file
     * exists. */
    int rc;
    char buf[NUM_BUF];
    if ((rc = check_report(rep, path, err)) < 0)
        return rc;
    for (size_t r = 0; r < rep->nres; r++)
        for (size_t i = 0; i < NFIELDS; i++)
            if (result_fields[i].kind != FK_STRING &&
                (rc = format_number(&rep->res[r], &result_fields[i], 1, buf, sizeof buf,
                                    err)) < 0)
                return prefix_path(err, path, rc);
    /* The per-tier columns follow: every result of a report is of one machine. */
    tier_cell cells[MAX_TIER_CELLS];
    int ncells = 0;
    for (size_t r = 0; r < rep->nres; r++) {
        int nc = tier_cells(&rep->res[r], cells, err);
        if (nc < 0)
            return prefix_path(err, path, nc);
        if (r && nc != ncells)
            return kvp_error_set(err, KVP_EINVAL, "%s: results of machines with different "
                                 "tiers cannot share a CSV", path);
        ncells = nc;
    }
    out_file o;
    if ((rc = out_open(&o, path, err)) < 0)
        return rc;
    for (size_t i = 0; i < NFIELDS; i++)
        fprintf(o.f, "%s%s", i ? "," : "", result_fields[i].name);
    if (rep->nres) {
        tier_cells(&rep->res[0], cells, err);
        for (int i = 0; i < ncells; i++)
            fprintf(o.f, ",%s", cells[i].name);
    }
    fputc('\n', o.f);
    for (size_t r = 0; r < rep->nres; r++) {
        const kvp_result *res = &rep->res[r];
        for (size_t i = 0; i < NFIELDS; i++) {
            const result_field *f = &result_fields[i];
            if (i)
                fputc(',', o.f);
            if (f->kind == FK_STRING) {
                csv_string(o.f, (const char *)field_ptr(res, f));
            } else {
                format_number(res, f, 1, buf, sizeof buf, err);
                fputs(buf, o.f);
            }
        }
        tier_cells(res, cells, err);
        for (int i = 0; i < ncells; i++)
            fprintf(o.f, ",%s", cells[i].text);
        fputc('\n', o.f);
    }
    return out_close(&o, 1, err);
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
