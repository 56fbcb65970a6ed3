/* where.cu — WHERE: out = cond ? a : b, the three broadcast numpy-style
 * (kiln_view_broadcast_strides, ops/op_views.h).  One thread per output
 * element; any value dtype by element size. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

typedef struct kc_where_view {
    int32_t rank;
    int64_t dims[KILN_MAX_RANK], sc[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
} kc_where_view;

template <typename U>
__global__ void kc_where(const uint8_t *__restrict__ c, const U *__restrict__ a, const U *__restrict__ b,
                         U *__restrict__ out, kc_where_view v, int64_t n) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) {
        int64_t rest = t, oc = 0, oa = 0, ob = 0;
        for (int32_t i = v.rank - 1; i >= 0; i--) {
            int64_t k = rest % v.dims[i];
            rest /= v.dims[i];
            oc += k * v.sc[i];
            oa += k * v.sa[i];
            ob += k * v.sb[i];
        }
        out[t] = c[oc] ? a[oa] : b[ob];
    }
}

extern "C" bool kiln_cuda_where_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    size_t es = kiln_cuda_dtype_size(dt);
    return l->inputs[0].dtype == KILN_BOOL && l->inputs[1].dtype == dt && l->inputs[2].dtype == dt &&
           (es == 1 || es == 2 || es == 4 || es == 8);
}

extern "C" kiln_status kiln_cuda_where_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *out = &l->outputs[0];
    kc_where_view v;
    v.rank = out->rank;
    for (int32_t i = 0; i < out->rank; i++) v.dims[i] = out->dims[i];
    kiln_view_broadcast_strides(&l->inputs[0], out, v.sc);
    kiln_view_broadcast_strides(&l->inputs[1], out, v.sa);
    kiln_view_broadcast_strides(&l->inputs[2], out, v.sb);
    int64_t n = kiln_cuda_numel(out);
    unsigned grid = kiln_cuda_grid(n, KC_THREADS);
    const uint8_t *c = (const uint8_t *)l->inputs[0].data;
    const void *a = l->inputs[1].data, *b = l->inputs[2].data;
    switch (kiln_cuda_dtype_size(out->dtype)) {
    case 1: kc_where<<<grid, KC_THREADS, 0, stream>>>(c, (const uint8_t *)a, (const uint8_t *)b, (uint8_t *)out->data, v, n); break;
    case 2: kc_where<<<grid, KC_THREADS, 0, stream>>>(c, (const uint16_t *)a, (const uint16_t *)b, (uint16_t *)out->data, v, n); break;
    case 4: kc_where<<<grid, KC_THREADS, 0, stream>>>(c, (const uint32_t *)a, (const uint32_t *)b, (uint32_t *)out->data, v, n); break;
    default: kc_where<<<grid, KC_THREADS, 0, stream>>>(c, (const uint64_t *)a, (const uint64_t *)b, (uint64_t *)out->data, v, n); break;
    }
    return kiln_cuda_check_launch("where");
}
