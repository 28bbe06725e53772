/*
 * k, the number of positions a step reads (kvp_access_k, docs/MODEL.md: k = ceil((1 - s) P')
 * for a context of P' tokens at sparsity s), on a table worked out in exact decimal
 * arithmetic.  The cases where (1 - s) P' is a whole number in decimals but a hair above it in
 * doubles (1 - 0.7 is 0.30000000000000004) are the reason for the guard of 1e-9 in the
 * code: without it they read one token more.
 */
#include "check.h"
#include "kvplace.h"

typedef struct k_case {
    double sparsity;
    uint32_t context;
    uint32_t k;
    const char *why; /* the exact decimal product, then its ceiling */
} k_case;

static const k_case k_table[] = {
    /* whole products that doubles put a hair above: the guard keeps them whole */
    {0.7, 10, 3, "0.3 x 10 = 3 (in doubles 3.0000000000000004)"},
    {0.7, 100, 30, "0.3 x 100 = 30 (in doubles 30.000000000000004)"},
    {0.9, 10, 1, "0.1 x 10 = 1 (in doubles a hair below)"},
    {0.8, 10, 2, "0.2 x 10 = 2"},
    {0.3, 10, 7, "0.7 x 10 = 7"},
    {0.6, 5, 2, "0.4 x 5 = 2"},
    {0.5, 64, 32, "0.5 x 64 = 32"},
    /* fractions round up, however small the fraction */
    {0.5, 65, 33, "0.5 x 65 = 32.5"},
    {0.5, 3, 2, "0.5 x 3 = 1.5"},
    {0.5, 1, 1, "0.5 x 1 = 0.5"},
    {0.6, 4096, 1639, "0.4 x 4096 = 1638.4"},
    {0.6, 4097, 1639, "0.4 x 4097 = 1638.8"},
    {0.99, 10, 1, "0.01 x 10 = 0.1"},
    {0.999999, 10, 1, "0.000001 x 10 = 0.00001"},
    {0.9, 11, 2, "0.1 x 11 = 1.1"},
    /* the ends */
    {0, 10, 10, "1 x 10 = 10: sparsity 0 reads the whole context"},
    {0, 1, 1, "1 x 1 = 1"},
    {0.5, 0, 0, "nothing to read in an empty context"},
    {0, 0, 0, "nothing to read in an empty context"},
    {0.25, 67108864, 50331648, "0.75 x 2^26 = 50331648, the largest prompt"},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof k_table / sizeof *k_table; i++) {
        const k_case *c = &k_table[i];
        uint32_t k = kvp_access_k(kvp_budget_sparsity(c->sparsity), c->context);
        if (!check_report_(k == c->k, __FILE__, __LINE__, "kvp_access_k"))
            fprintf(stderr, "    sparsity %g, context %u: k %u, wanted %u (%s)\n",
                    c->sparsity, c->context, k, c->k, c->why);
    }
}

/* Never above the context, never below 1 for a non-empty context (sparsity < 1), and
 * non-decreasing in the context: at every context up to 2000, at a spread of sparsities. */
static void test_bounds(void)
{
    static const double s[] = {0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.7, 0.75, 0.9, 0.95, 0.999};
    uint32_t bad = 0;
    for (size_t j = 0; j < sizeof s / sizeof *s; j++) {
        uint32_t prev = 0;
        for (uint32_t ctx = 0; ctx <= 2000; ctx++) {
            uint32_t k = kvp_access_k(kvp_budget_sparsity(s[j]), ctx);
            bad += k > ctx || (ctx > 0 && k < 1) || k < prev;
            prev = k;
        }
    }
    CHECK_EQ_U64(bad, 0);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"table", test_table},
        {"bounds", test_bounds},
    };
    return check_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
