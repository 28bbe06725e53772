/*
 * kvplace fingerprint: what a speed change must not change (docs/PERF.md §8).  Prints a hash
 * of every access set and score of a synthetic trace, layer by layer, then every field of
 * every policy's result, with enough digits to round-trip.  Run it built from the code before
 * and after a change and compare the outputs: they must be identical.
 *
 *     fingerprint PROMPT STEPS LAYERS VARIATION SPARSITY BATCH SEED [POLICIES]
 */
#include "trace/trace.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xCBF29CE484222325ull
#define FNV_PRIME 0x100000001B3ull
#define SCORE_EVERY 97u /* steps whose full score rows are hashed too */
#define MAX_POLICIES 32

static const char default_list[] =
    "unlimited,static,bound,reactive,reactive:g=3,page,page:page_tokens=5,lookahead:W=1:R=1,"
    "lookahead:W=4:R=0.3,lookahead:W=16:R=1,lookahead:W=7:R=0";

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * FNV_PRIME;
    return h;
}

static int die(const char *what, const kvp_error *err)
{
    fprintf(stderr, "fingerprint: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    static const char *const names[] = {"prompt", "steps", "layers", "variation", "sparsity",
                                        "batch", "seed"};
    if (argc < 8) {
        fprintf(stderr, "usage: fingerprint PROMPT STEPS LAYERS VARIATION SPARSITY BATCH SEED "
                        "[POLICIES]\n");
        return 2;
    }
    kvp_error err = {0, ""};
    kvp_scenario sc;
    kvp_scenario_default(&sc);
    for (int i = 0; i < 7; i++)
        if (kvp_param_set(&sc, names[i], argv[i + 1], &err) < 0)
            return die("scenario", &err);
    kvp_synth_params sp;
    kvp_synth_default(&sp, &sc);
    kvp_trace *tr = NULL;
    if (kvp_trace_synthetic(&tr, &sp, &err) < 0)
        return die("trace", &err);
    float *row = malloc(((size_t)sc.prompt + sc.steps) * sizeof *row);
    if (!row)
        return 1;
    uint64_t all = FNV_OFFSET;
    for (uint32_t l = 0; l < sc.layers; l++) {
        kvp_cursor *c = NULL;
        if (kvp_cursor_create(&c, tr, l, kvp_scenario_budget(&sc), &err) < 0)
            return die("cursor", &err);
        uint64_t h = FNV_OFFSET;
        kvp_access a;
        int rc;
        while ((rc = kvp_cursor_next(c, &a, &err)) == 1) {
            h = fnv(h, &a.step, sizeof a.step);
            h = fnv(h, &a.context, sizeof a.context);
            h = fnv(h, &a.count, sizeof a.count);
            h = fnv(h, a.pos, (size_t)a.count * sizeof *a.pos);
            h = fnv(h, a.score, (size_t)a.count * sizeof *a.score);
            if (a.step % SCORE_EVERY == 0 && tr->vt->scores) {
                if (tr->vt->scores(c->state, a.step, row, &err) < 0)
                    return die("scores", &err);
                h = fnv(h, row, (size_t)a.context * sizeof *row);
            }
        }
        if (rc < 0)
            return die("cursor", &err);
        kvp_cursor_free(c);
        printf("trace layer %u %016" PRIx64 "\n", l, h);
        all = fnv(all, &h, sizeof h);
    }
    printf("trace all %016" PRIx64 "\n", all);
    free(row);

    kvp_policy_spec ps[MAX_POLICIES];
    kvp_result res[MAX_POLICIES];
    int np = kvp_policy_parse_list(ps, MAX_POLICIES, argc > 8 ? argv[8] : default_list, &err);
    if (np < 0)
        return die("policies", &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    if (kvp_run_many(&sc, tr, ps, (size_t)np, &ro, res, &err) < 0)
        return die("run", &err);
    for (int i = 0; i < np; i++) {
        const kvp_result *r = &res[i];
        printf("%s %s g=%u slots=%u t=%.17g thr=%.17g hk=%.17g ha=%.17g", r->policy, r->params,
               r->block_tokens, r->slots, r->total_time_s, r->throughput_tok_s,
               r->hbm_hit_rate_kv, r->hbm_hit_rate_all);
        const uint64_t c[] = {r->kv_read_hbm, r->kv_read_dram, r->hbm_read,   r->hbm_write,
                              r->dram_read,   r->dram_write,   r->link_up,    r->link_down,
                              r->weight_read, r->promoted_bytes, r->demoted_bytes};
        for (size_t k = 0; k < sizeof c / sizeof *c; k++)
            printf(" %" PRIu64, c[k]);
        printf(" sa=%u\n", r->sa_evaluations);
    }
    kvp_trace_free(tr);
    return 0;
}
