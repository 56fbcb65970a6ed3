/* cpu_gather.c — GATHER: out = take(data, indices, axis).
 *
 * With data viewed as [outer, D, inner] (outer = product of the axes before
 * `axis`, inner = product of those after), out is [outer, count, inner] and
 * row (o, j) of out is row (o, indices[j]) of data: one block copy of `inner`
 * elements each.  An embedding lookup is outer = 1 with rows of thousands of
 * elements, so the copy is memcpy; blocks of one element get a typed loop.
 *
 * Indices are data, not shape: every one is checked against [0, D) before
 * anything is written, and the first bad one is reported with its position. */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"

static inline int64_t index_at(const kiln_tensor_desc *indices, int64_t j) {
    return indices->dtype == KILN_INT32 ? ((const int32_t *)indices->data)[j] : ((const int64_t *)indices->data)[j];
}

bool kiln_cpu_gather_supports(const kiln_layer_launch *l) {
    kiln_dtype index = l->inputs[1].dtype;
    return (index == KILN_INT32 || index == KILN_INT64) && kiln_dtype_size(l->inputs[0].dtype) > 0 &&
           l->outputs[0].dtype == l->inputs[0].dtype;
}

kiln_status kiln_cpu_gather(const kiln_layer_launch *l) {
    const kiln_tensor_desc *data = &l->inputs[0], *indices = &l->inputs[1], *out = &l->outputs[0];
    if (indices->dtype != KILN_INT32 && indices->dtype != KILN_INT64) {
        const char *name = kiln_dtype_name(indices->dtype);
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: gather indices of dtype %s (want int32 or int64)",
                          name ? name : "unknown");
    }
    size_t es = kiln_dtype_size(data->dtype);
    if (es == 0 || out->dtype != data->dtype)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: gather of dtype %d into dtype %d is not supported",
                          (int)data->dtype, (int)out->dtype);
    if (l->axis < 0 || l->axis >= data->rank || data->rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: gather axis %lld is outside a rank-%d data tensor",
                          (long long)l->axis, (int)data->rank);

    int axis = (int)l->axis;
    int64_t outer = 1, inner = 1, limit = data->dims[axis];
    for (int i = 0; i < axis; i++) outer *= data->dims[i];
    for (int i = axis + 1; i < data->rank; i++) inner *= data->dims[i];
    int64_t count = kiln_cpu_numel(indices);

    for (int64_t j = 0; j < count; j++) {
        int64_t ix = index_at(indices, j);
        if (ix < 0 || ix >= limit)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                              "gather: index %lld at position %lld is out of range [0, %lld)",
                              (long long)ix, (long long)j, (long long)limit);
    }
    if (outer == 0 || inner == 0 || count == 0) return KILN_OK;

    const char *src = (const char *)data->data;
    char *dst = (char *)out->data;
    size_t block = (size_t)inner * es;
    for (int64_t o = 0; o < outer; o++) {
        const char *slab = src + (size_t)(o * limit) * block;
        char *row = dst + (size_t)(o * count) * block;
        switch (inner == 1 ? block : 0) {   /* single elements: a typed copy beats a memcpy call */
#define GATHER_ELEMENTS(T) \
            for (int64_t j = 0; j < count; j++) ((T *)row)[j] = ((const T *)slab)[index_at(indices, j)]; \
            break;
        case 1: GATHER_ELEMENTS(uint8_t)
        case 2: GATHER_ELEMENTS(uint16_t)
        case 4: GATHER_ELEMENTS(uint32_t)
        case 8: GATHER_ELEMENTS(uint64_t)
#undef GATHER_ELEMENTS
        default:
            for (int64_t j = 0; j < count; j++)
                memcpy(row + (size_t)j * block, slab + (size_t)index_at(indices, j) * block, block);
        }
    }
    return KILN_OK;
}
