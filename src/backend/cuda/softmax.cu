/* softmax.cu — SOFTMAX (subop 0) and log-softmax (subop 1) over one axis.
 *
 * The tensor is outer × n × inner (kiln_view_axis); each (outer, inner) row
 * gets one block: the row's maximum, then the sum of exp(x - max), then the
 * outputs, all in float, as the CPU backend (which keeps double). */
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

template <typename T>
__global__ void kc_softmax(const T *__restrict__ in, T *__restrict__ out, int64_t rows, int64_t n, int64_t inner,
                           bool log_form) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t o = r / inner, i = r - o * inner, base = o * n * inner + i;
        float max = -INFINITY;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) max = kc_max_op{}(max, kc_to_f32(in[base + j * inner]));
        max = kc_block_reduce(max, kc_max_op{});
        float sum = 0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += __expf(kc_to_f32(in[base + j * inner]) - max);
        sum = kc_block_reduce(sum, kc_sum_op{});
        float log_sum = __logf(sum), inv = 1.0f / sum;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            float x = kc_to_f32(in[base + j * inner]) - max;
            out[base + j * inner] = kc_from_f32<T>(log_form ? x - log_sum : __expf(x) * inv);
        }
    }
}

extern "C" bool kiln_cuda_softmax_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16) && l->outputs[0].dtype == dt &&
           (l->subop == 0 || l->subop == 1);
}

extern "C" kiln_status kiln_cuda_softmax_run(const kiln_layer_launch *l, cudaStream_t stream) {
    int64_t outer, n, inner;
    kiln_view_axis(&l->inputs[0], l->axis, &outer, &n, &inner);
    int64_t rows = outer * inner;
    if (rows == 0 || n == 0) return KILN_OK;
    unsigned grid = (unsigned)(rows < 65536 ? rows : 65536);
    bool lf = l->subop == 1;
    const void *in = l->inputs[0].data;
    void *out = l->outputs[0].data;
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT32: kc_softmax<<<grid, KC_THREADS, 0, stream>>>((const float *)in, (float *)out, rows, n, inner, lf); break;
    case KILN_FLOAT16: kc_softmax<<<grid, KC_THREADS, 0, stream>>>((const __half *)in, (__half *)out, rows, n, inner, lf); break;
    default:
        kc_softmax<<<grid, KC_THREADS, 0, stream>>>((const __nv_bfloat16 *)in, (__nv_bfloat16 *)out, rows, n, inner, lf);
    }
    return kiln_cuda_check_launch("softmax");
}
