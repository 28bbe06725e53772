/* Error lines, option matching and number formatting shared by the commands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvplace: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_INPUT;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvplace: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see kvplace%s%s --help)\n", cmd && *cmd ? " " : "", cmd ? cmd : "");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* The long options a command tried on its arguments: every matcher is tried on an argument
 * before it is called unknown, so this holds the command's whole list for "did you mean". */
#define MAX_SEEN 64
static const char *seen_opts[MAX_SEEN];
static size_t nseen;

static void seen(const char *lng)
{
    for (size_t i = 0; i < nseen; i++)
        if (strcmp(seen_opts[i], lng) == 0)
            return;
    if (nseen < MAX_SEEN)
        seen_opts[nseen++] = lng;
}

int cli_opt_value(const cli_args *a, int *i, const char *lng, const char *shrt,
                  const char **val)
{
    const char *arg = a->argv[*i];
    seen(lng);
    size_t n = strlen(lng);
    if (strncmp(arg, lng, n) == 0 && arg[n] == '=') {
        *val = arg + n + 1;
        if (!**val)
            return -cli_usage(a->cmd, "option %s needs a value", lng);
        return 1;
    }
    if (strcmp(arg, lng) != 0 && !(shrt && strcmp(arg, shrt) == 0))
        return 0;
    /* A following option is taken as a forgotten value ("--json --csv x"); a value that
     * starts with '-' can still be given as --name=-value. */
    const char *next = *i + 1 < a->argc ? a->argv[*i + 1] : NULL;
    if (!next || !*next || (next[0] == '-' && next[1] != 0))
        return -cli_usage(a->cmd, "option %s needs a value", arg);
    *val = next;
    (*i)++;
    return 1;
}

int cli_opt_flag(const cli_args *a, int i, const char *lng, const char *shrt)
{
    const char *arg = a->argv[i];
    size_t n = strlen(lng);
    seen(lng);
    if (strncmp(arg, lng, n) == 0 && arg[n] == '=')
        return -cli_usage(a->cmd, "option %s takes no value", lng);
    return strcmp(arg, lng) == 0 || (shrt && strcmp(arg, shrt) == 0);
}

int cli_unknown_arg(const cli_args *a, const char *arg)
{
    if (arg[0] == '-' && arg[1] != 0) {
        char name[64];
        const char *eq = strchr(arg, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        const char *s = kvp_closest_name(name, seen_opts, nseen);
        if (s)
            return cli_usage(a->cmd, "unknown option %s (did you mean %s?)", arg, s);
        return cli_usage(a->cmd, "unknown option %s", arg);
    }
    return cli_usage(a->cmd, "unexpected argument \"%s\"", arg);
}

/* Decimal prefixes, as the parameter parser reads them (k = 1e3, M = 1e6, ...). */
static const char *const byte_units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
#define UNIT_STEP 1000.0
/* Three significant digits: below 9.995 two decimals, below 99.95 one, else none. */
#define ROUND_UP_LIMIT 999.5

void cli_format_bytes(char *buf, size_t len, double bytes)
{
    size_t u = 0, nunits = sizeof byte_units / sizeof *byte_units;
    double v = bytes;
    if (v < UNIT_STEP) {
        snprintf(buf, len, "%.0f %s", v, byte_units[0]);
        return;
    }
    while (v >= ROUND_UP_LIMIT && u + 1 < nunits) {
        v /= UNIT_STEP;
        u++;
    }
    int decimals = v < 9.995 ? 2 : v < 99.95 ? 1 : 0;
    snprintf(buf, len, "%.*f %s", decimals, v, byte_units[u]);
}

int cli_check_files(const char *cmd, const cli_file *in, size_t nin, const cli_file *out,
                    size_t nout)
{
    for (size_t i = 0; i < nout; i++) {
        if (!out[i].path)
            continue;
        for (size_t k = 0; k < nin; k++)
            if (in[k].path && kvp_path_same(out[i].path, in[k].path))
                return cli_usage(cmd, "%s %s is also the %s %s of this run; an output never "
                                 "overwrites an input", out[i].what, out[i].path, in[k].what,
                                 in[k].path);
        for (size_t k = i + 1; k < nout; k++) {
            if (!out[k].path)
                continue;
            if (strcmp(out[i].path, "-") == 0 && strcmp(out[k].path, "-") == 0)
                return cli_usage(cmd, "%s and %s both name stdout (-); one output can go "
                                 "there", out[i].what, out[k].what);
            if (kvp_path_same(out[i].path, out[k].path) ||
                strcmp(out[i].path, out[k].path) == 0)
                return cli_usage(cmd, "%s and %s name the same file %s", out[i].what,
                                 out[k].what, out[i].path);
        }
    }
    return 0;
}

size_t cli_scn_inputs(const cli_scn *s, cli_file *in, size_t max)
{
    static const char *const what[] = {"--hw file", "--model file", "--config file", ""};
    size_t n = 0;
    struct stat st;
    for (size_t i = 0; i < s->n && n < max; i++)
        if (s->item[i].kind != CLI_SCN_SET && stat(s->item[i].text, &st) == 0 &&
            S_ISREG(st.st_mode))
            in[n++] = (cli_file){s->item[i].text, what[s->item[i].kind]};
    return n;
}

/* cairo stamps a PDF with the time it was made; a fixed stamp of the same length keeps the
 * file's offsets and makes the same plot the same bytes. */
int cli_pdf_fix_date(const char *path)
{
    static const char key[] = "/CreationDate (D:";
    static const char fixed[] = "19700101000000";
    FILE *f = fopen(path, "r+b");
    if (!f)
        return -1;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    int rc = 0;
    for (size_t i = 0; i + sizeof key - 1 + sizeof fixed - 1 <= n; i++) {
        if (memcmp(buf + i, key, sizeof key - 1) != 0)
            continue;
        size_t at = i + sizeof key - 1;
        if (fseek(f, (long)at, SEEK_SET) != 0 || fwrite(fixed, 1, sizeof fixed - 1, f) !=
            sizeof fixed - 1)
            rc = -1;
        break;
    }
    /* the info dictionary sits at the end: look there too when the file is larger */
    if (rc == 0 && n == sizeof buf && fseek(f, -(long)sizeof buf, SEEK_END) == 0) {
        long base = ftell(f);
        n = fread(buf, 1, sizeof buf, f);
        for (size_t i = 0; base >= 0 && i + sizeof key - 1 + sizeof fixed - 1 <= n; i++) {
            if (memcmp(buf + i, key, sizeof key - 1) != 0)
                continue;
            if (fseek(f, base + (long)(i + sizeof key - 1), SEEK_SET) != 0 ||
                fwrite(fixed, 1, sizeof fixed - 1, f) != sizeof fixed - 1)
                rc = -1;
            break;
        }
    }
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

void cli_remove_output(const char *path)
{
    struct stat st;
    /* stdout, a device, a FIFO or a link's target were written through: nothing to take back
     * without harm (unlinking /dev/stdout would remove the system's link) */
    if (path && strcmp(path, "-") != 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
        unlink(path);
}
