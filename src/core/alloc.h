/* alloc.h — kiln's allocation functions.
 *
 * All of kiln's heap memory goes through these so that tests can make the
 * Nth allocation fail (kiln_alloc_fail_after) and prove that every
 * out-of-memory path reports KILN_ERROR_NO_MEMORY and leaks nothing. */
#ifndef KILN_CORE_ALLOC_H
#define KILN_CORE_ALLOC_H

#include <stddef.h>

void *kiln_malloc(size_t size);
void *kiln_calloc(size_t count, size_t size);
void *kiln_realloc(void *p, size_t size);
/* 64-byte aligned; free with kiln_aligned_free. */
void *kiln_aligned_alloc(size_t size);
void  kiln_aligned_free(void *p);
char *kiln_strdup(const char *s);
/* kiln_free (public) releases kiln_malloc/calloc/realloc/strdup memory. */

/* Grow *array (of *capacity items of item_size) to hold at least need items. */
int   kiln_grow(void **array, size_t *capacity, size_t need, size_t item_size);

/* Test hook: make every allocation after the next n fail (n < 0: never fail).
 * Exported for tests only. */
__attribute__((visibility("default"))) void kiln_alloc_fail_after(long n);

#endif
