/* layer_shapes.c — concrete shape rules of the built-in layers, checked at run
 * time before any kernel touches memory (see engine_impl.h). */
#include <string.h>

#include "core/error.h"
#include "runtime/engine_impl.h"

static int64_t numel(const kiln_tensor_desc *t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

static int same_shape(const kiln_tensor_desc *a, const kiln_tensor_desc *b) {
    return a->rank == b->rank && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0;
}

/* Do `in`'s trailing axes broadcast to `out`'s (right-aligned) over axes [0, out_rank)? */
static int broadcasts_to(const kiln_tensor_desc *in, int32_t in_rank, const int64_t *out, int32_t out_rank) {
    if (in_rank > out_rank) return 0;
    for (int32_t i = 0; i < in_rank; i++) {
        int64_t a = in->dims[i], o = out[out_rank - in_rank + i];
        if (a != o && a != 1) return 0;
    }
    return 1;
}

/* The broadcast of a and b must be exactly out (so no size is invented). */
static int broadcast_equals(const kiln_tensor_desc *a, int32_t ra, const kiln_tensor_desc *b, int32_t rb,
                            const int64_t *out, int32_t ro) {
    int32_t r = ra > rb ? ra : rb;
    if (r != ro || !broadcasts_to(a, ra, out, ro) || !broadcasts_to(b, rb, out, ro)) return 0;
    for (int32_t i = 0; i < r; i++) {
        int32_t ia = i - (r - ra), ib = i - (r - rb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        int64_t want = da == 1 ? db : da;
        if (out[i] != want) return 0;
    }
    return 1;
}

kiln_status kiln_layer_check_shapes(const kiln_engine *e, int32_t layer, const kiln_tensor_desc *descs) {
    const kiln_layer_record *r = &e->desc.layers[layer];
    const kiln_tensor_desc *in0 = &descs[0], *out = &descs[r->input_count];
    int ok = 1;
    switch ((kiln_op)r->op) {
    case KILN_OP_CAST:
    case KILN_OP_UNARY:
        ok = same_shape(in0, out);
        break;
    case KILN_OP_RESHAPE:
        ok = numel(in0) == numel(out);
        break;
    case KILN_OP_BINARY:
        ok = broadcast_equals(in0, in0->rank, &descs[1], descs[1].rank, out->dims, out->rank);
        break;
    case KILN_OP_GATHER: {
        const kiln_tensor_desc *ix = &descs[1];
        int32_t axis = (int32_t)r->axis;
        ok = axis >= 0 && axis < in0->rank && out->rank == in0->rank - 1 + ix->rank;
        for (int32_t i = 0, k = 0; ok && i < in0->rank; i++) {
            if (i == axis) {
                for (int32_t j = 0; j < ix->rank; j++) ok &= out->dims[k++] == ix->dims[j];
            } else {
                ok &= out->dims[k++] == in0->dims[i];
            }
        }
        break;
    }
    case KILN_OP_MATMUL: {
        const kiln_tensor_desc *b = &descs[1];
        ok = in0->rank >= 2 && b->rank >= 2 && out->rank >= 2 && in0->dims[in0->rank - 1] == b->dims[b->rank - 2] &&
             out->dims[out->rank - 2] == in0->dims[in0->rank - 2] && out->dims[out->rank - 1] == b->dims[b->rank - 1] &&
             broadcast_equals(in0, in0->rank - 2, b, b->rank - 2, out->dims, out->rank - 2);
        break;
    }
    case KILN_OP_PLUGIN:
    case KILN_OP_COUNT:
        break;
    }
    if (ok) return KILN_OK;
    return kiln_error(KILN_ERROR_SHAPE, "layer %d (%s): input and output shapes do not satisfy the layer's rule "
                      "(inconsistent engine or input shapes)", layer, e->layer_details[layer]);
}
