/* `kvplace compare A.json B.json ...`: the same policies across runs, side by side, with each
 * run's ratio to the first.  Reads the JSON reports of `kvplace run --json` (schema 2). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 16
#define MAX_ROWS 128
#define KEY_LEN 192
#define FILE_MAX ((long)1 << 30) /* a report larger than this is not one */

typedef struct metric {
    const char *name; /* the result field */
    const char *head; /* column heading */
    int higher_better;
} metric;

static const metric metrics[] = {
    {"throughput_tok_s", "tok/s", 1},
    {"total_time_s", "time (s)", 0},
    {"speedup_vs_static", "vs static", 1},
    {"hbm_hit_rate_kv", "hit KV", 1},
    {"promoted_bytes", "promoted B", 0},
};

static void help_compare(void)
{
    printf("Usage: kvplace compare A.json B.json ... [--metric NAME] [--csv FILE]\n"
           "\n"
           "Puts the same policies of several runs (kvplace run --json) side by side: one row\n"
           "per policy (matched by its spec; sa by its settings), one column per run, and each\n"
           "run's ratio to the first (B/A).  Above the table, the scenario parameters that differ\n"
           "between the runs.  A policy missing from a run shows -.\n"
           "\n"
           "  --metric NAME   the result field compared (default throughput_tok_s):\n"
           "                  throughput_tok_s, total_time_s, speedup_vs_static,\n"
           "                  hbm_hit_rate_kv, promoted_bytes, or any numeric result field\n"
           "  --csv FILE      the same table as CSV: policy,spec,run,file,value,ratio_to_first\n"
           "                  (ratio -1 where the first run lacks the policy)\n");
}

/* The table, unless the CSV goes to stdout (which then carries the CSV alone). */
static int table_on = 1;

static void tp(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void tp(const char *fmt, ...)
{
    va_list ap;
    if (!table_on)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* The shortest of %.15g, %.16g, %.17g that reads back to d. */
static void shortest(char *buf, size_t len, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            return;
    }
}

typedef struct run {
    const char *path;
    cJSON *root, *scenario, *results;
} run;

static int load(run *r, const char *path)
{
    r->path = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len < FILE_MAX &&
        fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)len + 1)) &&
        fread(text, 1, (size_t)len, f) == (size_t)len)
        text[len] = 0;
    else {
        free(text);
        text = NULL;
    }
    fclose(f);
    if (!text)
        return cli_error("%s: cannot read", path);
    r->root = cJSON_Parse(text);
    free(text);
    if (!r->root)
        return cli_error("%s: not JSON", path);
    if (cJSON_GetObjectItemCaseSensitive(r->root, "points"))
        return cli_error("%s: a study's report; compare takes run reports (kvplace run --json)",
                         path);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, "schema_version");
    r->scenario = cJSON_GetObjectItemCaseSensitive(r->root, "scenario");
    r->results = cJSON_GetObjectItemCaseSensitive(r->root, "results");
    if (!cJSON_IsNumber(v) || v->valuedouble != KVP_SCHEMA_VERSION ||
        !cJSON_IsObject(r->scenario) || !cJSON_IsArray(r->results))
        return cli_error("%s: not a kvplace run report of schema version %d", path,
                         KVP_SCHEMA_VERSION);
    return 0;
}

/* A policy's identity across runs: its spec (sa's is its settings, not its best point). */
static const char *key_of(const cJSON *res)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(res, "spec");
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const cJSON *find(const run *r, const char *key)
{
    const cJSON *res;
    cJSON_ArrayForEach(res, r->results) {
        const char *k = key_of(res);
        if (k && strcmp(k, key) == 0)
            return res;
    }
    return NULL;
}

/* The scenario parameters whose values differ between the runs, one line each. */
static void print_differences(const run *runs, size_t n)
{
    const cJSON *item;
    int any = 0;
    cJSON_ArrayForEach(item, runs[0].scenario) {
        int differ = 0;
        for (size_t k = 1; k < n && !differ; k++) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(runs[k].scenario, item->string);
            differ = !o || !cJSON_Compare(item, o, 1);
        }
        if (!differ)
            continue;
        if (!any)
            tp("differ:");
        any = 1;
        tp("\n  %-14s", item->string);
        for (size_t k = 0; k < n; k++) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(runs[k].scenario, item->string);
            char *t = o ? cJSON_PrintUnformatted(o) : NULL;
            tp("  %c: %s", (char)('A' + k), t ? t : "-");
            cJSON_free(t);
        }
    }
    tp(any ? "\n\n" : "the runs' scenarios are the same\n\n");
}

static int compare(const cli_args *a, const char **files, size_t nfiles, const char *metric_name,
                   const char *csv)
{
    run runs[MAX_RUNS];
    memset(runs, 0, sizeof runs);
    int rc = 0;
    for (size_t k = 0; k < nfiles && rc == 0; k++)
        rc = load(&runs[k], files[k]);
    /* Rows: every policy of every run, in order of first appearance. */
    char keys[MAX_ROWS][KEY_LEN];
    const char *names[MAX_ROWS];
    size_t nrows = 0;
    for (size_t k = 0; k < nfiles && rc == 0; k++) {
        const cJSON *res;
        cJSON_ArrayForEach(res, runs[k].results) {
            const char *key = key_of(res);
            const cJSON *pol = cJSON_GetObjectItemCaseSensitive(res, "policy");
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, metric_name);
            if (!key || !cJSON_IsString(pol)) {
                rc = cli_error("%s: a result without policy or spec", runs[k].path);
                break;
            }
            if (!cJSON_IsNumber(m) && !cJSON_IsNull(m)) {
                rc = cli_error("%s: the results have no numeric field %s", runs[k].path,
                               metric_name);
                break;
            }
            size_t r = 0;
            while (r < nrows && strcmp(keys[r], key) != 0)
                r++;
            if (r < nrows)
                continue;
            if (nrows == MAX_ROWS) {
                rc = cli_error("more than %d policies", MAX_ROWS);
                break;
            }
            snprintf(keys[nrows], KEY_LEN, "%s", key);
            names[nrows++] = pol->valuestring;
        }
    }
    kvp_out *out = NULL;
    kvp_error err = {0};
    if (rc == 0 && csv && kvp_out_open(&out, csv, &err) < 0)
        rc = cli_error("%s", err.msg);
    if (rc == 0) {
        for (size_t k = 0; k < nfiles; k++)
            tp("%c = %s\n", (char)('A' + k), files[k]);
        tp("\n");
        print_differences(runs, nfiles);
        const char *head = metric_name;
        for (size_t i = 0; i < sizeof metrics / sizeof *metrics; i++)
            if (strcmp(metrics[i].name, metric_name) == 0)
                head = metrics[i].head;
        int w = (int)strlen("policy");
        for (size_t r = 0; r < nrows; r++)
            if ((int)strlen(keys[r]) > w)
                w = (int)strlen(keys[r]);
        tp("%-*s", w, "policy");
        for (size_t k = 0; k < nfiles; k++)
            tp("  %14c", (char)('A' + k));
        for (size_t k = 1; k < nfiles; k++)
            tp("  %7c/A", (char)('A' + k));
        tp("\n%-*s", w, "");
        for (size_t k = 0; k < nfiles; k++)
            tp("  %14.14s", head);
        tp("\n");
        FILE *cf = out ? kvp_out_file(out) : NULL;
        if (cf)
            fprintf(cf, "policy,spec,run,file,%s,ratio_to_first\n", metric_name);
        for (size_t r = 0; r < nrows; r++) {
            double v[MAX_RUNS];
            int have[MAX_RUNS];
            tp("%-*s", w, keys[r]);
            for (size_t k = 0; k < nfiles; k++) {
                const cJSON *res = find(&runs[k], keys[r]);
                const cJSON *m = res ? cJSON_GetObjectItemCaseSensitive(res, metric_name) : NULL;
                have[k] = cJSON_IsNumber(m);
                v[k] = have[k] ? m->valuedouble : 0;
                if (have[k])
                    tp("  %14.6g", v[k]);
                else
                    tp("  %14s", "-");
            }
            for (size_t k = 1; k < nfiles; k++) {
                if (have[0] && have[k] && v[0] != 0)
                    tp("  %9.4f", v[k] / v[0]);
                else
                    tp("  %9s", "-");
            }
            tp("\n");
            for (size_t k = 0; cf && k < nfiles; k++) {
                if (!have[k])
                    continue;
                char num[40], rat[40];
                double ratio = have[0] && v[0] != 0 ? v[k] / v[0] : -1;
                shortest(num, sizeof num, v[k]);
                shortest(rat, sizeof rat, ratio);
                fprintf(cf, "%s,%s,%c,", names[r], keys[r], (char)('A' + k));
                /* a path with a comma or quote is quoted (RFC 4180) */
                if (strpbrk(files[k], ",\"\n")) {
                    fputc('"', cf);
                    for (const char *p = files[k]; *p; p++) {
                        if (*p == '"')
                            fputc('"', cf);
                        fputc(*p, cf);
                    }
                    fputc('"', cf);
                } else {
                    fputs(files[k], cf);
                }
                fprintf(cf, ",%s,%s\n", num, rat);
            }
        }
        if (nfiles > 1)
            tp("\nB/A ...: each run's %s over the first run's (A).\n", metric_name);
        if (out && kvp_out_close(out, 1, &err) < 0)
            rc = cli_error("%s", err.msg);
        out = NULL;
    }
    kvp_out_close(out, 0, NULL);
    for (size_t k = 0; k < nfiles; k++)
        cJSON_Delete(runs[k].root);
    (void)a;
    return rc;
}

int cli_cmd_compare(const cli_args *a)
{
    const char *files[MAX_RUNS];
    size_t n = 0;
    const char *metric_name = "throughput_tok_s", *csv = NULL;
    for (int i = 0; i < a->argc; i++) {
        int m;
        if (cli_is_help(a->argv[i])) {
            help_compare();
            return CLI_EXIT_OK;
        }
        if ((m = cli_opt_value(a, &i, "--metric", NULL, &metric_name)) != 0 ||
            (m = cli_opt_value(a, &i, "--csv", NULL, &csv)) != 0) {
            if (m < 0)
                return -m;
            continue;
        }
        if (a->argv[i][0] == '-' && a->argv[i][1])
            return cli_unknown_arg(a, a->argv[i]);
        if (n == MAX_RUNS)
            return cli_usage(a->cmd, "at most %d runs", MAX_RUNS);
        files[n++] = a->argv[i];
    }
    if (n < 1)
        return cli_usage(a->cmd, "missing the run reports to compare (A.json B.json ...)");
    cli_file in[MAX_RUNS], out = {csv, "--csv"};
    for (size_t k = 0; k < n; k++)
        in[k] = (cli_file){files[k], "report"};
    int rc = cli_check_files(a->cmd, in, n, &out, 1);
    if (rc)
        return rc;
    table_on = !(csv && strcmp(csv, "-") == 0);
    return compare(a, files, n, metric_name, csv);
}
