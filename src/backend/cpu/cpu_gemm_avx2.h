/* cpu_gemm_avx2.h — the CPU matmul's packed AVX2/FMA path (x86-64 only).
 *
 * cpu_matmul.c asks kiln_cpu_gemm_avx2_usable(M) per layer; when it says
 * yes it gives kiln_cpu_gemm_avx2 a float scratch buffer of
 * kiln_cpu_gemm_avx2_scratch_floats(...) elements per thread and calls it
 * once per matrix of the batch; large products run on several threads.
 * Where the compiler cannot target AVX2, KILN_CPU_GEMM_AVX2 is 0 and the
 * functions are stubs that are never usable. */
#ifndef KILN_CPU_GEMM_AVX2_H
#define KILN_CPU_GEMM_AVX2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

/* Below this much work per thread, starting a thread for a matmul costs
 * more than it saves (both matmul paths). */
#define KILN_CPU_GEMM_MIN_FLOPS_PER_THREAD (8.0 * 1024 * 1024)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KILN_CPU_GEMM_AVX2 1
/* True when this CPU has AVX2 and FMA and the product has enough rows (M)
 * for the 6-row tiles to pay off. */
bool   kiln_cpu_gemm_avx2_usable(int64_t M);
/* Scratch floats one thread needs for this product. */
size_t kiln_cpu_gemm_avx2_scratch_floats(kiln_dtype dt, int64_t M, int64_t K, int64_t N);
/* How many threads this product is worth (1 for small ones), within
 * kiln_cpu_thread_limit() ($KILN_CPU_THREADS). */
int    kiln_cpu_gemm_avx2_threads(int64_t M, int64_t K, int64_t N);
/* c [M, N] = op(a) [M, K] op(b) [K, N], all of dtype dt (float32, float16
 * or bfloat16), row-major, summed in float32; K > 0.  ta: a is stored
 * transposed, [K, M]; tb: b is stored transposed, [N, K].  scratch holds
 * `threads` times the scratch floats; the result is the same for any thread
 * count. */
void   kiln_cpu_gemm_avx2(kiln_dtype dt, int64_t M, int64_t K, int64_t N, int ta, int tb, const void *a,
                          const void *b, void *c, float *scratch, int threads);
#else
/* No AVX2 path here: never usable, so the others are never called. */
#define KILN_CPU_GEMM_AVX2 0
static inline bool   kiln_cpu_gemm_avx2_usable(int64_t M) { (void)M; return false; }
static inline size_t kiln_cpu_gemm_avx2_scratch_floats(kiln_dtype dt, int64_t M, int64_t K, int64_t N) {
    (void)dt, (void)M, (void)K, (void)N;
    return 0;
}
static inline int    kiln_cpu_gemm_avx2_threads(int64_t M, int64_t K, int64_t N) { (void)M, (void)K, (void)N; return 1; }
static inline void   kiln_cpu_gemm_avx2(kiln_dtype dt, int64_t M, int64_t K, int64_t N, int ta, int tb,
                                        const void *a, const void *b, void *c, float *scratch, int threads) {
    (void)dt, (void)M, (void)K, (void)N, (void)ta, (void)tb, (void)a, (void)b, (void)c, (void)scratch, (void)threads;
}
#endif

#endif
