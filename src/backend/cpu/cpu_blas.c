/* cpu_blas.c — see cpu_blas.h. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_blas.h"
#include "core/parallel.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };   /* from the CBLAS standard */

typedef void (*sgemm32_fn)(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a,
                           int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*sgemm64_fn)(int order, int transa, int transb, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                           int64_t ldc);

/* y = op(A)·x: one-row and one-column products, where some BLAS builds'
 * sgemm does not take the matrix-vector path by itself. */
typedef void (*sgemv32_fn)(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x,
                           int incx, float beta, float *y, int incy);
typedef void (*sgemv64_fn)(int order, int trans, int64_t m, int64_t n, float alpha, const float *a, int64_t lda,
                           const float *x, int64_t incx, float beta, float *y, int64_t incy);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static sgemm32_fn sgemm32;
static sgemm64_fn sgemm64;
static sgemv32_fn sgemv32;
static sgemv64_fn sgemv64;
static char blas_name[512];

/* dlsym's result is a data pointer; POSIX guarantees the conversion. */
static void *symbol(void *lib, const char *name) { return lib ? dlsym(lib, name) : NULL; }

/* Take the library if it has an sgemm we know; set its thread count. */
static bool adopt(void *lib, const char *name) {
    sgemm32_fn s32 = (sgemm32_fn)symbol(lib, "cblas_sgemm");
    sgemm64_fn s64 = s32 ? NULL : (sgemm64_fn)symbol(lib, "scipy_cblas_sgemm64_");
    if (!s32 && !s64) return false;
    int threads = kiln_cpu_thread_limit();
    void (*set_int)(int) = (void (*)(int))symbol(lib, s32 ? "openblas_set_num_threads"
                                                          : "scipy_openblas_set_num_threads64_");
    void (*set_blis)(int64_t) = (void (*)(int64_t))symbol(lib, "bli_thread_set_num_threads");
    if (set_int) set_int(threads);
    else if (set_blis) set_blis(threads);
    sgemm32 = s32;
    sgemm64 = s64;
    sgemv32 = s32 ? (sgemv32_fn)symbol(lib, "cblas_sgemv") : NULL;
    sgemv64 = s64 ? (sgemv64_fn)symbol(lib, "scipy_cblas_sgemv64_") : NULL;
    snprintf(blas_name, sizeof blas_name, "%s", name);
    return true;
}

static void load_blas(void) {
    const char *want = getenv("KILN_BLAS");
    if (want && (!strcmp(want, "none") || !strcmp(want, "0") || !strcmp(want, "off"))) return;
    if (want && want[0]) {
        void *lib = dlopen(want, RTLD_NOW | RTLD_LOCAL);
        if (!adopt(lib, want) && lib) dlclose(lib);
        return;   /* the caller named one: no other is tried */
    }
    static const char *const candidates[] = {"libopenblas.so.0", "libopenblas.so", "libblis.so.4", "libblis.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        void *lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (adopt(lib, candidates[i])) return;
        if (lib) dlclose(lib);
    }
}

const char *kiln_cpu_blas_name(void) {
    pthread_once(&blas_once, load_blas);
    return sgemm32 || sgemm64 ? blas_name : NULL;
}

bool kiln_cpu_blas_sgemm(int64_t M, int64_t N, int64_t K, int ta, int tb, const float *a, const float *b, float *c) {
    if (!kiln_cpu_blas_name()) return false;
    /* CBLAS takes the transposes as they are stored: a transposed operand
     * is its stored matrix with op = TRANS and that matrix's row length as
     * its leading dimension. */
    const int op_a = ta ? CBLAS_TRANS : CBLAS_NO_TRANS, op_b = tb ? CBLAS_TRANS : CBLAS_NO_TRANS;
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    /* One row of op(a), K contiguous values either way (a [1, K] or [K, 1]):
     * c = op(b)ᵀ·a as a matrix-vector product over b as stored, [K, N]
     * (c = bᵀ·a) or [N, K] (c = b·a). */
    const int64_t rows_b = tb ? N : K, cols_b = tb ? K : N;
    const int op_v = tb ? CBLAS_NO_TRANS : CBLAS_TRANS;
    if (M == 1 && sgemv64) {
        sgemv64(CBLAS_ROW_MAJOR, op_v, rows_b, cols_b, 1.0f, b, cols_b, a, 1, 0.0f, c, 1);
        return true;
    }
    if (M == 1 && sgemv32 && K <= INT32_MAX && N <= INT32_MAX) {
        sgemv32(CBLAS_ROW_MAJOR, op_v, (int)rows_b, (int)cols_b, 1.0f, b, (int)cols_b, a, 1, 0.0f, c, 1);
        return true;
    }
    if (sgemm64) {
        sgemm64(CBLAS_ROW_MAJOR, op_a, op_b, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        return true;
    }
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return false;
    sgemm32(CBLAS_ROW_MAJOR, op_a, op_b, (int)M, (int)N, (int)K, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)N);
    return true;
}
