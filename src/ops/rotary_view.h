/* rotary_view.h — where ROTARY_EMBEDDING (ONNX RotaryEmbedding) reads and
 * writes, shared by both backends.
 *
 * x is seen as rows of one head each, [batch, seq, heads, head] whatever its
 * layout: a 3-D x [B, S, H·D] has its heads side by side in a position's
 * row, a 4-D x [B, H, S, D] has each head's positions one after another, so
 * only the three strides between rows differ.  Of a row, the first 2·half
 * elements form `half` pairs rotated by the cache row of the row's position
 * (the pair's two elements are i and half + i, or 2i and 2i + 1 when
 * interleaved); the elements after them are copied.  half is the caches'
 * last axis, which the op rule ties to rotary_embedding_dim / 2 (or to
 * head / 2 when that is 0), so a kernel needs no attribute but interleaved
 * and num_heads.  Header-only: the CUDA module may not link libkiln. */
#ifndef KILN_OPS_ROTARY_VIEW_H
#define KILN_OPS_ROTARY_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/plugin.h"     /* kiln_tensor_desc */
#include "ops/op_views.h"    /* KILN_VIEW_FN */

typedef struct kiln_rotary_view {
    int64_t batch, seq, heads, head;       /* x as [batch, seq, heads, head] */
    int64_t half;                          /* pairs rotated per row: the caches' last axis */
    int64_t positions;                     /* the caches' rows, which position ids index (0: no ids) */
    int64_t stride_b, stride_s, stride_h;  /* elements of x between batches, positions and heads */
    bool    interleaved;
} kiln_rotary_view;

/* The view of a launch: x, the caches, position_ids or NULL, and the
 * attribute integers (interleaved, rotary_embedding_dim, num_heads).  False
 * when the shapes do not fit together (the runtime has checked them against
 * the op rule: only a launch made by hand can fail here). */
static inline bool kiln_rotary_view_init(kiln_rotary_view *v, const kiln_tensor_desc *x, const kiln_tensor_desc *cosc,
                                         const kiln_tensor_desc *sinc, const kiln_tensor_desc *pos,
                                         const int64_t *attrs, int32_t attr_count) {
    if (!attrs || attr_count != 3 || (attrs[0] != 0 && attrs[0] != 1) || attrs[2] < 0) return false;
    if (sinc->rank != cosc->rank) return false;
    for (int32_t i = 0; i < cosc->rank; i++)
        if (sinc->dims[i] != cosc->dims[i]) return false;
    v->interleaved = attrs[0] == 1;
    if (x->rank == 3) {
        int64_t n = attrs[2];
        if (n < 1 || x->dims[2] % n) return false;
        v->batch = x->dims[0];
        v->seq = x->dims[1];
        v->heads = n;
        v->head = x->dims[2] / n;
        v->stride_h = v->head;
        v->stride_s = x->dims[2];
        v->stride_b = v->seq * x->dims[2];
    } else if (x->rank == 4) {
        v->batch = x->dims[0];
        v->heads = x->dims[1];
        v->seq = x->dims[2];
        v->head = x->dims[3];
        v->stride_s = v->head;
        v->stride_h = v->seq * v->head;
        v->stride_b = v->heads * v->stride_h;
    } else {
        return false;
    }
    if (pos) {
        if (pos->rank != 2 || pos->dims[0] != v->batch || pos->dims[1] != v->seq || cosc->rank != 2) return false;
        v->positions = cosc->dims[0];
    } else {
        if (cosc->rank != 3 || cosc->dims[0] != v->batch || cosc->dims[1] != v->seq) return false;
        v->positions = 0;
    }
    v->half = cosc->dims[cosc->rank - 1];
    return v->half >= 0 && 2 * v->half <= v->head;
}

/* The first element of the row of (b, s, h) in x and in the output. */
KILN_VIEW_FN int64_t kiln_rotary_row(const kiln_rotary_view *v, int64_t b, int64_t s, int64_t h) {
    return b * v->stride_b + s * v->stride_s + h * v->stride_h;
}

/* Pair i's two elements within a row. */
KILN_VIEW_FN void kiln_rotary_pair(const kiln_rotary_view *v, int64_t i, int64_t *first, int64_t *second) {
    if (v->interleaved) {
        *first = 2 * i;
        *second = 2 * i + 1;
    } else {
        *first = i;
        *second = v->half + i;
    }
}

#endif
