/* gemv.cu — the matmul of a few rows against a transposed weight,
 * y [M, N] = x [M, K] · w [N, K]ᵀ with M <= KC_GEMV_MAX_M: the shape of every
 * projection of a language model's decode step (M = the batch, w a
 * weight stored as nn.Linear keeps it, one row per output).
 *
 * Why not cuBLAS: at M = 1 a product is a pass over w, bound by memory
 * bandwidth, and a decode step is a hundred such passes of a few MiB each.
 * cuBLAS's kernels for these shapes reach about half the copy bandwidth on
 * an H200 (docs/performance.md); this one gives each row of w to one warp,
 * whose lanes read the row in 16-byte vectors, several in flight per lane,
 * and sum their products with shuffles: every byte of w is read once, fully
 * coalesced, with no split-K workspace or second launch.  x (M·K elements,
 * a few KiB) is read by every warp through the L1 cache.
 *
 * Sums are float32 whatever the storage type, rounded once at the end, as
 * the cuBLAS path computes them (CUBLAS_COMPUTE_32F); the order of the sum
 * differs, so results agree with cuBLAS within float rounding, not bit for
 * bit. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

#define KC_GEMV_WARPS  8     /* warps per block: one output column (row of w) each */
#define KC_GEMV_UNROLL 4     /* 16-byte vectors of w in flight per lane */

template <typename T, int M>
__global__ void kc_gemv_nt_kernel(const T *__restrict__ x, const T *__restrict__ w, T *__restrict__ y, int64_t N,
                                  int64_t K) {
    typedef kc_vec<T> V;
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * KC_GEMV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;                       /* a whole warp: no shuffle below misses a lane */
    const int64_t vecs = K / V::N;
    const V *row = reinterpret_cast<const V *>(w + n * K);
    const V *xv = reinterpret_cast<const V *>(x);
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.0f;

    int64_t i = lane;
    /* Main loop: KC_GEMV_UNROLL loads of w issued before any is used. */
    for (; i + 32 * (KC_GEMV_UNROLL - 1) < vecs; i += 32 * KC_GEMV_UNROLL) {
        V wv[KC_GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < KC_GEMV_UNROLL; u++) wv[u] = row[i + 32 * u];
#pragma unroll
        for (int u = 0; u < KC_GEMV_UNROLL; u++) {
#pragma unroll
            for (int m = 0; m < M; m++) {
                V a = xv[m * vecs + i + 32 * u];
#pragma unroll
                for (int j = 0; j < V::N; j++) acc[m] += kc_to_f32(wv[u].v[j]) * kc_to_f32(a.v[j]);
            }
        }
    }
    for (; i < vecs; i += 32) {
        V wv = row[i];
#pragma unroll
        for (int m = 0; m < M; m++) {
            V a = xv[m * vecs + i];
#pragma unroll
            for (int j = 0; j < V::N; j++) acc[m] += kc_to_f32(wv.v[j]) * kc_to_f32(a.v[j]);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) {
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
    }
    if (lane < M) {
        float v = acc[0];
#pragma unroll
        for (int m = 1; m < M; m++)
            if (lane == m) v = acc[m];
        y[lane * N + n] = kc_from_f32<T>(v);
    }
}

template <typename T>
static cudaError_t kc_gemv_launch(const void *x, const void *w, void *y, int64_t M, int64_t N, int64_t K,
                                  cudaStream_t stream) {
    dim3 grid((unsigned)((N + KC_GEMV_WARPS - 1) / KC_GEMV_WARPS)), block(32 * KC_GEMV_WARPS);
    const T *xt = (const T *)x, *wt = (const T *)w;
    T *yt = (T *)y;
    switch (M) {
    case 1: kc_gemv_nt_kernel<T, 1><<<grid, block, 0, stream>>>(xt, wt, yt, N, K); break;
    case 2: kc_gemv_nt_kernel<T, 2><<<grid, block, 0, stream>>>(xt, wt, yt, N, K); break;
    case 3: kc_gemv_nt_kernel<T, 3><<<grid, block, 0, stream>>>(xt, wt, yt, N, K); break;
    case 4: kc_gemv_nt_kernel<T, 4><<<grid, block, 0, stream>>>(xt, wt, yt, N, K); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

bool kiln_cuda_gemv_nt_fits(kiln_dtype dt, const void *x, const void *w, const void *y, int64_t M, int64_t N,
                            int64_t K) {
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return false;
    int64_t per_vec = 16 / (int64_t)kiln_cuda_dtype_size(dt);
    /* Rows of w and x start on 16-byte boundaries only when K is a whole
     * number of vectors. */
    return M >= 1 && M <= KC_GEMV_MAX_M && N >= 1 && K >= per_vec && K % per_vec == 0 &&
           N <= (int64_t)0x7fffffff * KC_GEMV_WARPS && kc_aligned16(x, w, y);
}

kiln_status kiln_cuda_gemv_nt(kiln_dtype dt, const void *x, const void *w, void *y, int64_t M, int64_t N, int64_t K,
                              cudaStream_t stream) {
    cudaError_t e;
    switch (dt) {
    case KILN_FLOAT32:  e = kc_gemv_launch<float>(x, w, y, M, N, K, stream); break;
    case KILN_FLOAT16:  e = kc_gemv_launch<__half>(x, w, y, M, N, K, stream); break;
    case KILN_BFLOAT16: e = kc_gemv_launch<__nv_bfloat16>(x, w, y, M, N, K, stream); break;
    default:            return kiln_cuda_unsupported("matmul (gemv)", dt);
    }
    return kiln_cuda_check(e, "matmul: gemv launch");
}
