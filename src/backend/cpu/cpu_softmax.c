/* cpu_softmax.c — SOFTMAX (subop 0) and log-softmax (subop 1) over one axis.
 *
 * Numerically stable: the row's maximum is subtracted before exp.  float32
 * rows along the last axis take a vectorized path (exp_f32, float sums);
 * other cases keep double sums; float16/bfloat16 are read and written
 * through float. */
#include <math.h>

#include "backend/cpu/cpu_exp.h"
#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

bool kiln_cpu_softmax_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return kiln_dtype_is_float(dt) && l->outputs[0].dtype == dt && (l->subop == 0 || l->subop == 1);
}

/* float32 over the last axis (attention scores): rows are contiguous, exp is
 * the vectorizable exp_f32, sums in float32 lanes then double. */
static void softmax_rows_f32(const float *in, float *out, int64_t rows, int64_t n, bool log_form) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * n;
        float *y = out + r * n;
        float max = -INFINITY;
        bool nan = false;
        for (int64_t j = 0; j < n; j++) {
            max = x[j] > max ? x[j] : max;
            nan |= x[j] != x[j];
        }
        if (nan) max = NAN;
        float sum = 0;
        for (int64_t j = 0; j < n; j++) {
            float e = exp_f32(x[j] - max);
            y[j] = e;
            sum += e;
        }
        if (log_form) {
            float log_sum = logf(sum);
            for (int64_t j = 0; j < n; j++) y[j] = (x[j] - max) - log_sum;
        } else {
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < n; j++) y[j] *= inv;
        }
    }
}

kiln_status kiln_cpu_softmax(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    kiln_dtype dt = in->dtype;
    int64_t outer, n, inner;
    kiln_view_axis(in, l->axis, &outer, &n, &inner);
    bool log_form = l->subop == 1;
    if (dt == KILN_FLOAT32 && inner == 1) {
        softmax_rows_f32(in->data, out->data, outer, n, log_form);
        return KILN_OK;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            double max = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                double x = kiln_cpu_load_f64(in->data, dt, base + j * inner);
                if (x > max || x != x) max = x;
            }
            double sum = 0;
            for (int64_t j = 0; j < n; j++) sum += exp(kiln_cpu_load_f64(in->data, dt, base + j * inner) - max);
            double log_sum = log(sum);
            for (int64_t j = 0; j < n; j++) {
                double x = kiln_cpu_load_f64(in->data, dt, base + j * inner) - max;
                kiln_cpu_store_f64(out->data, dt, base + j * inner, log_form ? x - log_sum : exp(x) / sum);
            }
        }
    return KILN_OK;
}
