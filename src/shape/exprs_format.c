/* exprs_format.c — expressions as text, for messages and tools.
 *
 * Infix operators are always parenthesized ("(batch * 16)"), so the text
 * never depends on precedence rules; ceildiv, min and max read as calls.
 * A DAG can share subexpressions, so its text can be exponentially longer
 * than the pool: output stops growing after KILN_EXPR_TEXT_LIMIT bytes and
 * nesting deeper than KILN_EXPR_TEXT_DEPTH is elided, each marked "...".
 * The return value is then the length of that elided text. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "shape/exprs.h"
#include "shape/exprs_internal.h"

#define KILN_EXPR_TEXT_LIMIT ((size_t)1 << 16)
#define KILN_EXPR_TEXT_DEPTH 200

typedef struct text_sink {
    char  *buf;
    size_t size;       /* capacity of buf, including the terminating NUL */
    size_t len;        /* length of the full text so far */
} text_sink;

static void put(text_sink *s, const char *text) {
    for (; *text; text++, s->len++)
        if (s->len + 1 < s->size) s->buf[s->len] = *text;
}

static void put_expr(text_sink *s, const kiln_exprs *pool, kiln_expr e, int depth) {
    if (s->len >= KILN_EXPR_TEXT_LIMIT || depth > KILN_EXPR_TEXT_DEPTH) {
        put(s, "...");
        return;
    }
    const kiln_expr_node *n = &pool->nodes[e];
    char number[32];
    const char *infix = NULL, *call = NULL;
    switch (n->op) {
    case KILN_EXPR_CONST:
        snprintf(number, sizeof number, "%" PRId64, n->value);
        put(s, number);
        return;
    case KILN_EXPR_DIM:
        if (n->value < pool->dim_count && pool->dim_names[n->value]) {
            put(s, pool->dim_names[n->value]);
        } else {
            snprintf(number, sizeof number, "d%" PRId64, n->value);
            put(s, number);
        }
        return;
    case KILN_EXPR_ADD:      infix = " + "; break;
    case KILN_EXPR_SUB:      infix = " - "; break;
    case KILN_EXPR_MUL:      infix = " * "; break;
    case KILN_EXPR_FLOORDIV: infix = " // "; break;
    case KILN_EXPR_EQ:       infix = " == "; break;
    case KILN_EXPR_LT:       infix = " < "; break;
    case KILN_EXPR_CEILDIV:  call = "ceildiv("; break;
    case KILN_EXPR_MIN:      call = "min("; break;
    case KILN_EXPR_MAX:      call = "max("; break;
    default:
        snprintf(number, sizeof number, "<bad op %u>", n->op);
        put(s, number);
        return;
    }
    put(s, infix ? "(" : call);
    put_expr(s, pool, n->a, depth + 1);
    put(s, infix ? infix : ", ");
    put_expr(s, pool, n->b, depth + 1);
    put(s, ")");
}

size_t kiln_expr_format(const kiln_exprs *pool, kiln_expr e, char *buf, size_t size) {
    text_sink s = { buf, buf ? size : 0, 0 };
    if (!pool || !kiln_exprs_valid(pool, e)) {
        if (!pool) kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_expr_format: pool is NULL");
        else if (e != KILN_EXPR_INVALID)
            kiln_error(KILN_ERROR_INVALID_ARGUMENT, "expression id %d is not in this pool (%zu nodes)", e, pool->count);
        put(&s, "<invalid>");
    } else {
        put_expr(&s, pool, e, 0);
    }
    if (s.size) s.buf[s.len < s.size ? s.len : s.size - 1] = '\0';
    return s.len;
}

kiln_status kiln_exprs_error(const kiln_exprs *pool, kiln_expr e, kiln_status status, const char *what) {
    char text[256];
    size_t len = kiln_expr_format(pool, e, text, sizeof text);
    if (len >= sizeof text) memcpy(text + sizeof text - 4, "...", 4);
    return kiln_error(status, "shape expression %s: %s", text, what);
}
