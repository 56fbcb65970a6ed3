/* memory_plan.h — placing activations in one arena.
 *
 * Each activation lives from the layer that writes it to the last layer that
 * reads it.  Two activations whose lifetimes overlap must not overlap in the
 * arena; others may share bytes.  Placement is greedy best-fit by decreasing
 * size (the classic heuristic for this offline interval-packing problem). */
#ifndef KILN_CORE_MEMORY_PLAN_H
#define KILN_CORE_MEMORY_PLAN_H

#include "kiln/kiln.h"

typedef struct kiln_plan_item {
    uint64_t size;          /* bytes needed */
    int32_t  first, last;   /* layer indices: written at first, last read at last */
    uint64_t offset;        /* result */
} kiln_plan_item;

/* Assign offsets (multiples of alignment, a power of two); *arena_bytes gets the peak. */
kiln_status kiln_memory_plan(kiln_plan_item *items, size_t count, uint64_t alignment, uint64_t *arena_bytes);

#endif
