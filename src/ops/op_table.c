/* op_table.c — the rows of the op table (see op_table.h) and their rules. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_table.h"

#define COUNT_OF(list) (0 list(KILN_OP_LIST_COUNT_))
_Static_assert(COUNT_OF(KILN_OP_LIST) == KILN_OP_COUNT, "op_list.h's KILN_OP_LIST must list every kiln_op");
_Static_assert(COUNT_OF(KILN_BINARY_OP_LIST) == KILN_BINARY_OP_COUNT,
               "op_list.h's KILN_BINARY_OP_LIST must list every kiln_binary_op");
_Static_assert(COUNT_OF(KILN_UNARY_OP_LIST) == KILN_UNARY_OP_COUNT,
               "op_list.h's KILN_UNARY_OP_LIST must list every kiln_unary_op");

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

bool kiln_binary_op_accepts(int op, kiln_dtype dtype) {
    return op >= 0 && op < KILN_BINARY_OP_COUNT && (unsigned)dtype < KILN_DTYPE_COUNT && (ALL_TYPES >> dtype & 1u);
}

const char *kiln_op_name(int op) { return kiln_op_list_name(op); }
const char *kiln_binary_op_name(int op) { return kiln_binary_op_list_name(op); }
const char *kiln_unary_op_name(int op) { return kiln_unary_op_list_name(op); }

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

static kiln_status infer_matmul(const kiln_op_call *c, kiln_dtype *dtype, kiln_shape_expr *shape) {
    kiln_exprs *p = c->pool;
    const char *la = c->labels[0], *lb = c->labels[1];
    const kiln_shape_expr *x = &c->shapes[0], *y = &c->shapes[1];
    if (c->dtypes[0] != c->dtypes[1] || !kiln_dtype_is_float(c->dtypes[0]))
        return kiln_error(KILN_ERROR_INVALID_NETWORK,
                          "matmul of '%s' (%s) and '%s' (%s): both must have the same floating-point dtype", la,
                          kiln_dtype_name(c->dtypes[0]), lb, kiln_dtype_name(c->dtypes[1]));
    if (x->rank < 2 || y->rank < 2)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' (rank %d) and '%s' (rank %d): need rank >= 2",
                          la, x->rank, lb, y->rank);
    kiln_expr ka = x->dims[x->rank - 1], kb = y->dims[y->rank - 2];
    int64_t va, vb;
    if (kiln_expr_is_const(p, ka, &va) && kiln_expr_is_const(p, kb, &vb) && va != vb)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "matmul of '%s' and '%s': inner sizes %lld and %lld differ", la,
                          lb, (long long)va, (long long)vb);
    char fa[128], fb[128];
    kiln_expr_format(p, ka, fa, sizeof fa);
    kiln_expr_format(p, kb, fb, sizeof fb);
    kiln_status s = report_check(c, kiln_expr_binary(p, KILN_EXPR_EQ, ka, kb),
                                 "matmul of '%s' and '%s': inner sizes %s and %s differ", la, lb, fa, fb);
    if (s) return s;
    if ((s = broadcast_shapes(c, "matmul", x->rank - 2, x->dims, y->rank - 2, y->dims, shape))) return s;
    shape->dims[shape->rank++] = x->dims[x->rank - 2];
    shape->dims[shape->rank++] = y->dims[y->rank - 1];
    *dtype = c->dtypes[0];
    return KILN_OK;
}

/* ---- the table ------------------------------------------------------------- */

static const kiln_op_info op_table[] = {
    [KILN_OP_CAST]    = {1, 1, infer_cast},
    [KILN_OP_BINARY]  = {2, 1, infer_binary},
    [KILN_OP_UNARY]   = {1, 1, infer_unary},
    [KILN_OP_GATHER]  = {2, 1, infer_gather},
    [KILN_OP_RESHAPE] = {1, 1, infer_reshape},
    [KILN_OP_MATMUL]  = {2, 1, infer_matmul},
    [KILN_OP_PLUGIN]  = {-1, 0, NULL},
};
_Static_assert(sizeof op_table / sizeof op_table[0] == KILN_OP_COUNT, "op_table needs a row for every kiln_op");

const kiln_op_info *kiln_op_info_get(int op) { return op >= 0 && op < KILN_OP_COUNT ? &op_table[op] : NULL; }
