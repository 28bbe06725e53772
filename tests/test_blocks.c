/*
 * A step's reads grouped by block (src/engine/blocks.c) against oracles written here: the
 * entries from the positions and from the bits against a count of each block's positions,
 * and the blocks' score sums (the AVX-512 form where the CPU has it, and the plain one)
 * against a sum in position order, bit for bit, on scores whose sum depends on the order.
 *
 * Usage: test_blocks [--seed N] [TEST...] (--list names them)
 */
#include "check.h"
#include "engine/blocks.h"

#include <stdint.h>
#include <string.h>

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % n);
}

/* A random ascending set of the positions [0, ctx): each position read with probability
 * pct / 100, in runs (a position's neighbour is likelier read), into pos and bits (words of
 * (ctx + 63) / 64, nothing at or past ctx); returns its size. */
static uint32_t random_set(uint32_t ctx, uint32_t pct, uint32_t *pos, uint64_t *bits)
{
    memset(bits, 0, ((size_t)ctx + 63) / 64 * sizeof *bits);
    uint32_t n = 0, last = 0;
    for (uint32_t p = 0; p < ctx; p++) {
        uint32_t take = rnd(100) < (last ? (pct + 100) / 2 : pct);
        if (take) {
            pos[n++] = p;
            bits[p / 64] |= 1ull << (p % 64);
        }
        last = take;
    }
    return n;
}

/* The oracle: per block, its positions counted one by one. */
static uint32_t oracle_entries(const uint32_t *pos, uint32_t n, uint32_t ctx, uint32_t g,
                               uint32_t *block, uint32_t *count)
{
    uint32_t nb = (ctx + g - 1) / g, m = 0;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t c = 0;
        for (uint32_t i = 0; i < n; i++)
            c += pos[i] / g == b;
        if (c) {
            block[m] = b;
            count[m++] = c;
        }
    }
    return m;
}

static void test_entries(void)
{
    rng_state = check_seed;
    printf("entries: seed %llu\n", (unsigned long long)check_seed);
    static const uint32_t gs[] = {2, 3, 4, 5, 7, 8, 16, 32, 63, 64, 65, 100, 128, 1000};
    static const uint32_t pcts[] = {0, 3, 40, 90, 100};
    const uint32_t cap = 3000;
    uint32_t *pos = malloc(cap * sizeof *pos), *want_b = malloc(cap * sizeof *want_b);
    uint32_t *want_c = malloc(cap * sizeof *want_c), *got_b = malloc(cap * sizeof *got_b);
    uint32_t *got_c = malloc(cap * sizeof *got_c);
    uint64_t *bits = malloc((cap / 64 + 1) * sizeof *bits);
    REQUIRE(pos && want_b && want_c && got_b && got_c && bits);
    uint32_t bad_pos = 0, bad_bits = 0, cases = 0;
    for (int iter = 0; iter < 400; iter++) {
        const uint32_t g = gs[rnd(sizeof gs / sizeof *gs)];
        const uint32_t ctx = 1 + rnd(iter < 200 ? 200 : cap - 1);
        const uint32_t n = random_set(ctx, pcts[rnd(5)], pos, bits);
        const uint32_t m = oracle_entries(pos, n, ctx, g, want_b, want_c);
        /* the bits' form writes up to ceil(ctx / g) + 1 entries: the buffers are cut there,
         * so that the sanitizer sees a write past them */
        const uint32_t room = (ctx + g - 1) / g + 1;
        uint32_t *rb = got_b + cap - room, *rc = got_c + cap - room;
        uint32_t k = kvp_blocks_of_pos(pos, n, g, got_b, got_c);
        bad_pos += k != m || memcmp(got_b, want_b, m * sizeof *want_b) ||
                   memcmp(got_c, want_c, m * sizeof *want_c);
        k = kvp_blocks_of_bits(bits, ctx, g, rb, rc);
        bad_bits += k != m || memcmp(rb, want_b, m * sizeof *want_b) ||
                    memcmp(rc, want_c, m * sizeof *want_c);
        cases++;
    }
    CHECK_EQ_U64(cases, 400);
    CHECK_EQ_U64(bad_pos, 0);
    CHECK_EQ_U64(bad_bits, 0);

    /* Hand cases: g = 4, context 10 (blocks 0-2), reads 1, 2, 3 | 8, 9; then none. */
    const uint32_t p5[] = {1, 2, 3, 8, 9};
    uint64_t w = 0;
    for (int i = 0; i < 5; i++)
        w |= 1ull << p5[i];
    uint32_t b[5], c[5]; /* ceil(10 / 3) + 1 */
    CHECK_EQ_U64(kvp_blocks_of_bits(&w, 10, 4, b, c), 2);
    CHECK(b[0] == 0 && c[0] == 3 && b[1] == 2 && c[1] == 2);
    CHECK_EQ_U64(kvp_blocks_of_pos(p5, 5, 4, b, c), 2);
    CHECK(b[0] == 0 && c[0] == 3 && b[1] == 2 && c[1] == 2);
    CHECK_EQ_U64(kvp_blocks_of_bits(&w, 10, 3, b, c), 4); /* 1 2 | 3 | 8 | 9 */
    CHECK(b[0] == 0 && c[0] == 2 && b[1] == 1 && c[1] == 1 && b[2] == 2 && c[2] == 1);
    CHECK(b[3] == 3 && c[3] == 1);
    w = 0;
    CHECK_EQ_U64(kvp_blocks_of_bits(&w, 10, 4, b, c), 0);
    free(pos);
    free(want_b);
    free(want_c);
    free(got_b);
    free(got_c);
    free(bits);
}

/* A score whose sums depend on the order of the additions: magnitudes from 2^-53 to 2^30,
 * either sign, with +-0 now and then. */
static float random_score(void)
{
    const uint32_t r = rnd(20);
    if (r == 0)
        return 0.0f;
    if (r == 1)
        return -0.0f;
    float x = (float)(1 + rnd(1u << 23)) * ldexpf(1.0f, (int)rnd(61) - 53);
    return rnd(2) ? -x : x;
}

/* The oracle: each entry's scores added to 0.0 in position order. */
static void oracle_sums(const float *score, const uint32_t *count, uint32_t n, double *sum)
{
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        double s = 0;
        for (uint32_t j = 0; j < count[i]; j++)
            s += (double)score[at++];
        sum[i] = s;
    }
}

static void test_sums(void)
{
    rng_state = check_seed ^ 0x9e3779b9u;
    printf("sums: seed %llu (%s form)\n", (unsigned long long)check_seed,
           kvp_block_sums_wide() ? "AVX-512" : "plain");
    static const uint32_t most[] = {1, 2, 4, 7, 8, 9, 15, 16, 17, 33, 64, 100};
    const uint32_t cap = 300;
    uint32_t *count = malloc(cap * sizeof *count);
    float *score = malloc((size_t)cap * 100 * sizeof *score);
    double *want = malloc(cap * sizeof *want), *wide = malloc(cap * sizeof *wide);
    double *plain = malloc(cap * sizeof *plain);
    REQUIRE(count && score && want && wide && plain);
    uint32_t bad_wide = 0, bad_plain = 0, order_matters = 0;
    for (int iter = 0; iter < 300; iter++) {
        const uint32_t n = rnd(cap + 1), g = most[rnd(sizeof most / sizeof *most)];
        size_t reads = 0;
        for (uint32_t i = 0; i < n; i++) {
            /* mostly full blocks, as a context's recent ones; empty entries too */
            count[i] = rnd(4) == 0 ? g : rnd(g + 1);
            reads += count[i];
        }
        for (size_t j = 0; j < reads; j++)
            score[j] = random_score();
        oracle_sums(score, count, n, want);
        kvp_block_sums(score, count, n, wide, 1);
        kvp_block_sums(score, count, n, plain, 0);
        bad_wide += n && memcmp(wide, want, n * sizeof *want) != 0;
        bad_plain += n && memcmp(plain, want, n * sizeof *want) != 0;
        /* the data can tell the orders apart: the same additions backwards differ */
        size_t at = 0;
        for (uint32_t i = 0; i < n; i++) {
            double s = 0;
            for (uint32_t j = count[i]; j-- > 0;)
                s += (double)score[at + j];
            at += count[i];
            order_matters += s != want[i];
        }
    }
    CHECK_EQ_U64(bad_wide, 0);
    CHECK_EQ_U64(bad_plain, 0);
    CHECK(order_matters > 1000);
    printf("sums: %u entries whose backward sum differs\n", order_matters);

    /* Hand case: 2^30 + 1 - 2^30 in that order is 1 in double (exact), and -0.0 alone
     * sums to +0.0; 9 entries, so that one goes to the plain tail of the 8-lane form. */
    const float s9[] = {0x1p30f, 1.0f, -0x1p30f, -0.0f, 0.5f, 0.25f, 1.0f, 2.0f, 3.0f,
                        4.0f,    5.0f, 6.0f,     7.0f};
    const uint32_t c9[] = {3, 1, 2, 0, 1, 1, 1, 1, 3};
    double r[9];
    for (int w = 0; w < 2; w++) {
        kvp_block_sums(s9, c9, 9, r, w);
        CHECK(r[0] == 1.0 && r[1] == 0.0 && !signbit(r[1]) && r[2] == 0.75 && r[3] == 0.0);
        CHECK(r[4] == 1.0 && r[5] == 2.0 && r[6] == 3.0 && r[7] == 4.0 && r[8] == 18.0);
    }
    free(count);
    free(score);
    free(want);
    free(wide);
    free(plain);
}

/* The entries of S streams' reads by block rows (kvp_blocks_of_streams from the merged bits
 * and scores, kvp_blocks_of_view from each stream's own) against an oracle that walks the
 * merged positions: for each row, each stream's reads counted and their scores added in
 * position order, streams ascending.  The streams' contexts differ (a short sequence ends),
 * scores whose sums depend on the order; where a form does not run (no AVX-512,
 * KVPLACE_SSE2_ONLY, S not 2, 4, 8; the view's: g not dividing 64, no VPOPCNTDQ) it must
 * say so and write nothing. */
static void test_streams(void)
{
    rng_state = check_seed ^ 0x5bd1e995u;
    const int wide = kvp_block_sums_wide();
    printf("streams: seed %llu (%s)\n", (unsigned long long)check_seed,
           wide ? "AVX-512" : "no form: UINT32_MAX");
    static const uint32_t Ss[] = {2, 4, 8, 3, 16};
    static const uint32_t gs[] = {1, 2, 3, 4, 5, 7, 8, 16, 17, 32, 64, 100};
    const uint32_t maxctx = 400, V = 16 * maxctx;
    uint32_t *pos = malloc(V * sizeof *pos), *wb = malloc(V * sizeof *wb);
    uint32_t *wc = malloc(V * sizeof *wc), *ctx = malloc(16 * sizeof *ctx);
    float *score = malloc(V * sizeof *score);
    double *ws = malloc(V * sizeof *ws);
    uint64_t *bits = malloc((V / 64 + 1) * sizeof *bits);
    /* the view: stream i's word w at sbits[w * S + i], its scores from sscore + i * maxctx */
    uint64_t *sbits = malloc((V / 64 + 16) * sizeof *sbits);
    float *sscore = malloc(V * sizeof *sscore);
    REQUIRE(pos && wb && wc && ctx && score && ws && bits && sbits && sscore);
    uint32_t bad = 0, runs = 0, skipped = 0, vbad = 0, vruns = 0;
    for (int iter = 0; iter < 400; iter++) {
        const uint32_t S = Ss[rnd(5)], g = gs[rnd(12)], pct = (uint32_t)rnd(101);
        uint32_t top = 0;
        for (uint32_t i = 0; i < S; i++) {
            ctx[i] = rnd(4) == 0 ? rnd(maxctx + 1) : maxctx - rnd(50);
            top = ctx[i] > top ? ctx[i] : top;
        }
        const uint32_t v = top * S;
        memset(bits, 0, ((size_t)v + 63) / 64 * sizeof *bits);
        uint32_t n = 0;
        for (uint32_t q = 0; q < v; q++)
            if (q / S < ctx[q % S] && rnd(100) < pct) {
                bits[q / 64] |= 1ull << (q % 64);
                pos[n] = q;
                score[n++] = random_score();
            }
        /* exactly the documented room, so that a write past it is seen by the sanitizer */
        const size_t room = ((size_t)top + g - 1) / g * S;
        uint32_t *block = malloc((room ? room : 1) * sizeof *block);
        uint32_t *count = malloc((room ? room : 1) * sizeof *count);
        double *sum = malloc((room ? room : 1) * sizeof *sum);
        REQUIRE(block && count && sum);
        const int scored = rnd(4) != 0;
        /* the oracle, from the positions */
        uint32_t m = 0;
        {
            for (uint32_t b = 0; (uint64_t)b * g < top; b++)
                for (uint32_t i = 0; i < S; i++) {
                    uint32_t c = 0;
                    double t = 0;
                    for (uint32_t j = 0; j < n; j++)
                        if (pos[j] % S == i && pos[j] / S / g == b) {
                            c++;
                            t += scored ? (double)score[j] : 0.0;
                        }
                    if (c) {
                        wb[m] = b * S + i;
                        wc[m] = c;
                        ws[m++] = t;
                    }
                }
        }
        const uint32_t got = kvp_blocks_of_streams(bits, v, S, g, scored ? score : NULL, block,
                                                   count, sum);
        if (!wide || (S != 2 && S != 4 && S != 8)) {
            bad += got != UINT32_MAX;
            skipped++;
        } else {
            bad += got != m || (m && (memcmp(block, wb, m * sizeof *wb) != 0 ||
                                      memcmp(count, wc, m * sizeof *wc) != 0 ||
                                      memcmp(sum, ws, m * sizeof *ws) != 0));
            runs++;
        }
        /* the view of the same reads; a stream with no reads has no scores (NULL) */
        memset(sbits, 0, ((size_t)top / 64 + 1) * S * sizeof *sbits);
        const float *vs[16];
        uint32_t vn[16] = {0};
        for (uint32_t j = 0; j < n; j++) {
            const uint32_t i = pos[j] % S, q = pos[j] / S;
            sbits[(size_t)q / 64 * S + i] |= 1ull << (q % 64);
            sscore[i * maxctx + vn[i]++] = score[j];
        }
        for (uint32_t i = 0; i < S; i++)
            vs[i] = vn[i] ? sscore + i * maxctx : NULL;
        memset(block, 0xAB, (room ? room : 1) * sizeof *block);
        const uint32_t vgot = kvp_blocks_of_view(sbits, S, ctx, scored ? vs : NULL, g, block,
                                                 count, sum);
        if (!kvp_blocks_of_view_wide() || (S != 2 && S != 4 && S != 8) || 64 % g) {
            vbad += vgot != UINT32_MAX || (room && block[0] != 0xABABABABu);
        } else {
            vbad += vgot != m || (m && (memcmp(block, wb, m * sizeof *wb) != 0 ||
                                        memcmp(count, wc, m * sizeof *wc) != 0 ||
                                        memcmp(sum, ws, m * sizeof *ws) != 0));
            vruns++;
        }
        free(block);
        free(count);
        free(sum);
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(vbad, 0);
    CHECK(runs + skipped == 400);
    CHECK(!wide || runs > 150);
    CHECK(!kvp_blocks_of_view_wide() || vruns > 80);
    printf("streams: %u runs, %u without the form; the view: %u runs\n", runs, skipped,
           vruns);
    free(sbits);
    free(sscore);
    free(pos);
    free(wb);
    free(wc);
    free(ctx);
    free(score);
    free(ws);
    free(bits);
}

/* kvp_tally_streams against a count bit by bit: each stream's set bits and those also in res,
 * word counts below and above 8 and not multiples of it, dense and sparse sets; where it has
 * no form (S not 2, 4, 8; no VPOPCNTDQ) it must return 0 and write nothing. */
static void test_tally(void)
{
    rng_state = check_seed ^ 0x7a11e5u;
    static const uint32_t Ss[] = {2, 4, 8, 3, 16};
    enum { MAXW = 300 };
    uint64_t set[MAXW], res[MAXW], reads[16], hits[16], wr[16], wh[16];
    uint32_t bad = 0, runs = 0, skipped = 0;
    for (int iter = 0; iter < 300; iter++) {
        const uint32_t S = Ss[rnd(5)], nw = rnd(MAXW + 1), pct = rnd(101);
        for (uint32_t w = 0; w < nw; w++) {
            set[w] = res[w] = 0;
            for (uint32_t b = 0; b < 64; b++) {
                set[w] |= (uint64_t)(rnd(100) < pct) << b;
                res[w] |= (uint64_t)(rnd(2)) << b;
            }
        }
        memset(wr, 0, sizeof wr);
        memset(wh, 0, sizeof wh);
        for (uint32_t w = 0; w < nw; w++)
            for (uint32_t b = 0; b < 64; b++) {
                wr[b % S] += set[w] >> b & 1;
                wh[b % S] += (set[w] & res[w]) >> b & 1;
            }
        memset(reads, 0xAB, sizeof reads);
        memset(hits, 0xAB, sizeof hits);
        if (kvp_tally_streams(set, res, nw, S, reads, hits)) {
            bad += memcmp(reads, wr, S * sizeof *wr) != 0 || memcmp(hits, wh, S * sizeof *wh) != 0;
            runs++;
        } else {
            bad += (S == 2 || S == 4 || S == 8) && kvp_blocks_of_view_wide();
            bad += reads[0] != 0xABABABABABABABABull || hits[0] != 0xABABABABABABABABull;
            skipped++;
        }
    }
    CHECK_EQ_U64(bad, 0);
    CHECK(!kvp_blocks_of_view_wide() || runs > 120);
    printf("tally: %u runs, %u without the form\n", runs, skipped);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"entries", test_entries},
        {"sums", test_sums},
        {"streams", test_streams},
        {"tally", test_tally},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
