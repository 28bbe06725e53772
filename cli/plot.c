/* `kvplace plot timeline FILE [-o PREFIX]`: step time and HBM occupancy over the decode, one
 * line per policy, from a --timeline CSV.  Writes PREFIX.gp, then gnuplot draws PREFIX.png,
 * PREFIX.svg and PREFIX.pdf under temporary names renamed into place once all three exist. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SERIES 64
#define LINE_MAX_LEN 4096
#define NAME_LEN 256
#define PATH_LEN 4096
#define EXEC_FAILED 127

static const char *const plot_exts[] = {"png", "svg", "pdf"};
#define NEXTS (sizeof plot_exts / sizeof *plot_exts)

static void help_plot(void)
{
    printf("Usage: kvplace plot timeline FILE.csv [-o PREFIX] [-q]\n"
           "\n"
           "Draws a --timeline CSV (kvplace run --timeline FILE.csv): the time of each decode\n"
           "step (summed over layers) and the HBM occupancy (blocks in HBM over slots, for the\n"
           "policies with a limit), one line per policy.  Writes PREFIX.gp (the gnuplot script,\n"
           "to re-plot or edit) and PREFIX.png, PREFIX.svg, PREFIX.pdf; PREFIX defaults to FILE\n"
           "without its .csv.  Needs gnuplot.\n");
}

/* The first field of a CSV line (RFC 4180 quoting undone). */
static void first_field(const char *line, char *out, size_t len)
{
    size_t n = 0;
    if (*line == '"') {
        for (line++; *line && n + 1 < len; line++) {
            if (*line == '"') {
                if (line[1] != '"')
                    break;
                line++;
            }
            out[n++] = *line;
        }
    } else {
        while (*line && *line != ',' && *line != '\n' && *line != '\r' && n + 1 < len)
            out[n++] = *line++;
    }
    out[n] = 0;
}

/* The policies of the file, in order of first appearance. */
static int read_series(const char *path, char names[][NAME_LEN], int *limited, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    char line[LINE_MAX_LEN];
    int rc = 0;
    size_t rows = 0;
    *n = 0;
    if (!fgets(line, sizeof line, f) ||
        strncmp(line, kvp_timeline_header, strlen(kvp_timeline_header)) != 0 ||
        (line[strlen(kvp_timeline_header)] != '\n' && line[strlen(kvp_timeline_header)] != '\r'))
        rc = cli_error("%s: not a timeline (kvplace run --timeline): its header is not \"%.40s"
                       "...\"", path, kvp_timeline_header);
    while (rc == 0 && fgets(line, sizeof line, f)) {
        char name[NAME_LEN];
        first_field(line, name, sizeof name);
        rows++;
        if (*n && strcmp(names[*n - 1], name) == 0)
            continue;
        for (size_t i = 0; i < *n; i++)
            if (strcmp(names[i], name) == 0) {
                rc = cli_error("%s: the rows of policy %s are not together", path, name);
                break;
            }
        if (rc)
            break;
        if (*n == MAX_SERIES) {
            rc = cli_error("%s: more than %d policies", path, MAX_SERIES);
            break;
        }
        /* hbm_slots, the 13th field: -1 (no limit) leaves the policy out of the occupancy */
        const char *q = line;
        if (*q == '"')
            for (q++; *q && !(*q == '"' && q[1] != '"'); q += *q == '"' ? 2 : 1)
                ;
        for (int k = 0; k < 12 && q; k++)
            q = strchr(k ? q + 1 : q, ',');
        limited[*n] = !(q && strncmp(q + 1, "-1,", 3) == 0);
        snprintf(names[(*n)++], NAME_LEN, "%s", name);
    }
    if (rc == 0 && ferror(f))
        rc = cli_error("%s: read failed", path);
    if (rc == 0 && rows == 0)
        rc = cli_error("%s: a timeline with no rows", path);
    fclose(f);
    return rc;
}

/* A gnuplot string literal: quotes and backslashes escaped. */
static void gp_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_gp(FILE *f, const char *data, const char *prefix, char names[][NAME_LEN],
                     const int *limited, size_t n)
{
    fprintf(f, "# kvplace plot timeline: re-plot with `gnuplot %s.gp`.\n", prefix);
    fprintf(f, "if (!exists(\"data\")) data = ");
    gp_string(f, data);
    fprintf(f, "\nif (!exists(\"out\")) out = ");
    gp_string(f, prefix);
    fprintf(f, "\nset datafile separator \",\"\n"
               "set key outside right top vertical noenhanced\n"
               "set grid\nset lmargin 12\nset rmargin 34\n"
               "do for [ext in \"png svg pdf\"] {\n"
               "  if (ext eq \"png\") { set terminal pngcairo noenhanced size 1200,800 "
               "font \"sans,11\" }\n"
               "  if (ext eq \"svg\") { set terminal svg noenhanced size 1200,800 "
               "font \"sans,11\" }\n"
               "  if (ext eq \"pdf\") { set terminal pdfcairo noenhanced size 7in,4.7in "
               "font \"sans,9\" }\n"
               "  set output out.\".\".ext\n"
               "  set multiplot layout 2,1\n"
               "  set ylabel \"step time, all layers (ms)\"\n"
               "  unset xlabel\n"
               "  plot ");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%sdata using 2:(strcol(1) eq ", i ? ", \\\n       " : "");
        gp_string(f, names[i]);
        fprintf(f, " ? $3*1000 : NaN) with lines lw 2 title ");
        gp_string(f, names[i]);
    }
    fprintf(f, "\n  set ylabel \"HBM occupancy (%% of slots)\"\n"
               "  set xlabel \"decode step\"\n"
               "  set yrange [0:105]\n"
               "  plot ");
    for (size_t i = 0, first = 1; i < n; i++) {
        if (!limited[i])
            continue;
        fprintf(f, "%sdata using 2:(strcol(1) eq ", first ? "" : ", \\\n       ");
        first = 0;
        gp_string(f, names[i]);
        fprintf(f, " && $13 > 0 ? 100.0*$12/$13 : NaN) with lines lw 2 title ");
        gp_string(f, names[i]);
    }
    fprintf(f, "\n  set autoscale y\n  unset multiplot\n  set output\n}\n");
}

static int run_gnuplot(const char *gp, const char *tmp_out)
{
    char vars[PATH_LEN + 64];
    snprintf(vars, sizeof vars, "out='%s'", tmp_out);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return cli_error("cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        execlp("gnuplot", "gnuplot", "-e", vars, gp, (char *)NULL);
        _exit(EXEC_FAILED);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return cli_error("gnuplot: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXEC_FAILED)
        return cli_error("gnuplot not found: install it (it draws the plots), or run gnuplot "
                         "%s yourself", gp);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return cli_error("gnuplot %s failed", gp);
    return 0;
}

static int plot_timeline(const cli_args *a)
{
    const char *file = NULL, *prefix = NULL;
    int quiet = 0;
    for (int i = 0; i < a->argc; i++) {
        int m;
        if (cli_is_help(a->argv[i])) {
            help_plot();
            return CLI_EXIT_OK;
        }
        if ((m = cli_opt_value(a, &i, "--output", "-o", &prefix)) != 0) {
            if (m < 0)
                return -m;
            continue;
        }
        if ((m = cli_opt_flag(a, i, "--quiet", "-q")) != 0) {
            if (m < 0)
                return -m;
            quiet = 1;
            continue;
        }
        if (a->argv[i][0] != '-' && !file) {
            file = a->argv[i];
            continue;
        }
        return cli_unknown_arg(a, a->argv[i]);
    }
    if (!file)
        return cli_usage(a->cmd, "missing the timeline FILE.csv");
    char pre[PATH_LEN];
    size_t fl = strlen(file);
    if (prefix)
        snprintf(pre, sizeof pre, "%s", prefix);
    else if (fl > 4 && strcmp(file + fl - 4, ".csv") == 0)
        snprintf(pre, sizeof pre, "%.*s", (int)(fl - 4), file);
    else
        snprintf(pre, sizeof pre, "%s", file);
    if (strlen(pre) + 32 >= sizeof pre)
        return cli_error("%s: path too long", pre);

    char gp[PATH_LEN + 8], final[NEXTS][PATH_LEN + 8], tmp[NEXTS][PATH_LEN + 40];
    char tmp_out[PATH_LEN + 32];
    snprintf(gp, sizeof gp, "%s.gp", pre);
    snprintf(tmp_out, sizeof tmp_out, "%s.tmp%ld", pre, (long)getpid());
    cli_file in = {file, "timeline"}, outs[NEXTS + 1];
    outs[0] = (cli_file){gp, "-o"};
    for (size_t k = 0; k < NEXTS; k++) {
        snprintf(final[k], sizeof final[k], "%s.%s", pre, plot_exts[k]);
        snprintf(tmp[k], sizeof tmp[k], "%s.%s", tmp_out, plot_exts[k]);
        outs[k + 1] = (cli_file){final[k], "-o"};
    }
    int rc = cli_check_files(a->cmd, &in, 1, outs, NEXTS + 1);
    if (rc)
        return rc;

    static char names[MAX_SERIES][NAME_LEN];
    int limited[MAX_SERIES];
    size_t n = 0;
    if ((rc = read_series(file, names, limited, &n)) != 0)
        return rc;
    kvp_out *o;
    kvp_error err = {0};
    if (kvp_out_open(&o, gp, &err) < 0)
        return cli_error("%s", err.msg);
    write_gp(kvp_out_file(o), file, pre, names, limited, n);
    if (kvp_out_close(o, 1, &err) < 0)
        return cli_error("%s", err.msg);
    rc = run_gnuplot(gp, tmp_out);
    for (size_t k = 0; rc == 0 && k < NEXTS; k++)
        if (access(tmp[k], F_OK) != 0)
            rc = cli_error("gnuplot made no %s", final[k]);
        else if (strcmp(plot_exts[k], "pdf") == 0 && cli_pdf_fix_date(tmp[k]) != 0)
            rc = cli_error("%s: cannot rewrite its date: %s", final[k], strerror(errno));
    for (size_t k = 0; rc == 0 && k < NEXTS; k++)
        if (rename(tmp[k], final[k]) != 0)
            rc = cli_error("%s: cannot rename into place: %s", final[k], strerror(errno));
    if (rc) {
        for (size_t k = 0; k < NEXTS; k++)
            unlink(tmp[k]);
        cli_remove_output(gp);
        return rc;
    }
    if (!quiet)
        fprintf(stderr, "kvplace: wrote %s.png, %s.svg, %s.pdf (script %s)\n", pre, pre, pre,
                gp);
    return 0;
}

int cli_cmd_plot(const cli_args *a)
{
    if (a->argc < 1)
        return cli_usage("plot", "missing what to plot (timeline)");
    if (cli_is_help(a->argv[0])) {
        help_plot();
        return CLI_EXIT_OK;
    }
    if (strcmp(a->argv[0], "timeline") != 0) {
        static const char *const kinds[] = {"timeline"};
        const char *s = kvp_closest_name(a->argv[0], kinds, 1);
        return cli_usage("plot", "unknown plot \"%s\"%s%s%s", a->argv[0],
                         s ? " (did you mean \"" : "", s ? s : "", s ? "\"?)" : "");
    }
    cli_args sub = {a->argc - 1, a->argv + 1, "plot timeline"};
    return plot_timeline(&sub);
}
