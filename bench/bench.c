/*
 * kvplace benchmark: runs one phase of the study's scenario and prints one line
 *     phase  prompt  steps  layers  reads  wall_s  reads_per_s  peak_rss_mib  total_time_s
 *     cpu_s
 * where cpu_s is the process's user + system time during the phase (on a shared machine,
 * cpu_s / threads says what the wall time would be on idle cores).
 * Each phase runs in its own process (bench/run.sh), so that peak RSS is the phase's own.
 *
 *     bench PHASE [--prompt P] [--steps N] [--batch B] [--threads T] [--sparsity S] [--W W]
 *           [--budget E]
 *
 * Phases: gen (the synthetic trace, streamed once over every layer; the bound rides along at
 * O(1) a step), ref (unlimited + static + bound in one pass), reactive, page, lookahead, sa
 * (at its defaults but `budget`: the most evaluations, 40 unless --budget), fastref (unlimited
 * + static + bound through the prefix fast path, src/engine/fast.c), npy-static and
 * npy-engine (static on the float32 .npy of --file, through the fast path or the engine's
 * pass; stderr gets the constants bench/npy_model.py takes), la1 (lookahead W, --R (1)
 * through the grid of src/policy/lookahead_grid.c, the same result), grid (lookahead at
 * W = --wmin (1) .. --wmax (64) by --wstep (1) x R = 0, 0.1, .., 1 through the grid, one pass
 * per W; model_s is the best point's T; a W step above 1 times a sample of the grid's W).
 * PHASE-cached (ref, lookahead) first builds a trace cache (src/trace/trace_cache.c) and prints it
 * as a line of its own, phase "cache"; the phase's own line then times the run on the cache
 * alone.  Peak RSS is the process's, so it includes the cache.
 */
#include "engine/fast.h"
#include "engine/runner.h"
#include "policy/lookahead_grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int die(const char *what, const kvp_error *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err ? err->msg : "");
    return 1;
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "usage: bench PHASE [--prompt P] [--steps N] [--batch B] [--threads T] [--sparsity S]\n"
        "             [--W W] [--R R] [--budget E] [--wmin W] [--wmax W] [--wstep S]\n"
        "             [--file FILE.npy]\n"
        "PHASE: gen ref reactive page lookahead sa fastref la1 grid, each also -cached;\n"
        "       npy-static npy-engine (--file)\n"
        "Runs one phase of the study's scenario (defaults: prompt 31299, steps 10239, batch 4,\n"
        "sparsity 0.6, 2 threads, W 16, budget 40, wmax 64) and prints one line: phase prompt\n"
        "steps layers reads wall_s reads_per_s peak_rss_mib total_time_s cpu_s.  docs/PERF.md.\n";
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2 || argc % 2 != 0) {
        fputs(argc < 2 ? usage : "bench: every option takes a value (bench --help)\n", stderr);
        return 2;
    }
    const char *phase = argv[1];
    const char *prompt = "31299", *steps = "10239", *batch = "4", *sparsity = "0.6";
    const char *W = "16", *budget = "40", *wmax = "64", *file = NULL, *Rs = "1";
    const char *wmin = "1", *wstep = "1";
    unsigned threads = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompt"))
            prompt = argv[i + 1];
        else if (!strcmp(argv[i], "--steps"))
            steps = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            batch = argv[i + 1];
        else if (!strcmp(argv[i], "--sparsity"))
            sparsity = argv[i + 1];
        else if (!strcmp(argv[i], "--W"))
            W = argv[i + 1];
        else if (!strcmp(argv[i], "--R"))
            Rs = argv[i + 1];
        else if (!strcmp(argv[i], "--file"))
            file = argv[i + 1];
        else if (!strcmp(argv[i], "--wmax"))
            wmax = argv[i + 1];
        else if (!strcmp(argv[i], "--wmin"))
            wmin = argv[i + 1];
        else if (!strcmp(argv[i], "--wstep"))
            wstep = argv[i + 1];
        else if (!strcmp(argv[i], "--budget"))
            budget = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = (unsigned)atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench: unknown option %s (bench --help)\n", argv[i]);
            return 2;
        }
    }

    kvp_error err = {0};
    char prompt_buf[16], steps_buf[16];
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    if (kvp_param_set(&sc, "prompt", prompt, &err) < 0 ||
        kvp_param_set(&sc, "steps", steps, &err) < 0 ||
        kvp_param_set(&sc, "batch", batch, &err) < 0 ||
        kvp_param_set(&sc, "sparsity", sparsity, &err) < 0)
        return die("scenario", &err);
    kvp_trace *tr = NULL;
    if (!strncmp(phase, "npy", 3)) {
        /* A .npy trace (--file): the scenario takes its prompt and steps. */
        if (!file)
            return die(phase, &(kvp_error){KVP_EINVAL, "--file FILE.npy is required"});
        if (kvp_trace_open_npy(&tr, file, &err) < 0)
            return die("trace", &err);
        sc.prompt = kvp_trace_prompt(tr);
        sc.steps = kvp_trace_steps(tr);
        snprintf(prompt_buf, sizeof prompt_buf, "%u", sc.prompt);
        snprintf(steps_buf, sizeof steps_buf, "%u", sc.steps);
        prompt = prompt_buf;
        steps = steps_buf;
    } else {
        kvp_synth_params sp;
        kvp_synth_default(&sp, &sc);
        if (kvp_trace_synthetic(&tr, &sp, &err) < 0)
            return die("trace", &err);
    }

    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    char base[32];
    snprintf(base, sizeof base, "%s", phase);
    char *dash = strstr(base, "-cached");
    if (dash) {
        *dash = 0;
        kvp_trace *cache = NULL;
        double c0 = now(), cc0 = cpu_now();
        if (kvp_trace_cache(&cache, tr, kvp_scenario_budget(&sc), &ro, &err) < 0)
            return die("cache", &err);
        double cw = now() - c0;
        struct rusage cru;
        getrusage(RUSAGE_SELF, &cru);
        printf("%-16s %7s %6s %3u %12s %9.3f %12s %8.1f %-14s %.3f (%.4g GB)\n", "cache",
               prompt, steps, sc.layers, "-", cw, "-", (double)cru.ru_maxrss / 1024.0, "-",
               cpu_now() - cc0, (double)kvp_trace_cache_bytes(tr) / 1e9);
        fflush(stdout);
        kvp_trace_free(tr);
        tr = cache;
    }
    double t0 = now(), cpu0 = cpu_now(), model_time = 0;
    uint64_t reads = 0;
    if (!strcmp(base, "gen")) {
        kvp_pass_sums b;
        if (kvp_engine_pass(&sc, tr, &ro, &b, &err) < 0)
            return die(phase, &err);
        reads = b.reads;
        model_time = b.bound_time_s;
    } else if (!strcmp(base, "npy-static") || !strcmp(base, "npy-engine")) {
        /* static on the .npy: through the fast path, or the engine's per-read pass. */
        kvp_policy_spec ps;
        kvp_result res;
        kvp_derived d;
        if (kvp_policy_parse(&ps, "static", &err) < 0 || kvp_scenario_derive(&sc, &d, &err) < 0)
            return die(phase, &err);
        int rc = !strcmp(base, "npy-static")
                     ? kvp_fast_prefix_run(&sc, tr, &ps, 1, &ro, &res, NULL, &err)
                     : kvp_engine_run(&sc, tr, &ps, &ro, &res, &err);
        if (rc < 0)
            return die(phase, &err);
        reads = (res.kv_read_hbm + res.kv_read_dram) / d.tok_bytes;
        model_time = res.total_time_s;
        fprintf(stderr, "model %.17g %u %llu %.17g %.17g %.17g %.17g\n", sc.sparsity,
                res.slots, (unsigned long long)d.tok_bytes, d.w_layer, sc.hbm_bandwidth,
                sc.dram_bandwidth, sc.link_bandwidth);
    } else if (!strcmp(base, "fastref")) {
        kvp_policy_spec ps[2];
        kvp_result res[2];
        kvp_pass_sums b;
        if (kvp_policy_parse(&ps[0], "unlimited", &err) < 0 ||
            kvp_policy_parse(&ps[1], "static", &err) < 0 ||
            kvp_fast_prefix_run(&sc, tr, ps, 2, &ro, res, &b, &err) < 0)
            return die(phase, &err);
        reads = b.reads;
        model_time = b.bound_time_s; /* as ref's: the bound's T, last of its list */
    } else if (!strcmp(base, "grid") || !strcmp(base, "la1")) {
        const int all = !strcmp(base, "grid");
        const unsigned w_lo = all ? (unsigned)atoi(wmin) : (unsigned)atoi(W);
        const unsigned w_hi = all ? (unsigned)atoi(wmax) : w_lo;
        const unsigned w_step = all && atoi(wstep) > 0 ? (unsigned)atoi(wstep) : 1;
        model_time = 1e300;
        for (unsigned w = w_lo; w <= w_hi; w += w_step) {
            kvp_policy_spec ps[11];
            kvp_result res[11];
            const int nr = all ? 11 : 1;
            for (int r = 0; r < nr; r++) {
                char spec[64];
                snprintf(spec, sizeof spec, "lookahead:W=%u:R=%.1f", w, all ? r / 10.0 : atof(Rs));
                if (kvp_policy_parse(&ps[r], spec, &err) < 0)
                    return die(phase, &err);
            }
            if (kvp_lookahead_grid(&sc, tr, ps, (size_t)nr, &ro, res, &err) < 0)
                return die(phase, &err);
            for (int r = 0; r < nr; r++)
                if (res[r].total_time_s < model_time)
                    model_time = res[r].total_time_s;
            reads = (res[0].kv_read_hbm + res[0].kv_read_dram) /
                    (2u * sc.kv_heads * sc.head_dim * sc.dtype_bytes * sc.batch);
        }
    } else {
        char list[64];
        snprintf(list, sizeof list, "%s",
                 !strcmp(base, "ref") ? "unlimited,static,bound" : base);
        if (!strcmp(base, "lookahead"))
            snprintf(list, sizeof list, "lookahead:W=%s:R=1", W);
        if (!strcmp(base, "sa"))
            snprintf(list, sizeof list, "sa:budget=%s", budget);
        kvp_policy_spec ps[8];
        int n = kvp_policy_parse_list(ps, 8, list, &err);
        if (n < 0)
            return die(phase, &err);
        kvp_result res[8];
        if (kvp_run_many(&sc, tr, ps, (size_t)n, &ro, res, &err) < 0)
            return die(phase, &err);
        reads = (res[0].kv_read_hbm + res[0].kv_read_dram) / (2u * sc.kv_heads * sc.head_dim *
                                                               sc.dtype_bytes * sc.batch);
        model_time = res[n - 1].total_time_s;
        if (!strcmp(base, "sa"))
            fprintf(stderr, "bench: sa: %u evaluations, best %s\n", res[0].sa_evaluations,
                    res[0].params);
    }
    double wall = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-16s %7s %6s %3u %12llu %9.3f %12.4g %8.1f %-14.9g %.3f\n", phase, prompt, steps,
           sc.layers, (unsigned long long)reads, wall, (double)reads / wall,
           (double)ru.ru_maxrss / 1024.0, model_time, cpu_now() - cpu0);
    kvp_trace_free(tr);
    return 0;
}
