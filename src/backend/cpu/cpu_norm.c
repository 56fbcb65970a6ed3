/* cpu_norm.c — LAYER_NORM and RMS_NORM over the axes from l->axis on.
 *
 *   layer norm:  y = (x - mean) / sqrt(var + eps) * scale + bias   (var: biased, as torch and ONNX)
 *   RMS norm:    y = x / sqrt(mean(x²) + eps) * scale
 * Statistics in double; float16/bfloat16 read and written through float.
 * attrs[0] holds epsilon's binary64 bits. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

bool kiln_cpu_norm_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    if (!kiln_dtype_is_float(dt) || l->outputs[0].dtype != dt || l->attr_count != 1) return false;
    for (int32_t k = 1; k < l->input_count; k++)
        if (l->inputs[k].dtype != dt) return false;
    return true;
}

kiln_status kiln_cpu_norm(const kiln_layer_launch *l) {
    const kiln_tensor_desc *x = &l->inputs[0], *out = &l->outputs[0];
    const void *scale = l->inputs[1].data, *bias = l->op == KILN_OP_LAYER_NORM ? l->inputs[2].data : NULL;
    kiln_dtype dt = x->dtype;
    double eps;
    memcpy(&eps, &l->attrs[0], sizeof eps);
    int64_t rows = kiln_view_numel((int32_t)l->axis, x->dims);
    int64_t n = kiln_view_numel(x->rank - (int32_t)l->axis, x->dims + l->axis);
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = r * n;
        double mean = 0, sq = 0;
        if (bias) {
            for (int64_t j = 0; j < n; j++) mean += kiln_cpu_load_f64(x->data, dt, base + j);
            mean = n ? mean / (double)n : 0;
        }
        for (int64_t j = 0; j < n; j++) {
            double d = kiln_cpu_load_f64(x->data, dt, base + j) - mean;
            sq += d * d;
        }
        double inv = 1.0 / sqrt((n ? sq / (double)n : 0) + eps);
        for (int64_t j = 0; j < n; j++) {
            double y = (kiln_cpu_load_f64(x->data, dt, base + j) - mean) * inv * kiln_cpu_load_f64(scale, dt, j);
            if (bias) y += kiln_cpu_load_f64(bias, dt, j);
            kiln_cpu_store_f64(out->data, dt, base + j, y);
        }
    }
    return KILN_OK;
}
