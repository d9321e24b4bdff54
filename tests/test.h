// test.h — the assertions C tests use. Every failed CHECK prints file:line and the expression;
// test_done() prints "N passed, M failed" and returns the exit status (non-zero on any failure).
#ifndef TRLC_TEST_H
#define TRLC_TEST_H
#include <math.h>
#include <stdio.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) test_passed++;                                                 \
        else {                                                                   \
            test_failed++;                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (cond) test_passed++;                                                 \
        else {                                                                   \
            test_failed++;                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

// |a - b| <= atol + rtol * |b|
#define CHECK_CLOSE(a, b, atol, rtol)                                            \
    do {                                                                         \
        double a_ = (a), b_ = (b);                                               \
        CHECK_MSG(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_), "%.9g vs %.9g", a_, b_); \
    } while (0)

static inline int test_done(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : (test_passed ? 0 : 1);   // no assertion ran = failure
}

#endif
