/*
 * An inference engine's view of kvplace: record each decode step's attention scores as the
 * step happens, feed them to the library one step at a time (kvp_trace_builder, in memory,
 * no file), then ask where the KV cache should have lived.  Built against the installed
 * library:
 *
 *     cc stream.c $(pkg-config --cflags --libs kvplace) -o stream
 *     ./stream [REPORT.json [TRACE.npy]]
 *
 * It prints one line per policy; REPORT.json gets the JSON report (as `kvplace run --json`
 * writes it) and TRACE.npy the recorded trace, so that `kvplace run --trace TRACE.npy` with
 * the same scenario can be checked against it (CI does: .ci/run).
 */
#include <kvplace.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LAYERS 4
#define PROMPT 512
#define STEPS 64
#define SINKS 4
#define WINDOW 32

/* The scenario: Llama-3.1-8B's shape cut to 4 layers, GH200 tiers, 10 MB of weights and an
 * HBM that leaves 200 one-token slots per layer (3,276,800 bytes / (4 layers x 4096)). */
static const char *const scenario[] = {
    "layers=4", "weight_bytes=10MB", "hbm_capacity=13276800", "sparsity=0.7", "batch=1",
};

/* A stand-in for the model's attention: sinks and a recent window always matter, a few
 * heavy hitters persist, the rest is noise that changes with the step and the layer. */
static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    return x ^ (x >> 16);
}

static float attention(uint32_t step, uint32_t layer, uint32_t pos, uint32_t context)
{
    if (pos < SINKS)
        return 1.0f;
    if (pos + WINDOW >= context)
        return 0.5f;
    if (mix(pos * 31u + layer) % 10u == 0)
        return 0.25f + (float)(mix(pos) % 64u) / 1024.0f;
    return (float)(mix(pos ^ (step * 2654435761u) ^ (layer << 24)) % 100u) / 1000.0f;
}

static int fail(const kvp_error *err)
{
    fprintf(stderr, "stream: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    kvp_error err = {0};
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    if (kvp_preset_apply(&sc, "gh200-paper", "hw", &err) < 0 ||
        kvp_preset_apply(&sc, "llama-3.1-8b", "model", &err) < 0)
        return fail(&err);
    for (size_t i = 0; i < sizeof scenario / sizeof *scenario; i++)
        if (kvp_param_assign(&sc, scenario[i], &err) < 0)
            return fail(&err);
    if (kvp_scenario_validate(&sc, &err) < 0)
        return fail(&err);

    /* Decode: after each step, hand the library that step's scores, layers x context. */
    kvp_trace_builder *b;
    if (kvp_trace_builder_create(&b, LAYERS, PROMPT, 0, "engine", &err) < 0)
        return fail(&err);
    float *step_scores = malloc((size_t)LAYERS * (PROMPT + STEPS) * sizeof *step_scores);
    if (!step_scores) {
        kvp_trace_builder_free(b);
        fprintf(stderr, "stream: out of memory\n");
        return 1;
    }
    for (uint32_t n = 0; n < STEPS; n++) {
        uint32_t context = PROMPT + n;
        for (uint32_t l = 0; l < LAYERS; l++)
            for (uint32_t p = 0; p < context; p++)
                step_scores[(size_t)l * context + p] = attention(n, l, p, context);
        if (kvp_trace_builder_append(b, step_scores, &err) < 0) {
            free(step_scores);
            kvp_trace_builder_free(b);
            return fail(&err);
        }
    }
    free(step_scores);
    kvp_trace *tr;
    int rc = kvp_trace_builder_finish(b, &tr, &err);
    kvp_trace_builder_free(b);
    if (rc < 0)
        return fail(&err);
    sc.prompt = kvp_trace_prompt(tr); /* as kvplace run records a trace's length */
    sc.steps = kvp_trace_steps(tr);

    /* Every policy but sa, in one pass over the trace; static and unlimited give the
     * speedups. */
    kvp_policy_spec ps[16];
    kvp_result res[16];
    int n = kvp_policy_parse_list(ps, 16, "unlimited,static,reactive,page,lookahead,bound",
                                  &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    if (n < 0 || kvp_run_many(&sc, tr, ps, (size_t)n, &ro, res, &err) < 0) {
        kvp_trace_free(tr);
        return fail(&err);
    }
    kvp_result_speedups(res, (size_t)n, res[1].total_time_s, res[0].total_time_s);

    printf("%-28s %12s %12s %10s %8s\n", "policy", "time (s)", "tok/s", "vs static",
           "hit KV");
    for (int i = 0; i < n; i++)
        printf("%-28s %12.9f %12.1f %10.3f %7.2f%%\n", res[i].params, res[i].total_time_s,
               res[i].throughput_tok_s, res[i].speedup_vs_static, res[i].hbm_hit_rate_kv * 100);

    kvp_report rep = {&sc, tr, res, (size_t)n};
    rc = 0;
    if (argc > 1 && kvp_report_json(&rep, argv[1], &err) < 0)
        rc = fail(&err);
    if (rc == 0 && argc > 2 && kvp_trace_write_npy(tr, argv[2], &err) < 0)
        rc = fail(&err);
    kvp_trace_free(tr);
    return rc;
}
