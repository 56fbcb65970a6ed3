/* activation_plan.h — placing a context's activations for the shapes it runs.
 *
 * The engine file plans the arena once, at the profiles' maxima: a network
 * built for batch ≤ 64 × seq ≤ 4096 would take that memory even to run one
 * short sequence.  A context instead places its activations for the shapes
 * it actually runs (core/memory_plan.c, the builder's own planner, on the
 * lifetimes the layer order gives) and grows its arena only when shapes grow
 * past what it holds; the engine's stored sizes stay the upper bound each
 * activation is checked against.  The builder places them the same way, at
 * the profiles' maxima (build/builder.c). */
#ifndef KILN_ENGINE_ACTIVATION_PLAN_H
#define KILN_ENGINE_ACTIVATION_PLAN_H

#include "core/memory_plan.h"
#include "engine/engine_desc.h"

typedef struct kiln_activation_plan {
    size_t          count;
    int32_t        *tensors;   /* the engine tensor of each item */
    kiln_plan_item *items;     /* lifetimes (layer indices); sizes and offsets filled by place */
} kiln_activation_plan;

/* Lifetimes of every ACTIVATION tensor of d (workspaces included). */
kiln_status kiln_activation_plan_init(const kiln_engine_desc *d, kiln_activation_plan *plan);
/* Offsets for the given byte sizes (tensor_bytes: one per engine tensor);
 * *arena_bytes gets the arena they need. */
kiln_status kiln_activation_plan_place(kiln_activation_plan *plan, const uint64_t *tensor_bytes,
                                       uint64_t *arena_bytes);
void        kiln_activation_plan_clear(kiln_activation_plan *plan);

#endif
