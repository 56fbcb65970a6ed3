/* parallel.h — running independent tasks on several CPU threads.
 *
 * kiln has no long-lived thread pool: work big enough to be worth threads
 * (checksumming a large engine, a large matmul) starts them per call, which
 * costs tens of microseconds against milliseconds of work, and leaves no
 * threads behind in the processes that embed kiln.
 *
 *   static void square(void *ctx, int task) { float *x = ctx; x[task] *= x[task]; }
 *   kiln_parallel_run(n, kiln_cpu_thread_limit(), square, x);
 */
#ifndef KILN_CORE_PARALLEL_H
#define KILN_CORE_PARALLEL_H

#include <stdint.h>

/* How many threads CPU work may use: $KILN_CPU_THREADS when it is a positive
 * integer (read on every call), else the CPUs this process may run on (asked
 * once); at least 1, at most KILN_MAX_THREADS.  Callers ask only for work
 * big enough to split. */
#define KILN_MAX_THREADS 64
int  kiln_cpu_thread_limit(void);

/* Threads worth starting for `work` (any unit) that needs at least
 * `min_work` per thread to repay starting one, and splits into at most
 * `parts` pieces: min(kiln_cpu_thread_limit(), work / min_work, parts), at
 * least 1.  Work too small for two threads gets 1 without asking the limit,
 * so calling this on every layer costs a division. */
int  kiln_parallel_threads(double work, double min_work, int64_t parts);

/* Run fn(ctx, task) for task = 0 .. tasks-1 on up to `threads` threads (the
 * calling one included) and return when all are done.  Tasks must not
 * depend on each other's order.  If a thread cannot be started its tasks
 * run on the calling thread: this never fails.  fn must not call
 * kiln_error (the message is thread-local): report through ctx instead. */
void kiln_parallel_run(int tasks, int threads, void (*fn)(void *ctx, int task), void *ctx);

#endif
