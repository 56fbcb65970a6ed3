/* gather_elements.cu — GATHER_ELEMENTS (torch.gather, ONNX GatherElements):
 * one thread per output element.  Negative indices count from the end; an
 * index outside the axis gives a zero element (a kernel cannot report; the
 * CPU backend fails naming it), and nothing outside data is read. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"

typedef struct kc_ge_view {
    int32_t rank, axis;
    int64_t out_dims[KILN_MAX_RANK], data_strides[KILN_MAX_RANK], axis_len;
} kc_ge_view;

template <typename U, typename I>
__global__ void kc_gather_elements(const U *__restrict__ data, const I *__restrict__ ix, U *__restrict__ out,
                                   kc_ge_view v, int64_t n) {
    for (int64_t t = kc_thread_index(); t < n; t += kc_grid_stride()) {
        int64_t rest = t, off = 0;
        bool ok = true;
        for (int32_t i = v.rank - 1; i >= 0; i--) {
            int64_t c = rest % v.out_dims[i];
            rest /= v.out_dims[i];
            if (i == v.axis) {
                c = (int64_t)ix[t];
                if (c < 0) c += v.axis_len;
                ok = c >= 0 && c < v.axis_len;
            }
            off += c * v.data_strides[i];
        }
        out[t] = ok ? data[off] : U{};
    }
}

extern "C" bool kiln_cuda_gather_elements_supports(const kiln_layer_launch *l) {
    kiln_dtype index = l->inputs[1].dtype;
    size_t es = kiln_cuda_dtype_size(l->inputs[0].dtype);
    return (index == KILN_INT32 || index == KILN_INT64) && (es == 1 || es == 2 || es == 4 || es == 8) &&
           l->outputs[0].dtype == l->inputs[0].dtype;
}

template <typename U>
static void launch(const kiln_layer_launch *l, const kc_ge_view &v, int64_t n, cudaStream_t s) {
    unsigned grid = kiln_cuda_grid(n, KC_THREADS);
    if (l->inputs[1].dtype == KILN_INT32)
        kc_gather_elements<U, int32_t><<<grid, KC_THREADS, 0, s>>>((const U *)l->inputs[0].data,
                                                                   (const int32_t *)l->inputs[1].data,
                                                                   (U *)l->outputs[0].data, v, n);
    else
        kc_gather_elements<U, int64_t><<<grid, KC_THREADS, 0, s>>>((const U *)l->inputs[0].data,
                                                                   (const int64_t *)l->inputs[1].data,
                                                                   (U *)l->outputs[0].data, v, n);
}

extern "C" kiln_status kiln_cuda_gather_elements_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *data = &l->inputs[0], *out = &l->outputs[0];
    kc_ge_view v;
    v.rank = out->rank;
    v.axis = (int32_t)l->axis;
    v.axis_len = data->dims[l->axis];
    for (int32_t i = 0; i < out->rank; i++) v.out_dims[i] = out->dims[i];
    kiln_view_strides(data->rank, data->dims, v.data_strides);
    int64_t n = kiln_cuda_numel(out);
    switch (kiln_cuda_dtype_size(data->dtype)) {
    case 1: launch<uint8_t>(l, v, n, stream); break;
    case 2: launch<uint16_t>(l, v, n, stream); break;
    case 4: launch<uint32_t>(l, v, n, stream); break;
    default: launch<uint64_t>(l, v, n, stream); break;
    }
    return kiln_cuda_check_launch("gather_elements");
}
