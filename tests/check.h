/* A tiny assertion kit: every check prints both values and file:line when it fails, and
 * check_done() ends the run with the line "N passed, N failed". */
#ifndef KVP_CHECK_H
#define KVP_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_;

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

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
