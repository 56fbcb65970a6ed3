/* exprs_eval.c — integer semantics and evaluation of expression programs.
 *
 * kiln_expr_apply is the single definition of every operator, shared by
 * constant folding and evaluation.  All arithmetic is checked: int64
 * overflow (including INT64_MIN // -1) and division by zero are results,
 * never undefined behaviour. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "shape/exprs.h"
#include "shape/exprs_internal.h"

kiln_arith_result kiln_expr_apply(int op, int64_t a, int64_t b, int64_t *out) {
    int64_t q, r;
    switch (op) {
    case KILN_EXPR_ADD: return __builtin_add_overflow(a, b, out) ? KILN_ARITH_OVERFLOW : KILN_ARITH_OK;
    case KILN_EXPR_SUB: return __builtin_sub_overflow(a, b, out) ? KILN_ARITH_OVERFLOW : KILN_ARITH_OK;
    case KILN_EXPR_MUL: return __builtin_mul_overflow(a, b, out) ? KILN_ARITH_OVERFLOW : KILN_ARITH_OK;
    case KILN_EXPR_FLOORDIV:
    case KILN_EXPR_CEILDIV:
        if (b == 0) return KILN_ARITH_DIV_ZERO;
        if (a == INT64_MIN && b == -1) return KILN_ARITH_OVERFLOW;
        /* C division truncates; step once towards -inf (floor) or +inf
         * (ceil) when inexact and the true quotient is negative (floor) or
         * positive (ceil).  |q| < 2^62 here, so the step cannot overflow. */
        q = a / b;
        r = a % b;
        if (r != 0) {
            int negative = (r < 0) != (b < 0);
            if (op == KILN_EXPR_FLOORDIV && negative) q--;
            if (op == KILN_EXPR_CEILDIV && !negative) q++;
        }
        *out = q;
        return KILN_ARITH_OK;
    case KILN_EXPR_MIN: *out = a < b ? a : b; return KILN_ARITH_OK;
    case KILN_EXPR_MAX: *out = a > b ? a : b; return KILN_ARITH_OK;
    case KILN_EXPR_EQ:  *out = a == b; return KILN_ARITH_OK;
    case KILN_EXPR_LT:  *out = a < b; return KILN_ARITH_OK;
    default:            return KILN_ARITH_BAD_OP;
    }
}

static const char *op_symbol(int op) {
    switch (op) {
    case KILN_EXPR_ADD: return "+";
    case KILN_EXPR_SUB: return "-";
    case KILN_EXPR_MUL: return "*";
    case KILN_EXPR_FLOORDIV: return "//";
    default: return "ceildiv";
    }
}

/* Evaluate the nodes i < end (only those with needed[i], when given). */
static kiln_status eval_nodes(const kiln_exprs *pool, const uint8_t *needed, size_t end,
                              const int64_t *dim_values, int32_t dim_count, int64_t *values) {
    char what[160];
    for (size_t i = 0; i < end; i++) {
        if (needed && !needed[i]) continue;
        const kiln_expr_node *n = &pool->nodes[i];
        int64_t a, b;
        switch (n->op) {
        case KILN_EXPR_CONST:
            values[i] = n->value;
            continue;
        case KILN_EXPR_DIM:
            if (n->value < 0 || n->value >= dim_count) {
                snprintf(what, sizeof what, "needs dimension %" PRId64 " but %d dimension value%s given",
                         n->value, dim_count, dim_count == 1 ? " was" : "s were");
                return kiln_exprs_error(pool, (kiln_expr)i, KILN_ERROR_SHAPE, what);
            }
            values[i] = dim_values[n->value];
            continue;
        default:
            break;
        }
        a = values[n->a];
        b = values[n->b];
        switch (kiln_expr_apply(n->op, a, b, &values[i])) {
        case KILN_ARITH_OK:
            break;
        case KILN_ARITH_DIV_ZERO:
            snprintf(what, sizeof what, "division by zero (%" PRId64 " %s 0)", a, op_symbol(n->op));
            return kiln_exprs_error(pool, (kiln_expr)i, KILN_ERROR_SHAPE, what);
        case KILN_ARITH_OVERFLOW:
            snprintf(what, sizeof what, "int64 overflow (%" PRId64 " %s %" PRId64 ")", a, op_symbol(n->op), b);
            return kiln_exprs_error(pool, (kiln_expr)i, KILN_ERROR_SHAPE, what);
        case KILN_ARITH_BAD_OP:
            return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu has unknown op %u", i, n->op);
        }
    }
    return KILN_OK;
}

static kiln_status check_dims(const int64_t *dim_values, int32_t dim_count) {
    if (dim_count < 0) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "dimension count %d is negative", dim_count);
    if (dim_count > 0 && !dim_values)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "dim_values is NULL but dim_count is %d", dim_count);
    return KILN_OK;
}

kiln_status kiln_exprs_eval_all(const kiln_exprs *pool, const int64_t *dim_values, int32_t dim_count,
                                int64_t *values) {
    if (!pool || (!values && pool->count))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_exprs_eval_all: %s is NULL", pool ? "values" : "pool");
    kiln_status st = check_dims(dim_values, dim_count);
    if (st != KILN_OK) return st;
    return eval_nodes(pool, NULL, pool->count, dim_values, dim_count, values);
}

/* Only the nodes e depends on are evaluated, so that an unrelated node
 * that cannot be evaluated (say a kept 1 // 0) does not fail e. */
kiln_status kiln_expr_eval(const kiln_exprs *pool, kiln_expr e, const int64_t *dim_values, int32_t dim_count,
                           int64_t *out) {
    if (!pool || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_expr_eval: %s is NULL", pool ? "out" : "pool");
    if (e == KILN_EXPR_INVALID)   /* keep the message of the call that failed */
        return kiln_error_prefix(KILN_ERROR_INVALID_ARGUMENT, "evaluating an invalid expression");
    if (!kiln_exprs_valid(pool, e))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "expression id %d is not in this pool (%zu nodes)", e, pool->count);
    kiln_status st = check_dims(dim_values, dim_count);
    if (st != KILN_OK) return st;
    if (pool->nodes[e].op == KILN_EXPR_CONST) {
        *out = pool->nodes[e].value;
        return KILN_OK;
    }
    size_t n = (size_t)e + 1;
    if (n > SIZE_MAX / (sizeof(int64_t) + 1))
        return kiln_error(KILN_ERROR_NO_MEMORY, "expression %d is too large to evaluate", e);
    int64_t *values = kiln_malloc(n * (sizeof(int64_t) + 1));
    if (!values) return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory evaluating expression %d", e);
    uint8_t *needed = (uint8_t *)(values + n);
    memset(needed, 0, n);
    needed[e] = 1;
    for (size_t i = n; i-- > 0;) {
        const kiln_expr_node *node = &pool->nodes[i];
        if (needed[i] && node->op != KILN_EXPR_CONST && node->op != KILN_EXPR_DIM) {
            needed[node->a] = 1;
            needed[node->b] = 1;
        }
    }
    st = eval_nodes(pool, needed, n, dim_values, dim_count, values);
    if (st == KILN_OK) *out = values[e];
    kiln_free(values);
    return st;
}
