/* The policy registry and the parser of policy specs ("lookahead:W=16:R=0.5"). */
#include "policy/policy.h"
#include "base/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define X(name) extern const kvp_policy_ops kvp_policy_##name;
#include "policy/list.h"
#undef X

static const kvp_policy_ops *const registry[] = {
#define X(name) &kvp_policy_##name,
#include "policy/list.h"
#undef X
};

const kvp_policy_ops *const *kvp_policies(size_t *count)
{
    *count = sizeof registry / sizeof *registry;
    return registry;
}

const char *kvp_policy_name(const kvp_policy_ops *ops) { return ops->name; }
const char *kvp_policy_doc(const kvp_policy_ops *ops) { return ops->doc; }
int kvp_policy_online(const kvp_policy_ops *ops) { return (ops->caps & KVP_CAP_ONLINE) != 0; }
int kvp_policy_streams(const kvp_policy_ops *ops) { return (ops->caps & KVP_CAP_STREAMS) != 0; }

const kvp_policy_param *kvp_policy_params(const kvp_policy_ops *ops, size_t *count)
{
    *count = ops->nparams;
    return ops->params;
}

static const kvp_policy_ops *find_policy(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
        if (strlen(registry[i]->name) == len && strncmp(registry[i]->name, name, len) == 0)
            return registry[i];
    return NULL;
}

static void known_policies(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof registry / sizeof *registry && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", registry[i]->name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int kvp_policy_parse(kvp_policy_spec *ps, const char *text, kvp_error *err)
{
    memset(ps, 0, sizeof *ps);
    const char *colon = strchr(text, ':');
    size_t nlen = colon ? (size_t)(colon - text) : strlen(text);
    const kvp_policy_ops *ops = find_policy(text, nlen);
    if (!ops) {
        char known[256], name[64];
        known_policies(known, sizeof known);
        snprintf(name, sizeof name, "%.*s", (int)nlen, text);
        const char *names[sizeof registry / sizeof *registry + 1];
        for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
            names[i] = registry[i]->name;
        names[sizeof registry / sizeof *registry] = "all";
        const char *s = kvp_closest_name(name, names, sizeof names / sizeof *names);
        if (s)
            return kvp_error_set(err, KVP_EINVAL, "unknown policy \"%.*s\" (did you mean "
                                 "\"%s\"? known: %s)", (int)nlen, text, s, known);
        return kvp_error_set(err, KVP_EINVAL, "unknown policy \"%.*s\" (known: %s)",
                             (int)nlen, text, known);
    }
    ps->ops = ops;
    for (size_t i = 0; i < ops->nparams; i++)
        ps->value[i] = ops->params[i].deflt;
    const char *p = colon;
    unsigned seen = 0; /* parameters given, by index */
    while (p && *p == ':') {
        const char *key = p + 1;
        const char *end = strchr(key, ':');
        size_t len = end ? (size_t)(end - key) : strlen(key);
        const char *eq = memchr(key, '=', len);
        if (!eq)
            return kvp_error_set(err, KVP_EINVAL, "policy %s: \"%.*s\" is not key=value",
                                 ops->name, (int)len, key);
        size_t klen = (size_t)(eq - key);
        size_t i = 0;
        while (i < ops->nparams &&
               !(strlen(ops->params[i].name) == klen &&
                 strncmp(ops->params[i].name, key, klen) == 0))
            i++;
        if (i == ops->nparams) {
            char kname[64];
            const char *names[KVP_POLICY_MAX_PARAMS];
            snprintf(kname, sizeof kname, "%.*s", (int)klen, key);
            for (size_t k = 0; k < ops->nparams && k < KVP_POLICY_MAX_PARAMS; k++)
                names[k] = ops->params[k].name;
            const char *s = kvp_closest_name(kname, names, ops->nparams);
            return kvp_error_set(err, KVP_EINVAL, "policy %s has no parameter \"%.*s\"%s%s%s",
                                 ops->name, (int)klen, key, s ? " (did you mean \"" : "",
                                 s ? s : "", s ? "\"?)" : "");
        }
        if (seen & (1u << i))
            return kvp_error_set(err, KVP_EINVAL, "policy %s: %s is given twice in \"%s\"",
                                 ops->name, ops->params[i].name, text);
        seen |= 1u << i;
        const kvp_policy_param *pp = &ops->params[i];
        char val[64];
        size_t vlen = len - klen - 1;
        if (vlen == 0 || vlen >= sizeof val)
            return kvp_error_set(err, KVP_EINVAL, "policy %s: %s needs a value",
                                 ops->name, pp->name);
        memcpy(val, eq + 1, vlen);
        val[vlen] = 0;
        char *stop;
        double v = strtod(val, &stop);
        if (stop == val || *stop || !isfinite(v))
            return kvp_error_set(err, KVP_EINVAL, "policy %s: %s=\"%s\" is not a number",
                                 ops->name, pp->name, val);
        if (pp->integer && v != floor(v))
            return kvp_error_set(err, KVP_EINVAL, "policy %s: %s=%s is not a whole number",
                                 ops->name, pp->name, val);
        if (v < pp->min || v > pp->max)
            return kvp_error_set(err, KVP_EINVAL, "policy %s: %s=%s is out of range "
                                 "[%g, %g]", ops->name, pp->name, val, pp->min, pp->max);
        ps->value[i] = v;
        p = end;
    }
    return 0;
}

int kvp_policy_parse_list(kvp_policy_spec *out, size_t max, const char *text, kvp_error *err)
{
    size_t n = 0;
    const char *p = text;
    if (!*p)
        return kvp_error_set(err, KVP_EINVAL, "empty policy list");
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[256];
        if (len == 0 || len >= sizeof item)
            return kvp_error_set(err, KVP_EINVAL, "bad policy list \"%s\"", text);
        memcpy(item, p, len);
        item[len] = 0;
        if (strcmp(item, "all") == 0) {
            for (size_t i = 0; i < sizeof registry / sizeof *registry; i++) {
                if (registry[i]->caps & KVP_CAP_SMALL_ONLY)
                    continue;
                if (n == max)
                    return kvp_error_set(err, KVP_EINVAL, "too many policies (at most %zu)",
                                         max);
                kvp_policy_parse(&out[n++], registry[i]->name, err);
            }
        } else {
            if (n == max)
                return kvp_error_set(err, KVP_EINVAL, "too many policies (at most %zu)", max);
            int rc = kvp_policy_parse(&out[n], item, err);
            if (rc < 0)
                return rc;
            n++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return (int)n;
}

void kvp_policy_format(const kvp_policy_spec *ps, char *buf, size_t len)
{
    size_t used = 0;
    int w = snprintf(buf, len, "%s", ps->ops->name);
    for (size_t i = 0; w >= 0 && i < ps->ops->nparams; i++) {
        used += (size_t)w;
        if (used >= len)
            return;
        w = snprintf(buf + used, len - used, ":%s=%.17g", ps->ops->params[i].name,
                     ps->value[i]);
    }
}
