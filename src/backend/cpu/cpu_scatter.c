/* cpu_scatter.c — SCATTER_ND (ONNX ScatterND) and SCATTER_ELEMENTS (ONNX
 * ScatterElements, torch.scatter_ / scatter_reduce): the output is a copy
 * of data in which the elements the indices name are replaced by, or
 * combined with (add, mul, max, min: attrs[0], kiln_scatter_reduction), the
 * updates.
 *
 * Indices are data, not shape: negative ones count from the end, and every
 * one is checked against its axis before anything is written; the first bad
 * one fails the run naming it and its position.  Updates are applied in
 * index order, so with reduction none the last of duplicate indices wins.
 * Floats combine in double and are rounded to the dtype after each update;
 * integers wrap as the dtype does. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_list.h"
#include "ops/op_views.h"

static inline int64_t index_at(const kiln_tensor_desc *indices, int64_t j) {
    return indices->dtype == KILN_INT32 ? ((const int32_t *)indices->data)[j] : ((const int64_t *)indices->data)[j];
}

bool kiln_cpu_scatter_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype, index = l->inputs[1].dtype;
    if ((index != KILN_INT32 && index != KILN_INT64) || l->inputs[2].dtype != dt || l->outputs[0].dtype != dt ||
        kiln_dtype_size(dt) == 0 || l->attr_count != 1)
        return false;
    /* supports_op is asked without attribute values: then any reduction this dtype has. */
    int64_t r = l->attrs ? l->attrs[0] : (int64_t)KILN_SCATTER_NONE;
    if (r == KILN_SCATTER_NONE) return true;
    return r > 0 && r < KILN_SCATTER_REDUCTION_COUNT &&
           (kiln_dtype_is_float(dt) || dt == KILN_INT32 || dt == KILN_INT64);
}

/* out[at] = out[at] ⊕ upd[j]. */
static void combine(const kiln_tensor_desc *out, int64_t at, const kiln_tensor_desc *upd, int64_t j, int64_t red,
                    size_t es) {
    kiln_dtype dt = out->dtype;
    if (red == KILN_SCATTER_NONE) {
        memcpy((char *)out->data + at * (int64_t)es, (const char *)upd->data + j * (int64_t)es, es);
    } else if (kiln_dtype_is_float(dt)) {
        double o = kiln_cpu_load_f64(out->data, dt, at), u = kiln_cpu_load_f64(upd->data, dt, j), r;
        switch (red) {
        case KILN_SCATTER_ADD: r = o + u; break;
        case KILN_SCATTER_MUL: r = o * u; break;
        case KILN_SCATTER_MAX: r = isnan(u) || u > o ? u : o; break;   /* NaN propagates, as on CUDA */
        default:               r = isnan(u) || u < o ? u : o; break;
        }
        kiln_cpu_store_f64(out->data, dt, at, r);
    } else {
        int64_t o = kiln_cpu_load_i64(out->data, dt, at), u = kiln_cpu_load_i64(upd->data, dt, j), r;
        switch (red) {
        case KILN_SCATTER_ADD: r = (int64_t)((uint64_t)o + (uint64_t)u); break;
        case KILN_SCATTER_MUL: r = (int64_t)((uint64_t)o * (uint64_t)u); break;
        case KILN_SCATTER_MAX: r = u > o ? u : o; break;
        default:               r = u < o ? u : o; break;
        }
        kiln_cpu_store_i64(out->data, dt, at, r);
    }
}

static const char *dtype_text(kiln_dtype dt) { return kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?"; }

static kiln_status check_launch(const kiln_layer_launch *l, const char *what) {
    if (!kiln_cpu_scatter_supports(l))
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: %s of %s data, %s indices, %s updates (reduction %s) "
                          "is not supported", what, dtype_text(l->inputs[0].dtype), dtype_text(l->inputs[1].dtype),
                          dtype_text(l->inputs[2].dtype),
                          kiln_scatter_reduction_list_name(l->attr_count == 1 && l->attrs ? (int)l->attrs[0] : -1));
    return KILN_OK;
}

/* out = data, unless the output is data's memory already. */
static void copy_data(const kiln_tensor_desc *data, const kiln_tensor_desc *out) {
    size_t bytes = (size_t)kiln_cpu_numel(data) * kiln_dtype_size(data->dtype);
    if (out->data != data->data && bytes) memmove(out->data, data->data, bytes);
}

kiln_status kiln_cpu_scatter_nd(const kiln_layer_launch *l) {
    kiln_status st = check_launch(l, "scatter_nd");
    if (st) return st;
    const kiln_tensor_desc *data = &l->inputs[0], *ix = &l->inputs[1], *upd = &l->inputs[2], *out = &l->outputs[0];
    int64_t k64 = ix->rank >= 1 ? ix->dims[ix->rank - 1] : 0;
    if (k64 < 1 || k64 > data->rank)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "scatter_nd: indices of rank %d with %lld coordinates for data "
                          "of rank %d", (int)ix->rank, (long long)k64, (int)data->rank);
    int32_t k = (int32_t)k64;
    int64_t dstrides[KILN_MAX_RANK];
    kiln_view_strides(data->rank, data->dims, dstrides);
    int64_t count = kiln_cpu_numel(ix) / k, slice = dstrides[k - 1];
    if (kiln_cpu_numel(upd) != count * slice || kiln_cpu_numel(out) != kiln_cpu_numel(data))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "scatter_nd: updates have %lld elements, the indices name %lld "
                          "slices of %lld", (long long)kiln_cpu_numel(upd), (long long)count, (long long)slice);
    for (int64_t i = 0; i < count; i++)
        for (int32_t j = 0; j < k; j++) {
            int64_t v = index_at(ix, i * k + j), n = data->dims[j];
            if (v < -n || v >= n)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "scatter_nd: index %lld at position %lld (coordinate %d, "
                                  "data axis %d) is out of range [%lld, %lld)", (long long)v, (long long)i, (int)j,
                                  (int)j, (long long)-n, (long long)n);
        }
    copy_data(data, out);
    size_t es = kiln_dtype_size(data->dtype);
    int64_t red = l->attrs[0];
    for (int64_t i = 0; i < count; i++) {
        int64_t off = 0;
        for (int32_t j = 0; j < k; j++) {
            int64_t v = index_at(ix, i * k + j);
            off += (v < 0 ? v + data->dims[j] : v) * dstrides[j];
        }
        for (int64_t s = 0; s < slice; s++) combine(out, off + s, upd, i * slice + s, red, es);
    }
    return KILN_OK;
}

kiln_status kiln_cpu_scatter_elements(const kiln_layer_launch *l) {
    kiln_status st = check_launch(l, "scatter_elements");
    if (st) return st;
    const kiln_tensor_desc *data = &l->inputs[0], *ix = &l->inputs[1], *upd = &l->inputs[2], *out = &l->outputs[0];
    if (l->axis < 0 || l->axis >= data->rank || ix->rank != data->rank)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "scatter_elements: axis %lld for data of rank %d and indices "
                          "of rank %d", (long long)l->axis, (int)data->rank, (int)ix->rank);
    for (int32_t i = 0; i < data->rank; i++)
        if (upd->rank != ix->rank || upd->dims[i] != ix->dims[i] || (i != l->axis && ix->dims[i] > data->dims[i]) ||
            out->dims[i] != data->dims[i])
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "scatter_elements: axis %d: indices (%lld) and updates must "
                              "match and fit in data (%lld)", (int)i, (long long)ix->dims[i], (long long)data->dims[i]);
    int64_t n = kiln_cpu_numel(ix), axis_len = data->dims[l->axis];
    for (int64_t t = 0; t < n; t++) {
        int64_t v = index_at(ix, t);
        if (v < -axis_len || v >= axis_len)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "scatter_elements: index %lld at position %lld is out of "
                              "range [%lld, %lld) (data axis %lld)", (long long)v, (long long)t, (long long)-axis_len,
                              (long long)axis_len, (long long)l->axis);
    }
    copy_data(data, out);
    int64_t dstrides[KILN_MAX_RANK];
    kiln_view_strides(data->rank, data->dims, dstrides);
    size_t es = kiln_dtype_size(data->dtype);
    int64_t red = l->attrs[0];
    for (int64_t t = 0; t < n; t++) {
        int64_t rest = t, off = 0;
        for (int32_t i = ix->rank - 1; i >= 0; i--) {
            int64_t c = rest % ix->dims[i];
            rest /= ix->dims[i];
            if (i == l->axis) {
                c = index_at(ix, t);
                if (c < 0) c += axis_len;
            }
            off += c * dstrides[i];
        }
        combine(out, off, upd, t, red, es);
    }
    return KILN_OK;
}
