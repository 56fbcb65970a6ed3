/* memory_plan.c — greedy interval packing of activations (see memory_plan.h). */
#include <stdlib.h>

#include "core/memory_plan.h"
#include "core/alloc.h"
#include "core/error.h"

static int by_size_desc(const void *a, const void *b, void *items_) {
    const kiln_plan_item *items = items_;
    const kiln_plan_item *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

static int lifetimes_overlap(const kiln_plan_item *a, const kiln_plan_item *b) {
    return a->first <= b->last && b->first <= a->last;
}

kiln_status kiln_memory_plan(kiln_plan_item *items, size_t count, uint64_t alignment, uint64_t *arena_bytes) {
    *arena_bytes = 0;
    if (count == 0) return KILN_OK;
    size_t *order = kiln_malloc(count * sizeof *order);
    size_t *placed = kiln_malloc(count * sizeof *placed);
    if (!order || !placed) {
        kiln_free(order); kiln_free(placed);
        return kiln_error(KILN_ERROR_NO_MEMORY, "memory plan: out of memory");
    }
    for (size_t i = 0; i < count; i++) order[i] = i;
    qsort_r(order, count, sizeof *order, by_size_desc, items);
    size_t placed_count = 0;
    uint64_t peak = 0;
    kiln_status status = KILN_OK;
    for (size_t n = 0; n < count && !status; n++) {
        kiln_plan_item *it = &items[order[n]];
        uint64_t size = (it->size + alignment - 1) & ~(alignment - 1);
        if (size < it->size) { status = kiln_error(KILN_ERROR_INVALID_NETWORK, "memory plan: activation too large"); break; }
        /* Try the lowest offset that clears every placed, time-overlapping
         * item: candidates are 0 and the end of each such item. */
        uint64_t best = UINT64_MAX;
        for (size_t c = 0; c <= placed_count; c++) {
            uint64_t candidate = 0;
            if (c < placed_count) {
                const kiln_plan_item *o = &items[placed[c]];
                if (!lifetimes_overlap(o, it)) continue;
                candidate = o->offset + ((o->size + alignment - 1) & ~(alignment - 1));
            }
            if (candidate >= best) continue;
            int fits = 1;
            for (size_t k = 0; k < placed_count && fits; k++) {
                const kiln_plan_item *o = &items[placed[k]];
                uint64_t osize = (o->size + alignment - 1) & ~(alignment - 1);
                if (lifetimes_overlap(o, it) && candidate < o->offset + osize && o->offset < candidate + size)
                    fits = 0;
            }
            if (fits) best = candidate;
        }
        it->offset = best;
        if (best + size < best) { status = kiln_error(KILN_ERROR_INVALID_NETWORK, "memory plan: arena too large"); break; }
        if (best + size > peak) peak = best + size;
        placed[placed_count++] = order[n];
    }
    kiln_free(order);
    kiln_free(placed);
    *arena_bytes = peak;
    return status;
}
