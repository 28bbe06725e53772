/* Error lines, option matching and number formatting shared by the commands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

int cli_opt_value(const cli_args *a, int *i, const char *lng, const char *shrt,
                  const char **val)
{
    const char *arg = a->argv[*i];
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
    if (strncmp(arg, lng, n) == 0 && arg[n] == '=')
        return -cli_usage(a->cmd, "option %s takes no value", lng);
    return strcmp(arg, lng) == 0 || (shrt && strcmp(arg, shrt) == 0);
}

int cli_unknown_arg(const cli_args *a, const char *arg)
{
    if (arg[0] == '-' && arg[1] != 0)
        return cli_usage(a->cmd, "unknown option %s", arg);
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
