/* alloc.c — allocation with a failure-injection hook for tests. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kiln/kiln.h"

/* Allocations left before injected failures begin; negative: never fail. */
static atomic_long allocations_left = -1;

void kiln_alloc_fail_after(long n) { atomic_store(&allocations_left, n); }

static int should_fail(void) {
    long left = atomic_load(&allocations_left);
    if (left < 0) return 0;
    if (left == 0) return 1;
    atomic_fetch_sub(&allocations_left, 1);
    return 0;
}

void *kiln_malloc(size_t size) { return should_fail() ? NULL : malloc(size ? size : 1); }

void *kiln_calloc(size_t count, size_t size) {
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *kiln_realloc(void *p, size_t size) { return should_fail() ? NULL : realloc(p, size ? size : 1); }

void kiln_free(void *p) { free(p); }

void *kiln_aligned_alloc(size_t size) {
    if (should_fail()) return NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size) return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void kiln_aligned_free(void *p) { free(p); }

char *kiln_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = kiln_malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

int kiln_grow(void **array, size_t *capacity, size_t need, size_t item_size) {
    if (need <= *capacity) return 1;
    size_t cap = *capacity ? *capacity : 8;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return 0;
        cap *= 2;
    }
    if (cap > SIZE_MAX / item_size) return 0;
    void *grown = kiln_realloc(*array, cap * item_size);
    if (!grown) return 0;
    *array = grown;
    *capacity = cap;
    return 1;
}
