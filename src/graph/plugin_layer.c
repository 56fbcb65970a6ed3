/* plugin_layer.c — adding a plugin layer.  Its output dtypes, symbolic shapes
 * and workspace size come either already traced (data-first:
 * kiln_network_add_plugin_traced, as the Python layer does) or from the
 * creator's own rule, asked once (kiln_network_add_plugin).  Either way the
 * engine stores the answers, so running the engine never calls plugin shape
 * code. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/network_impl.h"
#include "plugin/plugin_failure.h"


static kiln_status plugin_failed(kiln_status s, uint64_t serial, const kiln_plugin_creator *c, const char *step) {
    return kiln_plugin_failure(s, serial, "plugin %s::%s version %s: %s", c->plugin_namespace, c->name, c->version,
                               step);
}

/* Every output shape must be a valid rank with valid, non-negative-able expressions of this pool. */
static kiln_status check_shapes(kiln_network *net, const kiln_plugin_creator *c, int32_t count,
                                const kiln_shape_expr *shapes) {
    for (int32_t i = 0; i < count; i++) {
        if (shapes[i].rank < 0 || shapes[i].rank > KILN_MAX_RANK)
            return kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s: output %d has rank %d (need 0..%d)",
                              c->plugin_namespace, c->name, c->version, i, shapes[i].rank, KILN_MAX_RANK);
        for (int32_t d = 0; d < shapes[i].rank; d++) {
            int64_t v;
            if (!kiln_exprs_valid(net->exprs, shapes[i].dims[d]))
                return kiln_error(KILN_ERROR_PLUGIN,
                                  "plugin %s::%s version %s: output %d axis %d is not a valid expression",
                                  c->plugin_namespace, c->name, c->version, i, d);
            if (kiln_expr_is_const(net->exprs, shapes[i].dims[d], &v) && v < 0)
                return kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s: output %d axis %d has size %lld",
                                  c->plugin_namespace, c->name, c->version, i, d, (long long)v);
        }
    }
    return KILN_OK;
}

static kiln_status record_plugin(kiln_network *net, const kiln_plugin_creator *c, const char *module,
                                 const kiln_value *fields, kiln_expr workspace, int32_t *index) {
    if (!kiln_grow((void **)&net->plugins, &net->plugin_capacity, net->plugin_count + 1, sizeof *net->plugins))
        return kiln_error(KILN_ERROR_NO_MEMORY, "adding plugin layer: out of memory");
    kiln_net_plugin *p = &net->plugins[net->plugin_count];
    memset(p, 0, sizeof *p);
    p->workspace = workspace;
    kiln_plugin_record *r = &p->record;
    r->flags = c->flags;
    r->plugin_namespace = kiln_strdup(c->plugin_namespace);
    r->name = kiln_strdup(c->name);
    r->version = kiln_strdup(c->version);
    r->module = kiln_strdup(module ? module : c->module ? c->module : "");
    kiln_status s = KILN_OK;
    if (!r->plugin_namespace || !r->name || !r->version || !r->module)
        s = kiln_error(KILN_ERROR_NO_MEMORY, "adding plugin layer: out of memory");
    else
        s = kiln_value_encode(fields, &r->fields, &r->fields_size);
    if (s) {
        kiln_free(r->plugin_namespace); kiln_free(r->name); kiln_free(r->version); kiln_free(r->module);
        return s;
    }
    *index = (int32_t)net->plugin_count++;
    return KILN_OK;
}

/* The checks both entry points make before anything else; *creator is the
 * registered creator of (ns, name, version). */
static kiln_status check_call(kiln_network *net, const char *api, const char *ns, const char *name,
                              const char *version, const char *module, const kiln_value *fields, int32_t input_count,
                              const kiln_tensor *inputs, int32_t output_count, const kiln_tensor *outputs,
                              const kiln_plugin_creator **creator) {
    if (!net || !ns || !name || !version || !fields || (input_count > 0 && !inputs) || !outputs)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: NULL argument", api);
    const kiln_plugin_creator *c = kiln_plugin_find(ns, name, version);
    if (!c)
        return kiln_error(KILN_ERROR_NOT_FOUND, "plugin %s::%s version %s is not registered%s%s%s", ns, name, version,
                          module ? " (defined in module '" : "", module ? module : "", module ? "')" : "");
    if (kiln_value_get_type(fields) != KILN_VALUE_MAP)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "plugin %s::%s version %s: fields must be a map", ns, name,
                          version);
    if (input_count < 0 || input_count > KILN_PLUGIN_MAX_IO)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "plugin %s::%s version %s: %d inputs (need 0..%d)", ns, name,
                          version, input_count, KILN_PLUGIN_MAX_IO);
    if (c->output_count == 0 ? output_count < 1 || output_count > KILN_PLUGIN_MAX_IO : output_count != c->output_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "plugin %s::%s version %s produces %d outputs, not %d", ns,
                          name, version, c->output_count, output_count);
    for (int32_t i = 0; i < input_count; i++) {
        kiln_net_tensor *t = NULL;
        kiln_status s = kiln_net_tensor_get(net, inputs[i], api, &t);
        if (s) return s;
    }
    *creator = c;
    return KILN_OK;
}

/* Record the layer from its (traced or inferred) outputs, after checking them:
 * known dtypes, valid shapes, a valid workspace expression. */
static kiln_status add_checked(kiln_network *net, const kiln_plugin_creator *c, const char *module,
                               const kiln_value *fields, int32_t input_count, const kiln_tensor *inputs,
                               int32_t output_count, const kiln_dtype *out_dtypes, const kiln_shape_expr *out_shapes,
                               kiln_expr workspace, kiln_tensor *outputs) {
    for (int32_t i = 0; i < output_count; i++)
        if (!kiln_dtype_name(out_dtypes[i]))
            return kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s: output %d has unknown dtype %d",
                              c->plugin_namespace, c->name, c->version, i, (int)out_dtypes[i]);
    kiln_status s = check_shapes(net, c, output_count, out_shapes);
    if (s) return s;
    if (workspace != KILN_EXPR_INVALID) {
        int64_t v;
        if (!kiln_exprs_valid(net->exprs, workspace))
            return kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s: the workspace size is not a valid "
                              "expression", c->plugin_namespace, c->name, c->version);
        if (kiln_expr_is_const(net->exprs, workspace, &v) && v <= 0) workspace = KILN_EXPR_INVALID;
    }
    int32_t plugin_index = -1;
    s = record_plugin(net, c, module, fields, workspace, &plugin_index);
    if (s) return s;
    s = kiln_net_add_layer(net, KILN_OP_PLUGIN, plugin_index, 0, NULL, input_count, inputs, output_count, out_dtypes,
                           out_shapes, outputs);
    if (s) {   /* forget the record we just added */
        kiln_plugin_record *r = &net->plugins[--net->plugin_count].record;
        kiln_free(r->plugin_namespace); kiln_free(r->name); kiln_free(r->version);
        kiln_free(r->module); kiln_free(r->fields);
    }
    return s;
}

kiln_status kiln_network_add_plugin_traced(kiln_network *net, const char *ns, const char *name, const char *version,
                                           const char *module, const kiln_value *fields, int32_t input_count,
                                           const kiln_tensor *inputs, int32_t output_count,
                                           const kiln_dtype *output_dtypes, const kiln_shape_expr *output_shapes,
                                           kiln_expr workspace, kiln_tensor *outputs) {
    const kiln_plugin_creator *c = NULL;
    kiln_status s = check_call(net, "kiln_network_add_plugin_traced", ns, name, version, module, fields, input_count,
                               inputs, output_count, outputs, &c);
    if (s) return s;
    if (!output_dtypes || !output_shapes)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_plugin_traced: plugin %s::%s version %s: "
                          "NULL output dtypes or shapes", ns, name, version);
    return add_checked(net, c, module, fields, input_count, inputs, output_count, output_dtypes, output_shapes,
                       workspace, outputs);
}

/* Ask the creator's own rule: create → infer_dtypes → infer_shapes →
 * workspace_size → destroy. */
static kiln_status infer(kiln_network *net, const kiln_plugin_creator *c, const kiln_value *fields,
                         int32_t input_count, const kiln_tensor *inputs, int32_t output_count, kiln_dtype *out_dtypes,
                         kiln_shape_expr *out_shapes, kiln_expr *workspace) {
    kiln_dtype in_dtypes[KILN_PLUGIN_MAX_IO];
    kiln_shape_expr *in_shapes = kiln_calloc((size_t)input_count + 1, sizeof *in_shapes);
    if (!in_shapes) return kiln_error(KILN_ERROR_NO_MEMORY, "adding plugin layer: out of memory");
    for (int32_t i = 0; i < input_count; i++) {
        kiln_net_tensor *t = &net->tensors[inputs[i]];
        in_dtypes[i] = t->dtype;
        in_shapes[i].rank = t->rank;
        memcpy(in_shapes[i].dims, t->shape, sizeof(kiln_expr) * (size_t)t->rank);
    }
    void *instance = NULL;
    uint64_t serial = kiln_error_serial();
    kiln_status s = c->create(c, fields, &instance);
    if (s) s = plugin_failed(s, serial, c, "create");
    if (!s) {
        if (c->infer_dtypes) {
            serial = kiln_error_serial();
            s = c->infer_dtypes(instance, input_count, in_dtypes, output_count, out_dtypes);
            if (s) s = plugin_failed(s, serial, c, "infer_dtypes");
        } else if (input_count == 0) {
            s = kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s has no inputs and no infer_dtypes",
                           c->plugin_namespace, c->name, c->version);
        } else {
            for (int32_t i = 0; i < output_count; i++) out_dtypes[i] = in_dtypes[0];
        }
    }
    if (!s) {
        for (int32_t i = 0; i < output_count; i++) out_shapes[i].rank = -1;
        serial = kiln_error_serial();
        s = c->infer_shapes(instance, net->exprs, input_count, in_shapes, output_count, out_shapes);
        if (s) s = plugin_failed(s, serial, c, "infer_shapes");
    }
    if (!s && c->workspace_size) {
        serial = kiln_error_serial();
        s = c->workspace_size(instance, net->exprs, input_count, in_shapes, workspace);
        if (s) s = plugin_failed(s, serial, c, "workspace_size");
        else if (!kiln_exprs_valid(net->exprs, *workspace))
            s = kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s: workspace_size gave an invalid expression",
                           c->plugin_namespace, c->name, c->version);
    }
    if (instance && c->destroy) c->destroy(c, instance);
    kiln_free(in_shapes);
    return s;
}

kiln_status kiln_network_add_plugin(kiln_network *net, const char *ns, const char *name, const char *version,
                                    const char *module, const kiln_value *fields, int32_t input_count,
                                    const kiln_tensor *inputs, int32_t output_count, kiln_tensor *outputs) {
    const kiln_plugin_creator *c = NULL;
    kiln_status s = check_call(net, "kiln_network_add_plugin", ns, name, version, module, fields, input_count, inputs,
                               output_count, outputs, &c);
    if (s) return s;
    if (!c->infer_shapes)
        return kiln_error(KILN_ERROR_PLUGIN, "plugin %s::%s version %s has no shape rule in C (no infer_shapes%s): "
                          "add its layers with kiln_network_add_plugin_traced, passing the traced output dtypes, "
                          "shapes and workspace", ns, name, version,
                          (c->flags & KILN_PLUGIN_NEEDS_PYTHON) ? "; a Python plugin is traced by kiln.network" : "");
    kiln_dtype out_dtypes[KILN_PLUGIN_MAX_IO];
    kiln_shape_expr *out_shapes = kiln_calloc((size_t)output_count, sizeof *out_shapes);
    if (!out_shapes) return kiln_error(KILN_ERROR_NO_MEMORY, "adding plugin layer: out of memory");
    kiln_expr workspace = KILN_EXPR_INVALID;
    s = infer(net, c, fields, input_count, inputs, output_count, out_dtypes, out_shapes, &workspace);
    if (!s) s = add_checked(net, c, module, fields, input_count, inputs, output_count, out_dtypes, out_shapes,
                            workspace, outputs);
    kiln_free(out_shapes);
    return s;
}

/* ---- outputs written in place ------------------------------------------------
 *
 * A plugin layer's attribute integers list, per output, the input position it
 * aliases or -1 (docs/engine-format.md); empty when none does. */
kiln_status kiln_network_alias_output(kiln_network *net, kiln_tensor out, kiln_tensor in) {
    const char *api = "kiln_network_alias_output";
    kiln_net_tensor *o = NULL, *i = NULL;
    kiln_status s = kiln_net_tensor_get(net, out, api, &o);
    if (!s) s = kiln_net_tensor_get(net, in, api, &i);
    if (s) return s;
    const char *ol = kiln_net_tensor_label(net, out), *il = kiln_net_tensor_label(net, in);
    if (o->kind != KILN_NET_LAYER_OUTPUT || net->layers[o->producer].op != KILN_OP_PLUGIN)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: '%s' is not an output of a plugin layer", api, ol);
    if (i->kind != KILN_NET_INPUT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: '%s' is not a network input (only the caller's buffers "
                          "are written in place)", api, il);
    kiln_net_layer *l = &net->layers[o->producer];
    int32_t k = -1, j = -1;
    for (int32_t x = 0; x < l->output_count; x++)
        if (l->outputs[x] == out) k = x;
    for (int32_t x = 0; x < l->input_count; x++)
        if (l->inputs[x] == in) j = x;
    if (j < 0)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: the layer making '%s' does not read '%s'", api, ol, il);
    if (o->dtype != i->dtype || o->rank != i->rank ||
        memcmp(o->shape, i->shape, sizeof(kiln_expr) * (size_t)o->rank) != 0)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: '%s' and '%s' differ in dtype or shape", api, ol, il);
    for (size_t x = 0; x < net->output_count; x++)
        if (net->outputs[x].tensor == out)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: '%s' is marked as an output", api, ol);
    if (l->output_count > KILN_MAX_LAYER_INTS)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: a layer of %d outputs (at most %d may alias)", api,
                          (int)l->output_count, KILN_MAX_LAYER_INTS);
    if (l->attrs.int_count == 0) {
        l->attrs.int_count = l->output_count;
        for (int32_t x = 0; x < l->output_count; x++) l->attrs.ints[x] = -1;
    }
    for (int32_t x = 0; x < l->output_count; x++)
        if (x != k && l->attrs.ints[x] == j)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: another output of the layer already writes into '%s'",
                              api, il);
    l->attrs.ints[k] = j;
    return KILN_OK;
}
