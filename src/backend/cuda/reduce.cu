/* reduce.cu — REDUCE: sum, mean, max, min, prod, argmax, argmin over axes.
 *
 * One block per output element (blocks stride over the outputs), its threads
 * striding over the reduced elements (kiln_reduce_view, ops/op_views.h, the
 * CPU backend's plan) several loads at a time, then a block reduction; an
 * arg-reduction of a few long rows gets 1024 threads a row.  Floats accumulate in float,
 * integers in int64 (sums and products wrap as the dtype does); max/min let
 * NaN win and argmax/argmin give the first index of the extreme, as the CPU
 * backend and numpy do. */
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

/* Loads in flight per thread: a thread's elements are independent loads, and
 * issuing them before combining keeps a long row (argmax over a vocabulary
 * of 128k logits, one row at batch 1) from waiting on each load in turn
 * (200 µs per argmax on an H200 before, the largest kernel of a 1B Llama's
 * decode step). */
#define KC_ARG_UNROLL 8

__device__ __forceinline__ float kc_load(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float kc_load(const __half *p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float kc_load(const __nv_bfloat16 *p, int64_t i) { return __bfloat162float(p[i]); }
template <typename T> __device__ __forceinline__ int64_t kc_load_int(const T *p, int64_t i) { return (int64_t)p[i]; }

template <typename T, typename Op>
__global__ void kc_reduce_float(const T *__restrict__ in, T *__restrict__ out, kiln_reduce_view v, Op op, float init,
                                bool mean) {
    for (int64_t o = blockIdx.x; o < v.outputs; o += gridDim.x) {
        int64_t base = kiln_reduce_base(&v, o);
        float acc = init;
        /* KC_ARG_UNROLL loads issued before they are combined, in the order
         * a plain loop would combine them. */
        for (int64_t k0 = threadIdx.x; k0 < v.count; k0 += (int64_t)blockDim.x * KC_ARG_UNROLL) {
            float x[KC_ARG_UNROLL];
#pragma unroll
            for (int u = 0; u < KC_ARG_UNROLL; u++) {
                int64_t k = k0 + (int64_t)u * blockDim.x;
                x[u] = k < v.count ? kc_load(in, base + kiln_reduce_offset(&v, k)) : init;
            }
#pragma unroll
            for (int u = 0; u < KC_ARG_UNROLL; u++)
                if (k0 + (int64_t)u * blockDim.x < v.count) acc = op(acc, x[u]);
        }
        acc = kc_block_reduce(acc, op);
        if (threadIdx.x == 0) out[o] = kc_from_f32<T>(mean ? acc / (float)v.count : acc);
    }
}

template <typename T, typename Op>
__global__ void kc_reduce_int(const T *__restrict__ in, T *__restrict__ out, kiln_reduce_view v, Op op, int64_t init) {
    for (int64_t o = blockIdx.x; o < v.outputs; o += gridDim.x) {
        int64_t base = kiln_reduce_base(&v, o);
        int64_t acc = init;
        for (int64_t k = threadIdx.x; k < v.count; k += blockDim.x)
            acc = op(acc, kc_load_int(in, base + kiln_reduce_offset(&v, k)));
        acc = kc_block_reduce(acc, op);
        if (threadIdx.x == 0) out[o] = (T)(uint64_t)acc;
    }
}

/* (value, index) pairs: the better value wins, NaN beats everything, ties
 * go to the lower index. */
template <typename V>
__device__ __forceinline__ bool kc_arg_better(V a, int64_t ia, V b, int64_t ib, bool max) {
    bool a_nan = a != a, b_nan = b != b;
    if (a_nan || b_nan) return a_nan && (!b_nan || ia < ib);
    if (a == b) return ia < ib;
    return max ? a > b : a < b;
}

template <typename V, typename T> __device__ __forceinline__ V kc_arg_load(const T *p, int64_t i);
template <> __device__ __forceinline__ float kc_arg_load<float, float>(const float *p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ float kc_arg_load<float, __half>(const __half *p, int64_t i) { return __half2float(p[i]); }
template <> __device__ __forceinline__ float kc_arg_load<float, __nv_bfloat16>(const __nv_bfloat16 *p, int64_t i) {
    return __bfloat162float(p[i]);
}
template <> __device__ __forceinline__ int64_t kc_arg_load<int64_t, int8_t>(const int8_t *p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ int64_t kc_arg_load<int64_t, uint8_t>(const uint8_t *p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ int64_t kc_arg_load<int64_t, int32_t>(const int32_t *p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ int64_t kc_arg_load<int64_t, int64_t>(const int64_t *p, int64_t i) { return p[i]; }

template <typename T, typename V, int THREADS>
__global__ void __launch_bounds__(THREADS)
kc_arg_reduce(const T *__restrict__ in, int64_t *__restrict__ out, kiln_reduce_view v, bool max) {
    __shared__ V warp_v[THREADS / 32];
    __shared__ int64_t warp_i[THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int64_t o = blockIdx.x; o < v.outputs; o += gridDim.x) {
        int64_t base = kiln_reduce_base(&v, o);
        V bv = 0;
        int64_t bi = -1;
        for (int64_t k0 = threadIdx.x; k0 < v.count; k0 += (int64_t)THREADS * KC_ARG_UNROLL) {
            V x[KC_ARG_UNROLL];
#pragma unroll
            for (int u = 0; u < KC_ARG_UNROLL; u++) {
                int64_t k = k0 + (int64_t)u * THREADS;
                x[u] = k < v.count ? kc_arg_load<V>(in, base + kiln_reduce_offset(&v, k)) : (V)0;
            }
#pragma unroll
            for (int u = 0; u < KC_ARG_UNROLL; u++) {
                int64_t k = k0 + (int64_t)u * THREADS;
                if (k < v.count && (bi < 0 || kc_arg_better(x[u], k, bv, bi, max))) {
                    bv = x[u];
                    bi = k;
                }
            }
        }
        /* Across the warp, then across the warps (bi < 0: saw nothing). */
        for (int off = 16; off > 0; off >>= 1) {
            V ov = __shfl_down_sync(0xffffffffu, bv, off);
            int64_t oi = __shfl_down_sync(0xffffffffu, bi, off);
            if (oi >= 0 && (bi < 0 || kc_arg_better(ov, oi, bv, bi, max))) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) {
            warp_v[warp] = bv;
            warp_i[warp] = bi;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < THREADS / 32; w++) {
                if (warp_i[w] >= 0 && (bi < 0 || kc_arg_better(warp_v[w], warp_i[w], bv, bi, max))) {
                    bv = warp_v[w];
                    bi = warp_i[w];
                }
            }
            out[o] = bi < 0 ? 0 : bi;
        }
        __syncthreads();   /* warp_v / warp_i are rewritten for the next output */
    }
}

/* Few long float rows (logits at a small batch: one row of 128k at batch
 * 1) would leave all but one SM idle with a block per row.  Instead a row is
 * cut into chunks of KC_ARG_CHUNK elements, a block each, and the blocks meet
 * in the row's int64 output itself: each folds its best (value, index) into
 * one 64-bit key and atomicMax's it there; a last pass turns keys back into
 * indices.  A key is the value's bits mapped to an unsigned order (-0 as +0,
 * negated for argmin, NaN above everything: NaN wins, as kc_arg_better
 * says) over the complement of the index, so that equal values give the lower
 * index.  Keys start at 0, below every real key (its low word, ~index, is at
 * least 2^31 for the counts that come here). */
#define KC_ARG_CHUNK 4096

__device__ __forceinline__ unsigned long long kc_arg_key(float x, int64_t k, bool max) {
    uint32_t order;
    if (x != x) {
        order = 0xffffffffu;
    } else {
        uint32_t u = x == 0.0f ? 0u : __float_as_uint(x);
        order = (u & 0x80000000u) ? ~u : (u | 0x80000000u);   /* -inf .. +inf in [0x007fffff, 0xff800000] */
        if (!max) order = ~order;                              /* the same range, reversed */
    }
    return ((unsigned long long)order << 32) | (0xffffffffu - (uint32_t)k);
}

__global__ void kc_arg_keys_init(unsigned long long *keys, int64_t n) {
    for (int64_t i = kc_thread_index(); i < n; i += kc_grid_stride()) keys[i] = 0;
}

__global__ void kc_arg_keys_finish(unsigned long long *keys, int64_t n) {
    for (int64_t i = kc_thread_index(); i < n; i += kc_grid_stride())
        ((int64_t *)keys)[i] = (int64_t)(0xffffffffu - (uint32_t)(keys[i] & 0xffffffffu));
}

template <typename T>
__global__ void kc_arg_chunks(const T *__restrict__ in, unsigned long long *keys, kiln_reduce_view v, int64_t chunks,
                              bool max) {
    for (int64_t b = blockIdx.x; b < v.outputs * chunks; b += gridDim.x) {
        int64_t o = b / chunks, lo = (b % chunks) * KC_ARG_CHUNK;
        int64_t hi = lo + KC_ARG_CHUNK < v.count ? lo + KC_ARG_CHUNK : v.count;
        int64_t base = kiln_reduce_base(&v, o);
        unsigned long long best = 0;
#pragma unroll 8
        for (int64_t k = lo + threadIdx.x; k < hi; k += blockDim.x) {
            unsigned long long key = kc_arg_key(kc_arg_load<float>(in, base + kiln_reduce_offset(&v, k)), k, max);
            best = key > best ? key : best;
        }
        for (int off = 16; off > 0; off >>= 1) {
            unsigned long long other = __shfl_down_sync(0xffffffffu, best, off);
            best = other > best ? other : best;
        }
        if ((threadIdx.x & 31) == 0 && best) atomicMax(&keys[o], best);
    }
}

/* The chunked launch for float rows (V = float); false for integer rows,
 * which keep a block per row. */
template <typename T>
static bool kc_arg_chunked(const T *in, int64_t *out, const kiln_reduce_view &v, bool max, cudaStream_t s, float) {
    if (v.count > 0x7fffffff) return false;
    unsigned long long *keys = (unsigned long long *)out;
    int64_t chunks = (v.count + KC_ARG_CHUNK - 1) / KC_ARG_CHUNK;
    int64_t blocks = v.outputs * chunks;
    kc_arg_keys_init<<<1, KC_THREADS, 0, s>>>(keys, v.outputs);
    kc_arg_chunks<T><<<(unsigned)(blocks < 65536 ? blocks : 65536), KC_THREADS, 0, s>>>(in, keys, v, chunks, max);
    kc_arg_keys_finish<<<1, KC_THREADS, 0, s>>>(keys, v.outputs);
    return true;
}
template <typename T>
static bool kc_arg_chunked(const T *, int64_t *, const kiln_reduce_view &, bool, cudaStream_t, int64_t) {
    return false;
}

/* A few long rows: chunks (float rows, above) or 1024 threads a row; many
 * rows, 256 threads a row. */
template <typename T, typename V>
static void kc_arg_launch(const T *in, int64_t *out, const kiln_reduce_view &v, unsigned grid, bool max,
                          cudaStream_t s) {
    bool few_long = v.outputs <= 256 && v.count >= 8192;
    if (few_long && kc_arg_chunked(in, out, v, max, s, (V)0)) {
        /* launched */
    } else if (few_long) {
        kc_arg_reduce<T, V, 1024><<<grid, 1024, 0, s>>>(in, out, v, max);
    } else {
        kc_arg_reduce<T, V, KC_THREADS><<<grid, KC_THREADS, 0, s>>>(in, out, v, max);
    }
}

template <typename T>
static void launch_float(const kiln_layer_launch *l, const kiln_reduce_view &v, unsigned grid, cudaStream_t s) {
    const T *in = (const T *)l->inputs[0].data;
    T *out = (T *)l->outputs[0].data;
    switch (l->subop) {
    case KILN_REDUCE_SUM: kc_reduce_float<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_sum_op{}, 0.0f, false); break;
    case KILN_REDUCE_MEAN: kc_reduce_float<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_sum_op{}, 0.0f, true); break;
    case KILN_REDUCE_PROD: kc_reduce_float<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_prod_op{}, 1.0f, false); break;
    case KILN_REDUCE_MAX: kc_reduce_float<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_max_op{}, -INFINITY, false); break;
    case KILN_REDUCE_MIN: kc_reduce_float<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_min_op{}, INFINITY, false); break;
    default:
        kc_arg_launch<T, float>(in, (int64_t *)l->outputs[0].data, v, grid, l->subop == KILN_REDUCE_ARGMAX, s);
    }
}

template <typename T>
static void launch_int(const kiln_layer_launch *l, const kiln_reduce_view &v, unsigned grid, cudaStream_t s) {
    const T *in = (const T *)l->inputs[0].data;
    T *out = (T *)l->outputs[0].data;
    switch (l->subop) {
    case KILN_REDUCE_SUM: kc_reduce_int<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_sum_op{}, (int64_t)0); break;
    case KILN_REDUCE_PROD: kc_reduce_int<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_prod_op{}, (int64_t)1); break;
    case KILN_REDUCE_MAX: kc_reduce_int<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_max_op{}, (int64_t)INT64_MIN); break;
    case KILN_REDUCE_MIN: kc_reduce_int<<<grid, KC_THREADS, 0, s>>>(in, out, v, kc_min_op{}, (int64_t)INT64_MAX); break;
    default:
        kc_arg_launch<T, int64_t>(in, (int64_t *)l->outputs[0].data, v, grid, l->subop == KILN_REDUCE_ARGMAX, s);
    }
}

extern "C" bool kiln_cuda_reduce_supports(const kiln_layer_launch *l) {
    kiln_dtype in = l->inputs[0].dtype, out = l->outputs[0].dtype;
    bool arg = l->subop == KILN_REDUCE_ARGMAX || l->subop == KILN_REDUCE_ARGMIN;
    if (l->subop < 0 || l->subop >= KILN_REDUCE_OP_COUNT || (arg ? out != KILN_INT64 : out != in)) return false;
    bool is_float = in == KILN_FLOAT32 || in == KILN_FLOAT16 || in == KILN_BFLOAT16;
    bool is_int = in == KILN_INT8 || in == KILN_UINT8 || in == KILN_INT32 || in == KILN_INT64;
    if (l->subop == KILN_REDUCE_MEAN) return is_float;
    if (l->subop == KILN_REDUCE_SUM || l->subop == KILN_REDUCE_PROD)
        return is_float || in == KILN_INT32 || in == KILN_INT64;
    return is_float || is_int;
}

extern "C" kiln_status kiln_cuda_reduce_run(const kiln_layer_launch *l, cudaStream_t stream) {
    kiln_reduce_view v;
    kiln_view_reduce(&l->inputs[0], l->attrs, l->attr_count, &v);
    if (v.outputs == 0) return KILN_OK;
    unsigned grid = (unsigned)(v.outputs < 65536 ? v.outputs : 65536);
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT32: launch_float<float>(l, v, grid, stream); break;
    case KILN_FLOAT16: launch_float<__half>(l, v, grid, stream); break;
    case KILN_BFLOAT16: launch_float<__nv_bfloat16>(l, v, grid, stream); break;
    case KILN_INT8: launch_int<int8_t>(l, v, grid, stream); break;
    case KILN_UINT8: launch_int<uint8_t>(l, v, grid, stream); break;
    case KILN_INT32: launch_int<int32_t>(l, v, grid, stream); break;
    case KILN_INT64: launch_int<int64_t>(l, v, grid, stream); break;
    default: return kiln_cuda_unsupported("reduce", l->inputs[0].dtype);
    }
    return kiln_cuda_check_launch("reduce");
}
