/* cpu_softmax.c — SOFTMAX (subop 0) and log-softmax (subop 1) over one axis.
 *
 * Numerically stable: the row's maximum is subtracted before exp, sums are
 * kept in double.  float16/bfloat16 are read and written through float. */
#include <math.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

static double load(const void *p, kiln_dtype dt, int64_t i) {
    if (dt == KILN_FLOAT32) return ((const float *)p)[i];
    if (dt == KILN_FLOAT16) return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
}

static void store(void *p, kiln_dtype dt, int64_t i, double v) {
    if (dt == KILN_FLOAT32) ((float *)p)[i] = (float)v;
    else if (dt == KILN_FLOAT16) ((uint16_t *)p)[i] = kiln_f32_to_f16((float)v);
    else ((uint16_t *)p)[i] = kiln_f32_to_bf16((float)v);
}

bool kiln_cpu_softmax_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return kiln_dtype_is_float(dt) && l->outputs[0].dtype == dt && (l->subop == 0 || l->subop == 1);
}

kiln_status kiln_cpu_softmax(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    kiln_dtype dt = in->dtype;
    int64_t outer, n, inner;
    kiln_view_axis(in, l->axis, &outer, &n, &inner);
    bool log_form = l->subop == 1;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            double max = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                double x = load(in->data, dt, base + j * inner);
                if (x > max || x != x) max = x;
            }
            double sum = 0;
            for (int64_t j = 0; j < n; j++) sum += exp(load(in->data, dt, base + j * inner) - max);
            double log_sum = log(sum);
            for (int64_t j = 0; j < n; j++) {
                double x = load(in->data, dt, base + j * inner) - max;
                store(out->data, dt, base + j * inner, log_form ? x - log_sum : exp(x) / sum);
            }
        }
    return KILN_OK;
}
