/* exprs_internal.h — what the files of src/shape/ share and nobody else needs:
 * the integer arithmetic (one definition, so that folding at build time and
 * evaluation at run time can never disagree), the hash-table rebuild (used by
 * construction and by kiln_exprs_from_nodes) and the error helper that puts
 * an expression's text into a message. */
#ifndef KILN_SHAPE_EXPRS_INTERNAL_H
#define KILN_SHAPE_EXPRS_INTERNAL_H

#include "shape/exprs.h"

typedef enum kiln_arith_result {
    KILN_ARITH_OK = 0,
    KILN_ARITH_DIV_ZERO,     /* FLOORDIV or CEILDIV by 0 */
    KILN_ARITH_OVERFLOW,     /* the exact result does not fit in int64 */
    KILN_ARITH_BAD_OP,       /* not a binary op */
} kiln_arith_result;

/* *out = a op b with kiln's semantics (floor/ceil division, EQ/LT as 1/0).
 * Never undefined behaviour: overflow and division by zero are reported. */
kiln_arith_result kiln_expr_apply(int op, int64_t a, int64_t b, int64_t *out);

/* Replace the hash table by one sized for `need` nodes and insert nodes
 * 0..count-1 (the first of equal nodes wins).  Returns 0, leaving the old
 * table in place, when memory runs out. */
int kiln_exprs_table_rebuild(kiln_exprs *pool, size_t need);

/* kiln_error(status, "shape expression <text of e>: <what>"), with the text
 * cut (and marked "...") when long. */
kiln_status kiln_exprs_error(const kiln_exprs *pool, kiln_expr e, kiln_status status, const char *what);

#endif
