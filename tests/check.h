/* A tiny assertion kit: every check prints both values and file:line when it fails, and
 * check_done() ends the run with the line "N passed, N failed".
 *
 * CHECK* record a failure and go on.  REQUIRE* record it and stop the current test (a
 * longjmp back to check_main), for preconditions whose failure would crash what follows: a
 * NULL handle, a failed run whose result is read.  A test stopped this way may leak what it
 * allocated; it has failed anyway.
 *
 * check_main(argc, argv, tests, n) runs the tests of a table by name:
 *     test_x                 every test, in table order
 *     test_x NAME...         only those (an unknown name is an error, with the list)
 *     test_x --list          the names
 *     test_x --seed N ...    the seed of the random tests (check_seed; printed when used)
 * A bare number is taken as the seed too (test_x 42), as before the table existed. */
#ifndef KVP_CHECK_H
#define KVP_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed_, check_failed_;
static jmp_buf check_jmp_;
static int check_in_test_;
static uint64_t check_seed = 20261124; /* the default seed of the random tests */

static inline int check_report_(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "%s:%d: FAILED %s\n", file, line, what);
    }
    return ok;
}

#define CHECK(c) check_report_(!!(c), __FILE__, __LINE__, #c)

#define CHECK_EQ_U64(a, b)                                                                     \
    do {                                                                                       \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                       \
        if (!check_report_(a_ == b_, __FILE__, __LINE__, #a " == " #b))                       \
            fprintf(stderr, "    %" PRIu64 " != %" PRIu64 "\n", a_, b_);                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                     \
    do {                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                    \
        if (!check_report_(a_ == b_, __FILE__, __LINE__, #a " == " #b))                       \
            fprintf(stderr, "    %lld != %lld\n", a_, b_);                                     \
    } while (0)

/* Relative tolerance; use 0 for bit-exact equality. */
#define CHECK_NEAR(a, b, rel)                                                                  \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        double d_ = fabs(a_ - b_), s_ = fmax(fabs(a_), fabs(b_));                              \
        if (!check_report_(a_ == b_ || d_ <= (rel) * s_, __FILE__, __LINE__,                   \
                           #a " ~= " #b))                                                      \
            fprintf(stderr, "    %.17g != %.17g\n", a_, b_);                                   \
    } while (0)

#define CHECK_STR(a, b)                                                                        \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        if (!check_report_(a_ && b_ && strcmp(a_, b_) == 0, __FILE__, __LINE__,               \
                           #a " == " #b))                                                      \
            fprintf(stderr, "    \"%s\" != \"%s\"\n", a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    } while (0)

/* expr returns an int; checks it is >= 0 and prints err.msg if not. */
#define CHECK_OK(expr, errp)                                                                   \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (!check_report_(rc_ >= 0, __FILE__, __LINE__, #expr))                              \
            fprintf(stderr, "    rc %d: %s\n", rc_, (errp)->msg);                              \
    } while (0)

/* expr must fail with the given code, and the message must contain needle. */
#define CHECK_FAILS(expr, code, errp, needle)                                                  \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (!check_report_(rc_ == (code), __FILE__, __LINE__, #expr " fails " #code))         \
            fprintf(stderr, "    rc %d, msg: %s\n", rc_, (errp)->msg);                         \
        else if (!check_report_(strstr((errp)->msg, (needle)) != NULL, __FILE__, __LINE__,    \
                                "message of " #expr " names " #needle))                        \
            fprintf(stderr, "    msg: %s\n", (errp)->msg);                                     \
    } while (0)

/* Stops the current test (after a failed REQUIRE); outside check_main, the whole run. */
static inline void check_stop_(const char *file, int line)
{
    fprintf(stderr, "%s:%d: a required check failed: the rest of this test is skipped\n",
            file, line);
    if (check_in_test_)
        longjmp(check_jmp_, 1);
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    exit(1);
}

#define REQUIRE(c)                                                                             \
    do {                                                                                       \
        if (!CHECK(c))                                                                         \
            check_stop_(__FILE__, __LINE__);                                                   \
    } while (0)

/* expr returns an int that must be >= 0 (err.msg printed if not), or the test stops. */
#define REQUIRE_OK(expr, errp)                                                                 \
    do {                                                                                       \
        int rq_ = (expr);                                                                      \
        if (!check_report_(rq_ >= 0, __FILE__, __LINE__, #expr)) {                            \
            fprintf(stderr, "    rc %d: %s\n", rq_, (errp)->msg);                              \
            check_stop_(__FILE__, __LINE__);                                                   \
        }                                                                                      \
    } while (0)

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

typedef struct check_test {
    const char *name;
    void (*fn)(void);
} check_test;

static inline int check_seed_arg_(const char *s)
{
    char *end;
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return 0;
    check_seed = strtoull(s, &end, 10);
    return 1;
}

/* One test, stopped by a failed REQUIRE (setjmp in a frame of its own: nothing here changes
 * between the setjmp and a longjmp). */
static inline void check_run_(const check_test *t)
{
    check_in_test_ = 1;
    if (setjmp(check_jmp_) == 0)
        t->fn();
    check_in_test_ = 0;
}

/* Runs the tests named in argv (all without names), each stopped alone by a failed REQUIRE;
 * returns check_done()'s status, or 2 for a bad command line. */
static inline int check_main(int argc, char **argv, const check_test *tests, size_t n)
{
    int named = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (size_t t = 0; t < n; t++)
                printf("%s\n", tests[t].name);
            return 0;
        }
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc && check_seed_arg_(argv[i + 1])) {
            argv[i] = argv[i + 1] = NULL;
            i++;
            continue;
        }
        if (check_seed_arg_(argv[i])) {
            argv[i] = NULL;
            continue;
        }
        size_t t = 0;
        while (t < n && strcmp(tests[t].name, argv[i]) != 0)
            t++;
        if (t == n) {
            fprintf(stderr, "%s: no test named \"%s\"; the tests:", argv[0], argv[i]);
            for (t = 0; t < n; t++)
                fprintf(stderr, " %s", tests[t].name);
            fprintf(stderr, "\n");
            return 2;
        }
        named = 1;
    }
    for (size_t t = 0; t < n; t++) {
        int run = !named;
        for (int i = 1; i < argc && !run; i++)
            run = argv[i] && strcmp(argv[i], tests[t].name) == 0;
        if (!run)
            continue;
        check_run_(&tests[t]);
    }
    return check_done();
}

#endif
