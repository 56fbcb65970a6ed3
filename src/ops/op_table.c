/* op_table.c — the rows of the op table (see op_table.h) and their rules. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_table.h"

#define COUNT_OF(list) (0 list(KILN_OP_LIST_COUNT_))
_Static_assert((0 KILN_OP_LIST(KILN_OP_ROW_COUNT_)) == KILN_OP_COUNT, "op_list.h's KILN_OP_LIST must list every kiln_op");
_Static_assert(COUNT_OF(KILN_BINARY_OP_LIST) == KILN_BINARY_OP_COUNT,
               "op_list.h's KILN_BINARY_OP_LIST must list every kiln_binary_op");
_Static_assert(COUNT_OF(KILN_UNARY_OP_LIST) == KILN_UNARY_OP_COUNT,
               "op_list.h's KILN_UNARY_OP_LIST must list every kiln_unary_op");
_Static_assert(COUNT_OF(KILN_COMPARE_OP_LIST) == KILN_COMPARE_OP_COUNT,
               "op_list.h's KILN_COMPARE_OP_LIST must list every kiln_compare_op");
_Static_assert(COUNT_OF(KILN_COLLECTIVE_OP_LIST) == KILN_COLLECTIVE_OP_COUNT,
               "op_list.h's KILN_COLLECTIVE_OP_LIST must list every kiln_collective_op");
_Static_assert(COUNT_OF(KILN_SCATTER_REDUCTION_LIST) == KILN_SCATTER_REDUCTION_COUNT,
               "op_list.h's KILN_SCATTER_REDUCTION_LIST must list every kiln_scatter_reduction");
_Static_assert(COUNT_OF(KILN_REDUCE_OP_LIST) == KILN_REDUCE_OP_COUNT,
               "op_list.h's KILN_REDUCE_OP_LIST must list every kiln_reduce_op");

/* ---- dtype rules of the elementwise sub-ops -------------------------------- */

#define FLOATS    ((1u << KILN_FLOAT32) | (1u << KILN_FLOAT16) | (1u << KILN_BFLOAT16))
#define SIGNED    ((1u << KILN_INT8) | (1u << KILN_INT32) | (1u << KILN_INT64))
#define ALL_TYPES ((1u << KILN_DTYPE_COUNT) - 1u)

/* Dtypes each unary op is defined for (a bit per kiln_dtype). */
static const uint32_t unary_dtypes[KILN_UNARY_OP_COUNT] = {
    [KILN_UNARY_RELU] = FLOATS, [KILN_UNARY_GELU] = FLOATS, [KILN_UNARY_SILU] = FLOATS,
    [KILN_UNARY_EXP] = FLOATS,  [KILN_UNARY_NEG] = FLOATS | SIGNED, [KILN_UNARY_SQRT] = FLOATS,
    [KILN_UNARY_TANH] = FLOATS,
    [KILN_UNARY_SIGMOID] = FLOATS,
    [KILN_UNARY_ERF] = FLOATS,
    [KILN_UNARY_GELU_ERF] = FLOATS,
    [KILN_UNARY_RSQRT] = FLOATS,
    [KILN_UNARY_ABS] = FLOATS,
    [KILN_UNARY_LOG] = FLOATS,
    [KILN_UNARY_SIN] = FLOATS,
    [KILN_UNARY_COS] = FLOATS,
    [KILN_UNARY_FLOOR] = FLOATS,
    [KILN_UNARY_CEIL] = FLOATS,
    [KILN_UNARY_RECIPROCAL] = FLOATS,
    [KILN_UNARY_SIGN] = FLOATS,
};
/* What to say when a dtype is refused. */
static const char *const unary_dtype_text[KILN_UNARY_OP_COUNT] = {
    [KILN_UNARY_RELU] = "floating-point only", [KILN_UNARY_GELU] = "floating-point only",
    [KILN_UNARY_SILU] = "floating-point only", [KILN_UNARY_EXP] = "floating-point only",
    [KILN_UNARY_NEG] = "floating-point or signed integer only", [KILN_UNARY_SQRT] = "floating-point only",
    [KILN_UNARY_TANH] = "floating-point only",
    [KILN_UNARY_SIGMOID] = "floating-point only",
    [KILN_UNARY_ERF] = "floating-point only",
    [KILN_UNARY_GELU_ERF] = "floating-point only",
    [KILN_UNARY_RSQRT] = "floating-point only",
    [KILN_UNARY_ABS] = "floating-point only",
    [KILN_UNARY_LOG] = "floating-point only",
    [KILN_UNARY_SIN] = "floating-point only",
    [KILN_UNARY_COS] = "floating-point only",
    [KILN_UNARY_FLOOR] = "floating-point only",
    [KILN_UNARY_CEIL] = "floating-point only",
    [KILN_UNARY_RECIPROCAL] = "floating-point only",
    [KILN_UNARY_SIGN] = "floating-point only",
};

bool kiln_unary_op_accepts(int op, kiln_dtype dtype) {
    return op >= 0 && op < KILN_UNARY_OP_COUNT && (unsigned)dtype < KILN_DTYPE_COUNT &&
           (unary_dtypes[op] >> dtype & 1u);
}

/* Dtypes each binary op is defined for. */
static const uint32_t binary_dtypes[KILN_BINARY_OP_COUNT] = {
    [KILN_BINARY_ADD] = ALL_TYPES, [KILN_BINARY_SUB] = ALL_TYPES, [KILN_BINARY_MUL] = ALL_TYPES,
    [KILN_BINARY_DIV] = ALL_TYPES, [KILN_BINARY_MIN] = ALL_TYPES, [KILN_BINARY_MAX] = ALL_TYPES,
    [KILN_BINARY_POW] = FLOATS,
    [KILN_BINARY_MOD] = FLOATS | SIGNED | (1u << KILN_UINT8),
    [KILN_BINARY_FMOD] = FLOATS | SIGNED | (1u << KILN_UINT8),
};

bool kiln_binary_op_accepts(int op, kiln_dtype dtype) {
    return op >= 0 && op < KILN_BINARY_OP_COUNT && (unsigned)dtype < KILN_DTYPE_COUNT &&
           (binary_dtypes[op] >> dtype & 1u);
}

const char *kiln_op_name(int op) { return kiln_op_list_name(op); }
const char *kiln_binary_op_name(int op) { return kiln_binary_op_list_name(op); }
const char *kiln_unary_op_name(int op) { return kiln_unary_op_list_name(op); }
const char *kiln_reduce_op_name(int op) { return kiln_reduce_op_list_name(op); }
const char *kiln_compare_op_name(int op) { return kiln_compare_op_list_name(op); }
const char *kiln_collective_op_name(int op) { return kiln_collective_op_list_name(op); }

/* ---- helpers --------------------------------------------------------------- */

static kiln_status no_memory(void) { return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory building shapes"); }

static kiln_status report_check(const kiln_op_call *c, kiln_expr cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kiln_status report_check(const kiln_op_call *c, kiln_expr cond, const char *fmt, ...) {
    if (cond < 0) return no_memory();
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return c->checks.add(c->checks.user, cond, message);
}

static void same_shape(const kiln_shape_expr *in, kiln_shape_expr *out) {
    out->rank = in->rank;
    memcpy(out->dims, in->dims, sizeof(kiln_expr) * (size_t)in->rank);
}

/*
 * numpy broadcasting of one axis.  Returns the output dim; when neither side
 * is provably 1 nor equal, reports a run-time check that they are
 * compatible:  ok = (a == b) + (a == 1) + (b == 1) > 0,  out = b + (a - b)·(b == 1).
 */
static kiln_status broadcast_dim(const kiln_op_call *c, const char *what, int axis, kiln_expr a, kiln_expr b,
                                 kiln_expr *out) {
    kiln_exprs *p = c->pool;
    int64_t va, vb;
    int ca = kiln_expr_is_const(p, a, &va), cb = kiln_expr_is_const(p, b, &vb);
    if (a == b || (cb && vb == 1)) { *out = a; return KILN_OK; }
    if (ca && va == 1) { *out = b; return KILN_OK; }
    if (ca && cb)
        return kiln_error(KILN_ERROR_INVALID_NETWORK,
                          "%s of '%s' and '%s': sizes %lld and %lld cannot broadcast at output axis %d", what,
                          c->labels[0], c->labels[1], (long long)va, (long long)vb, axis);
    kiln_expr one = kiln_expr_const(p, 1), zero = kiln_expr_const(p, 0);
    kiln_expr a_is_1 = kiln_expr_binary(p, KILN_EXPR_EQ, a, one), b_is_1 = kiln_expr_binary(p, KILN_EXPR_EQ, b, one);
    kiln_expr same = kiln_expr_binary(p, KILN_EXPR_EQ, a, b);
    kiln_expr any = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_ADD, same, a_is_1), b_is_1);
    kiln_expr ok = kiln_expr_binary(p, KILN_EXPR_LT, zero, any);
    *out = kiln_expr_binary(p, KILN_EXPR_ADD, b,
                            kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(p, KILN_EXPR_SUB, a, b), b_is_1));
    if (*out < 0) return no_memory();
    char sa[128], sb[128];
    kiln_expr_format(p, a, sa, sizeof sa);
    kiln_expr_format(p, b, sb, sizeof sb);
    return report_check(c, ok, "%s of '%s' and '%s': sizes %s and %s cannot broadcast at output axis %d", what,
                        c->labels[0], c->labels[1], sa, sb, axis);
}

/* Broadcast the trailing `rank_a`/`rank_b` axes of two shapes (right-aligned). */
static kiln_status broadcast_shapes(const kiln_op_call *c, const char *what, int32_t rank_a, const kiln_expr *a,
                                    int32_t rank_b, const kiln_expr *b, kiln_shape_expr *out) {
    int32_t rank = rank_a > rank_b ? rank_a : rank_b;
    out->rank = rank;
    for (int32_t i = 0; i < rank; i++) {
        int32_t ia = i - (rank - rank_a), ib = i - (rank - rank_b);
        if (ia < 0) { out->dims[i] = b[ib]; continue; }
        if (ib < 0) { out->dims[i] = a[ia]; continue; }
        kiln_status s = broadcast_dim(c, what, i, a[ia], b[ib], &out->dims[i]);
        if (s) return s;
    }
    return KILN_OK;
}

/* Product of a shape's dims as an expression. */
static kiln_expr shape_numel(kiln_exprs *p, int32_t rank, const kiln_expr *dims) {
    kiln_expr n = kiln_expr_const(p, 1);
    for (int32_t i = 0; i < rank; i++) n = kiln_expr_binary(p, KILN_EXPR_MUL, n, dims[i]);
    return n;
}

/* ---- the rules ------------------------------------------------------------- */

static kiln_status infer_cast(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    if (!kiln_dtype_name(c->to))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cast of '%s': unknown target dtype %d", c->labels[0],
                          (int)c->to);
    *dtype = c->to;
    same_shape(&c->shapes[0], shape);
    return KILN_OK;
}

static kiln_status infer_binary(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const char *what = kiln_binary_op_name(c->subop);
    if (c->subop < 0 || c->subop >= KILN_BINARY_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "binary layer: unknown op %d", (int)c->subop);
    if (c->dtypes[0] != c->dtypes[1])
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: dtype mismatch: '%s' is %s but '%s' is %s (cast one)", what,
                          c->labels[0], kiln_dtype_name(c->dtypes[0]), c->labels[1], kiln_dtype_name(c->dtypes[1]));
    if (!kiln_binary_op_accepts(c->subop, c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported", what, c->labels[0],
                          kiln_dtype_name(c->dtypes[0]));
    *dtype = c->dtypes[0];
    return broadcast_shapes(c, what, c->shapes[0].rank, c->shapes[0].dims, c->shapes[1].rank, c->shapes[1].dims,
                            shape);
}

static kiln_status infer_unary(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    if (c->subop < 0 || c->subop >= KILN_UNARY_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "unary layer: unknown op %d", (int)c->subop);
    if (!kiln_unary_op_accepts(c->subop, c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported (%s)",
                          kiln_unary_op_name(c->subop), c->labels[0], kiln_dtype_name(c->dtypes[0]),
                          unary_dtype_text[c->subop]);
    *dtype = c->dtypes[0];
    same_shape(&c->shapes[0], shape);
    return KILN_OK;
}

static kiln_status infer_gather(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const kiln_shape_expr *d = &c->shapes[0], *ix = &c->shapes[1];
    if (c->dtypes[1] != KILN_INT32 && c->dtypes[1] != KILN_INT64)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: indices '%s' are %s; need int32 or int64", c->labels[1],
                          kiln_dtype_name(c->dtypes[1]));
    if (d->rank < 1) return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: data '%s' is a scalar", c->labels[0]);
    int64_t axis = c->axis < 0 ? c->axis + d->rank : c->axis;
    if (axis < 0 || axis >= d->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: axis %lld is out of range for '%s' of rank %d",
                          (long long)axis, c->labels[0], d->rank);
    int32_t rank = d->rank - 1 + ix->rank;
    if (rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather: output rank %d exceeds %d", rank, KILN_MAX_RANK);
    shape->rank = rank;
    int32_t k = 0;
    for (int32_t i = 0; i < axis; i++) shape->dims[k++] = d->dims[i];
    for (int32_t i = 0; i < ix->rank; i++) shape->dims[k++] = ix->dims[i];
    for (int32_t i = (int32_t)axis + 1; i < d->rank; i++) shape->dims[k++] = d->dims[i];
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* The output is the target; one axis of -1 is inferred.  The element counts
 * must agree: a check when they do not fold to equal. */
static kiln_status infer_reshape(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *t = c->target, *in = &c->shapes[0];
    const char *label = c->labels[0];
    if (!t || t->rank < 0 || t->rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "reshape of '%s': no target shape", label);
    shape->rank = t->rank;
    int32_t infer = -1;
    for (int32_t i = 0; i < t->rank; i++) {
        int64_t v;
        if (!kiln_exprs_valid(p, t->dims[i]))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "reshape of '%s': axis %d has an invalid expression", label,
                              i);
        if (kiln_expr_is_const(p, t->dims[i], &v) && v < 0) {
            if (v != -1 || infer >= 0)
                return kiln_error(KILN_ERROR_INVALID_NETWORK,
                                  "reshape of '%s': axis %d is %lld; only one axis may be -1 (inferred)", label, i,
                                  (long long)v);
            infer = i;
        }
        shape->dims[i] = t->dims[i];
    }
    kiln_expr numel = shape_numel(p, in->rank, in->dims);
    kiln_expr known = kiln_expr_const(p, 1);
    for (int32_t i = 0; i < t->rank; i++)
        if (i != infer) known = kiln_expr_binary(p, KILN_EXPR_MUL, known, shape->dims[i]);
    if (infer >= 0) shape->dims[infer] = kiln_expr_binary(p, KILN_EXPR_FLOORDIV, numel, known);
    kiln_expr total = infer >= 0 ? kiln_expr_binary(p, KILN_EXPR_MUL, known, shape->dims[infer]) : known;
    kiln_expr ok = kiln_expr_binary(p, KILN_EXPR_EQ, total, numel);
    if (ok < 0) return no_memory();
    *dtype = c->dtypes[0];
    char a[160], b[160];
    kiln_expr_format(p, numel, a, sizeof a);
    kiln_expr_format(p, infer >= 0 ? known : total, b, sizeof b);
    if (infer >= 0) return report_check(c, ok, "reshape of '%s': %s elements do not divide into parts of %s", label, a, b);
    return report_check(c, ok, "reshape of '%s': %s elements cannot take a shape of %s elements", label, a, b);
}

/* a [..., M, K] x b [..., K, N], either operand's last two axes swapped
 * first when its flag says so.  ints: none (nothing transposed: every engine
 * from before the flags, and every matmul without one, reads and writes
 * unchanged) or transpose_a, transpose_b (0/1, not both 0: that is the
 * empty list's meaning, and one meaning has one form).  Both operands have
 * rank >= 2 (the importers reshape a vector), so a flag always swaps two
 * axes. */
static kiln_status infer_matmul(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const char *la = c->labels[0], *lb = c->labels[1];
    const kiln_shape_expr *x = &c->shapes[0], *y = &c->shapes[1];
    kiln_layer_attrs *at = c->attrs;
    if ((at->int_count != 0 && at->int_count != 2) || at->expr_count)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' and '%s': %d integer and %d expression "
                          "attributes; needs none, or 2 integers (transpose_a, transpose_b)", la, lb,
                          (int)at->int_count, (int)at->expr_count);
    static const char *const flag_names[2] = {"transpose_a", "transpose_b"};
    for (int32_t i = 0; i < at->int_count; i++)
        if (at->ints[i] != 0 && at->ints[i] != 1)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' and '%s': %s is %lld; must be 0 or 1", la,
                              lb, flag_names[i], (long long)at->ints[i]);
    const int ta = at->int_count && at->ints[0], tb = at->int_count && at->ints[1];
    if (!ta && !tb) at->int_count = 0;   /* the canonical form of "no transpose" */
    if (c->dtypes[0] != c->dtypes[1] || !kiln_dtype_is_float(c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK,
                          "matmul of '%s' (%s) and '%s' (%s): both must have the same floating-point dtype", la,
                          kiln_dtype_name(c->dtypes[0]), lb, kiln_dtype_name(c->dtypes[1]));
    if (x->rank < 2 || y->rank < 2)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' (rank %d) and '%s' (rank %d): need rank >= 2",
                          la, x->rank, lb, y->rank);
    /* The operands' matrix axes as the product sees them. */
    kiln_expr m = x->dims[x->rank - 2 + ta], ka = x->dims[x->rank - 1 - ta];
    kiln_expr kb = y->dims[y->rank - 2 + tb], n = y->dims[y->rank - 1 - tb];
    const char *sa = ta ? " (transposed)" : "", *sb = tb ? " (transposed)" : "";
    int64_t va, vb;
    if (kiln_expr_is_const(p, ka, &va) && kiln_expr_is_const(p, kb, &vb) && va != vb)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s'%s and '%s'%s: inner sizes %lld and %lld differ",
                          la, sa, lb, sb, (long long)va, (long long)vb);
    char fa[128], fb[128];
    kiln_expr_format(p, ka, fa, sizeof fa);
    kiln_expr_format(p, kb, fb, sizeof fb);
    kiln_status s = report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, ka, kb),
                                 "matmul of '%s'%s and '%s'%s: inner sizes %s and %s differ", la, sa, lb, sb, fa, fb);
    if (s) return s;
    if ((s = broadcast_shapes(c, "matmul", x->rank - 2, x->dims, y->rank - 2, y->dims, shape))) return s;
    shape->dims[shape->rank++] = m;
    shape->dims[shape->rank++] = n;
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* ---- rules of the ops with attribute lists ---------------------------------- */

/* Normalize an axis of a rank-`rank` tensor in place; false when out of range. */
static bool normalize_axis(int64_t *axis, int32_t rank) {
    if (*axis < 0) *axis += rank;
    return *axis >= 0 && *axis < rank;
}

static kiln_status attr_counts(const kiln_op_call *c, const char *what, int32_t ints, int32_t exprs) {
    if (c->attrs->int_count != ints || c->attrs->expr_count != exprs)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': %d integer and %d expression attributes, needs %d and %d",
                          what, c->labels[0], (int)c->attrs->int_count, (int)c->attrs->expr_count, (int)ints,
                          (int)exprs);
    return KILN_OK;
}

static kiln_status infer_transpose(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const kiln_shape_expr *in = &c->shapes[0];
    kiln_layer_attrs *a = c->attrs;
    if (a->int_count != in->rank || a->expr_count)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "transpose of '%s': perm has %d entries for rank %d", c->labels[0],
                          (int)a->int_count, (int)in->rank);
    bool seen[KILN_MAX_RANK] = {0};
    for (int32_t i = 0; i < in->rank; i++) {
        if (!normalize_axis(&a->ints[i], in->rank) || seen[a->ints[i]])
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "transpose of '%s': perm is not a permutation of the %d axes "
                              "(entry %d)", c->labels[0], (int)in->rank, (int)i);
        seen[a->ints[i]] = true;
        shape->dims[i] = in->dims[a->ints[i]];
    }
    shape->rank = in->rank;
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* v + n when v < 0: a negative index counts from the end. */
static kiln_expr from_end(kiln_exprs *p, kiln_expr v, kiln_expr n) {
    kiln_expr neg = kiln_expr_binary(p, KILN_EXPR_LT, v, kiln_expr_const(p, 0));
    return kiln_expr_binary(p, KILN_EXPR_ADD, v, kiln_expr_binary(p, KILN_EXPR_MUL, n, neg));
}

static kiln_expr clamp(kiln_exprs *p, kiln_expr v, kiln_expr lo, kiln_expr hi) {
    return kiln_expr_binary(p, KILN_EXPR_MIN, kiln_expr_binary(p, KILN_EXPR_MAX, v, lo), hi);
}

/* Length of one sliced axis: ONNX Slice's clamping (kiln_slice_bounds in
 * ops/slice_bounds.h is the same rule on numbers, for the kernels). */
static kiln_expr slice_length(kiln_exprs *p, kiln_expr n, kiln_expr start, kiln_expr end, int64_t step) {
    kiln_expr zero = kiln_expr_const(p, 0);
    if (step > 0) {
        kiln_expr s = clamp(p, from_end(p, start, n), zero, n), e = clamp(p, from_end(p, end, n), zero, n);
        kiln_expr len = kiln_expr_binary(p, KILN_EXPR_CEILDIV, kiln_expr_binary(p, KILN_EXPR_SUB, e, s),
                                         kiln_expr_const(p, step));
        return kiln_expr_binary(p, KILN_EXPR_MAX, len, zero);
    }
    kiln_expr minus1 = kiln_expr_const(p, -1), last = kiln_expr_binary(p, KILN_EXPR_SUB, n, kiln_expr_const(p, 1));
    kiln_expr s = clamp(p, from_end(p, start, n), minus1, last), e = clamp(p, from_end(p, end, n), minus1, last);
    kiln_expr len = kiln_expr_binary(p, KILN_EXPR_CEILDIV, kiln_expr_binary(p, KILN_EXPR_SUB, s, e),
                                     kiln_expr_const(p, -step));
    return kiln_expr_binary(p, KILN_EXPR_MAX, len, zero);
}

static kiln_status infer_slice(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *in = &c->shapes[0];
    kiln_layer_attrs *a = c->attrs;
    int32_t r = in->rank;
    if (a->expr_count != 2 * r || (a->int_count != r && a->int_count != 0))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "slice of '%s' (rank %d): starts and ends need %d entries each "
                          "and steps none or %d (got %d expressions and %d steps)", c->labels[0], (int)r, (int)r,
                          (int)r, (int)a->expr_count, (int)a->int_count);
    if (a->int_count == 0)
        for (int32_t i = 0; i < r; i++) a->ints[i] = 1;
    a->int_count = r;
    for (int32_t i = 0; i < r; i++) {
        if (a->ints[i] == 0 || a->ints[i] == INT64_MIN)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "slice of '%s': step of axis %d is %lld", c->labels[0], (int)i,
                              (long long)a->ints[i]);
        if (!kiln_exprs_valid(p, a->exprs[i]) || !kiln_exprs_valid(p, a->exprs[r + i]))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "slice of '%s': axis %d has an invalid start or end "
                              "expression", c->labels[0], (int)i);
        shape->dims[i] = slice_length(p, in->dims[i], a->exprs[i], a->exprs[r + i], a->ints[i]);
        if (shape->dims[i] < 0) return no_memory();
    }
    shape->rank = r;
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* Are two dims equal?  Provably, or by a run-time check. */
static kiln_status same_dim(const kiln_op_call *c, const char *what, int32_t input, int32_t axis, kiln_expr a,
                            kiln_expr b) {
    kiln_exprs *p = c->pool;
    int64_t va, vb;
    if (a == b) return KILN_OK;
    if (kiln_expr_is_const(p, a, &va) && kiln_expr_is_const(p, b, &vb))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: '%s' axis %d has size %lld, '%s' has %lld", what,
                          c->labels[input], (int)axis, (long long)vb, c->labels[0], (long long)va);
    char sa[128], sb[128];
    kiln_expr_format(p, a, sa, sizeof sa);
    kiln_expr_format(p, b, sb, sizeof sb);
    return report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, a, b), "%s: '%s' axis %d has size %s, '%s' has %s", what,
                        c->labels[input], (int)axis, sb, c->labels[0], sa);
}

static kiln_status infer_concat(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *first = &c->shapes[0];
    int32_t r = first->rank;
    if (r < 1) return kiln_error(KILN_ERROR_INVALID_NETWORK, "concat of '%s': a scalar has no axis", c->labels[0]);
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, r))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "concat of '%s': axis %lld is out of range for rank %d",
                          c->labels[0], (long long)c->axis, (int)r);
    *shape = *first;
    for (int32_t k = 1; k < c->input_count; k++) {
        const kiln_shape_expr *s = &c->shapes[k];
        if (c->dtypes[k] != c->dtypes[0] || s->rank != r)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "concat: '%s' is %s of rank %d but '%s' is %s of rank %d",
                              c->labels[k], kiln_dtype_name(c->dtypes[k]), (int)s->rank, c->labels[0],
                              kiln_dtype_name(c->dtypes[0]), (int)r);
        for (int32_t i = 0; i < r; i++) {
            if (i == axis) {
                shape->dims[i] = kiln_expr_binary(p, KILN_EXPR_ADD, shape->dims[i], s->dims[i]);
                if (shape->dims[i] < 0) return no_memory();
                continue;
            }
            kiln_status st = same_dim(c, "concat", k, i, first->dims[i], s->dims[i]);
            if (st) return st;
        }
    }
    *dtype = c->dtypes[0];
    return KILN_OK;
}

static kiln_status infer_expand(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const kiln_shape_expr *in = &c->shapes[0];
    kiln_layer_attrs *a = c->attrs;
    if (a->int_count || a->expr_count < 0 || a->expr_count > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "expand of '%s': the target shape has %d entries (at most %d)",
                          c->labels[0], (int)a->expr_count, KILN_MAX_RANK);
    for (int32_t i = 0; i < a->expr_count; i++) {
        int64_t v;
        if (!kiln_exprs_valid(c->pool, a->exprs[i]))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "expand of '%s': axis %d has an invalid expression",
                              c->labels[0], (int)i);
        if (kiln_expr_is_const(c->pool, a->exprs[i], &v) && v < 0)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "expand of '%s': axis %d of the target shape is %lld",
                              c->labels[0], (int)i, (long long)v);
    }
    /* broadcast_dim names labels[0] and labels[1]: the target is the second. */
    const char *labels[2] = {c->labels[0], "the target shape"};
    kiln_op_call named = *c;
    named.labels = labels;
    *dtype = c->dtypes[0];
    return broadcast_shapes(&named, "expand", in->rank, in->dims, a->expr_count, a->exprs, shape);
}

#define NUMERIC (FLOATS | SIGNED | (1u << KILN_UINT8))
static const uint32_t reduce_dtypes[KILN_REDUCE_OP_COUNT] = {
    [KILN_REDUCE_SUM] = FLOATS | (1u << KILN_INT32) | (1u << KILN_INT64), [KILN_REDUCE_MEAN] = FLOATS,
    [KILN_REDUCE_MAX] = NUMERIC, [KILN_REDUCE_MIN] = NUMERIC,
    [KILN_REDUCE_PROD] = FLOATS | (1u << KILN_INT32) | (1u << KILN_INT64),
    [KILN_REDUCE_ARGMAX] = NUMERIC, [KILN_REDUCE_ARGMIN] = NUMERIC,
};

bool kiln_reduce_op_accepts(int op, kiln_dtype dtype) {
    return op >= 0 && op < KILN_REDUCE_OP_COUNT && (unsigned)dtype < KILN_DTYPE_COUNT && (reduce_dtypes[op] >> dtype & 1u);
}

/* ints: keepdims (0 or 1), then the reduced axes; canonical: ascending,
 * non-negative, and every axis when none is given (not for argmax/argmin,
 * which take exactly one). */
static kiln_status infer_reduce(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *in = &c->shapes[0];
    kiln_layer_attrs *a = c->attrs;
    const char *what = kiln_reduce_op_name(c->subop);
    if (c->subop < 0 || c->subop >= KILN_REDUCE_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "reduce layer: unknown op %d", (int)c->subop);
    if (!kiln_reduce_op_accepts(c->subop, c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported", what, c->labels[0],
                          kiln_dtype_name(c->dtypes[0]));
    bool arg = c->subop == KILN_REDUCE_ARGMAX || c->subop == KILN_REDUCE_ARGMIN;
    if (a->int_count < 1 || a->expr_count || (a->ints[0] != 0 && a->ints[0] != 1) || (arg && a->int_count != 2))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': needs keepdims (0 or 1) and %s", what, c->labels[0],
                          arg ? "one axis" : "its axes");
    bool reduced[KILN_MAX_RANK] = {0};
    int32_t n = a->int_count - 1;
    if (n > in->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': %d axes for rank %d", what, c->labels[0], (int)n,
                          (int)in->rank);
    for (int32_t i = 0; i < n; i++) {
        int64_t ax = a->ints[1 + i];
        if (!normalize_axis(&ax, in->rank) || reduced[ax])
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': axis %lld is out of range for rank %d or repeated",
                              what, c->labels[0], (long long)a->ints[1 + i], (int)in->rank);
        reduced[ax] = true;
    }
    if (n == 0)
        for (int32_t i = 0; i < in->rank; i++) reduced[i] = true;
    int32_t k = 1, out = 0;
    for (int32_t i = 0; i < in->rank; i++) {
        if (!reduced[i]) { shape->dims[out++] = in->dims[i]; continue; }
        a->ints[k++] = i;
        if (a->ints[0]) shape->dims[out++] = kiln_expr_const(p, 1);
        /* max, min and the arg ops of nothing have no value. */
        if (c->subop != KILN_REDUCE_SUM && c->subop != KILN_REDUCE_PROD) {
            int64_t v;
            if (kiln_expr_is_const(p, in->dims[i], &v) && v == 0)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': axis %d is empty", what, c->labels[0], (int)i);
            kiln_status st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, 0), in->dims[i]),
                                          "%s of '%s': axis %d is empty", what, c->labels[0], (int)i);
            if (st) return st;
        }
    }
    a->int_count = k;
    shape->rank = out;
    *dtype = arg ? KILN_INT64 : c->dtypes[0];
    return KILN_OK;
}

static kiln_status infer_softmax(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const char *what = c->subop == 1 ? "log_softmax" : "softmax";
    if (c->subop != 0 && c->subop != 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "softmax layer: unknown variant %d", (int)c->subop);
    if (!kiln_dtype_is_float(c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not floating-point", what, c->labels[0],
                          kiln_dtype_name(c->dtypes[0]));
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, c->shapes[0].rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': axis %lld is out of range for rank %d", what,
                          c->labels[0], (long long)c->axis, (int)c->shapes[0].rank);
    *dtype = c->dtypes[0];
    same_shape(&c->shapes[0], shape);
    return KILN_OK;
}

/* LAYER_NORM (x, scale, bias) and RMS_NORM (x, scale): normalize over axes
 * axis…rank-1; scale and bias have exactly those axes' shape.  ints: the
 * epsilon's binary64 bits (a positive, finite number). */
static kiln_status infer_norm(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const char *what = c->input_count == 3 ? "layer_norm" : "rms_norm";
    const kiln_shape_expr *x = &c->shapes[0];
    if (!kiln_dtype_is_float(c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not floating-point", what, c->labels[0],
                          kiln_dtype_name(c->dtypes[0]));
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, x->rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': axis %lld is out of range for rank %d", what,
                          c->labels[0], (long long)c->axis, (int)x->rank);
    kiln_status st = attr_counts(c, what, 1, 0);
    if (st) return st;
    double eps;
    memcpy(&eps, &c->attrs->ints[0], sizeof eps);
    if (!(eps > 0 && eps < 1e300))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': epsilon %g must be positive and finite", what,
                          c->labels[0], eps);
    for (int32_t k = 1; k < c->input_count; k++) {
        const kiln_shape_expr *s = &c->shapes[k];
        if (c->dtypes[k] != c->dtypes[0] || s->rank != x->rank - axis)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': '%s' must be %s of rank %d (the normalized "
                              "axes), not %s of rank %d", what, c->labels[0], c->labels[k], kiln_dtype_name(c->dtypes[0]),
                              (int)(x->rank - axis), kiln_dtype_name(c->dtypes[k]), (int)s->rank);
        for (int32_t i = 0; i < s->rank; i++)
            if ((st = same_dim(c, what, k, (int32_t)axis + i, x->dims[axis + i], s->dims[i]))) return st;
    }
    *dtype = c->dtypes[0];
    same_shape(x, shape);
    return KILN_OK;
}

static kiln_status infer_where(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    if (c->dtypes[0] != KILN_BOOL)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "where: condition '%s' is %s, not bool", c->labels[0],
                          kiln_dtype_name(c->dtypes[0]));
    if (c->dtypes[1] != c->dtypes[2])
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "where: '%s' is %s but '%s' is %s (cast one)", c->labels[1],
                          kiln_dtype_name(c->dtypes[1]), c->labels[2], kiln_dtype_name(c->dtypes[2]));
    kiln_shape_expr ab;
    const char *labels_ab[2] = {c->labels[1], c->labels[2]};
    kiln_op_call named = *c;
    named.labels = labels_ab;
    kiln_status st = broadcast_shapes(&named, "where", c->shapes[1].rank, c->shapes[1].dims, c->shapes[2].rank,
                                      c->shapes[2].dims, &ab);
    if (st) return st;
    const char *labels_c[2] = {c->labels[0], c->labels[1]};
    named.labels = labels_c;
    *dtype = c->dtypes[1];
    return broadcast_shapes(&named, "where", c->shapes[0].rank, c->shapes[0].dims, ab.rank, ab.dims, shape);
}

/* Output shaped like indices; on every axis but `axis` the indices may not
 * be longer than data (a run-time check when symbolic). */
static kiln_status infer_gather_elements(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *d = &c->shapes[0], *ix = &c->shapes[1];
    if (c->dtypes[1] != KILN_INT32 && c->dtypes[1] != KILN_INT64)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather_elements: indices '%s' are %s; need int32 or int64",
                          c->labels[1], kiln_dtype_name(c->dtypes[1]));
    if (d->rank < 1 || d->rank != ix->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather_elements: data '%s' has rank %d and indices '%s' rank "
                          "%d; they need one rank of at least 1", c->labels[0], (int)d->rank, c->labels[1],
                          (int)ix->rank);
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, d->rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather_elements: axis %lld is out of range for rank %d",
                          (long long)c->axis, (int)d->rank);
    for (int32_t i = 0; i < d->rank; i++) {
        if (i == axis) continue;
        int64_t vi, vd;
        if (kiln_expr_is_const(p, ix->dims[i], &vi) && kiln_expr_is_const(p, d->dims[i], &vd)) {
            if (vi > vd)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "gather_elements: indices '%s' axis %d has size %lld, "
                                  "data '%s' only %lld", c->labels[1], (int)i, (long long)vi, c->labels[0],
                                  (long long)vd);
            continue;
        }
        kiln_expr fits = kiln_expr_binary(p, KILN_EXPR_LT, ix->dims[i],
                                          kiln_expr_binary(p, KILN_EXPR_ADD, d->dims[i], kiln_expr_const(p, 1)));
        kiln_status st = report_check(c, fits, "gather_elements: indices '%s' axis %d is longer than data '%s'",
                                      c->labels[1], (int)i, c->labels[0]);
        if (st) return st;
    }
    *shape = *ix;
    *dtype = c->dtypes[0];
    return KILN_OK;
}

static kiln_status infer_cumsum(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const kiln_layer_attrs *a = c->attrs;
    kiln_dtype dt = c->dtypes[0];
    if (!kiln_dtype_is_float(dt) && dt != KILN_INT32 && dt != KILN_INT64)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "cumsum of '%s': dtype %s is not supported (floats, int32, "
                          "int64)", c->labels[0], kiln_dtype_name(dt));
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, c->shapes[0].rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "cumsum of '%s': axis %lld is out of range for rank %d",
                          c->labels[0], (long long)c->axis, (int)c->shapes[0].rank);
    if (a->int_count != 2 || a->expr_count || (a->ints[0] != 0 && a->ints[0] != 1) || (a->ints[1] != 0 && a->ints[1] != 1))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "cumsum of '%s': exclusive and reverse must be 0 or 1",
                          c->labels[0]);
    *dtype = dt;
    same_shape(&c->shapes[0], shape);
    return KILN_OK;
}

/* exprs: before[r], after[r]; ints: the fill value's binary64 bits. */
static kiln_status infer_pad(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *in = &c->shapes[0];
    const kiln_layer_attrs *a = c->attrs;
    int32_t r = in->rank;
    /* ints: the value's bits and the mode (engines from before modes hold only the value). */
    if (a->expr_count != 2 * r || a->int_count < 1 || a->int_count > 2)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "pad of '%s' (rank %d): needs %d pads, a value and a mode, got "
                          "%d pads and %d integers", c->labels[0], (int)r, (int)(2 * r), (int)a->expr_count,
                          (int)a->int_count);
    int64_t mode = a->int_count == 2 ? a->ints[1] : (int64_t)KILN_PAD_CONSTANT;
    if (mode < 0 || mode >= KILN_PAD_MODE_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "pad of '%s': mode %lld is not constant (0), edge (1), reflect "
                          "(2) or wrap (3)", c->labels[0], (long long)mode);
    for (int32_t i = 0; i < r; i++) {
        for (int side = 0; side < 2; side++) {
            kiln_expr e = a->exprs[side * r + i];
            int64_t v;
            if (!kiln_exprs_valid(p, e))
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "pad of '%s': axis %d has an invalid pad expression",
                                  c->labels[0], (int)i);
            if (kiln_expr_is_const(p, e, &v) && v < 0)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "pad of '%s': axis %d pad %lld is negative (slice to "
                                  "crop)", c->labels[0], (int)i, (long long)v);
            kiln_status st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, -1), e),
                                          "pad of '%s': axis %d has a negative pad", c->labels[0], (int)i);
            if (st) return st;
        }
        kiln_expr grow = kiln_expr_binary(p, KILN_EXPR_ADD, a->exprs[i], a->exprs[r + i]);
        shape->dims[i] = kiln_expr_binary(p, KILN_EXPR_ADD, in->dims[i], grow);
        if (shape->dims[i] < 0) return no_memory();
        if (mode != KILN_PAD_CONSTANT) {   /* new elements copy old ones: an empty axis has none to copy */
            kiln_expr some = kiln_expr_binary(p, KILN_EXPR_ADD, in->dims[i],
                                              kiln_expr_binary(p, KILN_EXPR_EQ, grow, kiln_expr_const(p, 0)));
            kiln_status st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, 0), some),
                                          "pad of '%s': axis %d is empty, so edge/reflect/wrap padding has nothing "
                                          "to repeat", c->labels[0], (int)i);
            if (st) return st;
        }
    }
    shape->rank = r;
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* softmax(q kᵀ · scale) v with grouped-query heads; sizes that only run time
 * knows become checks. */
static kiln_status infer_attention(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *q = &c->shapes[0], *k = &c->shapes[1], *v = &c->shapes[2];
    const kiln_layer_attrs *a = c->attrs;
    if (!kiln_dtype_is_float(c->dtypes[0]) || c->dtypes[1] != c->dtypes[0] || c->dtypes[2] != c->dtypes[0])
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "attention of '%s', '%s', '%s': one floating-point dtype needed",
                          c->labels[0], c->labels[1], c->labels[2]);
    if (q->rank != 4 || k->rank != 4 || v->rank != 4)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "attention: q, k and v must be [batch, heads, seq, dim] "
                          "(ranks %d, %d, %d)", (int)q->rank, (int)k->rank, (int)v->rank);
    double scale;
    if (a->int_count != 2 || a->expr_count || (a->ints[0] != 0 && a->ints[0] != 1))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "attention of '%s': needs causal (0 or 1) and a scale",
                          c->labels[0]);
    memcpy(&scale, &a->ints[1], sizeof scale);
    if (!(scale >= 0 && scale < 1e300))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "attention of '%s': scale %g must be >= 0 and finite (0: "
                          "1/sqrt(head dim))", c->labels[0], scale);
    kiln_status st;
    if ((st = same_dim(c, "attention", 1, 0, q->dims[0], k->dims[0])) || (st = same_dim(c, "attention", 1, 3, q->dims[3], k->dims[3])))
        return st;
    const char *lab[3] = {c->labels[1], c->labels[2], c->labels[2]};
    kiln_op_call kv = *c;
    kv.labels = lab;
    for (int32_t i = 0; i < 3; i++)
        if ((st = same_dim(&kv, "attention", 1, i, k->dims[i], v->dims[i]))) return st;
    /* heads: q's a multiple of k's */
    kiln_expr hq = q->dims[1], hk = k->dims[1];
    kiln_expr rem = kiln_expr_binary(p, KILN_EXPR_SUB, hq, kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(
                                                           p, KILN_EXPR_FLOORDIV, hq, hk), hk));
    kiln_expr ok = kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, 0), hk),
                                    kiln_expr_binary(p, KILN_EXPR_EQ, rem, kiln_expr_const(p, 0)));
    int64_t okv;
    if (kiln_expr_is_const(p, ok, &okv) && !okv)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "attention: the query heads of '%s' are not a multiple of the "
                          "key heads of '%s'", c->labels[0], c->labels[1]);
    if ((st = report_check(c, ok, "attention: the query heads of '%s' are not a multiple of the key heads of '%s'",
                           c->labels[0], c->labels[1])))
        return st;
    shape->rank = 4;
    shape->dims[0] = q->dims[0];
    shape->dims[1] = q->dims[1];
    shape->dims[2] = q->dims[2];
    shape->dims[3] = v->dims[3];
    *dtype = c->dtypes[0];
    return KILN_OK;
}

static kiln_status infer_compare(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    if (c->subop < 0 || c->subop >= KILN_COMPARE_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "compare layer: unknown op %d", (int)c->subop);
    const char *what = kiln_compare_op_name(c->subop);
    if (c->dtypes[0] != c->dtypes[1])
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: dtype mismatch: '%s' is %s but '%s' is %s (cast one)", what,
                          c->labels[0], kiln_dtype_name(c->dtypes[0]), c->labels[1], kiln_dtype_name(c->dtypes[1]));
    *dtype = KILN_BOOL;
    return broadcast_shapes(c, what, c->shapes[0].rank, c->shapes[0].dims, c->shapes[1].rank, c->shapes[1].dims,
                            shape);
}

/* ---- scatters --------------------------------------------------------------- */

/* Dtypes the scatter reductions combine (none takes any dtype). */
#define SCATTER_REDUCE_DTYPES (FLOATS | (1u << KILN_INT32) | (1u << KILN_INT64))

/* What every scatter checks: indices int32/int64, updates of data's dtype,
 * ints = {reduction} with a reduction the dtype takes. */
static kiln_status scatter_common(const kiln_op_call *c, const char *what) {
    const kiln_layer_attrs *a = c->attrs;
    if (c->dtypes[1] != KILN_INT32 && c->dtypes[1] != KILN_INT64)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: indices '%s' are %s; need int32 or int64", what,
                          c->labels[1], kiln_dtype_name(c->dtypes[1]));
    if (c->dtypes[2] != c->dtypes[0])
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: updates '%s' are %s but data '%s' is %s (cast one)", what,
                          c->labels[2], kiln_dtype_name(c->dtypes[2]), c->labels[0], kiln_dtype_name(c->dtypes[0]));
    if (a->int_count != 1 || a->expr_count || a->ints[0] < 0 || a->ints[0] >= KILN_SCATTER_REDUCTION_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': needs one reduction, 0 to %d (none, add, mul, max, "
                          "min)", what, c->labels[0], KILN_SCATTER_REDUCTION_COUNT - 1);
    if (a->ints[0] != KILN_SCATTER_NONE && !(SCATTER_REDUCE_DTYPES >> c->dtypes[0] & 1u))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': reduction %s does not take dtype %s (floats, int32, "
                          "int64; none takes any)", what, c->labels[0], kiln_scatter_reduction_list_name((int)a->ints[0]),
                          kiln_dtype_name(c->dtypes[0]));
    return KILN_OK;
}

/* updates' axis `axis` must be `want` (an axis of indices or data, named by
 * `from`): refused now when both are constants, else a run-time check. */
static kiln_status scatter_dim(const kiln_op_call *c, const char *what, int32_t axis, kiln_expr want, kiln_expr got,
                               const char *from) {
    kiln_exprs *p = c->pool;
    int64_t vw, vg;
    if (want == got) return KILN_OK;
    if (kiln_expr_is_const(p, want, &vw) && kiln_expr_is_const(p, got, &vg))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: updates '%s' axis %d has size %lld; %s gives %lld", what,
                          c->labels[2], (int)axis, (long long)vg, from, (long long)vw);
    char sw[128], sg[128];
    kiln_expr_format(p, want, sw, sizeof sw);
    kiln_expr_format(p, got, sg, sizeof sg);
    return report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, want, got), "%s: updates '%s' axis %d has size %s; %s "
                        "gives %s", what, c->labels[2], (int)axis, sg, from, sw);
}

/* SCATTER_ND: data rank r, indices rank q >= 1 whose last axis k (a constant,
 * 1 <= k <= r) indexes data's first k axes; updates are
 * indices.shape[:-1] + data.shape[k:].  Output shaped like data. */
static kiln_status infer_scatter_nd(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const char *what = "scatter_nd";
    const kiln_shape_expr *d = &c->shapes[0], *ix = &c->shapes[1], *u = &c->shapes[2];
    kiln_status st = scatter_common(c, what);
    if (st) return st;
    if (d->rank < 1 || ix->rank < 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: data '%s' (rank %d) and indices '%s' (rank %d) need rank >= "
                          "1", what, c->labels[0], (int)d->rank, c->labels[1], (int)ix->rank);
    int64_t k;
    if (!kiln_expr_is_const(c->pool, ix->dims[ix->rank - 1], &k))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: the last axis of indices '%s' must have a constant size (it "
                          "says how many of data's axes an index names)", what, c->labels[1]);
    if (k < 1 || k > d->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: indices '%s' have %lld coordinates per index; data '%s' has "
                          "rank %d (need 1 to %d)", what, c->labels[1], (long long)k, c->labels[0], (int)d->rank,
                          (int)d->rank);
    int32_t want_rank = ix->rank - 1 + d->rank - (int32_t)k;
    if (u->rank != want_rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: updates '%s' have rank %d; indices '%s' and data '%s' give "
                          "%d (indices.shape[:-1] + data.shape[%lld:])", what, c->labels[2], (int)u->rank,
                          c->labels[1], c->labels[0], (int)want_rank, (long long)k);
    for (int32_t i = 0; i < ix->rank - 1; i++)
        if ((st = scatter_dim(c, what, i, ix->dims[i], u->dims[i], "indices"))) return st;
    for (int32_t i = (int32_t)k; i < d->rank; i++)
        if ((st = scatter_dim(c, what, ix->rank - 1 + i - (int32_t)k, d->dims[i], u->dims[ix->rank - 1 + i - k],
                              "data")))
            return st;
    same_shape(d, shape);
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* SCATTER_ELEMENTS: indices of data's rank, updates of indices' shape; on
 * every axis but `axis` indices may not be longer than data. */
static kiln_status infer_scatter_elements(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    const char *what = "scatter_elements";
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *d = &c->shapes[0], *ix = &c->shapes[1], *u = &c->shapes[2];
    kiln_status st = scatter_common(c, what);
    if (st) return st;
    if (d->rank < 1 || d->rank != ix->rank || u->rank != ix->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: data '%s', indices '%s' and updates '%s' have ranks %d, %d "
                          "and %d; they need one rank of at least 1", what, c->labels[0], c->labels[1], c->labels[2],
                          (int)d->rank, (int)ix->rank, (int)u->rank);
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, d->rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': axis %lld is out of range for rank %d", what,
                          c->labels[0], (long long)c->axis, (int)d->rank);
    for (int32_t i = 0; i < d->rank; i++) {
        if ((st = scatter_dim(c, what, i, ix->dims[i], u->dims[i], "indices"))) return st;
        if (i == axis) continue;
        int64_t vi, vd;
        if (kiln_expr_is_const(p, ix->dims[i], &vi) && kiln_expr_is_const(p, d->dims[i], &vd)) {
            if (vi > vd)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s: indices '%s' axis %d has size %lld, data '%s' only "
                                  "%lld", what, c->labels[1], (int)i, (long long)vi, c->labels[0], (long long)vd);
            continue;
        }
        kiln_expr fits = kiln_expr_binary(p, KILN_EXPR_LT, ix->dims[i],
                                          kiln_expr_binary(p, KILN_EXPR_ADD, d->dims[i], kiln_expr_const(p, 1)));
        if ((st = report_check(c, fits, "%s: indices '%s' axis %d is longer than data '%s'", what, c->labels[1], (int)i,
                               c->labels[0])))
            return st;
    }
    same_shape(d, shape);
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* ---- collectives ------------------------------------------------------------ */

/* Reductions over ranks: the numbers NCCL reduces (no bool). */
#define COLLECTIVE_REDUCE_DTYPES (FLOATS | SIGNED | (1u << KILN_UINT8))

static kiln_status collective_common(const kiln_op_call *c, const char *what, bool reduces) {
    if (c->world_size < 1 || c->world_size > KILN_MAX_WORLD_SIZE)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': world size %d is outside [1, %d]", what,
                          c->labels[0], (int)c->world_size, KILN_MAX_WORLD_SIZE);
    if (reduces && (c->subop < 0 || c->subop >= KILN_COLLECTIVE_OP_COUNT))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': unknown reduction %d", what, c->labels[0],
                          (int)c->subop);
    uint32_t dtypes = reduces ? COLLECTIVE_REDUCE_DTYPES : ALL_TYPES;
    if ((unsigned)c->dtypes[0] >= KILN_DTYPE_COUNT || !(dtypes >> c->dtypes[0] & 1u))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported (%s)", what, c->labels[0],
                          kiln_dtype_name(c->dtypes[0]) ? kiln_dtype_name(c->dtypes[0]) : "?",
                          reduces ? "numbers only, not bool" : "any dtype");
    return KILN_OK;
}

/* ALL_REDUCE: the elementwise reduction over the ranks; shape unchanged. */
static kiln_status infer_all_reduce(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_status st = collective_common(c, "all_reduce", true);
    if (st) return st;
    *dtype = c->dtypes[0];
    same_shape(&c->shapes[0], shape);
    return KILN_OK;
}

/* ALL_GATHER: the ranks' tensors concatenated along axis, in rank order. */
static kiln_status infer_all_gather(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_status st = collective_common(c, "all_gather", false);
    if (st) return st;
    const kiln_shape_expr *in = &c->shapes[0];
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, in->rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "all_gather of '%s': axis %lld is out of range for rank %d",
                          c->labels[0], (long long)c->axis, (int)in->rank);
    same_shape(in, shape);
    shape->dims[axis] = kiln_expr_binary(c->pool, KILN_EXPR_MUL, in->dims[axis], kiln_expr_const(c->pool, c->world_size));
    if (shape->dims[axis] < 0) return no_memory();
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* REDUCE_SCATTER: the sum over the ranks, cut into world_size equal
 * parts along axis; rank r keeps part r.  The axis must divide: refused now
 * when it is a constant, else a run-time check. */
static kiln_status infer_reduce_scatter(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_status st = collective_common(c, "reduce_scatter", true);
    if (st) return st;
    if (c->subop != KILN_COLLECTIVE_SUM)   /* the sub-op is stored for later reductions; sum is the one built */
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "reduce_scatter of '%s': reduction %s is not supported (sum only)",
                          c->labels[0], kiln_collective_op_name(c->subop));
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *in = &c->shapes[0];
    int64_t axis = c->axis, n;
    if (!normalize_axis(&axis, in->rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "reduce_scatter of '%s': axis %lld is out of range for rank %d",
                          c->labels[0], (long long)c->axis, (int)in->rank);
    kiln_expr d = in->dims[axis], w = kiln_expr_const(p, c->world_size);
    kiln_expr part = kiln_expr_binary(p, KILN_EXPR_FLOORDIV, d, w);
    if (kiln_expr_is_const(p, d, &n) && n % c->world_size != 0)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "reduce_scatter of '%s': axis %d has size %lld, which world size "
                          "%d does not divide", c->labels[0], (int)axis, (long long)n, (int)c->world_size);
    char text[128];
    kiln_expr_format(p, d, text, sizeof text);
    st = report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, kiln_expr_binary(p, KILN_EXPR_MUL, part, w), d),
                      "reduce_scatter of '%s': axis %d has size %s, which world size %d does not divide",
                      c->labels[0], (int)axis, text, (int)c->world_size);
    if (st) return st;
    same_shape(in, shape);
    shape->dims[axis] = part;
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* ---- top-k ------------------------------------------------------------------ */

#define TOPK_DTYPES (FLOATS | (1u << KILN_INT32) | (1u << KILN_INT64))

static const char *const topk_outputs[] = {"values", "indices"};

/* TOPK (ONNX TopK, torch.topk): the k largest (or smallest) entries of x
 * along axis, and their positions.  ints: largest (0/1), sorted (0/1);
 * exprs: k.  Outputs: values (x's dtype) and indices (int64), both x's shape
 * with the axis of size k.  0 <= k <= the axis: refused now when both are
 * constants, else run-time checks. */
static kiln_status infer_topk(const kiln_op_call *c, kiln_dtype *dtypes, kiln_shape_expr *shapes) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *in = &c->shapes[0];
    const kiln_layer_attrs *a = c->attrs;
    kiln_dtype dt = c->dtypes[0];
    if ((unsigned)dt >= KILN_DTYPE_COUNT || !(TOPK_DTYPES >> dt & 1u))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "topk of '%s': dtype %s is not supported (float32, float16, "
                          "bfloat16, int32, int64)", c->labels[0], kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?");
    if (in->rank < 1) return kiln_error(KILN_ERROR_INVALID_NETWORK, "topk of '%s': a scalar has no axis", c->labels[0]);
    int64_t axis = c->axis;
    if (!normalize_axis(&axis, in->rank))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "topk of '%s': axis %lld is out of range for rank %d",
                          c->labels[0], (long long)c->axis, (int)in->rank);
    if (a->int_count != 2 || a->expr_count != 1 || (a->ints[0] != 0 && a->ints[0] != 1) ||
        (a->ints[1] != 0 && a->ints[1] != 1))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "topk of '%s': needs k (one expression), largest and sorted "
                          "(0 or 1); got %d expressions and %d integers", c->labels[0], (int)a->expr_count,
                          (int)a->int_count);
    kiln_expr k = a->exprs[0], n = in->dims[axis];
    if (!kiln_exprs_valid(p, k))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "topk of '%s': k is an invalid expression", c->labels[0]);
    int64_t vk, vn;
    bool k_const = kiln_expr_is_const(p, k, &vk), n_const = kiln_expr_is_const(p, n, &vn);
    if (k_const && vk < 0)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "topk of '%s': k is %lld, not >= 0", c->labels[0], (long long)vk);
    if (k_const && n_const && vk > vn)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "topk of '%s': k is %lld but axis %d has only %lld entries",
                          c->labels[0], (long long)vk, (int)axis, (long long)vn);
    char sk[128], sn[128];
    kiln_expr_format(p, k, sk, sizeof sk);
    kiln_expr_format(p, n, sn, sizeof sn);
    kiln_status st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, -1), k),
                                  "topk of '%s': k (%s) is negative", c->labels[0], sk);
    if (!st)
        st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, k, kiln_expr_binary(p, KILN_EXPR_ADD, n,
                                                                                  kiln_expr_const(p, 1))),
                          "topk of '%s': k (%s) is larger than axis %d (%s entries)", c->labels[0], sk, (int)axis, sn);
    if (st) return st;
    for (int32_t o = 0; o < 2; o++) {
        same_shape(in, &shapes[o]);
        shapes[o].dims[axis] = k;
    }
    dtypes[0] = dt;
    dtypes[1] = KILN_INT64;
    return KILN_OK;
}

/* ---- rotary embedding ------------------------------------------------------- */

/* a == b for the rotary rule: nothing when they are one expression, an error
 * naming both when both are constants and differ, else a run-time check.
 * what_a and what_b say what each size is ("position_ids 'pos' axis 0",
 * "x's batch"). */
static kiln_status rotary_same(const kiln_op_call *c, kiln_expr a, const char *what_a, kiln_expr b,
                               const char *what_b) {
    kiln_exprs *p = c->pool;
    int64_t va, vb;
    if (a < 0 || b < 0) return no_memory();
    if (a == b) return KILN_OK;
    if (kiln_expr_is_const(p, a, &va) && kiln_expr_is_const(p, b, &vb)) {
        if (va == vb) return KILN_OK;
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': %s is %lld but %s is %lld",
                          c->labels[0], what_a, (long long)va, what_b, (long long)vb);
    }
    char sa[128], sb[128];
    kiln_expr_format(p, a, sa, sizeof sa);
    kiln_expr_format(p, b, sb, sizeof sb);
    return report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, a, b), "rotary_embedding of '%s': %s (%s) differs from "
                        "%s (%s)", c->labels[0], what_a, sa, what_b, sb);
}

/* "position_ids 'pos' axis 0" and so on, into buf: an input by its role and name. */
static const char *rotary_axis(char *buf, size_t size, const kiln_op_call *c, int32_t input, int32_t axis,
                               const char *note) {
    static const char *const roles[4] = {"x", "cos_cache", "sin_cache", "position_ids"};
    snprintf(buf, size, "%s '%s' axis %d%s", roles[input], c->labels[input], (int)axis, note);
    return buf;
}

/* Bound on the integer attributes, so that the sizes built from them (and
 * the kernels' index arithmetic) cannot overflow whatever a file says. */
#define ROTARY_ATTR_MAX INT32_MAX

/* ROTARY_EMBEDDING (ONNX RotaryEmbedding, opset 23).  Inputs x, cos_cache,
 * sin_cache and, optionally, position_ids.  ints (all three always there,
 * the canonical form): interleaved (0/1), rotary_embedding_dim R (0: the
 * whole head; else even, 2 <= R <= D), num_heads (3-D x: > 0 and dividing
 * the last axis; 4-D x: 0 or x's axis 1).  x is [B, S, H·D] or [B, H, S, D];
 * the caches [P, R/2] with position_ids [B, S], else [B, S, R/2].  The
 * kernels take R/2 from the caches' last axis, which this rule ties to R
 * (or to D when R is 0).  Output: x's dtype and shape. */
static kiln_status infer_rotary_embedding(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *x = &c->shapes[0], *cosc = &c->shapes[1], *sinc = &c->shapes[2];
    const kiln_layer_attrs *a = c->attrs;
    const char *xl = c->labels[0];
    const bool has_pos = c->input_count == 4;
    kiln_dtype dt = c->dtypes[0];
    if (!kiln_dtype_is_float(dt))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': dtype %s is not supported (float32, "
                          "float16, bfloat16)", xl, kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?");
    for (int32_t i = 1; i < 3; i++)
        if (c->dtypes[i] != dt)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': %s '%s' is %s, not %s like x", xl,
                              i == 1 ? "cos_cache" : "sin_cache", c->labels[i],
                              kiln_dtype_name(c->dtypes[i]) ? kiln_dtype_name(c->dtypes[i]) : "?", kiln_dtype_name(dt));
    if (has_pos && c->dtypes[3] != KILN_INT64 && c->dtypes[3] != KILN_INT32)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': position_ids '%s' are %s; need int64 "
                          "or int32", xl, c->labels[3], kiln_dtype_name(c->dtypes[3]) ? kiln_dtype_name(c->dtypes[3])
                                                                                       : "?");
    if (a->int_count != 3 || a->expr_count)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': needs interleaved, "
                          "rotary_embedding_dim and num_heads (3 integers), got %d integers and %d expressions", xl,
                          (int)a->int_count, (int)a->expr_count);
    const int64_t interleaved = a->ints[0], rot = a->ints[1], heads = a->ints[2];
    if (interleaved != 0 && interleaved != 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': interleaved is %lld, not 0 or 1", xl,
                          (long long)interleaved);
    if (rot < 0 || rot > ROTARY_ATTR_MAX || rot % 2)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': rotary_embedding_dim %lld is not an "
                          "even number in [0, %d] (0: the whole head)", xl, (long long)rot, ROTARY_ATTR_MAX - 1);
    if (heads < 0 || heads > ROTARY_ATTR_MAX)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': num_heads %lld is not in [0, %d]", xl,
                          (long long)heads, ROTARY_ATTR_MAX);

    /* x's batch, sequence and head size; the heads' count must agree. */
    kiln_expr batch, seq, head;
    kiln_status st;
    char wa[160], wb[160];   /* what rotary_same compares, for its messages */
    if (x->rank == 3) {   /* [B, S, H·D]: heads side by side */
        if (heads == 0)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': a 3-D input [batch, seq, "
                              "hidden] needs num_heads (> 0)", xl);
        kiln_expr n = kiln_expr_const(p, heads), hidden = x->dims[2];
        batch = x->dims[0];
        seq = x->dims[1];
        head = kiln_expr_binary(p, KILN_EXPR_FLOORDIV, hidden, n);
        snprintf(wb, sizeof wb, "num_heads %lld times the head size", (long long)heads);
        if ((st = rotary_same(c, hidden, rotary_axis(wa, sizeof wa, c, 0, 2, " (the hidden size)"),
                              kiln_expr_binary(p, KILN_EXPR_MUL, head, n), wb)))
            return st;
    } else if (x->rank == 4) {   /* [B, H, S, D] */
        batch = x->dims[0];
        seq = x->dims[2];
        head = x->dims[3];
        if (heads && (st = rotary_same(c, x->dims[1], rotary_axis(wa, sizeof wa, c, 0, 1, " (the heads)"),
                                       kiln_expr_const(p, heads), "num_heads")))
            return st;
    } else {
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': x has rank %d; needs [batch, seq, "
                          "num_heads*head] (3) or [batch, heads, seq, head] (4)", xl, (int)x->rank);
    }

    /* The caches: one shape, [P, R/2] or [B, S, R/2]. */
    const int32_t cache_rank = has_pos ? 2 : 3;
    for (int32_t i = 1; i < 3; i++)
        if (c->shapes[i].rank != cache_rank)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': %s '%s' has rank %d; needs %s", xl,
                              i == 1 ? "cos_cache" : "sin_cache", c->labels[i], (int)c->shapes[i].rank,
                              has_pos ? "[max_position, rotary_dim/2] (2) with position_ids"
                                      : "[batch, seq, rotary_dim/2] (3) without position_ids");
    for (int32_t i = 0; i < cache_rank; i++)
        if ((st = rotary_same(c, sinc->dims[i], rotary_axis(wa, sizeof wa, c, 2, i, ""), cosc->dims[i],
                              rotary_axis(wb, sizeof wb, c, 1, i, ""))))
            return st;
    kiln_expr half = cosc->dims[cache_rank - 1];
    rotary_axis(wa, sizeof wa, c, 1, cache_rank - 1, " (rotary_dim/2)");
    if (rot) {
        if ((st = rotary_same(c, half, wa, kiln_expr_const(p, rot / 2), "rotary_embedding_dim/2"))) return st;
        /* R <= D */
        int64_t vd;
        if (kiln_expr_is_const(p, head, &vd) && rot > vd)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': rotary_embedding_dim %lld is "
                              "larger than the head size %lld", xl, (long long)rot, (long long)vd);
        if ((st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, rot - 1), head),
                               "rotary_embedding of '%s': rotary_embedding_dim %lld is larger than the head size", xl,
                               (long long)rot)))
            return st;
    } else {
        rotary_axis(wb, sizeof wb, c, 1, cache_rank - 1, " (rotary_dim/2) times 2");
        if ((st = rotary_same(c, kiln_expr_binary(p, KILN_EXPR_MUL, half, kiln_expr_const(p, 2)), wb, head,
                              "the head size (rotary_embedding_dim 0 rotates whole heads)")))
            return st;
    }
    if (has_pos) {
        const kiln_shape_expr *pos = &c->shapes[3];
        if (pos->rank != 2)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "rotary_embedding of '%s': position_ids '%s' have rank %d; "
                              "need [batch, seq] (2)", xl, c->labels[3], (int)pos->rank);
    }
    const int32_t by = has_pos ? 3 : 1;   /* what gives each token's cache row: position_ids, or the caches */
    if ((st = rotary_same(c, c->shapes[by].dims[0], rotary_axis(wa, sizeof wa, c, by, 0, ""), batch, "x's batch")) ||
        (st = rotary_same(c, c->shapes[by].dims[1], rotary_axis(wb, sizeof wb, c, by, 1, ""), seq,
                          "x's sequence length")))
        return st;
    same_shape(x, shape);
    *dtype = dt;
    return KILN_OK;
}

/* ---- convolution ------------------------------------------------------------ */

/* e >= 1: refused at once when a constant, else a run-time check. */
static kiln_status conv_positive(const kiln_op_call *c, const char *what, kiln_expr e, const char *thing,
                                 int32_t axis) {
    kiln_exprs *p = c->pool;
    int64_t v;
    if (e < 0) return no_memory();
    if (kiln_expr_is_const(p, e, &v)) {
        if (v >= 1) return KILN_OK;
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s' and '%s': %s of spatial axis %d is %lld, not >= 1",
                          what, c->labels[0], c->labels[1], thing, (int)axis, (long long)v);
    }
    return report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, 0), e),
                        "%s of '%s' and '%s': %s of spatial axis %d is below 1", what, c->labels[0], c->labels[1],
                        thing, (int)axis);
}

/* a == b: nothing when they fold equal, an error when both are constants
 * and differ, else a run-time check. */
static kiln_status conv_equal(const kiln_op_call *c, const char *op, kiln_expr a, kiln_expr b, const char *what) {
    kiln_exprs *p = c->pool;
    int64_t va, vb;
    if (a < 0 || b < 0) return no_memory();
    if (a == b) return KILN_OK;
    if (kiln_expr_is_const(p, a, &va) && kiln_expr_is_const(p, b, &vb)) {
        if (va == vb) return KILN_OK;
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s' and '%s': %s (%lld vs %lld)", op, c->labels[0],
                          c->labels[1], what, (long long)va, (long long)vb);
    }
    return report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, a, b), "%s of '%s' and '%s': %s", op, c->labels[0],
                        c->labels[1], what);
}

/* What CONV and CONV_TRANSPOSE share: dtypes, ranks, and the attribute
 * lists (ints: group, strides, dilations; exprs: k begin pads, then k end
 * pads).  The pads are filled with zeros when left out (the canonical form
 * lists them).  Group, strides and dilations are bounded, and so are the
 * pads (a run-time check when symbolic), so that the kernels' index
 * arithmetic cannot overflow whatever an engine file says.  A convolution's
 * pads are >= 0; a transposed one's may be negative (a negative pad grows
 * the output: ONNX's output_padding and output_shape). */
/* The 2k pads (begin pads, then end pads; expressions) of a conv, conv
 * transpose or pool layer within [lo, hi]: a constant now, a symbolic one
 * as a check on concrete sizes. */
static kiln_status spatial_pads_check(const kiln_op_call *c, kiln_exprs *p, const kiln_expr *pads, int32_t k,
                                      int64_t lo, int64_t hi, const char *what, const char *xl) {
    for (int32_t i = 0; i < 2 * k; i++) {
        kiln_expr e = pads[i];
        int64_t v;
        const char *side = i < k ? "begin" : "end";
        if (!kiln_exprs_valid(p, e))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s of '%s': pad %d is an invalid expression", what, xl,
                              (int)i);
        if (kiln_expr_is_const(p, e, &v)) {
            if (v < lo || v > hi)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': %s pad of spatial axis %d is %lld, not "
                                  "in [%lld, %lld]", what, xl, side, (int)(i % k), (long long)v, (long long)lo,
                                  (long long)hi);
            continue;
        }
        kiln_status st = lo == 0
            ? report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, -1), e),
                           "%s of '%s': %s pad of spatial axis %d is negative", what, xl, side, (int)(i % k))
            : report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, lo - 1), e),
                           "%s of '%s': %s pad of spatial axis %d is below %lld", what, xl, side, (int)(i % k),
                           (long long)lo);
        if (!st)
            st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, e, kiln_expr_const(p, hi + 1)),
                              "%s of '%s': %s pad of spatial axis %d is above %lld", what, xl, side, (int)(i % k),
                              (long long)hi);
        if (st) return st;
    }
    return KILN_OK;
}

#define CONV_BOUND INT32_MAX
static kiln_status conv_common(const kiln_op_call *c, bool transposed) {
    const char *what = transposed ? "conv_transpose" : "conv";
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *x = &c->shapes[0], *w = &c->shapes[1];
    kiln_layer_attrs *a = c->attrs;
    const char *xl = c->labels[0], *wl = c->labels[1];
    kiln_dtype dt = c->dtypes[0];
    if (!kiln_dtype_is_float(dt))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported (float32, float16, "
                          "bfloat16)", what, xl, kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?");
    for (int32_t i = 1; i < c->input_count; i++)
        if (c->dtypes[i] != dt)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': %s '%s' is %s, not %s like the input", what, xl,
                              i == 1 ? "weight" : "bias", c->labels[i],
                              kiln_dtype_name(c->dtypes[i]) ? kiln_dtype_name(c->dtypes[i]) : "?",
                              kiln_dtype_name(dt));
    if (x->rank < 3 || x->rank > 5)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': input rank %d; needs [N, C, D1..Dk] with 1 to 3 "
                          "spatial axes (rank 3 to 5)", what, xl, (int)x->rank);
    if (w->rank != x->rank)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': weight '%s' has rank %d; needs %d (%s)", what, xl,
                          wl, (int)w->rank, (int)x->rank, transposed ? "[C, M/group, K1..Kk]" : "[M, C/group, K1..Kk]");
    const int32_t k = x->rank - 2;
    if (a->int_count != 1 + 2 * k || (a->expr_count != 0 && a->expr_count != 2 * k))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s' (%d spatial axes): needs group, %d strides, %d "
                          "dilations and %d pads; got %d integers and %d pads", what, xl, (int)k, (int)k, (int)k,
                          (int)(2 * k), (int)a->int_count, (int)a->expr_count);
    if (a->expr_count == 0) {
        for (int32_t i = 0; i < 2 * k; i++) a->exprs[i] = kiln_expr_const(p, 0);
        a->expr_count = 2 * k;
    }
    const int64_t group = a->ints[0];
    if (group < 1 || group > CONV_BOUND)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': group %lld is not in [1, %d]", what, xl,
                          (long long)group, CONV_BOUND);
    for (int32_t i = 0; i < k; i++) {
        if (a->ints[1 + i] < 1 || a->ints[1 + i] > CONV_BOUND)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': stride %lld of spatial axis %d is not in "
                              "[1, %d]", what, xl, (long long)a->ints[1 + i], (int)i, CONV_BOUND);
        if (a->ints[1 + k + i] < 1 || a->ints[1 + k + i] > CONV_BOUND)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dilation %lld of spatial axis %d is not in "
                              "[1, %d]", what, xl, (long long)a->ints[1 + k + i], (int)i, CONV_BOUND);
    }
    const int64_t lo = transposed ? -(int64_t)CONV_BOUND : 0;
    kiln_status st = spatial_pads_check(c, p, a->exprs, k, lo, CONV_BOUND, what, xl);
    if (st) return st;
    return KILN_OK;
}

/* A bias, when given, is [m]. */
static kiln_status conv_bias(const kiln_op_call *c, const char *what, kiln_expr m) {
    if (c->input_count != 3) return KILN_OK;
    const kiln_shape_expr *b = &c->shapes[2];
    if (b->rank != 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': bias '%s' has rank %d; needs [M]", what,
                          c->labels[0], c->labels[2], (int)b->rank);
    return conv_equal(c, what, b->dims[0], m, "the bias length must equal the output channels");
}

/* The dilated kernel's extent, dilation·(K-1) + 1, after checking K >= 1. */
static kiln_status conv_span(const kiln_op_call *c, const char *what, int32_t i, kiln_expr *span) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *w = &c->shapes[1];
    const int32_t k = w->rank - 2;
    kiln_expr kk = w->dims[2 + i], one = kiln_expr_const(p, 1);
    kiln_status st = conv_positive(c, what, kk, "the kernel size", i);
    if (st) return st;
    *span = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_const(p, c->attrs->ints[1 + k + i]),
                                                                kiln_expr_binary(p, KILN_EXPR_SUB, kk, one)), one);
    return *span < 0 ? no_memory() : KILN_OK;
}

/* CONV (ONNX Conv): x [N, C, D1..Dk], w [M, C/group, K1..Kk], bias [M]
 * (optional third input); attribute lists as conv_common.  Output
 * [N, M, O1..Ok], Oi = (Di + pads - span) // stride + 1.  Pads are
 * expressions so that an importer can resolve SAME padding on symbolic
 * sizes. */
static kiln_status infer_conv(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *x = &c->shapes[0], *w = &c->shapes[1];
    kiln_status st = conv_common(c, false);
    if (st) return st;
    const kiln_layer_attrs *a = c->attrs;
    const char *xl = c->labels[0], *wl = c->labels[1];
    const int32_t k = x->rank - 2;
    const int64_t group = a->ints[0];
    /* Channels: C = (C/group)·group, and group divides M. */
    kiln_expr g = kiln_expr_const(p, group), m = w->dims[0];
    char what[160];
    snprintf(what, sizeof what, "input channels must equal the weight's channels per group times group %lld",
             (long long)group);
    st = conv_equal(c, "conv", x->dims[1], kiln_expr_binary(p, KILN_EXPR_MUL, w->dims[1], g), what);
    if (st) return st;
    snprintf(what, sizeof what, "group %lld must divide the weight's output channels", (long long)group);
    st = conv_equal(c, "conv", kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(p, KILN_EXPR_FLOORDIV, m, g), g), m,
                    what);
    if (!st) st = conv_bias(c, "conv", m);
    if (st) return st;
    shape->rank = x->rank;
    shape->dims[0] = x->dims[0];
    shape->dims[1] = m;
    kiln_expr one = kiln_expr_const(p, 1);
    for (int32_t i = 0; i < k; i++) {
        kiln_expr span;
        st = conv_span(c, "conv", i, &span);
        if (st) return st;
        kiln_expr padded = kiln_expr_binary(p, KILN_EXPR_ADD, x->dims[2 + i],
                                            kiln_expr_binary(p, KILN_EXPR_ADD, a->exprs[i], a->exprs[k + i]));
        kiln_expr room = kiln_expr_binary(p, KILN_EXPR_SUB, padded, span);   /* >= 0: at least one output */
        int64_t vroom, vpadded, vspan;
        if (room < 0) return no_memory();
        if (kiln_expr_is_const(p, room, &vroom) && vroom < 0) {
            char sp[128] = "?", ss[128] = "?";
            if (kiln_expr_is_const(p, padded, &vpadded)) snprintf(sp, sizeof sp, "%lld", (long long)vpadded);
            if (kiln_expr_is_const(p, span, &vspan)) snprintf(ss, sizeof ss, "%lld", (long long)vspan);
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "conv of '%s' and '%s': spatial axis %d is %s long padded, "
                              "shorter than the dilated kernel (%s)", xl, wl, (int)i, sp, ss);
        }
        st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, -1), room),
                          "conv of '%s' and '%s': spatial axis %d, padded, is shorter than the dilated kernel", xl,
                          wl, (int)i);
        if (st) return st;
        shape->dims[2 + i] = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_FLOORDIV, room,
                                              kiln_expr_const(p, a->ints[1 + i])), one);
        if (shape->dims[2 + i] < 0) return no_memory();
    }
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* CONV_TRANSPOSE (ONNX ConvTranspose): x [N, C, D1..Dk], w [C, M/group,
 * K1..Kk], bias [M]; attribute lists as conv_common, the pads possibly
 * negative.  Output [N, M, O1..Ok], Oi = stride·(Di-1) + span - pads:
 * the full transposed convolution, cropped by the pads (a negative end pad
 * is ONNX's output_padding). */
static kiln_status infer_conv_transpose(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *x = &c->shapes[0], *w = &c->shapes[1];
    kiln_status st = conv_common(c, true);
    if (st) return st;
    const kiln_layer_attrs *a = c->attrs;
    const int32_t k = x->rank - 2;
    const int64_t group = a->ints[0];
    kiln_expr g = kiln_expr_const(p, group), cin = x->dims[1];
    st = conv_equal(c, "conv_transpose", w->dims[0], cin, "the weight's first axis must equal the input channels");
    if (st) return st;
    char what[160];
    snprintf(what, sizeof what, "group %lld must divide the input channels", (long long)group);
    st = conv_equal(c, "conv_transpose",
                    kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(p, KILN_EXPR_FLOORDIV, cin, g), g), cin, what);
    if (st) return st;
    kiln_expr m = kiln_expr_binary(p, KILN_EXPR_MUL, w->dims[1], g);
    st = conv_bias(c, "conv_transpose", m);
    if (st) return st;
    shape->rank = x->rank;
    shape->dims[0] = x->dims[0];
    shape->dims[1] = m;
    kiln_expr one = kiln_expr_const(p, 1);
    for (int32_t i = 0; i < k; i++) {
        kiln_expr span;
        st = conv_span(c, "conv_transpose", i, &span);
        if (st) return st;
        kiln_expr full = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_MUL,
                                          kiln_expr_const(p, a->ints[1 + i]),
                                          kiln_expr_binary(p, KILN_EXPR_SUB, x->dims[2 + i], one)), span);
        kiln_expr out = kiln_expr_binary(p, KILN_EXPR_SUB, full,
                                         kiln_expr_binary(p, KILN_EXPR_ADD, a->exprs[i], a->exprs[k + i]));
        st = conv_positive(c, "conv_transpose", out, "the output size (after the pads)", i);
        if (st) return st;
        shape->dims[2 + i] = out;
    }
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* ---- pooling --------------------------------------------------------------- */

/* POOL (ONNX MaxPool, AveragePool): x [N, C, D1..Dk], k = 1..3; subop
 * kiln_pool_mode.  ints: ceil_mode, count_include_pad, kernel (k), strides
 * (k), dilations (k); exprs: pads, k begins then k ends.  Canonical form:
 * every list complete (max_pool's schema has no count_include_pad: 1 + 3k
 * integers get a 0 put in; the pads, when left out, zeros).  Every number
 * is bounded, the symbolic pads by run-time checks, so that the kernels'
 * index arithmetic cannot overflow whatever an engine file says.
 *
 * Oi = (Di + pads - span) // stride + 1 (floor mode) or ceil-divided
 * (ceil mode), less one when ceil's last window would start at or past
 * Di + pad_begin, i.e. only in the end padding (onnx's reference and torch
 * drop that window).  The padded axis must hold one whole window in both
 * modes. */
#define POOL_BOUND INT32_MAX
static kiln_status infer_pool(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *x = &c->shapes[0];
    kiln_layer_attrs *a = c->attrs;
    const char *xl = c->labels[0];
    if (c->subop < 0 || c->subop >= KILN_POOL_MODE_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "pool layer on '%s': unknown mode %d (0 max, 1 average)", xl,
                          (int)c->subop);
    const bool is_max = c->subop == KILN_POOL_MAX;
    const char *what = is_max ? "max_pool" : "avg_pool";
    kiln_dtype dt = c->dtypes[0];
    if (!kiln_dtype_is_float(dt))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': dtype %s is not supported (float32, float16, "
                          "bfloat16)", what, xl, kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?");
    if (x->rank < 3 || x->rank > 5)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': input rank %d; needs [N, C, D1..Dk] with 1 to 3 "
                          "spatial axes (rank 3 to 5)", what, xl, (int)x->rank);
    const int32_t k = x->rank - 2;
    if (is_max && a->int_count == 1 + 3 * k) {   /* the API's list: count_include_pad put in */
        memmove(a->ints + 2, a->ints + 1, sizeof(int64_t) * (size_t)(3 * k));
        a->ints[1] = 0;
        a->int_count++;
    }
    if (a->int_count != 2 + 3 * k || (a->expr_count != 0 && a->expr_count != 2 * k))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s' (%d spatial axes): needs ceil_mode, "
                          "count_include_pad, %d kernel sizes, %d strides, %d dilations and %d pads; got %d integers "
                          "and %d pads", what, xl, (int)k, (int)k, (int)k, (int)k, (int)(2 * k), (int)a->int_count,
                          (int)a->expr_count);
    if (a->expr_count == 0) {
        for (int32_t i = 0; i < 2 * k; i++) a->exprs[i] = kiln_expr_const(p, 0);
        a->expr_count = 2 * k;
    }
    if (a->ints[0] != 0 && a->ints[0] != 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': ceil_mode %lld is not 0 or 1", what, xl,
                          (long long)a->ints[0]);
    if (a->ints[1] != 0 && (is_max || a->ints[1] != 1))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': count_include_pad %lld is not %s", what, xl,
                          (long long)a->ints[1], is_max ? "0 (max_pool has none)" : "0 or 1");
    static const char *const names[3] = {"kernel size", "stride", "dilation"};
    for (int32_t j = 0; j < 3; j++)
        for (int32_t i = 0; i < k; i++) {
            int64_t v = a->ints[2 + j * k + i];
            if (v < 1 || v > POOL_BOUND)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': %s %lld of spatial axis %d is not in "
                                  "[1, %d]", what, xl, names[j], (long long)v, (int)i, POOL_BOUND);
        }
    kiln_status pads = spatial_pads_check(c, p, a->exprs, k, 0, POOL_BOUND, what, xl);
    if (pads) return pads;
    const bool ceil_mode = a->ints[0] == 1;
    kiln_expr one = kiln_expr_const(p, 1);
    shape->rank = x->rank;
    shape->dims[0] = x->dims[0];
    shape->dims[1] = x->dims[1];
    for (int32_t i = 0; i < k; i++) {
        const int64_t kern = a->ints[2 + i], stride = a->ints[2 + k + i], dil = a->ints[2 + 2 * k + i];
        const int64_t span = dil * (kern - 1) + 1;   /* <= 2^62: both factors are below 2^31 */
        kiln_expr begin_edge = kiln_expr_binary(p, KILN_EXPR_ADD, x->dims[2 + i], a->exprs[i]);
        kiln_expr padded = kiln_expr_binary(p, KILN_EXPR_ADD, begin_edge, a->exprs[k + i]);
        kiln_expr room = kiln_expr_binary(p, KILN_EXPR_SUB, padded, kiln_expr_const(p, span));
        int64_t vroom, vpadded;
        if (room < 0) return no_memory();
        if (kiln_expr_is_const(p, room, &vroom) && vroom < 0) {
            char sp[64] = "?";
            if (kiln_expr_is_const(p, padded, &vpadded)) snprintf(sp, sizeof sp, "%lld", (long long)vpadded);
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s of '%s': spatial axis %d is %s long padded, shorter "
                              "than the dilated kernel (%lld)", what, xl, (int)i, sp, (long long)span);
        }
        kiln_status st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, -1), room),
                                      "%s of '%s': spatial axis %d, padded, is shorter than the dilated kernel", what,
                                      xl, (int)i);
        if (st) return st;
        kiln_expr s = kiln_expr_const(p, stride), out;
        if (!ceil_mode) {
            out = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_FLOORDIV, room, s), one);
        } else {
            kiln_expr up = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_FLOORDIV,
                                            kiln_expr_binary(p, KILN_EXPR_ADD, room, kiln_expr_const(p, stride - 1)), s),
                                            one);
            /* The last window starts at (up-1)·stride in padded coordinates;
             * at or past Di + pad_begin it would cover end padding only. */
            kiln_expr last_start = kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_binary(p, KILN_EXPR_SUB, up, one), s);
            kiln_expr keep = kiln_expr_binary(p, KILN_EXPR_LT, last_start, begin_edge);   /* 1 or 0 */
            out = kiln_expr_binary(p, KILN_EXPR_ADD, kiln_expr_binary(p, KILN_EXPR_SUB, up, one), keep);
        }
        if (out < 0) return no_memory();
        shape->dims[2 + i] = out;
    }
    *dtype = dt;
    return KILN_OK;
}

/* ---- resize ------------------------------------------------------------------ */

/* RESIZE (ONNX Resize): x of rank r >= 1.  ints: mode, coordinate
 * transformation, nearest rounding, exclude_outside, cubic_coeff_a's bits,
 * then r scales' bits; exprs: the r output sizes, which are the output's
 * shape.  Canonical form: the scales complete (left out: r zeros, each
 * meaning out/in of its axis).  Every number is bounded (sizes by checks
 * when symbolic) so that the kernels' coordinates stay finite and their
 * indices in range whatever an engine file says. */
#define RESIZE_SIZE_BOUND INT32_MAX
#define RESIZE_SCALE_MIN  (1.0 / 4294967296.0)   /* 2^-32 */
#define RESIZE_SCALE_MAX  4294967296.0           /* 2^32 */
static kiln_status infer_resize(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const kiln_shape_expr *x = &c->shapes[0];
    kiln_layer_attrs *a = c->attrs;
    const char *xl = c->labels[0];
    const int32_t r = x->rank;
    kiln_dtype dt = c->dtypes[0];
    if (r < 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': a scalar has no axis to resize", xl);
    if (a->int_count == 5) {   /* no scales: out/in on every axis */
        for (int32_t i = 0; i < r; i++) a->ints[5 + i] = 0;
        a->int_count = 5 + r;
    }
    if (a->int_count != 5 + r || a->expr_count != r)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s' (rank %d): needs mode, "
                          "coordinate_transformation_mode, nearest_mode, exclude_outside, cubic_coeff_a, %d scales "
                          "and %d sizes; got %d integers and %d sizes", xl, (int)r, (int)r, (int)r,
                          (int)a->int_count, (int)a->expr_count);
    const int64_t mode = a->ints[0], coord = a->ints[1], nearest = a->ints[2], exclude = a->ints[3];
    if (mode < 0 || mode >= KILN_RESIZE_MODE_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': mode %lld is not 0 nearest, 1 linear or 2 "
                          "cubic", xl, (long long)mode);
    if (coord < 0 || coord >= KILN_RESIZE_COORD_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': coordinate_transformation_mode %lld is not "
                          "0 half_pixel, 1 half_pixel_symmetric, 2 pytorch_half_pixel, 3 align_corners or 4 "
                          "asymmetric", xl, (long long)coord);
    if (nearest < 0 || nearest >= KILN_RESIZE_NEAREST_COUNT)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': nearest_mode %lld is not 0 "
                          "round_prefer_floor, 1 round_prefer_ceil, 2 floor or 3 ceil", xl, (long long)nearest);
    if (exclude != 0 && exclude != 1)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': exclude_outside %lld is not 0 or 1", xl,
                          (long long)exclude);
    double ca;
    memcpy(&ca, &a->ints[4], sizeof ca);
    if (!(ca >= -1000.0 && ca <= 1000.0))   /* NaN fails too */
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': cubic_coeff_a %g is not a number in "
                          "[-1000, 1000]", xl, ca);
    for (int32_t i = 0; i < r; i++) {
        double sc;
        memcpy(&sc, &a->ints[5 + i], sizeof sc);
        if (sc == 0.0) {
            a->ints[5 + i] = 0;   /* -0 is 0 */
            continue;
        }
        if (!(sc >= RESIZE_SCALE_MIN && sc <= RESIZE_SCALE_MAX))
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': scale %g of axis %d is not 0 (out/in) or "
                              "in [2^-32, 2^32]", xl, sc, (int)i);
    }
    if (mode != KILN_RESIZE_NEAREST && !kiln_dtype_is_float(dt))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': %s interpolation of dtype %s is not "
                          "supported (float32, float16, bfloat16; nearest takes every dtype)", xl,
                          mode == KILN_RESIZE_LINEAR ? "linear" : "cubic", kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?");
    if (!kiln_dtype_name(dt))
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': unknown dtype %d", xl, (int)dt);
    kiln_expr zero = kiln_expr_const(p, 0);
    shape->rank = r;
    for (int32_t i = 0; i < r; i++) {
        kiln_expr e = a->exprs[i];
        int64_t v = -1, vin;
        if (!kiln_exprs_valid(p, e))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "resize of '%s': size %d is an invalid expression", xl,
                              (int)i);
        if (kiln_expr_is_const(p, e, &v)) {
            if (v < 0 || v > RESIZE_SIZE_BOUND)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': size %lld of axis %d is not in [0, %d]",
                                  xl, (long long)v, (int)i, RESIZE_SIZE_BOUND);
        } else {
            kiln_status st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, kiln_expr_const(p, -1), e),
                                          "resize of '%s': size of axis %d is negative", xl, (int)i);
            if (!st)
                st = report_check(c, kiln_expr_binary(p, KILN_EXPR_LT, e,
                                                      kiln_expr_const(p, (int64_t)RESIZE_SIZE_BOUND + 1)),
                                  "resize of '%s': size of axis %d is above %d", xl, (int)i, RESIZE_SIZE_BOUND);
            if (st) return st;
        }
        /* An empty axis has nothing to read: it can only become empty. */
        kiln_expr ok = kiln_expr_binary(p, KILN_EXPR_MAX, kiln_expr_binary(p, KILN_EXPR_LT, zero, x->dims[i]),
                                        kiln_expr_binary(p, KILN_EXPR_EQ, e, zero));
        if (ok < 0) return no_memory();
        if (kiln_expr_is_const(p, ok, &vin)) {
            if (!vin)
                return kiln_error(KILN_ERROR_INVALID_NETWORK, "resize of '%s': axis %d is empty and cannot be resized "
                                  "to %lld", xl, (int)i, (long long)v);
        } else {
            kiln_status st = report_check(c, ok, "resize of '%s': axis %d is empty and its size is not 0", xl, (int)i);
            if (st) return st;
        }
        shape->dims[i] = e;
    }
    *dtype = dt;
    return KILN_OK;
}

/* ---- the table ------------------------------------------------------------- */

/* The output count of each row is op_list.h's (the one place it is written). */
#define OUT(suffix) KILN_OP_OUTPUTS_##suffix
#define OUTPUTS_AT_MOST_MAX_(suffix, name, outputs) \
    _Static_assert((outputs) >= 0 && (outputs) <= KILN_OP_MAX_OUTPUTS, "op " name ": outputs past KILN_OP_MAX_OUTPUTS");
KILN_OP_LIST(OUTPUTS_AT_MOST_MAX_)
/* An op of several outputs names each of them, one name per output. */
#define NAMES_OF(names) (int)(sizeof names / sizeof names[0])
_Static_assert(NAMES_OF(topk_outputs) == OUT(TOPK), "topk_outputs must name each of topk's outputs");

/*                       inputs outputs subop  axis   attrs  rule  (output names: ops of several outputs) */
static const kiln_op_info op_table[] = {
    [KILN_OP_CAST]       = {1, OUT(CAST), false, false, false, infer_cast, NULL},
    [KILN_OP_BINARY]     = {2, OUT(BINARY), true,  false, false, infer_binary, NULL},
    [KILN_OP_UNARY]      = {1, OUT(UNARY), true,  false, false, infer_unary, NULL},
    [KILN_OP_GATHER]     = {2, OUT(GATHER), false, true,  false, infer_gather, NULL},
    [KILN_OP_RESHAPE]    = {1, OUT(RESHAPE), false, false, false, infer_reshape, NULL},
    [KILN_OP_MATMUL]     = {2, OUT(MATMUL), false, false, true,  infer_matmul, NULL},   /* ints: transposes */
    [KILN_OP_PLUGIN]     = {-1, OUT(PLUGIN), true,  false, true,  NULL, NULL},   /* ints: outputs written in place (desc_check.c) */
    [KILN_OP_TRANSPOSE]  = {1, OUT(TRANSPOSE), false, false, true,  infer_transpose, NULL},
    [KILN_OP_SLICE]      = {1, OUT(SLICE), false, false, true,  infer_slice, NULL},
    [KILN_OP_CONCAT]     = {-1, OUT(CONCAT), false, true,  false, infer_concat, NULL},
    [KILN_OP_EXPAND]     = {1, OUT(EXPAND), false, false, true,  infer_expand, NULL},
    [KILN_OP_REDUCE]     = {1, OUT(REDUCE), true,  false, true,  infer_reduce, NULL},
    [KILN_OP_SOFTMAX]    = {1, OUT(SOFTMAX), true,  true,  false, infer_softmax, NULL},
    [KILN_OP_LAYER_NORM] = {3, OUT(LAYER_NORM), false, true,  true,  infer_norm, NULL},
    [KILN_OP_RMS_NORM]   = {2, OUT(RMS_NORM), false, true,  true,  infer_norm, NULL},
    [KILN_OP_WHERE]      = {3, OUT(WHERE), false, false, false, infer_where, NULL},
    [KILN_OP_COMPARE]    = {2, OUT(COMPARE), true,  false, false, infer_compare, NULL},
    [KILN_OP_GATHER_ELEMENTS] = {2, OUT(GATHER_ELEMENTS), false, true, false, infer_gather_elements, NULL},
    [KILN_OP_CUMSUM]     = {1, OUT(CUMSUM), false, true,  true,  infer_cumsum, NULL},
    [KILN_OP_PAD]        = {1, OUT(PAD), false, false, true,  infer_pad, NULL},
    [KILN_OP_ATTENTION]  = {3, OUT(ATTENTION), false, false, true,  infer_attention, NULL},
    [KILN_OP_ALL_REDUCE] = {1, OUT(ALL_REDUCE), true,  false, false, infer_all_reduce, NULL},
    [KILN_OP_ALL_GATHER] = {1, OUT(ALL_GATHER), false, true,  false, infer_all_gather, NULL},
    [KILN_OP_REDUCE_SCATTER] = {1, OUT(REDUCE_SCATTER), true, true, false, infer_reduce_scatter, NULL},
    [KILN_OP_SCATTER_ND] = {3, OUT(SCATTER_ND), false, false, true,  infer_scatter_nd, NULL},
    [KILN_OP_SCATTER_ELEMENTS] = {3, OUT(SCATTER_ELEMENTS), false, true, true, infer_scatter_elements, NULL},
    [KILN_OP_TOPK]       = {1, OUT(TOPK), false, true,  true,  infer_topk, topk_outputs},
    [KILN_OP_ROTARY_EMBEDDING] = {4, OUT(ROTARY_EMBEDDING), false, false, true, infer_rotary_embedding, NULL},
    [KILN_OP_CONV]       = {3, OUT(CONV), false, false, true,  infer_conv, NULL},   /* the bias (input 2) optional */
    [KILN_OP_CONV_TRANSPOSE] = {3, OUT(CONV_TRANSPOSE), false, false, true, infer_conv_transpose, NULL},   /* ditto */
    [KILN_OP_POOL]       = {1, OUT(POOL), true,  false, true,  infer_pool, NULL},
    [KILN_OP_RESIZE]     = {1, OUT(RESIZE), false, false, true, infer_resize, NULL},
};
_Static_assert(sizeof op_table / sizeof op_table[0] == KILN_OP_COUNT, "op_table needs a row for every kiln_op");

const kiln_op_info *kiln_op_info_get(int op) { return op >= 0 && op < KILN_OP_COUNT ? &op_table[op] : NULL; }

bool kiln_op_has_subop(int op) { return op >= 0 && op < KILN_OP_COUNT && op_table[op].has_subop; }
bool kiln_op_has_axis(int op) { return op >= 0 && op < KILN_OP_COUNT && op_table[op].has_axis; }

bool kiln_op_gives_outputs(int op, int32_t n) {
    const kiln_op_info *info = kiln_op_info_get(op);
    if (!info) return false;
    return info->output_count > 0 ? n == info->output_count : n >= 1 && n <= KILN_PLUGIN_MAX_IO;
}

bool kiln_op_takes_inputs(int op, int32_t n) {
    const kiln_op_info *info = kiln_op_info_get(op);
    if (!info) return false;
    /* ROTARY_EMBEDDING's last input, position_ids, may be left out. */
    if (op == KILN_OP_ROTARY_EMBEDDING) return n == info->input_count || n == info->input_count - 1;
    /* The convolutions' last input, the bias, may be left out. */
    if (op == KILN_OP_CONV || op == KILN_OP_CONV_TRANSPOSE) return n == info->input_count || n == info->input_count - 1;
    if (info->input_count >= 0) return n == info->input_count;
    return op == KILN_OP_PLUGIN ? n >= 0 && n <= KILN_PLUGIN_MAX_IO : n >= 1 && n <= KILN_OP_MAX_INPUTS;
}
