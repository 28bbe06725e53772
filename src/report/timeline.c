/*
 * Per-step records of a run (kvp_run_options.step_hook): the timeline, one CSV row per policy
 * and step summed over the layers in layer order, and the placement of one layer, which
 * positions sit in HBM after each step, as a bool .npy of shape (N, P + N).
 *
 * The engine runs layers on several threads; each (policy, layer, step) record has its own
 * slot, written by the one thread that runs that layer, and the sums are taken after the run
 * in a fixed order, so the files are the same for any thread count.
 */
#include "base/error.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Timeline                                                                                 */

typedef struct tl_cell {
    double time_s, busy[4];         /* hbm, dram, link up, link down */
    uint64_t kvh, kvd, prom, dem;   /* tokens */
    uint32_t resident;
} tl_cell;

struct kvp_timeline {
    size_t npol;
    uint32_t layers, steps;
    tl_cell *cell;       /* [policy][layer][step] */
    uint32_t *slots, *g; /* per policy */
    uint8_t *seen;       /* per policy: the engine reported it */
};

int kvp_timeline_create(kvp_timeline **out, size_t npolicies, uint32_t layers, uint32_t steps,
                        kvp_error *err)
{
    *out = NULL;
    size_t cells;
    if (__builtin_mul_overflow(npolicies, (size_t)layers, &cells) ||
        __builtin_mul_overflow(cells, (size_t)steps, &cells) ||
        cells > SIZE_MAX / sizeof(tl_cell))
        return kvp_error_set(err, KVP_ERANGE, "timeline: %zu policies x %u layers x %u steps "
                             "is too large", npolicies, layers, steps);
    kvp_timeline *t = calloc(1, sizeof *t);
    if (!t)
        return kvp_error_set(err, KVP_ENOMEM, "timeline: out of memory");
    t->npol = npolicies;
    t->layers = layers;
    t->steps = steps;
    t->cell = calloc(cells ? cells : 1, sizeof *t->cell);
    t->slots = calloc(npolicies ? npolicies : 1, sizeof *t->slots);
    t->g = calloc(npolicies ? npolicies : 1, sizeof *t->g);
    t->seen = calloc(npolicies ? npolicies : 1, 1);
    if (!t->cell || !t->slots || !t->g || !t->seen) {
        kvp_timeline_free(t);
        return kvp_error_set(err, KVP_ENOMEM, "timeline: out of memory for %zu records "
                             "(%zu bytes)", cells, cells * sizeof(tl_cell));
    }
    *out = t;
    return 0;
}

void kvp_timeline_free(kvp_timeline *t)
{
    if (!t)
        return;
    free(t->cell);
    free(t->slots);
    free(t->g);
    free(t->seen);
    free(t);
}

void kvp_timeline_record(void *user, const kvp_step_record *r)
{
    kvp_timeline *t = user;
    if (r->policy >= t->npol || r->layer >= t->layers || r->step >= t->steps)
        return;
    tl_cell *c = &t->cell[(r->policy * t->layers + r->layer) * t->steps + r->step];
    c->time_s = r->time_s;
    c->busy[0] = r->hbm_busy_s;
    c->busy[1] = r->dram_busy_s;
    c->busy[2] = r->link_up_busy_s;
    c->busy[3] = r->link_down_busy_s;
    c->kvh = r->kv_read_hbm;
    c->kvd = r->kv_read_dram;
    c->prom = r->promoted;
    c->dem = r->demoted;
    c->resident = r->resident;
    /* the same values from every layer: a race of equal writes would still be a race */
    if (r->layer == 0 && r->step == 0) {
        t->slots[r->policy] = r->slots;
        t->g[r->policy] = r->block_tokens;
        t->seen[r->policy] = 1;
    }
}

void kvp_timeline_copy_policy(kvp_timeline *to, size_t to_policy, const kvp_timeline *from,
                              size_t from_policy)
{
    if (to_policy >= to->npol || from_policy >= from->npol || to->layers != from->layers ||
        to->steps != from->steps)
        return;
    size_t per = (size_t)to->layers * to->steps;
    memcpy(&to->cell[to_policy * per], &from->cell[from_policy * per], per * sizeof(tl_cell));
    to->slots[to_policy] = from->slots[from_policy];
    to->g[to_policy] = from->g[from_policy];
    to->seen[to_policy] = from->seen[from_policy];
}

const char kvp_timeline_header[] =
    "policy,step,time_s,hbm_busy_s,dram_busy_s,link_up_busy_s,link_down_busy_s,"
    "kv_read_hbm_bytes,kv_read_dram_bytes,promoted_bytes,demoted_bytes,hbm_blocks,hbm_slots,"
    "block_tokens";

int kvp_timeline_write_csv(const kvp_timeline *t, const char *const *labels, size_t nlabels,
                           uint64_t tok_bytes, const char *path, kvp_error *err)
{
    /* Check everything before the file exists. */
    for (size_t p = 0; p < nlabels && p < t->npol; p++) {
        if (!labels[p] || !t->seen[p]) /* not simulated step by step (bound, ...) */
            continue;
        uint64_t limit = UINT64_MAX / (tok_bytes ? tok_bytes : 1) / (t->layers ? t->layers : 1);
        for (size_t k = 0; k < (size_t)t->layers * t->steps; k++) {
            const tl_cell *c = &t->cell[p * (size_t)t->layers * t->steps + k];
            if (!isfinite(c->time_s))
                return kvp_error_set(err, KVP_ERANGE, "%s: a step time of %s is not finite",
                                     path, labels[p]);
            if (c->kvh > limit || c->kvd > limit || c->prom > limit || c->dem > limit)
                return kvp_error_set(err, KVP_ERANGE, "%s: byte counts overflow 64 bits",
                                     path);
        }
    }
    kvp_out *o;
    int rc = kvp_out_open(&o, path, err);
    if (rc < 0)
        return rc;
    FILE *f = kvp_out_file(o);
    fprintf(f, "%s\n", kvp_timeline_header);
    for (size_t p = 0; p < nlabels && p < t->npol; p++) {
        if (!labels[p] || !t->seen[p])
            continue;
        for (uint32_t n = 0; n < t->steps; n++) {
            double time_s = 0, busy[4] = {0, 0, 0, 0};
            uint64_t kvh = 0, kvd = 0, prom = 0, dem = 0, res = 0;
            /* layer order, whatever thread ran which layer */
            for (uint32_t l = 0; l < t->layers; l++) {
                const tl_cell *c = &t->cell[(p * t->layers + l) * t->steps + n];
                time_s += c->time_s;
                for (int k = 0; k < 4; k++)
                    busy[k] += c->busy[k];
                kvh += c->kvh;
                kvd += c->kvd;
                prom += c->prom;
                dem += c->dem;
                res += c->resident;
            }
            char num[6][40];
            kvp_format_double(num[0], sizeof num[0], time_s);
            for (int k = 0; k < 4; k++)
                kvp_format_double(num[k + 1], sizeof num[k + 1], busy[k]);
            kvp_csv_cell(f, labels[p]);
            fprintf(f, ",%" PRIu32 ",%s,%s,%s,%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64
                    ",%" PRIu64 ",%" PRIu64 ",", n, num[0], num[1], num[2], num[3], num[4],
                    kvh * tok_bytes, kvd * tok_bytes, prom * tok_bytes, dem * tok_bytes, res);
            if (t->slots[p] == UINT32_MAX)
                fputs("-1", f); /* no limit */
            else
                fprintf(f, "%" PRIu64, (uint64_t)t->slots[p] * t->layers);
            fprintf(f, ",%" PRIu32 "\n", t->g[p]);
        }
    }
    return kvp_out_close(o, 1, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Placement of one layer                                                                   */

struct kvp_placement {
    size_t policy;
    uint32_t layer, steps, cols; /* cols = P + N */
    uint64_t *bits;              /* steps rows of words_per_row words */
    size_t words;
    int seen;
};

#define WORD_BITS 64

int kvp_placement_create(kvp_placement **out, size_t policy, uint32_t layer, uint32_t prompt,
                         uint32_t steps, kvp_error *err)
{
    *out = NULL;
    uint64_t cols = (uint64_t)prompt + steps;
    if (cols > UINT32_MAX)
        return kvp_error_set(err, KVP_ERANGE, "placement: %llu positions are too many",
                             (unsigned long long)cols);
    size_t words = (size_t)((cols + WORD_BITS - 1) / WORD_BITS);
    if (steps && words > SIZE_MAX / sizeof(uint64_t) / steps)
        return kvp_error_set(err, KVP_ERANGE, "placement: too large");
    kvp_placement *p = calloc(1, sizeof *p);
    if (!p)
        return kvp_error_set(err, KVP_ENOMEM, "placement: out of memory");
    p->policy = policy;
    p->layer = layer;
    p->steps = steps;
    p->cols = (uint32_t)cols;
    p->words = words;
    p->bits = calloc(words * (steps ? steps : 1), sizeof *p->bits);
    if (!p->bits) {
        free(p);
        return kvp_error_set(err, KVP_ENOMEM, "placement: out of memory for %u x %llu bits",
                             steps, (unsigned long long)cols);
    }
    *out = p;
    return 0;
}

void kvp_placement_free(kvp_placement *p)
{
    if (!p)
        return;
    free(p->bits);
    free(p);
}

void kvp_placement_record(void *user, const kvp_step_record *r)
{
    kvp_placement *p = user;
    if (r->policy != p->policy || r->layer != p->layer || r->step >= p->steps)
        return;
    uint64_t *row = &p->bits[(size_t)r->step * p->words];
    uint64_t ctx = (uint64_t)p->cols - p->steps + r->step + 1; /* positions 0..P+n */
    uint32_t g = r->block_tokens ? r->block_tokens : 1;
    for (uint32_t b = 0; b < r->blocks; b++) {
        if (!r->in_hbm[b])
            continue;
        uint64_t lo = (uint64_t)b * g, hi = lo + g < ctx ? lo + g : ctx;
        for (uint64_t x = lo; x < hi; x++)
            row[x / WORD_BITS] |= 1ull << (x % WORD_BITS);
    }
    p->seen = 1;
}

int kvp_placement_write_npy(const kvp_placement *p, const char *path, kvp_error *err)
{
    if (!p->seen)
        return kvp_error_set(err, KVP_EINVAL, "%s: the policy has no steps to record (it is "
                             "not simulated step by step)", path);
    char dict[160];
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '|b1', 'fortran_order': False, 'shape': (%u, %u), }",
                      p->steps, p->cols);
    enum { PRELUDE = 10, ALIGN = 64 };
    size_t used = PRELUDE + (size_t)dl + 1;
    size_t total = (used + ALIGN - 1) / ALIGN * ALIGN;
    unsigned char head[256];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)((total - PRELUDE) & 0xff);
    head[9] = (unsigned char)((total - PRELUDE) >> 8);
    memcpy(head + PRELUDE, dict, (size_t)dl);
    memset(head + PRELUDE + dl, ' ', total - used);
    head[total - 1] = '\n';
    unsigned char *row = malloc(p->cols ? p->cols : 1);
    if (!row)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    kvp_out *o;
    int rc = kvp_out_open(&o, path, err);
    if (rc < 0) {
        free(row);
        return rc;
    }
    FILE *f = kvp_out_file(o);
    int ok = fwrite(head, 1, total, f) == total;
    for (uint32_t n = 0; ok && n < p->steps; n++) {
        const uint64_t *bits = &p->bits[(size_t)n * p->words];
        for (uint32_t x = 0; x < p->cols; x++)
            row[x] = (unsigned char)((bits[x / WORD_BITS] >> (x % WORD_BITS)) & 1);
        ok = fwrite(row, 1, p->cols, f) == p->cols;
    }
    free(row);
    if (!ok) {
        kvp_out_close(o, 0, NULL);
        return kvp_error_set(err, KVP_EIO, "%s: write failed", path);
    }
    return kvp_out_close(o, 1, err);
}
