/* exprs_node.c — reading one node of an expression pool through the public
 * API, for code outside libkiln that translates expressions (the Python
 * layer turns SymDims into an ahead-of-time plugin's launch program). */
#include "core/error.h"
#include "shape/exprs.h"

kiln_status kiln_expr_node_info(const kiln_exprs *pool, kiln_expr e, kiln_expr_op *op, kiln_expr *a, kiln_expr *b,
                                int64_t *value) {
    if (!pool) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_expr_node_info: pool is NULL");
    if (!kiln_exprs_valid(pool, e))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_expr_node_info: %d is not an expression of this pool (it has %zu)",
                          (int)e, pool->count);
    const kiln_expr_node *n = &pool->nodes[e];
    int leaf = n->op == KILN_EXPR_CONST || n->op == KILN_EXPR_DIM;
    if (op) *op = (kiln_expr_op)n->op;
    if (a) *a = leaf ? KILN_EXPR_INVALID : n->a;
    if (b) *b = leaf ? KILN_EXPR_INVALID : n->b;
    if (value) *value = leaf ? n->value : 0;
    return KILN_OK;
}
