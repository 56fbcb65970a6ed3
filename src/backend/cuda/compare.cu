/* compare.cu — COMPARE: equal … greater_equal, numpy broadcasting, bool
 * output; the CPU backend's semantics (IEEE for floats, exact integers).
 * One thread per output element, broadcast by kiln_view_broadcast_strides. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

typedef struct kc_cmp_view {
    int32_t rank;
    int64_t dims[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
} kc_cmp_view;

template <typename V>
__device__ __forceinline__ uint8_t kc_compare(V x, V y, int op) {
    switch (op) {
    case KILN_COMPARE_EQUAL: return x == y;
    case KILN_COMPARE_NOT_EQUAL: return x != y;
    case KILN_COMPARE_LESS: return x < y;
    case KILN_COMPARE_LESS_EQUAL: return x <= y;
    case KILN_COMPARE_GREATER: return x > y;
    default: return x >= y;
    }
}

__device__ __forceinline__ float kc_cmp_value(float x) { return x; }
__device__ __forceinline__ float kc_cmp_value(__half x) { return __half2float(x); }
__device__ __forceinline__ float kc_cmp_value(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ int64_t kc_cmp_value(int8_t x) { return x; }
__device__ __forceinline__ int64_t kc_cmp_value(uint8_t x) { return x; }
__device__ __forceinline__ int64_t kc_cmp_value(int32_t x) { return x; }
__device__ __forceinline__ int64_t kc_cmp_value(int64_t x) { return x; }
__device__ __forceinline__ int64_t kc_cmp_value(kc_bool x) { return x.v != 0; }

template <typename T>
__global__ void kc_compare_kernel(const T *__restrict__ a, const T *__restrict__ b, uint8_t *__restrict__ out,
                                  kc_cmp_view v, int64_t n, int op) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) {
        int64_t rest = t, oa = 0, ob = 0;
        for (int32_t i = v.rank - 1; i >= 0; i--) {
            int64_t k = rest % v.dims[i];
            rest /= v.dims[i];
            oa += k * v.sa[i];
            ob += k * v.sb[i];
        }
        out[t] = kc_compare(kc_cmp_value(a[oa]), kc_cmp_value(b[ob]), op);
    }
}

extern "C" bool kiln_cuda_compare_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return l->subop >= 0 && l->subop < KILN_COMPARE_OP_COUNT && kiln_cuda_dtype_size(dt) > 0 &&
           l->inputs[1].dtype == dt && l->outputs[0].dtype == KILN_BOOL;
}

template <typename T>
static void launch(const kiln_layer_launch *l, const kc_cmp_view &v, int64_t n, cudaStream_t s) {
    kc_compare_kernel<T><<<kiln_cuda_grid(n, KC_THREADS), KC_THREADS, 0, s>>>(
        (const T *)l->inputs[0].data, (const T *)l->inputs[1].data, (uint8_t *)l->outputs[0].data, v, n, l->subop);
}

extern "C" kiln_status kiln_cuda_compare_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *out = &l->outputs[0];
    kc_cmp_view v;
    v.rank = out->rank;
    for (int32_t i = 0; i < out->rank; i++) v.dims[i] = out->dims[i];
    kiln_view_broadcast_strides(&l->inputs[0], out, v.sa);
    kiln_view_broadcast_strides(&l->inputs[1], out, v.sb);
    int64_t n = kiln_cuda_numel(out);
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT32: launch<float>(l, v, n, stream); break;
    case KILN_FLOAT16: launch<__half>(l, v, n, stream); break;
    case KILN_BFLOAT16: launch<__nv_bfloat16>(l, v, n, stream); break;
    case KILN_INT8: launch<int8_t>(l, v, n, stream); break;
    case KILN_UINT8: launch<uint8_t>(l, v, n, stream); break;
    case KILN_INT32: launch<int32_t>(l, v, n, stream); break;
    case KILN_INT64: launch<int64_t>(l, v, n, stream); break;
    case KILN_BOOL: launch<kc_bool>(l, v, n, stream); break;
    default: return kiln_cuda_unsupported("compare", l->inputs[0].dtype);
    }
    return kiln_cuda_check_launch("compare");
}
