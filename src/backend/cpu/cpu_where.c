/* cpu_where.c — WHERE: out = cond ? a : b, the three broadcast numpy-style.
 * Any value dtype (only the element size matters); cond is bool (nonzero
 * bytes are true). */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"

bool kiln_cpu_where_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    size_t es = kiln_dtype_size(dt);
    return l->inputs[0].dtype == KILN_BOOL && l->inputs[1].dtype == dt && l->inputs[2].dtype == dt && es > 0 &&
           es <= 8;
}

kiln_status kiln_cpu_where(const kiln_layer_launch *l) {
    const kiln_tensor_desc *out = &l->outputs[0];
    size_t es = kiln_dtype_size(out->dtype);
    int64_t sc[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    kiln_view_broadcast_strides(&l->inputs[0], out, sc);
    kiln_view_broadcast_strides(&l->inputs[1], out, sa);
    kiln_view_broadcast_strides(&l->inputs[2], out, sb);
    int64_t total = kiln_cpu_numel(out);
    const uint8_t *c = l->inputs[0].data;
    const char *a = l->inputs[1].data, *b = l->inputs[2].data;
    char *o = out->data;
    int64_t idx[KILN_MAX_RANK] = {0}, oc = 0, oa = 0, ob = 0;
    for (int64_t t = 0; t < total; t++) {
        memcpy(o + t * (int64_t)es, c[oc] ? a + oa * (int64_t)es : b + ob * (int64_t)es, es);
        for (int32_t ax = out->rank - 1; ax >= 0; ax--) {
            oc += sc[ax];
            oa += sa[ax];
            ob += sb[ax];
            if (++idx[ax] < out->dims[ax]) break;
            oc -= sc[ax] * out->dims[ax];
            oa -= sa[ax] * out->dims[ax];
            ob -= sb[ax] * out->dims[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}
