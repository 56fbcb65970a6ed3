/* cpu_gemm_avx2.c — the CPU matmul's fast path on x86-64 CPUs with AVX2 and FMA.
 *
 * A packed, register-blocked product c = op(a) op(b) (row-major, float32
 * sums; op transposes an operand stored transposed) in the usual three
 * levels:
 *   - b is cut into blocks of KC rows x NC columns and each block is packed
 *     (converted to float32 when the tensors are float16/bfloat16) into
 *     strips of NR = 16 columns, zero-padded: a strip is read sequentially;
 *   - a is packed MR = 6 rows at a time (zero-padded rows), k-major;
 *   - a 6 x 16 tile of c lives in 12 AVX registers for a whole KC block:
 *     each k costs 2 loads of b, 6 broadcasts of a and 12 FMAs, against the
 *     plain kernel's load and store of c for every multiply-add.
 * Transposed operands change only the packing, which reads each operand
 * along its stored rows: a transposed b's stored row is one column of a
 * strip (converted once, written down the strip), a transposed a's stored
 * row gives the MR values of one k directly.  The tile kernel is the same.
 * The functions carry target("avx2,fma"), so the file builds with the
 * project's baseline flags and runs only after kiln_cpu_gemm_avx2_usable()
 * said yes.  Elsewhere (other CPUs, other architectures, fewer than MR rows)
 * cpu_matmul.c's portable kernel runs. */
#include "backend/cpu/cpu_gemm_avx2.h"

#include <string.h>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/parallel.h"

#if KILN_CPU_GEMM_AVX2

#include <immintrin.h>

enum { MR = 6, NR = 16, KC = 256, NC = 512 };

#define AVX2 __attribute__((target("avx2,fma")))

bool kiln_cpu_gemm_avx2_usable(int64_t M) {
    return M >= MR && kiln_cpu_has_avx2_fma();
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

/* op(b)[k0:k0+kc, j0:j0+nc] → strips of NR columns, each kc x NR,
 * zero-padded.  op(b)[k, j] is b[k·ks + j·cs]: ks = ldb, cs = 1 as stored,
 * ks = 1, cs = ldb when b is stored transposed. */
static void pack_b(kiln_dtype dt, const void *b, int64_t ks, int64_t cs, int64_t k0, int64_t kc, int64_t j0,
                   int64_t nc, float *bp) {
    if (cs != 1) {
        /* Column j of op(b) is stored row j0 + j, kc contiguous values: the
         * NR rows of a strip are converted, then written out one strip row
         * (one cache line) per k; missing columns of the last strip are zeros. */
        float cols[NR][KC];
        for (int64_t s = 0; s * NR < nc; s++) {
            const int64_t n = nc - s * NR < NR ? nc - s * NR : NR;
            for (int64_t c = 0; c < n; c++) row_to_f32(dt, b, (j0 + s * NR + c) * cs + k0 * ks, cols[c], kc);
            float *dst = bp + s * kc * NR;
            for (int64_t k = 0; k < kc; k++)
                for (int64_t c = 0; c < NR; c++) dst[k * NR + c] = c < n ? cols[c][k] : 0.0f;
        }
        return;
    }
    const int64_t ldb = ks;
    float row[NC];
    for (int64_t k = 0; k < kc; k++) {
        row_to_f32(dt, b, (k0 + k) * ldb + j0, row, nc);
        for (int64_t s = 0; s * NR < nc; s++) {
            float *dst = bp + (s * kc + k) * NR;
            int64_t cols = nc - s * NR < NR ? nc - s * NR : NR;
            memcpy(dst, row + s * NR, (size_t)cols * sizeof(float));
            if (cols < NR) memset(dst + cols, 0, (size_t)(NR - cols) * sizeof(float));
        }
    }
}

/* op(a)[i0:i0+rows, k0:k0+kc] → kc groups of MR values (k-major), zero-padded
 * rows.  op(a)[i, k] is a[i·rs + k·ks]: rs = lda, ks = 1 as stored, rs = 1,
 * ks = lda when a is stored transposed. */
static void pack_a(kiln_dtype dt, const void *a, int64_t rs, int64_t ks, int64_t i0, int rows, int64_t k0,
                   int64_t kc, float *ap) {
    if (ks != 1) {   /* the MR values of one k are contiguous in stored row k0 + k */
        for (int64_t k = 0; k < kc; k++) {
            row_to_f32(dt, a, (k0 + k) * ks + i0 * rs, ap + k * MR, rows);
            for (int r = rows; r < MR; r++) ap[k * MR + r] = 0.0f;
        }
        return;
    }
    const int64_t lda = rs;
    float row[KC];
    for (int r = 0; r < MR; r++) {
        if (r < rows) row_to_f32(dt, a, (i0 + r) * lda + k0, row, kc);
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

/* One product: c [M, N] (rows ldc apart) = op(a) [M, K] op(b) [K, N], element
 * offsets into the tensors of dtype dt; on one thread.  op(a)[i, k] is
 * a[a_off + i·a_rs + k·a_ks], op(b)[k, j] is b[b_off + k·b_ks + j·b_cs]. */
typedef struct gemm_part {
    kiln_dtype  dt;
    int64_t     M, K, N;
    const void *a, *b;
    void       *c;
    int64_t     a_off, b_off, c_off, a_rs, a_ks, b_ks, b_cs, ldc;
} gemm_part;

static void gemm_part_run(const gemm_part *g, float *scratch) {
    const kiln_dtype dt = g->dt;
    const int64_t M = g->M, K = g->K, N = g->N;
    const int64_t kcmax = K < KC ? K : KC, ncmax = N < NC ? N : NC;
    float *bp = scratch;
    float *ap = bp + kcmax * ((ncmax + NR - 1) / NR) * NR;
    float *cbuf = ap + MR * kcmax;   /* half types only */
    const int half = dt != KILN_FLOAT32;
    const size_t es = half ? 2 : 4;
    const char *a = (const char *)g->a + (size_t)g->a_off * es, *b = (const char *)g->b + (size_t)g->b_off * es;
    char *c = (char *)g->c + (size_t)g->c_off * es;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        const int64_t nc = N - j0 < NC ? N - j0 : NC;
        float *cpanel = half ? cbuf : (float *)c + j0;
        const int64_t ldc = half ? nc : g->ldc;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            pack_b(dt, b, g->b_ks, g->b_cs, k0, kc, j0, nc, bp);
            for (int64_t i0 = 0; i0 < M; i0 += MR) {
                const int rows = M - i0 < MR ? (int)(M - i0) : MR;
                pack_a(dt, a, g->a_rs, g->a_ks, i0, rows, k0, kc, ap);
                for (int64_t s = 0; s * NR < nc; s++) {
                    const int cols = nc - s * NR < NR ? (int)(nc - s * NR) : NR;
                    tile(kc, ap, bp + s * kc * NR, cpanel + i0 * ldc + s * NR, ldc, rows, cols, k0 > 0);
                }
            }
        }
        uint16_t *ch = (uint16_t *)c;
        if (dt == KILN_FLOAT16)
            for (int64_t i = 0; i < M; i++) kiln_cpu_f32_to_f16(cbuf + i * nc, ch + i * g->ldc + j0, nc);
        else if (dt == KILN_BFLOAT16)
            for (int64_t i = 0; i < M; i++) kiln_cpu_f32_to_bf16(cbuf + i * nc, ch + i * g->ldc + j0, nc);
    }
}

/* Threads: one part each, cut along M (in whole 6-row tiles) or along N (in
 * whole 16-column strips).
 * Every element of c is summed by one thread in the same order as by one
 * thread alone: results do not depend on the thread count. */
typedef struct gemm_split {
    gemm_part whole;
    float    *scratch;
    size_t    scratch_floats;   /* per thread */
    int       parts, by_rows;
    int64_t   step;             /* rows or columns per part */
} gemm_split;

static void run_split_part(void *ctx, int t) {
    const gemm_split *sp = ctx;
    gemm_part g = sp->whole;
    int64_t lo = (int64_t)t * sp->step, extent = sp->by_rows ? g.M : g.N;
    if (lo >= extent) return;
    int64_t n = extent - lo < sp->step ? extent - lo : sp->step;
    if (sp->by_rows) {
        g.M = n;
        g.a_off += lo * g.a_rs;
        g.c_off += lo * g.ldc;
    } else {
        g.N = n;
        g.b_off += lo * g.b_cs;
        g.c_off += lo;
    }
    gemm_part_run(&g, sp->scratch + (size_t)t * sp->scratch_floats);
}

int kiln_cpu_gemm_avx2_threads(int64_t M, int64_t K, int64_t N) {
    double flops = 2.0 * (double)M * (double)K * (double)N;
    int64_t row_tiles = (M + MR - 1) / MR, col_strips = (N + NR - 1) / NR;
    return kiln_parallel_threads(flops, KILN_CPU_GEMM_MIN_FLOPS_PER_THREAD,
                                 row_tiles > col_strips ? row_tiles : col_strips);
}

void kiln_cpu_gemm_avx2(kiln_dtype dt, int64_t M, int64_t K, int64_t N, int ta, int tb, const void *a,
                        const void *b, void *c, float *scratch, int threads) {
    gemm_split sp = {
        .whole = {.dt = dt, .M = M, .K = K, .N = N, .a = a, .b = b, .c = c,
                  .a_rs = ta ? 1 : K, .a_ks = ta ? M : 1,    /* a stored [M, K], or [K, M] */
                  .b_ks = tb ? 1 : N, .b_cs = tb ? K : 1,    /* b stored [K, N], or [N, K] */
                  .ldc = N},
        .scratch = scratch,
        .scratch_floats = kiln_cpu_gemm_avx2_scratch_floats(dt, M, K, N),
    };
    if (threads <= 1) {
        gemm_part_run(&sp.whole, scratch);
        return;
    }
    int64_t row_tiles = (M + MR - 1) / MR, col_strips = (N + NR - 1) / NR;
    /* Each part packs all of its b block and a rows: cut the larger of M and
     * N, so that what every part packs again (the other operand) is the smaller. */
    sp.by_rows = (M > N && row_tiles >= threads) || col_strips < threads;
    int64_t units = sp.by_rows ? row_tiles : col_strips, per = (units + threads - 1) / threads;
    sp.step = per * (sp.by_rows ? MR : NR);
    sp.parts = (int)((units + per - 1) / per);
    kiln_parallel_run(sp.parts, threads, run_split_part, &sp);
}

#endif
