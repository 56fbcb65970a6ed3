/* cpu_gather_elements.c — GATHER_ELEMENTS: out[i] = data[i with coordinate
 * `axis` replaced by indices[i]] (torch.gather, ONNX GatherElements).
 * Negative indices count from the end (ONNX); any other index outside the
 * axis fails the run naming it, before anything is written. */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "ops/op_views.h"

static inline int64_t index_at(const kiln_tensor_desc *indices, int64_t j) {
    return indices->dtype == KILN_INT32 ? ((const int32_t *)indices->data)[j] : ((const int64_t *)indices->data)[j];
}

bool kiln_cpu_gather_elements_supports(const kiln_layer_launch *l) {
    kiln_dtype index = l->inputs[1].dtype;
    return (index == KILN_INT32 || index == KILN_INT64) && kiln_dtype_size(l->inputs[0].dtype) > 0 &&
           l->outputs[0].dtype == l->inputs[0].dtype;
}

kiln_status kiln_cpu_gather_elements(const kiln_layer_launch *l) {
    const kiln_tensor_desc *data = &l->inputs[0], *ix = &l->inputs[1], *out = &l->outputs[0];
    size_t es = kiln_dtype_size(data->dtype);
    int64_t n = kiln_cpu_numel(out), axis_len = data->dims[l->axis];
    for (int64_t t = 0; t < n; t++) {
        int64_t k = index_at(ix, t);
        if (k < -axis_len || k >= axis_len)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "gather_elements: index %lld at position %lld is out of "
                              "range [%lld, %lld)", (long long)k, (long long)t, (long long)-axis_len,
                              (long long)axis_len);
    }
    int64_t dstrides[KILN_MAX_RANK];
    kiln_view_strides(data->rank, data->dims, dstrides);
    for (int64_t t = 0; t < n; t++) {
        int64_t rest = t, off = 0;
        for (int32_t i = out->rank - 1; i >= 0; i--) {
            int64_t c = rest % out->dims[i];
            rest /= out->dims[i];
            if (i == l->axis) {
                c = index_at(ix, t);
                if (c < 0) c += axis_len;
            }
            off += c * dstrides[i];
        }
        memcpy((char *)out->data + t * (int64_t)es, (const char *)data->data + off * (int64_t)es, es);
    }
    return KILN_OK;
}
