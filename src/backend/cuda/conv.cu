/* conv.cu — CONV (ONNX Conv) over 1 to 3 spatial axes: a direct kernel.
 *
 * One thread per output element (grid-stride): it sums x under the dilated
 * kernel window of its group's C/group channels times the weights, in
 * float32 whatever the dtype (as the CPU backend does), adds the bias and
 * rounds once.  Taps that fall in the padding are skipped.
 *
 * Why direct rather than im2col + cuBLAS: built-in layers have no workspace
 * on this backend (only plugins declare one), and an im2col matrix is
 * C/group·K1·…·Kk times the output's positions, too large to allocate per
 * launch.  The direct kernel is correct for every shape and fast enough for
 * the small convolutions of the models imported so far (stems, depthwise
 * and 1-D convolutions of audio and speech front ends); a tiled or
 * implicit-GEMM kernel is the way to speed it up. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

/* The geometry, passed by value (the rule's canonical attributes). */
struct kc_conv_geom {
    int     k;                        /* spatial axes, 1 to 3 */
    int64_t C, M, cg, mg;             /* channels in, out; per group */
    int64_t in[3], ker[3], out[3];    /* unused axes are 1 */
    int64_t stride[3], dil[3], pad[3];
    int64_t taps, positions, in_plane;
};

template <typename T>
__global__ void kc_conv(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ bias,
                        T *__restrict__ y, int64_t total, kc_conv_geom g) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        /* e = ((n·M + m)·P + position) */
        int64_t p = e % g.positions, nm = e / g.positions;
        int64_t m = nm % g.M, n = nm / g.M, grp = m / g.mg;
        int64_t o[3] = {0, 0, 0}, rest = p;
        for (int i = g.k - 1; i >= 0; i--) {
            o[i] = rest % g.out[i];
            rest /= g.out[i];
        }
        int64_t start[3];
        for (int i = 0; i < 3; i++) start[i] = o[i] * g.stride[i] - g.pad[i];
        const T *xg = x + (n * g.C + grp * g.cg) * g.in_plane;
        const T *wm = w + m * g.cg * g.taps;
        float sum = 0.0f;
        for (int64_t c = 0; c < g.cg; c++) {
            const T *xc = xg + c * g.in_plane;
            const T *wc = wm + c * g.taps;
            for (int64_t t0 = 0; t0 < g.ker[0]; t0++) {
                int64_t a0 = start[0] + t0 * g.dil[0];
                if (a0 < 0 || a0 >= g.in[0]) continue;
                for (int64_t t1 = 0; t1 < g.ker[1]; t1++) {
                    int64_t a1 = start[1] + t1 * g.dil[1];
                    if (a1 < 0 || a1 >= g.in[1]) continue;
                    for (int64_t t2 = 0; t2 < g.ker[2]; t2++) {
                        int64_t a2 = start[2] + t2 * g.dil[2];
                        if (a2 < 0 || a2 >= g.in[2]) continue;
                        float xv = kc_to_f32(xc[(a0 * g.in[1] + a1) * g.in[2] + a2]);
                        float wv = kc_to_f32(wc[(t0 * g.ker[1] + t1) * g.ker[2] + t2]);
                        sum = fmaf(xv, wv, sum);
                    }
                }
            }
        }
        if (bias) sum += kc_to_f32(bias[m]);
        y[e] = kc_from_f32<T>(sum);
    }
}

extern "C" bool kiln_cuda_conv_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return false;
    for (int32_t i = 0; i < l->input_count; i++)
        if (l->inputs[i].dtype != dt) return false;
    return true;
}

template <typename T>
static void kc_conv_launch(const kiln_layer_launch *l, int64_t total, const kc_conv_geom &g, cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    kc_conv<T><<<kiln_cuda_grid(total, KC_THREADS), KC_THREADS, 0, s>>>(
        (const T *)l->inputs[0].data, (const T *)l->inputs[1].data, bias, (T *)l->outputs[0].data, total, g);
}

extern "C" kiln_status kiln_cuda_conv_run(const kiln_layer_launch *l, cudaStream_t s) {
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    kc_conv_geom g;
    g.k = x->rank - 2;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (g.k < 1 || g.k > 3 || w->rank != x->rank || out->rank != x->rank || l->attr_count != 1 + 4 * g.k)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: conv of rank %d with %d attributes", (int)x->rank,
                              (int)l->attr_count);
    const int64_t *a = l->attrs, group = a[0];
    g.C = x->dims[1];
    g.M = w->dims[0];
    g.cg = w->dims[1];
    g.mg = group > 0 ? g.M / group : 0;
    if (group < 1 || g.cg * group != g.C || g.mg * group != g.M || out->dims[1] != g.M || out->dims[0] != x->dims[0])
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: conv channels: input %lld, weight [%lld, %lld], "
                              "group %lld", (long long)g.C, (long long)g.M, (long long)g.cg, (long long)group);
    g.taps = g.positions = g.in_plane = 1;
    /* Spatial axes packed to the front; the missing ones are size 1 with no padding. */
    for (int i = 0; i < 3; i++) {
        bool used = i < g.k;
        g.in[i] = used ? x->dims[2 + i] : 1;
        g.ker[i] = used ? w->dims[2 + i] : 1;
        g.out[i] = used ? out->dims[2 + i] : 1;
        g.stride[i] = used ? a[1 + i] : 1;
        g.dil[i] = used ? a[1 + g.k + i] : 1;
        g.pad[i] = used ? a[1 + 2 * g.k + i] : 0;
        g.taps *= g.ker[i];
        g.positions *= g.out[i];
        g.in_plane *= g.in[i];
    }
    const int64_t total = kiln_cuda_numel(out);
    if (total == 0) return KILN_OK;
    switch (out->dtype) {
    case KILN_FLOAT32: kc_conv_launch<float>(l, total, g, s); break;
    case KILN_FLOAT16: kc_conv_launch<__half>(l, total, g, s); break;
    case KILN_BFLOAT16: kc_conv_launch<__nv_bfloat16>(l, total, g, s); break;
    default: return kiln_cuda_unsupported("conv", out->dtype);
    }
    return kiln_cuda_check_launch("conv");
}
