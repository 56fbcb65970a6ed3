/* cpu_reduce.c — REDUCE: sum, mean, max, min, prod, argmax, argmin over axes.
 *
 * The input is walked as kept axes around reduced ones (kiln_reduce_view,
 * ops/op_views.h).  Floats accumulate in double (float16/bfloat16 inputs are
 * read through float), integers in int64 (sums and products wrap as the
 * dtype does); max/min propagate NaN as numpy does; argmax/argmin give the
 * first index of the extreme (a NaN counts as the extreme, as numpy's). */
#include <math.h>

#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_table.h"
#include "ops/op_views.h"

bool kiln_cpu_reduce_supports(const kiln_layer_launch *l) {
    kiln_dtype in = l->inputs[0].dtype, out = l->outputs[0].dtype;
    bool arg = l->subop == KILN_REDUCE_ARGMAX || l->subop == KILN_REDUCE_ARGMIN;
    return kiln_reduce_op_accepts(l->subop, in) && (arg ? out == KILN_INT64 : out == in);
}

kiln_status kiln_cpu_reduce(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    kiln_reduce_view v;
    kiln_view_reduce(in, l->attrs, l->attr_count, &v);
    kiln_dtype dt = in->dtype;
    bool is_float = kiln_dtype_is_float(dt);
    for (int64_t o = 0; o < v.outputs; o++) {
        int64_t base = kiln_reduce_base(&v, o);
        switch (l->subop) {
        case KILN_REDUCE_ARGMAX:
        case KILN_REDUCE_ARGMIN: {
            bool max = l->subop == KILN_REDUCE_ARGMAX;
            double best = kiln_cpu_load_f64(in->data, dt, base);
            int64_t at = 0;
            for (int64_t k = 1; k < v.count && best == best; k++) {
                double x = kiln_cpu_load_f64(in->data, dt, base + kiln_reduce_offset(&v, k));
                if (x != x || (max ? x > best : x < best)) { best = x; at = k; }
            }
            ((int64_t *)out->data)[o] = at;
            break;
        }
        case KILN_REDUCE_MAX:
        case KILN_REDUCE_MIN: {
            bool max = l->subop == KILN_REDUCE_MAX;
            if (is_float) {
                double best = kiln_cpu_load_f64(in->data, dt, base);
                for (int64_t k = 1; k < v.count && best == best; k++) {
                    double x = kiln_cpu_load_f64(in->data, dt, base + kiln_reduce_offset(&v, k));
                    if (x != x || (max ? x > best : x < best)) best = x;
                }
                kiln_cpu_store_f64(out->data, dt, o, best);
            } else {
                int64_t best = kiln_cpu_load_i64(in->data, dt, base);
                for (int64_t k = 1; k < v.count; k++) {
                    int64_t x = kiln_cpu_load_i64(in->data, dt, base + kiln_reduce_offset(&v, k));
                    if (max ? x > best : x < best) best = x;
                }
                kiln_cpu_store_i64(out->data, dt, o, best);
            }
            break;
        }
        default: {   /* SUM, MEAN, PROD */
            bool prod = l->subop == KILN_REDUCE_PROD;
            if (is_float) {
                double acc = prod ? 1.0 : 0.0;
                for (int64_t k = 0; k < v.count; k++) {
                    double x = kiln_cpu_load_f64(in->data, dt, base + kiln_reduce_offset(&v, k));
                    acc = prod ? acc * x : acc + x;
                }
                if (l->subop == KILN_REDUCE_MEAN) acc = v.count ? acc / (double)v.count : NAN;
                kiln_cpu_store_f64(out->data, dt, o, acc);
            } else {
                uint64_t acc = prod ? 1u : 0u;   /* unsigned: wraps instead of overflowing */
                for (int64_t k = 0; k < v.count; k++) {
                    uint64_t x = (uint64_t)kiln_cpu_load_i64(in->data, dt, base + kiln_reduce_offset(&v, k));
                    acc = prod ? acc * x : acc + x;
                }
                kiln_cpu_store_i64(out->data, dt, o, (int64_t)acc);
            }
            break;
        }
        }
    }
    return KILN_OK;
}
