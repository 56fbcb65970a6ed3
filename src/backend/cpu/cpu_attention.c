/* cpu_attention.c — ATTENTION: softmax(q kᵀ · scale) v for each batch,
 * query head and query row; query head h reads key/value head
 * h / (Hq / Hkv) (grouped-query heads).  causal: query i sees keys j <= i.
 * Scores, softmax and the weighted sum in double (the reference the CUDA
 * kernel is compared with); a row that sees no key gives zeros. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"

bool kiln_cpu_attention_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return kiln_dtype_is_float(dt) && l->inputs[1].dtype == dt && l->inputs[2].dtype == dt &&
           l->outputs[0].dtype == dt && l->attr_count == 2;
}

kiln_status kiln_cpu_attention(const kiln_layer_launch *l) {
    const kiln_tensor_desc *q = &l->inputs[0], *k = &l->inputs[1], *v = &l->inputs[2], *out = &l->outputs[0];
    kiln_dtype dt = q->dtype;
    int64_t B = q->dims[0], Hq = q->dims[1], Sq = q->dims[2], D = q->dims[3];
    int64_t Hk = k->dims[1], Sk = k->dims[2], Dv = v->dims[3];
    bool causal = l->attrs[0] != 0;
    double scale;
    memcpy(&scale, &l->attrs[1], sizeof scale);
    if (scale == 0) scale = D > 0 ? 1.0 / sqrt((double)D) : 1.0;
    int64_t group = Hk > 0 ? Hq / Hk : 1;
    double *p = kiln_malloc(sizeof(double) * (size_t)(Sk ? Sk : 1));
    double *acc = kiln_malloc(sizeof(double) * (size_t)(Dv ? Dv : 1));
    if (!p || !acc) {
        kiln_free(p);
        kiln_free(acc);
        return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: attention: out of memory");
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            int64_t kh = h / group;
            const int64_t qbase = (b * Hq + h) * Sq * D, kbase = (b * Hk + kh) * Sk * D, vbase = (b * Hk + kh) * Sk * Dv;
            for (int64_t i = 0; i < Sq; i++) {
                int64_t seen = causal ? (i + 1 < Sk ? i + 1 : Sk) : Sk;
                double max = -INFINITY, sum = 0;
                for (int64_t j = 0; j < seen; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++) s += kiln_cpu_load_f64(q->data, dt, qbase + i * D + d) * kiln_cpu_load_f64(k->data, dt, kbase + j * D + d);
                    p[j] = s * scale;
                    if (p[j] > max) max = p[j];
                }
                for (int64_t j = 0; j < seen; j++) sum += (p[j] = exp(p[j] - max));
                for (int64_t d = 0; d < Dv; d++) acc[d] = 0;
                for (int64_t j = 0; j < seen; j++)
                    for (int64_t d = 0; d < Dv; d++) acc[d] += p[j] * kiln_cpu_load_f64(v->data, dt, vbase + j * Dv + d);
                int64_t obase = ((b * Hq + h) * Sq + i) * Dv;
                for (int64_t d = 0; d < Dv; d++) kiln_cpu_store_f64(out->data, dt, obase + d, seen ? acc[d] / sum : 0.0);
            }
        }
    kiln_free(p);
    kiln_free(acc);
    return KILN_OK;
}
