/* unique_names.c — sort (name, index) pairs, then compare neighbours. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kiln/kiln.h"
#include "format/unique_names.h"

typedef struct named {
    const char *name;
    int32_t     index;
} named;

/* Ties broken by index so that the pair reported is the same on every libc. */
static int compare_named(const void *pa, const void *pb) {
    const named *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c) return c;
    return (a->index > b->index) - (a->index < b->index);
}

int kiln_names_find_duplicate(const char *const *names, int32_t count, int32_t *first, int32_t *second) {
    if (count < 2) return 0;
    named *items = kiln_malloc((size_t)count * sizeof *items);
    if (!items) return -1;
    for (int32_t i = 0; i < count; i++) {
        items[i].name = names[i] ? names[i] : "";
        items[i].index = i;
    }
    qsort(items, (size_t)count, sizeof *items, compare_named);
    int found = 0;
    for (int32_t i = 1; i < count && !found; i++) {
        if (strcmp(items[i - 1].name, items[i].name) == 0) {
            *first = items[i - 1].index;
            *second = items[i].index;
            found = 1;
        }
    }
    kiln_free(items);
    return found;
}
