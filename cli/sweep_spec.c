/*
 * Sweep specs (docs/SWEEP.md): an INI file read with inih.  [sweep] names the policies,
 * [base] the settings every point shares, [vary] the keys crossed with each other, and each
 * [zip...] section a group of keys that vary together.  A key is hw, model, trace, or a
 * parameter of `kvplace params`.  Every value is checked where it is read, so that a message
 * names its file and line; every point's scenario is then built and validated before anything
 * runs, so that a sweep never fails half way for a bad combination.
 */
#include "sweep.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VALUE_TEXT 64
#define KEY_TEXT 4096
#define SETTINGS_TEXT 1024
/* Floating tolerance of a range's end: 0.4 + 4 * 0.1 must still reach 0.8. */
#define RANGE_EPS 1e-9

uint64_t sweep_hash(uint64_t h, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char *dup_text(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading the file                                                                         */

typedef struct spec_ctx {
    sweep_spec *s;
    kvp_ini_reader rd; /* the file, its line counts; indented: a continuation line */
    int err_line;      /* of the first error; only that one is reported */
    char err[600];
    sweep_var *last;   /* the key of the previous line, which a continuation extends */
    char last_section[64];
    char **zip_names;  /* the [zip...] sections, by axis */
} spec_ctx;

static int fail(spec_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Records the first error, naming the file and line; returns 0 (inih's "failed"). */
static int fail(spec_ctx *c, const char *fmt, ...)
{
    if (!c->err_line) {
        va_list ap;
        va_start(ap, fmt);
        int w = snprintf(c->err, sizeof c->err, "%s:%d: ", c->s->path, c->rd.line);
        vsnprintf(c->err + w, sizeof c->err - (size_t)w, fmt, ap);
        va_end(ap);
        c->err_line = c->rd.line;
    }
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static int is_special(const char *name)
{
    return strcmp(name, "hw") == 0 || strcmp(name, "model") == 0 || strcmp(name, "trace") == 0;
}

/* A config file named by a relative path is found beside the spec; a preset by its name. */
static int is_preset(const char *name)
{
    size_t n;
    const kvp_preset *p = kvp_presets(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return 1;
    return 0;
}

static char *resolve(const sweep_spec *s, const char *file)
{
    if (file[0] == '/' || !s->dir[0])
        return dup_text(file);
    size_t n = strlen(s->dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", s->dir, file);
    return p;
}

/* Checks one value of a key on a scratch scenario, so that the message names the line. */
static int check_value(spec_ctx *c, const char *name, const char *value)
{
    kvp_scenario sc;
    kvp_error err = {0};
    kvp_scenario_default(&sc);
    if (strcmp(name, "trace") == 0) {
        if (strcmp(value, "synthetic") == 0 || strcmp(value, SWEEP_TRACE_HEADS) == 0)
            return 1;
        char *path = resolve(c->s, value);
        int ok = path && access(path, R_OK) == 0;
        int e = errno;
        if (!ok)
            fail(c, "trace = %s: cannot read %s: %s", value, path ? path : value,
                 path ? strerror(e) : "out of memory");
        free(path);
        return ok;
    }
    if (strcmp(name, "hw") == 0 || strcmp(name, "model") == 0) {
        char *path = is_preset(value) ? dup_text(value) : resolve(c->s, value);
        int rc = path ? kvp_preset_apply(&sc, path, name, &err) : KVP_ENOMEM;
        free(path);
        if (rc < 0)
            return fail(c, "%s = %s: %s", name, value, rc == KVP_ENOMEM ? "out of memory"
                                                                        : err.msg);
        return 1;
    }
    if (kvp_param_set(&sc, name, value, &err) < 0)
        return fail(c, "%s = %s: %s", name, value, err.msg);
    return 1;
}

static int add_value(spec_ctx *c, sweep_var *v, const char *text)
{
    if (!check_value(c, v->name, text))
        return 0;
    char **grown = realloc(v->values, (v->n + 1) * sizeof *grown);
    if (!grown)
        return fail(c, "out of memory");
    v->values = grown;
    if (!(v->values[v->n] = dup_text(text)))
        return fail(c, "out of memory");
    v->n++;
    return 1;
}

static int parse_number(spec_ctx *c, const char *name, const char *text, double *out)
{
    kvp_error err = {0};
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    if (end != text && !*end && !errno && isfinite(*out))
        return 1;
    /* Sizes with their suffixes: 24GB, 4.9TB/s. */
    if (kvp_parse_bandwidth(text, out, &err) < 0 || !isfinite(*out))
        return fail(c, "%s: \"%s\" is not a number: %s", name, text, err.msg);
    return 1;
}

/* "range START STOP STEP" (START, START+STEP, ... up to STOP) or "geom START STOP FACTOR"
 * (START, START*FACTOR, ... up to STOP); both include STOP when it is reached. */
static int add_range(spec_ctx *c, sweep_var *v, char *text, int geom)
{
    char *tok[4];
    size_t n = 0;
    for (char *t = strtok(text, " \t"); t; t = strtok(NULL, " \t"))
        if (n < 4)
            tok[n++] = t;
        else
            n = 5;
    const char *form = geom ? "geom START STOP FACTOR" : "range START STOP STEP";
    if (n != 3)
        return fail(c, "%s: expected \"%s\"", v->name, form);
    double a, b, step;
    if (!parse_number(c, v->name, tok[0], &a) || !parse_number(c, v->name, tok[1], &b) ||
        !parse_number(c, v->name, tok[2], &step))
        return 0;
    if (!geom && !(step > 0))
        return fail(c, "%s: range step %s: the step must be above 0", v->name, tok[2]);
    if (geom && !(step > 1))
        return fail(c, "%s: geom factor %s: the factor must be above 1", v->name, tok[2]);
    if (geom && !(a > 0))
        return fail(c, "%s: geom start %s: the start must be above 0", v->name, tok[0]);
    if (b < a)
        return fail(c, "%s: %s %s %s %s is an empty range (its stop is below its start)",
                    v->name, geom ? "geom" : "range", tok[0], tok[1], tok[2]);
    double tol = RANGE_EPS * fmax(fabs(a), fabs(b));
    double count = geom ? floor(log(b / a) / log(step) + RANGE_EPS) + 1
                        : floor((b - a) / step + RANGE_EPS) + 1;
    if (!(count <= SWEEP_MAX_POINTS))
        return fail(c, "%s: the range has %.0f values, more than a sweep may have (%d)",
                    v->name, count, SWEEP_MAX_POINTS);
    double x = a;
    for (size_t i = 0; i < (size_t)count; i++) {
        char buf[VALUE_TEXT];
        if (!geom)
            x = a + (double)i * step;
        if (x > b + tol)
            break;
        /* 15 digits: 0.4 + 2 * 0.1 is written 0.6, as the user would write it. */
        snprintf(buf, sizeof buf, "%.15g", x);
        if (!add_value(c, v, buf))
            return 0;
        x *= step;
    }
    return 1;
}

/* "a, b, c", or a range. */
static int add_values(spec_ctx *c, sweep_var *v, const char *value, int list)
{
    char *text = dup_text(value);
    if (!text)
        return fail(c, "out of memory");
    char *t = trim(text);
    int ok = 1;
    if (list && (strncmp(t, "range ", 6) == 0 || strncmp(t, "geom ", 5) == 0)) {
        ok = add_range(c, v, t + (t[0] == 'r' ? 6 : 5), t[0] == 'g');
    } else if (!list) {
        ok = *t ? add_value(c, v, t) : fail(c, "%s: no value", v->name);
    } else {
        char *item = t;
        for (;;) {
            char *comma = strchr(item, ',');
            if (comma)
                *comma = 0;
            char *one = trim(item);
            if (!*one && !comma && item != t)
                break; /* "a, b," before a continuation line */
            if (!*one) {
                ok = fail(c, "%s: an empty value in the list \"%s\"", v->name, value);
                break;
            }
            if (!(ok = add_value(c, v, one)))
                break;
            if (!comma)
                break;
            item = comma + 1;
        }
    }
    free(text);
    return ok;
}

static sweep_var *find_var(sweep_spec *s, const char *name)
{
    for (size_t i = 0; i < s->nvars; i++)
        if (strcmp(s->vars[i].name, name) == 0)
            return &s->vars[i];
    return NULL;
}

static int new_axis(spec_ctx *c, const char *zip_name)
{
    sweep_spec *s = c->s;
    sweep_axis *ax = realloc(s->axes, (s->naxes + 1) * sizeof *ax);
    if (!ax)
        return -1;
    s->axes = ax;
    char **names = realloc(c->zip_names, (s->naxes + 1) * sizeof *names);
    if (!names)
        return -1;
    c->zip_names = names;
    names[s->naxes] = zip_name ? dup_text(zip_name) : NULL;
    memset(&ax[s->naxes], 0, sizeof *ax);
    return (int)s->naxes++;
}

static int spec_handler(void *user, const char *section, const char *name, const char *value)
{
    spec_ctx *c = user;
    sweep_spec *s = c->s;
    if (c->err_line)
        return 1;
    if (!value)
        return fail(c, "%s: expected \"name = value\"", name);
    int is_base = strcmp(section, "base") == 0, is_vary = strcmp(section, "vary") == 0;
    int is_zip = strncmp(section, "zip", 3) == 0;
    /* A continuation line (indented) adds values to the key above it. */
    if (c->rd.indented && c->last && strcmp(c->last->name, name) == 0 &&
        strcmp(c->last_section, section) == 0 && (is_vary || is_zip))
        return add_values(c, c->last, value, 1);
    c->last = NULL;
    if (strcmp(section, "sweep") == 0) {
        if (strcmp(name, "policies") != 0)
            return fail(c, "unknown key \"%s\" in [sweep] (it takes: policies)", name);
        if (s->policies)
            return fail(c, "policies is given twice");
        kvp_policy_spec tmp[SWEEP_MAX_POLICIES];
        kvp_error err = {0};
        /* "static, reactive" reads as "static,reactive": a policy has no blanks. */
        if (!(s->policies = dup_text(value)))
            return fail(c, "out of memory");
        char *w = s->policies;
        for (const char *r = value; *r; r++)
            if (*r != ' ' && *r != '\t')
                *w++ = *r;
        *w = 0;
        if (kvp_policy_parse_list(tmp, SWEEP_MAX_POLICIES, s->policies, &err) < 0)
            return fail(c, "policies = %s: %s", value, err.msg);
        return 1;
    }
    if (!section[0])
        return fail(c, "%s: a key outside any section (put it under [base] or [vary])", name);
    if (!is_base && !is_vary && !is_zip)
        return fail(c, "unknown section [%s] (a spec has [sweep], [base], [vary] and "
                    "[zip...])", section);
    if (!is_special(name) && !kvp_param_find(name))
        return fail(c, "unknown parameter \"%s\" (see kvplace params; hw, model and trace "
                    "name the presets and the trace)", name);
    sweep_var *prev = find_var(s, name);
    if (prev)
        return fail(c, "%s is set twice (line %d and here): a key has one place in a spec",
                    name, prev->line);
    if (s->nvars == s->capvars) {
        /* Axes point at the keys, so the array is sized once: there are never more keys
         * than parameters, hw, model and trace. */
        return fail(c, "too many keys");
    }
    sweep_var *v = &s->vars[s->nvars++];
    memset(v, 0, sizeof *v);
    v->line = c->rd.line;
    if (!(v->name = dup_text(name)))
        return fail(c, "out of memory");
    if (!add_values(c, v, value, !is_base))
        return 0;
    if (is_base)
        return 1;
    int a = -1;
    for (size_t i = 0; is_zip && i < s->naxes; i++)
        if (c->zip_names[i] && strcmp(c->zip_names[i], section) == 0)
            a = (int)i;
    if (a < 0 && (a = new_axis(c, is_zip ? section : NULL)) < 0)
        return fail(c, "out of memory");
    sweep_axis *ax = &s->axes[a];
    sweep_var **grown = realloc(ax->vars, (ax->nvars + 1) * sizeof *grown);
    if (!grown)
        return fail(c, "out of memory");
    ax->vars = grown;
    ax->vars[ax->nvars++] = v;
    c->last = v;
    snprintf(c->last_section, sizeof c->last_section, "%s", section);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Expanding                                                                                */

static const char *value_of(const sweep_spec *s, const size_t *at, const char *name)
{
    for (size_t a = 0; a < s->naxes; a++)
        for (size_t k = 0; k < s->axes[a].nvars; k++)
            if (strcmp(s->axes[a].vars[k]->name, name) == 0)
                return s->axes[a].vars[k]->values[at[a]];
    for (size_t i = 0; i < s->nvars; i++)
        if (strcmp(s->vars[i].name, name) == 0)
            return s->vars[i].values[0];
    return NULL;
}

static int is_varied(const sweep_spec *s, const sweep_var *v)
{
    for (size_t a = 0; a < s->naxes; a++)
        for (size_t k = 0; k < s->axes[a].nvars; k++)
            if (s->axes[a].vars[k] == v)
                return 1;
    return 0;
}

/* Appends the strings (up to a NULL) to buf, as far as they fit. */
static void append(char *buf, size_t len, ...)
{
    va_list ap;
    va_start(ap, len);
    for (const char *t; (t = va_arg(ap, const char *)) != NULL;) {
        size_t used = strlen(buf);
        if (used + 1 < len)
            snprintf(buf + used, len - used, "%s", t);
    }
    va_end(ap);
}

/* Defaults, then the presets, then [base] in file order, then the axes in order. */
static int build_point(sweep_spec *s, sweep_point *p, const size_t *at)
{
    kvp_error err = {0};
    char settings[SETTINGS_TEXT] = "";
    kvp_scenario_default(&p->sc);
    for (size_t a = 0; a < s->naxes; a++)
        for (size_t k = 0; k < s->axes[a].nvars; k++)
            append(settings, sizeof settings, settings[0] ? " " : "",
                   s->axes[a].vars[k]->name, "=", s->axes[a].vars[k]->values[at[a]],
                   (const char *)NULL);
    if (!(p->settings = dup_text(settings)))
        return cli_error("out of memory");
    static const char *const presets[] = {"hw", "model"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = value_of(s, at, presets[i]);
        if (!v)
            continue;
        char *path = is_preset(v) ? dup_text(v) : resolve(s, v);
        int rc = path ? kvp_preset_apply(&p->sc, path, presets[i], &err) : KVP_ENOMEM;
        free(path);
        if (rc < 0)
            return cli_error("%s: point %s (%s): %s", s->path, p->id, settings, err.msg);
        /* A config file is named as the spec names it, wherever the sweep runs from. */
        if (!is_preset(v))
            snprintf(i ? p->sc.model_name : p->sc.hw_name, sizeof p->sc.hw_name, "%s", v);
    }
    for (int varied = 0; varied <= 1; varied++)
        for (size_t i = 0; i < s->nvars; i++) {
            const sweep_var *v = &s->vars[i];
            if (is_special(v->name) || is_varied(s, v) != varied)
                continue;
            if (kvp_param_set(&p->sc, v->name, value_of(s, at, v->name), &err) < 0)
                return cli_error("%s: point %s (%s): %s", s->path, p->id, settings, err.msg);
        }
    if (kvp_scenario_validate(&p->sc, &err) < 0)
        return cli_error("%s: point %zu (%s): %s", s->path, p->index, settings[0] ? settings
                         : "the base", err.msg);
    const char *trace = value_of(s, at, "trace");
    p->trace = trace ? trace : "synthetic";
    if (strcmp(p->trace, "synthetic") != 0 && strcmp(p->trace, SWEEP_TRACE_HEADS) != 0 &&
        !(p->trace_path = resolve(s, p->trace)))
        return cli_error("out of memory");
    return 0;
}

/* The key: every setting that shapes the point's results. */
static void point_key(const sweep_point *p, char *key, size_t keylen)
{
    snprintf(key, keylen, "hw=%s;model=%s;trace=%s;", p->sc.hw_name, p->sc.model_name,
             p->trace);
    size_t np;
    const kvp_param_info *params = kvp_params(&np);
    for (size_t i = 0; i < np; i++) {
        char t[VALUE_TEXT];
        if (kvp_param_format(&p->sc, &params[i], t, sizeof t) < 0)
            t[0] = 0;
        append(key, keylen, params[i].name, "=", t, ";", (const char *)NULL);
    }
}

/* The digits of the ids' index: at least 4, as many as the last index needs. */
static int id_width(size_t npts)
{
    int width = 4;
    for (size_t t = npts ? npts - 1 : 0; t >= 10000; t /= 10)
        width++;
    return width;
}

int sweep_spec_seal(sweep_spec *s)
{
    char *key = malloc(KEY_TEXT);
    if (!key)
        return cli_error("out of memory");
    int width = id_width(s->npts);
    char pol[KEY_TEXT] = "";
    for (size_t i = 0; i < s->nspecs; i++) {
        char one[256];
        kvp_policy_format(&s->specs[i], one, sizeof one);
        append(pol, sizeof pol, i ? "," : "", one, (const char *)NULL);
    }
    uint64_t h = sweep_hash(SWEEP_HASH_INIT, "kvplace sweep 1\nversion " KVP_VERSION
                                             "\npolicies ");
    h = sweep_hash(h, pol);
    for (size_t i = 0; i < s->npts; i++) {
        sweep_point *p = &s->pts[i];
        point_key(p, key, KEY_TEXT);
        uint64_t ph = sweep_hash(SWEEP_HASH_INIT, key);
        if (snprintf(p->id, sizeof p->id, "%0*zu-%012" PRIx64, width, p->index, ph >> 16) >=
            (int)sizeof p->id) {
            free(key);
            return cli_error("point index too long");
        }
        h = sweep_hash(h, "\n");
        h = sweep_hash(h, key);
    }
    snprintf(s->hash, sizeof s->hash, "%016" PRIx64, h);
    free(key);
    return 0;
}

static int expand(sweep_spec *s)
{
    size_t total = 1;
    for (size_t a = 0; a < s->naxes; a++) {
        sweep_axis *ax = &s->axes[a];
        ax->n = ax->vars[0]->n;
        for (size_t k = 1; k < ax->nvars; k++)
            if (ax->vars[k]->n != ax->n)
                return cli_error("%s:%d: zipped keys vary together and need as many values "
                                 "each: %s has %zu, %s has %zu", s->path, ax->vars[k]->line,
                                 ax->vars[0]->name, ax->n, ax->vars[k]->name,
                                 ax->vars[k]->n);
        if (total > SWEEP_MAX_POINTS / ax->n)
            return cli_error("%s: the sweep has more than %d points", s->path,
                             SWEEP_MAX_POINTS);
        total *= ax->n;
    }
    s->pts = calloc(total, sizeof *s->pts);
    size_t *at = calloc(s->naxes + 1, sizeof *at);
    if (!s->pts || !at) {
        free(at);
        return cli_error("out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < total && !rc; i++) {
        /* The last axis varies fastest, as nested loops in the spec's order would. */
        size_t r = i;
        for (size_t a = s->naxes; a-- > 0;) {
            at[a] = r % s->axes[a].n;
            r /= s->axes[a].n;
        }
        sweep_point *p = &s->pts[i];
        p->index = i;
        s->npts = i + 1;
        /* for messages until sealed */
        if (snprintf(p->id, sizeof p->id, "%0*zu", id_width(total), i) >= (int)sizeof p->id)
            rc = cli_error("point index too long");
        else
            rc = build_point(s, p, at);
    }
    free(at);
    return rc ? rc : sweep_spec_seal(s);
}

/* --set name=value: replaces the [base] value, or adds one; a varied key is refused. */
static int apply_set(spec_ctx *c, const char *assignment)
{
    sweep_spec *s = c->s;
    const char *eq = strchr(assignment, '=');
    char name[VALUE_TEXT];
    if (!eq || eq == assignment || (size_t)(eq - assignment) >= sizeof name)
        return cli_error("--set %s: expected name=value", assignment);
    memcpy(name, assignment, (size_t)(eq - assignment));
    name[eq - assignment] = 0;
    const char *value = eq + 1;
    if (!is_special(name) && !kvp_param_find(name))
        return cli_error("--set %s: unknown parameter \"%s\" (see kvplace params)", assignment,
                         name);
    sweep_var *v = find_var(s, name);
    if (v && is_varied(s, v))
        return cli_error("--set %s: %s varies in %s (line %d); --set changes only [base]",
                         assignment, name, s->path, v->line);
    if (!v) {
        if (s->nvars == s->capvars)
            return cli_error("too many keys");
        v = &s->vars[s->nvars++];
        memset(v, 0, sizeof *v);
        if (!(v->name = dup_text(name)))
            return cli_error("out of memory");
    }
    for (size_t k = 0; k < v->n; k++)
        free(v->values[k]);
    v->n = 0;
    c->rd.line = 0;
    if (!add_value(c, v, value)) {
        /* The message names the line; here it is the command line's. */
        const char *msg = strstr(c->err, ":0: ");
        return cli_error("--set %s", msg ? msg + 4 : c->err);
    }
    return 0;
}

int sweep_spec_load(sweep_spec *s, const char *path, const char *const *sets, size_t nsets,
                    const char *policies)
{
    memset(s, 0, sizeof *s);
    spec_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    size_t np;
    kvp_params(&np);
    s->capvars = np + 3;
    s->vars = calloc(s->capvars, sizeof *s->vars);
    s->path = dup_text(path);
    s->dir = dup_text(path);
    if (!s->vars || !s->path || !s->dir)
        return cli_error("out of memory");
    char *slash = strrchr(s->dir, '/');
    if (slash)
        *(slash == s->dir ? slash + 1 : slash) = 0;
    else
        s->dir[0] = 0;
    c.rd.f = fopen(path, "r");
    c.rd.keep_indent = 1;
    if (!c.rd.f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    int rc = ini_parse_stream(kvp_ini_read_line, &c.rd, spec_handler, &c);
    int read_err = ferror(c.rd.f);
    fclose(c.rd.f);
    for (size_t i = 0; i < s->naxes; i++)
        free(c.zip_names[i]);
    free(c.zip_names);
    if (read_err)
        return cli_error("%s: cannot read", path);
    if (rc < 0)
        return cli_error("%s: out of memory", path);
    if (c.rd.long_line && (rc == 0 || c.rd.long_line < rc) &&
        (!c.err_line || c.rd.long_line < c.err_line))
        return cli_error("%s:%d: line longer than %d characters (continue a list on an "
                         "indented line)", path, c.rd.long_line, c.rd.max_line - 3);
    if (c.err_line && (rc == 0 || c.err_line <= rc))
        return cli_error("%s", c.err);
    if (rc > 0)
        return cli_error("%s:%d: expected \"name = value\", \"[section]\" or a comment", path,
                         rc);
    for (size_t i = 0; i < nsets; i++)
        if ((rc = apply_set(&c, sets[i])) != 0)
            return rc;
    if (policies) {
        free(s->policies);
        if (!(s->policies = dup_text(policies)))
            return cli_error("out of memory");
    }
    if (!s->policies) {
        char list[1024], left_out[256];
        cli_default_policies(list, sizeof list, left_out, sizeof left_out);
        if (!(s->policies = dup_text(list)))
            return cli_error("out of memory");
    }
    kvp_error err = {0};
    int n = kvp_policy_parse_list(s->specs, SWEEP_MAX_POLICIES, s->policies, &err);
    if (n < 0)
        return cli_error("%s: policies: %s", path, err.msg);
    s->nspecs = (size_t)n;
    return expand(s);
}

void sweep_spec_free(sweep_spec *s)
{
    for (size_t i = 0; i < s->npts; i++) {
        free(s->pts[i].trace_path);
        free(s->pts[i].settings);
    }
    free(s->pts);
    for (size_t a = 0; a < s->naxes; a++)
        free(s->axes[a].vars);
    free(s->axes);
    for (size_t i = 0; i < s->nvars; i++) {
        for (size_t k = 0; k < s->vars[i].n; k++)
            free(s->vars[i].values[k]);
        free(s->vars[i].values);
        free(s->vars[i].name);
    }
    free(s->vars);
    free(s->policies);
    free(s->path);
    free(s->dir);
    memset(s, 0, sizeof *s);
}
