/* field_view.c — the text of a plugin's field view (kiln/plugin.h), so that
 * tools show a plugin's fields from its schema instead of knowing their
 * layout.  Fields come from engine files: every lookup tolerates a missing
 * key or a value of another type (it gives nothing), and the text is cut to
 * the buffer. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kiln/plugin.h"

typedef struct text {
    char  *buf;
    size_t size, used;   /* used may exceed size: the length needed */
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->used < t->size) {
        size_t room = t->size - 1 - t->used;
        memcpy(t->buf + t->used, s, n < room ? n : room);
    }
    t->used += n;
}

static void put_value(text *t, const kiln_value *v) {
    char num[32];
    size_t n = 0;
    switch (kiln_value_get_type(v)) {
    case KILN_VALUE_STRING: {
        const char *s = kiln_value_as_string(v, &n);
        put(t, s, strnlen(s, n));
        return;
    }
    case KILN_VALUE_INT64:
        n = (size_t)snprintf(num, sizeof num, "%" PRId64, kiln_value_as_int64(v));
        break;
    case KILN_VALUE_FLOAT64:
        n = (size_t)snprintf(num, sizeof num, "%g", kiln_value_as_float64(v));
        break;
    case KILN_VALUE_BOOL:
        n = (size_t)snprintf(num, sizeof num, "%s", kiln_value_as_bool(v) ? "true" : "false");
        break;
    default:
        n = (size_t)snprintf(num, sizeof num, "?");
        break;
    }
    put(t, num, n < sizeof num ? n : sizeof num - 1);
}

/* Every value at path (of length len) under v, ", "-separated after *count
 * earlier ones. */
static void collect(text *t, const kiln_value *v, const char *path, size_t len, int *count, int depth) {
    if (!v || depth > 16) return;
    if (len == 0) {
        if (kiln_value_get_type(v) == KILN_VALUE_LIST) {   /* a list at the end: its items */
            for (size_t i = 0; i < kiln_value_count(v); i++) collect(t, kiln_value_item(v, i), path, 0, count, depth + 1);
            return;
        }
        if ((*count)++) put(t, ", ", 2);
        put_value(t, v);
        return;
    }
    const char *dot = memchr(path, '.', len);
    size_t seg = dot ? (size_t)(dot - path) : len, rest = dot ? len - seg - 1 : 0;
    int each = seg >= 2 && path[seg - 2] == '[' && path[seg - 1] == ']';
    char key[128];
    size_t klen = seg - (each ? 2 : 0);
    if (kiln_value_get_type(v) != KILN_VALUE_MAP || klen == 0 || klen >= sizeof key) return;
    memcpy(key, path, klen);
    key[klen] = 0;
    const kiln_value *child = kiln_value_map_get(v, key);
    if (!each) {
        collect(t, child, dot ? dot + 1 : path + len, rest, count, depth + 1);
        return;
    }
    if (!child || kiln_value_get_type(child) != KILN_VALUE_LIST) return;
    for (size_t i = 0; i < kiln_value_count(child); i++)
        collect(t, kiln_value_item(child, i), dot ? dot + 1 : path + len, rest, count, depth + 1);
}

/* format applied to one map: {a,b} replaced by the values at a and b. */
static void render(text *t, const char *format, const kiln_value *item) {
    for (const char *p = format; *p;) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        if (!open || !close) {
            put(t, p, strlen(p));
            return;
        }
        put(t, p, (size_t)(open - p));
        int count = 0;
        for (const char *a = open + 1; a < close;) {
            const char *comma = memchr(a, ',', (size_t)(close - a));
            const char *end = comma ? comma : close;
            collect(t, item, a, (size_t)(end - a), &count, 0);
            a = end + 1;
        }
        if (!count) put(t, "?", 1);
        p = close + 1;
    }
}

size_t kiln_plugin_field_view_format(const kiln_plugin_field_view *view, const kiln_value *fields, char *buf,
                                     size_t size) {
    text t = {buf, size, 0};
    if (buf && size) buf[0] = 0;
    if (!view || !view->format || !fields) return 0;
    if (!view->each) {
        render(&t, view->format, fields);
    } else {
        /* The list at `each`: reuse collect's path walk by rendering each item. */
        const kiln_value *list = fields;
        const char *p = view->each;
        char key[128];
        while (list && *p) {
            const char *dot = strchr(p, '.');
            size_t n = dot ? (size_t)(dot - p) : strlen(p);
            if (n == 0 || n >= sizeof key || kiln_value_get_type(list) != KILN_VALUE_MAP) return 0;
            memcpy(key, p, n);
            key[n] = 0;
            list = kiln_value_map_get(list, key);
            p += n + (dot ? 1 : 0);
        }
        if (!list || kiln_value_get_type(list) != KILN_VALUE_LIST) return 0;
        for (size_t i = 0; i < kiln_value_count(list); i++) {
            if (i) put(&t, "; ", 2);
            render(&t, view->format, kiln_value_item(list, i));
        }
    }
    if (buf && size) buf[t.used < size ? t.used : size - 1] = 0;
    return t.used;
}
