/* resize_view.h — RESIZE's (ONNX Resize) coordinate arithmetic, shared by
 * both backends so that they read the same input elements with the same
 * weights.
 *
 * Each axis is interpolated on its own (separable): output index x maps to
 * a source coordinate x_in by the coordinate transformation (in double,
 * from the stored scale, or out/in when it is 0, as ONNX's reference
 * does), and x_in to at most 4 taps (index, weight).  ONNX's reference
 * takes the neighbours "left of x_in" preferred: left = ceil(x_in) - 1 and
 * ratio = x_in - left in (0, 1] (1 when x_in is an integer):
 *   nearest: one tap, left or left + 1 by the rounding rule (an integer
 *            x_in is itself);
 *   linear:  left, left + 1 with 1 - ratio, ratio;
 *   cubic:   left - 1 .. left + 2 with Keys' coefficients of parameter A.
 * Indices outside [0, in) read the edge element (ONNX pads with "edge");
 * with exclude_outside their weight is 0 and the others are renormalized.
 * Taps of weight 0 are dropped (so an axis not resized costs one tap; a
 * product 0·inf is not formed, as torch does not form it either).  x_in is
 * clamped to [-4, in + 4] first, which changes no result (every tap there
 * reads the edge, with weights summing to 1) but keeps a crafted scale from
 * producing an integer overflow.  Header-only: the CUDA module may not
 * link libkiln. */
#ifndef KILN_OPS_RESIZE_VIEW_H
#define KILN_OPS_RESIZE_VIEW_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/engine_desc.h"
#include "ops/op_views.h"    /* KILN_VIEW_FN */

#define KILN_RESIZE_MAX_RANK 8   /* KILN_MAX_RANK */
#define KILN_RESIZE_MAX_TAPS 4

typedef struct kiln_resize_view {
    int32_t rank, mode, coord, nearest, exclude;
    double  a;                                   /* cubic_coeff_a */
    int64_t in[KILN_RESIZE_MAX_RANK], out[KILN_RESIZE_MAX_RANK];
    double  scale[KILN_RESIZE_MAX_RANK];         /* the stored scale, or out/in */
} kiln_resize_view;

/* The view of a launch: x's and out's dims (rank r), attrs: mode, coord,
 * nearest, exclude_outside, cubic_coeff_a's bits, r scales' bits, then the r
 * sizes' values.  0 when the attributes do not fit the rule's canonical
 * form or the sizes are not out's dims. */
KILN_VIEW_FN int kiln_resize_view_make(kiln_resize_view *v, const int64_t *xdims, const int64_t *odims, int32_t rank,
                                       const int64_t *attrs, int32_t attr_count) {
    if (rank < 1 || rank > KILN_RESIZE_MAX_RANK || attr_count != 5 + 2 * rank) return 0;
    if (attrs[0] < 0 || attrs[0] >= KILN_RESIZE_MODE_COUNT || attrs[1] < 0 || attrs[1] >= KILN_RESIZE_COORD_COUNT ||
        attrs[2] < 0 || attrs[2] >= KILN_RESIZE_NEAREST_COUNT || (attrs[3] != 0 && attrs[3] != 1))
        return 0;
    v->rank = rank;
    v->mode = (int32_t)attrs[0];
    v->coord = (int32_t)attrs[1];
    v->nearest = (int32_t)attrs[2];
    v->exclude = (int32_t)attrs[3];
    memcpy(&v->a, &attrs[4], sizeof v->a);
    if (!(v->a >= -1000.0 && v->a <= 1000.0)) return 0;
    for (int32_t i = 0; i < rank; i++) {
        double s;
        memcpy(&s, &attrs[5 + i], sizeof s);
        v->in[i] = xdims[i];
        v->out[i] = odims[i];
        if (attrs[5 + rank + i] != odims[i] || odims[i] < 0 || xdims[i] < 0 || (xdims[i] == 0 && odims[i] != 0))
            return 0;
        if (s == 0.0) s = xdims[i] ? (double)odims[i] / (double)xdims[i] : 1.0;
        if (!(s >= 1.0 / 4294967296.0 && s <= 4294967296.0)) {
            if (odims[i] != 0) return 0;   /* an empty output axis never asks */
            s = 1.0;
        }
        v->scale[i] = s;
    }
    return 1;
}

/* The taps of output index x of axis i: at most KILN_RESIZE_MAX_TAPS
 * (index in [0, in), weight); returns how many (>= 1 for an axis of
 * in >= 1). */
KILN_VIEW_FN int kiln_resize_taps(const kiln_resize_view *v, int32_t i, int64_t x, int64_t *idx, float *w) {
    const double s = v->scale[i], n_in = (double)v->in[i], len = s * n_in, xd = (double)x;
    double xi;
    switch (v->coord) {
    case KILN_RESIZE_ALIGN_CORNERS: xi = len == 1.0 ? 0.0 : xd * (n_in - 1.0) / (len - 1.0); break;
    case KILN_RESIZE_ASYMMETRIC: xi = xd / s; break;
    case KILN_RESIZE_PYTORCH_HALF_PIXEL: xi = len == 1.0 ? -0.5 : (xd + 0.5) / s - 0.5; break;
    case KILN_RESIZE_HALF_PIXEL_SYMMETRIC: {
        const double adjustment = (double)v->out[i] / len, center = n_in / 2.0;
        xi = center * (1.0 - adjustment) + (xd + 0.5) / s - 0.5;
        break;
    }
    default: xi = (xd + 0.5) / s - 0.5; break;
    }
    if (!(xi >= -4.0)) xi = -4.0;   /* NaN too */
    if (xi > n_in + 4.0) xi = n_in + 4.0;
    const double fl = floor(xi);
    const int64_t left = xi == fl ? (int64_t)fl - 1 : (int64_t)fl;
    const double ratio = xi == fl ? 1.0 : xi - fl;
    double wd[KILN_RESIZE_MAX_TAPS];
    int64_t first;
    int n;
    if (v->mode == KILN_RESIZE_NEAREST) {
        int right;
        if (ratio == 1.0) right = 1;
        else if (v->nearest == KILN_RESIZE_ROUND_PREFER_FLOOR) right = ratio > 0.5;
        else if (v->nearest == KILN_RESIZE_ROUND_PREFER_CEIL) right = ratio >= 0.5;
        else right = v->nearest == KILN_RESIZE_CEIL;
        int64_t j = left + right;
        idx[0] = j < 0 ? 0 : j >= v->in[i] ? v->in[i] - 1 : j;
        w[0] = 1.0f;
        return 1;
    } else if (v->mode == KILN_RESIZE_LINEAR) {
        n = 2;
        first = left;
        wd[0] = 1.0 - ratio;
        wd[1] = ratio;
    } else {
        const double A = v->a, r1 = ratio + 1.0, q = 1.0 - ratio, q1 = q + 1.0;
        n = 4;
        first = left - 1;
        wd[0] = ((A * r1 - 5.0 * A) * r1 + 8.0 * A) * r1 - 4.0 * A;
        wd[1] = ((A + 2.0) * ratio - (A + 3.0)) * ratio * ratio + 1.0;
        wd[2] = ((A + 2.0) * q - (A + 3.0)) * q * q + 1.0;
        wd[3] = ((A * q1 - 5.0 * A) * q1 + 8.0 * A) * q1 - 4.0 * A;
    }
    if (v->exclude) {
        double sum = 0.0;
        for (int t = 0; t < n; t++) {
            if (first + t < 0 || first + t >= v->in[i]) wd[t] = 0.0;
            sum += wd[t];
        }
        for (int t = 0; t < n; t++) wd[t] /= sum;   /* 0/0 when every tap is outside: NaN, as the reference */
    }
    int m = 0;
    for (int t = 0; t < n; t++) {
        if (wd[t] == 0.0) continue;
        const int64_t j = first + t;
        idx[m] = j < 0 ? 0 : j >= v->in[i] ? v->in[i] - 1 : j;
        w[m] = (float)wd[t];
        m++;
    }
    if (m == 0) {   /* every weight 0 (cannot happen for weights summing to 1): read the edge, weight 0 */
        idx[0] = first < 0 ? 0 : first >= v->in[i] ? v->in[i] - 1 : first;
        w[0] = 0.0f;
        m = 1;
    }
    return m;
}

#endif
