/* pool.cu — POOL (ONNX MaxPool, AveragePool) over 1 to 3 spatial axes.
 *
 * One thread per output element (grid-stride) walks its window with the
 * CPU backend's arithmetic (ops/pool_view.h: the same taps, the same
 * divisor), in float32 whatever the dtype, and rounds once: the two
 * backends agree bit for bit on max and up to the order of the sum on
 * average (the CPU also adds the taps in row-major order, so it is the
 * same order). */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "engine/engine_desc.h"
#include "ops/pool_view.h"

template <typename T>
__global__ void kc_pool(const T *__restrict__ x, T *__restrict__ y, int64_t total, kiln_pool_view v, int is_max) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        const int64_t plane = e / v.out_plane;
        int64_t rest = e % v.out_plane, pos[3] = {0, 0, 0};
        for (int i = v.k - 1; i >= 0; i--) {
            pos[i] = rest % v.out[i];
            rest /= v.out[i];
        }
        int64_t start[3] = {0, 0, 0}, t0[3] = {0, 0, 0}, t1[3] = {1, 1, 1}, count = 1;
        for (int i = 0; i < v.k; i++) {
            int64_t c;
            start[i] = kiln_pool_axis(&v, i, pos[i], &t0[i], &t1[i], &c);
            count *= c;
        }
        const T *xp = x + plane * v.in_plane;
        float best = -INFINITY, sum = 0.0f;
        for (int64_t a = t0[0]; a < t1[0]; a++) {
            const int64_t ia = start[0] + a * v.dil[0];
            for (int64_t b = v.k > 1 ? t0[1] : 0; b < (v.k > 1 ? t1[1] : 1); b++) {
                const int64_t ib = v.k > 1 ? ia * v.in[1] + start[1] + b * v.dil[1] : ia;
                for (int64_t c = v.k > 2 ? t0[2] : 0; c < (v.k > 2 ? t1[2] : 1); c++) {
                    const int64_t at = v.k > 2 ? ib * v.in[2] + start[2] + c * v.dil[2] : ib;
                    const float xv = kc_to_f32(xp[at]);
                    if (xv > best || xv != xv) best = xv;   /* NaN sticks, as on the CPU */
                    sum += xv;
                }
            }
        }
        y[e] = kc_from_f32<T>(is_max ? best : sum / (float)count);
    }
}

extern "C" bool kiln_cuda_pool_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return false;
    return l->inputs[0].dtype == dt && l->subop >= 0 && l->subop < KILN_POOL_MODE_COUNT;
}

extern "C" kiln_status kiln_cuda_pool_run(const kiln_layer_launch *l, cudaStream_t s) {
    const kiln_tensor_desc *x = &l->inputs[0], *out = &l->outputs[0];
    kiln_pool_view v;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (out->rank != x->rank || out->dims[0] != x->dims[0] || out->dims[1] != x->dims[1] ||
        !kiln_pool_view_make(&v, x->dims, out->dims, x->rank, l->attrs, l->attr_count))
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: pool of rank %d with %d attributes", (int)x->rank,
                              (int)l->attr_count);
    const int64_t total = kiln_cuda_numel(out);
    if (total == 0) return KILN_OK;
    const unsigned grid = kiln_cuda_grid(total, KC_THREADS);
    const int is_max = l->subop == KILN_POOL_MAX;
    switch (out->dtype) {
    case KILN_FLOAT32:
        kc_pool<float><<<grid, KC_THREADS, 0, s>>>((const float *)x->data, (float *)out->data, total, v, is_max);
        break;
    case KILN_FLOAT16:
        kc_pool<__half><<<grid, KC_THREADS, 0, s>>>((const __half *)x->data, (__half *)out->data, total, v, is_max);
        break;
    case KILN_BFLOAT16:
        kc_pool<__nv_bfloat16><<<grid, KC_THREADS, 0, s>>>((const __nv_bfloat16 *)x->data,
                                                           (__nv_bfloat16 *)out->data, total, v, is_max);
        break;
    default: return kiln_cuda_unsupported("pool", out->dtype);
    }
    return kiln_cuda_check_launch("pool");
}
