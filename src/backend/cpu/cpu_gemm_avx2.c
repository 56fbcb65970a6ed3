/* cpu_gemm_avx2.c — the CPU matmul's fast path on x86-64 CPUs with AVX2 and FMA.
 *
 * A packed, register-blocked product c = a b (row-major, float32 sums) in the
 * usual three levels:
 *   - b is cut into blocks of KC rows x NC columns and each block is packed
 *     (converted to float32 when the tensors are float16/bfloat16) into
 *     strips of NR = 16 columns, zero-padded: a strip is read sequentially;
 *   - a is packed MR = 6 rows at a time (zero-padded rows), k-major;
 *   - a 6 x 16 tile of c lives in 12 AVX registers for a whole KC block:
 *     each k costs 2 loads of b, 6 broadcasts of a and 12 FMAs, against the
 *     plain kernel's load and store of c for every multiply-add.
 * The functions carry target("avx2,fma"), so the file builds with the
 * project's baseline flags and runs only after kiln_cpu_gemm_avx2_usable()
 * said yes.  Elsewhere (other CPUs, other architectures, fewer than MR rows)
 * cpu_matmul.c's portable kernel runs. */
#include "backend/cpu/cpu_gemm_avx2.h"

#include <stdatomic.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"

#if KILN_CPU_GEMM_AVX2

#include <immintrin.h>

enum { MR = 6, NR = 16, KC = 256, NC = 512 };

#define AVX2 __attribute__((target("avx2,fma")))

bool kiln_cpu_gemm_avx2_usable(int64_t M) {
    static _Atomic int supported = -1;   /* every thread that races here computes the same answer */
    int s = atomic_load_explicit(&supported, memory_order_relaxed);
    if (s < 0) {
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        atomic_store_explicit(&supported, s, memory_order_relaxed);
    }
    return s && M >= MR;
}

size_t kiln_cpu_gemm_avx2_scratch_floats(kiln_dtype dt, int64_t M, int64_t K, int64_t N) {
    size_t kc = (size_t)(K < KC ? K : KC), nc = (size_t)(N < NC ? N : NC);
    size_t strips = (nc + NR - 1) / NR;
    size_t need = kc * strips * NR + (size_t)MR * kc;   /* packed b block, packed a rows */
    if (dt != KILN_FLOAT32) need += (size_t)M * nc;      /* float32 sums of one column panel */
    return need;
}

/* n elements of a row of dtype dt from src[offset...] into float32 dst. */
static void row_to_f32(kiln_dtype dt, const void *src, int64_t offset, float *dst, int64_t n) {
    if (dt == KILN_FLOAT32) memcpy(dst, (const float *)src + offset, (size_t)n * sizeof(float));
    else if (dt == KILN_FLOAT16) kiln_cpu_f16_to_f32((const uint16_t *)src + offset, dst, n);
    else kiln_cpu_bf16_to_f32((const uint16_t *)src + offset, dst, n);
}

/* b[k0:k0+kc, j0:j0+nc] → strips of NR columns, each kc x NR, zero-padded. */
static void pack_b(kiln_dtype dt, const void *b, int64_t N, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                   float *bp) {
    float row[NC];
    for (int64_t k = 0; k < kc; k++) {
        row_to_f32(dt, b, (k0 + k) * N + j0, row, nc);
        for (int64_t s = 0; s * NR < nc; s++) {
            float *dst = bp + (s * kc + k) * NR;
            int64_t cols = nc - s * NR < NR ? nc - s * NR : NR;
            memcpy(dst, row + s * NR, (size_t)cols * sizeof(float));
            if (cols < NR) memset(dst + cols, 0, (size_t)(NR - cols) * sizeof(float));
        }
    }
}

/* a[i0:i0+rows, k0:k0+kc] → kc groups of MR values (k-major), zero-padded rows. */
static void pack_a(kiln_dtype dt, const void *a, int64_t K, int64_t i0, int rows, int64_t k0, int64_t kc,
                   float *ap) {
    float row[KC];
    for (int r = 0; r < MR; r++) {
        if (r < rows) row_to_f32(dt, a, (i0 + r) * K + k0, row, kc);
        for (int64_t k = 0; k < kc; k++) ap[k * MR + r] = r < rows ? row[k] : 0.0f;
    }
}

/* c[0:rows, 0:cols] (+)= ap (kc x MR) times bp (kc x NR).  accumulate: add
 * to what c holds (a later KC block), else overwrite it. */
AVX2 static void tile(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int rows, int cols,
                      int accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
           c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < kc; k++, ap += MR, bp += NR) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), a;
        a = _mm256_broadcast_ss(ap + 0), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(ap + 1), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(ap + 2), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(ap + 3), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(ap + 4), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(ap + 5), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    float t[MR][NR];
    _mm256_storeu_ps(t[0], c00), _mm256_storeu_ps(t[0] + 8, c01);
    _mm256_storeu_ps(t[1], c10), _mm256_storeu_ps(t[1] + 8, c11);
    _mm256_storeu_ps(t[2], c20), _mm256_storeu_ps(t[2] + 8, c21);
    _mm256_storeu_ps(t[3], c30), _mm256_storeu_ps(t[3] + 8, c31);
    _mm256_storeu_ps(t[4], c40), _mm256_storeu_ps(t[4] + 8, c41);
    _mm256_storeu_ps(t[5], c50), _mm256_storeu_ps(t[5] + 8, c51);
    for (int r = 0; r < rows; r++) {
        float *cr = c + r * ldc;
        if (accumulate)
            for (int j = 0; j < cols; j++) cr[j] += t[r][j];
        else
            memcpy(cr, t[r], (size_t)cols * sizeof(float));
    }
}

void kiln_cpu_gemm_avx2(kiln_dtype dt, int64_t M, int64_t K, int64_t N, const void *a, const void *b, void *c,
                        float *scratch) {
    const int64_t kcmax = K < KC ? K : KC, ncmax = N < NC ? N : NC;
    float *bp = scratch;
    float *ap = bp + kcmax * ((ncmax + NR - 1) / NR) * NR;
    float *cbuf = ap + MR * kcmax;   /* half types only */
    const int half = dt != KILN_FLOAT32;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        const int64_t nc = N - j0 < NC ? N - j0 : NC;
        float *cpanel = half ? cbuf : (float *)c + j0;
        const int64_t ldc = half ? nc : N;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            pack_b(dt, b, N, k0, kc, j0, nc, bp);
            for (int64_t i0 = 0; i0 < M; i0 += MR) {
                const int rows = M - i0 < MR ? (int)(M - i0) : MR;
                pack_a(dt, a, K, i0, rows, k0, kc, ap);
                for (int64_t s = 0; s * NR < nc; s++) {
                    const int cols = nc - s * NR < NR ? (int)(nc - s * NR) : NR;
                    tile(kc, ap, bp + s * kc * NR, cpanel + i0 * ldc + s * NR, ldc, rows, cols, k0 > 0);
                }
            }
        }
        if (dt == KILN_FLOAT16)
            for (int64_t i = 0; i < M; i++) kiln_cpu_f32_to_f16(cbuf + i * nc, (uint16_t *)c + i * N + j0, nc);
        else if (dt == KILN_BFLOAT16)
            for (int64_t i = 0; i < M; i++) kiln_cpu_f32_to_bf16(cbuf + i * nc, (uint16_t *)c + i * N + j0, nc);
    }
}

#endif
