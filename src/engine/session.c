/* Sessions: `kvplace run` as a library call behind one handle, for bindings (python/kvplace
 * calls these through ctypes and reads the report's JSON text, so nothing in Python depends
 * on a struct's layout).  The run is the CLI's: static and unlimited join the list for the
 * speedups, every policy shares one kvp_run_many pass, the report is kvp_report_json's. */
#include "kvplace.h"
#include "base/error.h"

#include <stdlib.h>
#include <string.h>

#define SESSION_MAX_POLICIES 64

struct kvp_session {
    kvp_scenario sc;
    kvp_trace *tr; /* a file or buffer; NULL: synthetic at run time */
    int sets_length; /* prompt or steps were set (a trace defines them) */
    char *json;      /* the last run's report */
};

int kvp_session_create(kvp_session **out, kvp_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return kvp_error_set(err, KVP_ENOMEM, "out of memory");
    kvp_scenario_default(&(*out)->sc);
    return 0;
}

void kvp_session_free(kvp_session *s)
{
    if (!s)
        return;
    kvp_trace_free(s->tr);
    free(s->json);
    free(s);
}

int kvp_session_preset(kvp_session *s, const char *name, const char *kind, kvp_error *err)
{
    return kvp_preset_apply(&s->sc, name, kind, err);
}

int kvp_session_set(kvp_session *s, const char *name, const char *value, int synthetic_only,
                    kvp_error *err)
{
    const kvp_param_info *p = kvp_param_find(name);
    if (p && synthetic_only && strcmp(p->group, "synthetic") != 0)
        return kvp_error_set(err, KVP_EINVAL, "%s is not a parameter of the synthetic trace "
                             "(prompt, steps, seed, variation); set it with the scenario",
                             name);
    int rc = kvp_param_set(&s->sc, name, value, err);
    if (rc >= 0 && p && (strcmp(p->name, "prompt") == 0 || strcmp(p->name, "steps") == 0))
        s->sets_length = 1;
    return rc;
}

int kvp_session_trace_npy(kvp_session *s, const char *path, kvp_error *err)
{
    kvp_trace *t;
    int rc = kvp_trace_open_npy(&t, path, err);
    if (rc < 0)
        return rc;
    kvp_trace_free(s->tr);
    s->tr = t;
    return 0;
}

int kvp_session_trace_buffer(kvp_session *s, const void *data, int dtype, size_t ndim,
                             const uint64_t *shape, const char *name, kvp_error *err)
{
    kvp_trace *t;
    int rc = kvp_trace_from_buffer(&t, data, dtype, ndim, shape, name, err);
    if (rc < 0)
        return rc;
    kvp_trace_free(s->tr);
    s->tr = t;
    return 0;
}

static int find_policy(const kvp_policy_spec *specs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvp_policy_name(specs[i].ops), name) == 0)
            return (int)i;
    return -1;
}

/* Runs specs[0..n-1] plus static and unlimited where missing (room for two more is kept
 * past n); res[0..n-1] get the results with their speedups. */
static int run_with_refs(const kvp_scenario *sc, const kvp_trace *tr, kvp_policy_spec *specs,
                         size_t n, const kvp_run_options *ro, kvp_result *res, kvp_error *err)
{
    static const char *const refs[] = {"static", "unlimited"};
    size_t where[2], total = n;
    for (size_t k = 0; k < 2; k++) {
        int w = find_policy(specs, n, refs[k]);
        if (w >= 0) {
            where[k] = (size_t)w;
            continue;
        }
        int rc = kvp_policy_parse(&specs[total], refs[k], err);
        if (rc < 0)
            return rc;
        where[k] = total++;
    }
    int rc = kvp_run_many(sc, tr, specs, total, ro, res, err);
    if (rc < 0)
        return rc;
    kvp_result_speedups(res, n, res[where[0]].total_time_s, res[where[1]].total_time_s);
    return 0;
}

int kvp_session_run(kvp_session *s, const char *policies, unsigned threads, kvp_error *err)
{
    free(s->json);
    s->json = NULL;
    if (!policies)
        return kvp_error_set(err, KVP_EINVAL, "no policies given");
    if (s->tr && s->sets_length)
        return kvp_error_set(err, KVP_EINVAL, "prompt or steps set with a trace given: the "
                             "trace defines them");
    kvp_scenario sc = s->sc;
    int rc = kvp_scenario_validate(&sc, err);
    if (rc < 0)
        return rc;
    kvp_policy_spec *specs = calloc(SESSION_MAX_POLICIES + 2, sizeof *specs);
    kvp_result *res = calloc(SESSION_MAX_POLICIES + 2, sizeof *res);
    kvp_trace *synth = NULL;
    if (!specs || !res) {
        rc = kvp_error_set(err, KVP_ENOMEM, "out of memory");
        goto done;
    }
    int n = kvp_policy_parse_list(specs, SESSION_MAX_POLICIES, policies, err);
    if (n < 0) {
        rc = n;
        goto done;
    }
    const kvp_trace *tr = s->tr;
    if (tr) { /* the trace defines the run's length; the report shows the values used */
        sc.prompt = kvp_trace_prompt(tr);
        sc.steps = kvp_trace_steps(tr);
    } else {
        kvp_synth_params sp;
        kvp_synth_default(&sp, &sc);
        if ((rc = kvp_trace_synthetic_sequences(&synth, &sp, sc.sequences, err)) < 0)
            goto done;
        tr = synth;
    }
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    if (threads)
        ro.threads = threads;
    if ((rc = run_with_refs(&sc, tr, specs, (size_t)n, &ro, res, err)) < 0)
        goto done;
    kvp_report rep = {&sc, tr, res, (size_t)n};
    rc = kvp_report_json_text(&rep, &s->json, err);
done:
    kvp_trace_free(synth);
    free(specs);
    free(res);
    return rc < 0 ? rc : 0;
}

const char *kvp_session_json(const kvp_session *s)
{
    return s ? s->json : NULL;
}
