/* The cost model of one step of one layer (docs/MODEL.md). */
#include "engine/cost.h"

#include <math.h>
#include <string.h>

void kvp_cost_model_of(kvp_cost_model *m, const kvp_scenario *sc, const kvp_derived *d)
{
    (void)sc;
    memset(m, 0, sizeof *m);
    m->tiers = d->tiers;
    for (uint32_t j = 0; j < KVP_MAX_TIERS; j++)
        m->up_bandwidth[j] = m->down_bandwidth[j] = HUGE_VAL; /* unused: never busy */
    for (uint32_t k = 0; k < d->tiers; k++) {
        uint32_t j = d->tier_link[k];
        m->bandwidth[k] = d->tier_bandwidth[k];
        /* A two-tier machine keeps the two-tier model: DRAM holds whatever HBM does not. */
        m->kv_capacity[k] = k == 0               ? d->cap_layer
                            : d->tiers == 2      ? HUGE_VAL
                                                 : (double)d->tier_capacity[k] / sc->layers;
        m->link[k] = j;
        if (k && j > m->links)
            m->links = j;
        if (k) {
            m->up_bandwidth[j] = d->link_up[j];
            m->down_bandwidth[j] = d->link_down[j];
        }
    }
    m->fixed_bytes[0] = d->w_layer;
}

void kvp_traffic_of(kvp_traffic *t, const kvp_counters *c, uint32_t tiers, uint64_t tok_bytes)
{
    const double tok = (double)tok_bytes;
    for (uint32_t k = 0; k < tiers; k++) {
        t->read[k] = (double)c->read[k] * tok;
        t->write[k] = (double)c->write[k] * tok;
    }
}

double kvp_step_time(const kvp_cost_model *m, const kvp_traffic *t)
{
    double time = 0, up[KVP_MAX_TIERS] = {0}, down[KVP_MAX_TIERS] = {0};
    for (uint32_t k = 0; k < m->tiers; k++) {
        double bytes = m->fixed_bytes[k] + (t->read[k] + t->write[k]);
        time = fmax(time, bytes / m->bandwidth[k]);
        if (k) { /* the link carries what every tier behind it reads up and writes down */
            up[m->link[k]] += t->read[k];
            down[m->link[k]] += t->write[k];
        }
    }
    for (uint32_t j = 1; j <= m->links; j++) {
        time = fmax(time, up[j] / m->up_bandwidth[j]);
        time = fmax(time, down[j] / m->down_bandwidth[j]);
    }
    return time;
}

/* The most bytes a step of time T can read: HBM what its bandwidth leaves beside the
 * weights, each other tier what its bandwidth allows, each link what it carries up; each
 * within its capacity. */
static double readable(const kvp_cost_model *m, double T)
{
    double per_link[KVP_MAX_TIERS] = {0};
    double sum = fmin(m->kv_capacity[0], fmax(0, T * m->bandwidth[0] - m->fixed_bytes[0]));
    for (uint32_t k = 1; k < m->tiers; k++)
        per_link[m->link[k]] += fmin(m->kv_capacity[k], T * m->bandwidth[k]);
    for (uint32_t j = 1; j <= m->links; j++)
        sum += fmin(per_link[j], T * m->up_bandwidth[j]);
    return sum;
}

/* With one tier below HBM that can hold anything (a two-tier machine, or tiers of no
 * capacity beside it), at most kv_capacity[0] of the bytes read can come from HBM and the
 * rest crosses the tier and its link, so the step takes at least
 *     min over h in [0, min(a, cap)] of max((w + h) / B_hbm, (a - h) / min(B_tier, B_up)).
 * The first term grows with h and the second falls: the minimum is where they meet, clamped
 * to the interval, a closed form.  With more tiers the least T whose readable bytes reach a
 * is found by bisection (readable grows with T), and the lower end returned: a bound still.
 * Writes and migrations only add time. */
double kvp_step_time_bound(const kvp_cost_model *m, double a, double *h_out)
{
    uint32_t only = 0, used = 0;
    for (uint32_t k = 1; k < m->tiers; k++)
        if (m->kv_capacity[k] > 0) {
            only = k;
            used++;
        }
    double bh = m->bandwidth[0];
    double w = m->fixed_bytes[0];
    double hmax = fmin(a, m->kv_capacity[0]);
    if (used == 1 && m->kv_capacity[only] >= a) {
        double bd = fmin(m->bandwidth[only], m->up_bandwidth[m->link[only]]);
        double h = (a * bh - w * bd) / (bh + bd);
        if (h < 0)
            h = 0;
        if (h > hmax)
            h = hmax;
        *h_out = h;
        return fmax((w + h) / bh, (a - h) / bd);
    }
    double lo = w / bh, hi = lo > 0 ? 2 * lo : 1e-9;
    while (readable(m, hi) < a && hi < 0x1p1000)
        hi *= 2; /* past 2^1000 s the tiers cannot hold a at all (the engine refuses that) */
    for (int i = 0; i < 200 && hi - lo > hi * 0x1p-52; i++) {
        double mid = lo + (hi - lo) / 2;
        if (readable(m, mid) >= a)
            hi = mid;
        else
            lo = mid;
    }
    *h_out = fmin(hmax, fmax(0, lo * bh - w));
    return lo;
}

void kvp_counters_add(kvp_counters *to, const kvp_counters *c)
{
    for (int k = 0; k < KVP_MAX_TIERS; k++) {
        to->kv_read[k] += c->kv_read[k];
        to->read[k] += c->read[k];
        to->write[k] += c->write[k];
        to->moved_in[k] += c->moved_in[k];
        to->moved_out[k] += c->moved_out[k];
    }
    to->promoted += c->promoted;
    to->demoted += c->demoted;
}
