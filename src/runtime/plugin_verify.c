/* plugin_verify.c — a loaded engine's native plugin layers, held to their
 * plugins' own rules.
 *
 * The engine file states each plugin layer's output dtypes and shapes and its
 * workspace size; the plugin's enqueue writes what its own rule says.  Were
 * the two to differ (a crafted file declaring a smaller output, or a larger
 * one the plugin then fills past its buffer), memory kiln does not own would
 * be written.  So at load each native plugin is asked again — create from the
 * stored fields, infer_dtypes, infer_shapes and workspace_size on the stored
 * inputs' expressions, in a copy of the engine's pool (hash-consed: the same
 * construction gives the same ids) — and the engine is refused unless every
 * stored output and the workspace are exactly what the plugin gives.
 *
 * Python plugins (KILN_PLUGIN_NEEDS_PYTHON) are not asked: their rule was
 * traced once at build time and running Python at load would break the
 * promise that loading runs no plugin code; they are trusted code, like every
 * plugin, and see the shapes the engine states (docs/security.md). */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "plugin/plugin_failure.h"
#include "runtime/engine_impl.h"
#include "shape/exprs.h"

static kiln_status corrupt_layer(const kiln_engine_desc *d, int32_t li, const char *what) {
    const kiln_plugin_record *r = &d->plugins[d->layers[li].subop];
    return kiln_error(KILN_ERROR_CORRUPT, "layer %d (plugin %s::%s version %s): %s", li, r->plugin_namespace, r->name,
                      r->version, what);
}

/* Ask the plugin of layer li for its outputs and compare with the engine's. */
static kiln_status verify_layer(kiln_engine *e, kiln_exprs *pool, int32_t li, kiln_shape_expr *shapes) {
    const kiln_engine_desc *d = &e->desc;
    const kiln_layer_record *l = &d->layers[li];
    const kiln_plugin_creator *c = e->creators[l->subop];
    if (!c || (c->flags & KILN_PLUGIN_NEEDS_PYTHON) || !c->infer_shapes) return KILN_OK;
    int32_t ni = l->input_count, no = l->output_count;
    kiln_shape_expr *in = shapes, *out = shapes + ni;
    kiln_dtype in_dtypes[KILN_PLUGIN_MAX_IO], out_dtypes[KILN_PLUGIN_MAX_IO];
    if (ni > KILN_PLUGIN_MAX_IO || no > KILN_PLUGIN_MAX_IO) return corrupt_layer(d, li, "too many inputs or outputs");
    for (int32_t i = 0; i < ni; i++) {
        const kiln_tensor_record *t = &d->tensors[l->inputs[i]];
        in_dtypes[i] = (kiln_dtype)t->dtype;
        in[i].rank = t->rank;
        memcpy(in[i].dims, t->shape, sizeof(kiln_expr) * (size_t)t->rank);
    }
    void *instance = NULL;
    uint64_t serial = kiln_error_serial();
    kiln_status s = c->create(c, e->plugin_fields[l->subop], &instance);
    if (s) {
        kiln_plugin_failure(s, serial, "layer %d: the plugin refuses the engine's fields", li);
        return s == KILN_ERROR_NO_MEMORY ? s : KILN_ERROR_CORRUPT;
    }
    if (c->infer_dtypes) {
        s = c->infer_dtypes(instance, ni, in_dtypes, no, out_dtypes);
    } else if (ni > 0) {
        for (int32_t i = 0; i < no; i++) out_dtypes[i] = in_dtypes[0];
    } else {
        s = kiln_error(KILN_ERROR_PLUGIN, "no inputs and no infer_dtypes");
    }
    for (int32_t i = 0; i < no; i++) out[i].rank = -1;
    if (!s) s = c->infer_shapes(instance, pool, ni, in, no, out);
    kiln_expr workspace = KILN_EXPR_INVALID;
    if (!s && c->workspace_size) s = c->workspace_size(instance, pool, ni, in, &workspace);
    if (c->destroy) c->destroy(c, instance);
    if (s) {
        kiln_plugin_failure(s, serial, "layer %d: the plugin cannot infer its outputs from the engine's inputs", li);
        return s == KILN_ERROR_NO_MEMORY ? s : KILN_ERROR_CORRUPT;
    }
    for (int32_t i = 0; i < no; i++) {
        const kiln_tensor_record *t = &d->tensors[l->outputs[i]];
        int same = out_dtypes[i] == (kiln_dtype)t->dtype && out[i].rank == t->rank;
        for (int32_t a = 0; same && a < t->rank; a++) same = out[i].dims[a] == t->shape[a];
        if (!same) {
            char what[256];
            snprintf(what, sizeof what, "output %d '%.100s' is not the dtype and shape the plugin gives", i, t->name);
            return corrupt_layer(d, li, what);
        }
    }
    int64_t bytes;
    if (workspace >= 0 && kiln_expr_is_const(pool, workspace, &bytes) && bytes <= 0) workspace = KILN_EXPR_INVALID;
    kiln_expr stored = l->workspace >= 0 ? d->tensors[l->workspace].shape[0] : KILN_EXPR_INVALID;
    if (workspace != stored || (l->workspace >= 0 && d->tensors[l->workspace].rank != 1))
        return corrupt_layer(d, li, "its workspace is not the size the plugin asks for");
    return KILN_OK;
}

kiln_status kiln_engine_verify_plugin_layers(kiln_engine *e) {
    const kiln_engine_desc *d = &e->desc;
    kiln_exprs *pool = NULL;
    kiln_shape_expr *shapes = kiln_calloc(2 * KILN_PLUGIN_MAX_IO, sizeof *shapes);
    kiln_status s = shapes ? KILN_OK : kiln_error(KILN_ERROR_NO_MEMORY, "loading engine: out of memory");
    for (int32_t li = 0; li < d->layer_count && !s; li++) {
        if (d->layers[li].op != KILN_OP_PLUGIN) continue;
        if (!pool) s = kiln_exprs_from_nodes(d->exprs->nodes, d->exprs->count, d->dim_count, &pool);
        if (!s) s = verify_layer(e, pool, li, shapes);
    }
    kiln_exprs_free(pool);
    kiln_free(shapes);
    return s;
}
