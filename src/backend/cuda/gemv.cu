/* gemv.cu — one row against a transposed weight, y [1, N] = x [1, K] · w [N, K]ᵀ:
 * the shape of every projection of a language model's decode step at batch
 * 1 (w a weight stored as nn.Linear keeps it, one row per output).
 *
 * Why not cuBLAS: such a product is one pass over w, bound by memory
 * bandwidth.  This kernel gives each row of w to one warp, whose lanes read
 * it in 16-byte vectors, several in flight per lane, and sum their products
 * with shuffles: every byte of w is read once, fully coalesced, with no
 * split-K workspace or second launch.  x (K elements, a few KiB) is read by
 * every warp through the L1 cache.  On an H200 it is 1.05-1.34x cuBLAS at
 * one row for the Llama 1B/8B projections (bench/bench_gpu_gemv.py,
 * docs/performance.md); at 2-4 rows this design (each warp redoing x per
 * row) lost to cuBLAS, so only one row comes here.
 *
 * Sums are float32 whatever the storage type, rounded once at the end, as
 * the cuBLAS path computes them (CUBLAS_COMPUTE_32F); the order of the sum
 * differs, so results agree with cuBLAS within float rounding, not bit for
 * bit. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

#define KC_GEMV_WARPS  8     /* warps per block: one output (row of w) each */
#define KC_GEMV_UNROLL 4     /* 16-byte vectors of w in flight per lane */

template <typename T>
__global__ void kc_gemv_nt_kernel(const T *__restrict__ x, const T *__restrict__ w, T *__restrict__ y, int64_t N,
                                  int64_t K) {
    typedef kc_vec<T> V;
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * KC_GEMV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;                       /* a whole warp: no shuffle below misses a lane */
    const int64_t vecs = K / V::N;
    const V *row = reinterpret_cast<const V *>(w + n * K);
    const V *xv = reinterpret_cast<const V *>(x);
    float acc = 0.0f;
    int64_t i = lane;
    /* Main loop: KC_GEMV_UNROLL loads of w issued before any is used. */
    for (; i + 32 * (KC_GEMV_UNROLL - 1) < vecs; i += 32 * KC_GEMV_UNROLL) {
        V wv[KC_GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < KC_GEMV_UNROLL; u++) wv[u] = row[i + 32 * u];
#pragma unroll
        for (int u = 0; u < KC_GEMV_UNROLL; u++) {
            V a = xv[i + 32 * u];
#pragma unroll
            for (int j = 0; j < V::N; j++) acc += kc_to_f32(wv[u].v[j]) * kc_to_f32(a.v[j]);
        }
    }
    for (; i < vecs; i += 32) {
        V wv = row[i], a = xv[i];
#pragma unroll
        for (int j = 0; j < V::N; j++) acc += kc_to_f32(wv.v[j]) * kc_to_f32(a.v[j]);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) y[n] = kc_from_f32<T>(acc);
}

template <typename T>
static cudaError_t kc_gemv_launch(const void *x, const void *w, void *y, int64_t N, int64_t K, cudaStream_t stream) {
    dim3 grid((unsigned)((N + KC_GEMV_WARPS - 1) / KC_GEMV_WARPS)), block(32 * KC_GEMV_WARPS);
    kc_gemv_nt_kernel<T><<<grid, block, 0, stream>>>((const T *)x, (const T *)w, (T *)y, N, K);
    return cudaGetLastError();
}

bool kiln_cuda_gemv_nt_fits(kiln_dtype dt, const void *x, const void *w, const void *y, int64_t M, int64_t N,
                            int64_t K) {
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return false;
    int64_t per_vec = 16 / (int64_t)kiln_cuda_dtype_size(dt);
    /* Rows of w and x start on 16-byte boundaries only when K is a whole
     * number of vectors. */
    return M == 1 && N >= 1 && K >= per_vec && K % per_vec == 0 &&
           N <= (int64_t)0x7fffffff * KC_GEMV_WARPS && kc_aligned16(x, w, y);
}

kiln_status kiln_cuda_gemv_nt(kiln_dtype dt, const void *x, const void *w, void *y, int64_t N, int64_t K,
                              cudaStream_t stream) {
    cudaError_t e;
    switch (dt) {
    case KILN_FLOAT32:  e = kc_gemv_launch<float>(x, w, y, N, K, stream); break;
    case KILN_FLOAT16:  e = kc_gemv_launch<__half>(x, w, y, N, K, stream); break;
    case KILN_BFLOAT16: e = kc_gemv_launch<__nv_bfloat16>(x, w, y, N, K, stream); break;
    default:            return kiln_cuda_unsupported("matmul (gemv)", dt);
    }
    return kiln_cuda_check(e, "matmul: gemv launch");
}
