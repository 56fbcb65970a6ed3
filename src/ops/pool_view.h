/* pool_view.h — POOL's (ONNX MaxPool / AveragePool) window arithmetic,
 * shared by both backends so that they pick the same elements and divide
 * by the same counts.
 *
 * Output position o of a spatial axis starts its window at input index
 * o·stride - pad_begin; tap t reads index start + t·dilation.  Taps outside
 * [0, D) read nothing (max ignores them, average leaves them out of the sum);
 * with count_include_pad the divisor counts every tap before D + pad_end
 * (all but the part of a ceil-mode window that hangs past the padded end),
 * as torch and onnx's reference do.  A window with no input element gives
 * -inf (max) or NaN (average, 0/0); the rule keeps windows from starting
 * in the end padding, so only dilated windows that step over the input can
 * be empty.  Header-only: the CUDA module may not link libkiln. */
#ifndef KILN_OPS_POOL_VIEW_H
#define KILN_OPS_POOL_VIEW_H

#include <stdint.h>

#include "ops/op_views.h"    /* KILN_VIEW_FN */

typedef struct kiln_pool_view {
    int32_t k;                           /* spatial axes, 1 to 3 */
    int32_t ceil_mode, count_include_pad;
    int64_t in[3], out[3];               /* D1..Dk, O1..Ok */
    int64_t kernel[3], stride[3], dil[3], pad_begin[3], pad_end[3];
    int64_t in_plane, out_plane;         /* D1·…·Dk, O1·…·Ok */
} kiln_pool_view;

/* The view of a launch: x [N, C, D1..Dk] and out [N, C, O1..Ok] (ranks
 * checked by the caller), attrs ceil_mode, count_include_pad, kernel (k),
 * strides (k), dilations (k), pads (2k).  0 when the attribute count does
 * not fit the rank. */
KILN_VIEW_FN int kiln_pool_view_make(kiln_pool_view *v, const int64_t *xdims, const int64_t *odims, int32_t rank,
                                     const int64_t *attrs, int32_t attr_count) {
    const int32_t k = rank - 2;
    if (k < 1 || k > 3 || attr_count != 2 + 5 * k) return 0;
    v->k = k;
    v->ceil_mode = (int32_t)attrs[0];
    v->count_include_pad = (int32_t)attrs[1];
    v->in_plane = v->out_plane = 1;
    for (int32_t i = 0; i < k; i++) {
        v->in[i] = xdims[2 + i];
        v->out[i] = odims[2 + i];
        v->kernel[i] = attrs[2 + i];
        v->stride[i] = attrs[2 + k + i];
        v->dil[i] = attrs[2 + 2 * k + i];
        v->pad_begin[i] = attrs[2 + 3 * k + i];
        v->pad_end[i] = attrs[2 + 4 * k + i];
        v->in_plane *= v->in[i];
        v->out_plane *= v->out[i];
    }
    return 1;
}

/* Ceiling division for b > 0 and any a. */
KILN_VIEW_FN int64_t kiln_pool_cdiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* Of output position o on axis i: the window's start (an input index,
 * possibly negative), its taps [*t0, *t1) that fall in [0, D), and how many
 * taps the divisor counts (*counted). */
KILN_VIEW_FN int64_t kiln_pool_axis(const kiln_pool_view *v, int32_t i, int64_t o, int64_t *t0, int64_t *t1,
                                    int64_t *counted) {
    const int64_t start = o * v->stride[i] - v->pad_begin[i], d = v->dil[i], kk = v->kernel[i];
    int64_t a = start < 0 ? kiln_pool_cdiv(-start, d) : 0;
    int64_t b = kiln_pool_cdiv(v->in[i] - start, d);
    if (b > kk) b = kk;
    if (a > b) a = b;
    *t0 = a;
    *t1 = b;
    int64_t padded = kiln_pool_cdiv(v->in[i] + v->pad_end[i] - start, d);   /* taps before D + pad_end */
    if (padded > kk) padded = kk;
    if (padded < 0) padded = 0;
    *counted = v->count_include_pad ? padded : b - a;
    return start;
}

#endif
