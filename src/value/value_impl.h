/* value_impl.h — the representation of kiln_value, shared by value.c (the
 * API) and value_codec.c (the binary format). */
#ifndef KILN_VALUE_VALUE_IMPL_H
#define KILN_VALUE_VALUE_IMPL_H

#include "kiln/kiln.h"

/* Containers nest at most this deep (a scalar has height 0, a list or map
 * 1 + its deepest item), so recursion over a value is bounded. */
#define KILN_VALUE_MAX_DEPTH 64

typedef struct kiln_value_entry {
    char       *key;             /* maps: NUL-terminated UTF-8; lists: NULL */
    kiln_value *value;
} kiln_value_entry;

struct kiln_value {
    uint8_t type;                /* kiln_value_type */
    union {
        bool    b;
        int64_t i;
        double  f;
        struct {                 /* STRING (NUL-terminated too) and BYTES */
            char  *data;
            size_t len;
        } str;
        struct {                 /* LIST and MAP */
            kiln_value_entry *entries;
            size_t            count, capacity;
            int32_t           height;
        } seq;
        struct {                 /* ARRAY */
            uint8_t  dtype;
            int32_t  rank;
            int64_t  dims[KILN_MAX_RANK];
            void    *data;       /* kiln_aligned_alloc */
            size_t   size;       /* bytes */
        } arr;
    } u;
};

/* A zeroed value of the given type, or NULL (error set). */
kiln_value *kiln_value_alloc(kiln_value_type type);
/* Height as defined above. */
int32_t     kiln_value_height(const kiln_value *v);
/* Length of the longest valid UTF-8 prefix of s[0..len) (len when valid):
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t      kiln_utf8_valid_prefix(const uint8_t *s, size_t len);
/* Byte size of an array: 0 and *size set when dims (rank entries, each
 * >= 0) times the element size fits in size_t; -1 otherwise. */
int         kiln_value_array_bytes(kiln_dtype dtype, int32_t rank, const int64_t *dims, size_t *size);

#endif
