/* cuda_dtype.cuh — kiln dtypes on the device: storage types, conversion to
 * and from float, and the 16-byte vector the elementwise kernels move.
 *
 * f16 and bf16 are computed in float and rounded back to nearest even, like
 * the CPU backend (core/dtype.h), so both backends agree to the last bit
 * wherever float arithmetic itself agrees. */
#ifndef KILN_CUDA_DTYPE_CUH
#define KILN_CUDA_DTYPE_CUH

#include <stdint.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "kiln/kiln.h"

/* kiln's bool is one byte holding 0 or 1; a distinct type so that overloads
 * tell it from uint8.  Any nonzero byte reads as true. */
struct kc_bool { uint8_t v; };

__device__ __forceinline__ float kc_to_f32(float x)         { return x; }
__device__ __forceinline__ float kc_to_f32(__half x)        { return __half2float(x); }
__device__ __forceinline__ float kc_to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T kc_from_f32(float x);
template <> __device__ __forceinline__ float kc_from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half kc_from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 kc_from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

/* N elements of T in one aligned 16-byte load or store. */
template <typename T>
struct alignas(16) kc_vec {
    static constexpr int N = 16 / (int)sizeof(T);
    T v[N];
};

/* Index of this thread and the grid's stride in a grid-stride loop. */
__device__ __forceinline__ int64_t kc_thread_index(void) {
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t kc_grid_stride(void) {
    return (int64_t)gridDim.x * blockDim.x;
}

/* Whether every pointer is 16-byte aligned (vector loads allowed). */
static inline bool kc_aligned16(const void *a, const void *b, const void *c) {
    return (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15u) == 0;
}

#define KC_THREADS 256   /* a power of two (block_reduce.cuh relies on it) */

#endif
