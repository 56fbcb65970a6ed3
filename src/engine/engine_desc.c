/* engine_desc.c — releasing what an engine desc owns.
 *
 * Written so that it is safe on a desc that was only partly filled (the
 * format reader clears on every failure path): NULL arrays and pointers are
 * skipped, and counts are trusted only together with their array. */
#include <string.h>

#include "core/alloc.h"
#include "engine/engine_desc.h"

void kiln_engine_desc_clear(kiln_engine_desc *desc) {
    if (!desc) return;
    kiln_exprs_free(desc->exprs);
    for (int32_t i = 0; desc->dims && i < desc->dim_count; i++) {
        kiln_free(desc->dims[i].name);
        kiln_free(desc->dims[i].ranges);
    }
    kiln_free(desc->dims);
    for (int32_t i = 0; desc->tensors && i < desc->tensor_count; i++) kiln_free(desc->tensors[i].name);
    kiln_free(desc->tensors);
    for (int32_t i = 0; desc->layers && i < desc->layer_count; i++) {
        kiln_free(desc->layers[i].inputs);
        kiln_free(desc->layers[i].outputs);
    }
    kiln_free(desc->layers);
    for (int32_t i = 0; desc->plugins && i < desc->plugin_count; i++) {
        kiln_plugin_record *p = &desc->plugins[i];
        kiln_free(p->plugin_namespace);
        kiln_free(p->name);
        kiln_free(p->version);
        kiln_free(p->module);
        kiln_free(p->fields);
    }
    kiln_free(desc->plugins);
    for (int32_t i = 0; desc->checks && i < desc->check_count; i++) kiln_free(desc->checks[i].message);
    kiln_free(desc->checks);
    kiln_free(desc->io);
    /* Owned weights come from kiln_aligned_alloc (64-byte alignment). */
    if (desc->weights_owned) kiln_aligned_free((void *)desc->weights);
    memset(desc, 0, sizeof *desc);
}
