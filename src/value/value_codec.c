/* value_codec.c — kiln_value to and from its binary format.
 *
 * The format is described byte by byte in docs/value-format.md.  The decoder
 * treats its input as hostile: every length is checked against the bytes
 * left before anything is read or allocated, nesting is bounded, and every
 * failure is KILN_ERROR_CORRUPT naming what was wrong and its byte offset. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "value/value_impl.h"

/* --- encoding ----------------------------------------------------------------- */

static int add_size(size_t *total, size_t n) { return !__builtin_add_overflow(*total, n, total); }

/* Bytes needed to encode v (at nesting depth `depth` of containers). */
static kiln_status measure(const kiln_value *v, int depth, size_t *total) {
    int ok = 1;
    switch (v->type) {
    case KILN_VALUE_NONE:    ok = add_size(total, 1); break;
    case KILN_VALUE_BOOL:    ok = add_size(total, 2); break;
    case KILN_VALUE_INT64:
    case KILN_VALUE_FLOAT64: ok = add_size(total, 9); break;
    case KILN_VALUE_STRING:
    case KILN_VALUE_BYTES:   ok = add_size(total, 9) && add_size(total, v->u.str.len); break;
    case KILN_VALUE_ARRAY:
        ok = add_size(total, 3 + 8 * (size_t)v->u.arr.rank + 8) && add_size(total, v->u.arr.size);
        break;
    case KILN_VALUE_LIST:
    case KILN_VALUE_MAP:
        if (depth + 1 > KILN_VALUE_MAX_DEPTH)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "value nests deeper than %d lists/maps",
                              KILN_VALUE_MAX_DEPTH);
        ok = add_size(total, 9);
        for (size_t i = 0; ok && i < v->u.seq.count; i++) {
            const kiln_value_entry *e = &v->u.seq.entries[i];
            if (e->key) ok = add_size(total, 8) && add_size(total, strlen(e->key));
            if (ok) {
                kiln_status st = measure(e->value, depth + 1, total);
                if (st != KILN_OK) return st;
            }
        }
        break;
    default:
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "value has unknown type %u", v->type);
    }
    return ok ? KILN_OK : kiln_error(KILN_ERROR_NO_MEMORY, "encoded value size overflows size_t");
}

static uint8_t *put_u64(uint8_t *p, uint64_t x) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
    return p + 8;
}

static uint8_t *put_bytes(uint8_t *p, const void *data, size_t n) {
    if (n) memcpy(p, data, n);
    return p + n;
}

static uint8_t *write_value(uint8_t *p, const kiln_value *v) {
    uint64_t bits;
    *p++ = v->type;
    switch (v->type) {
    case KILN_VALUE_BOOL:    *p++ = v->u.b ? 1 : 0; break;
    case KILN_VALUE_INT64:   p = put_u64(p, (uint64_t)v->u.i); break;
    case KILN_VALUE_FLOAT64: memcpy(&bits, &v->u.f, 8); p = put_u64(p, bits); break;
    case KILN_VALUE_STRING:
    case KILN_VALUE_BYTES:
        p = put_u64(p, v->u.str.len);
        p = put_bytes(p, v->u.str.data, v->u.str.len);
        break;
    case KILN_VALUE_LIST:
    case KILN_VALUE_MAP:
        p = put_u64(p, v->u.seq.count);
        for (size_t i = 0; i < v->u.seq.count; i++) {
            const kiln_value_entry *e = &v->u.seq.entries[i];
            if (e->key) {
                size_t n = strlen(e->key);
                p = put_u64(p, n);
                p = put_bytes(p, e->key, n);
            }
            p = write_value(p, e->value);
        }
        break;
    case KILN_VALUE_ARRAY:
        *p++ = v->u.arr.dtype;
        *p++ = (uint8_t)v->u.arr.rank;
        for (int32_t i = 0; i < v->u.arr.rank; i++) p = put_u64(p, (uint64_t)v->u.arr.dims[i]);
        p = put_u64(p, v->u.arr.size);
        p = put_bytes(p, v->u.arr.data, v->u.arr.size);
        break;
    default:
        break;
    }
    return p;
}

kiln_status kiln_value_encode(const kiln_value *v, uint8_t **out, size_t *out_size) {
    if (!v || !out || !out_size)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_encode: %s is NULL",
                          !v ? "value" : !out ? "out" : "out_size");
    *out = NULL;
    *out_size = 0;
    size_t size = 0;
    kiln_status st = measure(v, 0, &size);
    if (st != KILN_OK) return st;
    uint8_t *buf = kiln_malloc(size);
    if (!buf) return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory encoding a value of %zu bytes", size);
    uint8_t *end = write_value(buf, v);
    if ((size_t)(end - buf) != size) {   /* measure and write disagree: a bug, not bad input */
        kiln_free(buf);
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "value encoding size mismatch");
    }
    *out = buf;
    *out_size = size;
    return KILN_OK;
}

/* --- decoding ----------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t         size, pos;
} reader;

static kiln_status corrupt(size_t offset, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kiln_status corrupt(size_t offset, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kiln_error(KILN_ERROR_CORRUPT, "corrupt value at byte offset %zu: %s", offset, what);
}

static kiln_status need(const reader *r, uint64_t n, const char *what) {
    if (n > r->size - r->pos)
        return corrupt(r->pos, "truncated %s (needs %llu bytes, %zu left)", what, (unsigned long long)n,
                       r->size - r->pos);
    return KILN_OK;
}

static kiln_status read_u8(reader *r, uint8_t *x, const char *what) {
    kiln_status st = need(r, 1, what);
    if (st == KILN_OK) *x = r->p[r->pos++];
    return st;
}

static kiln_status read_u64(reader *r, uint64_t *x, const char *what) {
    kiln_status st = need(r, 8, what);
    if (st != KILN_OK) return st;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += 8;
    *x = v;
    return KILN_OK;
}

/* A length-prefixed byte run; *data points into the input. */
static kiln_status read_run(reader *r, const uint8_t **data, size_t *len, const char *what) {
    uint64_t n;
    kiln_status st = read_u64(r, &n, what);
    if (st == KILN_OK) st = need(r, n, what);
    if (st != KILN_OK) return st;
    *data = r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return KILN_OK;
}

static kiln_status check_utf8(const uint8_t *s, size_t len, size_t offset, const char *what) {
    size_t ok = kiln_utf8_valid_prefix(s, len);
    if (ok != len) return corrupt(offset + ok, "%s is not valid UTF-8", what);
    return KILN_OK;
}

typedef struct key_ref {
    const char *key;
    size_t      offset;
} key_ref;

static int key_ref_cmp(const void *x, const void *y) {
    const key_ref *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->offset > b->offset) - (a->offset < b->offset);
}

/* Reject a repeated key, naming the first repeat in file order. */
static kiln_status check_duplicates(const kiln_value *map, const size_t *offsets) {
    size_t n = map->u.seq.count;
    if (n < 2) return KILN_OK;
    key_ref *refs = kiln_malloc(n * sizeof *refs);
    if (!refs) return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory checking a map of %zu keys", n);
    for (size_t i = 0; i < n; i++) refs[i] = (key_ref){ map->u.seq.entries[i].key, offsets[i] };
    qsort(refs, n, sizeof *refs, key_ref_cmp);
    size_t worst = SIZE_MAX;
    const char *key = NULL;
    for (size_t i = 1; i < n; i++)
        if (strcmp(refs[i - 1].key, refs[i].key) == 0 && refs[i].offset < worst) {
            worst = refs[i].offset;
            key = refs[i].key;
        }
    kiln_status st = key ? corrupt(worst, "duplicate map key \"%.100s\"", key) : KILN_OK;
    kiln_free(refs);
    return st;
}

static kiln_status decode_value(reader *r, int depth, kiln_value **out);

static kiln_status decode_seq(reader *r, uint8_t tag, size_t tag_offset, int depth, kiln_value **out) {
    int is_map = tag == KILN_VALUE_MAP;
    const char *what = is_map ? "map" : "list";
    if (depth + 1 > KILN_VALUE_MAX_DEPTH)
        return corrupt(tag_offset, "%s nests deeper than %d lists/maps", what, KILN_VALUE_MAX_DEPTH);
    uint64_t count;
    size_t count_offset = r->pos;
    kiln_status st = read_u64(r, &count, is_map ? "map count" : "list count");
    if (st != KILN_OK) return st;
    /* Each item takes at least 1 byte (a map entry 9): a count the bytes
     * left cannot hold is corrupt, and is refused before allocating. */
    if (count > (r->size - r->pos) / (is_map ? 9 : 1))
        return corrupt(count_offset, "%s count %llu exceeds the %zu bytes left", what, (unsigned long long)count,
                       r->size - r->pos);
    kiln_value *v = kiln_value_alloc(tag);
    if (!v) return KILN_ERROR_NO_MEMORY;
    size_t *offsets = NULL;
    if (count) {
        v->u.seq.entries = kiln_calloc((size_t)count, sizeof *v->u.seq.entries);
        if (is_map) offsets = kiln_malloc((size_t)count * sizeof *offsets);
        if (!v->u.seq.entries || (is_map && !offsets)) {
            st = kiln_error(KILN_ERROR_NO_MEMORY, "out of memory decoding a %s of %llu items", what,
                            (unsigned long long)count);
            goto fail;
        }
        v->u.seq.capacity = (size_t)count;
    }
    for (size_t i = 0; i < count; i++) {
        kiln_value_entry *e = &v->u.seq.entries[i];
        if (is_map) {
            const uint8_t *key;
            size_t len;
            offsets[i] = r->pos;
            st = read_run(r, &key, &len, "map key");
            if (st != KILN_OK) goto fail;
            st = check_utf8(key, len, offsets[i] + 8, "map key");
            if (st != KILN_OK) goto fail;
            const uint8_t *nul = len ? memchr(key, 0, len) : NULL;
            if (nul) {
                st = corrupt(offsets[i] + 8 + (size_t)(nul - key), "map key contains a NUL byte");
                goto fail;
            }
            e->key = kiln_malloc(len + 1);
            if (!e->key) {
                st = kiln_error(KILN_ERROR_NO_MEMORY, "out of memory decoding a map key of %zu bytes", len);
                goto fail;
            }
            if (len) memcpy(e->key, key, len);
            e->key[len] = '\0';
            v->u.seq.count = i + 1;   /* own the key now */
        }
        st = decode_value(r, depth + 1, &e->value);
        v->u.seq.count = i + 1;
        if (st != KILN_OK) goto fail;
        int32_t h = kiln_value_height(e->value) + 1;
        if (h > v->u.seq.height) v->u.seq.height = h;
    }
    if (is_map) {
        st = check_duplicates(v, offsets);
        if (st != KILN_OK) goto fail;
    }
    kiln_free(offsets);
    *out = v;
    return KILN_OK;

fail:
    kiln_free(offsets);
    kiln_value_free(v);
    return st;
}

static kiln_status decode_array(reader *r, kiln_value **out) {
    uint8_t dtype, rank;
    int64_t dims[KILN_MAX_RANK];
    size_t offset = r->pos;
    kiln_status st = read_u8(r, &dtype, "array dtype");
    if (st != KILN_OK) return st;
    if (dtype >= KILN_DTYPE_COUNT) return corrupt(offset, "unknown array dtype %u", dtype);
    offset = r->pos;
    if ((st = read_u8(r, &rank, "array rank")) != KILN_OK) return st;
    if (rank > KILN_MAX_RANK) return corrupt(offset, "array rank %u exceeds %d", rank, KILN_MAX_RANK);
    for (int i = 0; i < rank; i++) {
        uint64_t d;
        offset = r->pos;
        if ((st = read_u64(r, &d, "array dimension")) != KILN_OK) return st;
        dims[i] = (int64_t)d;
        if (dims[i] < 0) return corrupt(offset, "array dimension %d is negative (%lld)", i, (long long)dims[i]);
    }
    size_t bytes;
    if (kiln_value_array_bytes(dtype, rank, dims, &bytes) != 0)
        return corrupt(offset, "array byte size of %s[%d dims] overflows", kiln_dtype_name(dtype), rank);
    uint64_t len;
    offset = r->pos;
    if ((st = read_u64(r, &len, "array data length")) != KILN_OK) return st;
    if (len != bytes)
        return corrupt(offset, "array data is %llu bytes but its shape needs %zu", (unsigned long long)len, bytes);
    if ((st = need(r, len, "array data")) != KILN_OK) return st;
    *out = kiln_value_array(dtype, rank, dims, r->p + r->pos);
    if (!*out) return KILN_ERROR_NO_MEMORY;
    r->pos += bytes;
    return KILN_OK;
}

static kiln_status decode_value(reader *r, int depth, kiln_value **out) {
    size_t offset = r->pos;
    uint8_t tag, b;
    uint64_t x;
    const uint8_t *data;
    size_t len;
    double f;
    *out = NULL;
    kiln_status st = read_u8(r, &tag, "value tag");
    if (st != KILN_OK) return st;
    switch (tag) {
    case KILN_VALUE_NONE:
        *out = kiln_value_none();
        break;
    case KILN_VALUE_BOOL:
        if ((st = read_u8(r, &b, "bool")) != KILN_OK) return st;
        if (b > 1) return corrupt(r->pos - 1, "bool byte 0x%02x is neither 0 nor 1", b);
        *out = kiln_value_bool(b);
        break;
    case KILN_VALUE_INT64:
        if ((st = read_u64(r, &x, "int64")) != KILN_OK) return st;
        *out = kiln_value_int64((int64_t)x);
        break;
    case KILN_VALUE_FLOAT64:
        if ((st = read_u64(r, &x, "float64")) != KILN_OK) return st;
        memcpy(&f, &x, 8);
        *out = kiln_value_float64(f);
        break;
    case KILN_VALUE_STRING:
    case KILN_VALUE_BYTES:
        if ((st = read_run(r, &data, &len, tag == KILN_VALUE_STRING ? "string" : "bytes")) != KILN_OK) return st;
        if (tag == KILN_VALUE_STRING) {
            if ((st = check_utf8(data, len, offset + 9, "string")) != KILN_OK) return st;
            *out = kiln_value_string((const char *)data, len);
        } else {
            *out = kiln_value_bytes(data, len);
        }
        break;
    case KILN_VALUE_LIST:
    case KILN_VALUE_MAP:
        return decode_seq(r, tag, offset, depth, out);
    case KILN_VALUE_ARRAY:
        return decode_array(r, out);
    default:
        return corrupt(offset, "unknown value tag 0x%02x", tag);
    }
    return *out ? KILN_OK : KILN_ERROR_NO_MEMORY;
}

kiln_status kiln_value_decode(const void *data, size_t size, kiln_value **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_decode: out is NULL");
    *out = NULL;
    if (!data && size) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_value_decode: data is NULL");
    reader r = { data, size, 0 };
    kiln_value *v;
    kiln_status st = decode_value(&r, 0, &v);
    if (st != KILN_OK) return st;
    if (r.pos != size) {
        kiln_value_free(v);
        return corrupt(r.pos, "%zu trailing bytes after the value", size - r.pos);
    }
    *out = v;
    return KILN_OK;
}
