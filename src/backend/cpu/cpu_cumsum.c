/* cpu_cumsum.c — CUMSUM along l->axis (ONNX CumSum): attrs exclusive (the
 * sum of the elements before, not through, each one) and reverse (from the
 * end).  Floats accumulate in double, integers in int64 (wrapping as the
 * dtype does when stored). */
#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

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
                    uint64_t x = (uint64_t)kiln_cpu_load_i64(in->data, dt, at);
                    if (!exclusive) iacc += x;
                    kiln_cpu_store_i64(out->data, dt, at, (int64_t)iacc);
                    if (exclusive) iacc += x;
                } else {
                    double x = kiln_cpu_load_f64(in->data, dt, at);
                    if (!exclusive) facc += x;
                    kiln_cpu_store_f64(out->data, dt, at, facc);
                    if (exclusive) facc += x;
                }
            }
        }
    return KILN_OK;
}
