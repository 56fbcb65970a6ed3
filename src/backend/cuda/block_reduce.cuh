/* block_reduce.cuh — reductions across one thread block (KC_THREADS threads),
 * for the kernels that give each output row a block (reduce, softmax, norm).
 * Every thread of the block must call them; all get the result.  The block
 * has a power-of-two number of warps (KC_THREADS). */
#ifndef KILN_CUDA_BLOCK_REDUCE_CUH
#define KILN_CUDA_BLOCK_REDUCE_CUH

#include "backend/cuda/cuda_dtype.cuh"

struct kc_sum_op { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };
struct kc_prod_op { template <typename T> __device__ T operator()(T a, T b) const { return a * b; } };
/* max/min that let NaN win, as numpy's. */
struct kc_max_op {
    __device__ float operator()(float a, float b) const { return (a != a || a > b) ? a : b; }
    __device__ int64_t operator()(int64_t a, int64_t b) const { return a > b ? a : b; }
};
struct kc_min_op {
    __device__ float operator()(float a, float b) const { return (a != a || a < b) ? a : b; }
    __device__ int64_t operator()(int64_t a, int64_t b) const { return a < b ? a : b; }
};

template <typename T, typename Op>
__device__ T kc_block_reduce(T v, Op op) {
    __shared__ T warp_results[KC_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
    __syncthreads();   /* warp_results may still be read by a previous call */
    if (lane == 0) warp_results[warp] = v;
    __syncthreads();
    if (warp == 0) {
        /* A tree over the first `warps` lanes (a power of two): lane 0's
         * result reads only lanes below `warps`, the others are don't-cares. */
        const int warps = (int)(blockDim.x >> 5);
        v = warp_results[lane < warps ? lane : 0];
        for (int off = warps / 2; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
        if (lane == 0) warp_results[0] = v;
    }
    __syncthreads();
    return warp_results[0];
}

#endif
