/* test.h — a minimal test harness: CHECK records a failure and goes on,
 * REQUIRE stops the test function.  Each test file's main() calls
 * TEST_RUN(fn) for its cases and returns test_summary(). */
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <stdio.h>
#include <string.h>
#include "kiln/kiln.h"

static int test_failures, test_checks, test_cases;

#define CHECK(cond) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define REQUIRE(cond) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: REQUIRE failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, kiln_last_error()); \
    return; } } while (0)
/* A call must succeed. */
#define CHECK_OK(call) do { kiln_status s_ = (call); test_checks++; if (s_ != KILN_OK) { test_failures++; \
    fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call, kiln_status_string(s_), kiln_last_error()); \
    return; } } while (0)
/* A call must fail with status st and a message containing substring. */
#define CHECK_FAILS(call, st, substring) do { kiln_status s_ = (call); test_checks++; \
    if (s_ != (st) || !strstr(kiln_last_error(), (substring))) { test_failures++; \
    fprintf(stderr, "%s:%d: %s -> %s \"%s\", wanted %s containing \"%s\"\n", __FILE__, __LINE__, #call, \
            kiln_status_string(s_), kiln_last_error(), kiln_status_string(st), (substring)); } } while (0)
#define TEST_RUN(fn) do { int before_ = test_failures; test_cases++; fn(); \
    fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn); } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_checks - test_failures, test_failures);
    return test_failures ? 1 : 0;
}

#endif
