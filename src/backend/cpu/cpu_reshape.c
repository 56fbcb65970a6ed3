/* cpu_reshape.c — RESHAPE: the same bytes under another shape.
 *
 * When the runtime gives the output the input's buffer there is nothing to
 * do; otherwise the bytes are copied (memmove: the planner may hand out
 * overlapping ranges of the arena for tensors whose lifetimes touch). */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"

bool kiln_cpu_reshape_supports(const kiln_layer_launch *l) {
    return kiln_dtype_size(l->inputs[0].dtype) > 0 && l->outputs[0].dtype == l->inputs[0].dtype;
}

kiln_status kiln_cpu_reshape(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    size_t es = kiln_dtype_size(in->dtype);
    int64_t n = kiln_cpu_numel(in);
    if (es == 0 || in->dtype != out->dtype || n != kiln_cpu_numel(out))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "cpu backend: reshape of %lld elements of dtype %d into %lld of dtype %d",
                          (long long)n, (int)in->dtype, (long long)kiln_cpu_numel(out), (int)out->dtype);
    if (n > 0 && in->data != out->data) memmove(out->data, in->data, (size_t)n * es);
    return KILN_OK;
}
