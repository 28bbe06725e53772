/*
 * How the .npy reader reads its rows (src/trace/npy.c, read_row; docs/PERF.md §31): by pread
 * into a buffer, one row's used part at a time, which the kernel may answer with part of what
 * was asked or interrupt.  This program's own pread stands in for the C library's (a
 * program's definition comes before the library's): it gives at most `cap` bytes a call and
 * fails every `intr`-th call with EINTR, so that the reader's loop runs as a kernel seldom
 * makes it run.  Through it, every row's access set of a float32, a float16 and a bool file,
 * and the fast path's static and unlimited (every step across the layers in file order, the
 * band's pass over the buffer), must equal those of the same data held in memory
 * (kvp_trace_from_buffer: no file read), with caps that split an element, a row and a step
 * at odd places.  And a file cut short after it was opened gives an error naming the file
 * and the first row it lacks, by the fast path and by a cursor (a mapping of it would have
 * ended the process with SIGBUS).
 *
 * Usage: test_npy_read
 */
#define _DEFAULT_SOURCE /* syscall */
#include "engine/fast.h"
#include "kvplace.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>


/* The library's pread, as a kernel may answer it. */
static size_t cap;        /* at most this many bytes a call; 0: all asked */
static unsigned intr;     /* every intr-th call fails with EINTR first; 0: none */
static unsigned long calls; /* calls so far, to show the reads came through here */

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
    calls++;
    if (intr && calls % intr == 0) {
        errno = EINTR;
        return -1;
    }
    return (ssize_t)syscall(SYS_pread64, fd, buf, cap && len > cap ? cap : len, off);
}

#define PATH_TEMPLATE "/tmp/kvp_test_npy_read_XXXXXX"
#define HEADER 128u /* the .npy header written, data from this offset */

static uint64_t rng_state = 7;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

/* A version 1.0 .npy of (N, L, C) elements of descr, its header padded to HEADER bytes, into
 * a new temporary file whose name goes into path (sizeof PATH_TEMPLATE bytes). */
static void write_npy(char *path, const char *descr, uint32_t N, uint32_t L, uint32_t C,
                      const void *data, size_t itemsize)
{
    memcpy(path, PATH_TEMPLATE, sizeof PATH_TEMPLATE);
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unsigned char h[HEADER];
    memset(h, ' ', sizeof h);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (unsigned char)(HEADER - 10);
    h[9] = 0;
    const int dl = snprintf((char *)h + 10, HEADER - 10,
                            "{'descr': '%s', 'fortran_order': False, 'shape': (%u, %u, %u), }",
                            descr, N, L, C);
    h[10 + dl] = ' ';
    h[HEADER - 1] = '\n';
    const size_t bytes = (size_t)N * L * C * itemsize;
    const int ok = write(fd, h, sizeof h) == (ssize_t)sizeof h &&
                   write(fd, data, bytes) == (ssize_t)bytes;
    close(fd);
    REQUIRE(ok);
}

/* Scores that drift from step to step (so the fast path's band mostly holds the k-th), with
 * a jump every ninth step (so it misses), ties on a grid in layer 1, and zeros of both signs
 * in layer 2; the padding past each context is left zero, as a writer leaves it. */
static float *drifting(uint32_t N, uint32_t L, uint32_t P)
{
    const uint32_t C = P + N - 1;
    float *d = calloc((size_t)N * L * C, sizeof *d), *base = malloc((size_t)L * C * sizeof *base);
    REQUIRE(d && base);
    for (size_t i = 0; i < (size_t)L * C; i++)
        base[i] = ((float)rnd(1u << 20) - (float)(1u << 19)) / 4096.0f;
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t p = 0; p < P + n; p++) {
                float *b = &base[(size_t)l * C + p];
                *b = n % 9 == 8 ? ((float)rnd(1u << 20) - (float)(1u << 19)) / 1024.0f
                                : *b + ((float)rnd(201) - 100.0f) / 8192.0f;
                float v = *b;
                if (l % 3 == 1)
                    v = (float)(long)(v * 16.0f) / 16.0f;
                if (l % 3 == 2)
                    v = rnd(3) ? (rnd(2) ? 0.0f : -0.0f) : v / 64.0f;
                d[((size_t)n * L + l) * C + p] = v;
            }
    free(base);
    return d;
}

/* The float16 bits of small multiples of 1/64 (exact in a half), as many ties as values. */
static uint16_t half_of(int k)
{
    if (k == 0)
        return 0;
    const uint16_t sign = k < 0 ? 0x8000u : 0;
    unsigned m = (unsigned)(k < 0 ? -k : k), e = 0; /* |k| < 1024 */
    while (m < 1024u) {
        m <<= 1;
        e++;
    }
    /* m * 2^-e / 64 = (m / 1024) * 2^(10 - e - 6): exponent field 15 + 4 - e */
    return (uint16_t)(sign | (uint16_t)((19u - e) << 10) | (uint16_t)(m & 0x3FFu));
}

/* Every layer's access sets of f and m, cursor by cursor, the same. */
static void same_sets(const kvp_trace *f, const kvp_trace *m, double sparsity)
{
    int same = 1;
    for (uint32_t l = 0; l < kvp_trace_layers(m); l++) {
        kvp_cursor *a = NULL, *b = NULL;
        REQUIRE_OK(kvp_cursor_create(&a, f, l, kvp_budget_sparsity(sparsity), &err), &err);
        REQUIRE_OK(kvp_cursor_create(&b, m, l, kvp_budget_sparsity(sparsity), &err), &err);
        for (uint32_t n = 0; n <= kvp_trace_steps(m); n++) {
            kvp_access x, y;
            const int rx = kvp_cursor_next(a, &x, &err);
            CHECK_OK(rx, &err);
            const int ry = kvp_cursor_next(b, &y, &err);
            same &= rx == ry;
            if (rx == 1 && ry == 1)
                same &= x.count == y.count && x.context == y.context &&
                        memcmp(x.pos, y.pos, x.count * sizeof *x.pos) == 0 &&
                        memcmp(x.score, y.score, x.count * sizeof *x.score) == 0;
        }
        kvp_cursor_free(a);
        kvp_cursor_free(b);
    }
    CHECK(same);
}

/* static and unlimited by the fast path on f and on m: the same results, field for field. */
static void same_fast(const kvp_trace *f, const kvp_trace *m, uint32_t slots, double sparsity,
                      unsigned threads)
{
    kvp_scenario sc;
    slots_scenario(&sc, kvp_trace_layers(m), slots, sparsity);
    sc.prompt = kvp_trace_prompt(m);
    sc.steps = kvp_trace_steps(m);
    kvp_policy_spec ps[2];
    CHECK_OK(kvp_policy_parse(&ps[0], "static", &err), &err);
    CHECK_OK(kvp_policy_parse(&ps[1], "unlimited", &err), &err);
    kvp_run_options ro;
    kvp_run_options_default(&ro);
    ro.threads = threads;
    kvp_result rf[2], rm[2];
    kvp_pass_sums sf, sm;
    memset(rf, 0, sizeof rf);
    memset(rm, 0, sizeof rm);
    CHECK_OK(kvp_fast_prefix_run(&sc, f, ps, 2, &ro, rf, &sf, &err), &err);
    CHECK_OK(kvp_fast_prefix_run(&sc, m, ps, 2, &ro, rm, &sm, &err), &err);
    if (!CHECK(memcmp(rf, rm, sizeof rf) == 0))
        fprintf(stderr, "    slots %u, sparsity %g: T %.17g vs %.17g, hbm reads %llu vs %llu\n",
                slots, sparsity, rf[0].total_time_s, rm[0].total_time_s,
                (unsigned long long)rf[0].kv_read_hbm, (unsigned long long)rm[0].kv_read_hbm);
    CHECK(sf.bound_time_s == sm.bound_time_s && sf.reads == sm.reads);
}

/* The caps: whole reads; 7 bytes (elements split across calls); 4,093 and 70,001 (a prime
 * and a size past a row: rows and steps split at places that move from row to row); each
 * with and without interrupts. */
static const size_t caps[] = {0, 7, 4093, 70001};

/* One file of (N, L, C) elements against the same buffer in memory, under each of the caps
 * cs[0 .. ncs). */
static void file_against_memory(const char *descr, int dtype, const void *data, size_t itemsize,
                                uint32_t N, uint32_t L, uint32_t C, const size_t *cs, size_t ncs)
{
    char path[sizeof PATH_TEMPLATE];
    write_npy(path, descr, N, L, C, data, itemsize);
    const uint64_t shape[3] = {N, L, C};
    kvp_trace *m = NULL, *f = NULL;
    REQUIRE_OK(kvp_trace_from_buffer(&m, data, dtype, 3, shape, "memory", &err), &err);
    for (size_t i = 0; i < ncs; i++)
        for (unsigned every = 0; every <= 5; every += 5) {
            cap = cs[i];
            intr = every;
            const unsigned long before = calls;
            REQUIRE_OK(kvp_trace_open_npy(&f, path, &err), &err);
            same_sets(f, m, 0.6);
            const uint32_t P = C - N + 1;
            same_fast(f, m, 1, 0.4, 1);         /* below every context */
            same_fast(f, m, P / 3, 0.4, 2);     /* below every context, 2 groups */
            same_fast(f, m, P / 3, 0.93, 1);
            same_fast(f, m, P + N / 2, 0.4, 1); /* crossed mid-run */
            same_fast(f, m, C + 5, 0.4, 2);     /* above every context */
            kvp_trace_free(f);
            CHECK(calls > before); /* the reads came through this program's pread */
        }
    cap = 0;
    intr = 0;
    kvp_trace_free(m);
    unlink(path);
}

static void test_read_pieces_f32(void)
{
    const uint32_t N = 24, L = 3, P = 1001; /* rows of 1,001 to 1,024 floats */
    float *d = drifting(N, L, P);
    file_against_memory("<f4", KVP_DTYPE_F32, d, 4, N, L, P + N - 1, caps, 4);
    free(d);
}

/* Rows of 1.2 MB/3 (the fast path reads a step's rows of a group of layers in windows of
 * 1 MB, npy.c WINDOW_BYTES): with one group of 5 layers the windows hold layers 0-1, 2-3
 * and 4 alone, the last one's row cut at its used part; with two groups (layers 0-1, 2-4),
 * 0-1, 2-3, 4.  Caps of 7 and 4,093 bytes would take too many calls here. */
static void test_read_windows(void)
{
    const uint32_t N = 5, L = 5, P = 100003;
    float *d = drifting(N, L, P);
    static const size_t some[] = {0, 70001};
    file_against_memory("<f4", KVP_DTYPE_F32, d, 4, N, L, P + N - 1, some, 2);
    free(d);
}

static void test_read_pieces_f16(void)
{
    const uint32_t N = 20, L = 3, P = 333, C = P + N - 1;
    uint16_t *d = calloc((size_t)N * L * C, sizeof *d);
    REQUIRE(d);
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t p = 0; p < P + n; p++)
                d[((size_t)n * L + l) * C + p] = half_of((int)rnd(1001) - 500);
    file_against_memory("<f2", KVP_DTYPE_F16, d, 2, N, L, C, caps, 4);
    free(d);
}

static void test_read_pieces_bool(void)
{
    const uint32_t N = 20, L = 3, P = 257, C = P + N - 1;
    unsigned char *d = calloc((size_t)N * L * C, 1);
    REQUIRE(d);
    for (uint32_t n = 0; n < N; n++)
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t p = 0; p < P + n; p++)
                d[((size_t)n * L + l) * C + p] = rnd(5) == 0;
    file_against_memory("|b1", KVP_DTYPE_BOOL, d, 1, N, L, C, caps, 4);
    free(d);
}

/* A file cut 10 bytes into row (s, cl) after it was opened, cl 0 or 1: layer 1's cursor
 * fails at step s naming its row; the fast path reports the lowest failing layer's error,
 * layer 0's (at step s when the cut is in its row, a row read in part, else at s + 1), as
 * the layer-by-layer order does, whether its layers run in one group or two. */
static void test_truncated_after_open(void)
{
    const uint32_t N = 12, L = 3, P = 500, C = P + N - 1;
    static const uint32_t cut[][2] = {{7, 1}, {11, 0}, {4, 0}};
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++)
        for (unsigned threads = 1; threads <= 2; threads++) {
            const uint32_t s = cut[i][0], cl = cut[i][1];
            float *d = drifting(N, L, P);
            char path[sizeof PATH_TEMPLATE];
            write_npy(path, "<f4", N, L, C, d, 4);
            free(d);
            kvp_trace *f = NULL;
            REQUIRE_OK(kvp_trace_open_npy(&f, path, &err), &err);
            REQUIRE(truncate(path, (off_t)(HEADER + ((size_t)s * L + cl) * C * 4 + 10)) == 0);
            char want[256];
            kvp_cursor *c = NULL;
            REQUIRE_OK(kvp_cursor_create(&c, f, 1, kvp_budget_sparsity(0.6), &err), &err);
            kvp_access a;
            int rc;
            uint32_t steps = 0;
            while ((rc = kvp_cursor_next(c, &a, &err)) > 0)
                steps++;
            CHECK_EQ_INT(steps, s);
            snprintf(want, sizeof want, "%s: the file ends before step %u, layer 1", path, s);
            CHECK_FAILS(rc, KVP_EIO, &err, want);
            kvp_cursor_free(c);

            kvp_scenario sc;
            slots_scenario(&sc, L, P / 2, 0.6);
            sc.prompt = P;
            sc.steps = N;
            kvp_policy_spec ps;
            CHECK_OK(kvp_policy_parse(&ps, "static", &err), &err);
            kvp_run_options ro;
            kvp_run_options_default(&ro);
            ro.threads = threads;
            kvp_result r;
            snprintf(want, sizeof want, "%s: the file ends before step %u, layer 0 (", path,
                     cl == 0 ? s : s + 1);
            CHECK_FAILS(kvp_fast_prefix_run(&sc, f, &ps, 1, &ro, &r, NULL, &err), KVP_EIO,
                        &err, want);
            kvp_trace_free(f);
            unlink(path);
        }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"read_pieces_f32", test_read_pieces_f32},
        {"read_pieces_f16", test_read_pieces_f16},
        {"read_pieces_bool", test_read_pieces_bool},
        {"read_windows", test_read_windows},
        {"truncated_after_open", test_truncated_after_open},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
