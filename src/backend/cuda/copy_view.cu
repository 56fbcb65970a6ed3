/* copy_view.cu — TRANSPOSE, SLICE, EXPAND and CONCAT as strided copies.
 *
 * The host builds the op's kiln_copy_view (ops/op_views.h, the same plan the
 * CPU backend walks), simplifies it, and launches one grid-stride kernel per
 * element size: each thread decodes its output index into the view's axes
 * and copies one element.  CONCAT launches once per input. */
#include <string.h>

#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

template <typename U>
__global__ void kc_copy_view(const U *__restrict__ src, U *__restrict__ dst, kiln_copy_view v, int64_t n) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) {
        int64_t rest = t, so = v.src_offset, d = v.dst_offset;
        for (int32_t i = v.rank - 1; i >= 0; i--) {
            int64_t k = rest % v.dims[i];
            rest /= v.dims[i];
            so += k * v.src_strides[i];
            d += k * v.dst_strides[i];
        }
        dst[d] = src[so];
    }
}

static kiln_status launch_view(kiln_copy_view v, const void *src, void *dst, size_t es, cudaStream_t stream) {
    kiln_copy_view_simplify(&v);
    int64_t n = kiln_view_numel(v.rank, v.dims);
    if (n == 0) return KILN_OK;
    unsigned grid = kiln_cuda_grid(n, KC_THREADS);
    switch (es) {
    case 1: kc_copy_view<uint8_t><<<grid, KC_THREADS, 0, stream>>>((const uint8_t *)src, (uint8_t *)dst, v, n); break;
    case 2: kc_copy_view<uint16_t><<<grid, KC_THREADS, 0, stream>>>((const uint16_t *)src, (uint16_t *)dst, v, n); break;
    case 4: kc_copy_view<uint32_t><<<grid, KC_THREADS, 0, stream>>>((const uint32_t *)src, (uint32_t *)dst, v, n); break;
    default: kc_copy_view<uint64_t><<<grid, KC_THREADS, 0, stream>>>((const uint64_t *)src, (uint64_t *)dst, v, n); break;
    }
    return kiln_cuda_check_launch("copy_view");
}

template <typename U>
__global__ void kc_fill(U *__restrict__ out, U value, int64_t n) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) out[t] = value;
}

/* out := the pad value in out's dtype (its bits built on the host). */
static kiln_status fill(const kiln_tensor_desc *out, double value, cudaStream_t stream) {
    int64_t n = kiln_cuda_numel(out);
    if (n == 0) return KILN_OK;
    unsigned grid = kiln_cuda_grid(n, KC_THREADS);
    switch (out->dtype) {
    case KILN_FLOAT32: {
        float v = (float)value;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        kc_fill<uint32_t><<<grid, KC_THREADS, 0, stream>>>((uint32_t *)out->data, bits, n);
        break;
    }
    case KILN_FLOAT16: {
        __half h = __float2half_rn((float)value);
        uint16_t bits;
        memcpy(&bits, &h, sizeof bits);
        kc_fill<uint16_t><<<grid, KC_THREADS, 0, stream>>>((uint16_t *)out->data, bits, n);
        break;
    }
    case KILN_BFLOAT16: {
        __nv_bfloat16 h = __float2bfloat16_rn((float)value);
        uint16_t bits;
        memcpy(&bits, &h, sizeof bits);
        kc_fill<uint16_t><<<grid, KC_THREADS, 0, stream>>>((uint16_t *)out->data, bits, n);
        break;
    }
    case KILN_INT32: kc_fill<int32_t><<<grid, KC_THREADS, 0, stream>>>((int32_t *)out->data, (int32_t)value, n); break;
    case KILN_INT64: kc_fill<int64_t><<<grid, KC_THREADS, 0, stream>>>((int64_t *)out->data, (int64_t)value, n); break;
    case KILN_BOOL: kc_fill<uint8_t><<<grid, KC_THREADS, 0, stream>>>((uint8_t *)out->data, value != 0, n); break;
    case KILN_INT8: kc_fill<int8_t><<<grid, KC_THREADS, 0, stream>>>((int8_t *)out->data, (int8_t)value, n); break;
    default: kc_fill<uint8_t><<<grid, KC_THREADS, 0, stream>>>((uint8_t *)out->data, (uint8_t)value, n); break;
    }
    return kiln_cuda_check_launch("pad fill");
}

/* PAD in edge/reflect/wrap mode: one thread per output element copies its
 * source element (kiln_pad_source along each axis, ops/op_views.h). */
struct kc_pad_view {
    int32_t rank;
    int64_t out_dims[KILN_MAX_RANK], in_dims[KILN_MAX_RANK], in_strides[KILN_MAX_RANK], before[KILN_MAX_RANK];
    int64_t mode;
};

template <typename T>
__global__ void kc_pad_gather(const T *__restrict__ in, T *__restrict__ out, kc_pad_view v, int64_t n) {
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < n; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t rest = o, off = 0;
        for (int32_t a = v.rank - 1; a >= 0; a--) {
            int64_t i = rest % v.out_dims[a];
            rest /= v.out_dims[a];
            off += kiln_pad_source(i, v.in_dims[a], v.before[a], v.mode) * v.in_strides[a];
        }
        out[o] = in[off];
    }
}

static kiln_status pad_gather(const kiln_tensor_desc *in, const kiln_tensor_desc *out, const int64_t *before,
                              int64_t mode, size_t es, cudaStream_t stream) {
    int64_t n = kiln_cuda_numel(out);
    if (!n) return KILN_OK;
    kc_pad_view v;
    v.rank = out->rank;
    v.mode = mode;
    kiln_view_strides(in->rank, in->dims, v.in_strides);
    for (int32_t a = 0; a < out->rank; a++) {
        v.out_dims[a] = out->dims[a];
        v.in_dims[a] = in->dims[a];
        v.before[a] = before[a];
    }
    unsigned grid = (unsigned)((n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536);
    switch (es) {
    case 1: kc_pad_gather<<<grid, 256, 0, stream>>>((const uint8_t *)in->data, (uint8_t *)out->data, v, n); break;
    case 2: kc_pad_gather<<<grid, 256, 0, stream>>>((const uint16_t *)in->data, (uint16_t *)out->data, v, n); break;
    case 4: kc_pad_gather<<<grid, 256, 0, stream>>>((const uint32_t *)in->data, (uint32_t *)out->data, v, n); break;
    default: kc_pad_gather<<<grid, 256, 0, stream>>>((const uint64_t *)in->data, (uint64_t *)out->data, v, n); break;
    }
    return kiln_cuda_check_launch("pad");
}

extern "C" bool kiln_cuda_copy_view_supports(const kiln_layer_launch *l) {
    size_t es = kiln_cuda_dtype_size(l->outputs[0].dtype);
    for (int32_t k = 0; k < l->input_count; k++)
        if (l->inputs[k].dtype != l->outputs[0].dtype) return false;
    return es == 1 || es == 2 || es == 4 || es == 8;
}

extern "C" kiln_status kiln_cuda_copy_view_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    size_t es = kiln_cuda_dtype_size(out->dtype);
    kiln_copy_view v;
    switch (l->op) {
    case KILN_OP_TRANSPOSE: kiln_view_transpose(in, out, l->attrs, &v); break;
    case KILN_OP_SLICE: kiln_view_slice(in, out, l->attrs, &v); break;
    case KILN_OP_EXPAND: kiln_view_expand(in, out, &v); break;
    case KILN_OP_PAD: {   /* attrs: the value's bits, the mode (older engines: none), before[rank], after[rank] */
        int32_t ints = l->attr_count - 2 * in->rank;
        int64_t mode = ints >= 2 ? l->attrs[1] : (int64_t)KILN_PAD_CONSTANT;
        if (mode != KILN_PAD_CONSTANT) return pad_gather(in, out, l->attrs + ints, mode, es, stream);
        double value;
        memcpy(&value, &l->attrs[0], sizeof value);
        kiln_status st = fill(out, value, stream);
        if (st) return st;
        kiln_view_pad(in, out, l->attrs + ints, &v);
        break;
    }
    case KILN_OP_CONCAT: {
        int64_t at = 0;
        for (int32_t k = 0; k < l->input_count; k++) {
            kiln_view_concat_part(&l->inputs[k], out, l->axis, at, &v);
            kiln_status st = launch_view(v, l->inputs[k].data, out->data, es, stream);
            if (st) return st;
            at += l->inputs[k].dims[l->axis];
        }
        return KILN_OK;
    }
    default: return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: op %d is not a copy", (int)l->op);
    }
    return launch_view(v, in->data, out->data, es, stream);
}
