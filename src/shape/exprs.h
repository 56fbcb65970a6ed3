/* exprs.h — the symbolic dimension expression pool (private side).
 *
 * A pool is an append-only array of nodes.  A node's operands always come
 * earlier in the array, so the array itself is the "flat program" stored in
 * engines: evaluating node 0..n-1 in order computes every expression in one
 * pass (kiln_exprs_eval_all).  Construction hash-conses (same node → same
 * id), folds constants, and applies identities (x+0, x*1, x*0, x-x, min(x,x),
 * canonical operand order for commutative ops) so that equal shapes usually
 * get equal ids and the builder can compare dimensions by id.
 *
 * Identities applied: x+0, 0+x, x-0, x*1, 1*x → x; x*0, 0*x, x-x → 0;
 * x//1, ceildiv(x,1), min(x,x), max(x,x) → x; x==x → 1; x<x → 0.
 * A constant fold that would fail (int64 overflow, division by zero) does
 * not fold: the node is kept, and evaluating it fails with KILN_ERROR_SHAPE
 * and the expression's text ("shape expression (7 // 0): division by zero").
 * Errors while building (NULL pool, bad id, unknown op, out of memory) give
 * KILN_EXPR_INVALID with a message; a KILN_EXPR_INVALID operand gives
 * KILN_EXPR_INVALID and keeps the earlier message.
 *
 * Formatting (kiln_expr_format) parenthesizes every infix op; shared
 * subexpressions are printed in full, so the text is capped near 64 KiB and
 * 200 levels of nesting, elided parts shown as "...". */
#ifndef KILN_SHAPE_EXPRS_H
#define KILN_SHAPE_EXPRS_H

#include "kiln/kiln.h"

typedef struct kiln_expr_node {
    uint8_t   op;        /* kiln_expr_op */
    kiln_expr a, b;      /* operands (earlier ids); -1 for leaves */
    int64_t   value;     /* CONST: the value; DIM: the dimension index */
} kiln_expr_node;

struct kiln_exprs {
    kiln_expr_node *nodes;
    size_t          count, capacity;
    int32_t        *table;        /* open-addressing hash of node ids, -1 empty */
    size_t          table_size;   /* power of two */
    char          **dim_names;    /* for kiln_expr_format; NULL entries allowed */
    int32_t         dim_count;    /* names array size (dims referenced may not exceed it once set) */
};

kiln_exprs *kiln_exprs_create(void);             /* NULL, error set, when out of memory */
void        kiln_exprs_free(kiln_exprs *pool);
/* A leaf for dimension `index` (0-based, below INT32_MAX). */
kiln_expr   kiln_exprs_dim(kiln_exprs *pool, int32_t index);
/* Record a dimension's name for formatting (copied); grows dim_count. */
kiln_status kiln_exprs_name_dim(kiln_exprs *pool, int32_t index, const char *name);
/* An equal, simpler expression (exprs_simplify.c): sums collected, (a·b)//b
 * → a, max(0, x) → x for sizes...; e itself when nothing applies or on
 * failure (never KILN_EXPR_INVALID for a valid e). */
kiln_expr   kiln_expr_simplify(kiln_exprs *pool, kiln_expr e);
/* Valid id in this pool? */
static inline int kiln_exprs_valid(const kiln_exprs *pool, kiln_expr e) {
    return e >= 0 && (size_t)e < pool->count;
}
/* Evaluate every node in order into values[pool->count].  Errors (division
 * by zero, overflow, a dim index >= dim_count) name the expression.  Any
 * failing node fails the whole call, even one no output uses; kiln_expr_eval
 * evaluates only the nodes its expression depends on. */
kiln_status kiln_exprs_eval_all(const kiln_exprs *pool, const int64_t *dim_values, int32_t dim_count,
                                int64_t *values);
/* Rebuild a pool from a stored program, checking every node: op known,
 * operands earlier, leaves (-1, -1) operands, dims < dim_count, operator
 * nodes' value 0.  Errors are KILN_ERROR_CORRUPT naming the node.  The hash
 * table is rebuilt, so building on the loaded pool finds its nodes; dims
 * start unnamed (printed "d<index>") until kiln_exprs_name_dim. */
kiln_status kiln_exprs_from_nodes(const kiln_expr_node *nodes, size_t count, int32_t dim_count,
                                  kiln_exprs **out);
/* Largest dimension index referenced + 1. */
int32_t     kiln_exprs_max_dim(const kiln_exprs *pool);

#endif
