/* layers.c — the built-in layers: dtype rules and symbolic shape inference. */
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/network_impl.h"
#include "engine/op_names.h"

static kiln_status single_output(kiln_network *net, kiln_op op, int32_t subop, int64_t axis, int32_t input_count,
                                 const kiln_tensor *inputs, kiln_dtype dtype, const kiln_shape_expr *shape,
                                 kiln_tensor *out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "adding a layer: out is NULL");
    return kiln_net_add_layer(net, op, subop, axis, input_count, inputs, 1, &dtype, shape, out);
}

kiln_status kiln_network_add_cast(kiln_network *net, kiln_tensor x, kiln_dtype dtype, kiln_tensor *out) {
    kiln_net_tensor *t = NULL;
    kiln_status s = kiln_net_tensor_get(net, x, "kiln_network_add_cast", &t);
    if (s) return s;
    if (!kiln_dtype_name(dtype))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cast of '%s': unknown target dtype %d",
                          kiln_net_tensor_label(net, x), (int)dtype);
    kiln_shape_expr shape = {.rank = t->rank};
    memcpy(shape.dims, t->shape, sizeof(kiln_expr) * (size_t)t->rank);
    return single_output(net, KILN_OP_CAST, 0, 0, 1, &x, dtype, &shape, out);
}

/*
 * numpy broadcasting of one axis.  Returns the output dim; when neither side
 * is provably 1 nor equal, records a run-time check that they are
 * compatible:  ok = (a == b) + (a == 1) + (b == 1) > 0,  out = b + (a - b)·(b == 1).
 */
static kiln_status broadcast_dim(kiln_network *net, const char *what, kiln_tensor ta, kiln_tensor tb, int axis,
                                 kiln_expr a, kiln_expr b, kiln_expr *out) {
    kiln_exprs *p = net->exprs;
    int64_t va, vb;
    int ca = kiln_expr_is_const(p, a, &va), cb = kiln_expr_is_const(p, b, &vb);
    if (a == b || (cb && vb == 1)) { *out = a; return KILN_OK; }
    if (ca && va == 1) { *out = b; return KILN_OK; }
    if (ca && cb)
        return kiln_error(KILN_ERROR_INVALID_NETWORK,
                          "%s of '%s' and '%s': sizes %lld and %lld cannot broadcast at output axis %d", what,
                          kiln_net_tensor_label(net, ta), kiln_net_tensor_label(net, tb), (long long)va,
                          (long long)vb, axis);
    kiln_expr one = kiln_expr_const(p, 1), zero = kiln_expr_const(p, 0);
    kiln_expr a_is_1 = kiln_expr_binary(p, KILN_EXPR_EQ, a, one), b_is_1 = kiln_expr_binary(p, KILN_EXPR_EQ, b, one);
    kiln_expr same = kiln_expr_binary(p, KILN_EXPR_EQ, a, b);
    kiln_expr any = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_ADD, same, a_is_1), b_is_1);
    kiln_expr ok = kiln_expr_binary(p, KILN_EXPR_LT, zero, any);
    *out = kiln_expr_binary(p, KILN_EXPR_ADD, b,
                            kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(p, KILN_EXPR_SUB, a, b), b_is_1));
    if (*out < 0) return KILN_ERROR_NO_MEMORY;
    char sa[128], sb[128];
    kiln_expr_format(p, a, sa, sizeof sa);
    kiln_expr_format(p, b, sb, sizeof sb);
    return kiln_net_add_check(net, ok, "%s of '%s' and '%s': sizes %s and %s cannot broadcast at output axis %d",
                              what, kiln_net_tensor_label(net, ta), kiln_net_tensor_label(net, tb), sa, sb, axis);
}

/* Broadcast the trailing `rank_a`/`rank_b` axes of two shapes (right-aligned). */
static kiln_status broadcast_shapes(kiln_network *net, const char *what, kiln_tensor ta, kiln_tensor tb,
                                    int32_t rank_a, const kiln_expr *a, int32_t rank_b, const kiln_expr *b,
                                    kiln_shape_expr *out) {
    int32_t rank = rank_a > rank_b ? rank_a : rank_b;
    out->rank = rank;
    for (int32_t i = 0; i < rank; i++) {
        int32_t ia = i - (rank - rank_a), ib = i - (rank - rank_b);
        if (ia < 0) { out->dims[i] = b[ib]; continue; }
        if (ib < 0) { out->dims[i] = a[ia]; continue; }
        kiln_status s = broadcast_dim(net, what, ta, tb, i, a[ia], b[ib], &out->dims[i]);
        if (s) return s;
    }
    return KILN_OK;
}

kiln_status kiln_network_add_binary(kiln_network *net, kiln_binary_op op, kiln_tensor a, kiln_tensor b,
                                    kiln_tensor *out) {
    kiln_net_tensor *x = NULL, *y = NULL;
    kiln_status s;
    if ((s = kiln_net_tensor_get(net, a, "kiln_network_add_binary", &x)) ||
        (s = kiln_net_tensor_get(net, b, "kiln_network_add_binary", &y)))
        return s;
    if ((unsigned)op >= KILN_BINARY_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_binary: unknown op %d", (int)op);
    const char *what = kiln_binary_op_name(op);
    if (x->dtype != y->dtype)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: dtype mismatch: '%s' is %s but '%s' is %s (cast one)",
                          what, kiln_net_tensor_label(net, a), kiln_dtype_name(x->dtype),
                          kiln_net_tensor_label(net, b), kiln_dtype_name(y->dtype));
    kiln_shape_expr shape;
    kiln_dtype dtype = x->dtype;
    /* x and y may move when the tensor array grows: copy the shapes first. */
    kiln_expr sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    int32_t ra = x->rank, rb = y->rank;
    memcpy(sa, x->shape, sizeof sa);
    memcpy(sb, y->shape, sizeof sb);
    if ((s = broadcast_shapes(net, what, a, b, ra, sa, rb, sb, &shape))) return s;
    kiln_tensor ins[2] = {a, b};
    return single_output(net, KILN_OP_BINARY, op, 0, 2, ins, dtype, &shape, out);
}

kiln_status kiln_network_add_unary(kiln_network *net, kiln_unary_op op, kiln_tensor x, kiln_tensor *out) {
    kiln_net_tensor *t = NULL;
    kiln_status s = kiln_net_tensor_get(net, x, "kiln_network_add_unary", &t);
    if (s) return s;
    if ((unsigned)op >= KILN_UNARY_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_unary: unknown op %d", (int)op);
    int is_signed_int = t->dtype == KILN_INT8 || t->dtype == KILN_INT32 || t->dtype == KILN_INT64;
    if (!kiln_dtype_is_float(t->dtype) && !(op == KILN_UNARY_NEG && is_signed_int))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported (%s)", kiln_unary_op_name(op),
                          kiln_net_tensor_label(net, x), kiln_dtype_name(t->dtype),
                          op == KILN_UNARY_NEG ? "floating-point or signed integer only" : "floating-point only");
    kiln_shape_expr shape = {.rank = t->rank};
    memcpy(shape.dims, t->shape, sizeof(kiln_expr) * (size_t)t->rank);
    return single_output(net, KILN_OP_UNARY, op, 0, 1, &x, t->dtype, &shape, out);
}

kiln_status kiln_network_add_gather(kiln_network *net, kiln_tensor data, kiln_tensor indices, int32_t axis,
                                    kiln_tensor *out) {
    kiln_net_tensor *d = NULL, *ix = NULL;
    kiln_status s;
    if ((s = kiln_net_tensor_get(net, data, "kiln_network_add_gather", &d)) ||
        (s = kiln_net_tensor_get(net, indices, "kiln_network_add_gather", &ix)))
        return s;
    if (ix->dtype != KILN_INT32 && ix->dtype != KILN_INT64)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: indices '%s' are %s; need int32 or int64",
                          kiln_net_tensor_label(net, indices), kiln_dtype_name(ix->dtype));
    if (d->rank < 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: data '%s' is a scalar", kiln_net_tensor_label(net, data));
    if (axis < 0) axis += d->rank;
    if (axis < 0 || axis >= d->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: axis %d is out of range for '%s' of rank %d", axis,
                          kiln_net_tensor_label(net, data), d->rank);
    int32_t rank = d->rank - 1 + ix->rank;
    if (rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: output rank %d exceeds %d", rank, KILN_MAX_RANK);
    kiln_shape_expr shape = {.rank = rank};
    int32_t k = 0;
    for (int32_t i = 0; i < axis; i++) shape.dims[k++] = d->shape[i];
    for (int32_t i = 0; i < ix->rank; i++) shape.dims[k++] = ix->shape[i];
    for (int32_t i = axis + 1; i < d->rank; i++) shape.dims[k++] = d->shape[i];
    kiln_tensor ins[2] = {data, indices};
    return single_output(net, KILN_OP_GATHER, 0, axis, 2, ins, d->dtype, &shape, out);
}

/* Product of a shape's dims as an expression. */
static kiln_expr shape_numel(kiln_exprs *p, int32_t rank, const kiln_expr *dims) {
    kiln_expr n = kiln_expr_const(p, 1);
    for (int32_t i = 0; i < rank; i++) n = kiln_expr_binary(p, KILN_EXPR_MUL, n, dims[i]);
    return n;
}

kiln_status kiln_network_add_reshape(kiln_network *net, kiln_tensor x, int32_t rank, const kiln_expr *shape,
                                     kiln_tensor *out) {
    kiln_net_tensor *t = NULL;
    kiln_status s = kiln_net_tensor_get(net, x, "kiln_network_add_reshape", &t);
    if (s) return s;
    const char *label = kiln_net_tensor_label(net, x);
    if (rank < 0 || rank > KILN_MAX_RANK || (rank && !shape))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "reshape of '%s': rank %d is outside [0, %d]", label, rank,
                          KILN_MAX_RANK);
    kiln_exprs *p = net->exprs;
    kiln_shape_expr result = {.rank = rank};
    int32_t infer = -1;
    for (int32_t i = 0; i < rank; i++) {
        int64_t v;
        if (!kiln_exprs_valid(p, shape[i]))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "reshape of '%s': axis %d has an invalid expression", label, i);
        if (kiln_expr_is_const(p, shape[i], &v) && v < 0) {
            if (v != -1 || infer >= 0)
                return kiln_error(KILN_ERROR_INVALID_NETWORK,
                                  "reshape of '%s': axis %d is %lld; only one axis may be -1 (inferred)", label, i,
                                  (long long)v);
            infer = i;
        }
        result.dims[i] = shape[i];
    }
    kiln_expr numel = shape_numel(p, t->rank, t->shape);
    kiln_expr known = kiln_expr_const(p, 1);
    for (int32_t i = 0; i < rank; i++)
        if (i != infer) known = kiln_expr_binary(p, KILN_EXPR_MUL, known, result.dims[i]);
    if (infer >= 0) result.dims[infer] = kiln_expr_binary(p, KILN_EXPR_FLOORDIV, numel, known);
    kiln_expr total = infer >= 0 ? kiln_expr_binary(p, KILN_EXPR_MUL, known, result.dims[infer]) : known;
    kiln_expr ok = kiln_expr_binary(p, KILN_EXPR_EQ, total, numel);
    if (ok < 0) return KILN_ERROR_NO_MEMORY;
    char a[160], b[160];
    kiln_expr_format(p, numel, a, sizeof a);
    kiln_expr_format(p, infer >= 0 ? known : total, b, sizeof b);
    s = infer >= 0 ? kiln_net_add_check(net, ok, "reshape of '%s': %s elements do not divide into parts of %s",
                                        label, a, b)
                   : kiln_net_add_check(net, ok, "reshape of '%s': %s elements cannot take a shape of %s elements",
                                        label, a, b);
    if (s) return s;
    return single_output(net, KILN_OP_RESHAPE, 0, 0, 1, &x, t->dtype, &result, out);
}

kiln_status kiln_network_add_matmul(kiln_network *net, kiln_tensor a, kiln_tensor b, kiln_tensor *out) {
    kiln_net_tensor *x = NULL, *y = NULL;
    kiln_status s;
    if ((s = kiln_net_tensor_get(net, a, "kiln_network_add_matmul", &x)) ||
        (s = kiln_net_tensor_get(net, b, "kiln_network_add_matmul", &y)))
        return s;
    const char *la = kiln_net_tensor_label(net, a), *lb = kiln_net_tensor_label(net, b);
    if (x->dtype != y->dtype || !kiln_dtype_is_float(x->dtype))
        return kiln_error(KILN_ERROR_INVALID_NETWORK,
                          "matmul of '%s' (%s) and '%s' (%s): both must have the same floating-point dtype", la,
                          kiln_dtype_name(x->dtype), lb, kiln_dtype_name(y->dtype));
    if (x->rank < 2 || y->rank < 2)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' (rank %d) and '%s' (rank %d): need rank >= 2",
                          la, x->rank, lb, y->rank);
    kiln_expr sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    int32_t ra = x->rank, rb = y->rank;
    kiln_dtype dtype = x->dtype;
    memcpy(sa, x->shape, sizeof sa);
    memcpy(sb, y->shape, sizeof sb);
    kiln_exprs *p = net->exprs;
    kiln_expr ka = sa[ra - 1], kb = sb[rb - 2];
    int64_t va, vb;
    if (kiln_expr_is_const(p, ka, &va) && kiln_expr_is_const(p, kb, &vb) && va != vb)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' and '%s': inner sizes %lld and %lld differ", la,
                          lb, (long long)va, (long long)vb);
    char fa[128], fb[128];
    kiln_expr_format(p, ka, fa, sizeof fa);
    kiln_expr_format(p, kb, fb, sizeof fb);
    if ((s = kiln_net_add_check(net, kiln_expr_binary(p, KILN_EXPR_EQ, ka, kb),
                                "matmul of '%s' and '%s': inner sizes %s and %s differ", la, lb, fa, fb)))
        return s;
    kiln_shape_expr shape;
    if ((s = broadcast_shapes(net, "matmul", a, b, ra - 2, sa, rb - 2, sb, &shape))) return s;
    shape.dims[shape.rank++] = sa[ra - 2];
    shape.dims[shape.rank++] = sb[rb - 1];
    kiln_tensor ins[2] = {a, b};
    return single_output(net, KILN_OP_MATMUL, 0, 0, 2, ins, dtype, &shape, out);
}
