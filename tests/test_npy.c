/* The .npy trace reader and writer, kvp_topk, and trace statistics.  Every .npy file here is
 * built byte by byte by the test itself (the prelude, a hand-written header dict, the data),
 * so the reader is checked against the NumPy format description, not against our writer. */
#include "check.h"
#include "base/error.h"
#include "trace/trace.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/kvp_test_npy.XXXXXX";

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int which;
    which = (which + 1) % 4;
    snprintf(buf[which], sizeof buf[which], "%s/%s", tmpdir, name);
    return buf[which];
}

/* ---------------------------------------------------------------------------------------- */
/* Building .npy files by hand */

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot create %s\n", path);
        exit(2);
    }
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

/* Writes magic, version (1: 2-byte length; 2 and 3: 4-byte), the dict padded with spaces and
 * a newline so that the data starts at a multiple of align (NumPy uses 64, older versions 16;
 * align 1 gives the shortest header and an odd data offset), then the data. */
static void npy_file(const char *path, unsigned version, size_t align, const char *dict,
                     const void *data, size_t datalen)
{
    size_t prelude = version == 1 ? 10 : 12;
    size_t hlen = strlen(dict) + 1;
    while ((prelude + hlen) % align)
        hlen++;
    size_t total = prelude + hlen + datalen;
    unsigned char *buf = malloc(total);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    if (version == 1) {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    }
    memcpy(buf + prelude, dict, strlen(dict));
    memset(buf + prelude + strlen(dict), ' ', hlen - strlen(dict) - 1);
    buf[prelude + hlen - 1] = '\n';
    if (datalen)
        memcpy(buf + prelude + hlen, data, datalen);
    write_bytes(path, buf, total);
    free(buf);
}

static void dict_for(char *buf, size_t len, const char *descr, unsigned n, unsigned l,
                     unsigned c)
{
    snprintf(buf, len, "{'descr': '%s', 'fortran_order': False, 'shape': (%u, %u, %u), }",
             descr, n, l, c);
}

/* float32 little-endian (this test assumes a little-endian host, checked in main). */
static void npy_f32(const char *path, unsigned version, size_t align, unsigned n, unsigned l,
                    unsigned c, const float *data)
{
    char dict[128];
    dict_for(dict, sizeof dict, "<f4", n, l, c);
    npy_file(path, version, align, dict, data, (size_t)n * l * c * sizeof(float));
}

static float f32_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* ---------------------------------------------------------------------------------------- */
/* A naive top-k oracle: sort every position by (score desc, position asc), take k, sort the
 * chosen by position.  C's < and == compare -0.0 and +0.0 as equal, as the model does. */

static const float *oracle_scores;

static int by_score_desc(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    float sa = oracle_scores[a], sb = oracle_scores[b];
    if (sa > sb)
        return -1;
    if (sa < sb)
        return 1;
    return a < b ? -1 : a > b;
}

static int by_pos(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

static void oracle_topk(const float *scores, uint32_t n, uint32_t k, uint32_t *out)
{
    uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    for (uint32_t i = 0; i < n; i++)
        idx[i] = i;
    oracle_scores = scores;
    qsort(idx, n, sizeof *idx, by_score_desc);
    memcpy(out, idx, k * sizeof *out);
    qsort(out, k, sizeof *out, by_pos);
    free(idx);
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }

/* Compares kvp_topk with the oracle; returns 1 if they agree. */
static int topk_agrees(const float *s, uint32_t n, uint32_t k)
{
    uint32_t *pos = malloc((n + 1) * sizeof *pos);
    float *sc = malloc((n + 1) * sizeof *sc);
    uint32_t *scratch = malloc((n ? n : 1) * sizeof *scratch);
    uint32_t *want = malloc((n ? n : 1) * sizeof *want);
    for (uint32_t i = 0; i < n; i++)
        scratch[i] = 0xDEADBEEFu; /* garbage: scratch content on entry must not matter */
    pos[k] = 0xFEEDFACEu;         /* nothing may be written past the k-th entry */
    kvp_topk(s, n, k, pos, sc, scratch);
    oracle_topk(s, n, k, want);
    int ok = pos[k] == 0xFEEDFACEu;
    for (uint32_t i = 0; ok && i < k; i++)
        ok = pos[i] == want[i] && bits_f32(sc[i]) == bits_f32(s[want[i]]);
    free(pos);
    free(sc);
    free(scratch);
    free(want);
    return ok;
}

static void test_topk_hand(void)
{
    uint32_t pos[8], scratch[8];
    float sc[8];
    /* two of the 0.5s tie for the last two places: the lower positions 1 and 2 win */
    const float a[] = {0.1f, 0.5f, 0.5f, 0.2f, 0.5f};
    kvp_topk(a, 5, 2, pos, sc, scratch);
    CHECK_EQ_U64(pos[0], 1);
    CHECK_EQ_U64(pos[1], 2);
    /* -0 equals +0: the two lowest positions win, not the two +0s at 0 and 3 */
    const float z[] = {0.0f, -0.0f, -0.0f, 0.0f};
    kvp_topk(z, 4, 2, pos, sc, scratch);
    CHECK_EQ_U64(pos[0], 0);
    CHECK_EQ_U64(pos[1], 1);
    /* negatives: -0.5 > -1 > -2; output ascending by position */
    const float neg[] = {-2.0f, -0.5f, -1.0f, -3.0f};
    kvp_topk(neg, 4, 2, pos, sc, scratch);
    CHECK_EQ_U64(pos[0], 1);
    CHECK_EQ_U64(pos[1], 2);
    CHECK(sc[0] == -0.5f && sc[1] == -1.0f);
    /* n = 1 */
    const float one[] = {7.0f};
    kvp_topk(one, 1, 1, pos, sc, scratch);
    CHECK_EQ_U64(pos[0], 0);
    CHECK(sc[0] == 7.0f);
    /* values that differ only in the last mantissa bit: only the lowest radix level
     * separates them.  1+2ulp (pos 3) > 1+ulp (pos 0, 2) > 1 (pos 1). */
    const float ulp[] = {f32_bits(0x3F800001u), 1.0f, f32_bits(0x3F800001u),
                         f32_bits(0x3F800002u)};
    kvp_topk(ulp, 4, 2, pos, sc, scratch);
    CHECK_EQ_U64(pos[0], 0);
    CHECK_EQ_U64(pos[1], 3);
}

static void test_topk_random(void)
{
    uint64_t seed = 0x6b7670u; /* printed so a failure can be replayed */
    rng_state = seed;
    printf("test_topk_random: seed %llu\n", (unsigned long long)seed);
    /* a small pool, so ties are everywhere, spanning signs, zeros of both signs, subnormals,
     * neighbours one ulp apart, infinities and the extremes */
    const float pool[] = {-2.0f,         -1.0f,         -0.0f,       0.0f,    0.5f,   1.0f,
                          f32_bits(0x3F800001u), f32_bits(0x3F800002u), 3.0f, 1e-40f, -1e-40f,
                          FLT_MAX,       -FLT_MAX,      f32_bits(0x7F800000u),
                          f32_bits(0xFF800000u), FLT_MIN};
    const uint32_t npool = sizeof pool / sizeof pool[0];
    int failures = 0;
    float *s = malloc(6000 * sizeof *s);
    for (int trial = 0; trial < 3000; trial++) {
        uint32_t n = trial < 2500 ? 1 + rng_below(200) : 1 + rng_below(6000);
        uint32_t distinct = 1 + rng_below(npool); /* how much of the pool this row uses */
        int raw = trial % 5 == 4; /* every fifth row: random bit patterns, NaN excluded */
        for (uint32_t i = 0; i < n; i++) {
            if (raw) {
                uint32_t b = (uint32_t)rng_next();
                if ((b & 0x7F800000u) == 0x7F800000u)
                    b &= 0xBFFFFFFFu;
                s[i] = f32_bits(b);
            } else {
                s[i] = pool[rng_below(distinct)];
            }
        }
        uint32_t ks[] = {0, n, 1, n - 1, rng_below(n + 1), rng_below(n + 1)};
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            if (!topk_agrees(s, n, ks[j])) {
                if (failures++ < 5)
                    fprintf(stderr, "    topk mismatch: trial %d, n %u, k %u\n", trial, n,
                            ks[j]);
            }
        }
    }
    free(s);
    CHECK_EQ_INT(failures, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading */

static int access_is(const kvp_access *a, uint32_t count, const uint32_t *pos,
                     const float *score)
{
    if (a->count != count)
        return 0;
    for (uint32_t i = 0; i < count; i++)
        if (a->pos[i] != pos[i] || (score && a->score[i] != score[i]))
            return 0;
    return 1;
}

/* N = 2, L = 2, C = 5, so P = C - N + 1 = 4: step 0 sees positions 0..3, step 1 sees 0..4.
 * At sparsity 0.5, k = ceil(0.5 * 4) = 2 at step 0 and ceil(0.5 * 5) = 3 at step 1. */
static const float f32_data[2][2][5] = {
    {
        /* step 0, layer 0: top 2 are 0.9 (pos 1) and 0.7 (pos 3); position 4 is padding */
        {0.1f, 0.9f, 0.3f, 0.7f, 0.0f /* NaN, set at run time */},
        /* step 0, layer 1: top 2 are 4 and 3 (pos 0, 1); padding holds a huge value */
        {4.0f, 3.0f, 2.0f, 1.0f, 1e30f},
    },
    {
        /* step 1, layer 0: 0.6 (pos 3), then the 0.5s at 0, 2, 4 tie: lower positions 0, 2 */
        {0.5f, 0.1f, 0.5f, 0.6f, 0.5f},
        /* step 1, layer 1: 0 (pos 4) > -0.5 (pos 3) > -1 (pos 0) */
        {-1.0f, -2.0f, -3.0f, -0.5f, 0.0f},
    },
};

static void check_f32_trace(const char *path)
{
    float data[2][2][5];
    memcpy(data, f32_data, sizeof data);
    data[0][0][4] = f32_bits(0x7FC00000u); /* NaN in padding: must be ignored */
    kvp_error err = {0};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&t, path, &err), &err);
    if (!t)
        return;
    CHECK_EQ_U64(kvp_trace_steps(t), 2);
    CHECK_EQ_U64(kvp_trace_layers(t), 2);
    CHECK_EQ_U64(kvp_trace_prompt(t), 4);
    CHECK_EQ_INT(kvp_trace_is_bool(t), 0);
    CHECK_STR(kvp_trace_name(t), path);

    static const uint32_t l0s0[] = {1, 3}, l0s1[] = {0, 2, 3};
    static const float l0s0v[] = {0.9f, 0.7f}, l0s1v[] = {0.5f, 0.5f, 0.6f};
    static const uint32_t l1s0[] = {0, 1}, l1s1[] = {0, 3, 4};
    static const float l1s0v[] = {4.0f, 3.0f}, l1s1v[] = {-1.0f, -0.5f, 0.0f};
    kvp_cursor *c0 = NULL, *c1 = NULL;
    kvp_access a;
    REQUIRE_OK(kvp_cursor_create(&c0, t, 0, kvp_budget_sparsity(0.5), &err), &err);
    REQUIRE_OK(kvp_cursor_create(&c1, t, 1, kvp_budget_sparsity(0.5), &err), &err);
    if (c0 && c1) {
        CHECK_EQ_INT(kvp_cursor_next(c0, &a, &err), 1);
        CHECK(access_is(&a, 2, l0s0, l0s0v));
        CHECK_EQ_U64(a.context, 4);
        CHECK_EQ_U64(a.step, 0);
        CHECK_EQ_INT(kvp_cursor_next(c1, &a, &err), 1);
        CHECK(access_is(&a, 2, l1s0, l1s0v));
        CHECK_EQ_U64(a.layer, 1);
        CHECK_EQ_INT(kvp_cursor_next(c0, &a, &err), 1);
        CHECK(access_is(&a, 3, l0s1, l0s1v));
        CHECK_EQ_U64(a.context, 5);
        CHECK_EQ_INT(kvp_cursor_next(c1, &a, &err), 1);
        CHECK(access_is(&a, 3, l1s1, l1s1v));
        CHECK_EQ_INT(kvp_cursor_next(c0, &a, &err), 0);
        CHECK_EQ_INT(kvp_cursor_next(c1, &a, &err), 0);
    }
    kvp_cursor_free(c0);
    kvp_cursor_free(c1);
    CHECK_FAILS(kvp_cursor_create(&c0, t, 2, kvp_budget_sparsity(0.5), &err), KVP_EINVAL, &err, "layer 2");
    kvp_trace_free(t);
}

static void test_f32_versions(void)
{
    float data[2][2][5];
    memcpy(data, f32_data, sizeof data);
    data[0][0][4] = f32_bits(0x7FC00000u);
    const struct {
        unsigned version;
        size_t align;
        const char *name;
    } v[] = {
        {1, 64, "f32_v1_a64.npy"}, {1, 16, "f32_v1_a16.npy"}, {1, 1, "f32_v1_a1.npy"},
        {2, 64, "f32_v2_a64.npy"}, {2, 1, "f32_v2_a1.npy"},   {3, 64, "f32_v3_a64.npy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *p = tpath(v[i].name);
        npy_f32(p, v[i].version, v[i].align, 2, 2, 5, &data[0][0][0]);
        check_f32_trace(p);
    }
}

/* The header is a Python literal: any key order, either quote, odd whitespace, trailing
 * commas or none, Python 2 longs. */
static void test_header_variants(void)
{
    static const char *const dicts[] = {
        "{'shape': (2, 2, 5), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2,2,5)}",
        "{ 'descr' : '<f4' ,\n\t'fortran_order' : False ,\r\n 'shape' : ( 2 , 2 , 5 , ) , }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 2L, 5L), }",
    };
    float data[2][2][5];
    memcpy(data, f32_data, sizeof data);
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "variant%zu.npy", i);
        const char *p = tpath(name);
        npy_file(p, 1, 64, dicts[i], data, sizeof data);
        check_f32_trace(p);
    }
}

/* float16: each half value converted by hand.
 *   0x3C00 = 1.0           0x7BFF = 65504 (largest half)   0x0001 = 2^-24 (smallest subnormal)
 *   0xC000 = -2.0          0x03FF = 1023 * 2^-24 (largest subnormal)
 *   0x8000 = -0.0          0x0400 = 2^-14 (smallest normal)
 *   0x3555 = (1 + 0x155/1024) / 4 = 1365/4096 = 0.333251953125
 * N = 1, L = 1, C = 8: P = 8. */
static void test_f16(void)
{
    const uint16_t half[] = {0x3C00, 0x7BFF, 0x0001, 0xC000, 0x03FF, 0x8000, 0x0400, 0x3555};
    const float want[] = {1.0f,  65504.0f, ldexpf(1.0f, -24),    -2.0f,
                          ldexpf(1023.0f, -24), -0.0f, ldexpf(1.0f, -14), 0.333251953125f};
    const char *p = tpath("f16.npy");
    char dict[128];
    dict_for(dict, sizeof dict, "<f2", 1, 1, 8);
    npy_file(p, 2, 64, dict, half, sizeof half);
    kvp_error err = {0};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (!t)
        return;
    CHECK_EQ_U64(kvp_trace_prompt(t), 8);
    kvp_cursor *c = NULL;
    kvp_access a;
    /* sparsity 0: every position, with its exact value */
    REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.0), &err), &err);
    if (c && kvp_cursor_next(c, &a, &err) == 1) {
        CHECK_EQ_U64(a.count, 8);
        for (uint32_t i = 0; i < 8 && i < a.count; i++) {
            CHECK_EQ_U64(a.pos[i], i);
            CHECK_EQ_U64(bits_f32(a.score[i]), bits_f32(want[i])); /* -0.0 keeps its sign */
        }
    }
    kvp_cursor_free(c);
    /* sparsity 0.5: k = 4, the four largest: 65504 (1), 1.0 (0), 0.333 (7), 2^-14 (6); note
     * 2^-14 = 1024 * 2^-24 beats the largest subnormal 1023 * 2^-24 */
    static const uint32_t top4[] = {0, 1, 6, 7};
    REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
    if (c) {
        CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
        CHECK(access_is(&a, 4, top4, NULL));
    }
    kvp_cursor_free(c);
    kvp_trace_free(t);
}

/* Every finite half (exponent field < 31: 63,488 values) in one row, read at sparsity 0,
 * against the definition: exponent 0 is m * 2^-24, otherwise (1024 + m) * 2^(e - 25). */
static void test_f16_exhaustive(void)
{
    uint16_t *h = malloc(65536 * sizeof *h);
    uint32_t count = 0;
    for (uint32_t v = 0; v < 65536; v++)
        if (((v >> 10) & 31) != 31)
            h[count++] = (uint16_t)v;
    char dict[128];
    dict_for(dict, sizeof dict, "<f2", 1, 1, count);
    const char *p = tpath("f16all.npy");
    npy_file(p, 1, 64, dict, h, count * sizeof *h);
    kvp_error err = {0};
    kvp_trace *t = NULL;
    kvp_cursor *c = NULL;
    kvp_access a;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t)
        REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.0), &err), &err);
    if (c && kvp_cursor_next(c, &a, &err) == 1 && a.count == count) {
        int bad = 0;
        for (uint32_t i = 0; i < count; i++) {
            int e = (h[i] >> 10) & 31, m = h[i] & 1023;
            double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
            if (h[i] & 0x8000)
                v = -v;
            float f = a.score[i];
            if ((double)f != v || !signbit(f) != !signbit(v)) {
                if (bad++ < 3)
                    fprintf(stderr, "    half 0x%04x read as %.9g, expected %.9g\n", h[i],
                            (double)f, v);
            }
        }
        CHECK_EQ_INT(bad, 0);
    } else {
        CHECK(0);
    }
    kvp_cursor_free(c);
    kvp_trace_free(t);
    free(h);
}

/* bool marks: N = 2, L = 1, C = 4, so P = 3.  Step 0 sees 0..2 (position 3 is padding, marked
 * but ignored); step 1 sees 0..3.  Any nonzero byte is a mark.  Sparsity is ignored. */
static void test_bool(void)
{
    const unsigned char marks[2][4] = {{1, 0, 1, 1}, {0, 2, 1, 1}};
    const char *p = tpath("bool.npy");
    char dict[128];
    dict_for(dict, sizeof dict, "|b1", 2, 1, 4);
    npy_file(p, 1, 64, dict, marks, sizeof marks);
    kvp_error err = {0};
    kvp_trace *t = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (!t)
        return;
    CHECK_EQ_INT(kvp_trace_is_bool(t), 1);
    CHECK_EQ_U64(kvp_trace_prompt(t), 3);
    static const uint32_t s0[] = {0, 2}, s1[] = {1, 2, 3};
    static const float ones[] = {1.0f, 1.0f, 1.0f};
    kvp_cursor *c = NULL;
    kvp_access a;
    REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.9), &err), &err);
    if (c) {
        CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
        CHECK(access_is(&a, 2, s0, ones));
        CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
        CHECK(access_is(&a, 3, s1, ones));
        CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 0);
    }
    kvp_cursor_free(c);
    kvp_trace_free(t);
}

/* NaN and infinities in the used part of a row fail when that row is read. */
static void test_bad_scores(void)
{
    kvp_error err = {0};
    kvp_trace *t = NULL;
    kvp_cursor *c = NULL;
    kvp_access a;
    /* N = 2, L = 1, C = 3: P = 2; step 1 position 2 is NaN (used, since context is 3) */
    float d[2][3] = {{1.0f, 2.0f, 0.0f}, {1.0f, 2.0f, 0.0f}};
    d[1][2] = f32_bits(0x7FC00000u);
    const char *p = tpath("nan.npy");
    npy_f32(p, 1, 64, 2, 1, 3, &d[0][0]);
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t) {
        REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
        if (c) {
            CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
            CHECK_FAILS(kvp_cursor_next(c, &a, &err), KVP_EFORMAT, &err,
                        "step 1, layer 0, position 2: score is NaN");
            CHECK(strncmp(err.msg, p, strlen(p)) == 0);
        }
        kvp_cursor_free(c);
        c = NULL;
        kvp_trace_free(t);
        t = NULL;
    }
    d[1][2] = 0.0f;
    d[0][1] = f32_bits(0x7F800000u); /* +inf at step 0, position 1 */
    p = tpath("inf.npy");
    npy_f32(p, 1, 64, 2, 1, 3, &d[0][0]);
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t) {
        REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
        if (c)
            CHECK_FAILS(kvp_cursor_next(c, &a, &err), KVP_EFORMAT, &err,
                        "step 0, layer 0, position 1: score is +inf");
        kvp_cursor_free(c);
        c = NULL;
        kvp_trace_free(t);
        t = NULL;
    }
    /* float16 -inf (0xFC00) at step 0, position 0; padding of step 0 holds a half NaN */
    const uint16_t h[2][3] = {{0xFC00, 0x3C00, 0x7E00}, {0x3C00, 0x3C00, 0x3C00}};
    char dict[128];
    dict_for(dict, sizeof dict, "<f2", 2, 1, 3);
    p = tpath("f16inf.npy");
    npy_file(p, 1, 64, dict, h, sizeof h);
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t) {
        REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
        if (c)
            CHECK_FAILS(kvp_cursor_next(c, &a, &err), KVP_EFORMAT, &err,
                        "step 0, layer 0, position 0: score is -inf");
        kvp_cursor_free(c);
        kvp_trace_free(t);
    }
    /* a half NaN in padding only is fine */
    const uint16_t ok[2][3] = {{0x3C00, 0x4000, 0x7E00}, {0x3C00, 0x3C00, 0x3C00}};
    p = tpath("f16padnan.npy");
    npy_file(p, 1, 64, dict, ok, sizeof ok);
    t = NULL;
    c = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t) {
        REQUIRE_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
        if (c) {
            static const uint32_t s0[] = {1};      /* k = ceil(0.5 * 2) = 1: 2.0 at pos 1 */
            static const uint32_t s1[] = {0, 1}; /* k = ceil(1.5) = 2: three 1.0s, lowest 2 */
            CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
            CHECK(access_is(&a, 1, s0, NULL));
            CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
            CHECK(access_is(&a, 2, s1, NULL));
        }
        kvp_cursor_free(c);
        kvp_trace_free(t);
    }
}

/* Opening must fail with code, a message starting with the path and containing needle. */
static void refused(const char *path, int code, const char *needle)
{
    kvp_error err = {0};
    kvp_trace *t = (kvp_trace *)&err; /* must be reset to NULL */
    CHECK_FAILS(kvp_trace_open_npy(&t, path, &err), code, &err, needle);
    CHECK(t == NULL);
    if (!check_report_(strncmp(err.msg, path, strlen(path)) == 0, __FILE__, __LINE__,
                       "message starts with the path"))
        fprintf(stderr, "    msg: %s\n", err.msg);
}

static void refuse_dict(const char *name, const char *dict, size_t datalen, int code,
                        const char *needle)
{
    unsigned char *zeros = calloc(1, datalen ? datalen : 1);
    const char *p = tpath(name);
    npy_file(p, 1, 64, dict, zeros, datalen);
    refused(p, code, needle);
    free(zeros);
}

static void test_refusals(void)
{
    char dict[256];
    /* dtypes */
    dict_for(dict, sizeof dict, "<i8", 2, 1, 3);
    refuse_dict("i8.npy", dict, 48, KVP_EFORMAT,
                "dtype '<i8' is not supported (float32 '<f4', float16 '<f2' or bool '|b1')");
    dict_for(dict, sizeof dict, ">f4", 2, 1, 3);
    refuse_dict("be.npy", dict, 24, KVP_EFORMAT, "dtype '>f4' is not supported");
    dict_for(dict, sizeof dict, "<c8", 2, 1, 3);
    refuse_dict("c8.npy", dict, 48, KVP_EFORMAT, "dtype '<c8' is not supported");
    dict_for(dict, sizeof dict, "|u1", 2, 1, 3);
    refuse_dict("u1.npy", dict, 6, KVP_EFORMAT, "dtype '|u1' is not supported");
    refuse_dict("struct.npy",
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 1, 3), }", 24,
                KVP_EFORMAT, "structured");
    /* layout */
    refuse_dict("fortran.npy",
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1, 3), }", 24,
                KVP_EFORMAT, "Fortran order");
    refuse_dict("2d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (40, 300), }",
                48000, KVP_EFORMAT,
                "shape (40, 300) has 2 dimensions; expected (steps, layers, positions)");
    refuse_dict("1d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 20,
                KVP_EFORMAT, "shape (5,) has 1 dimension;");
    refuse_dict("5d.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", 4,
                KVP_EFORMAT, "shape (1, 1, 1, 1, 1) has 5 dimensions; expected (steps, "
                "layers, positions) or (steps, layers, heads, positions)");
    refuse_dict("4d_noheads.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 0, 1), }", 0,
                KVP_EFORMAT, "shape (1, 1, 0, 1) has no heads");
    refuse_dict("4d_fewpos.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, 2, 3), }", 96,
                KVP_EFORMAT, "shape (4, 1, 2, 3): 4 steps need at least 4 positions");
    dict_for(dict, sizeof dict, "<f4", 0, 1, 4);
    refuse_dict("nosteps.npy", dict, 0, KVP_EFORMAT, "shape (0, 1, 4) has no steps");
    dict_for(dict, sizeof dict, "<f4", 2, 0, 4);
    refuse_dict("nolayers.npy", dict, 0, KVP_EFORMAT, "has no layers");
    /* 3 steps need positions 0..P+2 with P >= 1, so at least 3 columns */
    dict_for(dict, sizeof dict, "<f4", 3, 1, 2);
    refuse_dict("fewpos.npy", dict, 24, KVP_EFORMAT, "3 steps need at least 3 positions");
    refuse_dict("neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 1, 3), }",
                12, KVP_EFORMAT, "negative");
    /* 2^32 cubed = 2^96 elements */
    refuse_dict("huge.npy",
                "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (4294967296, 4294967296, 4294967296), }",
                0, KVP_ERANGE, "overflows 64 bits");
    /* 2^62 elements fit in 64 bits, 4 bytes each do not */
    refuse_dict("huge4.npy",
                "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (1, 1, 4611686018427387904), }",
                0, KVP_ERANGE, "overflows 64 bits");
    refuse_dict("bignum.npy",
                "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (1, 1, 99999999999999999999999), }",
                0, KVP_ERANGE, "overflows 64 bits");
    /* fits in 64 bits but a position count must fit in 32 */
    refuse_dict("wide.npy",
                "{'descr': '|b1', 'fortran_order': False, 'shape': (1, 1, 4294967296), }", 0,
                KVP_ERANGE, "at most 4294967295");
    /* data size: 2 * 2 * 5 float32 = 80 bytes */
    dict_for(dict, sizeof dict, "<f4", 2, 2, 5);
    refuse_dict("short.npy", dict, 79, KVP_EFORMAT,
                "shape (2, 2, 5) needs 80 bytes of data, file has 79");
    refuse_dict("long.npy", dict, 81, KVP_EFORMAT,
                "shape (2, 2, 5) needs 80 bytes of data, file has 81");
    dict_for(dict, sizeof dict, "<f2", 2, 2, 5);
    refuse_dict("short16.npy", dict, 0, KVP_EFORMAT, "needs 40 bytes of data, file has 0");
    /* header dict problems */
    refuse_dict("noshape.npy", "{'descr': '<f4', 'fortran_order': False}", 0, KVP_EFORMAT,
                "has no 'shape'");
    refuse_dict("extra.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3), 'x': 1}", 24,
                KVP_EFORMAT, "unexpected key 'x'");
    refuse_dict("twice.npy",
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3)}",
                24, KVP_EFORMAT, "'descr' appears twice");
    refuse_dict("junk.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3)} junk", 24,
                KVP_EFORMAT, "malformed .npy header");
    refuse_dict("noclose.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3",
                24, KVP_EFORMAT, "malformed .npy header");
    refuse_dict("fortranx.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 1, 3)}",
                24, KVP_EFORMAT, "True or False");

    /* the prelude */
    const char *p = tpath("badmagic.npy");
    write_bytes(p, "\x93NUMPX\x01\x00\x10\x00{}", 12);
    refused(p, KVP_EFORMAT, "bad magic");
    p = tpath("text.npy");
    write_bytes(p, "hello", 5);
    refused(p, KVP_EFORMAT, "bad magic");
    p = tpath("stub.npy");
    write_bytes(p, "\x93NUMPY\x01", 7);
    refused(p, KVP_EFORMAT, "too short");
    p = tpath("v4.npy");
    write_bytes(p, "\x93NUMPY\x04\x00\x10\x00\x00\x00{}", 14);
    refused(p, KVP_EFORMAT, "version 4.0 is not supported");
    /* version 1.0 claims a 1000-byte header (0x03E8) in a 30-byte file */
    p = tpath("hlen.npy");
    write_bytes(p, "\x93NUMPY\x01\x00\xE8\x03{'descr': '<f4', 'for", 30);
    refused(p, KVP_EFORMAT, "header length 1000 runs past the end of the file");
    /* version 2.0 with a 4-byte length of 2^31 */
    p = tpath("hlen2.npy");
    write_bytes(p, "\x93NUMPY\x02\x00\x00\x00\x00\x80{}", 14);
    refused(p, KVP_EFORMAT, "runs past the end of the file");
    p = tpath("empty.npy");
    write_bytes(p, "", 0);
    refused(p, KVP_EFORMAT, "file is empty");
    refused(tmpdir, KVP_EIO, "is a directory");
    p = tpath("missing.npy");
    refused(p, KVP_EIO, strerror(ENOENT));
}

/* ---------------------------------------------------------------------------------------- */
/* Writing */

/* An in-test trace whose scores come from a formula with many ties, and whose cursor checks
 * that it is stepped in order and that scores are asked for the step just taken (the vtable
 * contract a generator with internal state relies on).  fail_step injects an error. */
typedef struct formula_impl {
    uint32_t fail_step; /* UINT32_MAX: never */
} formula_impl;

typedef struct formula_cursor {
    const kvp_trace *t;
    uint32_t layer, next;
    kvp_budget budget;
    float *row;
    uint32_t *pos, *scratch;
    float *score;
} formula_cursor;

static float formula(uint32_t n, uint32_t l, uint32_t p)
{
    return (float)((n * 7u + l * 3u + p * 5u) % 11u) - 5.0f;
}

static int fc_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                   kvp_error *err)
{
    (void)err;
    formula_cursor *c = calloc(1, sizeof *c);
    size_t cols = (size_t)t->prompt + t->steps;
    c->t = t;
    c->layer = layer;
    c->budget = budget;
    c->row = malloc(cols * sizeof *c->row);
    c->pos = malloc(cols * sizeof *c->pos);
    c->scratch = malloc(cols * sizeof *c->scratch);
    c->score = malloc(cols * sizeof *c->score);
    *state = c;
    return 0;
}

static int fc_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    formula_cursor *c = state;
    if (n != c->next)
        return kvp_error_set(err, KVP_ECHECK, "formula: step %u asked, %u expected", n,
                             c->next);
    uint32_t ctx = c->t->prompt + n;
    for (uint32_t p = 0; p < ctx; p++)
        c->row[p] = formula(n, c->layer, p);
    a->step = n;
    a->layer = c->layer;
    a->context = ctx;
    a->count = kvp_access_k(c->budget, ctx);
    kvp_topk(c->row, ctx, a->count, c->pos, c->score, c->scratch);
    a->pos = c->pos;
    a->score = c->score;
    a->bits = NULL;
    c->next = n + 1;
    return 0;
}

static int fc_scores(void *state, uint32_t n, float *out, kvp_error *err)
{
    formula_cursor *c = state;
    const formula_impl *im = c->t->impl;
    if (c->next != n + 1)
        return kvp_error_set(err, KVP_ECHECK, "formula: scores of step %u before its step", n);
    if (n == im->fail_step)
        return kvp_error_set(err, KVP_EIO, "formula: injected failure at step %u", n);
    memcpy(out, c->row, (size_t)(c->t->prompt + n) * sizeof *out);
    return 0;
}

static void fc_close(void *state)
{
    formula_cursor *c = state;
    free(c->row);
    free(c->pos);
    free(c->scratch);
    free(c->score);
    free(c);
}

static void fc_destroy(kvp_trace *t)
{
    free(t->impl);
    free(t);
}

static const kvp_trace_vt formula_vt = {"formula", fc_open, fc_step, fc_close, fc_scores,
                                         fc_destroy, NULL, NULL, NULL, NULL};
static const kvp_trace_vt noscore_vt = {"noscores", fc_open, fc_step, fc_close, NULL,
                                         fc_destroy, NULL, NULL, NULL, NULL};

static kvp_trace *formula_trace(const kvp_trace_vt *vt, uint32_t n, uint32_t l, uint32_t p,
                                uint32_t fail_step)
{
    kvp_trace *t = calloc(1, sizeof *t);
    formula_impl *im = calloc(1, sizeof *im);
    im->fail_step = fail_step;
    t->vt = vt;
    t->steps = n;
    t->layers = l;
    t->prompt = p;
    t->impl = im;
    snprintf(t->name, sizeof t->name, "formula");
    return t;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)sz + 1);
    *len = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    return buf;
}

/* Files in tmpdir whose name starts with prefix (to find leftover temporaries). */
static int count_files(const char *prefix)
{
    DIR *d = opendir(tmpdir);
    int count = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            count++;
    if (d)
        closedir(d);
    return count;
}

/* Two traces give the same access sets at this sparsity, layer by layer. */
static int same_access(const kvp_trace *x, const kvp_trace *y, double sparsity)
{
    kvp_error err = {0};
    int same = kvp_trace_steps(x) == kvp_trace_steps(y) &&
               kvp_trace_layers(x) == kvp_trace_layers(y) &&
               kvp_trace_prompt(x) == kvp_trace_prompt(y);
    for (uint32_t l = 0; same && l < kvp_trace_layers(x); l++) {
        kvp_cursor *cx = NULL, *cy = NULL;
        kvp_access ax, ay;
        if (kvp_cursor_create(&cx, x, l, kvp_budget_sparsity(sparsity), &err) < 0 ||
            kvp_cursor_create(&cy, y, l, kvp_budget_sparsity(sparsity), &err) < 0) {
            same = 0;
        } else {
            int rx = 0, ry;
            while (same && (rx = kvp_cursor_next(cx, &ax, &err)) > 0) {
                ry = kvp_cursor_next(cy, &ay, &err);
                same = ry == 1 && ax.context == ay.context &&
                       access_is(&ay, ax.count, ax.pos, ax.score);
            }
            same = same && rx == 0 && kvp_cursor_next(cy, &ay, &err) == 0;
        }
        kvp_cursor_free(cx);
        kvp_cursor_free(cy);
    }
    if (err.msg[0])
        fprintf(stderr, "    %s\n", err.msg);
    return same;
}

/* The formula trace written out: check the bytes against the .npy format and the formula,
 * then read it back and compare access sets with the trace itself and with the oracle. */
static void test_write_formula(void)
{
    const uint32_t N = 4, L = 3, P = 6, C = P + N - 1; /* shape (4, 3, 9) */
    kvp_trace *t = formula_trace(&formula_vt, N, L, P, UINT32_MAX);
    kvp_error err = {0};
    const char *out = tpath("formula.npy");
    CHECK_OK(kvp_trace_write_npy(t, out, &err), &err);
    CHECK_EQ_INT(count_files("formula.npy.tmp"), 0);
    struct stat st;
    CHECK(stat(out, &st) == 0 && (st.st_mode & 0777) == 0644);

    size_t len = 0;
    unsigned char *buf = slurp(out, &len);
    CHECK(buf != NULL);
    if (buf && len > 10) {
        CHECK(memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0);
        size_t hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        size_t start = 10 + hlen;
        CHECK_EQ_U64(start % 64, 0); /* as NumPy aligns it */
        CHECK_EQ_U64(len, start + (size_t)N * L * C * 4);
        CHECK(buf[start - 1] == '\n');
        const char *want_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 9), }";
        CHECK(hlen >= strlen(want_dict) && memcmp(buf + 10, want_dict, strlen(want_dict)) == 0);
        int bad = 0;
        for (uint32_t n = 0; n < N && len == start + (size_t)N * L * C * 4; n++)
            for (uint32_t l = 0; l < L; l++)
                for (uint32_t p = 0; p < C; p++) {
                    uint32_t v;
                    memcpy(&v, buf + start + (((size_t)n * L + l) * C + p) * 4, 4);
                    /* used positions carry the formula, padding is +0.0 */
                    uint32_t want = p < P + n ? bits_f32(formula(n, l, p)) : 0u;
                    bad += v != want;
                }
        CHECK_EQ_INT(bad, 0);
    }
    free(buf);

    kvp_trace *back = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&back, out, &err), &err);
    if (back) {
        CHECK(same_access(t, back, 0.3));
        CHECK(same_access(t, back, 0.0));
        /* and against the oracle, independently of kvp_topk: step 3, layer 2, sparsity 0.5,
         * context 9, k = 5 */
        float row[9];
        uint32_t want[9];
        for (uint32_t p = 0; p < 9; p++)
            row[p] = formula(3, 2, p);
        oracle_topk(row, 9, 5, want);
        kvp_cursor *c = NULL;
        kvp_access a;
        REQUIRE_OK(kvp_cursor_create(&c, back, 2, kvp_budget_sparsity(0.5), &err), &err);
        for (int i = 0; c && i < 4; i++)
            CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
        CHECK(c && access_is(&a, 5, want, NULL));
        kvp_cursor_free(c);
    }
    kvp_trace_free(back);
    kvp_trace_free(t);
}

/* An .npy trace (float16, read by hand-made bytes) written out as float32 and read back gives
 * the same access sets: the half to float conversion is exact. */
static void test_write_roundtrip_npy(void)
{
    /* N = 2, L = 2, C = 4: P = 3 */
    const uint16_t h[2][2][4] = {
        {{0x3C00, 0x0001, 0xC000, 0x7E00 /* NaN padding */}, {0x3555, 0x3555, 0x0400, 0x0000}},
        {{0x7BFF, 0x8000, 0x0000, 0x03FF}, {0xBC00, 0x3C00, 0xBC00, 0x3C00}},
    };
    char dict[128];
    dict_for(dict, sizeof dict, "<f2", 2, 2, 4);
    const char *src = tpath("rt_src.npy"), *dst = tpath("rt_dst.npy");
    npy_file(src, 3, 64, dict, h, sizeof h);
    kvp_error err = {0};
    kvp_trace *a = NULL, *b = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&a, src, &err), &err);
    if (a)
        CHECK_OK(kvp_trace_write_npy(a, dst, &err), &err);
    REQUIRE_OK(kvp_trace_open_npy(&b, dst, &err), &err);
    if (a && b) {
        CHECK(same_access(a, b, 0.0));
        CHECK(same_access(a, b, 0.5));
        CHECK(same_access(a, b, 0.7));
        /* the NaN padding of step 0 became 0.0 in the float32 file */
        size_t len = 0;
        unsigned char *buf = slurp(dst, &len);
        size_t start = buf ? 10 + ((size_t)buf[8] | (size_t)buf[9] << 8) : 0;
        uint32_t v = 1;
        if (buf && len == start + 2 * 2 * 4 * 4)
            memcpy(&v, buf + start + 3 * 4, 4);
        CHECK_EQ_U64(v, 0);
        free(buf);
    }
    /* a second write replaces the file in place */
    if (b)
        CHECK_OK(kvp_trace_write_npy(b, src, &err), &err);
    kvp_trace *c = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&c, src, &err), &err);
    if (a && c)
        CHECK(same_access(b, c, 0.5));
    kvp_trace_free(a);
    kvp_trace_free(b);
    kvp_trace_free(c);
}

static void test_write_refusals(void)
{
    kvp_error err = {0};
    /* no scores callback */
    kvp_trace *t = formula_trace(&noscore_vt, 2, 1, 3, UINT32_MAX);
    const char *p = tpath("noscores.npy");
    CHECK_FAILS(kvp_trace_write_npy(t, p, &err), KVP_EINVAL, &err, "has no scores");
    CHECK(access(p, F_OK) != 0);
    kvp_trace_free(t);

    /* bool marks are not scores */
    const unsigned char marks[2][4] = {{1, 0, 1, 0}, {0, 1, 1, 1}};
    char dict[128];
    dict_for(dict, sizeof dict, "|b1", 2, 1, 4);
    const char *bp = tpath("marks.npy");
    npy_file(bp, 1, 64, dict, marks, sizeof marks);
    t = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&t, bp, &err), &err);
    if (t)
        CHECK_FAILS(kvp_trace_write_npy(t, tpath("marks_out.npy"), &err), KVP_EINVAL, &err,
                    "bool marks");
    kvp_trace_free(t);

    /* a failure half way leaves neither the file nor a temporary, and an existing file at
     * the destination keeps its content */
    t = formula_trace(&formula_vt, 3, 2, 4, 2);
    p = tpath("fail.npy");
    write_bytes(p, "keep", 4);
    CHECK_FAILS(kvp_trace_write_npy(t, p, &err), KVP_EIO, &err, "injected failure at step 2");
    size_t len = 0;
    unsigned char *buf = slurp(p, &len);
    CHECK(buf && len == 4 && memcmp(buf, "keep", 4) == 0);
    free(buf);
    CHECK_EQ_INT(count_files("fail.npy.tmp"), 0);
    const char *p2 = tpath("fail2.npy");
    CHECK_FAILS(kvp_trace_write_npy(t, p2, &err), KVP_EIO, &err, "injected");
    CHECK(access(p2, F_OK) != 0);
    CHECK_EQ_INT(count_files("fail2.npy"), 0);
    /* a directory that does not exist */
    p = tpath("no/such/dir.npy");
    CHECK_FAILS(kvp_trace_write_npy(t, p, &err), KVP_EIO, &err, "cannot create");
    CHECK(strncmp(err.msg, p, strlen(p)) == 0);
    kvp_trace_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Statistics */

/* Bool marks, N = 3, L = 3, C = 20 so P = 18 (step 2 sees positions 0..19):
 *   layer 0: {0, 1, 17}, {0, 5, 17, 18}, {5, 18, 19}
 *   layer 1: {},         {16},           {15, 16}
 *   layer 2: {3},        {},             {3}
 * reads = 10 + 3 + 2 = 15 over 9 (n, l): 15/9 per step.
 * overlap |A(n) ∩ A(n-1)| / |A(n)| for n >= 1, empty A(n) skipped:
 *   layer 0: {0,17}/4 = 1/2, {5,18}/3 = 2/3; layer 1: 0/1, {16}/2 = 1/2; layer 2: skip, 0/1
 *   mean = (1/2 + 2/3 + 0 + 1/2 + 0) / 5 = (5/3) / 5 = 1/3.
 * sink reads (position < 16): layer 0: 2 + 2 + 1; layer 1: 0 + 0 + 1 (15); layer 2: 1 + 1
 *   = 8 of 15. */
static void test_stats_bool(void)
{
    static const uint32_t sets[3][3][5] = {
        /* [layer][step]: count, then positions */
        {{3, 0, 1, 17}, {4, 0, 5, 17, 18}, {3, 5, 18, 19}},
        {{0}, {1, 16}, {2, 15, 16}},
        {{1, 3}, {0}, {1, 3}},
    };
    unsigned char marks[3][3][20];
    memset(marks, 0, sizeof marks);
    for (int l = 0; l < 3; l++)
        for (int n = 0; n < 3; n++)
            for (uint32_t i = 0; i < sets[l][n][0]; i++)
                marks[n][l][sets[l][n][1 + i]] = 1;
    marks[0][1][19] = 1; /* padding of step 0 (context 18): ignored */
    char dict[128];
    dict_for(dict, sizeof dict, "|b1", 3, 3, 20);
    const char *p = tpath("stats.npy");
    npy_file(p, 1, 64, dict, marks, sizeof marks);
    kvp_error err = {0};
    kvp_trace *t = NULL;
    kvp_trace_stats st;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t) {
        CHECK_OK(kvp_trace_stats_compute(t, kvp_budget_sparsity(0.5), &st, &err), &err);
        CHECK_EQ_U64(st.reads, 15);
        CHECK_NEAR(st.mean_reads_per_step, 15.0 / 9.0, 1e-12);
        CHECK_NEAR(st.mean_overlap, 1.0 / 3.0, 1e-12);
        CHECK_NEAR(st.mean_sink_share, 8.0 / 15.0, 1e-12);
    }
    kvp_trace_free(t);
}

/* Scores: reads follow k = ceil((1 - s) * (P + n)).  The f32 trace above (N = 2, L = 2, P = 4)
 * at sparsity 0.5 reads 2 + 3 per layer: 10.  Overlap: layer 0 {1,3} -> {0,2,3}: 1/3; layer 1
 * {0,1} -> {0,3,4}: 1/3.  Every position is < 16, so the sink share is 1. */
static void test_stats_scores(void)
{
    float data[2][2][5];
    memcpy(data, f32_data, sizeof data);
    const char *p = tpath("stats_f32.npy");
    npy_f32(p, 1, 64, 2, 2, 5, &data[0][0][0]);
    kvp_error err = {0};
    kvp_trace *t = NULL;
    kvp_trace_stats st;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t) {
        CHECK_OK(kvp_trace_stats_compute(t, kvp_budget_sparsity(0.5), &st, &err), &err);
        CHECK_EQ_U64(st.reads, 10);
        CHECK_NEAR(st.mean_reads_per_step, 2.5, 0);
        CHECK_NEAR(st.mean_overlap, 1.0 / 3.0, 1e-12);
        CHECK_NEAR(st.mean_sink_share, 1.0, 0);
    }
    kvp_trace_free(t);
    /* a bad score stops the statistics with the reader's message */
    data[1][1][2] = f32_bits(0x7FC00000u);
    p = tpath("stats_nan.npy");
    npy_f32(p, 1, 64, 2, 2, 5, &data[0][0][0]);
    t = NULL;
    REQUIRE_OK(kvp_trace_open_npy(&t, p, &err), &err);
    if (t)
        CHECK_FAILS(kvp_trace_stats_compute(t, kvp_budget_sparsity(0.5), &st, &err), KVP_EFORMAT, &err,
                    "step 1, layer 1, position 2: score is NaN");
    kvp_trace_free(t);
}

/* ---------------------------------------------------------------------------------------- */

static void cleanup(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[1024];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"topk_hand", test_topk_hand},
        {"topk_random", test_topk_random},
        {"f32_versions", test_f32_versions},
        {"header_variants", test_header_variants},
        {"f16", test_f16},
        {"f16_exhaustive", test_f16_exhaustive},
        {"bool", test_bool},
        {"bad_scores", test_bad_scores},
        {"refusals", test_refusals},
        {"write_formula", test_write_formula},
        {"write_roundtrip_npy", test_write_roundtrip_npy},
        {"write_refusals", test_write_refusals},
        {"stats_bool", test_stats_bool},
        {"stats_scores", test_stats_scores},
    };
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    if (first != 1) {
        fprintf(stderr, "test_npy: these hand-built files assume a little-endian host\n");
        return 1;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = check_main(argc, argv, tests, sizeof tests / sizeof *tests);
    cleanup();
    return rc;
}
