/* conv.cu — CONV and CONV_TRANSPOSE (ONNX Conv, ConvTranspose) over 1 to 3
 * spatial axes: direct kernels.
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
    int64_t C, M, cg, mg;             /* channels in, out; per group (both ops: C in, M out) */
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

/* CONV_TRANSPOSE: the output element (n, m, o) sums x[n, c, i] · w[c, m', t]
 * over the group's input channels c and the taps t whose input position i =
 * (o + pad - t·dilation) / stride is whole and inside the input.  Here
 * g.C and g.cg count input channels, g.M and g.mg output channels. */
template <typename T>
__global__ void kc_conv_transpose(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ bias,
                                  T *__restrict__ y, int64_t total, kc_conv_geom g) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        int64_t p = e % g.positions, nm = e / g.positions;
        int64_t m = nm % g.M, n = nm / g.M, grp = m / g.mg, mm = m % g.mg;
        int64_t o[3] = {0, 0, 0}, rest = p;
        for (int i = g.k - 1; i >= 0; i--) {
            o[i] = rest % g.out[i];
            rest /= g.out[i];
        }
        int64_t full[3];
        for (int i = 0; i < 3; i++) full[i] = o[i] + g.pad[i];
        float sum = 0.0f;
        for (int64_t c = 0; c < g.cg; c++) {
            const int64_t ch = grp * g.cg + c;
            const T *xc = x + (n * g.C + ch) * g.in_plane;
            const T *wc = w + (ch * g.mg + mm) * g.taps;
            for (int64_t t0 = 0; t0 < g.ker[0]; t0++) {
                int64_t v0 = full[0] - t0 * g.dil[0];
                if (v0 < 0 || v0 % g.stride[0] || v0 / g.stride[0] >= g.in[0]) continue;
                for (int64_t t1 = 0; t1 < g.ker[1]; t1++) {
                    int64_t v1 = full[1] - t1 * g.dil[1];
                    if (v1 < 0 || v1 % g.stride[1] || v1 / g.stride[1] >= g.in[1]) continue;
                    for (int64_t t2 = 0; t2 < g.ker[2]; t2++) {
                        int64_t v2 = full[2] - t2 * g.dil[2];
                        if (v2 < 0 || v2 % g.stride[2] || v2 / g.stride[2] >= g.in[2]) continue;
                        int64_t i0 = v0 / g.stride[0], i1 = v1 / g.stride[1], i2 = v2 / g.stride[2];
                        float xv = kc_to_f32(xc[(i0 * g.in[1] + i1) * g.in[2] + i2]);
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
static void kc_conv_launch(const kiln_layer_launch *l, int64_t total, const kc_conv_geom &g, bool transposed,
                           cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    const T *x = (const T *)l->inputs[0].data, *w = (const T *)l->inputs[1].data;
    unsigned grid = kiln_cuda_grid(total, KC_THREADS);
    if (transposed) kc_conv_transpose<T><<<grid, KC_THREADS, 0, s>>>(x, w, bias, (T *)l->outputs[0].data, total, g);
    else kc_conv<T><<<grid, KC_THREADS, 0, s>>>(x, w, bias, (T *)l->outputs[0].data, total, g);
}

/* Both ops: the geometry from the launch, checked against what the rule allows. */
static kiln_status kc_conv_run(const kiln_layer_launch *l, bool transposed, cudaStream_t s) {
    const char *what = transposed ? "conv_transpose" : "conv";
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    kc_conv_geom g;
    g.k = x->rank - 2;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (g.k < 1 || g.k > 3 || w->rank != x->rank || out->rank != x->rank || l->attr_count != 1 + 4 * g.k)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s of rank %d with %d attributes", what,
                              (int)x->rank, (int)l->attr_count);
    const int64_t *a = l->attrs, group = a[0];
    g.C = x->dims[1];
    bool ok;
    if (transposed) {   /* w [C, M/group, K..] */
        g.cg = group > 0 ? g.C / group : 0;
        g.mg = w->dims[1];
        g.M = g.mg * group;
        ok = group >= 1 && g.cg * group == g.C && w->dims[0] == g.C;
    } else {            /* w [M, C/group, K..] */
        g.M = w->dims[0];
        g.cg = w->dims[1];
        g.mg = group > 0 ? g.M / group : 0;
        ok = group >= 1 && g.cg * group == g.C && g.mg * group == g.M;
    }
    if (!ok || out->dims[1] != g.M || out->dims[0] != x->dims[0])
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s channels: input %lld, weight [%lld, %lld], "
                              "group %lld", what, (long long)g.C, (long long)w->dims[0], (long long)w->dims[1],
                              (long long)group);
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
    case KILN_FLOAT32: kc_conv_launch<float>(l, total, g, transposed, s); break;
    case KILN_FLOAT16: kc_conv_launch<__half>(l, total, g, transposed, s); break;
    case KILN_BFLOAT16: kc_conv_launch<__nv_bfloat16>(l, total, g, transposed, s); break;
    default: return kiln_cuda_unsupported(what, out->dtype);
    }
    return kiln_cuda_check_launch(what);
}

extern "C" kiln_status kiln_cuda_conv_run(const kiln_layer_launch *l, cudaStream_t s) {
    return kc_conv_run(l, false, s);
}

extern "C" kiln_status kiln_cuda_conv_transpose_run(const kiln_layer_launch *l, cudaStream_t s) {
    return kc_conv_run(l, true, s);
}
