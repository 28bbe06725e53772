/* In-memory traces: kvp_trace_from_buffer (what the Python binding calls) and the step-by-step
 * builder.  Each is checked against a different way to the same trace: a buffer of float16
 * against a .npy file of the same bits (built by hand here, read by the file reader), the
 * builder's unpadded rows against the padded array of kvp_trace_from_memory; and every bad
 * buffer gets its own error code and a message naming what is wrong. */
#include "check.h"

#include "kvplace.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kvp_error err;
static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((rng_state >> 33) % n);
}

/* Every cursor of a and b gives the same sets, positions and scores. */
static int same_sets(const kvp_trace *a, const kvp_trace *b, double sparsity)
{
    if (kvp_trace_steps(a) != kvp_trace_steps(b) ||
        kvp_trace_layers(a) != kvp_trace_layers(b) ||
        kvp_trace_prompt(a) != kvp_trace_prompt(b) ||
        kvp_trace_is_bool(a) != kvp_trace_is_bool(b))
        return 0;
    int same = 1;
    for (uint32_t l = 0; l < kvp_trace_layers(a) && same; l++) {
        kvp_cursor *ca = NULL, *cb = NULL;
        if (kvp_cursor_create(&ca, a, l, kvp_budget_sparsity(sparsity), &err) < 0 ||
            kvp_cursor_create(&cb, b, l, kvp_budget_sparsity(sparsity), &err) < 0) {
            kvp_cursor_free(ca);
            return 0;
        }
        kvp_access x, y;
        int ra, rb;
        while (same && (ra = kvp_cursor_next(ca, &x, &err)) == 1) {
            rb = kvp_cursor_next(cb, &y, &err);
            same = rb == 1 && x.count == y.count && x.context == y.context &&
                   memcmp(x.pos, y.pos, x.count * sizeof *x.pos) == 0 &&
                   memcmp(x.score, y.score, x.count * sizeof *x.score) == 0;
        }
        if (same)
            same = ra == 0 && kvp_cursor_next(cb, &y, &err) == 0;
        kvp_cursor_free(ca);
        kvp_cursor_free(cb);
    }
    return same;
}

/* IEEE half bits of small whole numbers 0..8 (exact in half): sign 0, exponent, mantissa. */
static uint16_t half_of(uint32_t v)
{
    if (v == 0)
        return 0;
    int e = 0;
    while ((1u << (e + 1)) <= v)
        e++;
    uint32_t mant = (v << 10 >> e) & 0x3ffu;
    return (uint16_t)((uint32_t)(e + 15) << 10 | mant);
}

static void write_npy_f16(const char *path, const uint16_t *data, uint32_t n, uint32_t l,
                          uint32_t c)
{
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f2', 'fortran_order': False, "
                                          "'shape': (%u, %u, %u), }", n, l, c);
    size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f)
        exit(2);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hlen = (size_t)len + pad + 1;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    fwrite(pre, 1, sizeof pre, f);
    fwrite(dict, 1, (size_t)len, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof *data, (size_t)n * l * c, f);
    fclose(f);
}

static void test_buffer_matches_file(void)
{
    char path[] = "/tmp/kvp_test_trace_mem.XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return;
    close(fd);
    for (int iter = 0; iter < 20; iter++) {
        uint32_t N = 1 + rnd(6), L = 1 + rnd(3), P = 1 + rnd(30), C = P + N - 1;
        size_t cells = (size_t)N * L * C;
        uint16_t *h = malloc(cells * sizeof *h);
        for (size_t i = 0; i < cells; i++)
            h[i] = half_of(rnd(9)); /* many ties */
        write_npy_f16(path, h, N, L, C);
        kvp_trace *file = NULL, *buf = NULL;
        uint64_t shape[3] = {N, L, C};
        CHECK_OK(kvp_trace_open_npy(&file, path, &err), &err);
        CHECK_OK(kvp_trace_from_buffer(&buf, h, KVP_DTYPE_F16, 3, shape, "buf", &err), &err);
        if (file && buf) {
            double sp = rnd(10) / 10.0;
            if (!CHECK(same_sets(file, buf, sp)))
                fprintf(stderr, "    f16 buffer != file (N %u L %u P %u sparsity %g)\n", N, L,
                        P, sp);
            CHECK_STR(kvp_trace_name(buf), "buf");
        }
        kvp_trace_free(file);
        kvp_trace_free(buf);
        free(h);
    }
    unlink(path);
}

static void test_bool_and_f32(void)
{
    /* Marks: any nonzero byte is a read; the padding (position 3 of step 0) is ignored. */
    unsigned char marks[2 * 1 * 4] = {1, 0, 7, 9, 0, 2, 0, 1};
    uint64_t shape[3] = {2, 1, 4};
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_from_buffer(&t, marks, KVP_DTYPE_BOOL, 3, shape, "marks", &err), &err);
    if (!t)
        return;
    CHECK(kvp_trace_is_bool(t));
    CHECK_EQ_U64(kvp_trace_prompt(t), 3);
    kvp_cursor *c = NULL;
    kvp_access a;
    CHECK_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
    CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
    CHECK_EQ_U64(a.count, 2); /* positions 0 and 2 */
    CHECK(a.count == 2 && a.pos[0] == 0 && a.pos[1] == 2);
    CHECK_EQ_INT(kvp_cursor_next(c, &a, &err), 1);
    CHECK(a.count == 2 && a.pos[0] == 1 && a.pos[1] == 3);
    kvp_cursor_free(c);
    kvp_trace_free(t);

    /* float32: the same as kvp_trace_from_memory of the same data. */
    float f[2 * 2 * 5];
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        f[i] = (float)rnd(5) * 0.25f;
    uint64_t s2[3] = {2, 2, 5};
    kvp_trace *a1 = NULL, *a2 = NULL;
    CHECK_OK(kvp_trace_from_buffer(&a1, f, KVP_DTYPE_F32, 3, s2, "f32", &err), &err);
    CHECK_OK(kvp_trace_from_memory(&a2, f, 2, 2, 5, 0, "f32", &err), &err);
    CHECK(a1 && a2 && same_sets(a1, a2, 0.4));
    kvp_trace_free(a1);
    kvp_trace_free(a2);
}

static void test_buffer_refused(void)
{
    float f[2 * 1 * 4] = {0};
    kvp_trace *t = (kvp_trace *)&err; /* must come back NULL */
    uint64_t s3[3] = {2, 1, 4}, s2[2] = {2, 4}, s4[4] = {2, 1, 2, 4};
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 2, s2, "arr", &err), KVP_ESHAPE,
                &err, "2 dimensions; expected 3");
    CHECK(t == NULL);
    uint64_t s5[5] = {2, 1, 1, 1, 4}, s4h0[4] = {2, 1, 0, 4};
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 5, s5, "arr", &err), KVP_ESHAPE,
                &err, "5 dimensions; expected 3 (steps, layers, positions) or 4");
    CHECK(t == NULL);
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 4, s4h0, "arr", &err), KVP_ESHAPE,
                &err, "has no heads");
    CHECK(t == NULL);
    /* a 4-D buffer is accepted: one stream per head */
    float f4[2 * 1 * 2 * 4] = {0};
    REQUIRE(kvp_trace_from_buffer(&t, f4, KVP_DTYPE_F32, 4, s4, "arr", &err) == 0);
    CHECK_EQ_INT(kvp_trace_stream_count(t), 2);
    CHECK_EQ_INT(kvp_trace_heads(t), 2);
    CHECK_EQ_INT(kvp_trace_layers(t), 1);
    CHECK_EQ_INT(kvp_trace_steps(t), 2);
    kvp_trace_free(t);
    t = NULL;
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, 7, 3, s3, "arr", &err), KVP_EINVAL, &err,
                "dtype code 7");
    uint64_t empty[3] = {0, 1, 4}, nolayer[3] = {2, 0, 4}, narrow[3] = {5, 1, 4};
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, empty, "arr", &err),
                KVP_ESHAPE, &err, "no steps");
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, nolayer, "arr", &err),
                KVP_ESHAPE, &err, "no layers");
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, narrow, "arr", &err),
                KVP_ESHAPE, &err, "5 steps need at least 5 positions");
    uint64_t huge[3] = {1ull << 40, 1, 1ull << 40};
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, huge, "arr", &err), KVP_ERANGE,
                &err, "at most");
    /* NaN in a used position (step 1, position 3: context 4) is refused ... */
    f[7] = NAN;
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, s3, "arr", &err), KVP_EFORMAT,
                &err, "arr: step 1, layer 0, position 3: score is NaN");
    f[7] = -INFINITY;
    CHECK_FAILS(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, s3, "arr", &err), KVP_EFORMAT,
                &err, "score is -inf");
    /* ... in the padding (step 0, position 3) it is not. */
    f[7] = 0;
    f[3] = NAN;
    CHECK_OK(kvp_trace_from_buffer(&t, f, KVP_DTYPE_F32, 3, s3, "arr", &err), &err);
    kvp_trace_free(t);
    /* float16 NaN (0x7e00) and +inf (0x7c00) */
    uint16_t h[2 * 1 * 4] = {0};
    h[1] = 0x7e00;
    CHECK_FAILS(kvp_trace_from_buffer(&t, h, KVP_DTYPE_F16, 3, s3, "h", &err), KVP_EFORMAT,
                &err, "step 0, layer 0, position 1: score is NaN");
    h[1] = 0x7c00;
    CHECK_FAILS(kvp_trace_from_buffer(&t, h, KVP_DTYPE_F16, 3, s3, "h", &err), KVP_EFORMAT,
                &err, "score is +inf");
}

static void test_builder(void)
{
    for (int iter = 0; iter < 20; iter++) {
        uint32_t N = 1 + rnd(8), L = 1 + rnd(3), P = 1 + rnd(30), C = P + N - 1;
        int is_bool = rnd(3) == 0;
        float *padded = calloc((size_t)N * L * C, sizeof *padded);
        kvp_trace_builder *b = NULL;
        CHECK_OK(kvp_trace_builder_create(&b, L, P, is_bool, "built", &err), &err);
        if (!b) {
            free(padded);
            return;
        }
        float *step = malloc((size_t)L * C * sizeof *step);
        for (uint32_t n = 0; n < N; n++) {
            for (uint32_t l = 0; l < L; l++)
                for (uint32_t p = 0; p < P + n; p++) {
                    float v = is_bool ? (float)rnd(2) : (float)rnd(6);
                    step[(size_t)l * (P + n) + p] = v;
                    padded[((size_t)n * L + l) * C + p] = v;
                }
            CHECK_OK(kvp_trace_builder_append(b, step, &err), &err);
        }
        CHECK_EQ_U64(kvp_trace_builder_steps(b), N);
        kvp_trace *built = NULL, *ref = NULL;
        CHECK_OK(kvp_trace_builder_finish(b, &built, &err), &err);
        CHECK_EQ_U64(kvp_trace_builder_steps(b), 0);
        CHECK_OK(kvp_trace_from_memory(&ref, padded, N, L, C, is_bool, "built", &err), &err);
        double sp = rnd(10) / 10.0;
        if (built && ref && !CHECK(same_sets(built, ref, sp)))
            fprintf(stderr, "    builder != padded (N %u L %u P %u bool %d sparsity %g)\n", N,
                    L, P, is_bool, sp);
        kvp_trace_free(built);
        kvp_trace_free(ref);
        kvp_trace_builder_free(b);
        free(step);
        free(padded);
    }

    /* A NaN step is refused and not kept: the builder goes on from the same step. */
    kvp_trace_builder *b = NULL;
    kvp_trace *t = NULL;
    CHECK_OK(kvp_trace_builder_create(&b, 1, 2, 0, "rec", &err), &err);
    CHECK_FAILS(kvp_trace_builder_finish(b, &t, &err), KVP_ESHAPE, &err, "no step");
    float s0[2] = {1, NAN}, ok0[2] = {1, 2}, ok1[3] = {3, 1, 2};
    CHECK_FAILS(kvp_trace_builder_append(b, s0, &err), KVP_EFORMAT, &err,
                "rec: step 0, layer 0, position 1: score is NaN");
    CHECK_EQ_U64(kvp_trace_builder_steps(b), 0);
    CHECK_OK(kvp_trace_builder_append(b, ok0, &err), &err);
    CHECK_OK(kvp_trace_builder_append(b, ok1, &err), &err);
    CHECK_OK(kvp_trace_builder_finish(b, &t, &err), &err);
    if (t) {
        CHECK_EQ_U64(kvp_trace_steps(t), 2);
        CHECK_EQ_U64(kvp_trace_prompt(t), 2);
        kvp_cursor *c = NULL;
        kvp_access a;
        CHECK_OK(kvp_cursor_create(&c, t, 0, kvp_budget_sparsity(0.5), &err), &err);
        kvp_cursor_next(c, &a, &err);
        CHECK(a.count == 1 && a.pos[0] == 1); /* k = 1 of {1, 2} */
        kvp_cursor_next(c, &a, &err);
        CHECK(a.count == 2 && a.pos[0] == 0 && a.pos[1] == 2); /* k = 2 of {3, 1, 2} */
        kvp_cursor_free(c);
    }
    kvp_trace_free(t);
    kvp_trace_builder_free(b);
    kvp_trace_builder *none = (kvp_trace_builder *)&err;
    CHECK_FAILS(kvp_trace_builder_create(&none, 0, 2, 0, "z", &err), KVP_EINVAL, &err,
                "at least one layer");
    CHECK(none == NULL);
    kvp_trace_builder_free(NULL);
}

int main(int argc, char **argv)
{
    rng_state = argc > 1 ? strtoull(argv[1], NULL, 10) : 14;
    printf("trace_mem: seed %llu\n", (unsigned long long)rng_state);
    test_buffer_matches_file();
    test_bool_and_f32();
    test_buffer_refused();
    test_builder();
    return check_done();
}
