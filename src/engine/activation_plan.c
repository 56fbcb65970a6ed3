/* activation_plan.c — see activation_plan.h. */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "format/engine_format.h"
#include "engine/activation_plan.h"

kiln_status kiln_activation_plan_init(const kiln_engine_desc *d, kiln_activation_plan *plan) {
    memset(plan, 0, sizeof *plan);
    size_t n = d->tensor_count ? (size_t)d->tensor_count : 1;
    int32_t *item_of = kiln_malloc(n * sizeof *item_of);
    plan->tensors = kiln_malloc(n * sizeof *plan->tensors);
    plan->items = kiln_calloc(n, sizeof *plan->items);
    if (!item_of || !plan->tensors || !plan->items) {
        kiln_free(item_of);
        kiln_activation_plan_clear(plan);
        return kiln_error(KILN_ERROR_NO_MEMORY, "planning activations: out of memory");
    }
    for (int32_t t = 0; t < d->tensor_count; t++) {
        item_of[t] = -1;
        if (d->tensors[t].kind != KILN_TENSOR_ACTIVATION) continue;
        item_of[t] = (int32_t)plan->count;
        plan->tensors[plan->count] = t;
        plan->items[plan->count++] = (kiln_plan_item){.first = INT32_MAX, .last = -1};
    }
    /* An activation lives from the layer that writes it (or uses it as its
     * workspace) to the last layer that reads it. */
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *layer = &d->layers[l];
        for (int32_t i = 0; i < layer->input_count; i++) {
            int32_t it = item_of[layer->inputs[i]];
            if (it >= 0 && plan->items[it].last < l) plan->items[it].last = l;
        }
        for (int32_t i = 0; i < layer->output_count + 1; i++) {
            int32_t t = i < layer->output_count ? layer->outputs[i] : layer->workspace;
            if (t < 0 || item_of[t] < 0) continue;
            kiln_plan_item *it = &plan->items[item_of[t]];
            if (it->first > l) it->first = l;
            if (it->last < l) it->last = l;
        }
    }
    for (size_t i = 0; i < plan->count; i++)   /* never written: the reader refuses that, but stay sane */
        if (plan->items[i].first == INT32_MAX) plan->items[i].first = plan->items[i].last < 0 ? 0 : plan->items[i].last;
    kiln_free(item_of);
    return KILN_OK;
}

kiln_status kiln_activation_plan_place(kiln_activation_plan *plan, const uint64_t *tensor_bytes,
                                       uint64_t *arena_bytes) {
    for (size_t i = 0; i < plan->count; i++) plan->items[i].size = tensor_bytes[plan->tensors[i]];
    return kiln_memory_plan(plan->items, plan->count, KILN_FORMAT_ARENA_ALIGNMENT, arena_bytes);
}

void kiln_activation_plan_clear(kiln_activation_plan *plan) {
    kiln_free(plan->tensors);
    kiln_free(plan->items);
    memset(plan, 0, sizeof *plan);
}
