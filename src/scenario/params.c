/*
 * Scenario parameters: the one table of names, units, bounds, defaults and docs (docs/MODEL.md
 * §1), the number parser every piece of user text goes through, --set, the INI config reader, and
 * the derived quantities (tok_bytes, kv_budget, slots).
 */
#include "kvplace.h"
#include "base/error.h"
#include "scenario/defaults.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define U64_MAX_D 18446744073709551615.0 /* 2^64-1, as a bound in the table */
#define TEXT_MAX 127                      /* longest value text accepted */
#define NAME_MAX_LEN 63                   /* longest parameter name looked up */
#define DIGITS_MAX 40   /* significant digits kept; more is refused, never rounded away */
#define EXP_CAP 100000  /* |exponent| past this over- or underflows anyway */
#define POW5_MAX 27     /* 5^27 is the largest power of 5 below 2^64 */
#define SUGGEST_MAX 2   /* edit distance up to which "did you mean" suggests a name */

#define OFF(f) offsetof(kvp_scenario, f)

/* Tier k >= 2: capacity (0 allowed: a tier that holds nothing), bandwidth (unset until
 * given; a tier in use needs one), link (default k).  Link j: bandwidth each way, and
 * optionally each direction alone. */
#define TIER(k)                                                                              \
    {"tier" #k "_capacity", KVP_PK_BYTES, OFF(tier_capacity) + (k) * sizeof(uint64_t),      \
     "bytes", "0", 0, U64_MAX_D, 0, "hardware", "KV capacity of tier " #k},                 \
    {"tier" #k "_bandwidth", KVP_PK_BANDWIDTH_OPT,                                          \
     OFF(tier_bandwidth) + (k) * sizeof(double), "bytes/s", "0", 0, HUGE_VAL, 1,            \
     "hardware", "bandwidth of tier " #k " (0: unset)"},                                    \
    {"tier" #k "_link", KVP_PK_COUNT, OFF(tier_link) + (k) * sizeof(uint32_t), "", #k, 1,    \
     KVP_MAX_TIERS - 1, 0, "hardware", "the link tier " #k " sits behind"}
#define LINK_UPDOWN(j)                                                                       \
    {"link" #j "_up_bandwidth", KVP_PK_BANDWIDTH_OPT,                                       \
     OFF(link_up_bw) + (j) * sizeof(double), "bytes/s", "0", 0, HUGE_VAL, 1, "hardware",    \
     "link " #j " towards HBM (0: its bandwidth each way)"},                                \
    {"link" #j "_down_bandwidth", KVP_PK_BANDWIDTH_OPT,                                     \
     OFF(link_down_bw) + (j) * sizeof(double), "bytes/s", "0", 0, HUGE_VAL, 1, "hardware",  \
     "link " #j " away from HBM (0: its bandwidth each way)"}
#define LINK(j)                                                                              \
    {"link" #j "_bandwidth", KVP_PK_BANDWIDTH_OPT, OFF(link_bw) + (j) * sizeof(double),     \
     "bytes/s", "0", 0, HUGE_VAL, 1, "hardware", "link " #j ", each direction (0: unset)"}, \
    LINK_UPDOWN(j)

/* Bounds: capacities >= 1 byte; weights and reserve may be 0 (weights left out of the HBM
 * time is one of the study's accounting variants); bandwidths >= 1 B/s and finite; shapes and
 * workload limited to what a real model and our position arithmetic (uint32) can hold. */
static const kvp_param_info params[] = {
    {"hbm_capacity", KVP_PK_BYTES, OFF(hbm_capacity), "bytes", STUDY_HBM_CAPACITY, 1,
     U64_MAX_D, 0, "hardware", "GPU HBM capacity, shared by weights, reserve and KV cache"},
    {"hbm_bandwidth", KVP_PK_BANDWIDTH, OFF(hbm_bandwidth), "bytes/s", STUDY_HBM_BANDWIDTH,
     1, HUGE_VAL, 1, "hardware", "GPU HBM bandwidth"},
    {"dram_capacity", KVP_PK_BYTES, OFF(dram_capacity), "bytes", STUDY_DRAM_CAPACITY, 1,
     U64_MAX_D, 0, "hardware", "off-package DRAM capacity (tier 1; also tier1_capacity)"},
    {"dram_bandwidth", KVP_PK_BANDWIDTH, OFF(dram_bandwidth), "bytes/s",
     STUDY_DRAM_BANDWIDTH, 1, HUGE_VAL, 1, "hardware",
     "off-package DRAM bandwidth (tier 1; also tier1_bandwidth)"},
    {"link_bandwidth", KVP_PK_BANDWIDTH, OFF(link_bandwidth), "bytes/s",
     STUDY_LINK_BANDWIDTH, 1, HUGE_VAL, 1, "hardware",
     "GPU <-> off-package link bandwidth, each direction (link 1; also link1_bandwidth)"},
    {"reserve", KVP_PK_BYTES, OFF(reserve), "bytes", "0", 0, U64_MAX_D, 0, "hardware",
     "HBM bytes held back from the KV cache (activations, workspace)"},
    /* Tiers beyond two (docs/MODEL.md "Tiers beyond two").  Tier 1's capacity and bandwidth
     * are dram_capacity and dram_bandwidth, link 1's is link_bandwidth (tier1_capacity,
     * tier1_bandwidth and link1_bandwidth name them too, see aliases below). */
    {"tiers", KVP_PK_COUNT, OFF(tiers), "", "2", 2, KVP_MAX_TIERS, 0, "hardware",
     "memory tiers K: HBM (tier 0) and K-1 tiers below it, fastest first"},
    {"tier1_link", KVP_PK_COUNT, OFF(tier_link) + 1 * sizeof(uint32_t), "", "1", 1,
     KVP_MAX_TIERS - 1, 0, "hardware", "the link tier 1 sits behind"},
    TIER(2), TIER(3), TIER(4), TIER(5), TIER(6), TIER(7),
    LINK_UPDOWN(1),
    LINK(2), LINK(3), LINK(4), LINK(5), LINK(6), LINK(7),
    {"layers", KVP_PK_COUNT, OFF(layers), "", L31_8B_LAYERS, 1, 4096, 0, "model",
     "transformer layers"},
    {"kv_heads", KVP_PK_COUNT, OFF(kv_heads), "", L31_8B_KV_HEADS, 1, 1024, 0, "model",
     "KV heads per layer (set to the query heads to count KV per query head)"},
    {"head_dim", KVP_PK_COUNT, OFF(head_dim), "", L31_8B_HEAD_DIM, 1, 65536, 0, "model",
     "dimension of one head"},
    {"dtype_bytes", KVP_PK_COUNT, OFF(dtype_bytes), "bytes", L31_8B_DTYPE_BYTES, 1, 8, 0,
     "model", "bytes per KV element (2 for bf16)"},
    {"weight_bytes", KVP_PK_BYTES, OFF(weight_bytes), "bytes", L31_8B_WEIGHT_BYTES, 0,
     U64_MAX_D, 0, "model", "all weights, resident in HBM, read once per step (0: not counted)"},
    {"batch", KVP_PK_COUNT, OFF(batch), "", "1", 1, 65536, 0, "workload",
     "sequences decoded together: KV bytes scale with it, weight reads do not"},
    {"tp", KVP_PK_COUNT, OFF(tp), "", "1", 1, 1024, 0, "workload",
     "tensor parallelism: GPUs (each the hardware given) sharing weights and KV heads"},
    {"sparsity", KVP_PK_FRACTION, OFF(sparsity), "", "0.6", 0, 1, 1, "workload",
     "share of past tokens NOT read at a step"},
    {"topk", KVP_PK_COUNT, OFF(topk), "tokens", "0", 0, UINT32_MAX, 0, "workload",
     "tokens read at a step, in place of sparsity (0: off, sparsity decides)"},
    {"page_tokens", KVP_PK_COUNT, OFF(page_tokens), "tokens", "16", 1, 65536, 0, "workload",
     "tokens per page of the page policy"},
    {"prompt", KVP_PK_COUNT, OFF(prompt), "tokens", "4096", 1, 1 << 26, 0, "synthetic",
     "prompt tokens of a synthetic trace"},
    {"steps", KVP_PK_COUNT, OFF(steps), "", "256", 1, 1 << 24, 0, "synthetic",
     "decode steps of a synthetic trace"},
    {"seed", KVP_PK_U64, OFF(seed), "", "1", 0, U64_MAX_D, 0, "synthetic",
     "random seed of a synthetic trace"},
    {"variation", KVP_PK_VARIATION, OFF(variation), "", "actual", 0, 0, 0, "synthetic",
     "how fast token importance drifts in a synthetic trace: low, actual, high"},
    {"sequences", KVP_PK_COUNT, OFF(sequences), "", "1", 1, KVP_MAX_SEQUENCES, 0, "synthetic",
     "distinct sequences of a synthetic batch, each with its own seed and prompt length"},
};

static const char *const variation_names[] = {"low", "actual", "high"};
#define NVARIATION (sizeof variation_names / sizeof *variation_names)

/* Decimal prefixes; a following 'i' makes them binary (Ki = 2^10 ... Pi = 2^50). 'k' is kilo
 * too, but only "Ki" is binary. */
static const struct {
    char c;
    int pow10;
    int binary_ok;
} prefixes[] = {{'k', 3, 0}, {'K', 3, 1}, {'M', 6, 1}, {'G', 9, 1}, {'T', 12, 1}, {'P', 15, 1}};

/* Byte units for messages: "16.06 GB". */
static const char *const size_units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
#define SIZE_STEP 1000.0

const kvp_param_info *kvp_params(size_t *count)
{
    if (count)
        *count = sizeof params / sizeof *params;
    return params;
}

/* Other names of parameters: tier 1 and link 1 are today's DRAM and link. */
static const struct {
    const char *alias, *name;
} aliases[] = {{"tier1_capacity", "dram_capacity"},
               {"tier1_bandwidth", "dram_bandwidth"},
               {"link1_bandwidth", "link_bandwidth"}};

const kvp_param_info *kvp_param_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (strcmp(aliases[i].alias, name) == 0)
            name = aliases[i].name;
    for (size_t i = 0; i < sizeof params / sizeof *params; i++)
        if (strcmp(params[i].name, name) == 0)
            return &params[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Numbers                                                                                  */

/* A number as scanned: value = (-1)^negative * digits * 10^exp10 * 2^exp2, digits without
 * leading or trailing zeros (ndigits == 0 means zero). */
typedef struct num_text {
    char digits[DIGITS_MAX + 1];
    size_t ndigits;
    long exp10;
    unsigned exp2;
    int negative;
    const char *prefix; /* text after the number: its prefix, unit, or junk */
    const char *rest;   /* text after the number and its prefix: the unit, or junk */
} num_text;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static void add_digit(num_text *nt, char c, int fraction, int *too_many)
{
    if (nt->ndigits == 0 && c == '0') {
        if (fraction)
            nt->exp10--;
        return;
    }
    if (nt->ndigits == DIGITS_MAX) {
        *too_many = 1;
        return;
    }
    nt->digits[nt->ndigits++] = c;
    if (fraction)
        nt->exp10--;
}

/* Scans [sign] digits [. digits] [e [sign] digits] [prefix [i]].  Fails only when there is no
 * number at all or it has too many digits; anything after it is left in nt->rest. */
static int scan_number(const char *text, num_text *nt, kvp_error *err)
{
    const char *p = text;
    int any = 0, too_many = 0;
    memset(nt, 0, sizeof *nt);
    if (*p == '-' || *p == '+')
        nt->negative = *p++ == '-';
    for (; is_digit(*p); p++, any = 1)
        add_digit(nt, *p, 0, &too_many);
    if (*p == '.' && (any || is_digit(p[1])))
        for (p++; is_digit(*p); p++, any = 1)
            add_digit(nt, *p, 1, &too_many);
    if (!any)
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not a number", text);
    if (too_many)
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" has more than %d significant digits",
                             text, DIGITS_MAX);
    if ((*p == 'e' || *p == 'E') &&
        (is_digit(p[1]) || ((p[1] == '-' || p[1] == '+') && is_digit(p[2])))) {
        const char *q = p + 1;
        int neg = 0;
        long e = 0;
        if (*q == '-' || *q == '+')
            neg = *q++ == '-';
        for (; is_digit(*q); q++)
            if (e < EXP_CAP)
                e = e * 10 + (*q - '0');
        nt->exp10 += neg ? -e : e;
        p = q;
    }
    nt->prefix = p;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        if (*p != prefixes[i].c)
            continue;
        if (p[1] == 'i' && prefixes[i].binary_ok) {
            nt->exp2 = (unsigned)(prefixes[i].pow10 / 3 * 10);
            p += 2;
        } else {
            nt->exp10 += prefixes[i].pow10;
            p++;
        }
        break;
    }
    while (nt->ndigits > 0 && nt->digits[nt->ndigits - 1] == '0') {
        nt->ndigits--;
        nt->exp10++;
    }
    nt->digits[nt->ndigits] = '\0';
    if (nt->ndigits == 0)
        nt->exp10 = 0;
    nt->rest = p;
    return 0;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

/* The exact integer value of nt, or an error for fractions and overflow.  Exact: "1.5GB" is
 * 1500000000 and "0.5KiB" is 512 without going through floating point. */
static int num_to_u64(const num_text *nt, const char *text, const char *what, uint64_t *out,
                      kvp_error *err)
{
    uint64_t v = 0;
    if (nt->ndigits == 0) {
        *out = 0;
        return 0;
    }
    for (size_t i = 0; i < nt->ndigits; i++) {
        uint64_t digit = (uint64_t)(nt->digits[i] - '0');
        if (mul_u64(v, 10, &v) < 0 || v > UINT64_MAX - digit) {
            if (nt->exp10 < 0)
                return kvp_error_set(err, KVP_ERANGE, "\"%s\" has too many significant digits",
                                     text);
            return kvp_error_set(err, KVP_ERANGE, "\"%s\" overflows 64 bits (max %" PRIu64 ")",
                                 text, UINT64_MAX);
        }
        v += digit;
    }
    unsigned twos = nt->exp2; /* net power of two still to apply */
    if (nt->exp10 >= 0) {
        for (long i = 0; i < nt->exp10; i++)
            if (mul_u64(v, 10, &v) < 0)
                return kvp_error_set(err, KVP_ERANGE,
                                     "\"%s\" overflows 64 bits (max %" PRIu64 ")", text,
                                     UINT64_MAX);
    } else {
        /* digits has no trailing zero, so v * 2^exp2 / 10^m is whole only if 5^m divides v
         * and the 2^m left over is covered by 2^exp2 or by v's own factors of two. */
        long m = -nt->exp10;
        uint64_t p5 = 1;
        if (m > POW5_MAX)
            return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not a whole number%s", text, what);
        for (long i = 0; i < m; i++)
            p5 *= 5;
        if (v % p5 != 0)
            return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not a whole number%s", text, what);
        v /= p5;
        if ((unsigned long)m > twos) {
            unsigned shift = (unsigned)m - twos;
            if (v % ((uint64_t)1 << shift) != 0)
                return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not a whole number%s", text,
                                     what);
            v >>= shift;
            twos = 0;
        } else {
            twos -= (unsigned)m;
        }
    }
    if (twos > 0) {
        if (twos >= 64 || v > (UINT64_MAX >> twos))
            return kvp_error_set(err, KVP_ERANGE, "\"%s\" overflows 64 bits (max %" PRIu64 ")",
                                 text, UINT64_MAX);
        v <<= twos;
    }
    *out = v;
    return 0;
}

/* The correctly rounded double of nt: strtod sees "digits e exp10" (no decimal point, so no
 * locale), then the binary prefix is an exact scaling. */
static int num_to_double(const num_text *nt, const char *text, double *out, kvp_error *err)
{
    char buf[DIGITS_MAX + 32];
    if (nt->ndigits == 0) {
        *out = nt->negative ? -0.0 : 0.0;
        return 0;
    }
    snprintf(buf, sizeof buf, "%se%ld", nt->digits, nt->exp10);
    double v = ldexp(strtod(buf, NULL), (int)nt->exp2);
    if (!isfinite(v))
        return kvp_error_set(err, KVP_ERANGE, "\"%s\" is too large", text);
    if (v == 0.0)
        return kvp_error_set(err, KVP_ERANGE, "\"%s\" is too small", text);
    *out = nt->negative ? -v : v;
    return 0;
}

/* The unit a kind accepts after the number ("" for none), and what to say otherwise. */
static int check_unit(kvp_param_kind kind, const char *text, const char *rest, kvp_error *err)
{
    const char *unit = kind == KVP_PK_BYTES                                       ? "B"
                       : kind == KVP_PK_BANDWIDTH || kind == KVP_PK_BANDWIDTH_OPT ? "B/s"
                                                                                  : "";
    if (*rest == '\0' || strcmp(rest, unit) == 0)
        return 0;
    if ((kind == KVP_PK_BANDWIDTH || kind == KVP_PK_BANDWIDTH_OPT) && strcmp(rest, "B") == 0)
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not a bandwidth (write e.g. 500GB/s)",
                             text);
    if (kind == KVP_PK_BYTES && strcmp(rest, "B/s") == 0)
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" is a bandwidth, not a byte count", text);
    if ((kind == KVP_PK_COUNT || kind == KVP_PK_U64) && *rest == 'B')
        return kvp_error_set(err, KVP_EINVAL, "\"%s\": a count takes no unit", text);
    if (*unit && strncmp(rest, unit, strlen(unit)) == 0)
        rest += strlen(unit); /* "24GBx": the junk is the "x" */
    return kvp_error_set(err, KVP_EINVAL, "\"%s\" has trailing junk \"%s\"", text, rest);
}

typedef struct parsed {
    uint64_t u; /* BYTES, COUNT, U64, VARIATION */
    double d;   /* BANDWIDTH, FRACTION */
} parsed;

/* Parses text for a kind; messages do not name the parameter (the caller adds it). */
static int parse_kind(kvp_param_kind kind, const char *text, parsed *out, kvp_error *err)
{
    num_text nt;
    int rc;
    if (!text || *text == '\0')
        return kvp_error_set(err, KVP_EINVAL, "empty value");
    if (strlen(text) > TEXT_MAX)
        return kvp_error_set(err, KVP_EINVAL, "value is longer than %d characters", TEXT_MAX);
    if (kind == KVP_PK_VARIATION) {
        for (size_t i = 0; i < NVARIATION; i++)
            if (strcmp(text, variation_names[i]) == 0) {
                out->u = i;
                return 0;
            }
        const char *s = kvp_closest_name(text, variation_names, NVARIATION);
        if (s)
            return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not one of low, actual, high (did "
                                 "you mean \"%s\"?)", text, s);
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not one of low, actual, high", text);
    }
    if ((rc = scan_number(text, &nt, err)) < 0)
        return rc;
    if (kind == KVP_PK_FRACTION && nt.prefix[0] != '\0') /* no "0.5k" */
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" has trailing junk \"%s\"", text,
                             nt.prefix);
    if ((rc = check_unit(kind, text, nt.rest, err)) < 0)
        return rc;
    switch (kind) {
    case KVP_PK_BANDWIDTH_OPT:
        if (!nt.negative && nt.ndigits == 0) {
            out->d = 0; /* unset */
            return 0;
        }
        /* fall through */
    case KVP_PK_BANDWIDTH:
        if (nt.negative || nt.ndigits == 0)
            return kvp_error_set(err, KVP_EINVAL, "\"%s\" is not greater than 0", text);
        return num_to_double(&nt, text, &out->d, err);
    case KVP_PK_FRACTION:
        return num_to_double(&nt, text, &out->d, err);
    case KVP_PK_BYTES:
    case KVP_PK_COUNT:
    case KVP_PK_U64:
        if (nt.negative)
            return kvp_error_set(err, KVP_EINVAL, "\"%s\" is negative", text);
        /* a COUNT past uint32 is refused by the table's bounds (all below 2^32) */
        return num_to_u64(&nt, text, kind == KVP_PK_BYTES ? " of bytes" : "", &out->u, err);
    case KVP_PK_VARIATION:
        break;
    }
    return kvp_error_set(err, KVP_EINVAL, "\"%s\": unknown parameter kind", text);
}

int kvp_parse_bytes(const char *text, uint64_t *out, kvp_error *err)
{
    parsed v;
    int rc = parse_kind(KVP_PK_BYTES, text, &v, err);
    if (rc == 0)
        *out = v.u;
    return rc;
}

int kvp_parse_bandwidth(const char *text, double *out, kvp_error *err)
{
    parsed v;
    int rc = parse_kind(KVP_PK_BANDWIDTH, text, &v, err);
    if (rc == 0)
        *out = v.d;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Setting, formatting and checking parameters                                              */

static int is_integer_kind(kvp_param_kind k)
{
    return k == KVP_PK_BYTES || k == KVP_PK_COUNT || k == KVP_PK_U64;
}

static void fmt_bound(char *buf, size_t len, const kvp_param_info *p, double v)
{
    if (is_integer_kind(p->kind) && v >= U64_MAX_D)
        snprintf(buf, len, "%" PRIu64, UINT64_MAX);
    else
        snprintf(buf, len, "%.15g", v);
}

/* Checks v against the table's bounds; shown is how the value reads in the message. */
static int check_range(const kvp_param_info *p, double v, const char *shown, kvp_error *err)
{
    if (p->kind == KVP_PK_VARIATION)
        return 0;
    int bad = isnan(v) || v < p->min || (p->max_open ? v >= p->max : v > p->max);
    if (!bad)
        return 0;
    char lo[32], hi[32];
    fmt_bound(lo, sizeof lo, p, p->min);
    fmt_bound(hi, sizeof hi, p, p->max);
    return kvp_error_set(err, KVP_EINVAL, "%s: %s is out of range [%s, %s%c", p->name, shown,
                         lo, hi, p->max_open ? ')' : ']');
}

static void *field(kvp_scenario *sc, const kvp_param_info *p) { return (char *)sc + p->offset; }

static const void *cfield(const kvp_scenario *sc, const kvp_param_info *p)
{
    return (const char *)sc + p->offset;
}

/* The value of a parameter as a double (for range checks). */
static double value_of(const kvp_scenario *sc, const kvp_param_info *p)
{
    const void *at = cfield(sc, p);
    uint64_t u;
    uint32_t c;
    double d;
    kvp_variation var;
    switch (p->kind) {
    case KVP_PK_BYTES:
    case KVP_PK_U64:
        memcpy(&u, at, sizeof u);
        return (double)u;
    case KVP_PK_COUNT:
        memcpy(&c, at, sizeof c);
        return (double)c;
    case KVP_PK_BANDWIDTH:
    case KVP_PK_BANDWIDTH_OPT:
    case KVP_PK_FRACTION:
        memcpy(&d, at, sizeof d);
        return d;
    case KVP_PK_VARIATION:
        memcpy(&var, at, sizeof var);
        return (double)var;
    }
    return NAN;
}

/* Lower case without '_' and '-', for suggestions: "HBM-Capacity" ~ "hbm_capacity". */
static size_t normalise(const char *s, char *out, size_t len)
{
    size_t n = 0;
    for (; *s && n + 1 < len; s++)
        if (*s != '_' && *s != '-')
            out[n++] = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
    out[n] = '\0';
    return n;
}

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t row[NAME_MAX_LEN + 2];
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

const char *kvp_closest_name(const char *name, const char *const *names, size_t n)
{
    char key[NAME_MAX_LEN + 1], cand[NAME_MAX_LEN + 1];
    if (!name || strlen(name) > NAME_MAX_LEN)
        return NULL;
    size_t nk = normalise(name, key, sizeof key);
    const char *best = NULL;
    size_t best_d = SUGGEST_MAX + 1;
    int tie = 0;
    for (size_t i = 0; i < n; i++) {
        if (strlen(names[i]) > NAME_MAX_LEN)
            continue;
        size_t nc = normalise(names[i], cand, sizeof cand);
        /* a prefix of three or more letters counts as distance 1 ("hbmcap") */
        size_t d = (nk >= 3 && nk < nc && strncmp(key, cand, nk) == 0)
                       ? 1
                       : edit_distance(key, nk, cand, nc);
        if (d < best_d) {
            best = names[i];
            best_d = d;
            tie = 0;
        } else if (d == best_d && best && strcmp(best, names[i]) != 0) {
            tie = 1;
        }
    }
    return tie ? NULL : best;
}

/* The parameter a mistyped name most likely meant, or NULL when none is close or two are
 * equally close. */
static const char *suggest(const char *name)
{
    const char *names[sizeof params / sizeof *params];
    for (size_t i = 0; i < sizeof params / sizeof *params; i++)
        names[i] = params[i].name;
    return kvp_closest_name(name, names, sizeof params / sizeof *params);
}

static int unknown_param(const char *name, kvp_error *err)
{
    const char *s = suggest(name);
    if (s)
        return kvp_error_set(err, KVP_EINVAL, "unknown parameter \"%s\" (did you mean \"%s\"?)",
                             name, s);
    return kvp_error_set(err, KVP_EINVAL, "unknown parameter \"%s\"", name);
}

int kvp_param_set(kvp_scenario *sc, const char *name, const char *value, kvp_error *err)
{
    const kvp_param_info *p = kvp_param_find(name);
    kvp_error inner;
    parsed v = {0, 0.0};
    if (!p)
        return unknown_param(name ? name : "", err);
    int rc = parse_kind(p->kind, value, &v, &inner);
    if (rc < 0)
        return kvp_error_set(err, rc, "%s: %s", p->name, inner.msg);
    if ((rc = check_range(p, is_integer_kind(p->kind) ? (double)v.u : v.d, value, err)) < 0)
        return rc;
    void *at = field(sc, p);
    switch (p->kind) {
    case KVP_PK_BYTES:
    case KVP_PK_U64:
        memcpy(at, &v.u, sizeof v.u);
        break;
    case KVP_PK_COUNT: {
        uint32_t c = (uint32_t)v.u;
        memcpy(at, &c, sizeof c);
        break;
    }
    case KVP_PK_BANDWIDTH:
    case KVP_PK_BANDWIDTH_OPT:
    case KVP_PK_FRACTION:
        memcpy(at, &v.d, sizeof v.d);
        break;
    case KVP_PK_VARIATION: {
        kvp_variation var = (kvp_variation)v.u;
        memcpy(at, &var, sizeof var);
        break;
    }
    }
    if (p->offset == OFF(sparsity))
        sc->given |= KVP_GIVEN_SPARSITY;
    else if (p->offset == OFF(topk))
        sc->given |= KVP_GIVEN_TOPK;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

int kvp_param_assign(kvp_scenario *sc, const char *assignment, kvp_error *err)
{
    char name[NAME_MAX_LEN + 1], value[TEXT_MAX + 1];
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    if (!eq)
        return kvp_error_set(err, KVP_EINVAL, "--set expects name=value, got \"%s\"",
                             assignment ? assignment : "");
    const char *a = assignment, *b = eq;
    while (a < b && is_space(*a))
        a++;
    while (b > a && is_space(b[-1]))
        b--;
    if (a == b)
        return kvp_error_set(err, KVP_EINVAL, "--set expects name=value, got \"%s\"",
                             assignment);
    if ((size_t)(b - a) > NAME_MAX_LEN)
        return kvp_error_set(err, KVP_EINVAL, "unknown parameter \"%.*s\"", (int)(b - a), a);
    memcpy(name, a, (size_t)(b - a));
    name[b - a] = '\0';
    a = eq + 1;
    b = a + strlen(a);
    while (a < b && is_space(*a))
        a++;
    while (b > a && is_space(b[-1]))
        b--;
    if ((size_t)(b - a) > TEXT_MAX)
        return kvp_error_set(err, KVP_EINVAL, "%s: value is longer than %d characters", name,
                             TEXT_MAX);
    memcpy(value, a, (size_t)(b - a));
    value[b - a] = '\0';
    return kvp_param_set(sc, name, value, err);
}

int kvp_param_format(const kvp_scenario *sc, const kvp_param_info *p, char *buf, size_t len)
{
    const void *at;
    int n = -1;
    if (!sc || !p)
        return KVP_EINVAL;
    at = cfield(sc, p);
    switch (p->kind) {
    case KVP_PK_BYTES:
    case KVP_PK_U64: {
        uint64_t u;
        memcpy(&u, at, sizeof u);
        n = snprintf(buf, len, "%" PRIu64, u);
        break;
    }
    case KVP_PK_COUNT: {
        uint32_t c;
        memcpy(&c, at, sizeof c);
        n = snprintf(buf, len, "%" PRIu32, c);
        break;
    }
    case KVP_PK_BANDWIDTH:
    case KVP_PK_BANDWIDTH_OPT:
    case KVP_PK_FRACTION: {
        double d;
        memcpy(&d, at, sizeof d);
        n = snprintf(buf, len, "%.17g", d);
        break;
    }
    case KVP_PK_VARIATION: {
        kvp_variation var;
        memcpy(&var, at, sizeof var);
        if ((unsigned)var >= NVARIATION)
            return KVP_EINVAL;
        n = snprintf(buf, len, "%s", variation_names[var]);
        break;
    }
    }
    if (n < 0 || (size_t)n >= len)
        return KVP_ERANGE;
    return n;
}

void kvp_scenario_default(kvp_scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        int rc = kvp_param_set(sc, params[i].name, params[i].deflt, NULL);
        assert(rc == 0); /* the table's defaults parse: tests/test_params.c checks it */
        (void)rc;
    }
    snprintf(sc->hw_name, sizeof sc->hw_name, "%s", KVP_DFLT_HW);
    snprintf(sc->model_name, sizeof sc->model_name, "%s", KVP_DFLT_MODEL);
    sc->given = 0; /* the defaults are not a choice */
}

/* "16.06 GB": bytes for messages (decimal units, 4 significant digits). */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
    double x = (double)v;
    size_t u = 0;
    if (x < SIZE_STEP) {
        snprintf(buf, len, "%" PRIu64 " B", v);
        return;
    }
    while (x >= SIZE_STEP && u + 1 < sizeof size_units / sizeof *size_units) {
        x /= SIZE_STEP;
        u++;
    }
    snprintf(buf, len, "%.4g %s", x, size_units[u]);
}

/* The machine of docs/MODEL.md "Tiers beyond two": every tier below HBM needs a bandwidth
 * and a link with a bandwidth each way.  Tier 1 and link 1 are the two-tier parameters. */
static int derive_tiers(const kvp_scenario *sc, kvp_derived *d, kvp_error *err)
{
    const uint32_t K = sc->tiers;
    if (K < 2 || K > KVP_MAX_TIERS)
        return kvp_error_set(err, KVP_EINVAL, "tiers: %u is out of range [2, %d]", K,
                             KVP_MAX_TIERS);
    memset(d->tier_capacity, 0, sizeof d->tier_capacity);
    memset(d->tier_bandwidth, 0, sizeof d->tier_bandwidth);
    memset(d->tier_link, 0, sizeof d->tier_link);
    memset(d->link_up, 0, sizeof d->link_up);
    memset(d->link_down, 0, sizeof d->link_down);
    d->tiers = K;
    d->tier_capacity[0] = d->kv_budget;
    d->tier_bandwidth[0] = sc->hbm_bandwidth;
    for (uint32_t k = 1; k < K; k++) {
        uint32_t j = sc->tier_link[k];
        d->tier_capacity[k] = k == 1 ? sc->dram_capacity : sc->tier_capacity[k];
        d->tier_bandwidth[k] = k == 1 ? sc->dram_bandwidth : sc->tier_bandwidth[k];
        if (!(d->tier_bandwidth[k] > 0))
            return kvp_error_set(err, KVP_EINVAL, "tier %u has no bandwidth (set tier%u_"
                                 "bandwidth, or tiers=%u)", k, k, k);
        if (j < 1 || j >= KVP_MAX_TIERS)
            return kvp_error_set(err, KVP_EINVAL, "tier %u has no link (tier%u_link is %u; "
                                 "links are 1..%d)", k, k, j, KVP_MAX_TIERS - 1);
        double each = j == 1 ? sc->link_bandwidth : sc->link_bw[j];
        double up = sc->link_up_bw[j] > 0 ? sc->link_up_bw[j] : each;
        double down = sc->link_down_bw[j] > 0 ? sc->link_down_bw[j] : each;
        if (!(up > 0) || !(down > 0))
            return kvp_error_set(err, KVP_EINVAL, "tier %u sits behind link %u, which has no "
                                 "bandwidth %s(set link%u_bandwidth)", k, j,
                                 up > 0 ? "down " : down > 0 ? "up " : "", j);
        d->tier_link[k] = j;
        d->link_up[j] = up;
        d->link_down[j] = down;
    }
    return 0;
}

/* The smallest tensor parallelism above sc->tp that divides kv_heads and leaves the weights
 * and reserve room in HBM, or 0: the hint of the message that they do not fit. */
static uint32_t tp_that_fits(const kvp_scenario *sc)
{
    for (uint32_t tp = sc->tp + 1; tp <= sc->kv_heads; tp++) {
        uint64_t w = sc->weight_bytes / tp + (sc->weight_bytes % tp != 0);
        if (sc->kv_heads % tp == 0 && w + sc->reserve >= w && w + sc->reserve <= sc->hbm_capacity)
            return tp;
    }
    return 0;
}

int kvp_scenario_derive(const kvp_scenario *sc, kvp_derived *d, kvp_error *err)
{
    uint64_t t = 2, need;
    if (sc->layers == 0)
        return kvp_error_set(err, KVP_EINVAL, "layers: must be at least 1");
    /* Tensor parallelism: one GPU holds kv_heads / tp heads and its share of the weights
     * (the largest share, when they do not split evenly). */
    if (sc->tp == 0 || sc->kv_heads % sc->tp != 0)
        return kvp_error_set(err, KVP_EINVAL, "tp: %u does not divide kv_heads (%u): each GPU "
                             "must hold whole KV heads", sc->tp, sc->kv_heads);
    d->kv_heads = sc->kv_heads / sc->tp;
    d->weight_bytes = sc->weight_bytes / sc->tp + (sc->weight_bytes % sc->tp != 0);
    if (mul_u64(t, d->kv_heads, &t) < 0 || mul_u64(t, sc->head_dim, &t) < 0 ||
        mul_u64(t, sc->dtype_bytes, &t) < 0 || mul_u64(t, sc->batch, &t) < 0)
        return kvp_error_set(err, KVP_ERANGE,
                             "tok_bytes = 2 * kv_heads * head_dim * dtype_bytes * batch "
                             "overflows 64 bits");
    need = d->weight_bytes + sc->reserve;
    if (need < d->weight_bytes || need > sc->hbm_capacity) {
        char w[32], r[32], h[32], per[48] = "", hint[48] = "";
        fmt_size(w, sizeof w, d->weight_bytes);
        fmt_size(r, sizeof r, sc->reserve);
        fmt_size(h, sizeof h, sc->hbm_capacity);
        if (sc->tp > 1)
            snprintf(per, sizeof per, " per GPU at tp=%u", sc->tp);
        uint32_t fits = tp_that_fits(sc);
        if (fits)
            snprintf(hint, sizeof hint, "; tp=%u would fit them", fits);
        return kvp_error_set(err, KVP_EINVAL,
                             "weights (%s%s) plus reserve (%s) exceed HBM capacity (%s)%s", w,
                             per, r, h, hint);
    }
    d->tok_bytes = t;
    d->kv_budget = sc->hbm_capacity - need;
    d->w_layer = (double)d->weight_bytes / (double)sc->layers;
    d->cap_layer = (double)d->kv_budget / (double)sc->layers;
    return derive_tiers(sc, d, err);
}

int kvp_scenario_validate(const kvp_scenario *sc, kvp_error *err)
{
    kvp_derived d;
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        const kvp_param_info *p = &params[i];
        char shown[64];
        if (kvp_param_format(sc, p, shown, sizeof shown) < 0)
            return kvp_error_set(err, KVP_EINVAL, "%s: invalid value", p->name);
        int rc = check_range(p, value_of(sc, p), shown, err);
        if (rc < 0)
            return rc;
    }
    /* topk replaces sparsity: both given is a contradiction, not an order to settle. */
    if (sc->topk > 0 && (sc->given & KVP_GIVEN_SPARSITY))
        return kvp_error_set(err, KVP_EINVAL, "topk (%u) and sparsity (%g) are both set; "
                             "topk replaces sparsity, set only one of them", sc->topk,
                             sc->sparsity);
    return kvp_scenario_derive(sc, &d, err);
}

uint32_t kvp_slots(const kvp_scenario *sc, const kvp_derived *d, uint32_t g)
{
    uint64_t per;
    /* a product past 2^64 is larger than any budget: not even one slot fits */
    if (g == 0 || sc->layers == 0 || d->tok_bytes == 0 || mul_u64(sc->layers, g, &per) < 0 ||
        mul_u64(per, d->tok_bytes, &per) < 0)
        return 0;
    uint64_t s = d->kv_budget / per;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

uint32_t kvp_tier_slots(const kvp_scenario *sc, const kvp_derived *d, uint32_t g, uint32_t k)
{
    uint64_t per;
    if (k == 0)
        return kvp_slots(sc, d, g);
    if (k >= d->tiers || g == 0 || sc->layers == 0 || d->tok_bytes == 0 ||
        mul_u64(sc->layers, g, &per) < 0 || mul_u64(per, d->tok_bytes, &per) < 0)
        return 0;
    uint64_t s = d->tier_capacity[k] / per;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

int kvp_param_in_use(const kvp_scenario *sc, const kvp_param_info *p)
{
    uint32_t k;
    const char *n = p->name;
    /* A two-tier machine is described by the two-tier names alone, as before tiers. */
    if (strcmp(n, "tiers") == 0)
        return sc->tiers != 2;
    if (strcmp(n, "sequences") == 0) /* one sequence is described as before sequences */
        return sc->sequences != 1;
    if (strcmp(n, "tp") == 0)
        return sc->tp != 1;
    /* topk off says nothing (reports read as before it existed); on, it replaces sparsity */
    if (strcmp(n, "topk") == 0)
        return sc->topk != 0;
    if (strcmp(n, "sparsity") == 0)
        return sc->topk == 0;
    if (strcmp(n, "tier1_link") == 0)
        return sc->tiers != 2 || sc->tier_link[1] != 1;
    if (sscanf(n, "tier%u_", &k) == 1)
        return sc->tiers != 2 && k < sc->tiers;
    if (sscanf(n, "link%u_", &k) == 1) {
        /* two tiers: only what describes link 1 beyond link_bandwidth (an asymmetric link) */
        if (sc->tiers == 2 && k == 1)
            return value_of(sc, p) != 0;
        for (uint32_t t = 1; t < sc->tiers && t < KVP_MAX_TIERS; t++)
            if (sc->tier_link[t] == k)
                return 1;
        return 0;
    }
    return 1;
}
