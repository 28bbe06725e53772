/*
 * `kvplace sweep SPEC --out DIR` and `kvplace sweep merge DIR` (docs/SWEEP.md).
 *
 * The points of a spec run in worker processes, one fork per point, at most --jobs at a time;
 * each writes DIR/points/ID.json through a temporary name, so a point file is either whole or
 * absent, and a rerun skips the points whose files are there (a killed sweep resumes).
 * DIR/sweep.points names the spec's hash and every point id: a directory holds one spec's
 * points, and `merge` knows from it which are missing.  --shard K/N runs the points whose
 * index is K modulo N.  The merged CSV and JSON depend only on the point files, whose bytes
 * depend only on the spec: any sharding, any --jobs, any --threads give the same bytes.
 */
#include "sweep.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH_TEXT 4096
#define CELL_TEXT 4200 /* a trace's path, a preset file's name, or a number */
#define NUM_TEXT 64
#define MAX_JOBS 1024
#define MAX_THREADS 1024
#define TMP_ATTEMPTS 100
#define POINT_FORMAT 1 /* "kvplace_sweep" of a point file */

static const char manifest_name[] = "sweep.points";
static const char csv_name[] = "sweep.csv";
static const char json_name[] = "sweep.json";

/* ---------------------------------------------------------------------------------------- */
/* Columns: the long format, the point's scenario on every row                              */

typedef struct column {
    const char *name;
    int is_number;
} column;

typedef struct columns {
    column *c;
    size_t n;
} columns;

static const char *const lead_columns[] = {"sweep", "point", "hw", "model", "trace"};
static const char *const derived_columns[] = {"tok_bytes", "kv_budget"};
/* After the result columns: sa's search, 0 for the other policies. */
static const char sa_evaluations_column[] = "sa_evaluations";
#define NLEAD (sizeof lead_columns / sizeof *lead_columns)
#define NDERIVED (sizeof derived_columns / sizeof *derived_columns)

static int columns_init(columns *cols)
{
    size_t np, nr = kvp_result_ncolumns();
    const kvp_param_info *params = kvp_params(&np);
    const size_t nt = kvp_result_ntier_columns();
    cols->n = NLEAD + np + NDERIVED + nr + 1 + nt;
    cols->c = calloc(cols->n, sizeof *cols->c);
    if (!cols->c)
        return cli_error("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < NLEAD; i++)
        cols->c[k++] = (column){lead_columns[i], 0};
    for (size_t i = 0; i < np; i++)
        cols->c[k++] = (column){params[i].name, params[i].kind != KVP_PK_VARIATION};
    for (size_t i = 0; i < NDERIVED; i++)
        cols->c[k++] = (column){derived_columns[i], 1};
    kvp_result zero;
    memset(&zero, 0, sizeof zero);
    for (size_t i = 0; i < nr; i++) {
        char buf[NUM_TEXT];
        int num = 0;
        kvp_result_cell(&zero, i, buf, sizeof buf, &num, NULL);
        cols->c[k++] = (column){kvp_result_column(i), num};
    }
    cols->c[k++] = (column){sa_evaluations_column, 1};
    for (size_t i = 0; i < nt; i++) /* then every tier's and link's, empty where none */
        cols->c[k++] = (column){kvp_result_tier_column(i), 1};
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                    */

static char *read_text(const char *path, int *missing)
{
    FILE *f = fopen(path, "rb");
    *missing = !f && errno == ENOENT;
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad) {
        free(buf);
        return NULL;
    }
    if (buf)
        buf[n] = 0;
    return buf;
}

/* Writes text to a fresh temporary name beside path (O_EXCL: shards on several hosts may
 * share a directory and a PID); returns 0 with tmp filled, or an exit status (printed). */
static int write_tmp(const char *path, const char *text, char *tmp, size_t tmplen)
{
    for (unsigned i = 0; i < TMP_ATTEMPTS; i++) {
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path + 1) : 0;
        int w = snprintf(tmp, tmplen, "%.*s.%s.tmp%ld-%u", dl, path, slash ? slash + 1 : path,
                         (long)getpid(), i);
        if (w < 0 || (size_t)w >= tmplen)
            return cli_error("%s: path too long", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return cli_error("%s: cannot create: %s", path, strerror(errno));
        }
        size_t len = strlen(text), done = 0;
        while (done < len) {
            ssize_t k = write(fd, text + done, len - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            done += (size_t)k;
        }
        int e = errno;
        if (close(fd) != 0 && done == len)
            e = errno, done = 0;
        if (done != len) {
            unlink(tmp);
            return cli_error("%s: write failed: %s", path, strerror(e));
        }
        return 0;
    }
    return cli_error("%s: cannot find a free temporary name", path);
}

static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_TEXT + 64];
    int rc = write_tmp(path, text, tmp, sizeof tmp);
    if (rc)
        return rc;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cli_error("%s: cannot rename into place: %s", path, strerror(e));
    }
    return 0;
}

/* Creates path with text unless it exists: 0 created, 1 it was there, or -status. */
static int create_once(const char *path, const char *text)
{
    char tmp[PATH_TEXT + 64];
    int rc = write_tmp(path, text, tmp, sizeof tmp);
    if (rc)
        return -rc;
    int linked = link(tmp, path);
    int e = errno;
    unlink(tmp);
    if (linked == 0)
        return 0;
    if (e == EEXIST)
        return 1;
    return -cli_error("%s: cannot create: %s", path, strerror(e));
}

/* mkdir -p */
static int make_dir(const char *path)
{
    char buf[PATH_TEXT];
    struct stat st;
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return cli_error("%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return cli_error("%s: cannot create the directory %s: %s", path, buf,
                             strerror(errno));
        *p = c;
        if (!c)
            break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error("%s: exists and is not a directory", path);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The manifest: the spec's hash and its points                                             */

static char *manifest_text(const sweep_spec *s)
{
    size_t len = 64 + SWEEP_HASH_TEXT + s->npts * (SWEEP_ID_TEXT + 1);
    char *t = malloc(len);
    if (!t)
        return NULL;
    size_t used = (size_t)snprintf(t, len, "kvplace sweep 1\nspec %s\npoints %zu\n", s->hash,
                                   s->npts);
    for (size_t i = 0; i < s->npts && used < len; i++)
        used += (size_t)snprintf(t + used, len - used, "%s\n", s->pts[i].id);
    return t;
}

typedef struct manifest {
    char hash[SWEEP_HASH_TEXT];
    char **ids;
    size_t n;
    char *text;
} manifest;

static void manifest_free(manifest *m)
{
    free(m->ids);
    free(m->text);
    memset(m, 0, sizeof *m);
}

/* Reads DIR/sweep.points; returns 0, or an exit status (printed). */
static int manifest_read(manifest *m, const char *path)
{
    int missing;
    memset(m, 0, sizeof *m);
    m->text = read_text(path, &missing);
    if (!m->text)
        return missing ? cli_error("%s: no such file: the directory holds no sweep (kvplace "
                                   "sweep SPEC --out DIR makes one)", path)
                       : cli_error("%s: cannot read: %s", path, strerror(errno));
    size_t n;
    char hash[SWEEP_HASH_TEXT + 8];
    int used = 0;
    if (sscanf(m->text, "kvplace sweep 1\nspec %20s\npoints %zu\n%n", hash, &n, &used) != 2 ||
        !used || strlen(hash) != SWEEP_HASH_TEXT - 1 || n > SWEEP_MAX_POINTS)
        return cli_error("%s: not a kvplace sweep manifest", path);
    memcpy(m->hash, hash, SWEEP_HASH_TEXT);
    m->ids = calloc(n ? n : 1, sizeof *m->ids);
    if (!m->ids)
        return cli_error("out of memory");
    char *p = m->text + used;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(p, '\n');
        if (!nl || nl == p || (size_t)(nl - p) >= SWEEP_ID_TEXT)
            return cli_error("%s: not a kvplace sweep manifest (point %zu)", path, i);
        *nl = 0;
        m->ids[i] = p;
        p = nl + 1;
    }
    if (*p)
        return cli_error("%s: not a kvplace sweep manifest (text after the points)", path);
    m->n = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Point files                                                                              */

static void point_path(char *buf, size_t len, const char *dir, const char *id)
{
    snprintf(buf, len, "%s/points/%s.json", dir, id);
}

/* A point file's content: its hash, id and rows of text cells.  Returns the parsed file, or
 * NULL with why[] filled. */
static cJSON *point_load(const char *path, const columns *cols, const char *want_hash,
                         const char *want_id, char *why, size_t whylen, int *missing)
{
    char *text = read_text(path, missing);
    if (!text) {
        snprintf(why, whylen, "%s: %s", path, *missing ? "missing" : strerror(errno));
        return NULL;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "kvplace_sweep");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "point");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(root, "columns");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    if (!root || !cJSON_IsNumber(fmt) || fmt->valuedouble != POINT_FORMAT ||
        !cJSON_IsString(spec) || !cJSON_IsString(id) || !cJSON_IsArray(cl) ||
        !cJSON_IsArray(rows)) {
        snprintf(why, whylen, "%s: not a kvplace sweep point file", path);
        cJSON_Delete(root);
        return NULL;
    }
    if (strcmp(spec->valuestring, want_hash) != 0) {
        snprintf(why, whylen, "%s: a point of another sweep (spec %s; this directory's is "
                 "%s): one directory holds the points of one spec", path, spec->valuestring,
                 want_hash);
        cJSON_Delete(root);
        return NULL;
    }
    if (want_id && strcmp(id->valuestring, want_id) != 0) {
        snprintf(why, whylen, "%s: holds point %s, not %s", path, id->valuestring, want_id);
        cJSON_Delete(root);
        return NULL;
    }
    int ok = cJSON_GetArraySize(cl) == (int)cols->n;
    size_t k = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, cl) {
        if (!ok || !cJSON_IsString(item) || strcmp(item->valuestring, cols->c[k++].name) != 0)
            ok = 0;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (!ok || !cJSON_IsArray(row) || cJSON_GetArraySize(row) != (int)cols->n) {
            ok = 0;
            break;
        }
        k = 0;
        cJSON_ArrayForEach(item, row) {
            if (!cJSON_IsString(item)) {
                ok = 0;
                break;
            }
            /* Numbers go into the merged JSON as they are: they must be numbers. */
            const char *v = item->valuestring;
            char *end = NULL;
            if (cols->c[k].is_number && v[0] &&
                (!isfinite(strtod(v, &end)) || end == v || *end))
                ok = 0;
            k++;
        }
    }
    if (!ok) {
        snprintf(why, whylen, "%s: its columns are not this version's (a point file of "
                 "another kvplace, or edited)", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static void format_param(const kvp_scenario *sc, const kvp_param_info *p, char *buf,
                         size_t len)
{
    if (p->kind == KVP_PK_BANDWIDTH || p->kind == KVP_PK_FRACTION) {
        double d;
        memcpy(&d, (const char *)sc + p->offset, sizeof d);
        kvp_format_double(buf, len, d);
    } else if (kvp_param_format(sc, p, buf, len) < 0) {
        buf[0] = 0;
    }
}

/* The rest of a result, beside its row in the point file ("extra"): the run's length and
 * the per-tier and per-link counts, so that `kvplace study` rebuilds every field of a result
 * from a point file (its reports read some of them).  Text cells, as the rows' are. */
typedef struct extra_field {
    const char *name;
    size_t offset;
    char kind;    /* 'u' uint32_t, 'U' uint64_t, 'd' double */
    size_t count; /* 1, or KVP_MAX_TIERS for an array */
} extra_field;

#define EXTRA(name, kind, count) {#name, offsetof(kvp_result, name), kind, count}
static const extra_field extra_fields[] = {
    EXTRA(steps, 'u', 1),
    EXTRA(layers, 'u', 1),
    EXTRA(prompt, 'u', 1),
    EXTRA(tiers, 'u', 1),
    EXTRA(links, 'u', 1),
    EXTRA(tier_slots, 'u', KVP_MAX_TIERS),
    EXTRA(tier_kv_read, 'U', KVP_MAX_TIERS),
    EXTRA(tier_read, 'U', KVP_MAX_TIERS),
    EXTRA(tier_write, 'U', KVP_MAX_TIERS),
    EXTRA(tier_moved_in, 'U', KVP_MAX_TIERS),
    EXTRA(tier_moved_out, 'U', KVP_MAX_TIERS),
    EXTRA(tier_busy_s, 'd', KVP_MAX_TIERS),
    EXTRA(link_up_bytes, 'U', KVP_MAX_TIERS),
    EXTRA(link_down_bytes, 'U', KVP_MAX_TIERS),
    EXTRA(link_up_busy_s, 'd', KVP_MAX_TIERS),
    EXTRA(link_down_busy_s, 'd', KVP_MAX_TIERS),
};
#define NEXTRA (sizeof extra_fields / sizeof *extra_fields)

static size_t extra_ncells(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NEXTRA; i++)
        n += extra_fields[i].count;
    return n;
}

static int add_extras(cJSON *root, const kvp_result *res, size_t nres)
{
    cJSON *all = cJSON_AddArrayToObject(root, "extra");
    int ok = all != NULL;
    for (size_t r = 0; ok && r < nres; r++) {
        cJSON *row = cJSON_CreateArray();
        ok = row && cJSON_AddItemToArray(all, row);
        for (size_t i = 0; ok && i < NEXTRA; i++) {
            const extra_field *f = &extra_fields[i];
            const char *base = (const char *)&res[r] + f->offset;
            for (size_t k = 0; ok && k < f->count; k++) {
                char buf[NUM_TEXT];
                if (f->kind == 'u') {
                    uint32_t v;
                    memcpy(&v, base + k * sizeof v, sizeof v);
                    snprintf(buf, sizeof buf, "%" PRIu32, v);
                } else if (f->kind == 'U') {
                    uint64_t v;
                    memcpy(&v, base + k * sizeof v, sizeof v);
                    snprintf(buf, sizeof buf, "%" PRIu64, v);
                } else {
                    double v;
                    memcpy(&v, base + k * sizeof v, sizeof v);
                    kvp_format_double(buf, sizeof buf, v);
                }
                ok = cJSON_AddItemToArray(row, cJSON_CreateString(buf));
            }
        }
    }
    return ok;
}

/* Reads a row's extra cells back into r; 0, or -1 for a malformed row. */
static int parse_extras(const cJSON *row, kvp_result *r)
{
    if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != (int)extra_ncells())
        return -1;
    const cJSON *cell = row->child;
    for (size_t i = 0; i < NEXTRA; i++) {
        const extra_field *f = &extra_fields[i];
        char *base = (char *)r + f->offset;
        for (size_t k = 0; k < f->count; k++, cell = cell->next) {
            if (!cJSON_IsString(cell) || !cell->valuestring[0])
                return -1;
            const char *t = cell->valuestring;
            char *end;
            errno = 0;
            if (f->kind == 'd') {
                double v = strtod(t, &end);
                memcpy(base + k * sizeof v, &v, sizeof v);
            } else {
                unsigned long long v = strtoull(t, &end, 10);
                if (t[0] == '-' || (f->kind == 'u' && v > UINT32_MAX))
                    return -1;
                if (f->kind == 'u') {
                    uint32_t u = (uint32_t)v;
                    memcpy(base + k * sizeof u, &u, sizeof u);
                } else {
                    uint64_t u = v;
                    memcpy(base + k * sizeof u, &u, sizeof u);
                }
            }
            if (*end || errno)
                return -1;
        }
    }
    return 0;
}

/* The point file: every result a row of text cells. */
static char *point_json(const sweep_spec *s, const sweep_point *p, const kvp_scenario *sc,
                        const columns *cols, const kvp_result *res, size_t nres)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *cl = cJSON_CreateArray(), *rows = cJSON_CreateArray();
    int ok = root && cl && rows && cJSON_AddNumberToObject(root, "kvplace_sweep", POINT_FORMAT) &&
             cJSON_AddStringToObject(root, "spec", s->hash) &&
             cJSON_AddStringToObject(root, "point", p->id) &&
             cJSON_AddNumberToObject(root, "index", (double)p->index) &&
             cJSON_AddStringToObject(root, "settings", p->settings) &&
             cJSON_AddItemToObject(root, "columns", cl);
    /* The policies as specified, one per row (a row's params may differ: sa's best point). */
    cJSON *pol = ok ? cJSON_AddArrayToObject(root, "policies") : NULL;
    ok = ok && pol;
    for (size_t i = 0; ok && i < s->nspecs; i++) {
        char spec[256];
        kvp_policy_format(&s->specs[i], spec, sizeof spec);
        ok = cJSON_AddItemToArray(pol, cJSON_CreateString(spec));
    }
    if (ok)
        cl = NULL; /* owned by root from here */
    ok = ok && cJSON_AddItemToObject(root, "rows", rows);
    if (ok)
        rows = NULL;
    cJSON_Delete(cl);
    cJSON_Delete(rows);
    cl = cJSON_GetObjectItemCaseSensitive(root, "columns");
    rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    for (size_t i = 0; ok && i < cols->n; i++)
        ok = cJSON_AddItemToArray(cl, cJSON_CreateString(cols->c[i].name));
    kvp_derived d;
    kvp_error err = {0};
    if (ok && kvp_scenario_derive(sc, &d, &err) < 0)
        ok = 0;
    size_t np;
    const kvp_param_info *params = kvp_params(&np);
    for (size_t r = 0; ok && r < nres; r++) {
        cJSON *row = cJSON_CreateArray();
        ok = row && cJSON_AddItemToArray(rows, row);
        const char *lead[NLEAD] = {s->hash, p->id, sc->hw_name, sc->model_name, p->trace};
        for (size_t i = 0; ok && i < NLEAD; i++)
            ok = cJSON_AddItemToArray(row, cJSON_CreateString(lead[i]));
        char buf[CELL_TEXT];
        for (size_t i = 0; ok && i < np; i++) {
            format_param(sc, &params[i], buf, sizeof buf);
            ok = cJSON_AddItemToArray(row, cJSON_CreateString(buf));
        }
        uint64_t dv[NDERIVED] = {d.tok_bytes, d.kv_budget};
        for (size_t i = 0; ok && i < NDERIVED; i++) {
            snprintf(buf, sizeof buf, "%" PRIu64, dv[i]);
            ok = cJSON_AddItemToArray(row, cJSON_CreateString(buf));
        }
        for (size_t i = 0; ok && i < kvp_result_ncolumns(); i++) {
            ok = kvp_result_cell(&res[r], i, buf, sizeof buf, NULL, &err) >= 0 &&
                 cJSON_AddItemToArray(row, cJSON_CreateString(buf));
        }
        snprintf(buf, sizeof buf, "%" PRIu32, res[r].sa_evaluations);
        ok = ok && cJSON_AddItemToArray(row, cJSON_CreateString(buf));
        for (size_t i = 0; ok && i < kvp_result_ntier_columns(); i++)
            ok = kvp_result_tier_cell(&res[r], i, buf, sizeof buf, &err) >= 0 &&
                 cJSON_AddItemToArray(row, cJSON_CreateString(buf));
    }
    ok = ok && add_extras(root, res, nres);
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (!out) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = 0;
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Running one point (in a worker process)                                                  */

static int find_policy(const kvp_policy_spec *specs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvp_policy_name(specs[i].ops), name) == 0)
            return (int)i;
    return -1;
}

/* A worker's job: one point, or points that are accountings of one run (the same scenario
 * but for how the weights are counted: weight_bytes and reserve, the same KV budget), which
 * one run of the policies serves (kvp_run_many_accountings).  Each point's file is the one
 * a run of its own writes, byte for byte. */
#define JOB_POINTS 4 /* accountings of one run at most (kvp_run_many_accountings) */
typedef struct sweep_job {
    size_t pt[JOB_POINTS]; /* indices into the spec's points, ascending */
    size_t n;
    double work;
} sweep_job;

/* The trace of a job's points (theirs alike), and sc's length set from a trace file. */
static int point_trace(const sweep_point *p, kvp_scenario *sc, kvp_trace **tr, kvp_error *err)
{
    int rc;
    if (p->trace_path) {
        if ((rc = kvp_trace_open_npy(tr, p->trace_path, err)) >= 0) {
            /* The trace defines the run's length, as in `kvplace run --trace`. */
            sc->prompt = kvp_trace_prompt(*tr);
            sc->steps = kvp_trace_steps(*tr);
        }
        return rc;
    }
    kvp_synth_params sp;
    kvp_synth_default(&sp, sc);
    /* synthetic-heads: one stream per KV head (kvplace run --heads) */
    if (strcmp(p->trace, SWEEP_TRACE_HEADS) == 0)
        sp.heads = sc->kv_heads;
    return kvp_trace_synthetic_sequences(tr, &sp, sc->sequences, err);
}

/* Runs a job's points, each alone (alone) or all at once, and writes their files. */
static int run_job(const sweep_spec *s, const sweep_job *job, int alone, const char *dir,
                   const columns *cols, const sweep_run_opts *o, volatile sig_atomic_t *cancel)
{
    const sweep_point *p0 = &s->pts[job->pt[0]];
    kvp_scenario sc[JOB_POINTS];
    const kvp_scenario *scs[JOB_POINTS];
    kvp_trace *tr = NULL;
    kvp_error err = {0};
    kvp_policy_spec all[SWEEP_MAX_POLICIES + 2];
    const size_t nall = SWEEP_MAX_POLICIES + 2;
    kvp_result *res = calloc(JOB_POINTS * nall, sizeof *res);
    static const char *const refs[] = {"static", "unlimited"};
    size_t where[2], total = s->nspecs;
    int rc;
    if (*cancel) { /* the request came before this worker began */
        free(res);
        return CLI_EXIT_SIGNAL + (int)*cancel;
    }
    if (!res)
        return cli_error("point %s (%s): out of memory", p0->id, p0->settings);
    if (job->n > 1 && alone) {
        free(res);
        rc = 0;
        for (size_t k = 0; k < job->n && rc == 0; k++) {
            const sweep_job one = {{job->pt[k]}, 1, 0};
            rc = run_job(s, &one, 1, dir, cols, o, cancel);
        }
        return rc;
    }
    for (size_t k = 0; k < job->n; k++) {
        sc[k] = s->pts[job->pt[k]].sc;
        scs[k] = &sc[k];
    }
    rc = point_trace(p0, &sc[0], &tr, &err);
    for (size_t k = 1; k < job->n; k++) { /* the same trace: the same length */
        sc[k].prompt = sc[0].prompt;
        sc[k].steps = sc[0].steps;
    }
    memcpy(all, s->specs, s->nspecs * sizeof *all);
    for (size_t k = 0; rc >= 0 && k < 2; k++) {
        int w = find_policy(s->specs, s->nspecs, refs[k]);
        if (w >= 0)
            where[k] = (size_t)w;
        else if ((rc = kvp_policy_parse(&all[total], refs[k], &err)) >= 0)
            where[k] = total++;
    }
    kvp_run_options ro;
    if (o->ro)
        ro = *o->ro;
    else
        kvp_run_options_default(&ro);
    ro.threads = o->threads;
    ro.cancel = cancel;
    if (rc >= 0)
        rc = job->n > 1 ? kvp_run_many_accountings(scs, job->n, tr, all, total, &ro, res, &err)
                        : kvp_run_many(&sc[0], tr, all, total, &ro, res, &err);
    kvp_trace_free(tr);
    /* Whatever failed once the stop was asked for (a read cut short, a run between steps)
     * is the stop's doing, not the point's: no message. */
    if (rc == KVP_EINTR || (rc < 0 && *cancel)) {
        free(res);
        return CLI_EXIT_SIGNAL + (int)*cancel;
    }
    if (rc < 0 && job->n > 1) { /* each alone, for its own message */
        free(res);
        return run_job(s, job, 1, dir, cols, o, cancel);
    }
    if (rc < 0) {
        free(res);
        return cli_error("point %s (%s): %s", p0->id, p0->settings, err.msg);
    }
    for (size_t k = 0; k < job->n && rc == 0; k++) {
        const sweep_point *p = &s->pts[job->pt[k]];
        kvp_result *r = res + k * total;
        kvp_result_speedups(r, s->nspecs, r[where[0]].total_time_s, r[where[1]].total_time_s);
        char *text = point_json(s, p, &sc[k], cols, r, s->nspecs);
        if (!text) {
            rc = cli_error("point %s (%s): out of memory, or a result with no text form",
                           p->id, p->settings);
            break;
        }
        char path[PATH_TEXT];
        point_path(path, sizeof path, dir, p->id);
        rc = write_atomic(path, text);
        free(text);
    }
    free(res);
    return rc;
}

static int run_point(const sweep_spec *s, const sweep_point *p, const char *dir,
                     const columns *cols, const sweep_run_opts *o,
                     volatile sig_atomic_t *cancel)
{
    const sweep_job one = {{p->index}, 1, 0};
    return run_job(s, &one, 1, dir, cols, o, cancel);
}

/* ---------------------------------------------------------------------------------------- */
/* Merging                                                                                  */

static int is_listed(const manifest *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->ids[i], id) == 0)
            return 1;
    return 0;
}

/* Every *.json in DIR/points must be a point of this sweep: a directory that mixes two
 * specs' points is refused as a whole. */
static int check_strays(const char *dir, const manifest *m, const columns *cols)
{
    char pdir[PATH_TEXT];
    snprintf(pdir, sizeof pdir, "%s/points", dir);
    DIR *d = opendir(pdir);
    if (!d)
        return errno == ENOENT ? 0 : cli_error("%s: cannot read: %s", pdir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char id[SWEEP_ID_TEXT + 8];
        snprintf(id, sizeof id, "%.*s", (int)(n - 5), e->d_name);
        if (n - 5 < SWEEP_ID_TEXT && is_listed(m, id))
            continue;
        char path[PATH_TEXT * 2], why[PATH_TEXT * 2];
        snprintf(path, sizeof path, "%s/%s", pdir, e->d_name);
        int missing;
        cJSON *root = point_load(path, cols, m->hash, NULL, why, sizeof why, &missing);
        if (root) {
            cJSON_Delete(root);
            if (snprintf(why, sizeof why, "%s: not a point of this sweep (%s does not list "
                         "it)", path, manifest_name) >= (int)sizeof why)
                why[sizeof why - 1] = 0;
        }
        rc = cli_error("%s", why);
    }
    closedir(d);
    return rc;
}

static int write_merged(const char *dir, const manifest *m, const columns *cols,
                        cJSON **pts, int quiet)
{
    char csv_path[PATH_TEXT], json_path[PATH_TEXT];
    snprintf(csv_path, sizeof csv_path, "%s/%s", dir, csv_name);
    snprintf(json_path, sizeof json_path, "%s/%s", dir, json_name);
    /* CSV */
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *f = open_memstream(&csv, &csv_len);
    if (!f)
        return cli_error("out of memory");
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            fputc(',', f);
        kvp_csv_cell(f, cols->c[i].name);
    }
    fputc('\n', f);
    size_t nrows = 0, missing = 0;
    cJSON *root = cJSON_CreateObject();
    cJSON *miss = cJSON_CreateArray();
    cJSON *rows = cJSON_CreateArray();
    int ok = root && miss && rows && cJSON_AddStringToObject(root, "kvplace_version",
                                                             KVP_VERSION) &&
             cJSON_AddStringToObject(root, "spec", m->hash) &&
             cJSON_AddNumberToObject(root, "points", (double)m->n);
    for (size_t i = 0; i < m->n; i++) {
        if (!pts[i]) {
            missing++;
            ok = ok && cJSON_AddItemToArray(miss, cJSON_CreateString(m->ids[i]));
            continue;
        }
        const cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(pts[i], "rows")) {
            cJSON *o = cJSON_CreateObject();
            ok = ok && o && cJSON_AddItemToArray(rows, o);
            size_t k = 0;
            const cJSON *cell;
            cJSON_ArrayForEach(cell, row) {
                const char *v = cell->valuestring;
                if (k)
                    fputc(',', f);
                kvp_csv_cell(f, v);
                /* Numbers as their exact text (byte counts above 2^53 stay exact); an
                 * empty number (unlimited's slots) is null. */
                cJSON *item = !cols->c[k].is_number ? cJSON_CreateString(v)
                              : v[0]                ? cJSON_CreateRaw(v)
                                                    : cJSON_CreateNull();
                ok = ok && item && cJSON_AddItemToObject(o, cols->c[k].name, item);
                k++;
            }
            fputc('\n', f);
            nrows++;
        }
    }
    if (ok) {
        ok = cJSON_AddNumberToObject(root, "rows_count", (double)nrows) &&
             cJSON_AddItemToObject(root, "missing", miss) &&
             cJSON_AddItemToObject(root, "rows", rows);
        miss = rows = NULL;
    }
    cJSON_Delete(miss);
    cJSON_Delete(rows);
    int ferr = fclose(f) != 0;
    char *json = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    int rc = 0;
    if (!json || ferr || !csv) {
        rc = cli_error("out of memory");
    } else {
        size_t n = strlen(json);
        char *jn = realloc(json, n + 2);
        if (!jn) {
            rc = cli_error("out of memory");
        } else {
            json = jn;
            json[n] = '\n';
            json[n + 1] = 0;
            if ((rc = write_atomic(json_path, json)) == 0 &&
                (rc = write_atomic(csv_path, csv)) != 0)
                unlink(json_path); /* both or neither */
        }
    }
    free(json);
    free(csv);
    if (!rc && !quiet)
        fprintf(stderr, "kvplace: %s: merged %zu of %zu points (%zu rows) into %s and %s\n",
                dir, m->n - missing, m->n, nrows, csv_name, json_name);
    return rc;
}

/* merge: every point of the manifest; refuses a directory with another spec's points, and
 * (unless partial) one with points missing, naming them. */
static int merge(const char *dir, int partial, int quiet)
{
    char path[PATH_TEXT];
    manifest m;
    columns cols = {0};
    cJSON **pts = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, manifest_name);
    int rc = manifest_read(&m, path);
    if (!rc)
        rc = columns_init(&cols);
    if (!rc)
        rc = check_strays(dir, &m, &cols);
    if (!rc && !(pts = calloc(m.n ? m.n : 1, sizeof *pts)))
        rc = cli_error("out of memory");
    size_t missing = 0;
    char first[4][SWEEP_ID_TEXT];
    for (size_t i = 0; !rc && i < m.n; i++) {
        char why[PATH_TEXT * 2];
        int gone;
        point_path(path, sizeof path, dir, m.ids[i]);
        pts[i] = point_load(path, &cols, m.hash, m.ids[i], why, sizeof why, &gone);
        if (!pts[i] && !gone)
            rc = cli_error("%s", why);
        else if (!pts[i] && missing++ < 4)
            snprintf(first[missing - 1], SWEEP_ID_TEXT, "%s", m.ids[i]);
    }
    if (!rc && missing && !partial) {
        char list[4 * (SWEEP_ID_TEXT + 2)] = "";
        for (size_t i = 0; i < missing && i < 4; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", first[i]);
        }
        rc = cli_error("%s: %zu of %zu points missing (%s%s); run the sweep again to make "
                       "them, or merge what is there with --partial", dir, missing, m.n,
                       list, missing > 4 ? ", ..." : "");
    }
    if (!rc && missing && !quiet)
        fprintf(stderr, "kvplace: %s: %zu of %zu points missing; sweep.json lists them\n",
                dir, missing, m.n);
    if (!rc)
        rc = write_merged(dir, &m, &cols, pts, quiet);
    for (size_t i = 0; pts && i < m.n; i++)
        cJSON_Delete(pts[i]);
    free(pts);
    free(cols.c);
    manifest_free(&m);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* A point's results, for kvplace study --from                                              */

/* Fills res[0..n-1] from the sweep's point whose scenario is sc (every parameter equal, a
 * synthetic trace): the row of each spec's policy (with the spec's parameters; sa by name,
 * its row holding its best point).  0 when found, -1 when DIR holds no such point (nothing
 * printed), or an exit status (printed). */
int cli_sweep_results(const char *dir, const kvp_scenario *sc, const char *trace,
                      const kvp_policy_spec *specs, size_t n, kvp_result *res)
{
    char path[PATH_TEXT];
    manifest m;
    columns cols = {0};
    size_t np, nr = kvp_result_ncolumns();
    const kvp_param_info *params = kvp_params(&np);
    snprintf(path, sizeof path, "%s/%s", dir, manifest_name);
    int rc = manifest_read(&m, path);
    if (!rc)
        rc = columns_init(&cols);
    int found = 0;
    for (size_t i = 0; !rc && !found && i < m.n; i++) {
        char why[PATH_TEXT * 2];
        int gone;
        point_path(path, sizeof path, dir, m.ids[i]);
        cJSON *root = point_load(path, &cols, m.hash, m.ids[i], why, sizeof why, &gone);
        if (!root) {
            if (!gone)
                rc = cli_error("%s", why);
            continue;
        }
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
        const cJSON *row0 = cJSON_GetArrayItem(rows, 0);
        int match = row0 != NULL &&
                    strcmp(cJSON_GetArrayItem(row0, 4)->valuestring, trace) == 0;
        for (size_t k = 0; match && k < np; k++) {
            char buf[CELL_TEXT];
            format_param(sc, &params[k], buf, sizeof buf);
            match = strcmp(cJSON_GetArrayItem(row0, (int)(NLEAD + k))->valuestring, buf) == 0;
        }
        const cJSON *pols = cJSON_GetObjectItemCaseSensitive(root, "policies");
        if (match && (!cJSON_IsArray(pols) ||
                      cJSON_GetArraySize(pols) != cJSON_GetArraySize(rows))) {
            rc = cli_error("%s: point %s: not a point file with its policies", dir, m.ids[i]);
            match = 0;
        }
        for (size_t j = 0; match && !rc && j < n; j++) {
            /* The row of the j-th spec: the same text, the same occurrence among equals. */
            char want[256], other[256];
            kvp_policy_format(&specs[j], want, sizeof want);
            size_t before = 0;
            for (size_t q = 0; q < j; q++) {
                kvp_policy_format(&specs[q], other, sizeof other);
                before += strcmp(other, want) == 0;
            }
            const cJSON *hit = NULL, *sp;
            int q = 0, hit_at = 0;
            cJSON_ArrayForEach(sp, pols) {
                if (!hit && cJSON_IsString(sp) && strcmp(sp->valuestring, want) == 0 &&
                    before-- == 0) {
                    hit = cJSON_GetArrayItem(rows, q);
                    hit_at = q;
                }
                q++;
            }
            if (!hit) {
                rc = cli_error("%s: point %s has no row for %s (the sweep ran other policies)",
                               dir, m.ids[i], want);
                break;
            }
            kvp_error err = {0};
            memset(&res[j], 0, sizeof res[j]);
            for (size_t c = 0; !rc && c < nr; c++) {
                const char *cell = cJSON_GetArrayItem(hit, (int)(NLEAD + np + NDERIVED + c))
                                       ->valuestring;
                if (kvp_result_parse_cell(&res[j], c, cell, &err) < 0)
                    rc = cli_error("%s: point %s: %s", dir, m.ids[i], err.msg);
            }
            const char *ev = cJSON_GetArrayItem(hit, (int)(NLEAD + np + NDERIVED + nr))
                                 ->valuestring;
            res[j].sa_evaluations = (uint32_t)strtoul(ev, NULL, 10);
            /* The rest of the result; a point file of kvplace before "extra" has the run's
             * length only through the scenario, and no per-tier counts. */
            const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
            if (extra && (!cJSON_IsArray(extra) ||
                          parse_extras(cJSON_GetArrayItem(extra, hit_at), &res[j]) < 0)) {
                rc = cli_error("%s: point %s: its per-tier results are not this version's",
                               dir, m.ids[i]);
            } else if (!extra) {
                res[j].steps = sc->steps;
                res[j].layers = sc->layers;
                res[j].prompt = sc->prompt;
            }
        }
        found = match;
        cJSON_Delete(root);
    }
    free(cols.c);
    manifest_free(&m);
    return rc ? rc : found ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                              */

typedef struct sweep_opts {
    const char *spec, *out, *jobs, *shard, *threads, *policies;
    const char **sets; /* --set NAME=VALUE, in order */
    size_t nsets;
    int list, quiet, partial;
} sweep_opts;

static int parse_count(const char *opt, const char *text, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end || errno || text[0] == '-' || text[0] == '+' || v < 1 || v > max)
        return cli_error("%s %s: expected a whole number from 1 to %u", opt, text, max);
    *out = (unsigned)v;
    return 0;
}

static int parse_shard(const char *text, size_t *k, size_t *n)
{
    char *end;
    errno = 0;
    unsigned long long a = strtoull(text, &end, 10), b = 0;
    int ok = end != text && *end == '/' && text[0] != '-' && text[0] != '+' && !errno;
    if (ok) {
        const char *rest = end + 1;
        b = strtoull(rest, &end, 10);
        ok = end != rest && !*end && rest[0] != '-' && rest[0] != '+' && !errno;
    }
    if (!ok || b < 1 || b > SWEEP_MAX_POINTS)
        return cli_error("--shard %s: expected K/N, the K-th of N shares counted from 0 "
                         "(0/4 ... 3/4)", text);
    if (a >= b)
        return cli_error("--shard %s: K must be below N: the shares of %llu are 0/%llu to "
                         "%llu/%llu", text, b, b, b - 1, b);
    *k = (size_t)a;
    *n = (size_t)b;
    return 0;
}

/* The jobs a sweep runs at once: Slurm's CPUs for the task when it says, else the cores. */
static unsigned default_jobs(void)
{
    const char *slurm = getenv("SLURM_CPUS_PER_TASK");
    unsigned v;
    if (slurm && *slurm) {
        char *end;
        unsigned long n = strtoul(slurm, &end, 10);
        if (!*end && n >= 1 && n <= MAX_JOBS)
            return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    v = n < 1 ? 1 : n > MAX_JOBS ? MAX_JOBS : (unsigned)n;
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct worker {
    pid_t pid;
    size_t point;
    double start;
} worker;

/* Runs the pending points here, one after the other (o->in_process). */
static int run_here(const sweep_spec *s, const size_t *todo, size_t ntodo, const char *dir,
                    const columns *cols, const sweep_run_opts *o)
{
    volatile sig_atomic_t *cancel = cli_cancel_install();
    for (size_t i = 0; i < ntodo; i++) {
        const sweep_point *p = &s->pts[todo[i]];
        double t0 = now_s();
        int rc = run_point(s, p, dir, cols, o, cancel);
        if (rc >= CLI_EXIT_SIGNAL) {
            const kvp_checkpoint *ck = o->ro ? o->ro->checkpoint : NULL;
            const char *path = ck ? kvp_checkpoint_save_path(ck) : NULL;
            if (path) /* --checkpoint FILE would refuse the file it made: --resume it */
                cli_error("interrupted; %zu of %zu points of this run done and kept, %llu sa "
                          "evaluations saved to %s; continue with --resume %s", i, ntodo,
                          (unsigned long long)kvp_checkpoint_count(ck), path, path);
            else
                cli_error("interrupted; %zu of %zu points of this run done and kept; the "
                          "same command continues", i, ntodo);
            return rc;
        }
        if (rc)
            return rc;
        if (!o->quiet)
            fprintf(stderr, "kvplace: [%zu/%zu] %s (%s) %.1f s\n", i + 1, ntodo, p->id,
                    p->settings[0] ? p->settings : "the base", now_s() - t0);
    }
    return 0;
}

/* A point's work, roughly: the positions of the contexts it steps through (streams x
 * context x steps x layers; a sequence's prompt as its trace draws it).  Points on a trace
 * file count 0: their size is known only once the file is open. */
static double point_work(const sweep_point *p)
{
    const kvp_scenario *sc = &p->sc;
    if (p->trace_path)
        return 0;
    const double heads = strcmp(p->trace, SWEEP_TRACE_HEADS) == 0 ? sc->kv_heads : 1;
    const uint32_t nseq = sc->sequences ? sc->sequences : 1;
    double context = 0;
    for (uint32_t q = 0; q < nseq; q++)
        context += kvp_synth_sequence_prompt(sc->seed, q, sc->prompt) + 0.5 * sc->steps;
    return heads * context * sc->steps * sc->layers;
}

/* The text that accountings of one run share: every parameter in use but weight_bytes and
 * reserve, the KV budget they leave, and the trace.  "" for a point that pairs with none (a
 * scenario that does not derive). */
static char *run_key(const sweep_point *p)
{
    size_t n, used = 0, cap = 256;
    const kvp_param_info *params = kvp_params(&n);
    kvp_derived d;
    kvp_error err = {0};
    char *key = malloc(cap);
    if (!key)
        return NULL;
    key[0] = 0;
    if (kvp_scenario_derive(&p->sc, &d, &err) < 0)
        return key;
    for (size_t i = 0; i <= n; i++) {
        char t[CELL_TEXT];
        if (i == n)
            snprintf(t, sizeof t, "kv_budget=%" PRIu64 ";trace=%s;%s", d.kv_budget, p->trace,
                     p->trace_path ? p->trace_path : "");
        else if (strcmp(params[i].name, "weight_bytes") == 0 ||
                 strcmp(params[i].name, "reserve") == 0 || !kvp_param_in_use(&p->sc, &params[i]))
            continue;
        else {
            char v[NUM_TEXT];
            if (kvp_param_format(&p->sc, &params[i], v, sizeof v) < 0)
                v[0] = 0;
            snprintf(t, sizeof t, "%s=%s;", params[i].name, v);
        }
        size_t len = strlen(t);
        if (used + len + 1 > cap) {
            char *more = realloc(key, cap = 2 * (used + len + 1));
            if (!more) {
                free(key);
                return NULL;
            }
            key = more;
        }
        memcpy(key + used, t, len + 1);
        used += len;
    }
    return key;
}

typedef struct keyed {
    char *key;
    size_t point;
} keyed;

static int by_key(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->point > y->point) - (x->point < y->point);
}

static int by_work(const void *a, const void *b)
{
    const sweep_job *x = a, *y = b; /* heaviest first, ties by the first point's index */
    return x->work != y->work ? (x->work < y->work ? 1 : -1)
                              : (x->pt[0] > y->pt[0]) - (x->pt[0] < y->pt[0]);
}

/* The jobs of the pending points, heaviest first (a job's work is its points'; ties in
 * index order): with several jobs, the longest starts at once instead of alone at the end.
 * With `pair`, pending points that are accountings of one run (run_key) share a job, up to
 * JOB_POINTS of them, in index order; a point whose twin is done or in another shard runs
 * alone.  Neither the order nor the pairing changes a point's file. */
static int sweep_jobs(const sweep_spec *s, const size_t *todo, size_t ntodo, int pair,
                      sweep_job **out, size_t *njobs)
{
    keyed *k = calloc(ntodo ? ntodo : 1, sizeof *k);
    sweep_job *jobs = calloc(ntodo ? ntodo : 1, sizeof *jobs);
    int rc = 0;
    if (!k || !jobs) {
        rc = cli_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < ntodo; i++) {
        k[i].point = todo[i];
        if (pair && !(k[i].key = run_key(&s->pts[todo[i]]))) {
            rc = cli_error("out of memory");
            goto done;
        }
    }
    if (pair)
        qsort(k, ntodo, sizeof *k, by_key);
    size_t n = 0;
    for (size_t i = 0; i < ntodo; i++) {
        sweep_job *j = n ? &jobs[n - 1] : NULL;
        if (!j || !pair || j->n == JOB_POINTS || !k[i].key[0] ||
            strcmp(k[i].key, k[i - 1].key) != 0)
            j = &jobs[n++];
        j->pt[j->n++] = k[i].point;
        j->work += point_work(&s->pts[k[i].point]);
    }
    qsort(jobs, n, sizeof *jobs, by_work);
    *out = jobs;
    *njobs = n;
    jobs = NULL;
done:
    for (size_t i = 0; k && i < ntodo; i++)
        free(k[i].key);
    free(k);
    free(jobs);
    return rc;
}

/* Runs the jobs, at most `jobs` at a time, one process each; a line per point done. */
static int run_points(const sweep_spec *s, const sweep_job *job, size_t njob, size_t ntodo,
                      const char *dir, const columns *cols, unsigned jobs,
                      const sweep_run_opts *o)
{
    int quiet = o->quiet;
    volatile sig_atomic_t *cancel = cli_cancel_install();
    worker *w = calloc(jobs, sizeof *w);
    if (!w)
        return cli_error("out of memory");
    size_t next = 0, running = 0, done = 0, failed = 0;
    int rc = 0, passed_on = 0;
    while ((next < njob && !failed && !*cancel) || running) {
        /* Pass a stop on to the workers once, however it arrived (in waitpid or not). */
        if (*cancel && !passed_on) {
            for (unsigned j = 0; j < jobs; j++)
                if (w[j].pid)
                    kill(w[j].pid, SIGTERM);
            passed_on = 1;
        }
        while (running < jobs && next < njob && !failed && !*cancel) {
            size_t slot = 0;
            while (w[slot].pid)
                slot++;
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            if (pid < 0) {
                rc = cli_error("cannot start a worker process: %s", strerror(errno));
                failed++;
                break;
            }
            if (pid == 0)
                _exit(run_job(s, &job[next], 0, dir, cols, o, cancel));
            w[slot] = (worker){pid, next, now_s()};
            next++;
            running++;
        }
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno != EINTR)
                break;
            continue; /* a stop: passed on at the top of the loop */
        }
        unsigned j = 0;
        while (j < jobs && w[j].pid != pid)
            j++;
        if (j == jobs)
            continue;
        running--;
        const sweep_job *jb = &job[w[j].point];
        w[j].pid = 0;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            for (size_t k = 0; k < jb->n; k++) {
                const sweep_point *p = &s->pts[jb->pt[k]];
                done++;
                if (!quiet)
                    fprintf(stderr, "kvplace: [%zu/%zu] %s (%s) %.1f s%s\n", done, ntodo,
                            p->id, p->settings[0] ? p->settings : "the base",
                            now_s() - w[j].start, jb->n > 1 ? " (one run of its accountings)"
                                                            : "");
            }
        } else if (!*cancel) {
            failed++;
            if (WIFSIGNALED(st))
                cli_error("point %s (%s): the worker died of signal %d",
                          s->pts[jb->pt[0]].id, s->pts[jb->pt[0]].settings, WTERMSIG(st));
        }
    }
    free(w);
    if (*cancel) {
        cli_error("interrupted; %zu of %zu points of this run done and kept; the same command "
                  "continues", done, ntodo);
        return CLI_EXIT_SIGNAL + (int)*cancel;
    }
    if (failed && !rc)
        rc = CLI_EXIT_INPUT;
    return rc;
}

static int sweep_parse(const cli_args *a, sweep_opts *o, int *help)
{
    *help = 0;
    for (int i = 0; i < a->argc; i++) {
        const char *arg = a->argv[i];
        int m;
        if (cli_is_help(arg)) {
            *help = 1;
            return 0;
        }
        if ((m = cli_opt_value(a, &i, "--out", "-o", &o->out)) != 0 ||
            (m = cli_opt_value(a, &i, "--jobs", "-j", &o->jobs)) != 0 ||
            (m = cli_opt_value(a, &i, "--shard", NULL, &o->shard)) != 0 ||
            (m = cli_opt_value(a, &i, "--threads", NULL, &o->threads)) != 0 ||
            (m = cli_opt_value(a, &i, "--policy", NULL, &o->policies)) != 0) {
            if (m < 0)
                return -m;
            continue;
        }
        const char *set;
        if ((m = cli_opt_value(a, &i, "--set", NULL, &set)) != 0) {
            if (m < 0)
                return -m;
            if (!strchr(set, '=') || set[0] == '=')
                return cli_usage(a->cmd, "--set %s: expected name=value", set);
            o->sets[o->nsets++] = set;
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--list", NULL)) != 0 ||
            (m = cli_opt_flag(a, i, "--quiet", "-q")) != 0) {
            if (m < 0)
                return -m;
            *(strcmp(arg, "--list") == 0 ? &o->list : &o->quiet) = 1;
            continue;
        }
        if (arg[0] == '-' && arg[1])
            return cli_unknown_arg(a, arg);
        if (o->spec)
            return cli_usage(a->cmd, "one spec per sweep (got %s and %s)", o->spec, arg);
        o->spec = arg;
    }
    if (!o->spec)
        return cli_usage(a->cmd, "which spec? kvplace sweep SPEC --out DIR");
    if (!o->out && !o->list)
        return cli_usage(a->cmd, "--out DIR is needed: the directory of the points");
    return 0;
}

static int merge_cmd(const cli_args *a)
{
    const char *dir = NULL;
    int partial = 0, quiet = 0;
    cli_args ma = {a->argc - 1, a->argv + 1, "sweep merge"};
    for (int i = 0; i < ma.argc; i++) {
        const char *arg = ma.argv[i];
        int m;
        if (cli_is_help(arg)) {
            cli_help_sweep();
            return CLI_EXIT_OK;
        }
        if ((m = cli_opt_flag(&ma, i, "--partial", NULL)) != 0 ||
            (m = cli_opt_flag(&ma, i, "--quiet", "-q")) != 0) {
            if (m < 0)
                return -m;
            *(strcmp(arg, "--partial") == 0 ? &partial : &quiet) = 1;
            continue;
        }
        if (arg[0] == '-' && arg[1])
            return cli_unknown_arg(&ma, arg);
        if (dir)
            return cli_usage(ma.cmd, "one directory per merge (got %s and %s)", dir, arg);
        dir = arg;
    }
    if (!dir)
        return cli_usage(ma.cmd, "which directory? kvplace sweep merge DIR");
    return merge(dir, partial, quiet);
}

int sweep_run_parse(const char *jobs, const char *threads, const char *shard,
                    sweep_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->jobs = default_jobs();
    o->threads = 1;
    o->shard_k = 0;
    o->shard_n = 1;
    o->shard = shard;
    if (jobs && parse_count("--jobs", jobs, MAX_JOBS, &o->jobs) != 0)
        return CLI_EXIT_INPUT;
    if (threads && parse_count("--threads", threads, MAX_THREADS, &o->threads) != 0)
        return CLI_EXIT_INPUT;
    if (shard && parse_shard(shard, &o->shard_k, &o->shard_n) != 0)
        return CLI_EXIT_INPUT;
    return 0;
}

int sweep_run(const sweep_spec *s, const char *out, const char *spec_copy,
              const sweep_run_opts *o)
{
    columns cols = {0};
    size_t *todo = NULL;
    char *mtext = NULL;
    int rc;
    if ((rc = columns_init(&cols)) != 0)
        goto done;
    /* The directory: its manifest is this spec's, or it is made now. */
    char path[PATH_TEXT];
    snprintf(path, sizeof path, "%s/points", out);
    if ((rc = make_dir(out)) != 0 || (rc = make_dir(path)) != 0)
        goto done;
    if (!(mtext = manifest_text(s))) {
        rc = cli_error("out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", out, manifest_name);
    int made = create_once(path, mtext);
    if (made < 0) {
        rc = -made;
        goto done;
    }
    if (made == 1) {
        int missing;
        char *old = read_text(path, &missing);
        if (!old) {
            rc = cli_error("%s: cannot read: %s", path, strerror(errno));
            goto done;
        }
        char oldhash[SWEEP_HASH_TEXT + 8] = "?";
        sscanf(old, "kvplace sweep 1\nspec %20s", oldhash);
        int same = strcmp(old, mtext) == 0;
        free(old);
        if (!same) {
            rc = cli_error("%s holds the points of another sweep (spec %s; %s is spec %s): "
                           "use another --out directory", out, oldhash, s->path, s->hash);
            goto done;
        }
    }
    /* A copy of the spec, for the record (the manifest is what is checked). */
    char *spec_text;
    int gone;
    if (spec_copy && (spec_text = read_text(spec_copy, &gone)) != NULL) {
        snprintf(path, sizeof path, "%s/spec.ini", out);
        create_once(path, spec_text);
        free(spec_text);
    }
    /* Resume: a point whose file is whole is done. */
    todo = calloc(s->npts ? s->npts : 1, sizeof *todo);
    if (!todo) {
        rc = cli_error("out of memory");
        goto done;
    }
    size_t ntodo = 0, nshard = 0;
    for (size_t i = o->shard_k; i < s->npts; i += o->shard_n) {
        char why[PATH_TEXT * 2];
        int missing;
        nshard++;
        point_path(path, sizeof path, out, s->pts[i].id);
        cJSON *root = point_load(path, &cols, s->hash, s->pts[i].id, why, sizeof why,
                                 &missing);
        if (root) {
            cJSON_Delete(root);
            continue;
        }
        if (!missing) {
            rc = cli_error("%s", why);
            goto done;
        }
        todo[ntodo++] = i;
    }
    unsigned jobs = o->in_process       ? 1
                    : o->jobs < ntodo ? o->jobs
                                      : (unsigned)(ntodo ? ntodo : 1);
    if (!o->quiet)
        fprintf(stderr, "kvplace: sweep %s (spec %s): %zu points%s%s, %zu to run, %zu already "
                "done; %u jobs%s\n", s->path, s->hash, nshard, o->shard ? " in shard " : "",
                o->shard ? o->shard : "", ntodo, nshard - ntodo, jobs,
                o->in_process ? ", in this process" : "");
    /* In this process (one point at a time, an sa checkpoint's) the order gains nothing: the
     * spec's is kept, each point alone.  Else points that are accountings of one run share a
     * job (none of the options of run_job's run refuses that). */
    sweep_job *jl = NULL;
    size_t njob = 0;
    if (o->in_process)
        rc = run_here(s, todo, ntodo, out, &cols, o);
    else if ((rc = sweep_jobs(s, todo, ntodo, !(o->ro && o->ro->checkpoint), &jl, &njob)) == 0)
        rc = run_points(s, jl, njob, ntodo, out, &cols, jobs, o);
    free(jl);
done:
    free(todo);
    free(mtext);
    free(cols.c);
    return rc;
}

int sweep_merge(const char *dir, int partial, int quiet) { return merge(dir, partial, quiet); }

int cli_cmd_sweep(const cli_args *a)
{
    if (a->argc > 0 && strcmp(a->argv[0], "merge") == 0)
        return merge_cmd(a);
    sweep_opts o;
    sweep_spec s;
    sweep_run_opts ro;
    int help;
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    memset(&ro, 0, sizeof ro);
    o.sets = calloc(a->argc > 0 ? (size_t)a->argc : 1, sizeof *o.sets);
    if (!o.sets)
        return cli_error("out of memory");
    int rc = sweep_parse(a, &o, &help);
    if (rc || help) {
        if (help)
            cli_help_sweep();
        free(o.sets);
        return rc;
    }
    if ((rc = sweep_run_parse(o.jobs, o.threads, o.shard, &ro)) != 0)
        goto done;
    ro.quiet = o.quiet;
    if ((rc = sweep_spec_load(&s, o.spec, o.sets, o.nsets, o.policies)) != 0)
        goto done;
    if (o.list) {
        printf("spec %s: %zu points, policies %s\n", s.hash, s.npts, s.policies);
        for (size_t i = ro.shard_k; i < s.npts; i += ro.shard_n)
            printf("%s  %s  trace=%s\n", s.pts[i].id, s.pts[i].settings, s.pts[i].trace);
        if (fflush(stdout) != 0)
            rc = cli_error("stdout: write failed");
        goto done;
    }
    if ((rc = sweep_run(&s, o.out, o.spec, &ro)) != 0)
        goto done;
    if (ro.shard_n == 1)
        rc = merge(o.out, 0, o.quiet);
    else if (!o.quiet)
        fprintf(stderr, "kvplace: shard %s done; once every shard is: kvplace sweep merge "
                "%s\n", o.shard, o.out);
done:
    free(o.sets);
    sweep_spec_free(&s);
    return rc;
}
