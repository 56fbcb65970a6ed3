/* matmul.cu — a [..., M, K] x b [..., K, N] through cuBLAS, batch dims
 * broadcast as numpy's matmul does, f32/f16/bf16 with float accumulation;
 * either operand may be stored transposed (the layer's transpose_a,
 * transpose_b: a [..., K, M], b [..., N, K]).
 *
 * cuBLAS is column-major; a row-major C = A B is the column-major
 * C^T = B^T A^T, so we pass b first with leading dimension N, then a with K,
 * and C gets leading dimension N: no transposes are needed.  A transposed
 * operand is the one case that needs one: b stored [N, K] reads column-major
 * as a K x N matrix (leading dimension K) and goes in with CUBLAS_OP_T; a
 * stored [K, M] likewise, with leading dimension M.
 *
 * Batches: the broadcast batch axes are reduced like the elementwise ones
 * (size-1 axes dropped, axes contiguous in a, b and out merged).  The
 * innermost reduced axis is one cublasGemmStridedBatchedEx (stride 0 for an
 * operand that broadcasts); outer axes, which only an unusual broadcast
 * leaves, become a loop of such calls.  When b is shared by every batch and
 * a's batches are contiguous (x @ W, the common case), the batch folds into
 * M and the whole product is one large GEMM (not when a is transposed: its
 * rows are then strided within each batch).
 *
 * float32 is computed in true float32 (CUBLAS_COMPUTE_32F, no TF32), so
 * results track the CPU backend; f16/bf16 accumulate in float.
 *
 * One case skips cuBLAS: one row against one weight stored transposed
 * (x @ W.T, nn.Linear's layout) goes to gemv.cu, which is faster at the
 * bandwidth-bound shapes of a language model's decode step.
 *
 * Other kernels reach cuBLAS through kiln_cuda_gemm_run (at the bottom;
 * cuda_ops.h): the same handles, lock and compute types (conv.cu's 1x1
 * convolutions).
 *
 * Handles: one cuBLAS handle per (device, stream), created on first use and
 * kept.  A handle owns a workspace that its kernels use; sharing one handle
 * between streams lets two streams' GEMMs use that workspace at once, so a
 * handle stays bound to its stream.  A mutex guards the table and the calls
 * (enqueueing a GEMM takes microseconds).  A device keeps at most
 * KC_BLAS_PER_DEVICE handles; the least recently used goes when a new stream
 * arrives (cublasDestroy frees its workspace with cudaFree, which waits for
 * the work still using it). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cublas_v2.h>

#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

#define KC_BLAS_DEVICES    64
#define KC_BLAS_PER_DEVICE 8

typedef struct kc_blas_slot {
    cublasHandle_t handle;     /* NULL: empty */
    cudaStream_t   stream;
    uint64_t       last_use;
} kc_blas_slot;

static kc_blas_slot    kc_blas[KC_BLAS_DEVICES][KC_BLAS_PER_DEVICE];
static uint64_t        kc_blas_clock;
static pthread_mutex_t kc_blas_lock = PTHREAD_MUTEX_INITIALIZER;

static kiln_status kc_blas_check(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return KILN_OK;
    return kiln_cuda_fail(KILN_ERROR_BACKEND, "cuda: %s: %s", what, cublasGetStatusString(st));
}

/* The handle bound to (device, stream); the caller holds kc_blas_lock and
 * has made `device` current. */
static kiln_status kc_blas_handle(int32_t device, cudaStream_t stream, cublasHandle_t *out) {
    if (device < 0 || device >= KC_BLAS_DEVICES)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: matmul: device %d (at most %d devices)", (int)device,
                              KC_BLAS_DEVICES);
    kc_blas_slot *slots = kc_blas[device], *empty = NULL, *oldest = NULL;
    for (int i = 0; i < KC_BLAS_PER_DEVICE; i++) {
        kc_blas_slot *s = &slots[i];
        if (!s->handle) {
            if (!empty) empty = s;
        } else if (s->stream == stream) {
            s->last_use = ++kc_blas_clock;
            *out = s->handle;
            return KILN_OK;
        } else if (!oldest || s->last_use < oldest->last_use) {
            oldest = s;
        }
    }
    kc_blas_slot *pick = empty ? empty : oldest;
    if (pick->handle) {                       /* table full: retire the least recently used */
        cublasDestroy(pick->handle);
        pick->handle = NULL;
    }
    cublasHandle_t h;
    kiln_status st = kc_blas_check(cublasCreate(&h), "cublasCreate");
    if (st != KILN_OK) return st;
    st = kc_blas_check(cublasSetStream(h, stream), "cublasSetStream");
    if (st != KILN_OK) {
        cublasDestroy(h);
        return st;
    }
    pick->handle = h;
    pick->stream = stream;
    pick->last_use = ++kc_blas_clock;
    *out = h;
    return KILN_OK;
}

/* Reduced batch axes; axis 0 is the innermost.  Strides count matrices. */
typedef struct kc_batch {
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK], sc[KILN_MAX_RANK];
} kc_batch;

/* Strides (in matrices) of an operand's batch axes right-aligned against
 * the output's nb batch axes: 0 where it broadcasts. */
static void kc_batch_strides(const int64_t *dims, int32_t n, int32_t nb, int64_t *strides) {
    int64_t s = 1;
    for (int32_t i = nb - 1; i >= 0; i--) {
        int32_t j = i - (nb - n);
        if (j < 0 || dims[j] == 1) {
            strides[i] = 0;
        } else {
            strides[i] = s;
            s *= dims[j];
        }
    }
}

/* KILN_CUDA_GEMV=0 sends every product to cuBLAS (bench/bench_gpu_gemv.py
 * measures both); read once. */
static bool kc_gemv_enabled(void) {
    static int enabled = -1;
    if (enabled < 0) {
        const char *e = getenv("KILN_CUDA_GEMV");
        enabled = !(e && strcmp(e, "0") == 0);
    }
    return enabled != 0;
}

static int kc_fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }

/* The layer's transpose flags: no attributes, or two of 0/1 (op_table.c's
 * canonical form); false for any other list. */
static bool kc_matmul_flags(const kiln_layer_launch *l, int *ta, int *tb) {
    *ta = *tb = 0;
    if (l->attr_count == 0) return true;
    if (l->attr_count != 2 || !l->attrs || (uint64_t)l->attrs[0] > 1 || (uint64_t)l->attrs[1] > 1) return false;
    *ta = (int)l->attrs[0];
    *tb = (int)l->attrs[1];
    return true;
}

bool kiln_cuda_matmul_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    int ta, tb;
    return (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16) && l->inputs[0].dtype == dt &&
           l->inputs[1].dtype == dt && kc_matmul_flags(l, &ta, &tb);
}

kiln_status kiln_cuda_matmul_run(int32_t device, const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *a = &l->inputs[0], *b = &l->inputs[1], *c = &l->outputs[0];
    if (a->dtype != c->dtype || b->dtype != c->dtype)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: matmul: a, b and the output must share one dtype");
    cudaDataType_t type;
    switch (c->dtype) {
    case KILN_FLOAT32:  type = CUDA_R_32F; break;
    case KILN_FLOAT16:  type = CUDA_R_16F; break;
    case KILN_BFLOAT16: type = CUDA_R_16BF; break;
    default:            return kiln_cuda_unsupported("matmul", c->dtype);
    }
    int ta, tb;
    if (!kc_matmul_flags(l, &ta, &tb))
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: matmul: %d attributes are not transpose_a, "
                              "transpose_b (none, or two of 0/1)", (int)l->attr_count);
    if (a->rank < 1 || b->rank < 1)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: matmul: operands need rank >= 1");
    if ((ta && a->rank < 2) || (tb && b->rank < 2))
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: matmul: a transposed operand needs rank >= 2");
    size_t esize = kiln_cuda_dtype_size(c->dtype);

    /* A rank-1 a is one row [1, K]; a rank-1 b is one column [K, 1]; a
     * transposed operand has its last two axes swapped. */
    int32_t na = a->rank >= 2 ? a->rank - 2 : 0, nbb = b->rank >= 2 ? b->rank - 2 : 0;
    int64_t M = a->rank >= 2 ? a->dims[a->rank - 2 + ta] : 1, K = a->dims[a->rank - 1 - ta];
    int64_t N = b->rank >= 2 ? b->dims[b->rank - 1 - tb] : 1;
    int32_t nb = na > nbb ? na : nbb;       /* the output's batch axes lead its dims */
    if (nb > c->rank) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: matmul: output rank too small");

    if (kiln_cuda_numel(c) == 0) return KILN_OK;   /* M or N is 0 (cuBLAS would refuse a leading dimension of 0) */
    if (K == 0)   /* an empty sum: zeros */
        return kiln_cuda_check(cudaMemsetAsync(c->data, 0, (size_t)kiln_cuda_numel(c) * esize, stream),
                               "matmul: cudaMemsetAsync");

    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    kc_batch_strides(a->dims, na, nb, sa);
    kc_batch_strides(b->dims, nbb, nb, sb);
    kc_batch bt;
    bt.rank = 0;
    int64_t sc = 1;
    for (int32_t i = nb - 1; i >= 0; i--) {
        int64_t d = c->dims[i];
        if (d != 1) {
            int32_t k = bt.rank - 1;
            if (k >= 0 && sa[i] == bt.sa[k] * bt.dims[k] && sb[i] == bt.sb[k] * bt.dims[k] &&
                sc == bt.sc[k] * bt.dims[k]) {
                bt.dims[k] *= d;
            } else {
                bt.dims[bt.rank] = d;
                bt.sa[bt.rank] = sa[i];
                bt.sb[bt.rank] = sb[i];
                bt.sc[bt.rank] = sc;
                bt.rank++;
            }
        }
        sc *= d;
    }

    int64_t inner = bt.rank > 0 ? bt.dims[0] : 1;
    int64_t inner_sa = bt.rank > 0 ? bt.sa[0] : 0, inner_sb = bt.rank > 0 ? bt.sb[0] : 0;
    int64_t inner_sc = bt.rank > 0 ? bt.sc[0] : 0;
    int64_t gemm_m = M;
    if (!ta && bt.rank == 1 && inner_sb == 0 && inner_sa == 1 && inner_sc == 1 && kc_fits_int(M * inner)) {
        gemm_m = M * inner;                    /* x @ W: fold the batch into the rows */
        inner = 1;
    }
    if (!kc_fits_int(gemm_m) || !kc_fits_int(N) || !kc_fits_int(K) || !kc_fits_int(inner))
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED,
                              "cuda: matmul: M=%lld N=%lld K=%lld batch=%lld exceed cuBLAS's 32-bit sizes",
                              (long long)gemm_m, (long long)N, (long long)K, (long long)inner);
    int64_t outer = 1;
    for (int32_t i = 1; i < bt.rank; i++) outer *= bt.dims[i];

    /* One row against one transposed weight (a batch-1 decode step's
     * projections, x @ W.T): gemv.cu's kernel reads W faster than cuBLAS. */
    if (tb && !ta && inner == 1 && outer == 1 && kc_gemv_enabled() &&
        kiln_cuda_gemv_nt_fits(c->dtype, a->data, b->data, c->data, gemm_m, N, K))
        return kiln_cuda_gemv_nt(c->dtype, a->data, b->data, c->data, N, K, stream);

    const float alpha = 1.0f, beta = 0.0f;
    /* Column-major operands (see the top): b, then a, each as stored. */
    const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int ldb = (int)(tb ? K : N), lda = (int)(ta ? M : K);
    const long long stride_a = inner_sa * M * K, stride_b = inner_sb * K * N, stride_c = inner_sc * M * N;
    pthread_mutex_lock(&kc_blas_lock);
    cublasHandle_t h = NULL;
    kiln_status st = kc_blas_handle(device, stream, &h);
    for (int64_t o = 0; st == KILN_OK && o < outer; o++) {
        /* Offsets (in matrices) of this outer batch: walk the outer axes. */
        int64_t rem = o, oa = 0, ob = 0, oc = 0;
        for (int32_t i = 1; i < bt.rank; i++) {
            int64_t x = rem % bt.dims[i];
            rem /= bt.dims[i];
            oa += x * bt.sa[i];
            ob += x * bt.sb[i];
            oc += x * bt.sc[i];
        }
        const char *pa = (const char *)a->data + (size_t)(oa * M * K) * esize;
        const char *pb = (const char *)b->data + (size_t)(ob * K * N) * esize;
        char *pc = (char *)c->data + (size_t)(oc * M * N) * esize;
        st = kc_blas_check(cublasGemmStridedBatchedEx(h, op_b, op_a, (int)N, (int)gemm_m, (int)K,
                                                      &alpha, pb, type, ldb, stride_b, pa, type, lda,
                                                      stride_a, &beta, pc, type, (int)N, stride_c, (int)inner,
                                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "cublasGemmStridedBatchedEx");
    }
    pthread_mutex_unlock(&kc_blas_lock);
    return st;
}

/* kiln_cuda_gemm_run (cuda_ops.h): the row-major product as the column-major
 * C^T = B^T A^T (see the top), on the same handles, lock and compute types
 * as the matmul layer, so it behaves the same under CUDA graph capture. */
kiln_status kiln_cuda_gemm_run(int32_t device, const kiln_cuda_gemm *g, const void *a, const void *b, void *c,
                               cudaStream_t stream) {
    cudaDataType_t type;
    switch (g->dtype) {
    case KILN_FLOAT32:  type = CUDA_R_32F; break;
    case KILN_FLOAT16:  type = CUDA_R_16F; break;
    case KILN_BFLOAT16: type = CUDA_R_16BF; break;
    default:            return kiln_cuda_unsupported("gemm", g->dtype);
    }
    if (!kc_fits_int(g->m) || !kc_fits_int(g->n) || !kc_fits_int(g->k) || !kc_fits_int(g->lda) ||
        !kc_fits_int(g->ldb) || !kc_fits_int(g->ldc) || !kc_fits_int(g->batch) || g->calls < 0)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED,
                              "cuda: gemm: M=%lld N=%lld K=%lld batch=%lld exceed cuBLAS's 32-bit sizes",
                              (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    if (g->m == 0 || g->n == 0 || g->batch == 0) return KILN_OK;
    const size_t esize = kiln_cuda_dtype_size(g->dtype);
    const float alpha = 1.0f, beta = g->beta;
    pthread_mutex_lock(&kc_blas_lock);
    cublasHandle_t h = NULL;
    kiln_status st = kc_blas_handle(device, stream, &h);
    for (int64_t i = 0; st == KILN_OK && i < g->calls; i++) {
        const char *pa = (const char *)a + (size_t)(i * g->step_a) * esize;
        const char *pb = (const char *)b + (size_t)(i * g->step_b) * esize;
        char *pc = (char *)c + (size_t)(i * g->step_c) * esize;
        st = kc_blas_check(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)g->n, (int)g->m, (int)g->k,
                                                      &alpha, pb, type, (int)g->ldb, (long long)g->stride_b, pa,
                                                      type, (int)g->lda, (long long)g->stride_a, &beta, pc, type,
                                                      (int)g->ldc, (long long)g->stride_c, (int)g->batch,
                                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "cublasGemmStridedBatchedEx");
    }
    pthread_mutex_unlock(&kc_blas_lock);
    return st;
}
