/* cast.cu — CAST between any two of kiln's eight dtypes.
 *
 * Rules (the CPU backend's): float → integer truncates toward zero,
 * saturates at the integer's range and sends NaN to 0; anything → bool is
 * "nonzero" (NaN included); bool → anything is 0 or 1; integer → integer
 * wraps; f16/bf16 results are rounded to nearest even, from integers exactly
 * once (through a float rounded to odd, see kc_int_to_f32_odd).
 *
 * One kernel per source type with the destination chosen at run time: eight
 * kernels instead of sixty-four.  The switch is uniform across the grid, so
 * it costs a few instructions per element in a kernel bound by memory. */
#include <math.h>

#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

/* A source value in the widest form of its kind: float sources as float
 * (f16 and bf16 convert exactly), integer and bool sources as int64. */
struct kc_scalar {
    float   f;
    int64_t i;
    bool    is_float;
};

__device__ __forceinline__ kc_scalar kc_load(float x)         { return {x, 0, true}; }
__device__ __forceinline__ kc_scalar kc_load(__half x)        { return {kc_to_f32(x), 0, true}; }
__device__ __forceinline__ kc_scalar kc_load(__nv_bfloat16 x) { return {kc_to_f32(x), 0, true}; }
__device__ __forceinline__ kc_scalar kc_load(int8_t x)        { return {0.0f, x, false}; }
__device__ __forceinline__ kc_scalar kc_load(uint8_t x)       { return {0.0f, x, false}; }
__device__ __forceinline__ kc_scalar kc_load(int32_t x)       { return {0.0f, x, false}; }
__device__ __forceinline__ kc_scalar kc_load(int64_t x)       { return {0.0f, x, false}; }
__device__ __forceinline__ kc_scalar kc_load(kc_bool x)       { return {0.0f, x.v != 0, false}; }

/* Float → integer: NaN → 0, saturate, truncate.  The bounds are exact in
 * double: HI + 1 and LO - 1 are powers of two or one off them, except for
 * int64 where LO - 1 rounds to LO, which saturates to LO either way. */
template <typename I, int64_t LO, int64_t HI>
__device__ __forceinline__ I kc_float_to_int(float f) {
    if (isnan(f)) return 0;
    double d = f;
    if (d >= (double)HI + 1.0) return (I)HI;
    if (d <= (double)LO - 1.0) return (I)LO;
    return (I)d;
}

__device__ __forceinline__ float kc_as_float(kc_scalar s) { return s.is_float ? s.f : (float)s.i; }

/* int64 → float rounded to odd: exact below 2^24; above, the lowest kept bit
 * records whether any bit was dropped, so that rounding the float again to
 * f16 or bf16 (fewer bits) rounds the integer correctly, once. */
__device__ __forceinline__ float kc_int_to_f32_odd(int64_t v) {
    if (v > -(1 << 24) && v < (1 << 24)) return (float)v;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int shift = (64 - __clzll((long long)u)) - 24;
    uint64_t m = u >> shift;
    if (u & ((1ull << shift) - 1)) m |= 1;
    float f = ldexpf((float)m, shift);
    return v < 0 ? -f : f;
}

/* The float that f16/bf16 targets round from. */
__device__ __forceinline__ float kc_as_float_for_half(kc_scalar s) {
    return s.is_float ? s.f : kc_int_to_f32_odd(s.i);
}

template <typename S>
__global__ void kc_cast_kernel(const S *__restrict__ in, void *__restrict__ out, int64_t n, int dst) {
    for (int64_t i = kc_thread_index(); i < n; i += kc_grid_stride()) {
        kc_scalar s = kc_load(in[i]);
        switch (dst) {
        case KILN_FLOAT32:  ((float *)out)[i] = kc_as_float(s); break;
        case KILN_FLOAT16:  ((__half *)out)[i] = __float2half_rn(kc_as_float_for_half(s)); break;
        case KILN_BFLOAT16: ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(kc_as_float_for_half(s)); break;
        case KILN_INT8:
            ((int8_t *)out)[i] = s.is_float ? kc_float_to_int<int8_t, INT8_MIN, INT8_MAX>(s.f) : (int8_t)s.i;
            break;
        case KILN_UINT8:
            ((uint8_t *)out)[i] = s.is_float ? kc_float_to_int<uint8_t, 0, UINT8_MAX>(s.f) : (uint8_t)s.i;
            break;
        case KILN_INT32:
            ((int32_t *)out)[i] = s.is_float ? kc_float_to_int<int32_t, INT32_MIN, INT32_MAX>(s.f) : (int32_t)s.i;
            break;
        case KILN_INT64:
            ((int64_t *)out)[i] = s.is_float ? kc_float_to_int<int64_t, INT64_MIN, INT64_MAX>(s.f) : s.i;
            break;
        default: /* KILN_BOOL */
            ((uint8_t *)out)[i] = s.is_float ? (s.f != 0.0f)   /* NaN is nonzero */ : (s.i != 0);
            break;
        }
    }
}

/* float → f16/bf16 (and back) are the casts inference does most: give them a
 * kernel that moves 16 bytes a thread on the wider side. */
template <typename S, typename D>
__global__ void kc_cast_float_kernel(const S *__restrict__ in, D *__restrict__ out, int64_t n) {
    constexpr int N = 8;   /* elements a step: 16 bytes of f16/bf16, 32 of float */
    constexpr int SN = kc_vec<S>::N, DN = kc_vec<D>::N;
    int64_t nvec = n / N;
    for (int64_t v = kc_thread_index(); v < nvec; v += kc_grid_stride()) {
        kc_vec<S> a[N / SN];
        kc_vec<D> r[N / DN];
#pragma unroll
        for (int j = 0; j < N / SN; j++) a[j] = ((const kc_vec<S> *)(in + v * N))[j];
#pragma unroll
        for (int k = 0; k < N; k++) r[k / DN].v[k % DN] = kc_from_f32<D>(kc_to_f32(a[k / SN].v[k % SN]));
#pragma unroll
        for (int j = 0; j < N / DN; j++) ((kc_vec<D> *)(out + v * N))[j] = r[j];
    }
    for (int64_t i = nvec * N + kc_thread_index(); i < n; i += kc_grid_stride())
        out[i] = kc_from_f32<D>(kc_to_f32(in[i]));
}

template <typename S>
static void kc_cast_launch(const void *in, void *out, int64_t n, int dst, cudaStream_t stream) {
    kc_cast_kernel<S><<<kiln_cuda_grid(n, KC_THREADS), KC_THREADS, 0, stream>>>((const S *)in, out, n, dst);
}

template <typename S, typename D>
static void kc_cast_float_launch(const void *in, void *out, int64_t n, cudaStream_t stream) {
    kc_cast_float_kernel<S, D><<<kiln_cuda_grid(n / 8 + 1, KC_THREADS), KC_THREADS, 0, stream>>>(
        (const S *)in, (D *)out, n);
}

bool kiln_cuda_cast_supports(const kiln_layer_launch *l) {
    return (unsigned)l->inputs[0].dtype < KILN_DTYPE_COUNT && (unsigned)l->outputs[0].dtype < KILN_DTYPE_COUNT;
}

kiln_status kiln_cuda_cast_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *x = &l->inputs[0], *y = &l->outputs[0];
    int64_t n = kiln_cuda_numel(y);
    kiln_dtype src = x->dtype, dst = y->dtype;
    if ((unsigned)src >= KILN_DTYPE_COUNT) return kiln_cuda_unsupported("cast (source)", src);
    if ((unsigned)dst >= KILN_DTYPE_COUNT) return kiln_cuda_unsupported("cast (target)", dst);
    if (src == dst) {
        if (x->data == y->data) return KILN_OK;
        return kiln_cuda_check(cudaMemcpyAsync(y->data, x->data, (size_t)n * kiln_cuda_dtype_size(dst),
                                               cudaMemcpyDeviceToDevice, stream), "cast: cudaMemcpyAsync");
    }
    bool vec = kc_aligned16(x->data, y->data, NULL);
    if (vec && src == KILN_FLOAT32 && dst == KILN_FLOAT16)        kc_cast_float_launch<float, __half>(x->data, y->data, n, stream);
    else if (vec && src == KILN_FLOAT32 && dst == KILN_BFLOAT16)  kc_cast_float_launch<float, __nv_bfloat16>(x->data, y->data, n, stream);
    else if (vec && src == KILN_FLOAT16 && dst == KILN_FLOAT32)   kc_cast_float_launch<__half, float>(x->data, y->data, n, stream);
    else if (vec && src == KILN_BFLOAT16 && dst == KILN_FLOAT32)  kc_cast_float_launch<__nv_bfloat16, float>(x->data, y->data, n, stream);
    else switch (src) {
    case KILN_FLOAT32:  kc_cast_launch<float>(x->data, y->data, n, dst, stream); break;
    case KILN_FLOAT16:  kc_cast_launch<__half>(x->data, y->data, n, dst, stream); break;
    case KILN_BFLOAT16: kc_cast_launch<__nv_bfloat16>(x->data, y->data, n, dst, stream); break;
    case KILN_INT8:     kc_cast_launch<int8_t>(x->data, y->data, n, dst, stream); break;
    case KILN_UINT8:    kc_cast_launch<uint8_t>(x->data, y->data, n, dst, stream); break;
    case KILN_INT32:    kc_cast_launch<int32_t>(x->data, y->data, n, dst, stream); break;
    case KILN_INT64:    kc_cast_launch<int64_t>(x->data, y->data, n, dst, stream); break;
    default:            kc_cast_launch<kc_bool>(x->data, y->data, n, dst, stream); break;
    }
    return kiln_cuda_check_launch("cast kernel");
}
