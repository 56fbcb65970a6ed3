/* resize.cu — RESIZE (ONNX Resize): nearest, n-linear and n-cubic.
 *
 * One thread per output element (grid-stride) computes each axis's taps
 * with the CPU backend's arithmetic (ops/resize_view.h: the same source
 * coordinates in double, the same float32 weights) and sums in float32
 * with the CPU's grouping and order (each source row's last-axis taps, then
 * the rows by the product of the other axes' weights), so the backends agree
 * up to the contraction of fused multiply-adds.
 * Resize is memory-bound: no tables, no shared memory.  Nearest copies
 * elements by size, so it takes every dtype and is exact. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "engine/engine_desc.h"
#include "ops/resize_view.h"

/* x's element offset of output element e's position, and the position. */
__device__ __forceinline__ void kc_resize_pos(const kiln_resize_view &v, int64_t e, int64_t *pos) {
    for (int i = v.rank - 1; i >= 0; i--) {
        pos[i] = e % v.out[i];
        e /= v.out[i];
    }
}

template <typename T>
__global__ void kc_resize_nearest(const T *__restrict__ x, T *__restrict__ y, int64_t total, kiln_resize_view v) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        int64_t pos[KILN_RESIZE_MAX_RANK];
        kc_resize_pos(v, e, pos);
        int64_t at = 0, stride = 1;
        for (int i = v.rank - 1; i >= 0; i--) {
            int64_t idx[KILN_RESIZE_MAX_TAPS];
            float w[KILN_RESIZE_MAX_TAPS];
            kiln_resize_taps(&v, i, pos[i], idx, w);
            at += idx[0] * stride;
            stride *= v.in[i];
        }
        y[e] = x[at];
    }
}

template <typename T>
__global__ void kc_resize_interp(const T *__restrict__ x, T *__restrict__ y, int64_t total, kiln_resize_view v) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        int64_t pos[KILN_RESIZE_MAX_RANK], stride[KILN_RESIZE_MAX_RANK];
        int64_t idx[KILN_RESIZE_MAX_RANK][KILN_RESIZE_MAX_TAPS];
        float w[KILN_RESIZE_MAX_RANK][KILN_RESIZE_MAX_TAPS];
        int n[KILN_RESIZE_MAX_RANK], t[KILN_RESIZE_MAX_RANK];
        kc_resize_pos(v, e, pos);
        int64_t s = 1;
        for (int i = v.rank - 1; i >= 0; i--) {
            stride[i] = s;
            s *= v.in[i];
            n[i] = kiln_resize_taps(&v, i, pos[i], idx[i], w[i]);
            t[i] = 0;
        }
        /* The other axes' taps give source rows (an odometer, the last of
         * them fastest); each row's last-axis taps are summed, then the rows
         * by their weights: the CPU's grouping and order. */
        const int last = v.rank - 1;
        float sum = 0.0f;
        for (;;) {
            int64_t at = 0;
            float wt = 1.0f;
            for (int i = 0; i < last; i++) {
                at += idx[i][t[i]] * stride[i];
                wt *= w[i][t[i]];
            }
            float s = 0.0f;
            for (int k = 0; k < n[last]; k++) s += w[last][k] * kc_to_f32(x[at + idx[last][k]]);
            sum += wt * s;
            int i = last - 1;
            for (; i >= 0; i--) {
                if (++t[i] < n[i]) break;
                t[i] = 0;
            }
            if (i < 0) break;
        }
        y[e] = kc_from_f32<T>(sum);
    }
}

extern "C" bool kiln_cuda_resize_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if (l->inputs[0].dtype != dt || l->attr_count < 1) return false;
    if (l->attrs[0] == KILN_RESIZE_NEAREST) return kiln_cuda_dtype_size(dt) > 0;
    return dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16;
}

extern "C" kiln_status kiln_cuda_resize_run(const kiln_layer_launch *l, cudaStream_t s) {
    const kiln_tensor_desc *x = &l->inputs[0], *out = &l->outputs[0];
    kiln_resize_view v;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (out->rank != x->rank || !kiln_resize_view_make(&v, x->dims, out->dims, x->rank, l->attrs, l->attr_count))
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: resize of rank %d with %d attributes", (int)x->rank,
                              (int)l->attr_count);
    if (!kiln_cuda_resize_supports(l)) return kiln_cuda_unsupported("resize", out->dtype);
    const int64_t total = kiln_cuda_numel(out);
    if (total == 0) return KILN_OK;
    const unsigned grid = kiln_cuda_grid(total, KC_THREADS);
    if (v.mode == KILN_RESIZE_NEAREST) {
        switch (kiln_cuda_dtype_size(out->dtype)) {
        case 1:
            kc_resize_nearest<uint8_t><<<grid, KC_THREADS, 0, s>>>((const uint8_t *)x->data, (uint8_t *)out->data,
                                                                  total, v);
            break;
        case 2:
            kc_resize_nearest<uint16_t><<<grid, KC_THREADS, 0, s>>>((const uint16_t *)x->data,
                                                                   (uint16_t *)out->data, total, v);
            break;
        case 4:
            kc_resize_nearest<uint32_t><<<grid, KC_THREADS, 0, s>>>((const uint32_t *)x->data,
                                                                   (uint32_t *)out->data, total, v);
            break;
        case 8:
            kc_resize_nearest<uint64_t><<<grid, KC_THREADS, 0, s>>>((const uint64_t *)x->data,
                                                                   (uint64_t *)out->data, total, v);
            break;
        default: return kiln_cuda_unsupported("resize", out->dtype);
        }
        return kiln_cuda_check_launch("resize");
    }
    switch (out->dtype) {
    case KILN_FLOAT32:
        kc_resize_interp<float><<<grid, KC_THREADS, 0, s>>>((const float *)x->data, (float *)out->data, total, v);
        break;
    case KILN_FLOAT16:
        kc_resize_interp<__half><<<grid, KC_THREADS, 0, s>>>((const __half *)x->data, (__half *)out->data, total, v);
        break;
    case KILN_BFLOAT16:
        kc_resize_interp<__nv_bfloat16><<<grid, KC_THREADS, 0, s>>>((const __nv_bfloat16 *)x->data,
                                                                    (__nv_bfloat16 *)out->data, total, v);
        break;
    default: return kiln_cuda_unsupported("resize", out->dtype);
    }
    return kiln_cuda_check_launch("resize");
}
