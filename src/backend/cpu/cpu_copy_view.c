/* cpu_copy_view.c — TRANSPOSE, SLICE, EXPAND, CONCAT and PAD: strided copies.
 *
 * Each op is a kiln_copy_view (ops/op_views.h, shared with the CUDA backend):
 * the view is simplified (contiguous runs merged), then walked with an
 * odometer over the outer axes around an innermost loop, which is a memcpy
 * when both sides are contiguous there.  Any dtype: only element sizes
 * matter. */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

#define COPY_INNER(T)                                                                       \
    do {                                                                                   \
        const T *s_ = (const T *)src;                                                      \
        T *d_ = (T *)dst;                                                                  \
        for (int64_t i = 0; i < n; i++) d_[i * ds] = s_[i * ss];                           \
    } while (0)

static void copy_view(const kiln_copy_view *view, const void *src_base, void *dst_base, size_t es) {
    kiln_copy_view v = *view;
    kiln_copy_view_simplify(&v);
    if (kiln_view_numel(v.rank, v.dims) == 0) return;
    int inner = v.rank - 1;
    int64_t n = v.dims[inner], ss = v.src_strides[inner], ds = v.dst_strides[inner];
    int64_t outer = kiln_view_numel(inner, v.dims);
    int64_t idx[KILN_MAX_RANK] = {0}, so = v.src_offset, dof = v.dst_offset;
    for (int64_t t = 0; t < outer; t++) {
        const char *src = (const char *)src_base + so * (int64_t)es;
        char *dst = (char *)dst_base + dof * (int64_t)es;
        if (ss == 1 && ds == 1) memcpy(dst, src, (size_t)n * es);
        else if (es == 1) COPY_INNER(uint8_t);
        else if (es == 2) COPY_INNER(uint16_t);
        else if (es == 4) COPY_INNER(uint32_t);
        else COPY_INNER(uint64_t);
        for (int ax = inner - 1; ax >= 0; ax--) {
            so += v.src_strides[ax];
            dof += v.dst_strides[ax];
            if (++idx[ax] < v.dims[ax]) break;
            so -= v.src_strides[ax] * v.dims[ax];
            dof -= v.dst_strides[ax] * v.dims[ax];
            idx[ax] = 0;
        }
    }
}

/* Every element of out := the pad value, in out's dtype. */
static void fill(const kiln_tensor_desc *out, double value) {
    int64_t n = kiln_cpu_numel(out);
    switch (out->dtype) {
    case KILN_FLOAT32: for (int64_t i = 0; i < n; i++) ((float *)out->data)[i] = (float)value; break;
    case KILN_FLOAT16: {
        uint16_t h = kiln_f32_to_f16((float)value);
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out->data)[i] = h;
        break;
    }
    case KILN_BFLOAT16: {
        uint16_t h = kiln_f32_to_bf16((float)value);
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out->data)[i] = h;
        break;
    }
    case KILN_INT8: memset(out->data, (int8_t)value, (size_t)n); break;
    case KILN_UINT8: memset(out->data, (uint8_t)value, (size_t)n); break;
    case KILN_BOOL: memset(out->data, value != 0, (size_t)n); break;
    case KILN_INT32: for (int64_t i = 0; i < n; i++) ((int32_t *)out->data)[i] = (int32_t)value; break;
    case KILN_INT64: for (int64_t i = 0; i < n; i++) ((int64_t *)out->data)[i] = (int64_t)value; break;
    default: break;
    }
}

/* PAD in edge/reflect/wrap mode: every output element copies its source
 * element (kiln_pad_source along each axis). */
static void pad_gather(const kiln_tensor_desc *in, const kiln_tensor_desc *out, const int64_t *before, int64_t mode,
                       size_t es) {
    int32_t r = out->rank;
    int64_t in_strides[KILN_MAX_RANK], n = kiln_cpu_numel(out), idx[KILN_MAX_RANK] = {0};
    kiln_view_strides(in->rank, in->dims, in_strides);
    const char *src = in->data;
    char *dst = out->data;
    for (int64_t o = 0; o < n; o++) {
        int64_t off = 0;
        for (int32_t a = 0; a < r; a++) off += kiln_pad_source(idx[a], in->dims[a], before[a], mode) * in_strides[a];
        memcpy(dst + (size_t)o * es, src + (size_t)off * es, es);
        for (int32_t a = r - 1; a >= 0 && ++idx[a] == out->dims[a]; a--) idx[a] = 0;
    }
}

bool kiln_cpu_copy_view_supports(const kiln_layer_launch *l) {
    size_t es = kiln_dtype_size(l->outputs[0].dtype);
    for (int32_t k = 0; k < l->input_count; k++)
        if (l->inputs[k].dtype != l->outputs[0].dtype) return false;
    return es == 1 || es == 2 || es == 4 || es == 8;
}

kiln_status kiln_cpu_copy_view(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    size_t es = kiln_dtype_size(out->dtype);
    kiln_copy_view v;
    switch (l->op) {
    case KILN_OP_TRANSPOSE:
        kiln_view_transpose(in, out, l->attrs, &v);
        break;
    case KILN_OP_SLICE:
        kiln_view_slice(in, out, l->attrs, &v);
        break;
    case KILN_OP_EXPAND:
        kiln_view_expand(in, out, &v);
        break;
    case KILN_OP_PAD: {   /* attrs: the value's bits, the mode (older engines: none), before[rank], after[rank] */
        int32_t ints = l->attr_count - 2 * in->rank;
        int64_t mode = ints >= 2 ? l->attrs[1] : (int64_t)KILN_PAD_CONSTANT;
        if (mode != KILN_PAD_CONSTANT) {
            if (kiln_cpu_numel(out)) pad_gather(in, out, l->attrs + ints, mode, es);
            return KILN_OK;
        }
        double value;
        memcpy(&value, &l->attrs[0], sizeof value);
        fill(out, value);
        kiln_view_pad(in, out, l->attrs + ints, &v);
        break;
    }
    case KILN_OP_CONCAT: {
        int64_t at = 0;
        for (int32_t k = 0; k < l->input_count; k++) {
            kiln_view_concat_part(&l->inputs[k], out, l->axis, at, &v);
            copy_view(&v, l->inputs[k].data, out->data, es);
            at += l->inputs[k].dims[l->axis];
        }
        return KILN_OK;
    }
    default:
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: op %d is not a copy", (int)l->op);
    }
    copy_view(&v, in->data, out->data, es);
    return KILN_OK;
}
