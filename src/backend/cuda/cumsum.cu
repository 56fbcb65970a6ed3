/* cumsum.cu — CUMSUM along l->axis (ONNX CumSum, attrs exclusive and
 * reverse): one thread per (outer, inner) line, summing along the axis in
 * order (float lines in float, integer lines in int64 wrapping as stored;
 * the CPU backend keeps double for floats). */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

/* The running sum's type: float for float lines, uint64 for integer ones
 * (wrapping as the dtype does when stored). */
__device__ __forceinline__ float kc_cs_value(float x) { return x; }
__device__ __forceinline__ float kc_cs_value(__half x) { return __half2float(x); }
__device__ __forceinline__ float kc_cs_value(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ uint64_t kc_cs_value(int32_t x) { return (uint64_t)(int64_t)x; }
__device__ __forceinline__ uint64_t kc_cs_value(int64_t x) { return (uint64_t)x; }
template <typename T> __device__ __forceinline__ T kc_cs_store(float acc) { return kc_from_f32<T>(acc); }
template <typename T> __device__ __forceinline__ T kc_cs_store(uint64_t acc) { return (T)acc; }

template <typename T>
__global__ void kc_cumsum(const T *__restrict__ in, T *__restrict__ out, int64_t lines, int64_t n, int64_t inner,
                          bool exclusive, bool reverse) {
    for (int64_t t = kc_thread_index(); t < lines; t += kc_grid_stride()) {
        int64_t o = t / inner, i = t - o * inner, base = o * n * inner + i;
        decltype(kc_cs_value(in[0])) acc = 0;
        for (int64_t step = 0; step < n; step++) {
            int64_t at = base + (reverse ? n - 1 - step : step) * inner;
            auto x = kc_cs_value(in[at]);
            if (!exclusive) acc += x;
            out[at] = kc_cs_store<T>(acc);
            if (exclusive) acc += x;
        }
    }
}

extern "C" bool kiln_cuda_cumsum_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16 || dt == KILN_INT32 || dt == KILN_INT64) &&
           l->outputs[0].dtype == dt && l->attr_count == 2;
}

extern "C" kiln_status kiln_cuda_cumsum_run(const kiln_layer_launch *l, cudaStream_t s) {
    int64_t outer, n, inner;
    kiln_view_axis(&l->inputs[0], l->axis, &outer, &n, &inner);
    int64_t lines = outer * inner;
    if (lines == 0 || n == 0) return KILN_OK;
    bool ex = l->attrs[0] != 0, rev = l->attrs[1] != 0;
    unsigned grid = kiln_cuda_grid(lines, KC_THREADS);
    const void *in = l->inputs[0].data;
    void *out = l->outputs[0].data;
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT32: kc_cumsum<<<grid, KC_THREADS, 0, s>>>((const float *)in, (float *)out, lines, n, inner, ex, rev); break;
    case KILN_FLOAT16: kc_cumsum<<<grid, KC_THREADS, 0, s>>>((const __half *)in, (__half *)out, lines, n, inner, ex, rev); break;
    case KILN_BFLOAT16:
        kc_cumsum<<<grid, KC_THREADS, 0, s>>>((const __nv_bfloat16 *)in, (__nv_bfloat16 *)out, lines, n, inner, ex, rev);
        break;
    case KILN_INT32: kc_cumsum<<<grid, KC_THREADS, 0, s>>>((const int32_t *)in, (int32_t *)out, lines, n, inner, ex, rev); break;
    default: kc_cumsum<<<grid, KC_THREADS, 0, s>>>((const int64_t *)in, (int64_t *)out, lines, n, inner, ex, rev); break;
    }
    return kiln_cuda_check_launch("cumsum");
}
