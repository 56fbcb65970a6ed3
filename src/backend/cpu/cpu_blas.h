/* cpu_blas.h — float32 matrix products through a system BLAS, found at run
 * time.
 *
 * A maintained BLAS (OpenBLAS, BLIS) has years of per-CPU tuning that kiln's
 * own kernels do not match, so float32 matmuls use one when the process can
 * load it; kiln's kernels remain the fallback and the path for float16 and
 * bfloat16.  Nothing is linked: the library is dlopen'ed on first use, so a
 * machine without a BLAS still runs kiln.
 *
 * Which library: $KILN_BLAS when set — a path or soname to load, or "none"
 * (also "0", "off") to use kiln's own kernels only — else the first of
 * libopenblas.so.0, libopenblas.so, libblis.so.4, libblis.so that loads.
 * Both the standard CBLAS interface (cblas_sgemm, 32-bit ints) and the
 * 64-bit-integer build that numpy and scipy wheels ship
 * (scipy_cblas_sgemm64_) are recognized, so KILN_BLAS may name numpy's copy.
 * The BLAS's own thread count is set once to kiln_cpu_thread_limit()
 * (KILN_CPU_THREADS). */
#ifndef KILN_CPU_BLAS_H
#define KILN_CPU_BLAS_H

#include <stdbool.h>
#include <stdint.h>

/* The loaded library's path or soname, or NULL when kiln's own kernels are
 * used (none found, or KILN_BLAS=none).  Loads on the first call. */
const char *kiln_cpu_blas_name(void);

/* c[M, N] = op(a)[M, K] · op(b)[K, N], row-major, float32, contiguous: a is
 * stored [M, K], or [K, M] when ta (op transposes it back); b is stored
 * [K, N], or [N, K] when tb; M, N, K > 0.  false (nothing written) when no
 * BLAS is loaded or the sizes do not fit its integers; the caller then uses
 * its own kernel. */
bool kiln_cpu_blas_sgemm(int64_t M, int64_t N, int64_t K, int ta, int tb, const float *a, const float *b, float *c);

#endif
