/* cpu_compare.c — COMPARE: equal, not_equal, less, less_equal, greater,
 * greater_equal of two operands of one dtype, numpy broadcasting, bool
 * output (0 or 1).  Floats compare as IEEE (every comparison with NaN is
 * false but not_equal); integers compare exactly (int64 is not routed
 * through double); bool compares 0/1 of its nonzero bytes. */
#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

#define COMPARE(x, y, op)                                               \
    ((op) == KILN_COMPARE_EQUAL ? (x) == (y)                            \
     : (op) == KILN_COMPARE_NOT_EQUAL ? (x) != (y)                      \
     : (op) == KILN_COMPARE_LESS ? (x) < (y)                            \
     : (op) == KILN_COMPARE_LESS_EQUAL ? (x) <= (y)                     \
     : (op) == KILN_COMPARE_GREATER ? (x) > (y)                         \
     : (x) >= (y))

bool kiln_cpu_compare_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return l->subop >= 0 && l->subop < KILN_COMPARE_OP_COUNT && (unsigned)dt < KILN_DTYPE_COUNT &&
           l->inputs[1].dtype == dt && l->outputs[0].dtype == KILN_BOOL;
}

kiln_status kiln_cpu_compare(const kiln_layer_launch *l) {
    const kiln_tensor_desc *a = &l->inputs[0], *b = &l->inputs[1], *out = &l->outputs[0];
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    kiln_view_broadcast_strides(a, out, sa);
    kiln_view_broadcast_strides(b, out, sb);
    int64_t total = kiln_cpu_numel(out), idx[KILN_MAX_RANK] = {0}, oa = 0, ob = 0;
    kiln_dtype dt = a->dtype;
    bool is_float = kiln_dtype_is_float(dt);
    uint8_t *o = out->data;
    int op = l->subop;
    for (int64_t t = 0; t < total; t++) {
        if (is_float) {
            double x = kiln_cpu_load_f64(a->data, dt, oa), y = kiln_cpu_load_f64(b->data, dt, ob);
            o[t] = COMPARE(x, y, op);
        } else {
            int64_t x = kiln_cpu_load_i64(a->data, dt, oa), y = kiln_cpu_load_i64(b->data, dt, ob);
            o[t] = COMPARE(x, y, op);
        }
        for (int32_t ax = out->rank - 1; ax >= 0; ax--) {
            oa += sa[ax];
            ob += sb[ax];
            if (++idx[ax] < out->dims[ax]) break;
            oa -= sa[ax] * out->dims[ax];
            ob -= sb[ax] * out->dims[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}
