/* op_views.h — the index arithmetic of the ops that move or reduce data,
 * shared by both backends.
 *
 * Transpose, slice, expand and concat are each a strided copy: every output
 * element comes from one input element whose offset is an affine function of
 * the output index.  Reductions, softmax and the norms walk an input as kept
 * axes around reduced ones.  The plans below turn a launch (shapes, axis,
 * attribute values) into those strides once, so that a CPU loop and a CUDA
 * kernel read the same elements.  Header-only: the CUDA module may not link
 * libkiln.  Element counts fit in int64 (the runtime checked the byte sizes). */
#ifndef KILN_OPS_OP_VIEWS_H
#define KILN_OPS_OP_VIEWS_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/plugin.h"   /* kiln_tensor_desc, KILN_MAX_RANK */

/* The index functions kernels call run on the device too. */
#ifdef __CUDACC__
#define KILN_VIEW_FN static inline __host__ __device__
#else
#define KILN_VIEW_FN static inline
#endif

/* Copy dims[] elements from src + src_offset (src_strides) to dst +
 * dst_offset (dst_strides); offsets and strides count elements. */
typedef struct kiln_copy_view {
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t src_offset, dst_offset;
    int64_t src_strides[KILN_MAX_RANK], dst_strides[KILN_MAX_RANK];
} kiln_copy_view;

static inline int64_t kiln_view_numel(int32_t rank, const int64_t *dims) {
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++) n *= dims[i];
    return n;
}

/* Row-major strides of dims. */
static inline void kiln_view_strides(int32_t rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int32_t i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

/* The destination is the whole of out, row-major. */
static inline void kiln_view_whole_output(const kiln_tensor_desc *out, kiln_copy_view *v) {
    v->rank = out->rank;
    for (int32_t i = 0; i < out->rank; i++) v->dims[i] = out->dims[i];
    v->dst_offset = 0;
    kiln_view_strides(out->rank, out->dims, v->dst_strides);
}

/* ONNX Slice on numbers: negative start/end count from the end, then both
 * are clamped ([0, n] for a positive step, [-1, n-1] for a negative one).
 * Gives the first index read and the count (op_table.c's slice_length is the
 * same rule on expressions). */
static inline void kiln_slice_bounds(int64_t n, int64_t start, int64_t end, int64_t step, int64_t *first,
                                     int64_t *count) {
    if (start < 0) start += n;
    if (end < 0) end += n;
    int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? n : n - 1;
    start = start < lo ? lo : start > hi ? hi : start;
    end = end < lo ? lo : end > hi ? hi : end;
    int64_t span = step > 0 ? end - start : start - end, mag = step > 0 ? step : -step;
    *first = start;
    *count = span > 0 ? (span + mag - 1) / mag : 0;
}

/* TRANSPOSE: out axis i reads in axis perm[i] (attrs: perm). */
static inline void kiln_view_transpose(const kiln_tensor_desc *in, const kiln_tensor_desc *out, const int64_t *perm,
                                       kiln_copy_view *v) {
    int64_t in_strides[KILN_MAX_RANK];
    kiln_view_strides(in->rank, in->dims, in_strides);
    kiln_view_whole_output(out, v);
    v->src_offset = 0;
    for (int32_t i = 0; i < out->rank; i++) v->src_strides[i] = in_strides[perm[i]];
}

/* SLICE (attrs: steps[r], starts[r], ends[r]). */
static inline void kiln_view_slice(const kiln_tensor_desc *in, const kiln_tensor_desc *out, const int64_t *attrs,
                                   kiln_copy_view *v) {
    int32_t r = in->rank;
    int64_t in_strides[KILN_MAX_RANK];
    kiln_view_strides(r, in->dims, in_strides);
    kiln_view_whole_output(out, v);
    v->src_offset = 0;
    for (int32_t i = 0; i < r; i++) {
        int64_t first, count;
        kiln_slice_bounds(in->dims[i], attrs[r + i], attrs[2 * r + i], attrs[i], &first, &count);
        if (count > 0) v->src_offset += first * in_strides[i];
        v->src_strides[i] = attrs[i] * in_strides[i];
    }
}

/* EXPAND and any numpy broadcast of t to out: strides of t aligned right,
 * 0 on axes t lacks or has as 1. */
static inline void kiln_view_broadcast_strides(const kiln_tensor_desc *t, const kiln_tensor_desc *out,
                                               int64_t *strides) {
    int32_t shift = out->rank - t->rank;
    int64_t s = 1;
    for (int32_t i = out->rank - 1; i >= 0; i--) {
        int64_t d = i >= shift ? t->dims[i - shift] : 1;
        strides[i] = d == 1 ? 0 : s;
        s *= d;
    }
}

static inline void kiln_view_expand(const kiln_tensor_desc *in, const kiln_tensor_desc *out, kiln_copy_view *v) {
    kiln_view_whole_output(out, v);
    v->src_offset = 0;
    kiln_view_broadcast_strides(in, out, v->src_strides);
}

/* CONCAT: input k goes to out at `at` along axis (the sum of the earlier
 * inputs' sizes there). */
static inline void kiln_view_concat_part(const kiln_tensor_desc *in, const kiln_tensor_desc *out, int64_t axis,
                                         int64_t at, kiln_copy_view *v) {
    int64_t out_strides[KILN_MAX_RANK];
    kiln_view_strides(out->rank, out->dims, out_strides);
    v->rank = in->rank;
    for (int32_t i = 0; i < in->rank; i++) {
        v->dims[i] = in->dims[i];
        v->dst_strides[i] = out_strides[i];
    }
    kiln_view_strides(in->rank, in->dims, v->src_strides);
    v->src_offset = 0;
    v->dst_offset = at * out_strides[axis];
}

/* PAD: the input goes to out at (before[0], before[1], ...) (attrs: the
 * pads' values, before then after, after the value's bits). */
static inline void kiln_view_pad(const kiln_tensor_desc *in, const kiln_tensor_desc *out, const int64_t *before,
                                 kiln_copy_view *v) {
    int64_t out_strides[KILN_MAX_RANK];
    kiln_view_strides(out->rank, out->dims, out_strides);
    v->rank = in->rank;
    v->dst_offset = 0;
    for (int32_t i = 0; i < in->rank; i++) {
        v->dims[i] = in->dims[i];
        v->dst_strides[i] = out_strides[i];
        v->dst_offset += before[i] * out_strides[i];
    }
    kiln_view_strides(in->rank, in->dims, v->src_strides);
    v->src_offset = 0;
}

/* PAD's source index along an axis of n elements for output index o with
 * `before` new elements ahead (n >= 1; constant mode has no source outside
 * [0, n): callers fill those). */
KILN_VIEW_FN int64_t kiln_pad_source(int64_t o, int64_t n, int64_t before, int64_t mode) {
    int64_t s = o - before;
    if (s >= 0 && s < n) return s;
    if (mode == KILN_PAD_EDGE) return s < 0 ? 0 : n - 1;
    if (mode == KILN_PAD_WRAP) return ((s % n) + n) % n;
    if (n == 1) return 0;                             /* reflect: period 2(n-1), mirrored */
    int64_t period = 2 * (n - 1), k = ((s % period) + period) % period;
    return k < n ? k : period - k;
}

/* Merge neighbouring axes that both sides walk contiguously and drop size-1
 * axes, so that loops run long and kernels decode few indices. */
static inline void kiln_copy_view_simplify(kiln_copy_view *v) {
    int32_t r = 0;
    for (int32_t i = 0; i < v->rank; i++) {
        if (v->dims[i] == 1) continue;
        if (r > 0 && v->src_strides[r - 1] == v->src_strides[i] * v->dims[i] &&
            v->dst_strides[r - 1] == v->dst_strides[i] * v->dims[i]) {
            v->dims[r - 1] *= v->dims[i];
            v->src_strides[r - 1] = v->src_strides[i];
            v->dst_strides[r - 1] = v->dst_strides[i];
            continue;
        }
        v->dims[r] = v->dims[i];
        v->src_strides[r] = v->src_strides[i];
        v->dst_strides[r] = v->dst_strides[i];
        r++;
    }
    if (r == 0) {   /* one element, or none when some dim is 0 (numel says which) */
        v->dims[0] = kiln_view_numel(v->rank, v->dims);
        v->src_strides[0] = v->dst_strides[0] = 1;
        r = 1;
    }
    v->rank = r;
}

/* A reduction: each output element reduces `count` input elements.  Output
 * element o (row-major over the kept axes) starts at
 *   sum over kept axes j of idx_j(o) * kept_strides[j]
 * and its elements are at that plus sum over reduced axes of idx * red_strides. */
typedef struct kiln_reduce_view {
    int32_t kept_rank, red_rank;
    int64_t kept_dims[KILN_MAX_RANK], kept_strides[KILN_MAX_RANK];
    int64_t red_dims[KILN_MAX_RANK], red_strides[KILN_MAX_RANK];
    int64_t outputs, count;
} kiln_reduce_view;

/* attrs: keepdims, then the reduced axes (ascending). */
static inline void kiln_view_reduce(const kiln_tensor_desc *in, const int64_t *attrs, int32_t attr_count,
                                    kiln_reduce_view *v) {
    int64_t strides[KILN_MAX_RANK];
    bool reduced[KILN_MAX_RANK] = {false};
    kiln_view_strides(in->rank, in->dims, strides);
    for (int32_t i = 1; i < attr_count; i++) reduced[attrs[i]] = true;
    v->kept_rank = v->red_rank = 0;
    v->outputs = v->count = 1;
    for (int32_t i = 0; i < in->rank; i++) {
        if (reduced[i]) {
            v->red_dims[v->red_rank] = in->dims[i];
            v->red_strides[v->red_rank++] = strides[i];
            v->count *= in->dims[i];
        } else {
            v->kept_dims[v->kept_rank] = in->dims[i];
            v->kept_strides[v->kept_rank++] = strides[i];
            v->outputs *= in->dims[i];
        }
    }
}

/* Offset of output element o's first input element, and of reduced element k. */
KILN_VIEW_FN int64_t kiln_reduce_base(const kiln_reduce_view *v, int64_t o) {
    int64_t off = 0;
    for (int32_t j = v->kept_rank - 1; j >= 0; j--) {
        off += (o % v->kept_dims[j]) * v->kept_strides[j];
        o /= v->kept_dims[j];
    }
    return off;
}
KILN_VIEW_FN int64_t kiln_reduce_offset(const kiln_reduce_view *v, int64_t k) {
    if (v->red_rank == 1) return k * v->red_strides[0];
    int64_t off = 0;
    for (int32_t j = v->red_rank - 1; j >= 0; j--) {
        off += (k % v->red_dims[j]) * v->red_strides[j];
        k /= v->red_dims[j];
    }
    return off;
}

/* SOFTMAX over axis: outer × n × inner; element (o, j, i) is at (o·n + j)·inner + i. */
static inline void kiln_view_axis(const kiln_tensor_desc *t, int64_t axis, int64_t *outer, int64_t *n,
                                  int64_t *inner) {
    *outer = kiln_view_numel((int32_t)axis, t->dims);
    *n = t->dims[axis];
    *inner = kiln_view_numel(t->rank - (int32_t)axis - 1, t->dims + axis + 1);
}

#endif
