/* value.c — typed values: construction, access, copy and comparison.
 *
 * Ownership is a tree: containers own their entries, so a value is freed
 * once, from its root.  Appending checks that the item does not contain
 * the container (no cycles) and that nesting stays within
 * KILN_VALUE_MAX_DEPTH, which bounds every recursion here and in the codec.
 * Accessors called on the wrong type return 0/NULL and set the message. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "value/value_impl.h"

static const char *type_name(int type) {
    static const char *names[] = {"none", "bool", "int64", "float64", "string", "bytes", "list", "map", "array"};
    return type >= 0 && type <= KILN_VALUE_ARRAY ? names[type] : "unknown";
}

kiln_value *kiln_value_alloc(kiln_value_type type) {
    kiln_value *v = kiln_calloc(1, sizeof *v);
    if (!v) {
        kiln_error(KILN_ERROR_NO_MEMORY, "out of memory creating a %s value", type_name(type));
        return NULL;
    }
    v->type = (uint8_t)type;
    if (type == KILN_VALUE_LIST || type == KILN_VALUE_MAP) v->u.seq.height = 1;
    return v;
}

size_t kiln_utf8_valid_prefix(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i < n) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += n;
    }
    return len;
}

int kiln_value_array_bytes(kiln_dtype dtype, int32_t rank, const int64_t *dims, size_t *size) {
    size_t bytes = kiln_dtype_size(dtype);
    if (!bytes || rank < 0 || rank > KILN_MAX_RANK) return -1;
    for (int32_t i = 0; i < rank; i++) {
        if (dims[i] < 0 || (uint64_t)dims[i] > SIZE_MAX) return -1;
        if (__builtin_mul_overflow(bytes, (size_t)dims[i], &bytes)) return -1;
    }
    *size = bytes;
    return 0;
}

kiln_value *kiln_value_none(void) { return kiln_value_alloc(KILN_VALUE_NONE); }

kiln_value *kiln_value_bool(bool b) {
    kiln_value *v = kiln_value_alloc(KILN_VALUE_BOOL);
    if (v) v->u.b = b;
    return v;
}

kiln_value *kiln_value_int64(int64_t i) {
    kiln_value *v = kiln_value_alloc(KILN_VALUE_INT64);
    if (v) v->u.i = i;
    return v;
}

kiln_value *kiln_value_float64(double f) {
    kiln_value *v = kiln_value_alloc(KILN_VALUE_FLOAT64);
    if (v) v->u.f = f;
    return v;
}

static kiln_value *make_str(kiln_value_type type, const void *data, size_t len) {
    if (!data && len) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s value: data is NULL but length is %zu", type_name(type), len);
        return NULL;
    }
    if (type == KILN_VALUE_STRING) {
        size_t ok = kiln_utf8_valid_prefix(data, len);
        if (ok != len) {
            kiln_error(KILN_ERROR_INVALID_ARGUMENT, "string value is not valid UTF-8 (byte %zu)", ok);
            return NULL;
        }
    }
    if (len == SIZE_MAX) {
        kiln_error(KILN_ERROR_NO_MEMORY, "%s value of %zu bytes is too large", type_name(type), len);
        return NULL;
    }
    char *copy = kiln_malloc(len + 1);
    if (!copy) {
        kiln_error(KILN_ERROR_NO_MEMORY, "out of memory copying a %s value of %zu bytes", type_name(type), len);
        return NULL;
    }
    if (len) memcpy(copy, data, len);
    copy[len] = '\0';
    kiln_value *v = kiln_value_alloc(type);
    if (!v) {
        kiln_free(copy);
        return NULL;
    }
    v->u.str.data = copy;
    v->u.str.len = len;
    return v;
}

kiln_value *kiln_value_string(const char *s, size_t len) { return make_str(KILN_VALUE_STRING, s, len); }
kiln_value *kiln_value_bytes(const void *data, size_t len) { return make_str(KILN_VALUE_BYTES, data, len); }
kiln_value *kiln_value_list(void) { return kiln_value_alloc(KILN_VALUE_LIST); }
kiln_value *kiln_value_map(void) { return kiln_value_alloc(KILN_VALUE_MAP); }

kiln_value *kiln_value_array(kiln_dtype dtype, int32_t rank, const int64_t *dims, const void *data) {
    size_t size;
    if ((int)dtype < 0 || dtype >= KILN_DTYPE_COUNT) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "array value: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (rank < 0 || rank > KILN_MAX_RANK) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "array value: rank %d outside [0, %d]", rank, KILN_MAX_RANK);
        return NULL;
    }
    if (rank > 0 && !dims) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "array value: dims is NULL for rank %d", rank);
        return NULL;
    }
    for (int32_t i = 0; i < rank; i++)
        if (dims[i] < 0) {
            kiln_error(KILN_ERROR_INVALID_ARGUMENT, "array value: dimension %d is negative (%lld)", i,
                       (long long)dims[i]);
            return NULL;
        }
    if (kiln_value_array_bytes(dtype, rank, dims, &size) != 0) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "array value: byte size of the shape overflows");
        return NULL;
    }
    if (!data && size) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "array value: data is NULL for %zu bytes", size);
        return NULL;
    }
    void *copy = kiln_aligned_alloc(size);
    if (!copy) {
        kiln_error(KILN_ERROR_NO_MEMORY, "out of memory copying an array value of %zu bytes", size);
        return NULL;
    }
    if (size) memcpy(copy, data, size);
    kiln_value *v = kiln_value_alloc(KILN_VALUE_ARRAY);
    if (!v) {
        kiln_aligned_free(copy);
        return NULL;
    }
    v->u.arr.dtype = (uint8_t)dtype;
    v->u.arr.rank = rank;
    for (int32_t i = 0; i < rank; i++) v->u.arr.dims[i] = dims[i];
    v->u.arr.data = copy;
    v->u.arr.size = size;
    return v;
}

void kiln_value_free(kiln_value *v) {
    if (!v) return;
    switch (v->type) {
    case KILN_VALUE_STRING:
    case KILN_VALUE_BYTES:
        kiln_free(v->u.str.data);
        break;
    case KILN_VALUE_LIST:
    case KILN_VALUE_MAP:
        for (size_t i = 0; i < v->u.seq.count; i++) {
            kiln_free(v->u.seq.entries[i].key);
            kiln_value_free(v->u.seq.entries[i].value);
        }
        kiln_free(v->u.seq.entries);
        break;
    case KILN_VALUE_ARRAY:
        kiln_aligned_free(v->u.arr.data);
        break;
    default:
        break;
    }
    kiln_free(v);
}

int32_t kiln_value_height(const kiln_value *v) {
    return v->type == KILN_VALUE_LIST || v->type == KILN_VALUE_MAP ? v->u.seq.height : 0;
}

static int contains(const kiln_value *tree, const kiln_value *v) {
    if (tree == v) return 1;
    if (tree->type != KILN_VALUE_LIST && tree->type != KILN_VALUE_MAP) return 0;
    for (size_t i = 0; i < tree->u.seq.count; i++)
        if (contains(tree->u.seq.entries[i].value, v)) return 1;
    return 0;
}

/* Checks shared by list_append and map_set; frees item on failure unless
 * that would free the container itself. */
static kiln_status check_insert(kiln_value *container, kiln_value_type type, kiln_value *item, const char *what) {
    kiln_status st = KILN_OK;
    if (!container)
        st = kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: the %s is NULL", what, type_name(type));
    else if (container->type != type)
        st = kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: value is a %s, not a %s", what,
                        type_name(container->type), type_name(type));
    else if (!item)  /* most likely a constructor failed: keep its message */
        return kiln_error_prefix(KILN_ERROR_INVALID_ARGUMENT, "%s: item is NULL", what);
    else if (contains(item, container)) {
        st = kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: the item contains the %s (a cycle)", what, type_name(type));
        return st;   /* freeing item would free container */
    } else if (kiln_value_height(item) + 1 > KILN_VALUE_MAX_DEPTH)
        st = kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: nesting deeper than %d containers", what,
                        KILN_VALUE_MAX_DEPTH);
    if (st != KILN_OK) kiln_value_free(item);
    return st;
}

static void update_height(kiln_value *c) {
    int32_t h = 1;
    for (size_t i = 0; i < c->u.seq.count; i++) {
        int32_t ih = kiln_value_height(c->u.seq.entries[i].value) + 1;
        if (ih > h) h = ih;
    }
    c->u.seq.height = h;
}

static kiln_status push(kiln_value *c, char *key, kiln_value *item) {
    void *entries = c->u.seq.entries;
    if (!kiln_grow(&entries, &c->u.seq.capacity, c->u.seq.count + 1, sizeof(kiln_value_entry)))
        return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory growing a %s to %zu items", type_name(c->type),
                          c->u.seq.count + 1);
    c->u.seq.entries = entries;
    c->u.seq.entries[c->u.seq.count].key = key;
    c->u.seq.entries[c->u.seq.count].value = item;
    c->u.seq.count++;
    int32_t h = kiln_value_height(item) + 1;
    if (h > c->u.seq.height) c->u.seq.height = h;
    return KILN_OK;
}

kiln_status kiln_value_list_append(kiln_value *list, kiln_value *item) {
    kiln_status st = check_insert(list, KILN_VALUE_LIST, item, "list append");
    if (st != KILN_OK) return st;
    st = push(list, NULL, item);
    if (st != KILN_OK) kiln_value_free(item);
    return st;
}

static kiln_value_entry *map_find(const kiln_value *map, const char *key) {
    for (size_t i = 0; i < map->u.seq.count; i++)
        if (strcmp(map->u.seq.entries[i].key, key) == 0) return &map->u.seq.entries[i];
    return NULL;
}

kiln_status kiln_value_map_set(kiln_value *map, const char *key, kiln_value *item) {
    if (!key) {
        if (item != map) kiln_value_free(item);
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "map set: key is NULL");
    }
    kiln_status st = check_insert(map, KILN_VALUE_MAP, item, "map set");
    if (st != KILN_OK) return kiln_error_prefix(st, "key \"%s\"", key);
    size_t klen = strlen(key);
    if (kiln_utf8_valid_prefix((const uint8_t *)key, klen) != klen) {
        kiln_value_free(item);
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "map set: key is not valid UTF-8 (byte %zu)",
                          kiln_utf8_valid_prefix((const uint8_t *)key, klen));
    }
    kiln_value_entry *e = map_find(map, key);
    if (e) {  /* replace in place: the key keeps its position */
        kiln_value_free(e->value);
        e->value = item;
        update_height(map);
        return KILN_OK;
    }
    char *copy = kiln_strdup(key);
    if (!copy) {
        kiln_value_free(item);
        return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory copying map key \"%s\"", key);
    }
    st = push(map, copy, item);
    if (st != KILN_OK) {
        kiln_free(copy);
        kiln_value_free(item);
    }
    return st;
}

/* --- access --------------------------------------------------------------- */

static int is_type(const kiln_value *v, kiln_value_type type, const char *what) {
    if (!v) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: value is NULL", what);
        return 0;
    }
    if (v->type != type) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: value is a %s, not a %s", what, type_name(v->type),
                   type_name(type));
        return 0;
    }
    return 1;
}

static int is_seq(const kiln_value *v, const char *what) {
    if (v && (v->type == KILN_VALUE_LIST || v->type == KILN_VALUE_MAP)) return 1;
    if (v) kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: value is a %s, not a list or map", what, type_name(v->type));
    else kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: value is NULL", what);
    return 0;
}

kiln_value_type kiln_value_get_type(const kiln_value *v) {
    if (!v) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_get_type: value is NULL");
        return KILN_VALUE_NONE;
    }
    return (kiln_value_type)v->type;
}

bool kiln_value_as_bool(const kiln_value *v) { return is_type(v, KILN_VALUE_BOOL, "as_bool") && v->u.b; }
int64_t kiln_value_as_int64(const kiln_value *v) { return is_type(v, KILN_VALUE_INT64, "as_int64") ? v->u.i : 0; }
double kiln_value_as_float64(const kiln_value *v) {
    return is_type(v, KILN_VALUE_FLOAT64, "as_float64") ? v->u.f : 0.0;
}

static const void *as_str(const kiln_value *v, kiln_value_type type, size_t *len, const char *what) {
    if (len) *len = 0;
    if (!is_type(v, type, what)) return NULL;
    if (len) *len = v->u.str.len;
    return v->u.str.data;
}

const char *kiln_value_as_string(const kiln_value *v, size_t *len) {
    return as_str(v, KILN_VALUE_STRING, len, "as_string");
}
const void *kiln_value_as_bytes(const kiln_value *v, size_t *len) {
    return as_str(v, KILN_VALUE_BYTES, len, "as_bytes");
}

size_t kiln_value_count(const kiln_value *v) { return is_seq(v, "kiln_value_count") ? v->u.seq.count : 0; }

const kiln_value *kiln_value_item(const kiln_value *v, size_t i) {
    if (!is_seq(v, "kiln_value_item")) return NULL;
    if (i >= v->u.seq.count) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_item: index %zu out of range (%zu items)", i,
                   v->u.seq.count);
        return NULL;
    }
    return v->u.seq.entries[i].value;
}

const char *kiln_value_key(const kiln_value *v, size_t i) {
    if (!is_type(v, KILN_VALUE_MAP, "kiln_value_key")) return NULL;
    if (i >= v->u.seq.count) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_key: index %zu out of range (%zu keys)", i,
                   v->u.seq.count);
        return NULL;
    }
    return v->u.seq.entries[i].key;
}

const kiln_value *kiln_value_map_get(const kiln_value *v, const char *key) {
    if (!is_type(v, KILN_VALUE_MAP, "kiln_value_map_get")) return NULL;
    if (!key) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_map_get: key is NULL");
        return NULL;
    }
    /* A missing key is an ordinary answer, not an error: the last-error
     * message is left alone (callers that need the key say so themselves). */
    const kiln_value_entry *e = map_find(v, key);
    return e ? e->value : NULL;
}

kiln_status kiln_value_array_info(const kiln_value *v, kiln_dtype *dtype, int32_t *rank, const int64_t **dims,
                                  const void **data) {
    if (!is_type(v, KILN_VALUE_ARRAY, "kiln_value_array_info")) return KILN_ERROR_INVALID_ARGUMENT;
    if (dtype) *dtype = (kiln_dtype)v->u.arr.dtype;
    if (rank) *rank = v->u.arr.rank;
    if (dims) *dims = v->u.arr.dims;
    if (data) *data = v->u.arr.data;
    return KILN_OK;
}

/* --- copy and equality ------------------------------------------------------ */

kiln_value *kiln_value_copy(const kiln_value *v) {
    if (!v) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_copy: value is NULL");
        return NULL;
    }
    switch (v->type) {
    case KILN_VALUE_NONE:    return kiln_value_none();
    case KILN_VALUE_BOOL:    return kiln_value_bool(v->u.b);
    case KILN_VALUE_INT64:   return kiln_value_int64(v->u.i);
    case KILN_VALUE_FLOAT64: return kiln_value_float64(v->u.f);
    case KILN_VALUE_STRING:
    case KILN_VALUE_BYTES:   return make_str(v->type, v->u.str.data, v->u.str.len);
    case KILN_VALUE_ARRAY:
        return kiln_value_array(v->u.arr.dtype, v->u.arr.rank, v->u.arr.dims, v->u.arr.data);
    default:
        break;
    }
    kiln_value *c = kiln_value_alloc(v->type);
    if (!c) return NULL;
    if (v->u.seq.count) {   /* exact size: every later failure frees what was built */
        c->u.seq.entries = kiln_calloc(v->u.seq.count, sizeof *c->u.seq.entries);
        if (!c->u.seq.entries) {
            kiln_value_free(c);
            kiln_error(KILN_ERROR_NO_MEMORY, "out of memory copying a %s of %zu items", type_name(v->type),
                       v->u.seq.count);
            return NULL;
        }
        c->u.seq.capacity = v->u.seq.count;
    }
    for (size_t i = 0; i < v->u.seq.count; i++) {
        const kiln_value_entry *e = &v->u.seq.entries[i];
        kiln_value_entry *d = &c->u.seq.entries[i];
        d->value = kiln_value_copy(e->value);
        if (d->value && e->key) {
            d->key = kiln_strdup(e->key);
            if (!d->key) kiln_error(KILN_ERROR_NO_MEMORY, "out of memory copying map key \"%s\"", e->key);
        }
        c->u.seq.count = i + 1;   /* owns whatever of entry i exists */
        if (!d->value || (e->key && !d->key)) {
            kiln_value_free(c);
            return NULL;
        }
    }
    c->u.seq.height = v->u.seq.height;
    return c;
}

bool kiln_value_equal(const kiln_value *a, const kiln_value *b) {
    if (!a || !b) return a == b;
    if (a->type != b->type) return false;
    switch (a->type) {
    case KILN_VALUE_NONE:    return true;
    case KILN_VALUE_BOOL:    return a->u.b == b->u.b;
    case KILN_VALUE_INT64:   return a->u.i == b->u.i;
    case KILN_VALUE_FLOAT64: /* by bit pattern: NaN equals itself, -0 differs from 0, as encoded */
        return memcmp(&a->u.f, &b->u.f, sizeof a->u.f) == 0;
    case KILN_VALUE_STRING:
    case KILN_VALUE_BYTES:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.data, b->u.str.data, a->u.str.len) == 0;
    case KILN_VALUE_LIST:
        if (a->u.seq.count != b->u.seq.count) return false;
        for (size_t i = 0; i < a->u.seq.count; i++)
            if (!kiln_value_equal(a->u.seq.entries[i].value, b->u.seq.entries[i].value)) return false;
        return true;
    case KILN_VALUE_MAP:    /* as a mapping: key order does not matter */
        if (a->u.seq.count != b->u.seq.count) return false;
        for (size_t i = 0; i < a->u.seq.count; i++) {
            const kiln_value_entry *e = map_find(b, a->u.seq.entries[i].key);
            if (!e || !kiln_value_equal(a->u.seq.entries[i].value, e->value)) return false;
        }
        return true;
    case KILN_VALUE_ARRAY:
        if (a->u.arr.dtype != b->u.arr.dtype || a->u.arr.rank != b->u.arr.rank) return false;
        for (int32_t i = 0; i < a->u.arr.rank; i++)
            if (a->u.arr.dims[i] != b->u.arr.dims[i]) return false;
        return a->u.arr.size == b->u.arr.size && memcmp(a->u.arr.data, b->u.arr.data, a->u.arr.size) == 0;
    }
    return false;
}
