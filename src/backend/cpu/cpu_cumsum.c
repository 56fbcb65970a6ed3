/* cpu_cumsum.c — CUMSUM along l->axis (ONNX CumSum): attrs exclusive (the
 * sum of the elements before, not through, each one) and reverse (from the
 * end).  Floats accumulate in double, integers in int64 (wrapping as the
 * dtype does when stored). */
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

static double load(const void *p, kiln_dtype dt, int64_t i) {
    switch (dt) {
    case KILN_FLOAT32: return ((const float *)p)[i];
    case KILN_FLOAT16: return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return 0;
    }
}

static void store(void *p, kiln_dtype dt, int64_t i, double v) {
    if (dt == KILN_FLOAT32) ((float *)p)[i] = (float)v;
    else if (dt == KILN_FLOAT16) ((uint16_t *)p)[i] = kiln_f32_to_f16((float)v);
    else ((uint16_t *)p)[i] = kiln_f32_to_bf16((float)v);
}

bool kiln_cpu_cumsum_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return (kiln_dtype_is_float(dt) || dt == KILN_INT32 || dt == KILN_INT64) && l->outputs[0].dtype == dt &&
           l->attr_count == 2;
}

kiln_status kiln_cpu_cumsum(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    kiln_dtype dt = in->dtype;
    int64_t outer, n, inner;
    kiln_view_axis(in, l->axis, &outer, &n, &inner);
    bool exclusive = l->attrs[0] != 0, reverse = l->attrs[1] != 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            double facc = 0;
            uint64_t iacc = 0;
            for (int64_t step = 0; step < n; step++) {
                int64_t j = reverse ? n - 1 - step : step;
                int64_t at = base + j * inner;
                if (dt == KILN_INT32 || dt == KILN_INT64) {
                    uint64_t x = dt == KILN_INT32 ? (uint64_t)(int64_t)((const int32_t *)in->data)[at]
                                                  : (uint64_t)((const int64_t *)in->data)[at];
                    if (!exclusive) iacc += x;
                    if (dt == KILN_INT32) ((int32_t *)out->data)[at] = (int32_t)(uint32_t)iacc;
                    else ((int64_t *)out->data)[at] = (int64_t)iacc;
                    if (exclusive) iacc += x;
                } else {
                    double x = load(in->data, dt, at);
                    if (!exclusive) facc += x;
                    store(out->data, dt, at, facc);
                    if (exclusive) facc += x;
                }
            }
        }
    return KILN_OK;
}
