/* cpu_matmul.c — MATMUL: a [..., M, K] x b [..., K, N] → out [..., M, N],
 * either operand optionally stored transposed (the layer's transpose_a,
 * transpose_b: a [..., K, M], b [..., N, K]).
 *
 * Batch axes broadcast numpy-style (b is often a rank-2 weight shared by
 * every batch).  Each matrix product is a blocked i-k-j loop: for a panel of
 * NC output columns and a block of KC rows of b (small enough to stay in
 * cache), every group of MR rows of a adds a[i, k] * b[k, :] into float32
 * output rows.  The innermost loop runs along a row of b and of the output,
 * contiguous in both, so the compiler vectorizes it, and each b load feeds MR
 * rows.  float16/bfloat16 are converted to float32 panels as they are used
 * and the float32 sums rounded back once at the end.  A transposed operand
 * is read as stored and gathered into the same panels: a transposed b block
 * (its k-th row is a column of the stored matrix) is copied into float32
 * scratch, each stored row converted once and scattered along the block's
 * column; a transposed a row is gathered with stride M.  The micro-kernels
 * never see a transpose.
 *
 * This is the portable kernel.  float32 products go to the system BLAS when
 * the process can load one (cpu_blas.h: OpenBLAS or BLIS, found at run
 * time).  Otherwise, on x86-64 CPUs with AVX2 and FMA, products of at least
 * 6 rows take the packed, register-blocked path of cpu_gemm_avx2.c (several
 * times faster, and on several threads for large products); all sum in
 * float32. */
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_gemm_avx2.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"

enum {
    MR = 4,             /* rows of a per micro-kernel call */
    KC = 128,           /* rows of b per block */
    NC = 256,           /* columns of b and out per panel */
    STACK_FLOATS = 2048 /* scratch up to this size lives on the stack (small layers allocate nothing) */
};

/* c_r[0:nc] += sum over k of a_r[k] * b[k, 0:nc], for MR rows r at once. */
static void micro_rows4(const float *a0, const float *a1, const float *a2, const float *a3,
                        const float *restrict b, int64_t ldb, float *restrict c0, float *restrict c1,
                        float *restrict c2, float *restrict c3, int64_t kc, int64_t nc) {
    for (int64_t k = 0; k < kc; k++) {
        const float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
        const float *restrict br = b + k * ldb;
        for (int64_t j = 0; j < nc; j++) {
            float v = br[j];
            c0[j] += x0 * v;
            c1[j] += x1 * v;
            c2[j] += x2 * v;
            c3[j] += x3 * v;
        }
    }
}

static void micro_row(const float *a0, const float *restrict b, int64_t ldb, float *restrict c0, int64_t kc,
                      int64_t nc) {
    for (int64_t k = 0; k < kc; k++) {
        const float x0 = a0[k];
        const float *restrict br = b + k * ldb;
        for (int64_t j = 0; j < nc; j++) c0[j] += x0 * br[j];
    }
}

static void halfs_to_f32(kiln_dtype dt, const uint16_t *src, float *dst, int64_t n) {
    if (dt == KILN_FLOAT16) kiln_cpu_f16_to_f32(src, dst, n);
    else                    kiln_cpu_bf16_to_f32(src, dst, n);
}

static void f32_to_halfs(kiln_dtype dt, const float *src, uint16_t *dst, int64_t n) {
    if (dt == KILN_FLOAT16) kiln_cpu_f32_to_f16(src, dst, n);
    else                    kiln_cpu_f32_to_bf16(src, dst, n);
}

typedef struct gemm_shape {
    kiln_dtype dt;
    int64_t    M, K, N;
    int        ta, tb;    /* a stored [K, M], b stored [N, K] */
} gemm_shape;

/* n elements of dtype dt from src[offset], offset + stride, ... into float32. */
static void gather_f32(kiln_dtype dt, const void *src, int64_t offset, int64_t stride, float *dst, int64_t n) {
    if (stride == 1) {
        if (dt == KILN_FLOAT32) memcpy(dst, (const float *)src + offset, (size_t)n * sizeof(float));
        else halfs_to_f32(dt, (const uint16_t *)src + offset, dst, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t at = offset + i * stride;
        dst[i] = dt == KILN_FLOAT32   ? ((const float *)src)[at]
                 : dt == KILN_FLOAT16 ? kiln_f16_to_f32(((const uint16_t *)src)[at])
                                      : kiln_bf16_to_f32(((const uint16_t *)src)[at]);
    }
}

/* The float32 block op(b)[k0:k0+kc, j0:j0+nc] into bbuf (rows nc apart),
 * from b stored transposed [N, K]: stored row j holds column j of op(b), kc
 * contiguous elements from k0.  JB stored rows are converted at a time and
 * written out row by row of the block, JB contiguous floats each (one cache
 * line), not one float per line down a column.  The block is then what the
 * untransposed path reads, so both sum in the same order. */
static void load_b_transposed(kiln_dtype dt, const void *b, int64_t K, int64_t k0, int64_t kc, int64_t j0,
                              int64_t nc, float *bbuf) {
    enum { JB = 16 };
    float cols[JB][KC];
    for (int64_t jb = 0; jb < nc; jb += JB) {
        const int64_t n = nc - jb < JB ? nc - jb : JB;
        for (int64_t c = 0; c < n; c++) gather_f32(dt, b, (j0 + jb + c) * K + k0, 1, cols[c], kc);
        for (int64_t k = 0; k < kc; k++) {
            float *dst = bbuf + k * nc + jb;
            for (int64_t c = 0; c < n; c++) dst[c] = cols[c][k];
        }
    }
}

/* Columns [j_begin, j_end) of one product c = op(a) op(b) of row-major
 * matrices.  Half types and a transposed b need scratch: a KC x NC float32
 * block of b; half types then M x NC float32 sums (gemm_scratch_floats). */
static void gemm_columns(const gemm_shape *s, const void *a, const void *b, void *c, int64_t j_begin, int64_t j_end,
                         float *scratch) {
    const int64_t M = s->M, K = s->K, N = s->N;
    const int half = s->dt != KILN_FLOAT32;
    const size_t es = kiln_dtype_size(s->dt);
    if (K == 0) {   /* empty sums: all-zero bits are 0.0 in every float dtype */
        for (int64_t i = 0; i < M; i++) memset((char *)c + (size_t)(i * N + j_begin) * es, 0, (size_t)(j_end - j_begin) * es);
        return;
    }
    const int copy_b = half || s->tb;   /* b's block is read from bbuf, not from b */
    float *bbuf = scratch, *cbuf = half ? scratch + (K < KC ? K : KC) * (N < NC ? N : NC) : NULL;
    float abuf[MR][KC];
    for (int64_t j0 = j_begin; j0 < j_end; j0 += NC) {
        const int64_t nc = j_end - j0 < NC ? j_end - j0 : NC;
        float *cpanel = half ? cbuf : (float *)c + j0;
        const int64_t ldc = half ? nc : N;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            if (s->tb)
                load_b_transposed(s->dt, b, K, k0, kc, j0, nc, bbuf);
            else if (half)
                for (int64_t k = 0; k < kc; k++)
                    halfs_to_f32(s->dt, (const uint16_t *)b + (k0 + k) * N + j0, bbuf + k * nc, nc);
            const float *bp = copy_b ? bbuf : (const float *)b + k0 * N + j0;
            const int64_t ldb = copy_b ? nc : N;
            for (int64_t i0 = 0; i0 < M; i0 += MR) {
                const int rows = M - i0 < MR ? (int)(M - i0) : MR;
                const float *ap[MR];
                float *cr[MR];
                for (int r = 0; r < rows; r++) {
                    if (s->ta) {   /* row i of op(a) is column i of a [K, M]: stride M */
                        gather_f32(s->dt, a, k0 * M + i0 + r, M, abuf[r], kc);
                        ap[r] = abuf[r];
                    } else if (half) {
                        halfs_to_f32(s->dt, (const uint16_t *)a + (i0 + r) * K + k0, abuf[r], kc);
                        ap[r] = abuf[r];
                    } else {
                        ap[r] = (const float *)a + (i0 + r) * K + k0;
                    }
                    cr[r] = cpanel + (i0 + r) * ldc;
                    if (k0 == 0) memset(cr[r], 0, (size_t)nc * sizeof(float));
                }
                if (rows == MR)
                    micro_rows4(ap[0], ap[1], ap[2], ap[3], bp, ldb, cr[0], cr[1], cr[2], cr[3], kc, nc);
                else
                    for (int r = 0; r < rows; r++) micro_row(ap[r], bp, ldb, cr[r], kc, nc);
            }
        }
        if (half)
            for (int64_t i = 0; i < M; i++) f32_to_halfs(s->dt, cbuf + i * nc, (uint16_t *)c + i * N + j0, nc);
    }
}

static size_t gemm_scratch_floats(const gemm_shape *s) {
    const int half = s->dt != KILN_FLOAT32;
    if (!half && !s->tb) return 0;
    const size_t nc = (size_t)(s->N < NC ? s->N : NC);
    return (size_t)(s->K < KC ? s->K : KC) * nc + (half ? (size_t)s->M * nc : 0);
}

/* Threads take whole column panels: a one-row product (decoding a token)
 * streams all of b, and cutting b by columns shares that read between
 * cores.  Each column is summed by one thread in the usual order. */
typedef struct gemm_job {
    gemm_shape  s;
    const void *a, *b;
    void       *c;
    float      *scratch;
    size_t      scratch_floats;   /* per thread */
    int64_t     step;             /* columns per task */
} gemm_job;

static void gemm_task(void *ctx, int t) {
    const gemm_job *job = ctx;
    int64_t j_begin = (int64_t)t * job->step;
    if (j_begin >= job->s.N) return;
    int64_t j_end = job->s.N - j_begin < job->step ? job->s.N : j_begin + job->step;
    gemm_columns(&job->s, job->a, job->b, job->c, j_begin, j_end, job->scratch + (size_t)t * job->scratch_floats);
}

/* Threads worth using: 64 columns each at least. */
static int gemm_threads(const gemm_shape *s) {
    double flops = 2.0 * (double)s->M * (double)s->K * (double)s->N;
    return kiln_parallel_threads(flops, KILN_CPU_GEMM_MIN_FLOPS_PER_THREAD, s->N / 64);
}

/* How this layer's matrices are multiplied: the AVX2 path, or the portable
 * one in column panels (job), on `threads` threads. */
typedef struct matmul_run {
    gemm_job job;     /* the portable path; job.scratch is both paths' scratch */
    int      blas, avx2, threads, tasks;
} matmul_run;

static void run_matrix(matmul_run *r, const void *a, const void *b, void *c) {
    if (r->blas) {
        const gemm_shape *s = &r->job.s;
        kiln_cpu_blas_sgemm(s->M, s->N, s->K, s->ta, s->tb, a, b, c);
        return;
    }
    if (r->avx2) {
        const gemm_shape *s = &r->job.s;
        kiln_cpu_gemm_avx2(s->dt, s->M, s->K, s->N, s->ta, s->tb, a, b, c, r->job.scratch, r->threads);
        return;
    }
    r->job.a = a;
    r->job.b = b;
    r->job.c = c;
    kiln_parallel_run(r->tasks, r->threads, gemm_task, &r->job);
}

/* Step the batch index idx (odometer over out's nb batch axes) and the
 * matching matrix offsets of a and b (strides sa, sb; 0 on broadcast axes). */
static void next_batch(int nb, const int64_t *dims, const int64_t *sa, const int64_t *sb, int64_t *idx, int64_t *oa,
                       int64_t *ob) {
    for (int ax = nb - 1; ax >= 0; ax--) {
        *oa += sa[ax];
        *ob += sb[ax];
        if (++idx[ax] < dims[ax]) break;
        *oa -= sa[ax] * dims[ax];
        *ob -= sb[ax] * dims[ax];
        idx[ax] = 0;
    }
}

static int overlaps(const void *p, size_t pn, const void *q, size_t qn) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return pn && qn && a < b + qn && b < a + pn;
}

/* The layer's transpose flags (op_table.c's canonical form: none, or two
 * 0/1 values); false for any other list. */
static bool matmul_flags(const kiln_layer_launch *l, int *ta, int *tb) {
    *ta = *tb = 0;
    if (l->attr_count == 0) return true;
    if (l->attr_count != 2 || !l->attrs || (uint64_t)l->attrs[0] > 1 || (uint64_t)l->attrs[1] > 1) return false;
    *ta = (int)l->attrs[0];
    *tb = (int)l->attrs[1];
    return true;
}

bool kiln_cpu_matmul_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    int ta, tb;
    return kiln_dtype_is_float(dt) && l->inputs[0].dtype == dt && l->inputs[1].dtype == dt && matmul_flags(l, &ta, &tb);
}

kiln_status kiln_cpu_matmul(const kiln_layer_launch *l) {
    const kiln_tensor_desc *a = &l->inputs[0], *b = &l->inputs[1], *out = &l->outputs[0];
    kiln_dtype dt = out->dtype;
    if (!kiln_dtype_is_float(dt) || a->dtype != dt || b->dtype != dt) {
        const char *an = kiln_dtype_name(a->dtype), *bn = kiln_dtype_name(b->dtype), *on = kiln_dtype_name(dt);
        return kiln_error(KILN_ERROR_UNSUPPORTED,
                          "cpu backend: matmul of %s x %s into %s is not supported (float32, float16, bfloat16 only)",
                          an ? an : "unknown", bn ? bn : "unknown", on ? on : "unknown");
    }
    int ta, tb;
    if (!matmul_flags(l, &ta, &tb))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: matmul: %d attributes are not transpose_a, "
                          "transpose_b (none, or two of 0/1)", (int)l->attr_count);
    int ra = a->rank, rb = b->rank, ro = out->rank;
    if (ra < 2 || rb < 2 || ro != (ra > rb ? ra : rb) || ro > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: matmul of ranks %d x %d into rank %d", ra, rb, ro);
    /* The product's M, K, N; a transposed operand has its last two axes swapped. */
    const int64_t M = a->dims[ra - 2 + ta], K = a->dims[ra - 1 - ta];
    const int64_t Kb = b->dims[rb - 2 + tb], N = b->dims[rb - 1 - tb];
    if (Kb != K || out->dims[ro - 2] != M || out->dims[ro - 1] != N)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "cpu backend: matmul of [%lld, %lld]%s x [%lld, %lld]%s into [%lld, %lld]", (long long)M,
                          (long long)K, ta ? " (a transposed)" : "", (long long)Kb, (long long)N,
                          tb ? " (b transposed)" : "", (long long)out->dims[ro - 2], (long long)out->dims[ro - 1]);

    /* Batch strides, in matrices, of a and b aligned to out's batch axes. */
    const int nb = ro - 2;
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK], batches = 1;
    int64_t stride_a = 1, stride_b = 1;
    for (int i = nb - 1; i >= 0; i--) {
        int ia = i - (ro - ra), ib = i - (ro - rb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1, d = out->dims[i];
        if ((da != 1 && da != d) || (db != 1 && db != d))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                              "cpu backend: matmul batch axis %d: %lld and %lld do not broadcast to %lld", i,
                              (long long)da, (long long)db, (long long)d);
        sa[i] = da == 1 ? 0 : stride_a;
        sb[i] = db == 1 ? 0 : stride_b;
        stride_a *= da;
        stride_b *= db;
        batches *= d;
    }
    if (batches == 0 || M == 0 || N == 0) return KILN_OK;

    size_t es = kiln_dtype_size(dt);
    size_t out_bytes = (size_t)(batches * M * N) * es;
    if (overlaps(out->data, out_bytes, a->data, (size_t)(stride_a * M * K) * es) ||
        overlaps(out->data, out_bytes, b->data, (size_t)(stride_b * K * N) * es))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: matmul output overlaps an input");

    const char *pa = (const char *)a->data, *pb = (const char *)b->data;
    char *po = (char *)out->data;
    const size_t mat_a = (size_t)(M * K) * es, mat_b = (size_t)(K * N) * es, mat_o = (size_t)(M * N) * es;
    matmul_run r = {.job = {.s = {.dt = dt, .M = M, .K = K, .N = N, .ta = ta, .tb = tb}}};
    size_t need = 0;
    /* float32 through the system BLAS when there is one (cpu_blas.h); its
     * integers must hold the sizes, and K = 0 is left to the own kernel
     * (it writes the zeros). */
    r.blas = dt == KILN_FLOAT32 && K > 0 && kiln_cpu_blas_name() && M <= INT32_MAX && N <= INT32_MAX &&
             K <= INT32_MAX;
    r.avx2 = !r.blas && K > 0 && kiln_cpu_gemm_avx2_usable(M);
    if (r.blas) {
        r.threads = 1;
    } else if (r.avx2) {
        r.threads = kiln_cpu_gemm_avx2_threads(M, K, N);
        need = kiln_cpu_gemm_avx2_scratch_floats(dt, M, K, N) * (size_t)r.threads;
    } else {
        r.threads = gemm_threads(&r.job.s);
        r.job.scratch_floats = gemm_scratch_floats(&r.job.s);
        r.job.step = (N + r.threads - 1) / r.threads;
        r.job.step = (r.job.step + 15) / 16 * 16;   /* whole 64-byte lines of float32 sums per thread */
        r.tasks = (int)((N + r.job.step - 1) / r.job.step);
        need = r.job.scratch_floats * (size_t)r.threads;
    }
    float stack[STACK_FLOATS];
    float *heap = NULL;
    if (need > STACK_FLOATS && !(heap = kiln_malloc(need * sizeof(float))))
        return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: matmul: cannot allocate %zu bytes of scratch",
                          need * sizeof(float));
    r.job.scratch = heap ? heap : stack;

    int64_t idx[KILN_MAX_RANK] = {0}, oa = 0, ob = 0;
    for (int64_t t = 0; t < batches; t++) {
        run_matrix(&r, pa + (size_t)oa * mat_a, pb + (size_t)ob * mat_b, po + (size_t)t * mat_o);
        next_batch(nb, out->dims, sa, sb, idx, &oa, &ob);
    }
    kiln_free(heap);
    return KILN_OK;
}
