/* bench_clock.h — a monotonic clock in seconds for the benchmarks. */
#ifndef KILN_BENCH_CLOCK_H
#define KILN_BENCH_CLOCK_H
#include <time.h>
static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif
