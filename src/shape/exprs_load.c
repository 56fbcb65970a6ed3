/* exprs_load.c — rebuilding a pool from a stored expression program.
 *
 * The nodes come from engine bytes, so nothing is trusted: each node is
 * checked before the pool is built, and the hash table is rebuilt so that
 * a loaded pool can be extended (plugins infer shapes against it). */
#include <inttypes.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "shape/exprs.h"
#include "shape/exprs_internal.h"

static kiln_status check_node(const kiln_expr_node *n, size_t i, int32_t dim_count) {
    if (n->op >= KILN_EXPR_OP_COUNT)
        return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu: unknown op %u", i, n->op);
    if (n->op == KILN_EXPR_CONST || n->op == KILN_EXPR_DIM) {
        if (n->a != -1 || n->b != -1)
            return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu: %s leaf has operands (%d, %d), want (-1, -1)",
                              i, n->op == KILN_EXPR_CONST ? "constant" : "dimension", n->a, n->b);
        if (n->op == KILN_EXPR_DIM && (n->value < 0 || n->value >= dim_count))
            return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu: dimension index %" PRId64 " outside [0, %d)",
                              i, n->value, dim_count);
        return KILN_OK;
    }
    if (n->a < 0 || (size_t)n->a >= i)
        return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu: operand a = %d is not an earlier node", i, n->a);
    if (n->b < 0 || (size_t)n->b >= i)
        return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu: operand b = %d is not an earlier node", i, n->b);
    if (n->value != 0)
        return kiln_error(KILN_ERROR_CORRUPT, "expression node %zu: operator node has value %" PRId64 ", want 0",
                          i, n->value);
    return KILN_OK;
}

kiln_status kiln_exprs_from_nodes(const kiln_expr_node *nodes, size_t count, int32_t dim_count,
                                  kiln_exprs **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_exprs_from_nodes: out is NULL");
    *out = NULL;
    if (!nodes && count) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_exprs_from_nodes: nodes is NULL");
    if (dim_count < 0) return kiln_error(KILN_ERROR_CORRUPT, "expression program: dimension count %d is negative", dim_count);
    if (count > (size_t)INT32_MAX)
        return kiln_error(KILN_ERROR_CORRUPT, "expression program has %zu nodes (at most %d)", count, INT32_MAX);
    for (size_t i = 0; i < count; i++) {
        kiln_status st = check_node(&nodes[i], i, dim_count);
        if (st != KILN_OK) return st;
    }

    kiln_exprs *pool = kiln_exprs_create();
    if (!pool) return KILN_ERROR_NO_MEMORY;
    if (count) {
        pool->nodes = kiln_malloc(count * sizeof *nodes);
        if (!pool->nodes) goto no_memory;
        memcpy(pool->nodes, nodes, count * sizeof *nodes);
        pool->count = pool->capacity = count;
    }
    if (dim_count) {   /* names come later (kiln_exprs_name_dim); NULL prints "dN" */
        pool->dim_names = kiln_calloc((size_t)dim_count, sizeof *pool->dim_names);
        if (!pool->dim_names) goto no_memory;
        pool->dim_count = dim_count;
    }
    if (!kiln_exprs_table_rebuild(pool, count)) goto no_memory;
    *out = pool;
    return KILN_OK;

no_memory:
    kiln_exprs_free(pool);
    return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory loading an expression program of %zu nodes", count);
}
