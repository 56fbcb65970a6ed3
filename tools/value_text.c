/* value_text.c — a plugin's stored fields (kiln_value) as one short line for
 * `kiln inspect`: scalars as values, strings quoted, bytes and arrays
 * summarized by size and shape (an embedded table or a cubin is not printed),
 * lists and maps by their first items. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { SHOW_ITEMS = 4 };

static size_t put(char *buf, size_t size, size_t used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t size, size_t used, const char *fmt, ...) {
    if (used >= size) return used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
    return n < 0 ? used : used + (size_t)n;
}

static size_t value_text(const kiln_value *v, char *buf, size_t size, size_t used, int depth) {
    size_t len = 0;
    switch (kiln_value_get_type(v)) {
    case KILN_VALUE_NONE: return put(buf, size, used, "None");
    case KILN_VALUE_BOOL: return put(buf, size, used, "%s", kiln_value_as_bool(v) ? "True" : "False");
    case KILN_VALUE_INT64: return put(buf, size, used, "%" PRId64, kiln_value_as_int64(v));
    case KILN_VALUE_FLOAT64: return put(buf, size, used, "%.9g", kiln_value_as_float64(v));
    case KILN_VALUE_STRING: {
        const char *s = kiln_value_as_string(v, &len);
        if (len > 60) return put(buf, size, used, "'%.57s...' (%zu bytes)", cli_safe(s), len);
        return put(buf, size, used, "'%s'", cli_safe(s));
    }
    case KILN_VALUE_BYTES:
        kiln_value_as_bytes(v, &len);
        return put(buf, size, used, "<%zu bytes>", len);
    case KILN_VALUE_ARRAY: {
        kiln_dtype dtype;
        int32_t rank;
        const int64_t *dims;
        if (kiln_value_array_info(v, &dtype, &rank, &dims, NULL) != KILN_OK) return put(buf, size, used, "?");
        used = put(buf, size, used, "%s[", kiln_dtype_name(dtype) ? kiln_dtype_name(dtype) : "?");
        for (int32_t i = 0; i < rank; i++) used = put(buf, size, used, "%s%" PRId64, i ? ", " : "", dims[i]);
        return put(buf, size, used, "]");
    }
    case KILN_VALUE_LIST:
    case KILN_VALUE_MAP: {
        int map = kiln_value_get_type(v) == KILN_VALUE_MAP;
        size_t n = kiln_value_count(v);
        if (depth >= 2) return put(buf, size, used, "%s%zu items%s", map ? "{" : "[", n, map ? "}" : "]");
        used = put(buf, size, used, "%s", map ? "{" : "[");
        for (size_t i = 0; i < n && i < SHOW_ITEMS; i++) {
            used = put(buf, size, used, "%s", i ? ", " : "");
            if (map) used = put(buf, size, used, "%s: ", cli_safe(kiln_value_key(v, i)));
            used = value_text(kiln_value_item(v, i), buf, size, used, depth + 1);
        }
        if (n > SHOW_ITEMS) used = put(buf, size, used, ", ... (%zu items)", n);
        return put(buf, size, used, "%s", map ? "}" : "]");
    }
    }
    return put(buf, size, used, "?");
}

void cli_fields_text(const kiln_value *fields, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    size_t n = fields ? kiln_value_count(fields) : 0;
    for (size_t i = 0; i < n; i++) {
        used = put(buf, size, used, "%s%s=", i ? ", " : "", cli_safe(kiln_value_key(fields, i)));
        used = value_text(kiln_value_item(fields, i), buf, size, used, 1);
    }
    if (!n) snprintf(buf, size, "(no attributes)");
}
