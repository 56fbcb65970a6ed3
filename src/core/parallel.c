/* parallel.c — per-call worker threads (see parallel.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#endif
#include "core/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

int kiln_cpu_thread_limit(void) {
    const char *env = getenv("KILN_CPU_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == 0 && n > 0) return n < KILN_MAX_THREADS ? (int)n : KILN_MAX_THREADS;
    }
    /* The affinity mask costs a system call: asked once.  Every thread that
     * races here stores the same answer. */
    static _Atomic int cpus = 0;
    int n = atomic_load_explicit(&cpus, memory_order_relaxed);
    if (n > 0) return n;
    long c = 0;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) c = CPU_COUNT(&set);
#endif
    if (c <= 0) c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c <= 0) c = 1;
    n = c < KILN_MAX_THREADS ? (int)c : KILN_MAX_THREADS;
    atomic_store_explicit(&cpus, n, memory_order_relaxed);
    return n;
}

int kiln_parallel_threads(double work, double min_work, int64_t parts) {
    double by_work = work / min_work;
    if (by_work < 2 || parts < 2) return 1;
    int64_t t = kiln_cpu_thread_limit();
    if (t > by_work) t = (int64_t)by_work;
    if (t > parts) t = parts;
    return t < 1 ? 1 : (int)t;
}

typedef struct worker {
    void (*fn)(void *ctx, int task);
    void *ctx;
    int   first, step, tasks;   /* runs tasks first, first + step, ... below tasks */
} worker;

static void *work(void *arg) {
    const worker *w = arg;
    for (int t = w->first; t < w->tasks; t += w->step) w->fn(w->ctx, t);
    return NULL;
}

void kiln_parallel_run(int tasks, int threads, void (*fn)(void *ctx, int task), void *ctx) {
    if (tasks <= 0) return;
    if (threads > tasks) threads = tasks;
    if (threads > KILN_MAX_THREADS) threads = KILN_MAX_THREADS;
    if (threads < 1) threads = 1;
    worker workers[KILN_MAX_THREADS];
    pthread_t ids[KILN_MAX_THREADS];
    for (int i = 0; i < threads; i++) workers[i] = (worker){fn, ctx, i, threads, tasks};
    int started = 1;
    while (started < threads && pthread_create(&ids[started], NULL, work, &workers[started]) == 0) started++;
    for (int i = started; i < threads; i++) work(&workers[i]);   /* threads that did not start */
    work(&workers[0]);
    for (int i = 1; i < started; i++) pthread_join(ids[i], NULL);
}
