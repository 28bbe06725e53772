/* The cost model of one step of one layer (docs/MODEL.md). */
#include "engine/cost.h"

#include <math.h>

void kvp_cost_model_of(kvp_cost_model *m, const kvp_scenario *sc, const kvp_derived *d)
{
    m->bandwidth[0] = sc->hbm_bandwidth;
    m->bandwidth[1] = sc->dram_bandwidth;
    m->link_bandwidth[0] = sc->link_bandwidth;
    m->fixed_bytes[0] = d->w_layer;
    m->fixed_bytes[1] = 0;
    m->kv_capacity[0] = d->cap_layer;
    m->kv_capacity[1] = HUGE_VAL;
}

void kvp_traffic_of(kvp_traffic *t, const kvp_counters *c, uint64_t tok_bytes)
{
    const double tok = (double)tok_bytes;
    t->read[0] = (double)c->hbm_read * tok;
    t->write[0] = (double)c->hbm_write * tok;
    t->read[1] = (double)c->dram_read * tok;
    t->write[1] = (double)c->dram_write * tok;
    t->up[0] = (double)c->link_up * tok;
    t->down[0] = (double)c->link_down * tok;
}

double kvp_step_time(const kvp_cost_model *m, const kvp_traffic *t)
{
    double time = 0;
    for (int k = 0; k < KVP_TIERS; k++) {
        double bytes = m->fixed_bytes[k] + (t->read[k] + t->write[k]);
        time = fmax(time, bytes / m->bandwidth[k]);
    }
    for (int k = 0; k < KVP_LINKS; k++) {
        time = fmax(time, t->up[k] / m->link_bandwidth[k]);
        time = fmax(time, t->down[k] / m->link_bandwidth[k]);
    }
    return time;
}

/* At most kv_capacity[0] of the bytes read can come from HBM; the rest crosses DRAM and the
 * link, so the step takes at least
 *     min over h in [0, min(a, cap)] of max((w + h) / B_hbm, (a - h) / min(B_dram, B_link)).
 * The first term grows with h and the second falls: the minimum is where they meet, clamped
 * to the interval, a closed form.  Writes and migrations only add time. */
double kvp_step_time_bound(const kvp_cost_model *m, double a, double *h_out)
{
    double bh = m->bandwidth[0];
    double bd = fmin(m->bandwidth[1], m->link_bandwidth[0]);
    double w = m->fixed_bytes[0];
    double hmax = fmin(a, m->kv_capacity[0]);
    double h = (a * bh - w * bd) / (bh + bd);
    if (h < 0)
        h = 0;
    if (h > hmax)
        h = hmax;
    *h_out = h;
    return fmax((w + h) / bh, (a - h) / bd);
}

void kvp_counters_add(kvp_counters *to, const kvp_counters *c)
{
    to->kv_read_hbm += c->kv_read_hbm;
    to->kv_read_dram += c->kv_read_dram;
    to->hbm_read += c->hbm_read;
    to->hbm_write += c->hbm_write;
    to->dram_read += c->dram_read;
    to->dram_write += c->dram_write;
    to->link_up += c->link_up;
    to->link_down += c->link_down;
    to->promoted += c->promoted;
    to->demoted += c->demoted;
}
