/* Sessions (what the Python package calls): a session's report is the report of the run the
 * CLI makes (kvp_run_many over the policies plus static and unlimited, speedups from those),
 * and every misuse is an error with a message, not a crash. */
#include "check.h"

#include "kvplace.h"

#include <stdlib.h>
#include <string.h>

static kvp_error err;

/* The report `kvplace run` writes for this scenario, trace and policy list, built here from
 * the public API as cli/run.c builds it. */
static char *cli_like(const kvp_scenario *sc, const kvp_trace *tr, const char *list)
{
    kvp_policy_spec ps[16];
    kvp_result res[16];
    int n = kvp_policy_parse_list(ps, 14, list, &err);
    if (n < 0)
        return NULL;
    size_t total = (size_t)n, at_static = 99, at_unlim = 99;
    for (size_t i = 0; i < (size_t)n; i++) {
        if (strcmp(kvp_policy_name(ps[i].ops), "static") == 0)
            at_static = i;
        if (strcmp(kvp_policy_name(ps[i].ops), "unlimited") == 0)
            at_unlim = i;
    }
    if (at_static == 99 && kvp_policy_parse(&ps[at_static = total++], "static", &err) < 0)
        return NULL;
    if (at_unlim == 99 && kvp_policy_parse(&ps[at_unlim = total++], "unlimited", &err) < 0)
        return NULL;
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    if (kvp_run_many(sc, tr, ps, total, &ro, res, &err) < 0)
        return NULL;
    kvp_result_speedups(res, (size_t)n, res[at_static].total_time_s,
                        res[at_unlim].total_time_s);
    kvp_report rep = {sc, tr, res, (size_t)n};
    char *text = NULL;
    return kvp_report_json_text(&rep, &text, &err) < 0 ? NULL : text;
}

static void test_synthetic(void)
{
    kvp_session *s = NULL;
    CHECK_OK(kvp_session_create(&s, &err), &err);
    if (!s)
        return;
    CHECK(kvp_session_json(s) == NULL);
    CHECK_OK(kvp_session_preset(s, "gh200", "hw", &err), &err);
    CHECK_OK(kvp_session_set(s, "sparsity", "0.7", 0, &err), &err);
    CHECK_OK(kvp_session_set(s, "prompt", "300", 1, &err), &err);
    CHECK_OK(kvp_session_set(s, "steps", "12", 1, &err), &err);
    CHECK_FAILS(kvp_session_set(s, "batch", "2", 1, &err), KVP_EINVAL, &err,
                "batch is not a parameter of the synthetic trace");
    CHECK_FAILS(kvp_session_set(s, "nosuch", "2", 0, &err), KVP_EINVAL, &err, "nosuch");
    CHECK_OK(kvp_session_run(s, "reactive,bound", 1, &err), &err);

    kvp_scenario sc;
    kvp_scenario_default(&sc);
    kvp_preset_apply(&sc, "gh200", "hw", &err);
    kvp_param_assign(&sc, "sparsity=0.7", &err);
    kvp_param_assign(&sc, "prompt=300", &err);
    kvp_param_assign(&sc, "steps=12", &err);
    kvp_synth_params sp;
    kvp_synth_default(&sp, &sc);
    kvp_trace *tr = NULL;
    CHECK_OK(kvp_trace_synthetic(&tr, &sp, &err), &err);
    char *want = tr ? cli_like(&sc, tr, "reactive,bound") : NULL;
    CHECK(want != NULL);
    CHECK_STR(kvp_session_json(s), want);
    /* Two results, reactive then bound, each with its speedups. */
    const char *j = kvp_session_json(s);
    CHECK(j && strstr(j, "\"policy\":\t\"reactive\"") && strstr(j, "\"policy\":\t\"bound\"") &&
          !strstr(j, "\"policy\":\t\"static\""));
    free(want);
    kvp_trace_free(tr);

    CHECK_FAILS(kvp_session_run(s, "nope", 0, &err), KVP_EINVAL, &err, "nope");
    CHECK(kvp_session_json(s) == NULL); /* a failed run leaves no report */
    CHECK_FAILS(kvp_session_run(s, NULL, 0, &err), KVP_EINVAL, &err, "no policies");
    kvp_session_free(s);
    kvp_session_free(NULL);
}

static void test_buffer_trace(void)
{
    kvp_session *s = NULL;
    CHECK_OK(kvp_session_create(&s, &err), &err);
    if (!s)
        return;
    CHECK_OK(kvp_session_set(s, "layers", "2", 0, &err), &err);
    float data[3 * 2 * 6];
    for (size_t i = 0; i < sizeof data / sizeof *data; i++)
        data[i] = (float)((i * 7) % 5);
    uint64_t shape[3] = {3, 2, 6};
    uint64_t bad[2] = {3, 12};
    CHECK_FAILS(kvp_session_trace_buffer(s, data, KVP_DTYPE_F32, 2, bad, "arr", &err),
                KVP_ESHAPE, &err, "arr: 2 dimensions");
    CHECK_OK(kvp_session_trace_buffer(s, data, KVP_DTYPE_F32, 3, shape, "arr", &err), &err);
    CHECK_OK(kvp_session_run(s, "static,lookahead", 0, &err), &err);
    const char *j = kvp_session_json(s);
    CHECK(j && strstr(j, "\"source\":\t\"arr\"") && strstr(j, "\"prompt\":\t4") &&
          strstr(j, "\"steps\":\t3"));
    /* The trace defines prompt and steps. */
    CHECK_OK(kvp_session_set(s, "steps", "5", 0, &err), &err);
    CHECK_FAILS(kvp_session_run(s, "static", 0, &err), KVP_EINVAL, &err, "trace defines");
    kvp_session_free(s);

    CHECK_OK(kvp_session_create(&s, &err), &err);
    CHECK_FAILS(kvp_session_trace_npy(s, "/nonexistent/t.npy", &err), KVP_EIO, &err,
                "/nonexistent/t.npy");
    CHECK_OK(kvp_session_trace_buffer(s, data, KVP_DTYPE_F32, 3, shape, "arr", &err), &err);
    CHECK_FAILS(kvp_session_run(s, "static", 0, &err), KVP_ESHAPE, &err, "2 layers");
    kvp_session_free(s);
}

int main(void)
{
    test_synthetic();
    test_buffer_trace();
    return check_done();
}
