/* A result from a run's sums (kvp_result_fill) and the trace's fit to the scenario
 * (kvp_check_trace): what every way of running a policy shares, the engine's pass, its fast
 * paths and the lookahead grid alike (src/engine/runner.h). */
#include "engine/runner.h"
#include "trace/trace.h"

#include <stdio.h>
#include <string.h>

static int mul_bytes(uint64_t tokens, uint64_t tok_bytes, uint64_t *out)
{
    return __builtin_mul_overflow(tokens, tok_bytes, out) ? KVP_ERANGE : 0;
}

int kvp_result_fill(kvp_result *res, const kvp_scenario *sc, const kvp_trace *tr,
                    const kvp_policy_spec *ps, uint32_t g, uint32_t slots, double time_s,
                    const kvp_counters *c, kvp_error *err)
{
    kvp_derived d;
    int rc = kvp_derive_for(sc, tr, &d, err);
    if (rc < 0)
        return rc;
    memset(res, 0, sizeof *res);
    snprintf(res->policy, sizeof res->policy, "%s", ps->ops->name);
    kvp_policy_format(ps, res->params, sizeof res->params);
    res->steps = kvp_trace_steps(tr);
    res->layers = kvp_trace_layers(tr);
    res->prompt = kvp_trace_prompt(tr);
    res->block_tokens = g;
    res->slots = slots;
    res->online = (uint32_t)((ps->ops->caps & KVP_CAP_ONLINE) != 0);
    res->total_time_s = time_s;
    /* The two-tier counters: with more tiers, "dram" and the link are every tier below HBM
     * and every link, summed (a read below HBM crosses one link up; a write, one down). */
    kvp_counters below = {0};
    for (uint32_t k = 1; k < d.tiers; k++) {
        below.kv_read[1] += c->kv_read[k];
        below.read[1] += c->read[k];
        below.write[1] += c->write[k];
    }
    const uint64_t *src[] = {&c->kv_read[0],     &below.kv_read[1], &c->read[0],
                             &c->write[0],       &below.read[1],    &below.write[1],
                             &below.read[1],     &below.write[1],   &c->promoted,
                             &c->demoted};
    uint64_t *dst[] = {&res->kv_read_hbm, &res->kv_read_dram, &res->hbm_read,
                       &res->hbm_write,   &res->dram_read,    &res->dram_write,
                       &res->link_up,     &res->link_down,    &res->promoted_bytes,
                       &res->demoted_bytes};
    int over = 0;
    for (size_t i = 0; i < sizeof src / sizeof *src; i++)
        over |= mul_bytes(*src[i], d.tok_bytes, dst[i]) < 0;
    res->tiers = d.tiers;
    for (uint32_t k = 0; k < d.tiers; k++) {
        over |= mul_bytes(c->kv_read[k], d.tok_bytes, &res->tier_kv_read[k]) < 0;
        over |= mul_bytes(c->read[k], d.tok_bytes, &res->tier_read[k]) < 0;
        over |= mul_bytes(c->write[k], d.tok_bytes, &res->tier_write[k]) < 0;
        over |= mul_bytes(c->moved_in[k], d.tok_bytes, &res->tier_moved_in[k]) < 0;
        over |= mul_bytes(c->moved_out[k], d.tok_bytes, &res->tier_moved_out[k]) < 0;
        res->tier_slots[k] = k == 0 ? slots
                             : d.tiers == 2 || slots == KVP_UNLIMITED_SLOTS
                                 ? KVP_UNLIMITED_SLOTS
                                 : kvp_tier_slots(sc, &d, g, k);
        if (k) {
            uint32_t j = d.tier_link[k];
            if (j > res->links)
                res->links = j;
            res->link_up_bytes[j] += res->tier_read[k];
            res->link_down_bytes[j] += res->tier_write[k];
        }
    }
    if (over)
        return kvp_error_set(err, KVP_ERANGE, "byte counts overflow 64 bits "
                             "(batch %u is too large for this trace)", sc->batch);
    if (mul_bytes(d.weight_bytes, res->steps, &res->weight_read) < 0)
        return kvp_error_set(err, KVP_ERANGE, "weight traffic overflows 64 bits");
    /* Busy time: a tier's (link direction's) bytes over its bandwidth, summed over steps. */
    for (uint32_t k = 0; k < d.tiers; k++)
        res->tier_busy_s[k] = ((k ? 0.0 : (double)res->weight_read) +
                               (double)res->tier_read[k] + (double)res->tier_write[k]) /
                              d.tier_bandwidth[k];
    for (uint32_t j = 1; j <= res->links; j++)
        if (d.link_up[j] > 0) {
            res->link_up_busy_s[j] = (double)res->link_up_bytes[j] / d.link_up[j];
            res->link_down_busy_s[j] = (double)res->link_down_bytes[j] / d.link_down[j];
        }
    /* decoded tokens summed over the sequences (each sequence's steps), times batch */
    uint64_t decoded = 0;
    for (uint32_t q = 0; q < kvp_trace_sequence_count(tr); q++)
        decoded += kvp_trace_sequence_steps(tr, q);
    res->throughput_tok_s = (double)sc->batch * (double)decoded / time_s;
    if (kvp_trace_streams(tr)) {
        res->sequences = kvp_trace_sequence_count(tr);
        for (uint32_t q = 0; q < res->sequences && q < KVP_MAX_SEQUENCES; q++) {
            res->seq[q].prompt = kvp_trace_sequence_prompt(tr, q);
            res->seq[q].steps = kvp_trace_sequence_steps(tr, q);
        }
    }
    double kv_all = (double)res->kv_read_hbm + (double)res->kv_read_dram;
    res->hbm_hit_rate_kv = kv_all > 0 ? (double)res->kv_read_hbm / kv_all : 1.0;
    double w = (double)res->weight_read;
    res->hbm_hit_rate_all = kv_all + w > 0 ? ((double)res->kv_read_hbm + w) / (kv_all + w) : 1;
    res->speedup_vs_static = res->speedup_vs_unlimited = 0;
    return 0;
}

int kvp_derive_for(const kvp_scenario *sc, const kvp_trace *tr, kvp_derived *d,
                   kvp_error *err)
{
    int rc = kvp_scenario_derive(sc, d, err);
    const kvp_streams *si = kvp_trace_streams(tr);
    if (rc < 0 || !si || !si->per_head)
        return rc;
    if ((rc = kvp_check_trace(sc, tr, err)) < 0)
        return rc;
    d->tok_bytes /= si->heads; /* exact: tok_bytes has the factor kv_heads */
    return 0;
}

int kvp_streams_refuse(const kvp_policy_ops *ops, const kvp_trace *tr, kvp_error *err)
{
    return kvp_error_set(err, KVP_EINVAL, "policy %s does not run on several streams yet "
                         "(%s: %u streams: KV heads or distinct sequences); run it on one "
                         "3-D trace", ops->name, kvp_trace_name(tr),
                         kvp_trace_stream_count(tr));
}

int kvp_streams_fit(const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err)
{
    const kvp_streams *si = kvp_trace_streams(tr);
    if (!si)
        return 0;
    if ((uint64_t)si->n * si->positions > UINT32_MAX)
        return kvp_error_set(err, KVP_ERANGE, "%s: %u streams of up to %u positions are too "
                             "many for 32-bit block numbers", kvp_trace_name(tr), si->n,
                             si->positions);
    if (sc->tiers > 2)
        return kvp_error_set(err, KVP_EINVAL, "%s: several streams (KV heads or sequences) "
                             "with more than two tiers are not supported yet",
                             kvp_trace_name(tr));
    return 0;
}

int kvp_check_trace(const kvp_scenario *sc, const kvp_trace *tr, kvp_error *err)
{
    const kvp_streams *si = kvp_trace_streams(tr);
    if (si && si->per_head && si->heads != sc->kv_heads)
        return kvp_error_set(err, KVP_ESHAPE, "%s: 4-D trace has %u heads; model %s has "
                             "kv_heads %u (they must be equal: one stream per KV head)",
                             kvp_trace_name(tr), si->heads,
                             sc->model_name[0] ? sc->model_name : "(custom)", sc->kv_heads);
    if (kvp_trace_layers(tr) != sc->layers)
        return kvp_error_set(err, KVP_ESHAPE, "%s: trace has %u layers; model %s has %u",
                             kvp_trace_name(tr), kvp_trace_layers(tr),
                             sc->model_name[0] ? sc->model_name : "(custom)", sc->layers);
    if (kvp_trace_steps(tr) == 0)
        return kvp_error_set(err, KVP_ESHAPE, "%s: trace has no decode steps",
                             kvp_trace_name(tr));
    return 0;
}

int kvp_result_fill_layers(kvp_result *res, const kvp_scenario *sc, const kvp_trace *tr,
                           const kvp_policy_spec *ps, size_t n, uint32_t layers,
                           const double *time_s, const kvp_counters *cnt,
                           const uint32_t *slots, size_t slots_step, kvp_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        double t = 0;
        kvp_counters c = {0};
        for (uint32_t l = 0; l < layers; l++) {
            t += time_s[(size_t)l * n + i];
            kvp_counters_add(&c, &cnt[(size_t)l * n + i]);
        }
        rc = kvp_result_fill(&res[i], sc, tr, &ps[i], 1, slots[i * slots_step], t, &c, err);
    }
    return rc;
}

int kvp_result_fill_seqs(kvp_result *res, uint32_t nseq, uint32_t layers, size_t n, size_t i,
                         const uint64_t *seq_out, uint64_t tok_bytes, kvp_error *err)
{
    int rc = 0;
    for (uint32_t q = 0; q < nseq && q < KVP_MAX_SEQUENCES; q++) {
        uint64_t tok[4] = {0};
        for (uint32_t l = 0; l < layers; l++)
            for (size_t k = 0; k < 4; k++)
                tok[k] += seq_out[(((size_t)l * n + i) * nseq + q) * 4 + k];
        uint64_t *dst[4] = {&res->seq[q].kv_read_hbm, &res->seq[q].kv_read_dram,
                            &res->seq[q].promoted_bytes, &res->seq[q].demoted_bytes};
        for (size_t k = 0; k < 4; k++)
            if (__builtin_mul_overflow(tok[k], tok_bytes, dst[k]))
                rc = kvp_error_set(err, KVP_ERANGE, "byte counts overflow 64 bits");
    }
    return rc;
}
