/* Config files (INI, read by inih) and presets given by name or by file: the scenario's
 * inputs that combine parameters (params.c) and built-in presets (presets.c). */
#include "scenario/presets.h"
#include "base/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

static int is_space(char c) { return c == ' ' || c == '\t'; }

typedef struct cfg_ctx {
    kvp_ini_reader rd; /* the file, its line counts */
    kvp_scenario *sc;
    int pass;     /* 1: hw and model presets; 2: everything else */
    int err_line; /* line of the first failed assignment, or 0 */
    kvp_error err;
} cfg_ctx;

char *kvp_ini_read_line(char *str, int num, void *reader)
{
    kvp_ini_reader *r = reader;
    r->max_line = num;
    if (!fgets(str, num, r->f))
        return NULL;
    r->line++;
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] != '\n') {
        int ch = getc(r->f);
        if (ch != EOF && ch != '\n') {
            while ((ch = getc(r->f)) != EOF && ch != '\n') {
            }
            if (!r->long_line)
                r->long_line = r->line;
            str[0] = '\0';
            return str;
        }
    }
    r->indented = is_space(str[0]);
    if (!r->keep_indent) {
        size_t lead = strspn(str, " \t");
        memmove(str, str + lead, n - lead + 1);
    }
    for (char *s = str; *s; s++)
        if (*s == '#' && s > str && is_space(s[-1])) {
            *s = '\0';
            break;
        }
    return str;
}

/* A machine in readable sections (docs/CLI.md "Config files"): in "[tier K]" (or "[hbm]",
 * tier 0) the keys capacity, bandwidth, link name tierK_capacity ...; in "[link J]" the keys
 * bandwidth, up_bandwidth, down_bandwidth name linkJ_bandwidth ...  Any other section only
 * groups keys.  Returns name itself when the section does not rename it. */
static const char *section_name(const char *section, const char *name, char *buf, size_t len)
{
    unsigned k;
    char tail;
    int tier = sscanf(section, "tier %u%c", &k, &tail) == 1 ||
               sscanf(section, "tier%u%c", &k, &tail) == 1;
    int link = !tier && (sscanf(section, "link %u%c", &k, &tail) == 1 ||
                         sscanf(section, "link%u%c", &k, &tail) == 1);
    if (strcmp(section, "hbm") == 0) {
        tier = 1;
        k = 0;
    }
    if (tier && (strcmp(name, "capacity") == 0 || strcmp(name, "bandwidth") == 0 ||
                 (k > 0 && strcmp(name, "link") == 0)))
        snprintf(buf, len, "tier%u_%s", k, name);
    else if (link && (strcmp(name, "bandwidth") == 0 || strcmp(name, "up_bandwidth") == 0 ||
                      strcmp(name, "down_bandwidth") == 0))
        snprintf(buf, len, "link%u_%s", k, name);
    else
        return name;
    if (k == 0)
        snprintf(buf, len, "hbm_%s", name);
    return buf;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
    cfg_ctx *c = user;
    int rc;
    /* sections only group keys; [run] holds the command's options (cli/experiment.c) */
    if (section && strcmp(section, "run") == 0)
        return 1;
    char renamed[64];
    name = section_name(section, name, renamed, sizeof renamed);
    if (c->err_line)
        return 1; /* only the first error is reported; inih keeps the line of the first */
    int preset = strcmp(name, "hw") == 0 || strcmp(name, "model") == 0;
    if (preset != (c->pass == 1))
        return 1;
    if (!value)
        rc = kvp_error_set(&c->err, KVP_EFORMAT, "%s: expected \"name = value\"", name);
    else if (preset)
        rc = kvp_preset_apply_builtin(c->sc, value, name, &c->err);
    else
        rc = kvp_param_set(c->sc, name, value, &c->err);
    if (rc < 0) {
        c->err_line = c->rd.line;
        return 0;
    }
    return 1;
}

/* One pass over the file.  Returns < 0 only when the file cannot be read; otherwise *line is
 * the first line at fault in this pass (0: none) and fail holds its message. */
static int cfg_pass(cfg_ctx *c, const char *path, int *line, kvp_error *fail, kvp_error *err)
{
    c->rd.line = 0;
    c->rd.long_line = 0;
    c->err_line = 0;
    *line = 0;
    rewind(c->rd.f);
    int rc = ini_parse_stream(kvp_ini_read_line, &c->rd, cfg_handler, c);
    if (ferror(c->rd.f))
        return kvp_error_set(err, KVP_EIO, "%s: cannot read: %s", path, strerror(errno));
    if (rc < 0)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    if (c->rd.long_line && (rc == 0 || c->rd.long_line < rc)) {
        *line = c->rd.long_line;
        kvp_error_set(fail, KVP_EFORMAT, "%s:%d: line longer than %d characters", path, *line,
                      c->rd.max_line - 1);
    } else if (rc > 0 && rc == c->err_line) {
        *line = rc;
        kvp_error_set(fail, c->err.code, "%s:%d: %s", path, rc, c->err.msg);
    } else if (rc > 0) {
        *line = rc;
        kvp_error_set(fail, KVP_EFORMAT,
                      "%s:%d: expected \"name = value\", \"[section]\" or a comment", path, rc);
    }
    return 0;
}

int kvp_config_load(kvp_scenario *sc, const char *path, kvp_error *err)
{
    kvp_scenario tmp = *sc;
    kvp_error fail, first;
    int line, first_line = 0, rc = 0;
    cfg_ctx c;
    memset(&c, 0, sizeof c);
    c.sc = &tmp;
    c.rd.f = fopen(path, "r");
    if (!c.rd.f)
        return kvp_error_set(err, KVP_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* Presets first, whatever their place in the file, so that keys refine them.  Both passes
     * always run, so that the error reported is the first in the file, whichever pass met it
     * (each pass meets every syntax error; values do not depend on the presets). */
    for (c.pass = 1; c.pass <= 2 && rc == 0; c.pass++) {
        rc = cfg_pass(&c, path, &line, &fail, err);
        if (rc == 0 && line && (!first_line || line < first_line)) {
            first_line = line;
            first = fail;
        }
    }
    fclose(c.rd.f);
    if (rc < 0)
        return rc;
    if (first_line)
        return kvp_error_set(err, first.code, "%s", first.msg);
    *sc = tmp;
    return 0;
}

/* 1 if any parameter of the group differs between a and b. */
static int group_changed(const kvp_scenario *a, const kvp_scenario *b, const char *group)
{
    size_t np;
    const kvp_param_info *ps = kvp_params(&np);
    for (size_t i = 0; i < np; i++) {
        char va[64], vb[64];
        if (strcmp(ps[i].group, group) != 0)
            continue;
        if (kvp_param_format(a, &ps[i], va, sizeof va) < 0 ||
            kvp_param_format(b, &ps[i], vb, sizeof vb) < 0 || strcmp(va, vb) != 0)
            return 1;
    }
    return 0;
}

int kvp_preset_apply(kvp_scenario *sc, const char *name, const char *kind, kvp_error *err)
{
    int rc = kvp_preset_check_kind(kind, err);
    if (rc < 0)
        return rc;
    if (!name || !*name)
        return kvp_error_set(err, KVP_EINVAL, "empty %s preset name",
                             kind ? kvp_preset_kind_word(kind) : "");
    if (kvp_preset_is_builtin(name))
        return kvp_preset_apply_builtin(sc, name, kind, err);
    FILE *f = fopen(name, "r");
    if (!f) /* a name with a '/' was meant as a file: say why it cannot be read */
        return strchr(name, '/') ? kvp_config_load(sc, name, err)
                                 : kvp_preset_apply_builtin(sc, name, kind, err);
    fclose(f);
    kvp_scenario tmp = *sc;
    if ((rc = kvp_config_load(&tmp, name, err)) < 0)
        return rc;
    /* kind NULL: the file names whichever side it set */
    if (kind ? strcmp(kind, KVP_PRESET_HW) == 0 : group_changed(sc, &tmp, "hardware"))
        kvp_preset_set_name(tmp.hw_name, sizeof tmp.hw_name, name);
    if (kind ? strcmp(kind, KVP_PRESET_MODEL) == 0 : group_changed(sc, &tmp, "model"))
        kvp_preset_set_name(tmp.model_name, sizeof tmp.model_name, name);
    *sc = tmp;
    return 0;
}

/* Which parameters of the preset's group differ from the preset itself (presets.h). */
int kvp_preset_modified(const kvp_scenario *sc, const char *kind, const kvp_param_info **out,
                        size_t max)
{
    const char *name = strcmp(kind, KVP_PRESET_HW) == 0 ? sc->hw_name : sc->model_name;
    const char *group = strcmp(kind, KVP_PRESET_HW) == 0 ? "hardware" : "model";
    kvp_scenario base;
    kvp_error err;
    if (!name[0])
        return 0;
    kvp_scenario_default(&base);
    if (kvp_preset_apply(&base, name, kind, &err) < 0)
        return KVP_EINVAL;
    size_t np, n = 0;
    const kvp_param_info *ps = kvp_params(&np);
    for (size_t i = 0; i < np; i++) {
        char va[64], vb[64];
        if (strcmp(ps[i].group, group) != 0)
            continue;
        if (kvp_param_format(sc, &ps[i], va, sizeof va) < 0 ||
            kvp_param_format(&base, &ps[i], vb, sizeof vb) < 0 || strcmp(va, vb) != 0) {
            if (n < max)
                out[n] = &ps[i];
            n++;
        }
    }
    return (int)n;
}
