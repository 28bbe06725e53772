/* `kvplace trace gen` (a synthetic trace to .npy) and `kvplace trace info` (its summary). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOAT32_BYTES 4

static int trace_gen(const cli_args *a)
{
    cli_scn scn;
    const char *out = NULL;
    int quiet = 0, rc = 0;
    kvp_trace *tr = NULL;
    kvp_scenario sc;
    kvp_error err = {0};
    if (cli_scn_init(&scn, a->argc) != 0)
        return CLI_EXIT_INPUT;
    for (int i = 0; i < a->argc; i++) {
        int m;
        if (cli_is_help(a->argv[i])) {
            cli_help_trace();
            goto done;
        }
        if ((m = cli_scn_option(&scn, a, &i)) != 0 ||
            (m = cli_opt_value(a, &i, "--synthetic", NULL, &scn.synthetic)) != 0 ||
            (m = cli_opt_value(a, &i, "--output", "-o", &out)) != 0 ||
            (m = cli_opt_flag(a, i, "--quiet", "-q")) != 0) {
            if (m < 0) {
                rc = -m;
                goto done;
            }
            if (strcmp(a->argv[i], "-q") == 0 || strcmp(a->argv[i], "--quiet") == 0)
                quiet = 1;
            continue;
        }
        rc = cli_unknown_arg(a, a->argv[i]);
        goto done;
    }
    if (!out) {
        rc = cli_usage(a->cmd, "missing -o FILE.npy");
        goto done;
    }
    cli_file in[64];
    size_t nin = cli_scn_inputs(&scn, in, 64);
    const cli_file outf = {out, "-o"};
    if ((rc = cli_check_files(a->cmd, in, nin, &outf, 1)) != 0)
        goto done;
    if ((rc = cli_scn_build(&scn, &sc)) != 0)
        goto done;
    if (sc.sequences > 1) {
        rc = cli_usage(a->cmd, "trace gen writes one sequence's trace; --set sequences=%u "
                       "would need one file each", sc.sequences);
        goto done;
    }
    kvp_synth_params sp;
    kvp_synth_default(&sp, &sc);
    if (kvp_trace_synthetic(&tr, &sp, &err) < 0 ||
        kvp_trace_write_npy_cancel(tr, out, cli_cancel_install(), &err) < 0) {
        rc = cli_run_failed(&err, NULL); /* a signal: 128 + it, and no file left */
        goto done;
    }
    if (!quiet) {
        uint64_t ctx = (uint64_t)kvp_trace_prompt(tr) + kvp_trace_steps(tr) - 1;
        char size[32];
        cli_format_bytes(size, sizeof size,
                         (double)kvp_trace_steps(tr) * kvp_trace_layers(tr) * (double)ctx *
                             FLOAT32_BYTES);
        fprintf(stderr, "kvplace: wrote %s: %s, seed %llu, shape (%u, %u, %llu) float32, "
                "%s\n", out, kvp_trace_name(tr), (unsigned long long)sc.seed,
                kvp_trace_steps(tr), kvp_trace_layers(tr), (unsigned long long)ctx, size);
    }
done:
    kvp_trace_free(tr);
    cli_scn_free(&scn);
    return rc;
}

/* The per-head synthetic traces of the scenario: one per KV head of the model. */
static int synthetic_heads(const kvp_scenario *sc, kvp_trace **heads, uint32_t H,
                           kvp_error *err)
{
    for (uint32_t h = 0; h < H; h++) {
        kvp_synth_params sp;
        kvp_synth_default(&sp, sc);
        sp.heads = H;
        sp.head = h;
        int rc = kvp_trace_synthetic(&heads[h], &sp, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Every head's statistics summed (reads) or averaged (the means, sinks by reads). */
static int heads_trace_stats(kvp_trace *const *heads, uint32_t H, kvp_budget b,
                             kvp_trace_stats *st, kvp_error *err)
{
    kvp_trace_stats one;
    double overlap = 0, sink_reads = 0;
    memset(st, 0, sizeof *st);
    for (uint32_t h = 0; h < H; h++) {
        int rc = kvp_trace_stats_compute(heads[h], b, &one, err);
        if (rc < 0)
            return rc;
        st->reads += one.reads;
        st->mean_reads_per_step += one.mean_reads_per_step / H;
        overlap += one.mean_overlap / H;
        sink_reads += one.mean_sink_share * (double)one.reads;
    }
    st->mean_overlap = overlap;
    st->mean_sink_share = st->reads ? sink_reads / (double)st->reads : 0.0;
    return 0;
}

static int trace_info(const cli_args *a)
{
    enum { HEADS_MAX = 1024 };
    cli_scn scn;
    const char *path = NULL;
    int rc = 0, per_head = 0;
    kvp_trace *tr = NULL, **heads = NULL;
    uint32_t H = 0;
    kvp_scenario sc;
    kvp_trace_stats st;
    kvp_heads_stats hs;
    kvp_error err = {0};
    if (cli_scn_init(&scn, a->argc) != 0)
        return CLI_EXIT_INPUT;
    int options_done = 0;
    for (int i = 0; i < a->argc; i++) {
        const char *arg = a->argv[i];
        int m;
        if (!options_done && cli_is_help(arg)) {
            cli_help_trace();
            goto done;
        }
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done &&
            ((m = cli_scn_option(&scn, a, &i)) != 0 ||
             (m = cli_opt_value(a, &i, "--synthetic", NULL, &scn.synthetic)) != 0)) {
            if (m < 0) {
                rc = -m;
                goto done;
            }
            continue;
        }
        if (!options_done && cli_opt_flag(a, i, "--heads", NULL)) {
            per_head = 1;
            continue;
        }
        if ((options_done || arg[0] != '-' || !arg[1]) && !path) {
            path = arg;
            continue;
        }
        rc = cli_unknown_arg(a, arg);
        goto done;
    }
    if (!path && !scn.synthetic) {
        rc = cli_usage(a->cmd, "missing the trace FILE.npy (or --synthetic VARIATION)");
        goto done;
    }
    if (path && scn.synthetic) {
        rc = cli_usage(a->cmd, "FILE.npy or --synthetic, not both");
        goto done;
    }
    if (path && per_head) {
        rc = cli_usage(a->cmd, "--heads makes one synthetic trace per KV head; a trace file "
                       "has the heads its shape gives");
        goto done;
    }
    if ((rc = cli_scn_build(&scn, &sc)) != 0)
        goto done;
    const kvp_budget b = kvp_scenario_budget(&sc);
    if (per_head) {
        H = sc.kv_heads;
        if (H < 2 || H > HEADS_MAX) {
            rc = cli_error("--heads: kv_heads is %u; per-head traces need 2 to %d heads", H,
                           HEADS_MAX);
            goto done;
        }
        heads = calloc(H, sizeof *heads);
        if (!heads) {
            rc = cli_error("out of memory");
            goto done;
        }
        if (synthetic_heads(&sc, heads, H, &err) < 0 ||
            heads_trace_stats(heads, H, b, &st, &err) < 0 ||
            kvp_trace_heads_stats((const kvp_trace *const *)heads, H, b, &hs, &err) < 0) {
            rc = cli_error("%s", err.msg);
            goto done;
        }
        tr = heads[0];
    } else {
        kvp_synth_params sp;
        kvp_synth_default(&sp, &sc);
        if ((path ? kvp_trace_open_npy(&tr, path, &err) : kvp_trace_synthetic(&tr, &sp, &err)) <
                0 ||
            kvp_trace_stats_compute(tr, b, &st, &err) < 0) {
            rc = cli_error("%s", err.msg);
            goto done;
        }
        if (kvp_trace_heads(tr) > 1) { /* a 4-D file: one stream per head (MODEL.md 12) */
            H = kvp_trace_heads(tr);
            const kvp_trace *hv[HEADS_MAX];
            for (uint32_t h = 0; h < H && h < HEADS_MAX; h++)
                hv[h] = kvp_trace_stream(tr, h);
            if (H > HEADS_MAX || kvp_trace_heads_stats(hv, H, b, &hs, &err) < 0) {
                rc = cli_error("%s", H > HEADS_MAX ? "too many heads" : err.msg);
                goto done;
            }
        }
    }
    uint32_t N = kvp_trace_steps(tr), L = kvp_trace_layers(tr), P = kvp_trace_prompt(tr);
    int is_bool = kvp_trace_is_bool(tr);
    if (path)
        printf("trace      %s\n", path);
    else
        printf("trace      synthetic:%s, seed %llu\n", scn.synthetic,
               (unsigned long long)sc.seed);
    if (path && H > 1)
        printf("shape      (%u, %u, %u, %llu): steps, layers, heads, context\n", N, L, H,
               (unsigned long long)P + N - 1);
    else
        printf("shape      (%u, %u, %llu): steps, layers, context\n", N, L,
               (unsigned long long)P + N - 1);
    printf("kind       %s\n", is_bool ? "bool access marks (sparsity and topk do not apply)"
                                      : "float importance scores");
    printf("prompt     %u tokens (context - steps + 1)\n", P);
    printf("steps      %u\n", N);
    printf("layers     %u\n", L);
    if (!is_bool && sc.topk > 0)
        printf("topk       %u (reads the top min(topk, context) positions)\n", sc.topk);
    else if (!is_bool)
        printf("sparsity   %g (reads the top ceil((1 - sparsity) * context) positions)\n",
               sc.sparsity);
    if (per_head) {
        kvp_synth_params sp;
        kvp_synth_default(&sp, &sc);
        sp.heads = H;
        uint32_t retrieval = 0;
        for (sp.head = 0; sp.head < H; sp.head++)
            retrieval += kvp_synth_head_kind(&sp, 0) == KVP_HEAD_RETRIEVAL;
        printf("heads      %u streams, one per KV head; in layer 0, %u retrieval and %u "
               "streaming heads\n", H, retrieval, H - retrieval);
    }
    if (path && H > 1)
        printf("heads      %u streams, one per KV head\n", H);
    printf("reads      %llu in all; %.6g per step and layer%s on average\n",
           (unsigned long long)st.reads, st.mean_reads_per_step, H > 1 ? " and head" : "");
    printf("overlap    %.6g: mean share of a step's reads also read at the step before\n",
           st.mean_overlap);
    printf("sinks      %.6g: share of reads among the first 16 positions (sink tokens)\n",
           st.mean_sink_share);
    if (H > 1) {
        printf("jaccard    %.6g: reads two heads share over the reads of either (pooled over "
               "the pairs; 1: alike, 0: disjoint)\n", hs.mean_jaccard);
        printf("union      %.6g: positions any head reads over one head's reads (1: alike, "
               "%u: disjoint)\n", hs.mean_union_ratio, H);
    }
done:
    if (heads) {
        for (uint32_t h = 0; h < H; h++)
            kvp_trace_free(heads[h]);
        free(heads);
    } else {
        kvp_trace_free(tr);
    }
    cli_scn_free(&scn);
    return rc;
}

int cli_cmd_trace(const cli_args *a)
{
    if (a->argc < 1)
        return cli_usage("trace", "missing subcommand: gen or info");
    const char *sub = a->argv[0];
    if (cli_is_help(sub)) {
        cli_help_trace();
        return CLI_EXIT_OK;
    }
    cli_args sa = {a->argc - 1, a->argv + 1, NULL};
    if (strcmp(sub, "gen") == 0) {
        sa.cmd = "trace";
        return trace_gen(&sa);
    }
    if (strcmp(sub, "info") == 0) {
        sa.cmd = "trace";
        return trace_info(&sa);
    }
    return cli_usage("trace", "unknown trace subcommand \"%s\" (gen or info)", sub);
}
