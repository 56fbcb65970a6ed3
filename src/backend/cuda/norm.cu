/* norm.cu — LAYER_NORM (x, scale, bias) and RMS_NORM (x, scale) over the
 * axes from l->axis on: one block per row of n elements; the mean, then the
 * mean of squared deviations (two passes, as the CPU backend), in float.
 * attrs[0] holds epsilon's binary64 bits. */
#include <string.h>

#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

template <typename T>
__global__ void kc_norm(const T *__restrict__ x, const T *__restrict__ scale, const T *__restrict__ bias,
                        T *__restrict__ out, int64_t rows, int64_t n, float eps) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *row = x + r * n;
        float mean = 0;
        if (bias) {
            for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mean += kc_to_f32(row[j]);
            mean = kc_block_reduce(mean, kc_sum_op{}) / (float)n;
        }
        float sq = 0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            float d = kc_to_f32(row[j]) - mean;
            sq += d * d;
        }
        float inv = rsqrtf(kc_block_reduce(sq, kc_sum_op{}) / (float)n + eps);
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            float y = (kc_to_f32(row[j]) - mean) * inv * kc_to_f32(scale[j]);
            if (bias) y += kc_to_f32(bias[j]);
            out[r * n + j] = kc_from_f32<T>(y);
        }
    }
}

extern "C" bool kiln_cuda_norm_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    if (!(dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16) || l->outputs[0].dtype != dt ||
        l->attr_count != 1)
        return false;
    for (int32_t k = 1; k < l->input_count; k++)
        if (l->inputs[k].dtype != dt) return false;
    return true;
}

template <typename T>
static void launch(const kiln_layer_launch *l, unsigned grid, int64_t rows, int64_t n, float eps, cudaStream_t s) {
    const T *bias = l->op == KILN_OP_LAYER_NORM ? (const T *)l->inputs[2].data : nullptr;
    kc_norm<T><<<grid, KC_THREADS, 0, s>>>((const T *)l->inputs[0].data, (const T *)l->inputs[1].data, bias,
                                           (T *)l->outputs[0].data, rows, n, eps);
}

extern "C" kiln_status kiln_cuda_norm_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *x = &l->inputs[0];
    double eps;
    memcpy(&eps, &l->attrs[0], sizeof eps);
    int64_t rows = kiln_view_numel((int32_t)l->axis, x->dims);
    int64_t n = kiln_view_numel(x->rank - (int32_t)l->axis, x->dims + l->axis);
    if (rows == 0 || n == 0) return KILN_OK;
    unsigned grid = (unsigned)(rows < 65536 ? rows : 65536);
    switch (x->dtype) {
    case KILN_FLOAT32: launch<float>(l, grid, rows, n, (float)eps, stream); break;
    case KILN_FLOAT16: launch<__half>(l, grid, rows, n, (float)eps, stream); break;
    default: launch<__nv_bfloat16>(l, grid, rows, n, (float)eps, stream); break;
    }
    return kiln_cuda_check_launch("norm");
}
