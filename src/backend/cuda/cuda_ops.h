/* cuda_ops.h — what the CUDA backend's table (cuda_backend.c) and its kernels
 * (one .cu file per layer op) share.
 *
 * Everything here is private to libkiln-cuda.so: the module is compiled with
 * hidden visibility, and only kiln_backend_cuda_init is exported.  Each
 * kiln_cuda_<op>_run launches on `stream` and returns at once (no
 * synchronization); tensors are contiguous row-major and the runtime has
 * already checked their shapes, so the functions check only what the
 * runtime cannot know (dtype combinations, sizes a library cannot take). */
#ifndef KILN_CUDA_OPS_H
#define KILN_CUDA_OPS_H

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The host's error setter, recorded by kiln_backend_cuda_init. */
extern const kiln_backend_host *kiln_cuda_host;

/* KILN_OK for cudaSuccess; otherwise clears CUDA's last (non-sticky) error
 * and reports KILN_ERROR_BACKEND "cuda: <what>: <CUDA's message>". */
kiln_status kiln_cuda_check(cudaError_t err, const char *what);
/* Check the launch that just happened (cudaGetLastError). */
kiln_status kiln_cuda_check_launch(const char *kernel);
/* KILN_ERROR_UNSUPPORTED "cuda: <op> does not support <dtype>". */
kiln_status kiln_cuda_unsupported(const char *op, kiln_dtype dtype);
/* Any other failure, formatted. */
kiln_status kiln_cuda_fail(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Elements of a tensor (product of dims; 1 for rank 0). */
int64_t     kiln_cuda_numel(const kiln_tensor_desc *t);
/* Blocks for a grid-stride loop over n items with `threads` per block:
 * enough to fill the device, never more than the items need. */
unsigned    kiln_cuda_grid(int64_t n, int threads);

/* Collective layers and communicators over NCCL, loaded at run time
 * (collective.c; the backend table's comm_* entries). */
kiln_status kiln_cuda_collective_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_collective_supports(const kiln_layer_launch *l);
kiln_status kiln_cuda_comm_available(void);
kiln_status kiln_cuda_comm_unique_id(uint8_t *id);
kiln_status kiln_cuda_comm_create(int32_t device, int32_t rank, int32_t world_size, const uint8_t *id,
                                  double timeout_s, void **comm);
kiln_status kiln_cuda_comm_synchronize(int32_t device, void *comm, void *stream, double timeout_s);
void        kiln_cuda_comm_free(int32_t device, void *comm);

/* Each op's launch, and whether it takes the launch's op and dtypes (the
 * backend's supports_op; shapes are not looked at). */
kiln_status kiln_cuda_cast_run  (const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_cast_supports  (const kiln_layer_launch *l);
kiln_status kiln_cuda_binary_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_binary_supports(const kiln_layer_launch *l);
kiln_status kiln_cuda_unary_run (const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_unary_supports (const kiln_layer_launch *l);
kiln_status kiln_cuda_gather_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_gather_supports(const kiln_layer_launch *l);
/* TRANSPOSE, SLICE, EXPAND, CONCAT (copy_view.cu); REDUCE; SOFTMAX; the norms; WHERE. */
kiln_status kiln_cuda_copy_view_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_copy_view_supports(const kiln_layer_launch *l);
kiln_status kiln_cuda_reduce_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_reduce_supports(const kiln_layer_launch *l);
kiln_status kiln_cuda_softmax_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_softmax_supports(const kiln_layer_launch *l);
kiln_status kiln_cuda_norm_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_norm_supports(const kiln_layer_launch *l);
kiln_status kiln_cuda_where_run(const kiln_layer_launch *l, cudaStream_t stream);
kiln_status kiln_cuda_compare_run(const kiln_layer_launch *l, cudaStream_t stream);
kiln_status kiln_cuda_gather_elements_run(const kiln_layer_launch *l, cudaStream_t stream);
kiln_status kiln_cuda_cumsum_run(const kiln_layer_launch *l, cudaStream_t stream);
kiln_status kiln_cuda_attention_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_attention_supports(const kiln_layer_launch *l);
bool        kiln_cuda_cumsum_supports(const kiln_layer_launch *l);
bool        kiln_cuda_gather_elements_supports(const kiln_layer_launch *l);
/* SCATTER_ND and SCATTER_ELEMENTS (scatter.cu). */
kiln_status kiln_cuda_scatter_nd_run(const kiln_layer_launch *l, cudaStream_t stream);
kiln_status kiln_cuda_scatter_elements_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_scatter_supports(const kiln_layer_launch *l);
bool        kiln_cuda_compare_supports(const kiln_layer_launch *l);
bool        kiln_cuda_where_supports(const kiln_layer_launch *l);
/* TOPK (topk.cu): outputs values and int64 indices; every size runs (rows up to 2048 sorted in shared
 * memory, longer ones in k block-wide passes). */
kiln_status kiln_cuda_topk_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_topk_supports(const kiln_layer_launch *l);
/* ROTARY_EMBEDDING (rotary.cu): x, cos_cache, sin_cache, optional position_ids (a bad one reads zero rows). */
kiln_status kiln_cuda_rotary_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_rotary_supports(const kiln_layer_launch *l);
/* CONV (conv.cu): x, w, optional bias; float32 sums.  With a workspace,
 * im2col into it + kiln_cuda_gemm_run; 1x1 stride-1 convolutions straight
 * to kiln_cuda_gemm_run; others to an implicit-GEMM kernel or the direct one
 * (the file's top says which when); the device picks the cuBLAS handle. */
kiln_status kiln_cuda_conv_run(int32_t device, const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_conv_supports(const kiln_layer_launch *l);
/* The workspace bytes a CONV launch needs (shapes, dtypes and attrs; no
 * data): the im2col path's col matrix for a chunk of images, 0 when the
 * launch would take another path.  The run recomputes the same plan and
 * refuses a workspace smaller than this; without one (size 0) it takes the
 * paths that need none. */
uint64_t    kiln_cuda_conv_workspace(const kiln_layer_launch *l);
/* CONV_TRANSPOSE (conv.cu): as CONV, its supports too. */
kiln_status kiln_cuda_conv_transpose_run(const kiln_layer_launch *l, cudaStream_t stream);
/* POOL (pool.cu): x; subop kiln_pool_mode; one thread per output, float32 arithmetic. */
kiln_status kiln_cuda_pool_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_pool_supports(const kiln_layer_launch *l);
/* RESIZE (resize.cu): x; one thread per output element, ops/resize_view.h's taps, float32 arithmetic;
 * nearest copies elements of any dtype. */
kiln_status kiln_cuda_resize_run(const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_resize_supports(const kiln_layer_launch *l);
/* cuBLAS handles are cached per (device, stream) and never destroyed: at
 * process exit the CUDA runtime may already be gone when a destructor would
 * run (PyTorch leaks its handles for the same reason). */
kiln_status kiln_cuda_matmul_run(int32_t device, const kiln_layer_launch *l, cudaStream_t stream);
bool        kiln_cuda_matmul_supports(const kiln_layer_launch *l);
/* A row-major product for other kernels (matmul.cu; conv.cu's 1x1 path),
 * on the matmul layer's cuBLAS handles and compute types (float32 in true
 * float32, halves accumulated in float): `calls` strided-batched GEMMs,
 *   C_i,b [m, n] = A_i,b [m, k] · B_i,b [k, n]  (+ beta · C_i,b)
 * for i < calls, b < batch, where X_i,b starts at X + i·step_x + b·stride_x
 * (elements) and rows are ld_x apart.  A stride of 0 shares an operand. */
typedef struct kiln_cuda_gemm {
    kiln_dtype dtype;                               /* float32, float16 or bfloat16: A, B and C */
    int64_t    m, n, k;
    int64_t    lda, ldb, ldc;                       /* row pitches, elements */
    int64_t    batch, stride_a, stride_b, stride_c; /* one cublasGemmStridedBatchedEx */
    int64_t    calls, step_a, step_b, step_c;       /* how many, and where each starts */
    float      beta;                                /* 0: C is overwritten; 1: the product adds to C */
} kiln_cuda_gemm;
kiln_status kiln_cuda_gemm_run(int32_t device, const kiln_cuda_gemm *g, const void *a, const void *b, void *c,
                               cudaStream_t stream);
/* The one-row product against a transposed weight (gemv.cu), which the
 * matmul takes instead of cuBLAS when it fits: y [1, N] = x [1, K] · w [N, K]ᵀ,
 * all three contiguous and 16-byte aligned, K a whole number of 16-byte vectors. */
bool        kiln_cuda_gemv_nt_fits(kiln_dtype dt, const void *x, const void *w, const void *y, int64_t M, int64_t N,
                                   int64_t K);
kiln_status kiln_cuda_gemv_nt(kiln_dtype dt, const void *x, const void *w, void *y, int64_t N, int64_t K,
                              cudaStream_t stream);

/* Element size, local to this module: libkiln-cuda.so must not call into
 * libkiln (Python loads libkiln with RTLD_LOCAL, so its symbols are not
 * visible to modules it dlopens). */
static inline size_t kiln_cuda_dtype_size(kiln_dtype t) {
    switch (t) {
    case KILN_FLOAT32: case KILN_INT32: return 4;
    case KILN_FLOAT16: case KILN_BFLOAT16: return 2;
    case KILN_INT8: case KILN_UINT8: case KILN_BOOL: return 1;
    case KILN_INT64: return 8;
    default: return 0;
    }
}

/* CUDA graphs (cuda_graph.c). */
kiln_status kiln_cuda_capture_begin(int32_t device, void *stream);
kiln_status kiln_cuda_capture_end(int32_t device, void *stream, void **graph);
kiln_status kiln_cuda_graph_launch(int32_t device, void *graph, void *stream);
void        kiln_cuda_graph_free(int32_t device, void *graph);

/* Compiled kernels through the driver API (kernel_launch.c). */
kiln_status kiln_cuda_kernel_load(int32_t device, const void *image, size_t size, const char *name,
                                  uint32_t shared, void **kernel);
kiln_status kiln_cuda_kernel_launch(int32_t device, void *kernel, const uint32_t grid[3], const uint32_t block[3],
                                    uint32_t shared, void **params, void *stream);
void        kiln_cuda_kernel_unload(int32_t device, void *kernel);

#ifdef __cplusplus
}
#endif

#endif
