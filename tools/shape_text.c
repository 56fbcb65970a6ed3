/* shape_text.c — shapes as text: "[batch, 16]" (symbolic) and "[2, 16]". */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Append to buf at *used, never past size (the text is cut, still terminated). */
static void append(char *buf, size_t size, size_t *used, const char *text) {
    size_t n = strlen(text);
    if (*used + 1 >= size) return;
    if (n > size - 1 - *used) n = size - 1 - *used;
    memcpy(buf + *used, text, n);
    *used += n;
    buf[*used] = '\0';
}

void cli_format_symbolic_shape(const kiln_engine *e, int32_t rank, const kiln_expr *shape, char *buf, size_t size) {
    size_t used = 0;
    if (!size) return;
    buf[0] = '\0';
    append(buf, size, &used, "[");
    for (int32_t a = 0; a < rank; a++) {
        char axis[512];
        size_t n = kiln_expr_format(kiln_engine_exprs(e), shape[a], axis, sizeof axis);
        if (n >= sizeof axis) memcpy(axis + sizeof axis - 4, "...", 4);
        if (a) append(buf, size, &used, ", ");
        append(buf, size, &used, axis);
    }
    append(buf, size, &used, "]");
}

void cli_format_dims(int32_t rank, const int64_t *dims, char *buf, size_t size) {
    size_t used = 0;
    if (!size) return;
    buf[0] = '\0';
    append(buf, size, &used, "[");
    for (int32_t a = 0; a < rank; a++) {
        char axis[32];
        snprintf(axis, sizeof axis, "%s%lld", a ? ", " : "", (long long)dims[a]);
        append(buf, size, &used, axis);
    }
    append(buf, size, &used, "]");
}
