/* scatter.cu — SCATTER_ND (ONNX ScatterND) and SCATTER_ELEMENTS (ONNX
 * ScatterElements, torch.scatter_ / scatter_reduce).
 *
 * The output is first a copy of data (cudaMemcpyAsync, skipped when the
 * output is data's memory), then one thread per update element writes it,
 * or combines it (add, mul, max, min: launch attrs[0]) with an atomic
 * compare-and-swap loop on the element's 2, 4 or 8 bytes, so duplicate
 * indices are all applied, in an unspecified order.  With reduction none,
 * of duplicate indices an unspecified one wins (the CPU: the last).
 *
 * Indices: negative ones count from the end, as on the CPU.  A kernel cannot
 * report an error, so an update whose index is out of range is skipped
 * (that element keeps data's value), as gather.cu and gather_elements.cu
 * zero-fill for a bad index, where the CPU backend fails naming it.
 * Nothing outside the output is ever written, nothing outside data or
 * updates read. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

/* Where the indices point: data's dims and row-major strides, and for
 * SCATTER_ELEMENTS the indices' dims (k, slice: SCATTER_ND's coordinates per
 * index and elements per slice). */
typedef struct kc_scatter_view {
    int32_t rank, axis, k;
    int64_t dims[KILN_MAX_RANK], strides[KILN_MAX_RANK], index_dims[KILN_MAX_RANK], slice;
} kc_scatter_view;

/* ---- combining one element ------------------------------------------------------ */

template <typename T> struct kc_word;   /* the unsigned word atomicCAS takes for T */
template <> struct kc_word<float>          { typedef unsigned int type; };
template <> struct kc_word<__half>         { typedef unsigned short int type; };
template <> struct kc_word<__nv_bfloat16>  { typedef unsigned short int type; };
template <> struct kc_word<int32_t>        { typedef unsigned int type; };
template <> struct kc_word<int64_t>        { typedef unsigned long long int type; };

/* o ⊕ u: floats in float (NaN propagates through max and min, as on the
 * CPU), integers wrapping. */
template <typename T> __device__ __forceinline__ T kc_combine(int red, T o, T u) {
    float a = kc_to_f32(o), b = kc_to_f32(u), r;
    switch (red) {
    case KILN_SCATTER_ADD: r = a + b; break;
    case KILN_SCATTER_MUL: r = a * b; break;
    case KILN_SCATTER_MAX: r = isnan(b) || b > a ? b : a; break;
    default:               r = isnan(b) || b < a ? b : a; break;
    }
    return kc_from_f32<T>(r);
}
template <typename I, typename UI> __device__ __forceinline__ I kc_combine_int(int red, I o, I u) {
    switch (red) {
    case KILN_SCATTER_ADD: return (I)((UI)o + (UI)u);
    case KILN_SCATTER_MUL: return (I)((UI)o * (UI)u);
    case KILN_SCATTER_MAX: return u > o ? u : o;
    default:               return u < o ? u : o;
    }
}
template <> __device__ __forceinline__ int32_t kc_combine<int32_t>(int red, int32_t o, int32_t u) {
    return kc_combine_int<int32_t, uint32_t>(red, o, u);
}
template <> __device__ __forceinline__ int64_t kc_combine<int64_t>(int red, int64_t o, int64_t u) {
    return kc_combine_int<int64_t, uint64_t>(red, o, u);
}

template <typename T> __device__ __forceinline__ void kc_atomic_combine(T *at, T u, int red) {
    typedef typename kc_word<T>::type W;
    static_assert(sizeof(W) == sizeof(T), "a word per element");
    W *word = (W *)at;
    W old = *word, assumed;
    do {
        assumed = old;
        T o, r;
        memcpy(&o, &assumed, sizeof o);
        r = kc_combine<T>(red, o, u);
        W next;
        memcpy(&next, &r, sizeof next);
        old = atomicCAS(word, assumed, next);
    } while (old != assumed);
}

/* ---- the kernels ------------------------------------------------------------------ */

/* Element offset in data of update t, or -1 when its index is out of range. */
template <typename I>
__device__ __forceinline__ int64_t kc_nd_offset(const I *ix, const kc_scatter_view &v, int64_t t) {
    int64_t i = t / v.slice, off = t - i * v.slice;
    for (int32_t j = 0; j < v.k; j++) {
        int64_t c = (int64_t)ix[i * v.k + j];
        if (c < 0) c += v.dims[j];
        if (c < 0 || c >= v.dims[j]) return -1;
        off += c * v.strides[j];
    }
    return off;
}

template <typename I>
__device__ __forceinline__ int64_t kc_elements_offset(const I *ix, const kc_scatter_view &v, int64_t t) {
    int64_t rest = t, off = 0;
    for (int32_t i = v.rank - 1; i >= 0; i--) {
        int64_t c = rest % v.index_dims[i];
        rest /= v.index_dims[i];
        if (i == v.axis) {
            c = (int64_t)ix[t];
            if (c < 0) c += v.dims[i];
            if (c < 0 || c >= v.dims[i]) return -1;
        }
        off += c * v.strides[i];
    }
    return off;
}

/* Reduction none: a store of the element's bytes (U: an unsigned type of its size). */
template <typename U, typename I, bool ND>
__global__ void kc_scatter_store(const I *__restrict__ ix, const U *__restrict__ upd, U *__restrict__ out,
                                 kc_scatter_view v, int64_t n) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) {
        int64_t off = ND ? kc_nd_offset(ix, v, t) : kc_elements_offset(ix, v, t);
        if (off >= 0) out[off] = upd[t];
    }
}

template <typename T, typename I, bool ND>
__global__ void kc_scatter_reduce(const I *__restrict__ ix, const T *__restrict__ upd, T *out, kc_scatter_view v,
                                  int64_t n, int red) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) {
        int64_t off = ND ? kc_nd_offset(ix, v, t) : kc_elements_offset(ix, v, t);
        if (off >= 0) kc_atomic_combine(out + off, upd[t], red);
    }
}

/* ---- launching ----------------------------------------------------------------------- */

extern "C" bool kiln_cuda_scatter_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype, index = l->inputs[1].dtype;
    size_t es = kiln_cuda_dtype_size(dt);
    if ((index != KILN_INT32 && index != KILN_INT64) || l->inputs[2].dtype != dt || l->outputs[0].dtype != dt ||
        !(es == 1 || es == 2 || es == 4 || es == 8) || l->attr_count != 1)
        return false;
    int64_t r = l->attrs ? l->attrs[0] : (int64_t)KILN_SCATTER_NONE;
    if (r == KILN_SCATTER_NONE) return true;
    return r > 0 && r < KILN_SCATTER_REDUCTION_COUNT &&
           (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16 || dt == KILN_INT32 || dt == KILN_INT64);
}

template <bool ND, typename I>
static void launch_typed(const kiln_layer_launch *l, const kc_scatter_view &v, int64_t n, cudaStream_t s) {
    const I *ix = (const I *)l->inputs[1].data;
    const void *upd = l->inputs[2].data;
    void *out = l->outputs[0].data;
    int red = (int)l->attrs[0];
    unsigned grid = kiln_cuda_grid(n, KC_THREADS);
    if (red == KILN_SCATTER_NONE) {
        switch (kiln_cuda_dtype_size(l->inputs[0].dtype)) {
        case 1: kc_scatter_store<uint8_t, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const uint8_t *)upd,
                                                                            (uint8_t *)out, v, n); break;
        case 2: kc_scatter_store<uint16_t, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const uint16_t *)upd,
                                                                             (uint16_t *)out, v, n); break;
        case 4: kc_scatter_store<uint32_t, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const uint32_t *)upd,
                                                                             (uint32_t *)out, v, n); break;
        default: kc_scatter_store<uint64_t, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const uint64_t *)upd,
                                                                              (uint64_t *)out, v, n); break;
        }
        return;
    }
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT32:
        kc_scatter_reduce<float, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const float *)upd, (float *)out, v, n, red);
        break;
    case KILN_FLOAT16:
        kc_scatter_reduce<__half, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const __half *)upd, (__half *)out, v, n, red);
        break;
    case KILN_BFLOAT16:
        kc_scatter_reduce<__nv_bfloat16, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const __nv_bfloat16 *)upd,
                                                                           (__nv_bfloat16 *)out, v, n, red);
        break;
    case KILN_INT32:
        kc_scatter_reduce<int32_t, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const int32_t *)upd, (int32_t *)out, v, n,
                                                                      red);
        break;
    default:
        kc_scatter_reduce<int64_t, I, ND><<<grid, KC_THREADS, 0, s>>>(ix, (const int64_t *)upd, (int64_t *)out, v, n,
                                                                      red);
        break;
    }
}

template <bool ND>
static kiln_status scatter_run(const kiln_layer_launch *l, const kc_scatter_view &v, int64_t n, cudaStream_t s,
                               const char *what) {
    const kiln_tensor_desc *data = &l->inputs[0], *out = &l->outputs[0];
    if (!kiln_cuda_scatter_supports(l)) return kiln_cuda_unsupported(what, data->dtype);
    size_t bytes = (size_t)kiln_cuda_numel(data) * kiln_cuda_dtype_size(data->dtype);
    if (out->data != data->data && bytes) {
        kiln_status st = kiln_cuda_check(cudaMemcpyAsync(out->data, data->data, bytes, cudaMemcpyDeviceToDevice, s),
                                         "scatter: copying data");
        if (st) return st;
    }
    if (n == 0) return KILN_OK;
    if (l->inputs[1].dtype == KILN_INT32) launch_typed<ND, int32_t>(l, v, n, s);
    else launch_typed<ND, int64_t>(l, v, n, s);
    return kiln_cuda_check_launch(what);
}

extern "C" kiln_status kiln_cuda_scatter_nd_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *data = &l->inputs[0], *ix = &l->inputs[1], *upd = &l->inputs[2];
    kc_scatter_view v = {};
    v.rank = data->rank;
    int64_t k = ix->rank >= 1 ? ix->dims[ix->rank - 1] : 0;
    if (k < 1 || k > data->rank)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: scatter_nd: %lld coordinates per index for data of "
                              "rank %d", (long long)k, (int)data->rank);
    v.k = (int32_t)k;
    for (int32_t i = 0; i < data->rank; i++) v.dims[i] = data->dims[i];
    kiln_view_strides(data->rank, data->dims, v.strides);
    v.slice = v.strides[v.k - 1];
    int64_t count = kiln_cuda_numel(ix) / v.k, n = kiln_cuda_numel(upd);
    if (n != count * v.slice)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: scatter_nd: updates have %lld elements, the indices "
                              "name %lld slices of %lld", (long long)n, (long long)count, (long long)v.slice);
    return scatter_run<true>(l, v, n, stream, "scatter_nd");
}

extern "C" kiln_status kiln_cuda_scatter_elements_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *data = &l->inputs[0], *ix = &l->inputs[1], *upd = &l->inputs[2];
    if (l->axis < 0 || l->axis >= data->rank || ix->rank != data->rank || upd->rank != ix->rank)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: scatter_elements: axis %lld for data of rank %d, "
                              "indices of rank %d", (long long)l->axis, (int)data->rank, (int)ix->rank);
    kc_scatter_view v = {};
    v.rank = data->rank;
    v.axis = (int32_t)l->axis;
    for (int32_t i = 0; i < data->rank; i++) {
        if (upd->dims[i] != ix->dims[i] || (i != v.axis && ix->dims[i] > data->dims[i]))
            return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: scatter_elements: axis %d: indices (%lld) and "
                                  "updates must match and fit in data (%lld)", (int)i, (long long)ix->dims[i],
                                  (long long)data->dims[i]);
        v.dims[i] = data->dims[i];
        v.index_dims[i] = ix->dims[i];
    }
    kiln_view_strides(data->rank, data->dims, v.strides);
    return scatter_run<false>(l, v, kiln_cuda_numel(ix), stream, "scatter_elements");
}
