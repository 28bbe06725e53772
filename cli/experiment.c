/* A config file that holds a whole experiment: besides the scenario's keys, a [run] section
 * names what `kvplace run` options would (policy, trace, outputs).  The command line wins:
 * a key applies only when its option was not given.  The library's config reader skips the
 * section. */
#include "cli.h"

#include <ini.h>
#include <stdlib.h>
#include <string.h>

typedef struct exp_ctx {
    cli_run_keys *keys;
    const char *path;
    int line, failed;
    char msg[256];
} exp_ctx;

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    exp_ctx *x = user;
    if (x->failed || strcmp(section, "run") != 0)
        return 1;
    cli_run_keys *k = x->keys;
    size_t i = 0;
    while (i < k->n && strcmp(k->key[i].name, name) != 0)
        i++;
    if (i == k->n) {
        const char *names[CLI_RUN_KEYS_MAX];
        for (size_t j = 0; j < k->n; j++)
            names[j] = k->key[j].name;
        const char *s = kvp_closest_name(name, names, k->n);
        snprintf(x->msg, sizeof x->msg, "[run] has no key \"%s\"%s%s%s", name,
                 s ? " (did you mean \"" : "", s ? s : "", s ? "\"?)" : "");
        x->failed = 1;
        return 0;
    }
    if (!value || !*value) {
        snprintf(x->msg, sizeof x->msg, "[run] %s needs a value", name);
        x->failed = 1;
        return 0;
    }
    if (*k->key[i].slot) /* given on the command line, or earlier: that wins */
        return 1;
    char *copy = strdup(value);
    /* a comment after the value, " # ...", as the scenario's reader allows */
    for (char *c = copy; c && *c; c++)
        if (*c == '#' && c > copy && (c[-1] == ' ' || c[-1] == '\t')) {
            *c = 0;
            break;
        }
    for (size_t n = copy ? strlen(copy) : 0; n && (copy[n - 1] == ' ' || copy[n - 1] == '\t');)
        copy[--n] = 0;
    if (!copy || k->nheld == CLI_RUN_KEYS_MAX * 4) {
        free(copy);
        snprintf(x->msg, sizeof x->msg, "out of memory");
        x->failed = 1;
        return 0;
    }
    k->held[k->nheld++] = copy;
    *k->key[i].slot = copy;
    return 1;
}

int cli_run_keys_load(cli_run_keys *k, const char *path)
{
    exp_ctx x = {k, path, 0, 0, ""};
    int rc = ini_parse(path, on_key, &x);
    if (rc == -1)
        return cli_error("%s: cannot open", path);
    if (rc < 0)
        return cli_error("%s: out of memory", path);
    if (x.failed)
        return cli_error("%s:%d: %s", path, rc, x.msg);
    return 0; /* a malformed line is the scenario reader's to report */
}

void cli_run_keys_free(cli_run_keys *k)
{
    for (size_t i = 0; i < k->nheld; i++)
        free(k->held[i]);
    k->nheld = 0;
}
